// Failure scenarios F1-F5 (docs/runbook.md, section 4; reconnect_test.cpp
// runs them with iptables and sshd restarts) with the network fault coming
// from the built-in relay (--fault) instead: no root, no namespace. Each also
// checks what the analysis made of it: the summary's `faults` window, the
// same figures from `sshsoak report`, and the HTML's shaded band.
//   F1 short drop: a 4-s blackhole, and a 1-s reset window.
//   F2 drop longer than the retries: a blackhole to the end of the run.
//   F3 sshd restart: a reset window (every connection and every attempt
//      reset for 3 s), the closest the relay comes; the sshd itself is not
//      restarted, so the disconnect is a reset, not an EOF.
//   F4 revoked key: not a network fault; it has no relay equivalent.
//   F5 reconnect storm: a reset of all sessions at once.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "netns.h"
#include "shared/clock.h"
#include "supervisor/analysis/report.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

std::set<int> sessionsWith(const std::vector<Json>& lines, const std::string& event) {
  std::set<int> s;
  for (const auto& l : linesOf(lines, event)) s.insert(l["session_id"].get<int>());
  return s;
}

std::string fileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

class FaultScenario : public SshdTest {
 protected:
  // A 2-s keepalive budget and quick reconnects, as the iptables F1 uses.
  std::vector<std::string> args(std::vector<std::string> extra, const std::string& attempts = "20",
                                const std::string& timeoutSecs = "3") const {
    std::vector<std::string> a = {"--keepalive-interval-secs", "1", "--keepalive-count-max", "2",
                                  "--reconnect-timeout-secs", timeoutSecs, "--max-reconnect-attempts", attempts,
                                  "--backoff-base-ms", "100", "--backoff-cap-ms", "500",
                                  "--poll-interval-secs", "1", "--warmup-secs", "0", "--html", htmlPath()};
    a.insert(a.end(), extra.begin(), extra.end());
    return soakArgs(a);
  }
  std::string htmlPath() const { return logPath_ + ".html"; }

  // The summary's one window, checked against the log's lines and against
  // what `sshsoak report` makes of the same log.
  Json onlyWindow(const SoakResult& r) {
    auto summaries = linesOf(r.lines, "summary");
    if (summaries.empty()) {
      ADD_FAILURE() << "no summary\n" << r.err;
      return Json();
    }
    const Json& faults = summaries[0]["faults"];
    EXPECT_EQ(faults.size(), 1u) << faults.dump();
    EXPECT_EQ(summaries[0]["faults_ignored"], 0);
    report::Input in = report::read({logPath_});
    EXPECT_EQ(in.runs.size(), 1u);
    if (!in.runs.empty()) {
      EXPECT_EQ(in.runs[0].faults, faults) << "the report and the live summary differ";
    }
    return faults.empty() ? Json() : faults[0];
  }

  void expectBand(const std::string& spec) {
    std::string html = fileText(htmlPath());
    EXPECT_NE(html.find("class='fault-band'"), std::string::npos) << "no shaded window in " << htmlPath();
    EXPECT_NE(html.find(">" + spec + "</text>"), std::string::npos) << "the band's label";
    EXPECT_NE(html.find("<h3>Fault windows</h3>"), std::string::npos);
  }
};

// F1: a short drop. Every session notices within the keepalive budget, is
// back within 15 s of the drop's start, and the run passes.
TEST_F(FaultScenario, F1ShortBlackholeEverySessionBackWithin15s) {
  auto r = runSoak(args({"--sessions", "4", "--duration-secs", "14", "--fault", "blackhole@3s+4s"}), 90);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto start = linesOf(r.lines, "net_fault_started");
  ASSERT_EQ(start.size(), 1u) << r.err;
  int64_t dropNs = tsNs(start[0]);
  EXPECT_EQ(sessionsWith(r.lines, "reconnected").size(), 4u) << r.err;
  for (const auto& back : linesOf(r.lines, "reconnected")) {
    double backS = static_cast<double>(tsNs(back) - dropNs) / 1e9;
    std::printf("session %d usable again %.2f s after the blackhole began\n", back["session_id"].get<int>(), backS);
    EXPECT_LE(backS, 15.0) << back.dump();
  }
  Json w = onlyWindow(r);
  EXPECT_EQ(w["kind"], "blackhole");
  EXPECT_EQ(w["spec"], "blackhole@3s+4s");
  EXPECT_EQ(w["open_at_end"], false);
  EXPECT_EQ(w["sessions_affected"], 4);
  EXPECT_EQ(w["noticed"], 4) << w.dump();
  EXPECT_EQ(w["recovered"], 4) << w.dump();
  // The keepalive budget is 2 s: noticed after it, and not much later.
  EXPECT_GE(w["notice_ms"]["p50"].get<int>(), 900) << w.dump();
  EXPECT_LE(w["notice_ms"]["max"].get<int>(), 3500) << w.dump();
  EXPECT_LE(w["recover_ms"]["max"].get<int>(), 11000) << w.dump();
  std::printf("summary window: %s\n", w.dump().c_str());
  expectBand("blackhole@3s+4s");
}

// F1 as a reset: the sessions see a reset at once and come back.
TEST_F(FaultScenario, F1ShortResetWindowNoticedAtOnceAndRecovered) {
  auto r = runSoak(args({"--sessions", "3", "--duration-secs", "9", "--fault", "reset@3s+1s"}), 90);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  for (const auto& d : linesOf(r.lines, "disconnected")) EXPECT_EQ(d["cause"], "reset") << d.dump();
  Json w = onlyWindow(r);
  EXPECT_EQ(w["noticed"], 3) << w.dump();
  EXPECT_EQ(w["recovered"], 3) << w.dump();
  EXPECT_LE(w["notice_ms"]["max"].get<int>(), 1000) << w.dump();
  EXPECT_GE(w["resets"].get<int>(), 3) << w.dump();
  expectBand("reset@3s+1s");
}

// F2: a drop longer than the whole retry budget: every session ends in the
// manual state; the window shows them noticed and not recovered.
TEST_F(FaultScenario, F2BlackholeLongerThanTheRetriesEndsInManualState) {
  auto r = runSoak(args({"--sessions", "3", "--duration-secs", "13", "--fault", "blackhole@2s"}, "2", "2"), 90);
  EXPECT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.err;
  EXPECT_EQ(sessionsWith(r.lines, "manual_reconnect_required").size(), 3u) << r.err;
  EXPECT_EQ(linesOf(r.lines, "manual_reconnect_required").size(), 3u) << "once per session";
  Json w = onlyWindow(r);
  EXPECT_EQ(w["planned_ms"], nullptr);
  EXPECT_EQ(w["noticed"], 3) << w.dump();
  EXPECT_EQ(w["recovered"], 0) << w.dump();
  EXPECT_EQ(w["recover_ms"]["max"], nullptr);
  EXPECT_EQ(linesOf(r.lines, "summary").at(0)["sessions_manual"], 3);
  expectBand("blackhole@2s");
}

// F3's network side: for 3 s the server cannot be reached (every
// connection and every attempt reset); attempts fail as categorised
// failures, and every session is back once the window ends.
TEST_F(FaultScenario, F3ServerUnreachableForAWhileSessionsReconnectAfterIt) {
  auto r = runSoak(args({"--sessions", "3", "--duration-secs", "12", "--fault", "reset@3s+3s"}), 90);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto end = linesOf(r.lines, "net_fault_ended");
  ASSERT_EQ(end.size(), 1u) << r.err;
  EXPECT_FALSE(linesOf(r.lines, "reconnect_failed").empty()) << "attempts during the window fail";
  for (const auto& back : linesOf(r.lines, "reconnected")) {
    EXPECT_GE(tsNs(back), tsNs(end[0]) - 500'000'000) << "not back before the window ended: " << back.dump();
  }
  Json w = onlyWindow(r);
  EXPECT_EQ(w["noticed"], 3) << w.dump();
  EXPECT_EQ(w["recovered"], 3) << w.dump();
  EXPECT_EQ(linesOf(r.lines, "summary").at(0)["abnormal_ends"], 0);
}

// F5: every session dropped at once; all come back through the shared
// bucket, and the window counts each of them.
TEST_F(FaultScenario, F5AllSessionsResetAtOnceAllBack) {
  auto r = runSoak(args({"--sessions", "10", "--duration-secs", "10", "--fault", "reset@3s+200ms"}), 90);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  EXPECT_EQ(sessionsWith(r.lines, "reconnected").size(), 10u) << r.err;
  Json w = onlyWindow(r);
  EXPECT_EQ(w["sessions_affected"], 10);
  EXPECT_EQ(w["noticed"], 10) << w.dump();
  EXPECT_EQ(w["recovered"], 10) << w.dump();
  std::printf("storm of 10: notice p50 %s ms, recover p50 %s max %s ms\n", w["notice_ms"]["p50"].dump().c_str(),
              w["recover_ms"]["p50"].dump().c_str(), w["recover_ms"]["max"].dump().c_str());
  auto summary = linesOf(r.lines, "summary").at(0);
  EXPECT_EQ(summary["global_reconnect_rate_pct"], 100.0);
}
