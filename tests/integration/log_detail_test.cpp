// Issue 14, a log that stays small: PTY cycles and exec polls are rolled up
// per session (pty_stats, exec_poll_stats) by default, and with
// --log-detail full the per-cycle lines come too, telling the same counts.
// Against the fixture's real sshd.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>

#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

struct PerSession {
  uint64_t cycleLines = 0, cycleBytes = 0, echoSamples = 0, pollLines = 0;
  uint64_t statsCycles = 0, statsBytes = 0, statsEcho = 0, statsPolls = 0, statsRtt = 0;
  size_t ptyStatsLines = 0;
};

std::map<int, PerSession> tally(const std::vector<Json>& lines) {
  std::map<int, PerSession> m;
  for (const auto& l : lines) {
    if (!l["session_id"].is_number()) continue;
    PerSession& s = m[l["session_id"].get<int>()];
    const std::string event = l["event"].get<std::string>();
    if (event == "pty_cycle") {
      ++s.cycleLines;
      s.cycleBytes += l["bytes"].get<uint64_t>();
      if (l.contains("echo_us")) s.echoSamples += l["echo_us"].size();
    } else if (event == "exec_poll") {
      ++s.pollLines;
    } else if (event == "pty_stats") {
      ++s.ptyStatsLines;
      s.statsCycles += l["cycles"].get<uint64_t>();
      s.statsBytes += l["bytes"].get<uint64_t>();
      s.statsEcho += l["latency_us"]["echo"]["n"].get<uint64_t>();
      EXPECT_EQ(l["latency_us"]["cycle"]["n"], l["cycles"]) << l.dump();
    } else if (event == "exec_poll_stats") {
      s.statsPolls += l["polls"].get<uint64_t>();
      s.statsRtt += l["latency_us"]["rtt"]["n"].get<uint64_t>();
    }
  }
  return m;
}

// The run ended with its summary (the verdict of a 5-second run on a busy
// machine is not what these tests are about).
bool ended(int exitCode) { return exitCode == exit_code::PASSED || exitCode == exit_code::CRITERIA_FAILED; }

const Json& summaryOf(const std::vector<Json>& lines) {
  static const Json none;
  for (const auto& l : lines) {
    if (l["event"] == "summary") return l;
  }
  return none;
}

// Processes under the sshd running the PTY workload's remote loop (its
// `sh -c` command names the burst marker).
int remoteLoops(pid_t sshd) {
  int n = 0;
  std::vector<pid_t> todo = {sshd};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    for (pid_t k : childrenOf(p)) {
      if (cmdlineOf(k).find("@@sshsoak-begin") != std::string::npos) ++n;
      todo.push_back(k);
    }
  }
  return n;
}

}  // namespace

TEST_F(SshdTest, TheDefaultLogHasRollupsAndNoPerCycleLines) {
  auto r = runSoak(soakArgs({"--sessions", "3", "--duration-secs", "5", "--pty-interval-secs", "0.2",
                             "--poll-interval-secs", "1", "--rollup-secs", "2"}));
  ASSERT_TRUE(ended(r.exitCode)) << r.exitCode << r.err;
  EXPECT_TRUE(linesOf(r.lines, "pty_cycle").empty());
  EXPECT_TRUE(linesOf(r.lines, "exec_poll").empty());
  const Json runStarted = linesOf(r.lines, "run_started").at(0);
  EXPECT_EQ(runStarted["log_detail"], "rollup");
  EXPECT_EQ(runStarted["rollup_secs"], 2);
  auto per = tally(r.lines);
  const Json& summary = summaryOf(r.lines);
  ASSERT_TRUE(summary.is_object());
  for (int i = 0; i < 3; ++i) {
    const PerSession& s = per[i];
    // 5 s with 2 s rollups: two full intervals and the partial one at the stop.
    EXPECT_GE(s.ptyStatsLines, 2u) << "session " << i;
    EXPECT_GE(s.statsCycles, 8u) << "session " << i;
    EXPECT_GE(s.statsPolls, 3u) << "session " << i;
    EXPECT_EQ(s.statsRtt, s.statsPolls) << "session " << i;
    EXPECT_GT(s.statsEcho, 0u) << "session " << i;
    // The summary counts from the rollups.
    EXPECT_EQ(summary["per_session"][i]["pty_cycles"].get<uint64_t>(), s.statsCycles) << "session " << i;
    EXPECT_EQ(summary["per_session"][i]["exec_polls"].get<uint64_t>(), s.statsPolls) << "session " << i;
  }
  // Each session's last rollup comes before its agent_stopped line.
  for (int i = 0; i < 3; ++i) {
    size_t lastStats = 0, stopped = 0;
    for (size_t k = 0; k < r.lines.size(); ++k) {
      if (r.lines[k]["session_id"] != i) continue;
      if (r.lines[k]["event"] == "pty_stats") lastStats = k;
      if (r.lines[k]["event"] == "agent_stopped") stopped = k;
    }
    EXPECT_LT(lastStats, stopped) << "session " << i;
  }
}

TEST_F(SshdTest, AFullLogHasBothAndTheyAgree) {
  auto r = runSoak(soakArgs({"--log-detail", "full", "--sessions", "2", "--duration-secs", "5",
                             "--pty-interval-secs", "0.2", "--poll-interval-secs", "1", "--rollup-secs", "2"}));
  ASSERT_TRUE(ended(r.exitCode)) << r.exitCode << r.err;
  EXPECT_EQ(linesOf(r.lines, "run_started").at(0)["log_detail"], "full");
  auto per = tally(r.lines);
  const Json& summary = summaryOf(r.lines);
  ASSERT_TRUE(summary.is_object());
  uint64_t echoes = 0;
  for (int i = 0; i < 2; ++i) {
    const PerSession& s = per[i];
    EXPECT_GE(s.cycleLines, 8u) << "session " << i;
    EXPECT_EQ(s.statsCycles, s.cycleLines) << "session " << i;
    EXPECT_EQ(s.statsBytes, s.cycleBytes) << "session " << i;
    EXPECT_EQ(s.statsEcho, s.echoSamples) << "session " << i;
    EXPECT_EQ(s.statsPolls, s.pollLines) << "session " << i;
    // Counted once, not twice.
    EXPECT_EQ(summary["per_session"][i]["pty_cycles"].get<uint64_t>(), s.cycleLines) << "session " << i;
    EXPECT_EQ(summary["per_session"][i]["exec_polls"].get<uint64_t>(), s.pollLines) << "session " << i;
    echoes += s.echoSamples;
  }
  EXPECT_EQ(summary["workload"]["echo"]["n"].get<uint64_t>(), echoes);
}

// A dropped session's partial interval is sent before its disconnect: the
// counts of the lost connection are all there, and the reconnect starts a
// new interval. The remote loop of the lost session does not live on.
TEST_F(SshdTest, ADropSendsThePartialRollupFirstAndLeavesNoRemoteLoop) {
  SoakProcess soak(soakArgs({"--log-detail", "full", "--sessions", "2", "--duration-secs", "9", "--drop", "3",
                             "--pty-interval-secs", "0.2", "--poll-interval-secs", "1", "--rollup-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "reconnected").size() >= 2; }, 20)) << soak.err();
  // The old connections' loops end (SIGHUP, or their next echo fails), the
  // new ones run: one per session.
  int loops = -1;
  for (int t = 0; t < 50 && loops != 2; ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    loops = remoteLoops(sshd_->pid());
  }
  EXPECT_EQ(loops, 2) << "remote PTY loops under the sshd after a drop and reconnect of 2 sessions";
  ASSERT_TRUE(ended(soak.wait(30))) << soak.err();
  auto lines = readJsonl(logPath_);
  auto per = tally(lines);
  for (int i = 0; i < 2; ++i) {
    const PerSession& s = per[i];
    // --rollup-secs 60: only the flushes, at the drop and at the stop.
    EXPECT_EQ(s.ptyStatsLines, 2u) << "session " << i;
    EXPECT_EQ(s.statsCycles, s.cycleLines) << "session " << i;
    EXPECT_EQ(s.statsPolls, s.pollLines) << "session " << i;
    // The first rollup holds exactly the cycles before the drop, and comes
    // before disconnect_injected.
    uint64_t cyclesBefore = 0;
    bool dropped = false;
    for (const auto& l : lines) {
      if (l["session_id"] != i) continue;
      if (l["event"] == "disconnect_injected") dropped = true;
      if (l["event"] == "pty_cycle" && !dropped) ++cyclesBefore;
      if (l["event"] == "pty_stats") {
        EXPECT_FALSE(dropped) << "the partial rollup comes before the disconnect";
        EXPECT_EQ(l["cycles"].get<uint64_t>(), cyclesBefore);
        break;
      }
    }
  }
  EXPECT_EQ(remoteLoops(sshd_->pid()), 0) << "remote PTY loops left after the run";
}
