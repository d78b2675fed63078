#include "supervisor/run/resource_stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "supervisor/run/proc_sample.h"

using namespace sshsoak;

TEST(LeastSquaresSlope, ExactLineAndNoise) {
  EXPECT_DOUBLE_EQ(*leastSquaresSlope({{0, 10}, {1, 12}, {2, 14}, {3, 16}}), 2.0);
  // Symmetric noise around y = 5x + 1 does not move the slope.
  EXPECT_NEAR(*leastSquaresSlope({{0, 2}, {1, 5}, {2, 12}, {3, 15}}), 4.6, 1e-9);
  EXPECT_DOUBLE_EQ(*leastSquaresSlope({{0, 7}, {1, 7}, {2, 7}}), 0.0);
  EXPECT_FALSE(leastSquaresSlope({}).has_value());
  EXPECT_FALSE(leastSquaresSlope({{1, 5}}).has_value());
  EXPECT_FALSE(leastSquaresSlope({{1, 5}, {1, 9}}).has_value());  // no spread in x
}

TEST(ProcParsers, StatWithSpacesAndParensInTheName) {
  // Fields from a real /proc/PID/stat with comm "a) b": utime 7, stime 3,
  // num_threads 2, starttime 12345.
  std::string stat =
      "4242 (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 12345 10000000 500 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  auto f = parseProcStat(stat);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->cpuTicks, 10u);
  EXPECT_EQ(f->threads, 2u);
  EXPECT_EQ(f->startTicks, 12345u);
  EXPECT_EQ(f->ppid, 1);
  EXPECT_EQ(f->childCpuTicks, 0u);
  auto withChildren = parseProcStat(
      "77 (sshd) S 5 77 77 0 -1 4194560 100 0 0 0 7 3 40 2 20 0 1 0 12345 10000000 500 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0");
  ASSERT_TRUE(withChildren.has_value());
  EXPECT_EQ(withChildren->ppid, 5);
  EXPECT_EQ(withChildren->cpuTicks, 10u);
  EXPECT_EQ(withChildren->childCpuTicks, 42u);
  EXPECT_FALSE(parseProcStat("").has_value());
  EXPECT_FALSE(parseProcStat("1 (x) S 1 2").has_value());
}

TEST(ProcParsers, KbFields) {
  std::string status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
  EXPECT_EQ(parseKbField(status, "VmRSS"), 5120u);
  EXPECT_FALSE(parseKbField(status, "VmSwap").has_value());
  std::string rollup = "55d0-7ffd ---p 00000000 00:00 0   [rollup]\nRss:  4000 kB\nPss:  1234 kB\nPss_Anon: 800 kB\n";
  EXPECT_EQ(parseKbField(rollup, "Pss"), 1234u);
  EXPECT_EQ(parseKbField(rollup, "Pss_Anon"), 800u);
}

TEST(ProcParsers, ReadsThisProcess) {
  auto r = readProc(::getpid());
  ASSERT_TRUE(r.has_value());
  EXPECT_GT(r->rssKb, 0u);
  EXPECT_GT(r->pssKb, 0u);
  EXPECT_LE(r->pssKb, r->rssKb + 64);
  EXPECT_GE(r->fds, 3u);
  EXPECT_GE(r->stat.threads, 1u);
  EXPECT_FALSE(readProc(999999999).has_value());
}

namespace {

ProcFigures proc(pid_t pid, std::optional<uint32_t> session, int64_t bootMs, uint64_t ticks, uint64_t rssKb,
                 uint64_t pssKb, uint32_t fds, ProcRole role = ProcRole::AGENT) {
  ProcFigures f;
  f.pid = pid;
  f.role = session ? role : (role == ProcRole::SSHD ? ProcRole::SSHD : ProcRole::SUPERVISOR);
  f.sessionId = session ? static_cast<int64_t>(*session) : -1;
  f.bootMs = bootMs;
  f.cpuTicks = ticks;
  f.threads = 1;
  f.rssKb = rssKb;
  f.pssKb = pssKb;
  f.fds = fds;
  return f;
}

SamplePass pass(int64_t monoMs, bool detail, std::vector<ProcFigures> procs) {
  SamplePass p;
  p.monoMs = monoMs;
  p.detail = detail;
  p.procs = std::move(procs);
  return p;
}

}  // namespace

TEST(ResourceStats, CpuPerPassTotalsPeaksAndGrowth) {
  // 100 ticks/s; warm-up 2 s; one pass per second for 5 s, all detail passes.
  ResourceStats rs(/*startMonoMs=*/0, /*warmupMs=*/2000, /*ticksPerSec=*/100);
  int64_t boot = 100000;  // both started at boot time 0: first CPU figure is over their life
  for (int s = 1; s <= 5; ++s) {
    // The supervisor uses 5 ticks (50 ms) per second: 5 %. The agent 1 tick: 1 %,
    // its RSS grows 36 kB per second (= 129600 kB/h) and one fd opens at 4 s.
    auto sup = proc(10, std::nullopt, boot + s * 1000, 5000 + 5 * s, 4000, 2000, 20);
    auto agent = proc(11, 0, boot + s * 1000, 1000 + s, 8000 + 36 * s, 1500, s >= 4 ? 7 : 6);
    auto line = rs.addPass(pass(s * 1000, true, {sup, agent}));
    ASSERT_TRUE(line.has_value());
    ASSERT_EQ((*line)["procs"].size(), 2u);
    if (s >= 2) {
      EXPECT_DOUBLE_EQ((*line)["procs"][0][2].get<double>(), 5.0);
      EXPECT_DOUBLE_EQ((*line)["procs"][1][2].get<double>(), 1.0);
      EXPECT_DOUBLE_EQ((*line)["total"]["cpu_pct"].get<double>(), 6.0);
    }
    EXPECT_EQ((*line)["total"]["pss_kb"], 3500);
    EXPECT_EQ((*line)["procs"][1][1], 0);
    EXPECT_EQ((*line)["procs"][1][8], "agent");
    EXPECT_EQ((*line)["procs"][0][1], nullptr);
    EXPECT_EQ((*line)["procs"][0][8], "supervisor");
  }
  EXPECT_EQ(rs.ticks(), 5u);
  // Steady state: the passes at 3, 4 and 5 s, whose intervals began after the
  // 2 s warm-up; the start-up figure of the first pass is left out.
  EXPECT_DOUBLE_EQ(*rs.steadyTotalCpuPct(), 6.0);
  EXPECT_GT(*rs.meanTotalCpuPct(), 6.0);
  EXPECT_EQ(*rs.peakTotalPssKb(), 3500u);
  EXPECT_EQ(*rs.peakTotalRssKb(), 4000u + 8000u + 180u);
  Json s = rs.summary();
  Json a = s["agents"][0];
  EXPECT_EQ(a["session_id"], 0);
  EXPECT_EQ(a["fds_after_warmup"], 6);
  EXPECT_EQ(a["fds_end"], 7);
  EXPECT_NEAR(a["rss_growth_kb_per_hour"].get<double>(), 129600.0, 0.05);
  EXPECT_DOUBLE_EQ(s["supervisor"]["rss_growth_kb_per_hour"].get<double>(), 0.0);
  EXPECT_EQ(s["supervisor"]["pid"], 10);
  // First pass: life-time figure (5005 ticks over 101 s ~ 49.6 %), then 5 % x 4.
  double first = 100.0 * 50.05 / 101.0;
  EXPECT_NEAR(s["supervisor"]["cpu_mean_pct"].get<double>(), std::round((first + 20.0) / 5.0 * 10) / 10, 0.05);
  EXPECT_NEAR(s["supervisor"]["cpu_peak_pct"].get<double>(), std::round(first * 10) / 10, 0.05);
}

TEST(ResourceStats, CheapPassesFeedCpuAndDetailPassesWriteLinesOverTheirOwnInterval) {
  ResourceStats rs(0, 0, 100);
  int64_t boot = 50000;
  // Cheap passes each second; the agent burns 2 ticks/s for 4 s, then 10 ticks/s.
  uint64_t ticks = 0;
  std::optional<Json> line;
  for (int s = 1; s <= 10; ++s) {
    ticks += s <= 4 ? 2 : 10;
    bool detail = s == 1 || s == 10;
    auto agent = proc(20, 3, boot + s * 1000, ticks, 6000, detail ? 2000 : 0, detail ? 9 : 0);
    line = rs.addPass(pass(s * 1000, detail, {agent}));
    EXPECT_EQ(line.has_value(), detail) << s;
  }
  // The line at 10 s: CPU over the 9 s since the line at 1 s: (6 + 60) ticks.
  EXPECT_NEAR((*line)["procs"][0][2].get<double>(), 100.0 * 0.66 / 9.0, 0.05);
  EXPECT_EQ((*line)["procs"][0][5], 9);
  EXPECT_EQ(rs.ticks(), 10u);
  EXPECT_DOUBLE_EQ(rs.total().cpuPeak, 10.0);  // the cheap passes see the peak
  EXPECT_EQ(rs.lastRssKb(), 6000u);
  EXPECT_EQ(rs.lastPssKb(), 2000u);
  // The run's last pass, 5 ms later: one clock tick in it would read as
  // 200 %; it brings PSS and fds, not a CPU figure.
  double mean = *rs.meanTotalCpuPct();
  SamplePass last = pass(10005, true, {proc(20, 3, boot + 10005, ticks + 1, 6100, 2100, 10)});
  last.last = true;
  ASSERT_TRUE(rs.addPass(last).has_value());
  EXPECT_DOUBLE_EQ(rs.total().cpuPeak, 10.0);
  EXPECT_DOUBLE_EQ(*rs.meanTotalCpuPct(), mean);
  EXPECT_EQ(rs.total().pssPeakKb, 2100u);
  EXPECT_EQ(rs.summary()["agents"][0]["fds_end"], 10);
}

TEST(ResourceStats, LineCarriesServerTcpMissedAndPassCost) {
  ResourceStats rs(0, 0, 100);
  SamplePass p = pass(10000, true,
                      {proc(10, std::nullopt, 10000, 100, 4000, 2000, 30),
                       proc(11, 0, 10000, 50, 6000, 3000, 8), proc(500, std::nullopt, 10000, 20, 3000, 1000, 10, ProcRole::SSHD),
                       proc(501, std::nullopt, 10000, 30, 2000, 500, 12, ProcRole::SSHD)});
  p.procs[1].tcpEstablished = 1;
  p.procs[2].tcpEstablished = 1;
  p.procs[3].tcpCloseWait = 2;
  p.serverKnown = true;
  p.tcp = {1, 0, 4};
  p.missedSinceDetail = 3;
  p.passMs = 12.34;
  p.passCpuMs = 4.56;
  p.cpuMsTotal = 789.4;
  p.taken = 40;
  p.missed = 5;
  Json j = *rs.addPass(p);
  ASSERT_EQ(j["procs"].size(), 4u);
  EXPECT_EQ(j["procs"][2][8], "sshd");
  EXPECT_EQ(j["procs"][2][1], nullptr);
  EXPECT_EQ(j["procs"][1][9], 1);
  EXPECT_EQ(j["procs"][3][10], 2);
  EXPECT_EQ(j["server"]["processes"], 2);
  EXPECT_EQ(j["server"]["rss_kb"], 5000);
  EXPECT_EQ(j["server"]["pss_kb"], 1500);
  EXPECT_EQ(j["server"]["fds"], 22);
  EXPECT_EQ(j["total"]["rss_kb"], 10000) << "the total is the harness's: supervisor + agents";
  EXPECT_EQ(j["tcp"], Json({{"established", 1}, {"close_wait", 0}, {"time_wait", 4}}));
  EXPECT_EQ(j["missed"], 3);
  EXPECT_DOUBLE_EQ(j["pass_ms"].get<double>(), 12.3);
  EXPECT_DOUBLE_EQ(j["pass_cpu_ms"].get<double>(), 4.6);
  Json s = rs.summary();
  EXPECT_EQ(s["samples_taken"], 40);
  EXPECT_EQ(s["samples_missed"], 5);
  EXPECT_EQ(s["sampler_cpu_ms"], 789);
  EXPECT_EQ(s["agents"].size(), 1u) << "the sshd's processes are not the harness's";
}

TEST(ResourceStats, ExitedAgentsEntriesAreCapped) {
  // Cap of 4 dead agents: 100 restarts of one session keep at most 5 entries.
  ResourceStats rs(0, 0, 100, /*maxDeadAgents=*/4);
  for (int i = 0; i < 100; ++i) {
    rs.addPass(pass(1000 * (i + 1), false, {proc(10, std::nullopt, 1000 * i, 1, 100, 0, 0),
                                             proc(1000 + i, 0, 1000 * i, 1, 100, 0, 0)}));
    EXPECT_LE(rs.trackedProcesses(), 2u + 4u);
  }
  Json s = rs.summary();
  EXPECT_EQ(s["agents"].size(), 5u);
  EXPECT_EQ(s["agents_retired"], 95);
  EXPECT_EQ(s["agents"].back()["pid"], 1099);
}

TEST(OnlineSlope, MatchesLeastSquares) {
  std::vector<std::pair<double, double>> pts;
  OnlineSlope o;
  for (int i = 0; i < 1000; ++i) {
    double x = 1.0 + i / 3600.0, y = 50000 + 3.5 * i + ((i * 7919) % 13) - 6;
    pts.emplace_back(x, y);
    o.add(x, y);
  }
  EXPECT_NEAR(*o.slope(), *leastSquaresSlope(pts), 1e-6 * std::abs(*leastSquaresSlope(pts)));
  OnlineSlope flat;
  flat.add(2, 5);
  flat.add(2, 9);
  EXPECT_FALSE(flat.slope().has_value());
}

TEST(ResourceStats, NoTicksMeansNothingMeasured) {
  ResourceStats rs(0, 0, 100);
  EXPECT_FALSE(rs.meanTotalCpuPct().has_value());
  EXPECT_FALSE(rs.steadyTotalCpuPct().has_value());
  EXPECT_FALSE(rs.peakTotalPssKb().has_value());
  EXPECT_EQ(rs.summary()["total"]["rss_growth_kb_per_hour"], nullptr);
}
