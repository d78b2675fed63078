// The two commands bench/driver reads its workload commands and percentiles
// from, run as the driver runs them: the real binaries, stdout as JSON.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "session_agent/describe.h"
#include "supervisor/analysis/stats.h"

namespace {

struct Output {
  int exitCode = -1;
  std::string stdoutText;
};

Output run(const std::string& cmd) {
  Output out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.stdoutText.append(buf, n);
  int status = ::pclose(p);
  out.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace

TEST(BenchCommands, AgentDescribesItsWorkloads) {
  Output out = run(std::string(SSHSOAK_AGENT_BIN) + " --describe-workloads --pty-pause-ms 1000");
  ASSERT_EQ(out.exitCode, 0);
  auto j = nlohmann::json::parse(out.stdoutText);  // one JSON object, nothing else on stdout
  EXPECT_EQ(j, nlohmann::json::parse(sshsoak::agent::describeWorkloadsJson(1000)));
  EXPECT_EQ(run(std::string(SSHSOAK_AGENT_BIN) + " --describe-workloads --pty-pause-ms x 2>/dev/null").exitCode, 100);
}

TEST(BenchCommands, SupervisorComputesPercentiles) {
  Output out = run("printf '900\\n100\\n300\\n500\\n700\\n200\\n400\\n600\\n800\\n1000\\n' | " +
                   std::string(SSHSOAK_BIN) + " percentiles 0.5 0.95 1");
  ASSERT_EQ(out.exitCode, 0);
  auto j = nlohmann::json::parse(out.stdoutText);
  std::vector<int64_t> values = {900, 100, 300, 500, 700, 200, 400, 600, 800, 1000};
  EXPECT_EQ(j["n"], 10);
  EXPECT_EQ(j["p50"], *sshsoak::percentile(values, 0.5));
  EXPECT_EQ(j["p95"], *sshsoak::percentile(values, 0.95));
  EXPECT_EQ(j["p100"], 1000);

  out = run(std::string(SSHSOAK_BIN) + " percentiles 0.5 </dev/null");
  ASSERT_EQ(out.exitCode, 0);
  EXPECT_EQ(nlohmann::json::parse(out.stdoutText), nlohmann::json::parse(R"({"n":0,"p50":null})"));
  EXPECT_EQ(run("echo 1.5 | " + std::string(SSHSOAK_BIN) + " percentiles 0.5 2>/dev/null").exitCode, 3);
  EXPECT_EQ(run(std::string(SSHSOAK_BIN) + " percentiles 95 </dev/null 2>/dev/null").exitCode, 2);
}
