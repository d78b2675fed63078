#include "supervisor/analysis/run_stats.h"

#include <capnp/message.h>
#include <capnp/schema.h>
#include <gtest/gtest.h>
#include <signal.h>

using namespace sshsoak;

namespace {

void feed(RunStats& stats, uint32_t session, auto fill) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  fill(e);
  stats.onEvent(e.asReader());
}

}  // namespace

TEST(Percentile, MatchesThePredecessorsOneLiner) {
  // times.sort(); p50=times[len//2]; p95=times[int(len*0.95)]
  std::vector<int64_t> t = {900, 100, 300, 500, 700, 200, 400, 600, 800, 1000};
  EXPECT_EQ(*percentile(t, 0.50), 600);
  EXPECT_EQ(*percentile(t, 0.95), 1000);
  EXPECT_EQ(*percentile({42}, 0.95), 42);
  EXPECT_FALSE(percentile({}, 0.5).has_value());
}

TEST(RunStats, CleanRunHasNoAbnormalEnds) {
  RunStats stats({"h:22", "h:22"});
  for (uint32_t i = 0; i < 2; ++i) {
    feed(stats, i, [](auto e) { e.initConnected(); });
    stats.onAgentExit(i, ExitInfo{}, true);
  }
  EXPECT_EQ(stats.abnormalEnds(), 0u);
  Json s = stats.summary(0, 10.0, 5);
  EXPECT_EQ(s["event"], "summary");
  EXPECT_EQ(s["abnormal_ends"], 0);
  EXPECT_EQ(s["global_reconnect_rate_pct"], nullptr);
  EXPECT_EQ(s["success"], true);
}

TEST(RunStats, EachKindOfAbnormalEndCounts) {
  RunStats stats({"a:22", "b:22", "c:22", "d:22"});
  feed(stats, 0, [](auto e) { e.initConnectFailed().setCategory(wire::FailureCategory::AUTH); });
  feed(stats, 1, [](auto e) { e.initConnected(); });
  feed(stats, 1, [](auto e) { e.initDisconnected().setCause(wire::DisconnectCause::RESET); });
  feed(stats, 2, [](auto e) { e.initConnected(); });
  ExitInfo killed;
  killed.signaled = true;
  killed.signal = SIGKILL;
  stats.onAgentExit(2, killed, false);
  feed(stats, 3, [](auto e) { e.initConnected(); });
  EXPECT_EQ(stats.abnormalEnds(), 3u);
  EXPECT_NE(stats.abnormalReason(stats.session(0)).find("never connected"), std::string::npos);
  EXPECT_NE(stats.abnormalReason(stats.session(1)).find("without recovery"), std::string::npos);
  EXPECT_NE(stats.abnormalReason(stats.session(2)).find("SIGKILL"), std::string::npos);
  EXPECT_EQ(stats.abnormalReason(stats.session(3)), "");
  EXPECT_EQ(stats.summary(0, 1, 1)["success"], false);
}

TEST(RunStats, ReconnectFiguresFromReconnectedEvents) {
  RunStats stats({"h:22"});
  feed(stats, 0, [](auto e) { e.initConnected(); });
  for (int64_t ms : {1000, 3000, 2000}) {
    feed(stats, 0, [](auto e) { e.initDisconnected(); });
    feed(stats, 0, [ms](auto e) {
      e.initReconnected();
      e.setElapsedMs(ms);
    });
  }
  feed(stats, 0, [](auto e) { e.initDisconnected(); });
  Json s = stats.summary(0, 1, 1);
  EXPECT_EQ(s["interrupts"], 4);
  EXPECT_EQ(s["reconnects"], 3);
  EXPECT_DOUBLE_EQ(s["global_reconnect_rate_pct"].get<double>(), 75.0);
  EXPECT_EQ(s["global_reconnect_p50_ms"], 2000);
  EXPECT_EQ(s["global_reconnect_p95_ms"], 3000);
  EXPECT_EQ(s["global_reconnect_max_ms"], 3000);
}

TEST(ExitInfo, DecodesExitCodesSignalsAndCores) {
  EXPECT_EQ(decodeWaitStatus(0).text(), "exit 0");
  EXPECT_TRUE(decodeWaitStatus(0).clean());
  EXPECT_EQ(decodeWaitStatus(3 << 8).text(), "exit 3");
  EXPECT_EQ(decodeWaitStatus(SIGKILL).text(), "signal 9 (SIGKILL)");
  EXPECT_EQ(decodeWaitStatus(SIGABRT | 0x80).text(), "signal 6 (SIGABRT), core dumped");
  EXPECT_FALSE(decodeWaitStatus(SIGKILL).clean());
}
