// --workload churn against a real OpenSSH sshd: the real sshsoak binary
// reaches a modest target rate with no failures; a sshd restart, a tiny
// MaxStartups and injected drops are failures of single connections, named
// by kind, while the agents go on; an agent SIGKILLed mid-churn is
// restarted and reports again.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <set>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

struct ChurnTotals {
  uint64_t attempted = 0, succeeded = 0, failed = 0, cpuMs = 0, intervalMs = 0;
  std::map<std::string, uint64_t> failures;  // kind -> count
  std::map<std::string, std::string> examples;
  uint64_t totalCount = 0;  // connections in the "total" histograms
};

ChurnTotals totalsOf(const std::vector<Json>& lines, int session = -1) {
  ChurnTotals t;
  for (const auto& s : linesOf(lines, "churn_stats")) {
    if (session >= 0 && s["session_id"] != session) continue;
    t.attempted += s["attempted"].get<uint64_t>();
    t.succeeded += s["succeeded"].get<uint64_t>();
    t.failed += s["failed"].get<uint64_t>();
    t.cpuMs += s["cpu_ms"].get<uint64_t>();
    t.intervalMs += s["interval_ms"].get<uint64_t>();
    t.totalCount += s["latency_us"]["total"]["n"].get<uint64_t>();
    for (const auto& [kind, f] : s["failures"].items()) {
      t.failures[kind] += f["count"].get<uint64_t>();
      if (t.examples.count(kind) == 0) t.examples[kind] = f["example"].get<std::string>();
    }
  }
  return t;
}

std::string describe(const ChurnTotals& t) {
  std::string s = std::to_string(t.attempted) + " attempted, " + std::to_string(t.succeeded) + " ok, " +
                  std::to_string(t.failed) + " failed:";
  for (const auto& [kind, n] : t.failures) s += " " + kind + "=" + std::to_string(n) + " (" + t.examples.at(kind) + ")";
  return s;
}

// Successful connections a session reported in lines after index `from`.
uint64_t succeededAfter(const std::vector<Json>& lines, size_t from, int session) {
  uint64_t n = 0;
  for (size_t i = from; i < lines.size(); ++i) {
    if (lines[i]["event"] == "churn_stats" && lines[i]["session_id"] == session) {
      n += lines[i]["succeeded"].get<uint64_t>();
    }
  }
  return n;
}

void expectCleanEnd(const std::vector<Json>& lines, int sessions) {
  auto crashed = linesOf(lines, "agent_crashed");
  EXPECT_EQ(crashed.size(), 0u) << (crashed.empty() ? "" : crashed.front().dump());
  EXPECT_EQ(linesOf(lines, "agent_stopped").size(), static_cast<size_t>(sessions));
  EXPECT_EQ(linesOf(lines, "agent_exited").size(), static_cast<size_t>(sessions));
  // The last partial interval is reported before agent_stopped.
  for (int s = 0; s < sessions; ++s) {
    int lastStats = -1, stopped = -1;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i]["session_id"] != s) continue;
      if (lines[i]["event"] == "churn_stats") lastStats = static_cast<int>(i);
      if (lines[i]["event"] == "agent_stopped") stopped = static_cast<int>(i);
    }
    EXPECT_GE(lastStats, 0) << "session " << s;
    EXPECT_LT(lastStats, stopped) << "session " << s;
  }
}

}  // namespace

TEST_F(SshdTest, ChurnReachesAModestRateWithoutFailures) {
  auto r = runSoak(soakArgs({"--workload", "churn", "--churn-rate", "20", "--sessions", "3", "--duration-secs", "5",
                             "--churn-report-secs", "1"}),
                   60);
  ASSERT_NE(r.exitCode, -1) << r.err;
  expectCleanEnd(r.lines, 3);
  ChurnTotals t = totalsOf(r.lines);
  std::printf("%s; agent CPU %.2f ms per connection\n", describe(t).c_str(),
              static_cast<double>(t.cpuMs) / static_cast<double>(std::max<uint64_t>(t.attempted, 1)));
  EXPECT_EQ(t.failed, 0u) << describe(t);
  // 20/s for 5 s, less the agents' start (a few connections at most).
  EXPECT_GE(t.succeeded, 85u) << describe(t);
  EXPECT_LE(t.attempted, 102u) << describe(t);
  EXPECT_EQ(t.totalCount, t.succeeded);
  // Every agent took its share of the schedule.
  for (int s = 0; s < 3; ++s) EXPECT_GE(totalsOf(r.lines, s).succeeded, 25u) << "session " << s;

  auto stats = linesOf(r.lines, "churn_stats");
  ASSERT_FALSE(stats.empty());
  const Json& one = stats.front();
  EXPECT_DOUBLE_EQ(one["target_per_sec"].get<double>(), 20.0);
  for (const char* measure : {"tcp", "kex", "auth", "exec", "close", "total", "service"}) {
    ASSERT_TRUE(one["latency_us"].contains(measure)) << measure;
  }
  for (const auto& s : stats) {
    if (s["succeeded"] == 0) continue;
    auto lat = s["latency_us"];
    // The phases add up to no more than the whole, and none is zero.
    EXPECT_GT(lat["tcp"]["p50"].get<uint64_t>(), 0u);
    EXPECT_GT(lat["kex"]["p50"].get<uint64_t>(), lat["tcp"]["p50"].get<uint64_t>());
    EXPECT_GE(lat["total"]["max"].get<uint64_t>(), lat["service"]["max"].get<uint64_t>() * 99 / 100);
    // Waiting for the next intended start costs no CPU: 7 connections a
    // second per agent are a few ms of work each, nowhere near the interval.
    EXPECT_LT(s["cpu_ms"].get<uint64_t>() * 2, s["interval_ms"].get<uint64_t>()) << s.dump();
    EXPECT_LT(s["behind_ms"].get<uint64_t>(), 1000u) << s.dump();
  }
}

// F3 for churn: sshd killed and started again on the same port.
TEST_F(SshdTest, ChurnCountsASshdRestartAsCategorisedFailuresAndGoesOn) {
  SoakProcess soak(
      soakArgs({"--workload", "churn", "--churn-rate", "30", "--sessions", "3", "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return totalsOf(l).succeeded >= 15; }, 30)) << soak.err();
  sshd_->stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  size_t mark = readJsonl(logPath_).size();
  sshd_->start();
  // Every agent connects again after the restart.
  ASSERT_TRUE(waitForLog(
      [&](const auto& l) {
        for (int s = 0; s < 3; ++s) {
          if (succeededAfter(l, mark, s) < 3) return false;
        }
        return true;
      },
      30))
      << soak.err();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_NE(soak.wait(30), -1) << soak.err();
  auto lines = readJsonl(logPath_);
  expectCleanEnd(lines, 3);
  ChurnTotals t = totalsOf(lines);
  std::printf("%s\n", describe(t).c_str());
  // While sshd was down: refused; connections it was serving were cut in
  // whatever phase they were in (the key exchange and authentication too:
  // CI once saw "kex: Unable to exchange encryption keys"). Each failure is
  // named by its phase.
  EXPECT_GT(t.failures["refused"], 0u) << describe(t);
  EXPECT_NE(t.examples["refused"].find("refused"), std::string::npos) << describe(t);
  const std::set<std::string> expected = {"refused", "reset_before_banner", "kex", "auth", "exec", "other"};
  for (const auto& [kind, n] : t.failures) EXPECT_TRUE(expected.count(kind) > 0) << kind << ": " << describe(t);
  // Started but not finished: only the connections cut short by the
  // shutdown, at most one per agent.
  EXPECT_LE(t.attempted - t.succeeded - t.failed, 3u) << describe(t);
}

TEST_F(SshdTest, ChurnAgentSigkilledIsRestartedAndReportsAgain) {
  SoakProcess soak(
      soakArgs({"--workload", "churn", "--churn-rate", "10", "--sessions", "2", "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return totalsOf(l, 1).succeeded >= 2; }, 30)) << soak.err();
  auto lines = readJsonl(logPath_);
  auto started = linesOf(lines, "agent_started");
  pid_t victim = -1;
  for (const auto& s : started) {
    if (s["session_id"] == 1) victim = s["pid"].get<pid_t>();
  }
  ASSERT_GT(victim, 0);
  ASSERT_NE(cmdlineOf(victim).find("sshsoak-agent"), std::string::npos);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  size_t mark = lines.size();
  // Restarted by the supervisor, and churning again on the run's schedule.
  ASSERT_TRUE(waitForLog([&](const auto& l) { return succeededAfter(l, mark, 1) >= 3; }, 30)) << soak.err();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_NE(soak.wait(30), -1) << soak.err();
  lines = readJsonl(logPath_);
  auto crashed = linesOf(lines, "agent_crashed");
  ASSERT_EQ(crashed.size(), 1u);
  EXPECT_EQ(crashed[0]["session_id"], 1);
  EXPECT_EQ(crashed[0]["signal_name"], "SIGKILL");
  size_t session1Starts = 0;
  for (const auto& s : linesOf(lines, "agent_started")) session1Starts += s["session_id"] == 1 ? 1 : 0;
  EXPECT_EQ(session1Starts, 2u);
  // The restarted agent joined the schedule where it stood: no backlog, so
  // it is not behind by the time it was down.
  bool afterRestart = false;
  for (const auto& l : lines) {
    if (l["event"] == "agent_started" && l["session_id"] == 1 && l["pid"] != victim) afterRestart = true;
    if (afterRestart && l["event"] == "churn_stats" && l["session_id"] == 1) {
      EXPECT_LT(l["behind_ms"].get<uint64_t>(), 500u) << l.dump();
    }
  }
  // The other agent was not disturbed.
  EXPECT_EQ(totalsOf(lines, 0).failed, 0u);
}

// sshd's MaxStartups refuses unauthenticated connections beyond its limit
// by closing them before its banner: named as such, not as a kex failure.
TEST_F(SshdTest, ChurnNamesMaxStartupsDropsResetBeforeBanner) {
  sshd_.reset();
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{.extraConfig = "MaxStartups 1:100:1"});
  auto r = runSoak(soakArgs({"--workload", "churn", "--churn-rate", "0", "--sessions", "4", "--duration-secs", "3",
                             "--churn-command", ""}),
                   60);
  ASSERT_NE(r.exitCode, -1) << r.err;
  expectCleanEnd(r.lines, 4);
  ChurnTotals t = totalsOf(r.lines);
  std::printf("%s\n", describe(t).c_str());
  EXPECT_GT(t.failures["reset_before_banner"], 0u) << describe(t);
  EXPECT_NE(t.examples["reset_before_banner"].find("MaxStartups"), std::string::npos) << describe(t);
  EXPECT_EQ(t.failures["kex"], 0u) << describe(t);
  EXPECT_GT(t.succeeded, 0u) << describe(t);
  EXPECT_NE(sshd_->log().find("past MaxStartups"), std::string::npos);
  // --churn-command '': no channel, so no exec phase.
  for (const auto& s : linesOf(r.lines, "churn_stats")) EXPECT_EQ(s["latency_us"]["exec"]["n"], 0) << s.dump();
}

// An injected drop cuts the connection in flight: a failure of that
// connection ("dropped"), and the agent goes on with the next.
TEST_F(SshdTest, ChurnDropFailsTheConnectionInFlightOnly) {
  auto r = runSoak(soakArgs({"--workload", "churn", "--churn-rate", "0", "--sessions", "2", "--duration-secs", "4",
                             "--drop", "2", "--log-each-connection"}),
                   60);
  ASSERT_NE(r.exitCode, -1) << r.err;
  expectCleanEnd(r.lines, 2);
  // A rare ASan abort of a churn agent here (about 1 run in 10, seen while
  // building issue 13) is not understood yet: keep its report when it comes.
  if (HasFailure()) std::printf("sshsoak stderr (agents' sanitizer reports land here):\n%s\n", r.err.c_str());
  ChurnTotals t = totalsOf(r.lines);
  std::printf("%s\n", describe(t).c_str());
  EXPECT_EQ(t.failures["dropped"], 2u) << describe(t);
  EXPECT_EQ(t.failed, 2u) << describe(t);
  EXPECT_NE(t.examples["dropped"].find("injected drop"), std::string::npos);
  // One line per connection, and the dropped ones say so.
  auto each = linesOf(r.lines, "churn_connection");
  EXPECT_EQ(each.size(), t.succeeded + t.failed);
  size_t dropped = 0;
  for (const auto& c : each) dropped += c.value("failure_kind", "") == "dropped" ? 1 : 0;
  EXPECT_EQ(dropped, 2u);
  // Both agents went on after the drop.
  for (int s = 0; s < 2; ++s) {
    bool sawDrop = false;
    uint64_t after = 0;
    for (const auto& c : each) {
      if (c["session_id"] != s) continue;
      if (c.value("failure_kind", "") == "dropped") sawDrop = true;
      else if (sawDrop && c["success"] == true) ++after;
    }
    EXPECT_GT(after, 0u) << "session " << s;
  }
}
