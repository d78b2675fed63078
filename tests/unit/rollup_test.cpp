#include "session_agent/workloads/rollup.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include "supervisor/log_line.h"

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

// A rollup as the supervisor logs it: the event filled by the rollup, turned
// into its line by the same eventToJson.
template <typename Rollup>
Json reported(Rollup& rollup, uint32_t intervalMs) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(3);
  rollup.reportAndReset(e, intervalMs);
  return eventToJson(e.asReader(), "h:22");
}

PtyCycleResult cycle(uint32_t n, uint32_t lines, uint64_t bytes, uint64_t us, std::vector<uint32_t> echoUs) {
  PtyCycleResult c;
  c.cycle = n;
  c.lines = lines;
  c.bytes = bytes;
  c.us = us;
  c.ms = static_cast<uint32_t>(us / 1000);
  c.echoUs = std::move(echoUs);
  return c;
}

// A histogram line's values back, to compare with what was recorded.
LatencyHistogram histogramOf(const Json& h) {
  LatencyHistogram out;
  EXPECT_TRUE(addHistogramJson(h, out)) << h.dump();
  return out;
}

}  // namespace

TEST(PtyRollup, SumsTheCyclesOfAnIntervalIntoOneLine) {
  PtyRollup r;
  LatencyHistogram cycles, echoes;
  for (uint32_t n = 1; n <= 50; ++n) {
    uint32_t lines = n == 7 || n == 30 ? 19 : 20;  // two short cycles
    std::vector<uint32_t> echo = {300 + n, 900 + 10 * n};
    r.add(cycle(n, lines, 24ull * lines, 1500 + 37ull * n, echo), 20);
    cycles.record(1500 + 37ull * n);
    for (auto v : echo) echoes.record(v);
  }
  EXPECT_EQ(r.cycles(), 50u);
  EXPECT_EQ(r.shortCycles(), 2u);
  Json j = reported(r, 60'000);
  EXPECT_EQ(j["event"], "pty_stats");
  EXPECT_EQ(j["session_id"], 3);
  EXPECT_EQ(j["interval_ms"], 60'000);
  EXPECT_EQ(j["cycles"], 50);
  EXPECT_EQ(j["short_cycles"], 2);
  EXPECT_EQ(j["lines"], 48 * 20 + 2 * 19);
  EXPECT_EQ(j["bytes"], 24 * (48 * 20 + 2 * 19));
  EXPECT_EQ(j["last_cycle"], 50);
  EXPECT_EQ(j["success"], false);  // short cycles
  const Json& lat = j["latency_us"];
  EXPECT_EQ(lat["cycle"]["n"], 50);
  EXPECT_EQ(lat["echo"]["n"], 100);
  // The merge of the line's counts is what was recorded, exactly.
  EXPECT_EQ(histogramOf(lat["cycle"]).valueAtPercentile(99), cycles.valueAtPercentile(99));
  EXPECT_EQ(histogramOf(lat["echo"]).max(), echoes.max());
  EXPECT_EQ(histogramOf(lat["echo"]).valueAtPercentile(50), echoes.valueAtPercentile(50));
}

TEST(PtyRollup, ResetsAfterEachReport) {
  PtyRollup r;
  r.add(cycle(1, 20, 480, 2000, {400}), 20);
  (void)reported(r, 1000);
  EXPECT_TRUE(r.empty());
  r.add(cycle(2, 20, 480, 3000, {}), 20);
  Json j = reported(r, 1000);
  EXPECT_EQ(j["cycles"], 1);
  EXPECT_EQ(j["bytes"], 480);
  EXPECT_EQ(j["last_cycle"], 2);
  EXPECT_EQ(j["success"], true);
  EXPECT_EQ(j["latency_us"]["cycle"]["n"], 1);
  EXPECT_EQ(j["latency_us"]["echo"]["n"], 0);  // the first interval's echo is not carried over
}

TEST(ExecPollRollup, SumsPollsKeepsTheMaxCpuAndTheLastMemoryAndDisk) {
  ExecPollRollup r;
  r.add(12'000, 3000, 10.0, 40.0, 70.0);
  r.add(15'000, 3100, 55.5, 41.0, 71.0);
  r.add(9'000, 2900, 20.0, 42.5, 72.5);
  Json j = reported(r, 60'000);
  EXPECT_EQ(j["event"], "exec_poll_stats");
  EXPECT_EQ(j["interval_ms"], 60'000);
  EXPECT_EQ(j["polls"], 3);
  EXPECT_EQ(j["bytes"], 9000);
  EXPECT_DOUBLE_EQ(j["cpu_busy_pct_max"].get<double>(), 55.5);
  EXPECT_DOUBLE_EQ(j["mem_used_pct"].get<double>(), 42.5);
  EXPECT_DOUBLE_EQ(j["disk_used_pct"].get<double>(), 72.5);
  LatencyHistogram rtt = histogramOf(j["latency_us"]["rtt"]);
  EXPECT_EQ(rtt.count(), 3u);
  EXPECT_EQ(rtt.max(), LatencyHistogram::highestEquivalent(LatencyHistogram::indexOf(15'000)));
  EXPECT_TRUE(r.empty());
  r.add(1000, 10, 1.0, 2.0, 3.0);
  Json k = reported(r, 5000);
  EXPECT_EQ(k["polls"], 1);
  EXPECT_DOUBLE_EQ(k["cpu_busy_pct_max"].get<double>(), 1.0);  // the max is the interval's, not the run's
}

TEST(RollupPeriod, IsDueAfterItsPeriodAndRestartsFromTheSend) {
  RollupPeriod p;
  p.begin(1000, 60'000);
  EXPECT_FALSE(p.due(60'999));
  EXPECT_TRUE(p.due(61'000));
  EXPECT_EQ(p.dueMs(), 61'000);
  EXPECT_EQ(p.elapsedMs(61'250), 60'250u);
  // Sent late (a stalled loop): the next interval starts at the send, so
  // intervals never overlap and none is caught up on.
  p.next(61'250);
  EXPECT_EQ(p.dueMs(), 121'250);
  EXPECT_EQ(p.elapsedMs(70'000), 8750u);
  // A partial interval (the session lost, the agent stopping) says its length.
  EXPECT_EQ(p.elapsedMs(61'250), 0u);
}

TEST(PtyCycleParser, TimesABurstOnTheMicrosecondClock) {
  PtyCycleParser p;
  std::string begin = "@@sshsoak-begin 4\r\nline\r\n";
  std::string end = "@@sshsoak-end 4\r\n";
  EXPECT_TRUE(p.feed(begin.data(), begin.size(), 10, 10'000).empty());
  auto cycles = p.feed(end.data(), end.size(), 11, 11'437);
  ASSERT_EQ(cycles.size(), 1u);
  EXPECT_EQ(cycles[0].ms, 1u);
  EXPECT_EQ(cycles[0].us, 1437u);
}
