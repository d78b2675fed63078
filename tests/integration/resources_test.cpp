// Resource accounting and the verdict against a real sshd: the sampled
// figures agree with ps for the same PIDs, the summary carries the
// per-process and whole-tree figures, and a threshold that is not met fails
// the run with exit code 1, naming the criterion.
#include <cstdio>
#include <map>

#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

struct PsFigures {
  long rssKb = -1;
  long cpuSecs = -1;
};

// `ps -o rss=,time= -p PID`: RSS in kB, CPU time as [DD-]HH:MM:SS.
PsFigures psOf(pid_t pid) {
  PsFigures f;
  std::string cmd = "ps -o rss=,time= -p " + std::to_string(pid);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return f;
  char line[256] = {};
  if (std::fgets(line, sizeof line, p) != nullptr) {
    long rss = 0, h = 0, m = 0, s = 0, d = 0;
    if (std::sscanf(line, "%ld %ld-%ld:%ld:%ld", &rss, &d, &h, &m, &s) == 5) {
      f = {rss, ((d * 24 + h) * 60 + m) * 60 + s};
    } else if (std::sscanf(line, "%ld %ld:%ld:%ld", &rss, &h, &m, &s) == 4) {
      f = {rss, (h * 60 + m) * 60 + s};
    }
  }
  ::pclose(p);
  return f;
}

}  // namespace

TEST_F(SshdTest, SampledRssAndCpuAgreeWithPs) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--sample-interval-secs", "1",
                             "--sample-detail-secs", "1"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  // Two ticks after both connected: the agents are in their steady state.
  size_t ticksAtConnect = linesOf(readJsonl(logPath_), "resource_sample").size();
  ASSERT_TRUE(waitForLog([&](const auto& l) { return linesOf(l, "resource_sample").size() >= ticksAtConnect + 2; },
                         30));
  Json sample = linesOf(readJsonl(logPath_), "resource_sample").back();
  std::map<pid_t, PsFigures> ps;
  for (const auto& p : sample["procs"]) ps[p[0].get<pid_t>()] = psOf(p[0].get<pid_t>());
  soak.writeStdin("q\n");
  ASSERT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();

  // [pid, session_id, cpu_pct, rss_kb, pss_kb, fds, threads, cpu_ms, role, ...]
  ASSERT_EQ(sample["procs"].size(), 3u) << sample.dump();
  EXPECT_EQ(sample["procs"][0][0], soak.pid());
  EXPECT_EQ(sample["procs"][0][1], nullptr);
  long rssSum = 0;
  for (const auto& p : sample["procs"]) {
    pid_t pid = p[0].get<pid_t>();
    long rss = p[3].get<long>(), pss = p[4].get<long>();
    double cpuSecs = p[7].get<double>() / 1000.0;
    rssSum += rss;
    ASSERT_GT(ps[pid].rssKb, 0) << "ps knew nothing of " << pid;
    EXPECT_NEAR(static_cast<double>(rss), static_cast<double>(ps[pid].rssKb), 0.10 * ps[pid].rssKb) << pid;
    EXPECT_GT(pss, 0);
    EXPECT_LE(pss, rss);
    // ps prints whole seconds (truncated) and ran up to a tick interval
    // later: within a second plus two clock ticks.
    EXPECT_NEAR(cpuSecs, static_cast<double>(ps[pid].cpuSecs), 1.02) << pid;
    EXPECT_GE(p[5].get<int>(), 3) << "fds of " << pid;
    EXPECT_GE(p[6].get<int>(), 1) << "threads of " << pid;
    EXPECT_GE(p[2].get<double>(), 0.0);
  }
  EXPECT_EQ(sample["total"]["rss_kb"].get<long>(), rssSum);

  auto summary = linesOf(readJsonl(logPath_), "summary").at(0);
  const Json& r = summary["resources"];
  EXPECT_EQ(r["supervisor"]["pid"], soak.pid());
  ASSERT_EQ(r["agents"].size(), 2u);
  for (const auto& a : r["agents"]) {
    EXPECT_GT(a["rss_peak_kb"].get<long>(), 0);
    EXPECT_GT(a["pss_peak_kb"].get<long>(), 0);
    EXPECT_FALSE(a["fds_end"].is_null());
    EXPECT_FALSE(a["cpu_mean_pct"].is_null());
  }
  EXPECT_GE(r["total"]["samples"].get<int>(), 2);
  EXPECT_EQ(summary["memory_metric"], "pss");
}

TEST_F(SshdTest, VerdictCarriesEveryCriterionAndAFailedThresholdFailsTheRun) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "3", "--max-memory-mb", "0.5"}), 60);
  EXPECT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.err;
  auto summary = linesOf(r.lines, "summary").at(0);
  EXPECT_EQ(summary["success"], false);
  std::map<std::string, Json> byName;
  for (const auto& c : summary["verdict"]) byName[c["criterion"].get<std::string>()] = c;
  ASSERT_EQ(byName.size(), 9u);
  // Sampled from the sampler's start on, with no hole: a short run passes it.
  EXPECT_EQ(byName["unsampled_secs"]["result"], "pass") << byName["unsampled_secs"].dump();
  EXPECT_EQ(byName["memory_slope_mb_per_h"]["result"], "n/a") << "3 s: too short to fit a slope";
  EXPECT_EQ(byName["abnormal_ends"]["result"], "pass");
  EXPECT_EQ(byName["abnormal_ends"]["measured"], 0.0);
  EXPECT_EQ(byName["reconnect_rate_pct"]["result"], "n/a");  // no interrupts
  EXPECT_EQ(byName["reconnect_p95_ms"]["result"], "n/a");
  EXPECT_EQ(byName["memory_mb"]["result"], "fail");
  EXPECT_EQ(byName["memory_mb"]["threshold"], 0.5);
  EXPECT_GT(byName["memory_mb"]["measured"].get<double>(), 0.5);
  // A 3 s run has at most one sample interval after its 1.5 s warm-up.
  EXPECT_NE(byName["cpu_pct"]["result"], "fail");
  EXPECT_NE(r.out.find("== verdict =="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory_mb"), std::string::npos);
  EXPECT_NE(r.out.find("FAIL"), std::string::npos);
}

TEST_F(SshdTest, SteadyStateCpuIsJudgedAfterWarmup) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "5", "--warmup-secs", "1"}), 60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto summary = linesOf(r.lines, "summary").at(0);
  Json cpu;
  for (const auto& c : summary["verdict"]) {
    if (c["criterion"] == "cpu_pct") cpu = c;
  }
  EXPECT_EQ(cpu["result"], "pass") << cpu.dump();
  EXPECT_EQ(cpu["measured"], summary["resources"]["total"]["cpu_mean_after_warmup_pct"]);
  EXPECT_NE(cpu["note"].get<std::string>().find("1 s warm-up"), std::string::npos) << cpu.dump();
}

// resource_sample v2 (docs/reference.md, "Long-run lines"): the detail
// passes' lines carry every process with its role and sockets by state, the
// local sshd's per-connection processes and totals, the harness's TCP
// counts, missed ticks and the pass's cost; the last one is read before the
// sessions are told to stop, so its sockets are still established.
TEST_F(SshdTest, ResourceSampleLinesHaveTheV2ShapeWithAgentsSshdAndSockets) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "7", "--sample-detail-secs", "2",
                             "--server-pid", std::to_string(sshd_->pid())}),
                   60);
  ASSERT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto samples = linesOf(r.lines, "resource_sample");
  // Detail passes at 2, 4 and 6 s, and the last one at 7 s.
  ASSERT_GE(samples.size(), 3u);
  ASSERT_LE(samples.size(), 5u);
  for (const auto& s : samples) {
    std::map<std::string, int> roles;
    for (const auto& p : s["procs"]) {
      ASSERT_EQ(p.size(), 12u) << p.dump();
      std::string role = p[8].get<std::string>();
      // Anonymous memory: part of the resident set, never more.
      EXPECT_GT(p[11].get<uint64_t>(), 0u) << p.dump();
      EXPECT_LE(p[11].get<uint64_t>(), p[3].get<uint64_t>()) << p.dump();
      ++roles[role];
      EXPECT_EQ(p[1].is_null(), role != "agent") << p.dump();
      EXPECT_GT(p[3].get<long>(), 0) << "rss of " << p.dump();
      EXPECT_GT(p[4].get<long>(), 0) << "pss of " << p.dump();
      EXPECT_GE(p[5].get<int>(), 3) << "fds of " << p.dump();
      EXPECT_GE(p[9].get<int>(), 0);
      EXPECT_GE(p[10].get<int>(), 0);
    }
    EXPECT_EQ(roles["supervisor"], 1) << s.dump();
    EXPECT_EQ(roles["agent"], 2) << s.dump();
    EXPECT_GE(roles["sshd"], 2) << "each session's sshd process: " << s.dump();
    EXPECT_EQ(s["server"]["processes"].get<int>(), roles["sshd"]);
    EXPECT_GT(s["server"]["rss_kb"].get<long>(), 0);
    for (const char* k : {"established", "close_wait", "time_wait"}) EXPECT_TRUE(s["tcp"][k].is_number()) << k;
    EXPECT_TRUE(s["missed"].is_number());
    EXPECT_GE(s["pass_ms"].get<double>(), 0.0);
    EXPECT_GE(s["pass_cpu_ms"].get<double>(), 0.0);
    for (const char* k : {"cpu_pct", "rss_kb", "pss_kb", "fds", "threads"}) EXPECT_TRUE(s["total"][k].is_number()) << k;
  }
  // The last line: both sessions still up (their agents' sockets and the
  // sshd's ends established), and it comes before the first agent stops.
  const Json& last = samples.back();
  EXPECT_EQ(last["tcp"]["established"], 2) << last.dump();
  EXPECT_EQ(last["tcp"]["close_wait"], 0) << last.dump();
  int agentSockets = 0, sshdSockets = 0;
  for (const auto& p : last["procs"]) {
    if (p[8] == "agent") agentSockets += p[9].get<int>();
    if (p[8] == "sshd") sshdSockets += p[9].get<int>();
  }
  EXPECT_EQ(agentSockets, 2);
  EXPECT_GE(sshdSockets, 2) << "the server's ends";
  size_t lastSample = 0, firstStop = r.lines.size();
  for (size_t i = 0; i < r.lines.size(); ++i) {
    std::string ev = r.lines[i].value("event", "");
    if (ev == "resource_sample") lastSample = i;
    if ((ev == "agent_stopped" || ev == "agent_exited") && firstStop == r.lines.size()) firstStop = i;
  }
  EXPECT_LT(lastSample, firstStop);

  auto summary = linesOf(r.lines, "summary").at(0);
  const Json& res = summary["resources"];
  // About 7 cheap passes plus the last; none missed on an idle test.
  EXPECT_GE(res["samples_taken"].get<int>(), 5);
  EXPECT_TRUE(res["samples_missed"].is_number());
  EXPECT_EQ(res["agents_retired"], 0);
  // The loop and the sampler thread (the last pass is read after that
  // thread has stopped).
  EXPECT_EQ(samples.front()["procs"][0][6], 2);
  EXPECT_EQ(res["supervisor"]["threads_end"], 1);
}
