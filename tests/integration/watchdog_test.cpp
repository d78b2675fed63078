// Issue 15, must-have 2: the agents' heartbeat and the supervisor's
// watchdog, against a real sshd with real signals. An agent stopped
// (SIGSTOP) or stuck in a call is caught within 3 heartbeats and a check
// tick, logged as agent_unresponsive, killed and restarted through the crash
// path, and the run goes on; an agent that writes garbage is a protocol
// error handled the same way, not an internal error; a short stop below the
// bound is no backlog of work it never did.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

pid_t agentPidOf(const std::string& logPath, int session) {
  auto started = ofSession(readJsonl(logPath), "agent_started", session);
  return started.empty() ? -1 : started.back()["pid"].get<pid_t>();
}

}  // namespace

TEST_F(SshdTest, AStoppedAgentIsCaughtWithinTheBoundKilledAndRestarted) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--heartbeat-secs", "1"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  pid_t victim = agentPidOf(logPath_, 1);
  ASSERT_GT(victim, 0);
  int64_t stoppedMs = monoMs();
  ASSERT_EQ(::kill(victim, SIGSTOP), 0);

  ASSERT_TRUE(waitForLog([](const auto& l) { return !ofSession(l, "agent_unresponsive", 1).empty(); }, 15))
      << soak.err();
  int64_t detectedMs = monoMs() - stoppedMs;
  // 3 heartbeats of silence counted from its last frame, which may be up to
  // one heartbeat older than the stop, then at most one check tick (1 s) and
  // the log poll's own granularity. silent_ms below is the exact check.
  EXPECT_GE(detectedMs, 1900);
  EXPECT_LE(detectedMs, 3 * 1000 + 1000 + 800);
  // The slot comes back and the run goes on.
  ASSERT_TRUE(waitForLog([](const auto& l) { return ofSession(l, "connected", 1).size() == 2; }, 30)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();

  auto lines = readJsonl(logPath_);
  auto unresponsive = ofSession(lines, "agent_unresponsive", 1);
  ASSERT_EQ(unresponsive.size(), 1u);
  const Json& u = unresponsive[0];
  EXPECT_EQ(u["pid"], victim);
  EXPECT_EQ(u["success"], false);
  EXPECT_GE(u["silent_ms"].get<int64_t>(), 3000);
  EXPECT_LE(u["silent_ms"].get<int64_t>(), 4500);
  // Idle after its connect: its last heartbeat, if it sent one before the
  // stop, was in the session.
  EXPECT_TRUE(u["last_phase"].is_null() || u["last_phase"] == "session") << u.dump();
  EXPECT_EQ(u["last_event"], "after connected") << u.dump();
  // The crash path: agent_crashed saying why, then a restart.
  auto crashed = ofSession(lines, "agent_crashed", 1);
  ASSERT_EQ(crashed.size(), 1u);
  EXPECT_EQ(crashed[0]["pid"], victim);
  EXPECT_EQ(crashed[0]["signal_name"], "SIGKILL");
  EXPECT_NE(crashed[0]["detail"].get<std::string>().find("killed as unresponsive"), std::string::npos)
      << crashed[0].dump();
  EXPECT_TRUE(crashed[0]["restart_in_ms"].is_number());
  EXPECT_EQ(ofSession(lines, "agent_started", 1).size(), 2u);
  // The other agent was never suspected, and no heartbeat reached the log.
  EXPECT_TRUE(ofSession(lines, "agent_unresponsive", 0).empty());
  EXPECT_TRUE(linesOf(lines, "heartbeat").empty());
  const Json summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 1);
  EXPECT_EQ(summary["agents_unresponsive"], 1);
  EXPECT_EQ(summary["per_session"][1]["agents_unresponsive"], 1);
}

TEST_F(SshdTest, AnAgentStuckInACallIsCaughtAndRestarted) {
  // Every agent blocks for good in a read 1.5 s after its start, sending
  // nothing, heartbeat included: each is caught, killed and restarted.
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--heartbeat-secs", "1",
                             "--hang-for-testing", "1500", "--restart-max", "10"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "agent_started").size() >= 2; }, 30)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();
  auto lines = readJsonl(logPath_);
  auto unresponsive = linesOf(lines, "agent_unresponsive");
  ASSERT_GE(unresponsive.size(), 1u);
  // "session" if a heartbeat went out between its connect and the hang (the
  // connect is slow under load or a sanitizer: then none did).
  EXPECT_TRUE(unresponsive[0]["last_phase"].is_null() || unresponsive[0]["last_phase"] == "session")
      << unresponsive[0].dump();
  EXPECT_GE(unresponsive[0]["silent_ms"].get<int64_t>(), 3000);
  auto crashed = linesOf(lines, "agent_crashed");
  ASSERT_GE(crashed.size(), 1u);
  EXPECT_NE(crashed[0]["detail"].get<std::string>().find("killed as unresponsive"), std::string::npos);
  EXPECT_TRUE(crashed[0]["restart_in_ms"].is_number());
}

TEST_F(SshdTest, AnAgentThatNeverStartsIsCaughtToo) {
  // Stopped before it could say agent_started: silent from its spawn on.
  // The supervisor is its parent: its first agent is found by /proc.
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--heartbeat-secs", "1"}),
                   /*stdinPipe=*/true);
  pid_t agent = -1;
  for (int i = 0; i < 200 && agent < 0; ++i) {
    for (pid_t k : childrenOf(soak.pid())) {
      if (cmdlineOf(k).find("sshsoak-agent") != std::string::npos) agent = k;
    }
    if (agent < 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(agent, 0);
  ::kill(agent, SIGSTOP);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "agent_unresponsive").empty(); }, 15)) << soak.err();
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "connected").empty(); }, 30)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();
  auto lines = readJsonl(logPath_);
  const Json u = linesOf(lines, "agent_unresponsive").at(0);
  // It may have said agent_started before the stop landed; if not, nothing.
  if (u["last_event"].is_null()) {
    EXPECT_TRUE(u["last_phase"].is_null()) << u.dump();
  }
  EXPECT_EQ(u["pid"], agent);
}

TEST_F(SshdTest, AnAgentWritingGarbageIsAProtocolErrorNotAnInternalError) {
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--garbage-for-testing",
                             "--restart-max", "2", "--restart-window-secs", "60"}),
                   /*stdinPipe=*/true);
  // Every agent does it: a crash loop, given up after --restart-max.
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "agent_gave_up").empty(); }, 30)) << soak.err();
  soak.writeStdin("q\n");
  int code = soak.wait(30);
  EXPECT_EQ(code, exit_code::CRITERIA_FAILED) << soak.err();
  auto lines = readJsonl(logPath_);
  auto errors = linesOf(lines, "agent_protocol_error");
  ASSERT_GE(errors.size(), 2u);
  EXPECT_NE(errors[0]["detail"].get<std::string>().find("frame"), std::string::npos) << errors[0].dump();
  auto crashed = linesOf(lines, "agent_crashed");
  ASSERT_EQ(crashed.size(), errors.size());
  EXPECT_NE(crashed[0]["detail"].get<std::string>().find("killed for a protocol error"), std::string::npos)
      << crashed[0].dump();
  // What came before the bad frame is logged.
  EXPECT_EQ(linesOf(lines, "agent_started").size(), errors.size());
  EXPECT_EQ(linesOf(lines, "summary").at(0)["agent_protocol_errors"], errors.size());
}

TEST_F(SshdTest, AShortStopIsNoBacklogOfWorkNeverDone) {
  // Heartbeat 5 s: a 2.5 s stop is below the watchdog's bound. PTY cycles
  // every 0.2 s and a poll every second: the stop misses ~12 cycles and
  // 2 polls, which must not show up as a burst of zero-length cycles or
  // back-to-back polls after SIGCONT.
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--heartbeat-secs", "5",
                             "--log-detail", "full", "--pty-interval-secs", "0.2", "--poll-interval-secs", "1",
                             "--intensity", "low"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "pty_cycle").size() >= 5; }, 30)) << soak.err();
  pid_t agent = agentPidOf(logPath_, 0);
  ASSERT_GT(agent, 0);
  ASSERT_EQ(::kill(agent, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  size_t cyclesBefore = linesOf(readJsonl(logPath_), "pty_cycle").size();
  size_t pollsBefore = linesOf(readJsonl(logPath_), "exec_poll").size();
  ASSERT_EQ(::kill(agent, SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto lines = readJsonl(logPath_);
  size_t cyclesAfter = linesOf(lines, "pty_cycle").size() - cyclesBefore;
  size_t pollsAfter = linesOf(lines, "exec_poll").size() - pollsBefore;
  soak.writeStdin("q\n");
  soak.wait(30);
  // One second after the resume: about 5 cycles and 1-2 polls, not the 12
  // cycles and 2 polls the stop missed on top of them.
  EXPECT_LE(cyclesAfter, 8u);
  EXPECT_LE(pollsAfter, 2u);
  // The cycles the remote printed during the stop were drained, not
  // counted: the cycle numbers jump over them.
  auto cycles = linesOf(readJsonl(logPath_), "pty_cycle");
  bool jumped = false;
  for (size_t i = 1; i < cycles.size(); ++i) {
    if (cycles[i]["cycle"].get<uint32_t>() > cycles[i - 1]["cycle"].get<uint32_t>() + 5) jumped = true;
  }
  EXPECT_TRUE(jumped);
  EXPECT_TRUE(linesOf(readJsonl(logPath_), "agent_unresponsive").empty());
}

TEST_F(SshdTest, AStopEndingInALongWaitWithDataReadyIsStillNoBacklog) {
  // The stop lands after a cycle's last echo probe: the agent sleeps until
  // its next keepalive or heartbeat (seconds away), and the remote's next
  // burst arrives while it is stopped. On SIGCONT poll() returns at once
  // with data, earlier than its timeout, so a late wake-up cannot show the
  // stop; the burst printed meanwhile must still not count as a cycle.
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--heartbeat-secs", "30",
                             "--log-detail", "full", "--pty-interval-secs", "4", "--poll-interval-secs", "60",
                             "--keepalive-interval-secs", "10", "--intensity", "low"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "pty_cycle").empty(); }, 30)) << soak.err();
  const uint32_t seen = linesOf(readJsonl(logPath_), "pty_cycle").back()["cycle"].get<uint32_t>();
  pid_t agent = agentPidOf(logPath_, 0);
  ASSERT_GT(agent, 0);
  // Probes at 1, 2 and 3 s of the 4 s pause; the next burst at 4 s.
  std::this_thread::sleep_for(std::chrono::milliseconds(3300));
  ASSERT_EQ(::kill(agent, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(::kill(agent, SIGCONT), 0);
  ASSERT_TRUE(waitForLog(
      [&](const auto& l) {
        auto c = linesOf(l, "pty_cycle");
        return !c.empty() && c.back()["cycle"].template get<uint32_t>() >= seen + 2;
      },
      30))
      << soak.err();
  soak.writeStdin("q\n");
  soak.wait(30);
  for (const auto& c : linesOf(readJsonl(logPath_), "pty_cycle")) {
    EXPECT_NE(c["cycle"].get<uint32_t>(), seen + 1) << "the burst printed during the stop was counted: " << c.dump();
  }
  EXPECT_TRUE(linesOf(readJsonl(logPath_), "agent_unresponsive").empty());
}

namespace {

const Json* criterionOf(const Json& summary, const std::string& name) {
  for (const auto& c : summary["verdict"]) {
    if (c["criterion"] == name) return &c;
  }
  return nullptr;
}

}  // namespace

TEST_F(SshdTest, ASupervisorThatCouldNotSampleSaysSoInTheVerdictAndKillsNoAgent) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--heartbeat-secs", "1"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  // Stopped for longer than the watchdog's bound (3 s): the agents' silence
  // meanwhile is the supervisor's, not theirs.
  ASSERT_EQ(::kill(soak.pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::seconds(6));
  ASSERT_EQ(::kill(soak.pid(), SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();
  auto lines = readJsonl(logPath_);
  EXPECT_TRUE(linesOf(lines, "agent_unresponsive").empty());
  EXPECT_TRUE(linesOf(lines, "agent_crashed").empty());
  const Json summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 0);
  const Json* gap = criterionOf(summary, "unsampled_secs");
  ASSERT_NE(gap, nullptr) << summary["verdict"].dump();
  EXPECT_EQ((*gap)["result"], "fail") << gap->dump();
  EXPECT_GE((*gap)["measured"].get<double>(), 5.5) << gap->dump();
  EXPECT_NE((*gap)["note"].get<std::string>().find("not sampled for"), std::string::npos) << gap->dump();
  // The only failed criterion: the run itself was fine.
  for (const auto& c : summary["verdict"]) {
    if (c["criterion"] != "unsampled_secs") {
      EXPECT_NE(c["result"], "fail") << c.dump();
    }
  }
  // `report` reads the same lines and comes to the same verdict.
}

namespace {

uint64_t rssKbOf(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      uint64_t kb = 0;
      status >> kb;
      return kb;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

}  // namespace

TEST_F(SshdTest, APtyFloodIsReportedAndTheAgentStaysSmallAndAlive) {
  // A server whose session floods the PTY: the PTY workload's remote loop is
  // replaced by `yes`; the first exec and the polls run as asked.
  sshd_.reset();
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{
      .extraConfig = "ForceCommand case \"$SSH_ORIGINAL_COMMAND\" in *@@sshsoak-begin*) exec yes "
                     "sshsoak-flood-line;; *) eval \"$SSH_ORIGINAL_COMMAND\";; esac\n"});
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--heartbeat-secs", "1", "--intensity",
                             "low", "--pty-interval-secs", "1"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "pty_flood").size() >= 2; }, 30)) << soak.err();
  pid_t agent = agentPidOf(logPath_, 0);
  ASSERT_GT(agent, 0);
  // Drained, not stored: a few seconds of flood later the agent is as small
  // as an agent is (~10 MB; 64 MB leaves room for a sanitizer build).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  uint64_t rssKb = rssKbOf(agent);
  EXPECT_GT(rssKb, 0u);
  EXPECT_LT(rssKb, uint64_t{64} * 1024 + static_cast<uint64_t>(ASAN_QUARANTINE_KB)) << "agent RSS " << rssKb << " kB under a PTY flood";
  soak.writeStdin("q\n");
  int code = soak.wait(30);
  EXPECT_TRUE(code == exit_code::PASSED || code == exit_code::CRITERIA_FAILED) << code << soak.err();
  auto lines = readJsonl(logPath_);
  auto floods = linesOf(lines, "pty_flood");
  ASSERT_GE(floods.size(), 2u);
  for (const auto& f : floods) {
    EXPECT_EQ(f["success"], false);
    EXPECT_GT(f["bytes"].get<uint64_t>(), 10 * f["expected_bytes"].get<uint64_t>()) << f.dump();
    EXPECT_LE(f["window_ms"].get<uint64_t>(), 1000u) << f.dump();
  }
  // Once per window at most.
  for (size_t i = 1; i < floods.size(); ++i) {
    EXPECT_GE(parseIsoTimestamp(floods[i]["ts"].get<std::string>()) - parseIsoTimestamp(floods[i - 1]["ts"].get<std::string>()), 900'000'000) << i;
  }
  // The loop kept turning: no watchdog kill, a clean stop on `q`.
  EXPECT_TRUE(linesOf(lines, "agent_unresponsive").empty());
  EXPECT_EQ(linesOf(lines, "agent_stopped").size(), 1u);
  const Json summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["pty_floods"], floods.size());
  EXPECT_NE(soak.out().find("PTY floods"), std::string::npos) << soak.out();
}
