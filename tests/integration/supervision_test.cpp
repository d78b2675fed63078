// Supervision against a real sshd: an agent that crashes is recorded and
// restarted with backoff, a crash loop ends given up, a supervisor that is
// SIGKILLed takes its agents with it, and an agent binary that cannot run
// is an error at start, not a crash loop.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

bool isAgent(pid_t pid) { return cmdlineOf(pid).find("sshsoak-agent") != std::string::npos; }

std::vector<pid_t> agentsOf(pid_t soak) {
  std::vector<pid_t> agents;
  for (pid_t k : childrenOf(soak)) {
    if (isAgent(k)) agents.push_back(k);
  }
  return agents;
}

// Every agent ended killed: agent_crashed with SIGKILL and no restart.
void expectAllKilled(const std::vector<Json>& lines, size_t agents) {
  auto crashed = linesOf(lines, "agent_crashed");
  ASSERT_EQ(crashed.size(), agents);
  for (const auto& c : crashed) {
    EXPECT_EQ(c["signal_name"], "SIGKILL") << c.dump();
    EXPECT_EQ(c["restart_in_ms"], nullptr) << c.dump();
    EXPECT_EQ(c["success"], false) << c.dump();
  }
  EXPECT_TRUE(linesOf(lines, "agent_exited").empty());
  EXPECT_EQ(linesOf(lines, "summary").at(0)["abnormal_ends"], agents);
}

}  // namespace

TEST_F(SshdTest, SigkilledAgentIsRecordedRestartedAndFailsTheVerdict) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120"}), /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  auto started = ofSession(readJsonl(logPath_), "agent_started", 1);
  ASSERT_EQ(started.size(), 1u);
  pid_t victim = started[0]["pid"].get<pid_t>();
  ASSERT_TRUE(isAgent(victim));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);

  // The slot comes back: a second `connected` for session 1, marked as restart 1.
  ASSERT_TRUE(waitForLog([](const auto& l) { return ofSession(l, "connected", 1).size() == 2; }, 30)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();

  auto lines = readJsonl(logPath_);
  auto crashed = ofSession(lines, "agent_crashed", 1);
  ASSERT_EQ(crashed.size(), 1u);
  EXPECT_EQ(crashed[0]["pid"], victim);
  EXPECT_EQ(crashed[0]["signal"], SIGKILL);
  EXPECT_EQ(crashed[0]["signal_name"], "SIGKILL");
  EXPECT_EQ(crashed[0]["exit_code"], nullptr);
  EXPECT_EQ(crashed[0]["core_dumped"], false);
  EXPECT_EQ(crashed[0]["success"], false);
  EXPECT_EQ(crashed[0]["last_state"], "up");
  // The first restart waits the policy's minimum delay.
  EXPECT_EQ(crashed[0]["restart_in_ms"], 200);
  EXPECT_TRUE(ofSession(lines, "agent_crashed", 0).empty());

  auto restarted = ofSession(lines, "agent_started", 1);
  ASSERT_EQ(restarted.size(), 2u);
  EXPECT_NE(restarted[1]["pid"], victim);
  EXPECT_EQ(restarted[1]["restart"], 1);
  auto connected = ofSession(lines, "connected", 1);
  EXPECT_FALSE(connected[0].contains("restart"));
  EXPECT_EQ(connected[1]["restart"], 1);

  auto summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 1);
  EXPECT_EQ(summary["agent_crashes"], 1);
  EXPECT_EQ(summary["agent_restarts"], 1);
  EXPECT_EQ(summary["sessions_up_at_end"], 2);
  EXPECT_EQ(summary["success"], false);
  auto s1 = summary["per_session"][1];
  EXPECT_EQ(s1["agent_crashes"], 1);
  EXPECT_EQ(s1["agent_restarts"], 1);
  EXPECT_NE(s1["abnormal_end"].get<std::string>().find("crash"), std::string::npos) << s1.dump();
  EXPECT_EQ(summary["per_session"][0]["abnormal_end"], nullptr);
  EXPECT_TRUE(childrenOf(soak.pid()).empty());
}

TEST_F(SshdTest, CrashLoopEndsGivenUpAfterTheConfiguredCrashes) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--crash-session-for-testing", "1",
                             "--restart-max", "3", "--restart-window-secs", "60"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "agent_gave_up").empty(); }, 30)) << soak.err();
  ASSERT_TRUE(waitForLog([](const auto& l) { return ofSession(l, "connected", 0).size() == 1; }, 30)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();

  auto lines = readJsonl(logPath_);
  auto crashed = ofSession(lines, "agent_crashed", 1);
  ASSERT_EQ(crashed.size(), 3u);
  std::vector<Json> delays;
  for (const auto& c : crashed) {
    EXPECT_EQ(c["signal"], SIGABRT) << c.dump();
    delays.push_back(c["restart_in_ms"]);
  }
  // Exponential backoff, then no restart after the third crash.
  EXPECT_EQ(delays, (std::vector<Json>{200, 400, nullptr}));
  EXPECT_EQ(crashed[2]["crashes_in_window"], 3);
  auto gaveUp = ofSession(lines, "agent_gave_up", 1);
  ASSERT_EQ(gaveUp.size(), 1u);
  EXPECT_EQ(gaveUp[0]["crashes"], 3);
  EXPECT_NE(gaveUp[0]["detail"].get<std::string>().find("--restart-max 3"), std::string::npos);
  EXPECT_TRUE(ofSession(lines, "agent_crashed", 0).empty());

  auto summary = linesOf(lines, "summary").at(0);
  EXPECT_EQ(summary["abnormal_ends"], 3);
  EXPECT_EQ(summary["sessions_gave_up"], 1);
  EXPECT_EQ(summary["per_session"][1]["state"], "gave_up");
  EXPECT_EQ(summary["per_session"][1]["gave_up"], true);
  EXPECT_NE(soak.err().find("given up"), std::string::npos) << soak.err();
}

TEST_F(SshdTest, EveryAgentCrashingEndsWithEverySlotGivenUp) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "4", "--crash-agents-for-testing",
                             "--restart-max", "2"}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.err;
  EXPECT_EQ(linesOf(r.lines, "agent_crashed").size(), 4u);
  EXPECT_EQ(linesOf(r.lines, "agent_gave_up").size(), 2u);
  EXPECT_EQ(linesOf(r.lines, "summary").at(0)["abnormal_ends"], 4);
}

TEST_F(SshdTest, AgentsDieWithASigkilledSupervisor) {
  SoakProcess soak(soakArgs({"--sessions", "3", "--duration-secs", "120"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 3; }, 30)) << soak.err();
  std::vector<pid_t> agents;
  for (pid_t k : childrenOf(soak.pid())) {
    if (isAgent(k)) agents.push_back(k);
  }
  ASSERT_EQ(agents.size(), 3u);
  ASSERT_EQ(::kill(soak.pid(), SIGKILL), 0);
  soak.wait(10);
  // PR_SET_PDEATHSIG(SIGKILL): the kernel kills them as their parent dies.
  int64_t deadline = monoMs() + 1000;
  auto anyLeft = [&] {
    for (pid_t p : agents) {
      if (isAgent(p)) return true;
    }
    return false;
  };
  while (anyLeft() && monoMs() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (pid_t p : agents) EXPECT_FALSE(isAgent(p)) << "agent " << p << " outlived its SIGKILLed supervisor";

  // A SIGKILLed supervisor cannot remove its token-bucket segment; the next
  // run removes segments of dead runs at start.
  std::string prefix = "sshsoak-" + std::to_string(soak.pid()) + "-";
  auto leftBehind = [&] {
    std::vector<std::string> mine;
    for (const auto& name : listDevShm()) {
      if (name.rfind(prefix, 0) == 0) mine.push_back(name);
    }
    return mine;
  };
  EXPECT_EQ(leftBehind().size(), 1u);
  auto next = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "1"}), 30);
  EXPECT_EQ(next.exitCode, exit_code::PASSED) << next.err;
  EXPECT_TRUE(leftBehind().empty());
}

TEST_F(SshdTest, PidFileIsWrittenAtStartAndRemovedAtExit) {
  std::string pidFile = workDir_ + "/sshsoak.pid";
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "120", "--pid-file", pidFile}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 1; }, 30)) << soak.err();
  std::ifstream in(pidFile);
  pid_t written = 0;
  in >> written;
  EXPECT_EQ(written, soak.pid());
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(20), exit_code::PASSED) << soak.err();
  EXPECT_FALSE(std::filesystem::exists(pidFile));

  auto r = runSoak(soakArgs({"--pid-file", "/no/such/dir/sshsoak.pid"}), 20);
  EXPECT_EQ(r.exitCode, exit_code::BAD_INPUT);
  EXPECT_NE(r.err.find("--pid-file /no/such/dir/sshsoak.pid"), std::string::npos) << r.err;
}

TEST_F(SshdTest, AnAgentThatCannotRunIsAnErrorAtStartNotACrashLoop) {
  std::string notExecutable = workDir_ + "/agent-not-executable";
  std::ofstream(notExecutable) << "#!/bin/sh\nexit 0\n";
  auto r = runSoak(soakArgs({"--sessions", "2", "--agent-path", notExecutable}), 20);
  EXPECT_EQ(r.exitCode, exit_code::SYSTEM) << r.err;
  EXPECT_NE(r.err.find(notExecutable), std::string::npos) << r.err;
  EXPECT_TRUE(linesOf(r.lines, "agent_crashed").empty());

  // Executable bit set, but the kernel cannot exec it.
  std::string garbage = workDir_ + "/agent-garbage";
  std::ofstream(garbage) << std::string(64, '\x7f');
  ::chmod(garbage.c_str(), 0755);
  r = runSoak(soakArgs({"--sessions", "2", "--agent-path", garbage}), 20);
  EXPECT_EQ(r.exitCode, exit_code::SYSTEM) << r.err;
  EXPECT_NE(r.err.find(garbage), std::string::npos) << r.err;
  EXPECT_TRUE(linesOf(r.lines, "agent_crashed").empty());
}

TEST_F(SshdTest, AgentsAreNamedForPsTopAndPidstat) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120"}), /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  std::set<std::string> comms;
  for (pid_t k : childrenOf(soak.pid())) {
    if (!isAgent(k)) continue;
    std::ifstream in("/proc/" + std::to_string(k) + "/comm");
    std::string comm;
    std::getline(in, comm);
    comms.insert(comm);
  }
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();
  // comm (top, pidstat) is at most 15 characters: "soak-agent-NN".
  EXPECT_EQ(comms, (std::set<std::string>{"soak-agent-00", "soak-agent-01"}));
}

TEST_F(SshdTest, AgentsThatDoNotStopAreKilledAfterTheShutdownTimeout) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--shutdown-timeout-secs", "1"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  auto agents = agentsOf(soak.pid());
  ASSERT_EQ(agents.size(), 2u);
  // Stopped agents cannot obey the shutdown command; SIGKILL still works.
  for (pid_t p : agents) ::kill(p, SIGSTOP);
  int64_t sentMs = monoMs();
  ::kill(soak.pid(), SIGTERM);
  EXPECT_EQ(soak.wait(20), exit_code::CRITERIA_FAILED) << soak.err();
  EXPECT_GE(monoMs() - sentMs, 1000) << "killed before --shutdown-timeout-secs";
  expectAllKilled(readJsonl(logPath_), 2);
  EXPECT_NE(soak.err().find("did not stop within 1 s; killing it"), std::string::npos) << soak.err();
  for (pid_t p : agents) EXPECT_FALSE(isAgent(p)) << "agent " << p << " outlived the run";
}

TEST_F(SshdTest, ASecondSignalKillsTheAgentsAtOnce) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "120", "--shutdown-timeout-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return linesOf(l, "connected").size() == 2; }, 30)) << soak.err();
  auto agents = agentsOf(soak.pid());
  ASSERT_EQ(agents.size(), 2u);
  for (pid_t p : agents) ::kill(p, SIGSTOP);
  ::kill(soak.pid(), SIGINT);
  int64_t deadline = monoMs() + 10000;
  while (soak.err().find("stopping: SIGINT") == std::string::npos && monoMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(soak.err().find("stopping: SIGINT"), std::string::npos) << soak.err();
  ::kill(soak.pid(), SIGINT);
  // Well before the 60 s shutdown timeout.
  EXPECT_EQ(soak.wait(20), exit_code::CRITERIA_FAILED) << soak.err();
  expectAllKilled(readJsonl(logPath_), 2);
  EXPECT_NE(soak.err().find("second SIGINT: killing the agents now"), std::string::npos) << soak.err();
  for (pid_t p : agents) EXPECT_FALSE(isAgent(p)) << "agent " << p << " outlived the run";
}
