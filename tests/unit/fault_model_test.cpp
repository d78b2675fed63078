// The summary's `faults` and `pacer` (supervisor/analysis/fault_model.*),
// fed lines as the live run writes them (lineHead, the one line builder):
// windows, overlapping windows, repeats, sessions that noticed or not, a
// window open at the end, the cap; then the same log through `sshsoak
// report`, the console, the result table and the HTML.
#include "supervisor/analysis/fault_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "shared/clock.h"
#include "supervisor/analysis/console.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/report.h"
#include "supervisor/analysis/run_accumulator.h"
#include "supervisor/analysis/run_model.h"

using namespace sshsoak;

namespace {

constexpr int64_t T0 = 1'795'651'200'000'000'000;  // 2026-11-26T00:00:00Z
int64_t at(double secs) { return T0 + static_cast<int64_t>(secs * 1e9); }

Json runStarted(uint32_t sessions, const std::string& keepalive = "2 s x 3") {
  Json j = lineHead(at(0), std::nullopt, "", "run_started");
  j["run_id"] = "faults-run";
  j["sessions"] = sessions;
  j["keepalive"] = keepalive;
  return j;
}

Json faultStarted(double secs, uint32_t id, uint32_t occurrence, const std::string& kind, const std::string& spec,
                  const std::vector<uint32_t>& sessions, std::optional<int64_t> plannedMs) {
  Json j = lineHead(at(secs), std::nullopt, "", "net_fault_started");
  j["fault_id"] = id;
  j["occurrence"] = occurrence;
  j["kind"] = kind;
  j["spec"] = spec;
  j["sessions"] = sessions;
  j["connections"] = sessions.size();
  j["planned_ms"] = plannedMs ? Json(*plannedMs) : Json(nullptr);
  return j;
}

Json faultEnded(double secs, uint32_t id, uint32_t occurrence, const std::string& kind, const std::string& spec,
                int64_t durationMs, uint64_t bytesHeld = 0, uint64_t resets = 0) {
  Json j = lineHead(at(secs), std::nullopt, "", "net_fault_ended");
  j["fault_id"] = id;
  j["occurrence"] = occurrence;
  j["kind"] = kind;
  j["spec"] = spec;
  j["duration_ms"] = durationMs;
  j["connections"] = 2;
  j["bytes_held"] = bytesHeld;
  j["resets"] = resets;
  return j;
}

std::string host(uint32_t session) { return "127.0.0.1:" + std::to_string(2200 + session); }

Json agent(double secs, uint32_t session, const std::string& event) {
  Json j = lineHead(at(secs), session, host(session), event);
  if (event == "disconnected") {
    j["cause"] = "silence";
    j["message"] = "no reply to 3 keepalives";
    j["silent_ms"] = 6000;
  }
  if (event == "reconnected") j["elapsed_ms"] = 1500;
  return j;
}

Json pacerRate(double secs, double rate, const std::string& reason) {
  Json j = lineHead(at(secs), std::nullopt, "", "pacer_rate");
  j["rate_per_sec"] = rate;
  j["burst"] = 8;
  j["reason"] = reason;
  j["signals"] = {{"ok", 5}, {"slow", 0}, {"refused", 0}, {"timeouts", 0}};
  return j;
}

// A run's model fed lines; `faults` at endSecs as the summary has them.
struct Feed {
  RunModel model;
  explicit Feed(uint32_t sessions, const std::string& keepalive = "2 s x 3") {
    model.onLine(runStarted(sessions, keepalive));
    for (uint32_t s = 0; s < sessions; ++s) model.onLine(agent(0.5, s, "connected"));
  }
  Feed& operator<<(const Json& line) {
    model.onLine(line);
    return *this;
  }
  Json faults(double endSecs) const { return model.summary(at(endSecs), endSecs, 0)["faults"]; }
};

Json p50Max(Json p50, Json max) { return Json{{"p50", p50}, {"max", max}}; }

}  // namespace

TEST(FaultModel, OneWindowWhoNoticedHowFastWhoCameBack) {
  Feed f(3);
  f << faultStarted(10, 0, 1, "blackhole", "blackhole@10s+8s", {0, 1, 2}, 8000);
  f << agent(16, 0, "disconnected") << agent(17, 1, "disconnected");
  f << faultEnded(18, 0, 1, "blackhole", "blackhole@10s+8s", 8000, 4096);
  f << agent(19, 0, "reconnected") << agent(21, 1, "reconnected");
  Json faults = f.faults(60);
  ASSERT_EQ(faults.size(), 1u);
  const Json& w = faults[0];
  EXPECT_EQ(w["fault_id"], 0);
  EXPECT_EQ(w["occurrence"], 1);
  EXPECT_EQ(w["kind"], "blackhole");
  EXPECT_EQ(w["spec"], "blackhole@10s+8s");
  EXPECT_EQ(w["start_ts"], isoTimestamp(at(10)));
  EXPECT_DOUBLE_EQ(w["start_secs"].get<double>(), 10.0);
  EXPECT_EQ(w["duration_ms"], 8000);
  EXPECT_EQ(w["planned_ms"], 8000);
  EXPECT_EQ(w["open_at_end"], false);
  EXPECT_EQ(w["sessions_affected"], 3);
  EXPECT_EQ(w["noticed"], 2);  // session 2 never did
  // Nearest rank (stats.h): p50 of {6000, 7000} is the value at index 1.
  EXPECT_EQ(w["notice_ms"], p50Max(7000, 7000));
  EXPECT_EQ(w["recovered"], 2);
  EXPECT_EQ(w["recover_ms"], p50Max(3000, 3000));  // from the window's end: 1 s and 3 s
  EXPECT_EQ(w["bytes_held"], 4096);
  EXPECT_EQ(f.model.summary(at(60), 60, 0)["faults_ignored"], 0);
}

TEST(FaultModel, NoticePeriodIsTheWindowPlusTheKeepaliveBudget) {
  Feed f(3, "2 s x 3");  // a 6 s budget
  f << faultStarted(10, 0, 1, "blackhole", "blackhole@10s+2s", {0, 1, 2}, 2000);
  f << faultEnded(12, 0, 1, "blackhole", "blackhole@10s+2s", 2000);
  f << agent(17.9, 0, "disconnected");  // 5.9 s after the end: noticed
  f << agent(18.5, 1, "disconnected");  // 6.5 s after: something else
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["noticed"], 1);
  EXPECT_EQ(w["notice_ms"], p50Max(7900, 7900));
  EXPECT_EQ(w["recovered"], 0);
  EXPECT_EQ(w["recover_ms"], p50Max(nullptr, nullptr));
  EXPECT_EQ(f.model.faults().keepaliveBudgetMs(), 6000);
}

TEST(FaultModel, WindowNobodyNoticed) {
  Feed f(2);
  f << faultStarted(5, 0, 1, "latency", "latency=200ms~50ms@5s-15s", {0, 1}, 10000);
  f << faultEnded(15, 0, 1, "latency", "latency=200ms~50ms@5s-15s", 10000);
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["sessions_affected"], 2);
  EXPECT_EQ(w["noticed"], 0);
  EXPECT_EQ(w["notice_ms"], p50Max(nullptr, nullptr));
  EXPECT_EQ(w["recovered"], 0);
}

TEST(FaultModel, OnlyAffectedSessionsCount) {
  Feed f(4);
  f << faultStarted(10, 0, 1, "reset", "reset@10s+1s@0-1", {0, 1}, 1000);
  f << agent(10.01, 0, "disconnected") << agent(10.02, 3, "disconnected");  // 3: not in the window
  f << faultEnded(11, 0, 1, "reset", "reset@10s+1s@0-1", 1000, 0, 2);
  f << agent(12, 0, "reconnected") << agent(12, 3, "reconnected");
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["sessions_affected"], 2);
  EXPECT_EQ(w["noticed"], 1);
  EXPECT_EQ(w["notice_ms"], p50Max(10, 10));
  EXPECT_EQ(w["recovered"], 1);
  EXPECT_EQ(w["recover_ms"], p50Max(1000, 1000));
  EXPECT_EQ(w["resets"], 2);
}

TEST(FaultModel, OverlappingWindowsEachCountTheirOwnSessions) {
  Feed f(3);
  f << faultStarted(10, 0, 1, "blackhole", "blackhole@10s-20s@0-1", {0, 1}, 10000);
  f << agent(12, 0, "disconnected");
  f << faultStarted(15, 1, 1, "blackhole", "blackhole@15s-25s@1-2", {1, 2}, 10000);
  f << agent(16, 1, "disconnected");  // in both windows
  f << faultEnded(20, 0, 1, "blackhole", "blackhole@10s-20s@0-1", 10000);
  f << agent(21, 0, "reconnected") << agent(22, 1, "reconnected");
  f << agent(24, 2, "disconnected");
  f << faultEnded(25, 1, 1, "blackhole", "blackhole@15s-25s@1-2", 10000);
  f << agent(27, 2, "reconnected");
  Json faults = f.faults(60);
  ASSERT_EQ(faults.size(), 2u);
  EXPECT_EQ(faults[0]["noticed"], 2);
  EXPECT_EQ(faults[0]["notice_ms"], p50Max(6000, 6000));  // {2000, 6000}
  EXPECT_EQ(faults[0]["recovered"], 2);
  EXPECT_EQ(faults[0]["recover_ms"], p50Max(2000, 2000));  // {1000, 2000}
  EXPECT_EQ(faults[1]["noticed"], 2);
  EXPECT_EQ(faults[1]["notice_ms"], p50Max(9000, 9000));  // {1000, 9000}
  EXPECT_EQ(faults[1]["recovered"], 2);
  EXPECT_EQ(faults[1]["recover_ms"], p50Max(2000, 2000));  // {0 (back before its end), 2000}
}

TEST(FaultModel, RepeatingWindowIsOneObjectPerOccurrence) {
  Feed f(2);
  for (uint32_t k = 1; k <= 3; ++k) {
    double s = 10.0 * k;
    f << faultStarted(s, 0, k, "reset", "reset@10s+1s/10s", {0, 1}, 1000);
    f << agent(s + 0.005, 0, "disconnected") << agent(s + 0.01 * k, 1, "disconnected");
    f << faultEnded(s + 1, 0, k, "reset", "reset@10s+1s/10s", 1000, 0, 2);
    f << agent(s + 1.5, 0, "reconnected") << agent(s + 2, 1, "reconnected");
  }
  Json faults = f.faults(60);
  ASSERT_EQ(faults.size(), 3u);
  for (uint32_t k = 1; k <= 3; ++k) {
    const Json& w = faults[k - 1];
    EXPECT_EQ(w["occurrence"], k);
    EXPECT_DOUBLE_EQ(w["start_secs"].get<double>(), 10.0 * k);
    EXPECT_EQ(w["noticed"], 2);
    EXPECT_EQ(w["notice_ms"]["max"], 10 * k);
    EXPECT_EQ(w["recovered"], 2);
    EXPECT_EQ(w["recover_ms"], p50Max(1000, 1000));  // {500, 1000}
  }
}

// A reset window resets new connections too: a session back during the
// window and reset again recovers with its last reconnect.
TEST(FaultModel, DownAgainDuringTheWindowRecoversFromTheLastDisconnect) {
  Feed f(1);
  f << faultStarted(10, 0, 1, "reset", "reset@10s+5s", {0}, 5000);
  f << agent(10.1, 0, "disconnected") << agent(11, 0, "reconnected") << agent(11.1, 0, "disconnected");
  f << faultEnded(15, 0, 1, "reset", "reset@10s+5s", 5000, 0, 2);
  f << agent(17, 0, "reconnected");
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["noticed"], 1);
  EXPECT_EQ(w["notice_ms"], p50Max(100, 100));
  EXPECT_EQ(w["recovered"], 1);
  EXPECT_EQ(w["recover_ms"], p50Max(2000, 2000));
}

TEST(FaultModel, WindowOpenAtTheEndIsClosedAtTheRunsEnd) {
  Feed f(2);
  f << faultStarted(50, 0, 1, "blackhole", "blackhole@50s", {0, 1}, std::nullopt);
  f << agent(55, 0, "disconnected") << agent(58, 0, "reconnected");
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["open_at_end"], true);
  EXPECT_EQ(w["duration_ms"], 10000);
  EXPECT_EQ(w["planned_ms"], nullptr);
  EXPECT_EQ(w["noticed"], 1);
  EXPECT_EQ(w["notice_ms"], p50Max(5000, 5000));
  EXPECT_EQ(w["recovered"], 1);
  EXPECT_EQ(w["recover_ms"], p50Max(0, 0));  // back before the (run's) end
}

TEST(FaultModel, SessionNeverBackIsNoticedNotRecovered) {
  Feed f(2);
  f << faultStarted(10, 0, 1, "blackhole", "blackhole@10s+30s", {0, 1}, 30000);
  f << agent(16, 0, "disconnected") << agent(16, 1, "disconnected");
  f << faultEnded(40, 0, 1, "blackhole", "blackhole@10s+30s", 30000);
  f << agent(42, 1, "reconnected");
  f << pacerRate(100, 10, "rising");  // time passes: the notice period is over
  Json w = f.faults(120)[0];
  EXPECT_EQ(w["noticed"], 2);
  EXPECT_EQ(w["recovered"], 1);
  EXPECT_EQ(w["recover_ms"], p50Max(2000, 2000));
  // Later: it comes back, and the window, settled, says so.
  f << agent(130, 0, "reconnected");
  w = f.faults(140)[0];
  EXPECT_EQ(w["recovered"], 2);
  EXPECT_EQ(w["recover_ms"], p50Max(90000, 90000));
}

// The relay's line and the agent's are written by different processes: a
// disconnected line stamped just after the window's start can reach the
// log before the window's own line.
TEST(FaultModel, DisconnectLoggedBeforeItsWindowsStartLineCounts) {
  Feed f(2);
  f << agent(10.02, 0, "disconnected");
  f << faultStarted(10, 0, 1, "reset", "reset@10s+1s", {0, 1}, 1000);
  f << agent(10.03, 1, "disconnected");
  f << faultEnded(11, 0, 1, "reset", "reset@10s+1s", 1000, 0, 2);
  f << agent(12, 0, "reconnected") << agent(12, 1, "reconnected");
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["noticed"], 2);
  EXPECT_EQ(w["notice_ms"], p50Max(30, 30));
  EXPECT_EQ(w["recovered"], 2);
}

TEST(FaultModel, WindowWithoutASessionListAffectsEverySession) {
  Feed f(5);
  Json start = faultStarted(10, 0, 1, "reset", "reset@10s+1s", {}, 1000);
  start.erase("sessions");
  f << start << agent(10.1, 4, "disconnected");
  Json w = f.faults(60)[0];
  EXPECT_EQ(w["sessions_affected"], 5);
  EXPECT_EQ(w["noticed"], 1);
}

TEST(FaultModel, AtMostMaxWindowsTheRestCounted) {
  Feed f(2);
  size_t n = FaultModel::MAX_WINDOWS + 7;
  for (size_t k = 1; k <= n; ++k) {
    double s = 10.0 + 2.0 * static_cast<double>(k);
    f << faultStarted(s, 0, static_cast<uint32_t>(k), "reset", "reset@12s+1s/2s", {0, 1}, 1000);
    f << faultEnded(s + 1, 0, static_cast<uint32_t>(k), "reset", "reset@12s+1s/2s", 1000);
  }
  Json summary = f.model.summary(at(3000), 3000, 0);
  EXPECT_EQ(summary["faults"].size(), FaultModel::MAX_WINDOWS);
  EXPECT_EQ(summary["faults_ignored"], 7);
  EXPECT_EQ(summary["faults"].back()["occurrence"], FaultModel::MAX_WINDOWS);
  EXPECT_EQ(summary["faults"].back()["open_at_end"], false);
}

// A long run of repeating windows: every window whose sessions noticed and
// came back is a few figures; only the window a session is still down from
// keeps a mark.
TEST(FaultModel, MemoryIsBoundedBySessionsNotByRunLength) {
  Feed f(20);
  for (uint32_t k = 1; k <= 500; ++k) {
    double s = 60.0 * k;
    std::vector<uint32_t> all;
    for (uint32_t i = 0; i < 20; ++i) all.push_back(i);
    f << faultStarted(s, 0, k, "reset", "reset@60s+1s/60s", all, 1000);
    for (uint32_t i = 0; i < 20; ++i) f << agent(s + 0.01, i, "disconnected");
    f << faultEnded(s + 1, 0, k, "reset", "reset@60s+1s/60s", 1000, 0, 20);
    for (uint32_t i = 0; i < 20; ++i) {
      if (k < 500 || i != 7) f << agent(s + 2, i, "reconnected");
    }
  }
  f << pacerRate(60.0 * 501, 10, "rising");
  EXPECT_EQ(f.model.faults().windowCount(), 500u);
  EXPECT_EQ(f.model.faults().liveWindows(), 1u);  // the last: session 7 is still down
  Json last = f.faults(60.0 * 502).back();
  EXPECT_EQ(last["noticed"], 20);
  EXPECT_EQ(last["recovered"], 19);
}

TEST(PacerModel, RateChangesCountedFromTheInitialRate) {
  RunModel model;
  Json started = runStarted(2);
  started["reconnect_pacing"] = "adaptive";
  started["token_rate"] = 10.0;
  started["token_burst"] = 8;
  model.onLine(started);
  model.onLine(pacerRate(1, 20, "rising"));
  model.onLine(pacerRate(2, 40, "rising"));
  model.onLine(pacerRate(3, 20, "overload: MaxStartups"));
  model.onLine(pacerRate(4, 10, "overload: MaxStartups"));
  model.onLine(pacerRate(5, 30, "rising"));
  Json p = model.summary(at(10), 10, 0)["pacer"];
  EXPECT_EQ(p["mode"], "adaptive");
  EXPECT_EQ(p["initial_rate"], 10.0);
  EXPECT_EQ(p["min_rate"], 10.0);
  EXPECT_EQ(p["max_rate"], 40.0);
  EXPECT_EQ(p["final_rate"], 30.0);
  EXPECT_EQ(p["increases"], 3);
  EXPECT_EQ(p["decreases"], 2);
  EXPECT_EQ(p["decrease_reasons"], Json({{"overload: MaxStartups", 2}}));
}

TEST(PacerModel, FixedPacingIsItsOneRate) {
  RunModel model;
  Json started = runStarted(2);
  started["reconnect_pacing"] = "fixed";
  started["token_rate"] = 10.0;
  model.onLine(started);
  Json p = model.summary(at(10), 10, 0)["pacer"];
  EXPECT_EQ(p["mode"], "fixed");
  EXPECT_EQ(p["initial_rate"], 10.0);
  EXPECT_EQ(p["min_rate"], 10.0);
  EXPECT_EQ(p["max_rate"], 10.0);
  EXPECT_EQ(p["final_rate"], 10.0);
  EXPECT_EQ(p["decreases"], 0);
  EXPECT_EQ(p["increases"], 0);
  EXPECT_EQ(report::pacerText(p), "");
}

namespace {

// One run with two fault windows and an adaptive pacer, as a log.
std::vector<Json> faultRunLines() {
  std::vector<Json> lines;
  Json started = runStarted(3);
  started["reconnect_pacing"] = "adaptive";
  started["token_rate"] = 10.0;
  lines.push_back(started);
  for (uint32_t s = 0; s < 3; ++s) lines.push_back(lineHead(at(0.1), s, host(s), "agent_started"));
  for (uint32_t s = 0; s < 3; ++s) lines.push_back(agent(0.5, s, "connected"));
  lines.push_back(faultStarted(10, 0, 1, "blackhole", "blackhole@10s+8s", {0, 1, 2}, 8000));
  lines.push_back(agent(16, 0, "disconnected"));
  lines.push_back(agent(16.5, 1, "disconnected"));
  lines.push_back(pacerRate(17, 5, "overload: timeouts"));
  lines.push_back(faultEnded(18, 0, 1, "blackhole", "blackhole@10s+8s", 8000, 2048));
  lines.push_back(agent(19, 0, "reconnected"));
  lines.push_back(agent(20, 1, "reconnected"));
  lines.push_back(pacerRate(21, 15, "rising"));
  lines.push_back(faultStarted(40, 1, 1, "reset", "reset@40s@2", {2}, std::nullopt));
  lines.push_back(agent(40.01, 2, "disconnected"));
  return lines;
}

std::string printed(const Json& summary) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&buf, &size);
  printSummary(out, summary, "run.jsonl");
  std::fclose(out);
  std::string text(buf, size);
  std::free(buf);
  return text;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class FaultReport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sshsoak-faults-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

}  // namespace

// The live run's path (the accumulator is told run_started, then fed every
// later line; its model makes the summary) and `sshsoak report` on the
// written log give the same `faults` and `pacer`.
TEST_F(FaultReport, LiveSummaryAndReportAgree) {
  auto lines = faultRunLines();
  auto live = std::make_shared<RunAccumulator>(std::vector<std::string>{host(0), host(1), host(2)});
  live->noteRunStarted(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) live->onLine(lines[i]);
  Json summary = live->model().summary(at(60), 60, lines.size() + 1);
  live->onLine(summary);  // the summary line, logged like any other

  std::string path = (dir_ / "run.jsonl").string();
  {
    std::ofstream out(path);
    for (const auto& l : lines) out << l.dump() << "\n";
    out << summary.dump() << "\n";
  }
  report::Input in = report::read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  const report::Run& r = in.runs[0];
  EXPECT_EQ(r.faults, summary["faults"]);
  EXPECT_EQ(r.pacer, summary["pacer"]);
  EXPECT_EQ(report::runOf(path, live).faults, summary["faults"]);

  ASSERT_EQ(r.faults.size(), 2u);
  EXPECT_EQ(r.faults[0]["noticed"], 2);
  EXPECT_EQ(r.faults[0]["recovered"], 2);
  EXPECT_EQ(r.faults[1]["open_at_end"], true);
  EXPECT_EQ(r.faults[1]["duration_ms"], 20000);
  EXPECT_EQ(r.faults[1]["noticed"], 1);
  EXPECT_EQ(r.faults[1]["recovered"], 0);
  EXPECT_EQ(r.pacer["decreases"], 1);
  EXPECT_EQ(r.pacer["increases"], 1);
  EXPECT_EQ(r.pacer["min_rate"], 5.0);

  std::string table = report::markdown(in);
  EXPECT_NE(table.find("**Fault windows faults-run**"), std::string::npos) << table;
  EXPECT_NE(table.find("| `blackhole@10s+8s` | 10.0-18.0 s | 3 | 2 | 6.50 s / 6.50 s | 2/2 | 2.00 s / 2.00 s |"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("| `reset@40s@2` | 40.0-60.0 s (open at end) | 1 | 1 |"), std::string::npos) << table;
  EXPECT_NE(table.find("**Reconnect pacing faults-run**: adaptive: rate 10/s at start, 15/s at end"), std::string::npos)
      << table;

  std::string console = printed(summary);
  EXPECT_NE(console.find("== fault windows =="), std::string::npos) << console;
  EXPECT_NE(console.find("blackhole@10s+8s"), std::string::npos) << console;
  EXPECT_NE(console.find("reconnect pacing      adaptive"), std::string::npos) << console;
}

TEST_F(FaultReport, HtmlShadesEachWindowWithItsSpecAndTablesThem) {
  auto lines = faultRunLines();
  std::string path = (dir_ / "run.jsonl").string();
  {
    std::ofstream out(path);
    for (const auto& l : lines) out << l.dump() << "\n";
  }
  std::string html = report::renderHtml(report::read({path}).runs);
  // Two windows: a band each on the timeline and on the pacer's chart.
  EXPECT_EQ(count(html, "class='fault-band'"), 4u) << html;
  EXPECT_NE(html.find("class='fault-label'"), std::string::npos);
  EXPECT_NE(html.find(">blackhole@10s+8s</text>"), std::string::npos);
  EXPECT_NE(html.find(">reset@40s@2</text>"), std::string::npos);
  auto timeline = html.find("<h3>Sessions over time</h3>");
  auto table = html.find("<h3>Fault windows</h3>");
  auto pacer = html.find("<h3>Reconnect pacer: rate (connects/s)</h3>");
  ASSERT_NE(timeline, std::string::npos);
  ASSERT_NE(table, std::string::npos);
  ASSERT_NE(pacer, std::string::npos);
  EXPECT_LT(timeline, table);  // the table sits below the timeline
  EXPECT_NE(html.find("<td>blackhole@10s+8s</td><td>blackhole</td><td>10.0-18.0 s</td><td>3</td><td>2</td>"),
            std::string::npos)
      << html.substr(table, 2000);
  EXPECT_NE(html.find("aria-label='pacer rate'"), std::string::npos);
}

TEST_F(FaultReport, NothingNewWithoutFaults) {
  std::vector<Json> lines{runStarted(2), agent(0.5, 0, "connected"), agent(0.5, 1, "connected")};
  std::string path = (dir_ / "clean.jsonl").string();
  {
    std::ofstream out(path);
    for (const auto& l : lines) out << l.dump() << "\n";
  }
  report::Input in = report::read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  EXPECT_TRUE(in.runs[0].faults.empty());
  std::string html = report::renderHtml(in.runs);
  EXPECT_EQ(html.find("fault-band"), std::string::npos);
  EXPECT_EQ(html.find("Fault windows"), std::string::npos);
  EXPECT_EQ(html.find("Reconnect pacer"), std::string::npos);
  std::string table = report::markdown(in);
  EXPECT_EQ(table.find("Fault windows"), std::string::npos);
  EXPECT_EQ(table.find("Reconnect pacing"), std::string::npos);
  RunModel model;
  for (const auto& l : lines) model.onLine(l);
  std::string console = printed(model.summary(at(10), 10, 3));
  EXPECT_EQ(console.find("fault"), std::string::npos) << console;
  EXPECT_EQ(console.find("pacing"), std::string::npos) << console;
}
