#include "session_agent/describe.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "session_agent/agent.h"
#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/pty_stream.h"

using namespace sshsoak;
using namespace sshsoak::agent;

// bench/driver runs these commands through OpenSSH: they must be the agent's
// own, character for character (quotes and backslashes survive the JSON).
TEST(DescribeWorkloads, CommandsAreTheAgentsOwn) {
  auto j = nlohmann::json::parse(describeWorkloadsJson(250));
  EXPECT_EQ(j["probe"], std::string(PROBE_COMMAND));
  EXPECT_EQ(j["exec_poll"]["commands"].get<std::vector<std::string>>(), pollCommands());
  EXPECT_EQ(j["pty"]["pause_ms"], 250);
  EXPECT_EQ(j["pty"]["commands"]["low"], ptyCommand(wire::Intensity::LOW, 250));
  EXPECT_EQ(j["pty"]["commands"]["medium"], ptyCommand(wire::Intensity::MEDIUM, 250));
  EXPECT_EQ(j["pty"]["commands"]["high"], ptyCommand(wire::Intensity::HIGH, 250));
  EXPECT_EQ(j["pty"]["commands"].size(), 3u);
  EXPECT_NE(ptyCommand(wire::Intensity::MEDIUM, 250).find('"'), std::string::npos);  // escaping is exercised
}

TEST(DescribeWorkloads, ThePauseIsGivenNotDefaulted) {
  // The agent keeps no defaults of its own: sshsoak's options are the source.
  auto json = describeWorkloads(0, nullptr);
  ASSERT_FALSE(json.ok());
  EXPECT_NE(json.error().find("--pty-pause-ms"), std::string::npos);
  const char* args[] = {"--pty-pause-ms", "1500"};
  json = describeWorkloads(2, args);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*json, describeWorkloadsJson(1500));
}

TEST(DescribeWorkloads, BadArgumentsAreUsageErrors) {
  const char* unknown[] = {"--pause", "5"};
  auto json = describeWorkloads(2, unknown);
  ASSERT_FALSE(json.ok());
  EXPECT_NE(json.error().find("'--pause'"), std::string::npos);
  const char* missing[] = {"--pty-pause-ms"};
  EXPECT_FALSE(describeWorkloads(1, missing).ok());
  for (const char* bad : {"", "12x", "-1", "99999999999"}) {
    const char* args[] = {"--pty-pause-ms", bad};
    json = describeWorkloads(2, args);
    ASSERT_FALSE(json.ok()) << bad;
    EXPECT_NE(json.error().find("--pty-pause-ms"), std::string::npos);
  }
}
