// The agent's configuration is the command line's: whatever cli::Options
// says (its defaults included) is what an agent runs with, through
// fillAgentConfig and AgentSettings::fromWire.
#include "supervisor/run/agent_config.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include "session_agent/agent.h"
#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/pty_workload.h"

using namespace sshsoak;

namespace {

agent::AgentSettings throughTheWire(const cli::Options& options, uint32_t sessionId) {
  capnp::MallocMessageBuilder message;
  fillAgentConfig(message.initRoot<wire::AgentConfig>(), options, sessionId, "/sshsoak-test-bucket");
  auto words = capnp::messageToFlatArray(message);
  capnp::FlatArrayMessageReader reader(words);
  return agent::AgentSettings::fromWire(reader.getRoot<wire::AgentConfig>());
}

cli::Options twoSlots() {
  cli::Options o;
  o.slots = {{"alpha", 22}, {"beta", 2222}};
  o.user = "soak";
  o.keyPath = "/k";
  o.knownHostsPath = "/kh";
  return o;
}

}  // namespace

TEST(AgentConfig, TheCliDefaultsAreWhatTheAgentRunsWith) {
  cli::Options o = twoSlots();
  agent::AgentSettings s = throughTheWire(o, 1);
  EXPECT_EQ(s.sessionId, 1u);
  EXPECT_EQ(s.connect.host, "beta");
  EXPECT_EQ(s.connect.port, 2222);
  EXPECT_EQ(s.connect.user, "soak");
  EXPECT_EQ(s.keepaliveIntervalMs, o.keepaliveIntervalSecs * 1000);
  EXPECT_EQ(s.keepaliveIntervalMs, 5000u);  // the drift: the agent once said 15000
  EXPECT_EQ(s.keepaliveCountMax, o.keepaliveCountMax);
  EXPECT_EQ(s.reconnectTimeoutMs, o.reconnectTimeoutSecs * 1000);
  EXPECT_EQ(s.maxReconnectAttempts, o.maxReconnectAttempts);
  EXPECT_EQ(s.backoff.baseNs, int64_t{o.backoffBaseMs} * 1'000'000);
  EXPECT_EQ(s.backoff.capNs, int64_t{o.backoffCapMs} * 1'000'000);
  EXPECT_EQ(s.tokenBucketName, "/sshsoak-test-bucket");

  // The PTY stream first, then the exec polls: the order they are stepped in.
  ASSERT_EQ(s.workloads.size(), 2u);
  const auto* pty = s.workloads[0].get<agent::PtySpec>();
  ASSERT_NE(pty, nullptr);
  EXPECT_EQ(pty->intensity, o.intensity);
  EXPECT_EQ(pty->pauseMs, 1000u);
  EXPECT_EQ(pty->retryMs, o.pollIntervalSecs * 1000);
  const auto* poll = s.workloads[1].get<agent::ExecPollSpec>();
  ASSERT_NE(poll, nullptr);
  EXPECT_EQ(poll->intervalMs, o.pollIntervalSecs * 1000);
  EXPECT_EQ(poll->commands, agent::pollCommands());
}

TEST(AgentConfig, FlagsReachTheWorkloads) {
  cli::Options o = twoSlots();
  o.intensity = wire::Intensity::HIGH;
  o.ptyIntervalSecs = 0.25;
  o.pollIntervalSecs = 2;
  agent::AgentSettings s = throughTheWire(o, 0);
  ASSERT_EQ(s.workloads.size(), 2u);
  const auto* pty = s.workloads[0].get<agent::PtySpec>();
  ASSERT_NE(pty, nullptr);
  EXPECT_EQ(pty->intensity, wire::Intensity::HIGH);
  EXPECT_EQ(pty->pauseMs, 250u);
  EXPECT_EQ(pty->retryMs, 2000u);
  const auto* poll = s.workloads[1].get<agent::ExecPollSpec>();
  ASSERT_NE(poll, nullptr);
  EXPECT_EQ(poll->intervalMs, 2000u);
}
