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

TaggedReading reading(pid_t pid, std::optional<uint32_t> session, int64_t bootMs, uint64_t ticks, uint64_t rssKb,
                      uint64_t pssKb, uint32_t fds) {
  TaggedReading t;
  t.reading.pid = pid;
  t.reading.bootMs = bootMs;
  t.reading.stat.cpuTicks = ticks;
  t.reading.stat.startTicks = 0;
  t.reading.stat.threads = 1;
  t.reading.rssKb = rssKb;
  t.reading.pssKb = pssKb;
  t.reading.fds = fds;
  t.sessionId = session;
  return t;
}

}  // namespace

TEST(ResourceStats, CpuPerIntervalTotalsPeaksAndGrowth) {
  // 100 ticks/s; warm-up 2 s; one tick per second for 5 s.
  ResourceStats rs(/*startMonoMs=*/0, /*warmupMs=*/2000, /*ticksPerSec=*/100);
  int64_t boot = 100000;  // both started at boot time 0: first CPU figure is over their life
  for (int s = 1; s <= 5; ++s) {
    // The supervisor uses 5 ticks (50 ms) per second: 5 %. The agent 1 tick: 1 %,
    // its RSS grows 36 kB per second (= 129600 kB/h) and one fd opens at 4 s.
    auto sup = reading(10, std::nullopt, boot + s * 1000, 5000 + 5 * s, 4000, 2000, 20);
    auto agent = reading(11, 0, boot + s * 1000, 1000 + s, 8000 + 36 * s, 1500, s >= 4 ? 7 : 6);
    Json line = rs.addTick(s * 1000, {sup, agent});
    ASSERT_EQ(line["procs"].size(), 2u);
    if (s >= 2) {
      EXPECT_DOUBLE_EQ(line["procs"][0][2].get<double>(), 5.0);
      EXPECT_DOUBLE_EQ(line["procs"][1][2].get<double>(), 1.0);
      EXPECT_DOUBLE_EQ(line["total"]["cpu_pct"].get<double>(), 6.0);
    }
    EXPECT_EQ(line["total"]["pss_kb"], 3500);
    EXPECT_EQ(line["procs"][1][1], 0);
    EXPECT_EQ(line["procs"][0][1], nullptr);
  }
  EXPECT_EQ(rs.ticks(), 5u);
  // Steady state: the ticks at 3, 4 and 5 s, whose intervals began after the
  // 2 s warm-up; the start-up figure of the first tick is left out.
  EXPECT_DOUBLE_EQ(*rs.steadyTotalCpuPct(), 6.0);
  EXPECT_GT(*rs.meanTotalCpuPct(), 6.0);
  EXPECT_EQ(*rs.peakTotalPssKb(), 3500u);
  EXPECT_EQ(*rs.peakTotalRssKb(), 4000u + 8000u + 180u);
  Json s = rs.summary();
  Json a = s["agents"][0];
  EXPECT_EQ(a["session_id"], 0);
  EXPECT_EQ(a["fds_after_warmup"], 6);
  EXPECT_EQ(a["fds_end"], 7);
  EXPECT_DOUBLE_EQ(a["rss_growth_kb_per_hour"].get<double>(), 129600.0);
  EXPECT_DOUBLE_EQ(s["supervisor"]["rss_growth_kb_per_hour"].get<double>(), 0.0);
  EXPECT_EQ(s["supervisor"]["pid"], 10);
  // First tick: life-time figure (5005 ticks over 101 s ~ 49.6 %), then 5 % x 4.
  double first = 100.0 * 50.05 / 101.0;
  EXPECT_NEAR(s["supervisor"]["cpu_mean_pct"].get<double>(), std::round((first + 20.0) / 5.0 * 10) / 10, 0.05);
  EXPECT_NEAR(s["supervisor"]["cpu_peak_pct"].get<double>(), std::round(first * 10) / 10, 0.05);
}

TEST(ResourceStats, NoTicksMeansNothingMeasured) {
  ResourceStats rs(0, 0, 100);
  EXPECT_FALSE(rs.meanTotalCpuPct().has_value());
  EXPECT_FALSE(rs.steadyTotalCpuPct().has_value());
  EXPECT_FALSE(rs.peakTotalPssKb().has_value());
  EXPECT_EQ(rs.summary()["total"]["rss_growth_kb_per_hour"], nullptr);
}
