// Failure scenarios F1-F5 (docs/runbook.md, section 4) against a real sshd: real iptables
// drops inside a private network namespace, a real sshd restart, a real
// revoked key, and ten sessions dropped at once.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <filesystem>
#include <fstream>
#include <thread>
#include <sys/wait.h>

#include "netns.h"
#include "shared/clock.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

std::set<int> sessionsWith(const std::vector<Json>& lines, const std::string& event) {
  std::set<int> s;
  for (const auto& l : linesOf(lines, event)) s.insert(l["session_id"].get<int>());
  return s;
}

std::map<int, pid_t> agentPids(const std::vector<Json>& lines) {
  std::map<int, pid_t> pids;
  for (const auto& l : linesOf(lines, "agent_started")) pids[l["session_id"].get<int>()] = l["pid"].get<pid_t>();
  return pids;
}

int64_t parseIso(const std::string& ts) {
  Json j;
  j["ts"] = ts;
  return tsNs(j);
}

}  // namespace

class Reconnect : public NetnsSshdTest {
 protected:
  std::string port() const { return std::to_string(sshd_->port()); }
  void cut(const std::string& verb) {
    iptables(verb + " INPUT -p tcp --dport " + port() + " -j DROP");
    iptables(verb + " INPUT -p tcp --sport " + port() + " -j DROP");
  }
  bool allConnected(size_t n) {
    return waitForLog([n](const auto& l) { return sessionsWith(l, "connected").size() == n; }, 30);
  }
};

// F1: a short drop (8 s). With a 2 s x 3 keepalive budget the sessions see
// it, reconnect, and are usable again within 15 s of the drop's start.
TEST_F(Reconnect, F1ShortDropEverySessionBackWithin15s) {
  if (delegated()) return;
  SoakProcess soak(soakArgs({"--duration-secs", "60", "--keepalive-interval-secs", "2", "--keepalive-count-max", "3",
                             "--poll-interval-secs", "1"}));
  ASSERT_TRUE(allConnected(10)) << soak.err();
  int64_t dropNs = wallNs();
  cut("-A");
  std::this_thread::sleep_for(std::chrono::seconds(8));
  cut("-D");
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "reconnected").size() == 10; }, 20)) << soak.err();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.out();
  auto lines = readJsonl(logPath_);
  for (const auto& r : linesOf(lines, "reconnected")) {
    double backS = static_cast<double>(tsNs(r) - dropNs) / 1e9;
    std::printf("session %d: usable again %.2f s after the drop began (reconnect %d ms, attempt %d)\n",
                r["session_id"].get<int>(), backS, r["elapsed_ms"].get<int>(), r["attempt"].get<int>());
    EXPECT_LE(backS, 15.0) << r.dump();
  }
  auto summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 0);
  EXPECT_EQ(summary["global_reconnect_rate_pct"], 100.0);
  EXPECT_TRUE(linesOf(lines, "manual_reconnect_required").empty());
}

// F2: a drop longer than the whole retry budget: every session ends in the
// manual state, says so once, and then costs no CPU.
TEST_F(Reconnect, F2LongDropEndsInManualStateWithoutBusyLoop) {
  if (delegated()) return;
  SoakProcess soak(soakArgs({"--sessions", "4", "--duration-secs", "60", "--keepalive-interval-secs", "1",
                             "--keepalive-count-max", "2", "--max-reconnect-attempts", "2",
                             "--reconnect-timeout-secs", "2", "--backoff-base-ms", "200", "--backoff-cap-ms", "400"}));
  ASSERT_TRUE(allConnected(4)) << soak.err();
  cut("-A");
  // Detect (2 s) + 2 x (backoff <= 0.4 s + timeout 2 s): well inside 15 s.
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "manual_reconnect_required").size() == 4; }, 20))
      << soak.err();
  auto pids = agentPids(readJsonl(logPath_));
  std::map<int, long> before;
  for (auto [id, pid] : pids) before[id] = cpuTicks(pid);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (auto [id, pid] : pids) {
    long used = cpuTicks(pid) - before[id];
    std::printf("session %d in manual state: %ld CPU ticks over 3 s\n", id, used);
    EXPECT_LE(used, 1) << "agent " << pid << " is busy while waiting for a user";
  }
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED);
  auto lines = readJsonl(logPath_);
  EXPECT_EQ(linesOf(lines, "manual_reconnect_required").size(), 4u) << "the manual state is reported once per session";
  std::map<int, int> failures;
  for (const auto& f : linesOf(lines, "reconnect_failed")) failures[f["session_id"].get<int>()]++;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(failures[i], 2) << "session " << i << ": exactly the allowed attempts";
  auto summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["sessions_manual"], 4);
  EXPECT_EQ(summary["abnormal_ends"], 4);
  cut("-D");
}

// F3: sshd killed and started again on the same port 3 s later.
TEST_F(SshdTest, F3SshdRestartSessionsReconnect) {
  SoakProcess soak(soakArgs({"--duration-secs", "60", "--max-reconnect-attempts", "8", "--sessions", "5"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "connected").size() == 5; }, 30)) << soak.err();
  sshd_->stop();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  sshd_->start();
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "reconnected").size() == 5; }, 30)) << soak.err();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();
  auto lines = readJsonl(logPath_);
  for (const auto& d : linesOf(lines, "disconnected")) EXPECT_TRUE(d["cause"] == "eof" || d["cause"] == "reset");
  // While sshd was down, attempts failed as "refused", a clean transition.
  for (const auto& f : linesOf(lines, "reconnect_failed")) EXPECT_EQ(f["category"], "refused") << f.dump();
  for (const auto& r : linesOf(lines, "reconnected")) {
    std::printf("session %d back after %d ms, attempt %d\n", r["session_id"].get<int>(), r["elapsed_ms"].get<int>(),
                r["attempt"].get<int>());
    EXPECT_GE(r["elapsed_ms"].get<int>(), 2500);
  }
  EXPECT_EQ(linesOf(lines, "summary").at(0)["abnormal_ends"], 0);
}

// F4: the key is revoked, then the link drops: auth_failed once, no retry.
TEST_F(SshdTest, F4AuthFailureIsReportedOnceAndNeverRetried) {
  SoakProcess soak(soakArgs({"--sessions", "3", "--duration-secs", "60", "--drop", "2", "--max-reconnect-attempts", "5"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "connected").size() == 3; }, 30)) << soak.err();
  sshd_->revokeClientKey();
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "auth_failed").size() == 3; }, 30)) << soak.err();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // time for any (wrong) retry to show
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED);
  auto lines = readJsonl(logPath_);
  EXPECT_EQ(linesOf(lines, "auth_failed").size(), 3u);
  EXPECT_EQ(linesOf(lines, "disconnect_injected").size(), 3u);
  std::map<int, int> attempts;
  for (const auto& f : linesOf(lines, "reconnect_failed")) {
    attempts[f["session_id"].get<int>()]++;
    EXPECT_EQ(f["category"], "auth");
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(attempts[i], 1) << "session " << i << " retried an auth failure";
  EXPECT_TRUE(linesOf(lines, "reconnected").empty());
}

// --max-reconnect-attempts 0: a lost session is not reconnected at all; it
// goes straight to manual_reconnect_required, with no attempt, jitter or token.
TEST_F(SshdTest, ZeroReconnectAttemptsMeansALostSessionIsNotReconnected) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "60", "--drop", "2", "--max-reconnect-attempts", "0"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "manual_reconnect_required").size() == 2; }, 30))
      << soak.err();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // time for any (wrong) attempt to show
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED);
  auto lines = readJsonl(logPath_);
  EXPECT_TRUE(linesOf(lines, "reconnected").empty());
  EXPECT_TRUE(linesOf(lines, "reconnect_failed").empty());
  for (const auto& m : linesOf(lines, "manual_reconnect_required")) {
    EXPECT_EQ(m["attempt"], 0);
    EXPECT_NE(m["detail"].get<std::string>().find("gave up after 0 attempts"), std::string::npos) << m.dump();
  }
  EXPECT_EQ(linesOf(lines, "summary").at(0)["abnormal_ends"], 2);
}

// F5: all sessions dropped at once. Jitter and the shared token bucket
// spread the attempts: grants stay within burst + rate x t, and sshd's
// MaxStartups never has to refuse anyone.
TEST_F(SshdTest, F5AllDroppedAtOnceNoStorm) {
  SoakProcess soak(soakArgs({"--duration-secs", "60", "--drop", "3", "--token-rate", "5", "--token-burst", "5"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return sessionsWith(l, "reconnected").size() == 10; }, 40)) << soak.err();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();
  auto lines = readJsonl(logPath_);
  std::vector<int64_t> grants;
  for (const auto& ev : {"reconnected", "reconnect_failed"}) {
    for (const auto& l : linesOf(lines, ev)) grants.push_back(parseIso(l["token_granted_at"].get<std::string>()));
  }
  std::sort(grants.begin(), grants.end());
  ASSERT_GE(grants.size(), 10u);
  double spreadS = static_cast<double>(grants.back() - grants.front()) / 1e9;
  std::printf("%zu reconnect attempts granted over %.2f s\n", grants.size(), spreadS);
  // GCRA: in any window of t seconds at most burst + rate x t grants (one
  // extra for the clock's rounding between processes).
  for (size_t i = 0; i < grants.size(); ++i) {
    for (size_t j = i; j < grants.size(); ++j) {
      double t = static_cast<double>(grants[j] - grants[i]) / 1e9;
      EXPECT_LE(static_cast<double>(j - i + 1), 5 + 5 * t + 1) << "window " << i << ".." << j;
    }
  }
  EXPECT_GE(spreadS, (10 - 5) / 5.0 - 0.2) << "ten attempts cannot fit in less than (N - burst) / rate";
  std::string log = sshd_->log();
  EXPECT_EQ(log.find("MaxStartups"), std::string::npos) << log;
  EXPECT_EQ(log.find("drop connection"), std::string::npos) << log;
  auto summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 0);
  EXPECT_EQ(summary["reconnect_attempts"].get<size_t>(), grants.size());
  EXPECT_EQ(summary["sessions_opened"], 20) << "each slot: its first session and one after the drop";
  EXPECT_EQ(summary["sessions_manual"], 0);
  for (const auto& p : summary["per_session"]) EXPECT_EQ(p["reconnect_success_rate_pct"], 100.0);
}

// --drop on some sessions, periodically; --fault-cmd runs the user's command
// at its time and logs its exit status and output.
TEST_F(SshdTest, ScheduledDropsAndFaultCommands) {
  std::string marker = workDir_ + "/fault-ran";
  auto r = runSoak(soakArgs({"--sessions", "3", "--duration-secs", "8", "--drop", "2/2@0,2", "--fault-cmd",
                             "3:echo fault-output; touch " + marker + "; exit 3", "--backoff-base-ms", "100"}));
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  std::map<int, int> drops;
  for (const auto& d : linesOf(r.lines, "disconnect_injected")) drops[d["session_id"].get<int>()]++;
  EXPECT_GE(drops[0], 2) << "every 2 s from 2 s in an 8 s run";
  EXPECT_GE(drops[2], 2);
  EXPECT_EQ(drops[1], 0) << "session 1 was not named";
  auto faults = linesOf(r.lines, "fault_injected");
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0]["exit_code"], 3);
  EXPECT_EQ(faults[0]["success"], false);
  EXPECT_NE(faults[0]["output_tail"].get<std::string>().find("fault-output"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(marker));
  EXPECT_EQ(linesOf(r.lines, "fault_started").size(), 1u);
  // Not a terminal: no status line in the console output.
  EXPECT_EQ(r.err.find("\033[K"), std::string::npos);
  EXPECT_EQ(r.out.find("\033[K"), std::string::npos);
}

TEST_F(SshdTest, StatusLineUpdatesInPlaceOnATerminal) {
  // util-linux's script(1) gives sshsoak a pseudo-terminal for stdout and
  // stderr, as a person watching it would.
  std::string cmd = std::string(SSHSOAK_BIN);
  for (const auto& a : soakArgs({"--sessions", "2", "--duration-secs", "4"})) cmd += " '" + a + "'";
  std::string out = workDir_ + "/tty.txt";
  std::string full = "script -q -e -c \"" + cmd + " </dev/null\" " + out + " >/dev/null 2>&1";
  int rc = std::system(full.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), exit_code::PASSED);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\r\033[K[00:0"), std::string::npos) << "no status line on a terminal";
  EXPECT_NE(text.find("up 2/2"), std::string::npos) << text.substr(0, 2000);
}
