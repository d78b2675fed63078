// --fault against the fixture's real sshd, no root needed for the faults
// themselves: each kind changes what it should in the sessions' own lines,
// and without --fault no relay is in the path.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "netns.h"
#include "shared/clock.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

bool hasProxyChild(pid_t soak) {
  for (pid_t child : childrenOf(soak)) {
    if (cmdlineOf(child).find("sshsoak-proxy") != std::string::npos) return true;
  }
  return false;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int64_t runStartNs(const std::vector<Json>& lines) { return tsNs(linesOf(lines, "run_started").at(0)); }

}  // namespace

class NetFault : public SshdTest {
 protected:
  // Short timings: keepalive budget 2 s, quick reconnects.
  std::vector<std::string> faultArgs(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"--keepalive-interval-secs", "1", "--keepalive-count-max", "2",
                                     "--reconnect-timeout-secs", "3", "--max-reconnect-attempts", "20",
                                     "--backoff-base-ms", "100", "--backoff-cap-ms", "500",
                                     "--poll-interval-secs", "1", "--warmup-secs", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return soakArgs(args);
  }
};

TEST_F(NetFault, WithoutFaultNoRelayIsInThePathWithOneItIs) {
  {
    SoakProcess soak(faultArgs({"--sessions", "2", "--duration-secs", "3"}));
    ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 20)) << soak.err();
    EXPECT_FALSE(hasProxyChild(soak.pid()));
    EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();
    auto lines = readJsonl(logPath_);
    EXPECT_TRUE(linesOf(lines, "net_fault_started").empty());
    EXPECT_EQ(linesOf(lines, "run_started").at(0)["net_faults"], Json::array());
  }
  ::unlink(logPath_.c_str());
  SoakProcess soak(faultArgs({"--sessions", "2", "--duration-secs", "3", "--fault", "latency=1ms@0"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 20)) << soak.err();
  EXPECT_TRUE(hasProxyChild(soak.pid()));
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();
  EXPECT_TRUE(childrenOf(soak.pid()).empty());
  auto lines = readJsonl(logPath_);
  auto started = linesOf(lines, "net_fault_started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0]["fault_id"], 0);
  EXPECT_EQ(started[0]["occurrence"], 1);
  EXPECT_EQ(started[0]["kind"], "latency");
  EXPECT_EQ(started[0]["spec"], "latency=1ms@0");
  EXPECT_EQ(started[0]["sessions"], Json::array({0}));
  EXPECT_EQ(started[0]["planned_ms"], nullptr);
  auto ended = linesOf(lines, "net_fault_ended");
  ASSERT_EQ(ended.size(), 1u) << "the open window ends with the run";
  EXPECT_GE(ended[0]["connections"].get<int>(), 1);
  EXPECT_GE(ended[0]["duration_ms"].get<int>(), 2000);
  // The lines name the real target, not the relay.
  for (const auto& c : linesOf(lines, "connected")) EXPECT_EQ(c["host"], sshd_->target());
}

TEST_F(NetFault, LatencyShowsInExecRoundTrips) {
  auto r = runSoak(faultArgs({"--sessions", "2", "--duration-secs", "7", "--log-detail", "full", "--fault",
                              "latency=40ms@0"}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  std::map<int, std::vector<double>> rtt;
  for (int s : {0, 1}) {
    for (const auto& p : ofSession(r.lines, "exec_poll", s)) rtt[s].push_back(p["rtt_ms"].get<double>());
    ASSERT_GE(rtt[s].size(), 3u) << "session " << s << "\n" << r.err;
  }
  double slow = median(rtt[0]), fast = median(rtt[1]);
  std::printf("exec round trip p50: %.1f ms with 40 ms each way, %.1f ms without\n", slow, fast);
  // A round is several channel opens, execs and closes: at least a few
  // round trips of 80 ms.
  EXPECT_GE(slow, fast + 160.0);
  EXPECT_GE(*std::min_element(rtt[0].begin(), rtt[0].end()), 160.0);
}

TEST_F(NetFault, BlackholeIsNoticedByKeepaliveAndSessionsComeBackAfterIt) {
  auto r = runSoak(faultArgs({"--sessions", "2", "--duration-secs", "13", "--fault", "blackhole@3s+4s"}), 60);
  auto start = linesOf(r.lines, "net_fault_started");
  auto end = linesOf(r.lines, "net_fault_ended");
  ASSERT_EQ(start.size(), 1u) << r.err;
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(start[0]["planned_ms"], 4000);
  EXPECT_EQ(start[0]["connections"], 2);
  EXPECT_EQ(start[0]["sessions"], Json::array({0, 1}));
  EXPECT_GE(end[0]["duration_ms"].get<int>(), 3900);
  EXPECT_GT(end[0]["bytes_held"].get<int>(), 0);
  int64_t startNs = tsNs(start[0]);
  for (int s : {0, 1}) {
    auto d = ofSession(r.lines, "disconnected", s);
    ASSERT_FALSE(d.empty()) << "session " << s << " noticed\n" << r.err;
    EXPECT_EQ(d[0]["cause"], "silence") << d[0].dump();
    double noticeS = static_cast<double>(tsNs(d[0]) - startNs) / 1e9;
    std::printf("session %d noticed the blackhole after %.2f s (keepalive budget 2 s)\n", s, noticeS);
    EXPECT_GE(noticeS, 0.9);
    EXPECT_LE(noticeS, 3.5);
    auto back = ofSession(r.lines, "reconnected", s);
    ASSERT_FALSE(back.empty()) << "session " << s << " came back\n" << r.err;
    EXPECT_GE(tsNs(back[0]), tsNs(end[0]) - 500'000'000) << "not before the window ended";
  }
  auto summary = linesOf(r.lines, "summary").at(0);
  EXPECT_EQ(summary["global_reconnect_rate_pct"], 100.0);
}

TEST_F(NetFault, ResetGivesACategorisedDisconnectAndAReconnect) {
  auto r = runSoak(faultArgs({"--sessions", "3", "--duration-secs", "7", "--fault", "reset@3s/60s@0,2"}), 60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto end = linesOf(r.lines, "net_fault_ended");
  ASSERT_EQ(end.size(), 1u) << r.err;
  EXPECT_EQ(end[0]["resets"], 2);
  EXPECT_EQ(end[0]["duration_ms"], 0);
  for (int s : {0, 2}) {
    auto d = ofSession(r.lines, "disconnected", s);
    ASSERT_EQ(d.size(), 1u) << "session " << s << "\n" << r.err;
    EXPECT_EQ(d[0]["cause"], "reset") << d[0].dump();
    EXPECT_EQ(ofSession(r.lines, "reconnected", s).size(), 1u);
  }
  EXPECT_TRUE(ofSession(r.lines, "disconnected", 1).empty()) << "session 1 is not named";
}

TEST_F(NetFault, BandwidthCapsATransfer) {
  auto r = runSoak(faultArgs({"--sessions", "2", "--duration-secs", "8", "--workload", "transfer", "--transfer-mb",
                              "2", "--min-throughput-mbps", "0", "--max-cpu-pct", "1000",
                              // The transfer's buffers under ASan's quarantine: memory is not what this tests.
                              "--max-memory-mb", "100000", "--fault", "bandwidth=1MB@0"}),
                   60);
  std::string failed;
  for (const auto& l : linesOf(r.lines, "summary")) {
    for (const auto& c : l["verdict"]) {
      if (c.value("result", "") == "fail") failed += c.dump() + "\n";
    }
  }
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << failed << r.err;
  auto capped = ofSession(r.lines, "transfer_round", 0);
  auto free = ofSession(r.lines, "transfer_round", 1);
  ASSERT_GE(capped.size(), 2u) << r.err;
  ASSERT_GE(free.size(), 2u);
  for (const auto& t : capped) {
    double mbps = t["mb_per_sec"].get<double>();
    std::printf("capped round %s: %.2f MB/s\n", t["direction"].get<std::string>().c_str(), mbps);
    EXPECT_LE(mbps, 1.1) << t.dump();
    EXPECT_GE(mbps, 0.6) << t.dump();
  }
  // Uncapped beside it: well above the cap (small rounds on a loaded
  // machine reach a few MB/s).
  double best = 0;
  for (const auto& t : free) best = std::max(best, t["mb_per_sec"].get<double>());
  EXPECT_GE(best, 2.0);
}

TEST_F(NetFault, LimitDataAndTimeoutEndSessionsThatComeBackAfterTheWindow) {
  auto r = runSoak(faultArgs({"--sessions", "2", "--duration-secs", "12", "--fault", "limit-data=2KB@2s+4s@0",
                              "--fault", "timeout=1s@2s+4s@1"}),
                   60);
  auto end = linesOf(r.lines, "net_fault_ended");
  ASSERT_EQ(end.size(), 2u) << r.err;
  int64_t runStart = runStartNs(r.lines);
  for (const auto& e : end) EXPECT_GE(e["resets"].get<int>(), 1) << e.dump();
  for (int s : {0, 1}) {
    auto d = ofSession(r.lines, "disconnected", s);
    ASSERT_FALSE(d.empty()) << "session " << s << "\n" << r.err;
    double atS = static_cast<double>(tsNs(d[0]) - runStart) / 1e9;
    std::printf("session %d disconnected at %.2f s (%s)\n", s, atS, d[0]["cause"].get<std::string>().c_str());
    EXPECT_GE(atS, 1.9);
    EXPECT_LE(atS, 6.5);
    EXPECT_FALSE(ofSession(r.lines, "reconnected", s).empty()) << "session " << s << " back after the window";
  }
}

TEST_F(NetFault, SlicerAndSlowCloseKeepSessionsWorking) {
  // Slices of ~64 B every ms slow a round down without breaking it; a
  // slow close holds the FIN 1 s, which the clean stop outlasts.
  auto r = runSoak(faultArgs({"--sessions", "2", "--duration-secs", "5", "--log-detail", "full", "--fault",
                              "slicer=64B~16B/1ms@0", "--fault", "slow-close=1s"}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto sliced = ofSession(r.lines, "exec_poll", 0);
  auto plain = ofSession(r.lines, "exec_poll", 1);
  ASSERT_GE(sliced.size(), 2u) << r.err;
  ASSERT_GE(plain.size(), 2u);
  std::vector<double> a, b;
  for (const auto& p : sliced) a.push_back(p["rtt_ms"].get<double>());
  for (const auto& p : plain) b.push_back(p["rtt_ms"].get<double>());
  std::printf("exec round trip p50: %.1f ms sliced, %.1f ms plain\n", median(a), median(b));
  EXPECT_GT(median(a), median(b));
  EXPECT_TRUE(linesOf(r.lines, "disconnected").empty());
  EXPECT_EQ(linesOf(r.lines, "agent_exited").size(), 2u);
}
