// The jobs worker (session_agent/workloads/jobs_worker.h) in a real
// sshsoak-agent, driven directly over its pipes (agent_harness.h) against
// the fixture's real sshd: connection reuse and its absence, idle cleanup,
// a cached connection whose sshd was killed, LRU, the failure strategies,
// command timeouts, drops and a shutdown mid-job.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "agent_harness.h"
#include "netns.h"
#include "shared/clock.h"
#include "sshd_fixture.h"

namespace sshsoak::testing {
namespace {

using FS = wire::FailureStrategy;

class JobsAgentTest : public SshdTest {
 protected:
  // The agent ends cleanly (exit 0, stopped last) and no sshd connection
  // process outlives it.
  void stopAndCheck(AgentHarness& agent) {
    agent.shutdown();
    EXPECT_EQ(agent.waitExit(5000), 0) << agent.stderrText();
    ASSERT_FALSE(agent.lines().empty());
    EXPECT_EQ(agent.lines().back()["event"], "agent_stopped");
    EXPECT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).empty(); }, 3000))
        << "sshd still serves connections of a worker that ended";
  }
  static bool waitUntil(const std::function<bool()>& pred, int timeoutMs) {
    int64_t deadline = monoMs() + timeoutMs;
    while (!pred()) {
      if (monoMs() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  // Connections sshd accepted so far, from its own log.
  size_t acceptedBySshd() const {
    std::string log = sshd_->log();
    size_t n = 0;
    for (size_t at = log.find("Accepted publickey"); at != std::string::npos; at = log.find("Accepted publickey", at + 1)) ++n;
    return n;
  }
  static std::vector<int> exitCodes(const Json& job) { return job["exit_codes"].get<std::vector<int>>(); }
  static std::vector<Json> closes(const AgentHarness& agent, const std::string& reason) {
    std::vector<Json> out;
    for (const auto& l : agent.linesOf("job_connection_closed")) {
      if (l["reason"] == reason) out.push_back(l);
    }
    return out;
  }
};

std::string dump(const AgentHarness& agent) {
  std::string out;
  for (const auto& l : agent.lines()) out += l.dump() + "\n";
  return out;
}

TEST_F(JobsAgentTest, ReuseOnServesEveryJobOfATargetFromOneConnection) {
  AgentHarness agent(*sshd_, {});
  const int jobs = 20;
  uint64_t freshUs = 0, reusedUsSum = 0, livenessUsSum = 0;
  for (int i = 1; i <= jobs; ++i) {
    Json r = agent.runAndWait({.id = static_cast<uint64_t>(i), .commands = {"true", "uname -n", "echo 'pyenv: noise on stderr' >&2; date +%s"}});
    ASSERT_FALSE(r.is_null()) << "job " << i << " has no result; " << agent.stderrText() << dump(agent);
    EXPECT_EQ(r["outcome"], "done") << r.dump();
    EXPECT_EQ(r["commands_run"], 3);
    EXPECT_EQ(exitCodes(r), (std::vector<int>{0, 0, 0}));
    EXPECT_EQ(r["connections_opened"], i == 1 ? 1 : 0) << r.dump();
    EXPECT_EQ(r["reused"], i != 1) << r.dump();
    EXPECT_EQ(r["dead_replaced"], 0);
    uint64_t total = r["connect_us"].get<uint64_t>() + r["liveness_us"].get<uint64_t>() + r["run_us"].get<uint64_t>();
    if (i == 1) {
      EXPECT_GT(r["connect_us"].get<uint64_t>(), 0u);
      EXPECT_EQ(r["liveness_us"], 0);
      freshUs = total;
    } else {
      EXPECT_EQ(r["connect_us"], 0);
      EXPECT_GT(r["liveness_us"].get<uint64_t>(), 0u) << "the liveness check ran";
      reusedUsSum += total;
      livenessUsSum += r["liveness_us"].get<uint64_t>();
    }
    EXPECT_EQ(sshdConnectionProcesses(*sshd_).size(), 1u) << "one connection, held by sshd";
  }
  EXPECT_EQ(acceptedBySshd(), 1u) << sshd_->log();
  EXPECT_TRUE(agent.linesOf("job_connection_closed").empty());
  std::printf("[ figures ] 3-command job: fresh connection %.2f ms, reused (liveness + run) %.2f ms mean, "
              "liveness check %.3f ms mean\n",
              freshUs / 1000.0, reusedUsSum / 1000.0 / (jobs - 1), livenessUsSum / 1000.0 / (jobs - 1));
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, ReuseOffOpensAndClosesOneConnectionPerJob) {
  AgentHarness agent(*sshd_, {});
  uint64_t connectUsSum = 0;
  for (int i = 1; i <= 8; ++i) {
    Json r = agent.runAndWait({.id = static_cast<uint64_t>(i), .commands = {"true", "uname -n"}, .reuse = false});
    ASSERT_FALSE(r.is_null()) << agent.stderrText();
    EXPECT_EQ(r["outcome"], "done") << r.dump();
    EXPECT_EQ(r["connections_opened"], 1);
    EXPECT_EQ(r["reused"], false);
    EXPECT_GT(r["connect_us"].get<uint64_t>(), 0u);
    connectUsSum += r["connect_us"].get<uint64_t>();
  }
  EXPECT_EQ(acceptedBySshd(), 8u);
  // Closed after each job: nothing stays with sshd while the worker idles.
  EXPECT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).empty(); }, 3000));
  EXPECT_TRUE(agent.linesOf("job_connection_closed").empty()) << "the per-job close is not a pool close";
  std::printf("[ figures ] reuse off: connect %.2f ms mean\n", connectUsSum / 1000.0 / 8);
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, AnIdleConnectionIsClosedWhenItsIdleTimePasses) {
  AgentHarness agent(*sshd_, {.maxIdleMs = 1000});
  Json r = agent.runAndWait({.id = 1, .commands = {"true"}});
  ASSERT_EQ(r["outcome"], "done") << r.dump() << agent.stderrText();
  int64_t resultMs = monoMs();
  ASSERT_TRUE(agent.waitFor([](const Json& l) { return l["event"] == "job_connection_closed"; }, 3000));
  int64_t afterMs = monoMs() - resultMs;
  Json closed = agent.linesOf("job_connection_closed").at(0);
  EXPECT_EQ(closed["reason"], "idle");
  EXPECT_GE(closed["idle_ms"].get<int64_t>(), 1000);
  EXPECT_LT(closed["idle_ms"].get<int64_t>(), 1500) << "the worker woke for the deadline, not later";
  EXPECT_GE(afterMs, 900);
  EXPECT_EQ(closed["jobs_served"], 1);
  EXPECT_EQ(closed["target"], sshd_->user() + "@127.0.0.1:" + std::to_string(sshd_->port()));
  EXPECT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).empty(); }, 3000));
  // With nothing cached and no job, the worker sleeps in poll: no CPU.
  long cpuBefore = cpuTicks(agent.pid());
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_LE(cpuTicks(agent.pid()) - cpuBefore, 1) << "an idle worker used CPU";
  // The next job opens a new one.
  r = agent.runAndWait({.id = 2, .commands = {"true"}});
  EXPECT_EQ(r["connections_opened"], 1) << r.dump();
  EXPECT_EQ(r["reused"], false);
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, ACachedConnectionWhoseSshdWasKilledIsReplacedWithoutFailingTheJob) {
  AgentHarness agent(*sshd_, {});
  ASSERT_EQ(agent.runAndWait({.id = 1, .commands = {"true"}})["outcome"], "done") << agent.stderrText();
  auto serving = sshdConnectionProcesses(*sshd_);
  ASSERT_EQ(serving.size(), 1u);
  // The connection's whole sshd side (its monitor and its session process).
  for (pid_t p : childrenOf(serving[0])) ::kill(p, SIGKILL);
  ::kill(serving[0], SIGKILL);
  ASSERT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).empty(); }, 3000));
  Json r = agent.runAndWait({.id = 2, .commands = {"uname -n"}});
  EXPECT_EQ(r["outcome"], "done") << r.dump();
  EXPECT_EQ(r["dead_replaced"], 1);
  EXPECT_EQ(r["connections_opened"], 1);
  EXPECT_EQ(r["reused"], false);
  ASSERT_EQ(closes(agent, "dead").size(), 1u);
  EXPECT_EQ(closes(agent, "dead")[0]["jobs_served"], 1);
  // And the replacement is cached in turn.
  r = agent.runAndWait({.id = 3, .commands = {"true"}});
  EXPECT_EQ(r["reused"], true) << r.dump();
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, EachFailureStrategyStopsWhereItShould) {
  const std::vector<std::string> commands = {"true", "false", "true", "false", "true"};
  struct Case {
    FS strategy;
    uint32_t threshold;
    std::string outcome;
    std::vector<int> codes;
  };
  for (const Case& c : {Case{FS::CONTINUE, 1, "failed", {0, 1, 0, 1, 0}}, Case{FS::ABORT_FIRST, 1, "aborted", {0, 1}},
                        Case{FS::ABORT_AFTER_N, 2, "aborted", {0, 1, 0, 1}},
                        Case{FS::ABORT_AFTER_N, 3, "failed", {0, 1, 0, 1, 0}}}) {
    AgentHarness agent(*sshd_, {.failureStrategy = c.strategy, .failureThreshold = c.threshold});
    Json r = agent.runAndWait({.id = 7, .commands = commands});
    EXPECT_EQ(r["outcome"], c.outcome) << r.dump();
    EXPECT_EQ(exitCodes(r), c.codes) << r.dump();
    EXPECT_EQ(r["commands_failed"], std::count(c.codes.begin(), c.codes.end(), 1));
    EXPECT_EQ(r["failure_kind"], "command_exit");
    // A command's non-zero exit leaves the connection usable: it is kept.
    EXPECT_EQ(agent.runAndWait({.id = 8, .commands = {"true"}})["reused"], true);
    stopAndCheck(agent);
  }
}

TEST_F(JobsAgentTest, ACommandTimeoutFailsTheCommandAndTaintsItsConnection) {
  AgentHarness agent(*sshd_, {.failureStrategy = FS::CONTINUE});
  int64_t startMs = monoMs();
  Json r = agent.runAndWait({.id = 1, .commands = {"sleep 30", "uname -n"}, .commandTimeoutMs = 1000});
  int64_t tookMs = monoMs() - startMs;
  EXPECT_EQ(r["outcome"], "failed") << r.dump();
  EXPECT_EQ(r["failure_kind"], "command_timeout");
  EXPECT_EQ(exitCodes(r), (std::vector<int>{-1, 0}));
  EXPECT_EQ(r["connections_opened"], 2) << "the next command got a fresh connection";
  EXPECT_GE(r["run_us"].get<uint64_t>(), 1'000'000u) << "the timeout is run time";
  EXPECT_LT(r["run_us"].get<uint64_t>(), 1'000'000u + r["connect_us"].get<uint64_t>()) << "the reconnect is not";
  EXPECT_LT(tookMs, 4000);
  ASSERT_EQ(closes(agent, "tainted").size(), 1u);
  // The fresh connection is the one cached now.
  Json next = agent.runAndWait({.id = 2, .commands = {"true"}});
  EXPECT_EQ(next["reused"], true) << next.dump();
  EXPECT_EQ(sshdConnectionProcesses(*sshd_).size(), 1u);
  stopAndCheck(agent);
}

// A command whose output never stops keeps the socket full, so the worker
// never waits in poll: its timeout and a shutdown must still hold.
TEST_F(JobsAgentTest, ACommandFloodingOutputStillTimesOut) {
  AgentHarness agent(*sshd_, {.failureStrategy = FS::ABORT_FIRST});
  int64_t startMs = monoMs();
  Json r = agent.runAndWait({.id = 1, .commands = {"yes", "true"}, .commandTimeoutMs = 1000});
  int64_t tookMs = monoMs() - startMs;
  EXPECT_EQ(r["outcome"], "aborted") << r.dump();
  EXPECT_EQ(r["failure_kind"], "command_timeout");
  EXPECT_EQ(exitCodes(r), (std::vector<int>{-1}));
  EXPECT_LT(tookMs, 5000);
  EXPECT_EQ(closes(agent, "tainted").size(), 1u);
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, AShutdownDuringAnOutputFloodIsAnsweredAtOnce) {
  AgentHarness agent(*sshd_, {});
  agent.runJob({.id = 4, .commands = {"yes"}, .commandTimeoutMs = 60000});
  ASSERT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).size() == 1; }, 3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int64_t startMs = monoMs();
  stopAndCheck(agent);
  EXPECT_LT(monoMs() - startMs, 3000);
  auto results = agent.linesOf("job");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["outcome"], "cancelled");
}

TEST_F(JobsAgentTest, TheLeastRecentlyUsedConnectionGoesWhenThePoolIsFull) {
  // The same sshd under two names: two targets, two connections.
  AgentHarness agent(*sshd_, {.maxConnections = 1});
  EXPECT_EQ(agent.runAndWait({.id = 1, .host = "127.0.0.1", .commands = {"true"}})["outcome"], "done")
      << agent.stderrText();
  Json r = agent.runAndWait({.id = 2, .host = "localhost", .commands = {"true"}});
  EXPECT_EQ(r["outcome"], "done") << r.dump();
  EXPECT_EQ(r["connections_opened"], 1);
  auto lru = closes(agent, "lru");
  ASSERT_EQ(lru.size(), 1u);
  EXPECT_EQ(lru[0]["target"], sshd_->user() + "@127.0.0.1:" + std::to_string(sshd_->port()));
  r = agent.runAndWait({.id = 3, .host = "127.0.0.1", .commands = {"true"}});
  EXPECT_EQ(r["reused"], false) << "it was closed";
  lru = closes(agent, "lru");
  ASSERT_EQ(lru.size(), 2u);
  EXPECT_EQ(lru[1]["target"], sshd_->user() + "@localhost:" + std::to_string(sshd_->port()));
  EXPECT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).size() == 1; }, 3000));
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, ADropCutsCachedConnectionsAndTheRunningJobs) {
  AgentHarness agent(*sshd_, {.failureStrategy = FS::CONTINUE});
  ASSERT_EQ(agent.runAndWait({.id = 1, .commands = {"true"}})["outcome"], "done") << agent.stderrText();
  // Idle: the cached connection is cut where it sits.
  agent.drop();
  ASSERT_TRUE(agent.waitFor([](const Json& l) { return l["event"] == "disconnect_injected"; }, 3000));
  Json r = agent.runAndWait({.id = 2, .commands = {"true"}});
  EXPECT_EQ(r["outcome"], "done") << r.dump();
  EXPECT_EQ(r["dead_replaced"], 1);
  EXPECT_EQ(closes(agent, "dead").size(), 1u);
  // Mid-job: the running command loses its connection; the next one of the
  // job (continue) gets a fresh one.
  agent.runJob({.id = 3, .commands = {"sleep 5", "true"}});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  agent.drop();
  ASSERT_TRUE(agent.waitFor([](const Json& l) { return l["event"] == "job" && l["job_id"] == 3; }, 5000));
  Json cut = agent.linesOf("job").back();
  EXPECT_EQ(cut["failure_kind"], "connection_lost") << cut.dump();
  EXPECT_EQ(exitCodes(cut), (std::vector<int>{-1, 0}));
  EXPECT_EQ(cut["outcome"], "failed");
  EXPECT_EQ(closes(agent, "dropped").size(), 1u);
  stopAndCheck(agent);
}

TEST_F(JobsAgentTest, AShutdownMidJobAnswersItOnceAsCancelled) {
  AgentHarness agent(*sshd_, {});
  agent.runJob({.id = 9, .commands = {"sleep 30", "true"}});
  ASSERT_TRUE(waitUntil([&] { return sshdConnectionProcesses(*sshd_).size() == 1; }, 3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t startMs = monoMs();
  stopAndCheck(agent);
  EXPECT_LT(monoMs() - startMs, 3000);
  auto results = agent.linesOf("job");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["outcome"], "cancelled");
  EXPECT_EQ(results[0]["failure_kind"], "run_ended");
  EXPECT_EQ(exitCodes(results[0]), (std::vector<int>{-1}));
}

TEST_F(JobsAgentTest, AConnectionThatCannotBeMadeFailsTheJobWithItsKind) {
  AgentHarness agent(*sshd_, {});
  sshd_->stop();
  Json r = agent.runAndWait({.id = 1, .commands = {"true"}});
  EXPECT_EQ(r["outcome"], "failed") << r.dump();
  EXPECT_EQ(r["failure_kind"], "connect_refused");
  EXPECT_EQ(r["commands_run"], 0);
  EXPECT_EQ(r["connections_opened"], 0);
  agent.shutdown();
  EXPECT_EQ(agent.waitExit(5000), 0);
}

TEST_F(JobsAgentTest, TheWorkersMemoryDoesNotGrowWithJobs) {
  AgentHarness agent(*sshd_, {});
  auto batch = [&](uint64_t first, int n) {
    for (int i = 0; i < n; ++i) {
      Json r = agent.runAndWait({.id = first + i, .commands = {"true"}});
      ASSERT_EQ(r["outcome"], "done") << r.dump();
    }
  };
  batch(1, 100);  // warm: allocator pools, libssh2's buffers
  long warm = rssKb(agent.pid());
  int64_t startMs = monoMs();
  batch(1000, 400);
  double perJobMs = static_cast<double>(monoMs() - startMs) / 400;
  long after = rssKb(agent.pid());
  std::printf("[ figures ] worker RSS %ld kB after 100 jobs, %ld kB after 500; %.2f ms per reused 1-command job "
              "(harness round trip included)\n",
              warm, after, perJobMs);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine, so RSS grows by design; only a
  // gross leak shows through it.
  EXPECT_LT(after - warm, 64 * 1024) << "the worker grew by more than 64 MB over 400 jobs under ASan";
#else
  EXPECT_LT(after - warm, 256) << "the worker grew by more than 256 kB over 400 jobs";
#endif
  stopAndCheck(agent);
}

}  // namespace
}  // namespace sshsoak::testing
