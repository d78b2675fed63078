// Long runs (issue 14) against a real sshd: a run SIGKILLed after two
// checkpoints still yields its table and its HTML, leaves no agent and (after
// the next run) no shared memory; and the leak criteria fail a run whose
// agents leak (the test-only leak flags) and pass a clean one.
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool endsWithHtmlEnd(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text.size() >= 7 && text.compare(text.size() - 7, 7, "</html>") == 0;
}

bool isAgent(pid_t pid) { return cmdlineOf(pid).find("sshsoak-agent") != std::string::npos; }

// Kills (by PID) any agent of ours still alive when the test ends, whatever
// it asserted meanwhile.
struct AgentReaper {
  std::vector<pid_t> pids;
  ~AgentReaper() {
    for (pid_t pid : pids) {
      if (isAgent(pid)) ::kill(pid, SIGKILL);
    }
  }
};

std::map<std::string, Json> verdictOf(const Json& summary) {
  std::map<std::string, Json> byName;
  for (const auto& c : summary["verdict"]) byName[c["criterion"].get<std::string>()] = c;
  return byName;
}

}  // namespace

TEST_F(SshdTest, ARunKilledAfterTwoCheckpointsKeepsItsTableAndHtml) {
  std::string html = workDir_ + "/checkpoint.html";
  AgentReaper reaper;
  pid_t killedPid = -1;
  {
    SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "600", "--checkpoint-secs", "2", "--html", html,
                               "--warmup-secs", "1"}));
    killedPid = soak.pid();
    ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "checkpoint").size() >= 2; }, 60)) << soak.err();
    for (pid_t pid : childrenOf(soak.pid())) {
      if (isAgent(pid)) reaper.pids.push_back(pid);
    }
    ASSERT_EQ(reaper.pids.size(), 2u);
    ASSERT_EQ(::kill(soak.pid(), SIGKILL), 0);
    EXPECT_EQ(soak.wait(10), 128 + SIGKILL);
  }

  // The agents notice their supervisor's death (PR_SET_PDEATHSIG, and the
  // supervisor PID check) and are gone within moments.
  int64_t deadline = monoMs() + 10'000;
  auto anyAgentLeft = [&] {
    return std::any_of(reaper.pids.begin(), reaper.pids.end(), [](pid_t p) { return isAgent(p); });
  };
  while (anyAgentLeft() && monoMs() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(anyAgentLeft()) << "an agent outlived its SIGKILLed supervisor";

  auto lines = readJsonl(logPath_);
  auto checkpoints = linesOf(lines, "checkpoint");
  ASSERT_GE(checkpoints.size(), 2u);
  EXPECT_TRUE(linesOf(lines, "summary").empty());
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    const Json& c = checkpoints[i];
    EXPECT_EQ(c["checkpoint"], i + 1);
    EXPECT_GT(c["duration_secs"].get<double>(), 0.0);
    EXPECT_TRUE(c["verdict"].is_array() && !c["verdict"].empty()) << c.dump();
    EXPECT_TRUE(c["resources"].is_object()) << c.dump();
    EXPECT_TRUE(c["success"].is_boolean());
  }
  EXPECT_GT(checkpoints[1]["duration_secs"].get<double>(), checkpoints[0]["duration_secs"].get<double>());
  uint32_t last = checkpoints.back()["checkpoint"].get<uint32_t>();

  // The HTML report of the last checkpoint is whole (written atomically).
  ASSERT_TRUE(std::filesystem::exists(html));
  std::string page = slurp(html);
  EXPECT_TRUE(endsWithHtmlEnd(page)) << page.substr(page.size() > 200 ? page.size() - 200 : 0);
  for (const auto& e : std::filesystem::directory_iterator(workDir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "temp file left: " << e.path();
  }

  // `sshsoak report` on the killed run: the table, from its last checkpoint.
  std::string reportHtml = workDir_ + "/report.html";
  {
    SoakProcess report({"report", logPath_, "--html", reportHtml});
    EXPECT_EQ(report.wait(60), 0) << report.err();
    EXPECT_NE(report.out().find("| Run ID"), std::string::npos) << report.out();
    EXPECT_NE(report.out().find("incomplete: figures from checkpoint " + std::to_string(last)), std::string::npos)
        << report.out();
    EXPECT_TRUE(endsWithHtmlEnd(slurp(reportHtml)));
  }

  // The killed run's token bucket segment is the next run's to remove.
  bool segmentLeft = false;
  for (const auto& name : listDevShm()) {
    if (name.rfind("sshsoak-" + std::to_string(killedPid) + "-", 0) == 0) segmentLeft = true;
  }
  EXPECT_TRUE(segmentLeft) << "a SIGKILLed run cannot remove its segment; the next run must";
  auto next = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2", "--checkpoint-secs", "0"}), 60);
  EXPECT_EQ(next.exitCode, exit_code::PASSED) << next.err;
  for (const auto& name : listDevShm()) {
    EXPECT_NE(name.rfind("sshsoak-" + std::to_string(killedPid) + "-", 0), 0u) << name << " left after the next run";
  }
}

TEST_F(SshdTest, CheckpointsAreOffWithZeroAndTheSummaryIsTheirLastWord) {
  auto r = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "5", "--checkpoint-secs", "0"}), 60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  EXPECT_TRUE(linesOf(r.lines, "checkpoint").empty());
  auto s = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "5", "--checkpoint-secs", "1"}), 60);
  EXPECT_EQ(s.exitCode, exit_code::PASSED) << s.err;
  // The run's lines are after the first run's summary.
  std::vector<Json> second(std::find_if(s.lines.begin(), s.lines.end(),
                                        [](const Json& l) { return l["event"] == "summary"; }) + 1,
                           s.lines.end());
  auto checkpoints = linesOf(second, "checkpoint");
  EXPECT_GE(checkpoints.size(), 3u);
  ASSERT_EQ(second.back()["event"], "summary");
  // A checkpoint carries the summary's fields: the same criteria, by the one
  // function that builds both.
  std::vector<std::string> names, finalNames;
  for (const auto& [n, c] : verdictOf(checkpoints.back())) names.push_back(n);
  for (const auto& [n, c] : verdictOf(second.back())) finalNames.push_back(n);
  EXPECT_EQ(names, finalNames);
  for (const auto& key : {"resources", "sessions", "abnormal_ends", "duration_secs"}) {
    EXPECT_TRUE(checkpoints.back().contains(key)) << key;
  }
}

// The leak criteria (docs/reference.md, "Long runs"). Both runs: 2 sessions,
// PTY cycles twice a second, a drop at 45 s (fds must return to the first
// connect's after the reconnect), resource_sample every 2 s, warm-up 20 s,
// 80 s in all: 60 s and 30 samples per process to fit after warm-up
// (--leak-min-fit-secs 40), where a leak of 256 KiB per cycle is ~1.8 GB/h
// and one fd per cycle ~120 fds. The clean run must judge both criteria
// (pass, not n/a) under the default thresholds (1 MB/h, 0 fds).
namespace {

std::vector<std::string> leakRunArgs() {
  return {"--sessions", "2", "--duration-secs", "80", "--warmup-secs", "20", "--leak-min-fit-secs", "40",
          "--sample-interval-secs", "1", "--sample-detail-secs", "2", "--pty-interval-secs", "0.5",
          "--drop", "45", "--checkpoint-secs", "0"};
}

}  // namespace

// Two tests, not one: the leaking run's criteria fail by far whatever else
// runs beside it, so it runs with the other tests; the clean run must pass
// every criterion, CPU included, so it runs alone (tests/CMakeLists.txt).
TEST_F(SshdTest, LeakingAgentsFailTheLeakCriteria) {
  auto args = leakRunArgs();
  args.insert(args.end(), {"--leak-fd-for-testing", "--leak-kb-for-testing", "256"});
  auto leaking = runSoak(soakArgs(args), 150);
  EXPECT_EQ(leaking.exitCode, exit_code::CRITERIA_FAILED) << leaking.err;
  auto leakSummaries = linesOf(leaking.lines, "summary");
  ASSERT_EQ(leakSummaries.size(), 1u) << leaking.err;
  auto leakVerdict = verdictOf(leakSummaries[0]);
  ASSERT_TRUE(leakVerdict.count("fd_growth")) << leakSummaries[0]["verdict"].dump();
  ASSERT_TRUE(leakVerdict.count("memory_slope_mb_per_h")) << leakSummaries[0]["verdict"].dump();
  EXPECT_EQ(leakVerdict["fd_growth"]["result"], "fail") << leakVerdict["fd_growth"].dump();
  EXPECT_EQ(leakVerdict["memory_slope_mb_per_h"]["result"], "fail") << leakVerdict["memory_slope_mb_per_h"].dump();
  // About 120 cycles after warm-up: far beyond any noise.
  EXPECT_GE(leakVerdict["fd_growth"]["measured"].get<double>(), 20.0) << leakVerdict["fd_growth"].dump();
  EXPECT_GE(leakVerdict["memory_slope_mb_per_h"]["measured"].get<double>(), 100.0);
}

TEST_F(SshdTest, CleanAgentsPassTheLeakCriteria) {
  auto clean = runSoak(soakArgs(leakRunArgs()), 150);
  auto cleanSummaries = linesOf(clean.lines, "summary");
  ASSERT_EQ(cleanSummaries.size(), 1u) << clean.err;
  auto cleanVerdict = verdictOf(cleanSummaries[0]);
  EXPECT_EQ(cleanVerdict["fd_growth"]["result"], "pass") << cleanVerdict["fd_growth"].dump();
#ifdef SSHSOAK_TESTS_UNDER_ASAN
  // ASan's quarantine keeps freed memory (up to 256 MB): under it an agent's
  // anonymous memory grows with every allocation it frees, by design (228
  // MB/h measured). The memory criterion is judged here (not n/a); whether a
  // clean agent passes it is the plain build's question.
  EXPECT_TRUE(cleanVerdict["memory_slope_mb_per_h"]["measured"].is_number()) << cleanVerdict["memory_slope_mb_per_h"].dump();
#else
  EXPECT_EQ(clean.exitCode, exit_code::PASSED) << cleanSummaries[0]["verdict"].dump();
  EXPECT_EQ(cleanVerdict["memory_slope_mb_per_h"]["result"], "pass") << cleanVerdict["memory_slope_mb_per_h"].dump();
#endif
  ASSERT_TRUE(cleanVerdict.count("close_wait_sockets")) << cleanSummaries[0]["verdict"].dump();
  EXPECT_EQ(cleanVerdict["close_wait_sockets"]["result"], "pass") << cleanVerdict["close_wait_sockets"].dump();
  // The drop happened and was recovered: the fds were judged across it.
  EXPECT_EQ(linesOf(clean.lines, "reconnected").size(), 2u);
}
