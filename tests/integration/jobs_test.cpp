// --workload jobs end to end: the real sshsoak and sshsoak-agent against the
// fixture's real sshd. The supervisor's side (queue, retry, phases, lines) is
// what these check; the worker's own behaviour (pool, strategies) has its
// tests beside it.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

std::string writeJobsFile(const std::string& dir, const std::vector<std::string>& lines) {
  std::string path = dir + "/jobs.jsonl";
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
  return path;
}

// job_stats summed over a phase (all phases: "").
uint64_t statsSum(const std::vector<Json>& lines, const std::string& field, const std::string& phase = "") {
  uint64_t n = 0;
  for (const auto& s : linesOf(lines, "job_stats")) {
    if (phase.empty() || s["phase"] == phase) n += s[field].get<uint64_t>();
  }
  return n;
}

// Live processes whose command line holds `cmdline` (NULs as spaces).
std::set<pid_t> processesRunning(const std::string& cmdline) {
  std::set<pid_t> found;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return found;
  while (dirent* e = ::readdir(dir)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid > 0 && cmdlineOf(pid).find(cmdline) != std::string::npos) found.insert(pid);
  }
  ::closedir(dir);
  return found;
}

bool processRunning(const std::string& cmdline) { return !processesRunning(cmdline).empty(); }

// Waits for a process running `cmdline` that is not in `seen`; adds it.
bool waitForNewProcess(const std::string& cmdline, std::set<pid_t>& seen, int timeoutMs) {
  int64_t deadline = monoMs() + timeoutMs;
  while (monoMs() < deadline) {
    for (pid_t p : processesRunning(cmdline)) {
      if (seen.insert(p).second) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The index of the first line with this event (-1: none).
int indexOf(const std::vector<Json>& lines, const std::string& event) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i]["event"] == event) return static_cast<int>(i);
  }
  return -1;
}

// The final rollup adds up, and comes before the summary.
void expectFinalQueue(const std::vector<Json>& lines, uint64_t submitted) {
  auto queues = linesOf(lines, "job_queue");
  ASSERT_FALSE(queues.empty());
  const Json& q = queues.back();
  EXPECT_EQ(q["final"], true) << q.dump();
  EXPECT_EQ(q["submitted"], submitted) << q.dump();
  EXPECT_EQ(q["queued"], 0) << q.dump();
  EXPECT_EQ(q["in_flight"], 0) << q.dump();
  EXPECT_EQ(q["submitted"].get<uint64_t>(), q["results"].get<uint64_t>() + q["not_started"].get<uint64_t>())
      << q.dump();
  int summary = indexOf(lines, "summary");
  ASSERT_GE(summary, 0);
  for (size_t i = summary; i < lines.size(); ++i) {
    EXPECT_NE(lines[i]["event"], "job_queue");
    EXPECT_NE(lines[i]["event"], "job_stats");
    EXPECT_NE(lines[i]["event"], "job_phase");
  }
}

}  // namespace

TEST_F(SshdTest, ThousandJobsOnFourWorkersEachHaveExactlyOneResult) {
  std::vector<std::string> jobs;
  for (int i = 1; i <= 1000; ++i) jobs.push_back("{\"commands\": [\"true\"], \"id\": \"j" + std::to_string(i) + "\"}");
  std::string file = writeJobsFile(workDir_, jobs);
  int64_t t0 = monoMs();
  auto r = runSoak(soakArgs({"--workload", "jobs", "--sessions", "4", "--jobs-file", file, "--log-each-job",
                             "--duration-secs", "120", "--job-report-secs", "1"}),
                   150);
  int64_t ms = monoMs() - t0;
  std::printf("1000 jobs on 4 workers (reuse on, one `true` each): %lld ms for the whole run\n",
              static_cast<long long>(ms));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::map<uint64_t, int> byId;
  std::set<std::string> names;
  for (const auto& j : linesOf(r.lines, "job")) {
    ++byId[j["job_id"].get<uint64_t>()];
    names.insert(j["job"].get<std::string>());
    EXPECT_EQ(j["outcome"], "done") << j.dump();
    EXPECT_EQ(j["phase"], "reuse_on");
    EXPECT_EQ(j["target"], sshd_->user() + "@" + sshd_->target());
    EXPECT_GE(j["total_us"].get<uint64_t>(), j["queue_wait_us"].get<uint64_t>());
  }
  EXPECT_EQ(byId.size(), 1000u);
  for (const auto& [id, n] : byId) EXPECT_EQ(n, 1) << "job " << id;
  EXPECT_EQ(names.size(), 1000u);
  EXPECT_TRUE(names.count("j1") && names.count("j1000"));
  expectFinalQueue(r.lines, 1000);
  EXPECT_EQ(linesOf(r.lines, "job_queue").back()["results"], 1000);
  EXPECT_EQ(statsSum(r.lines, "done"), 1000u);
  auto phases = linesOf(r.lines, "job_phase");
  ASSERT_EQ(phases.size(), 1u);
  EXPECT_EQ(phases[0]["results"], 1000);
  // Reuse on: one connection per worker (per target), not per job.
  EXPECT_LE(statsSum(r.lines, "connections_opened"), 8u);
  // The run ended because the jobs did, long before --duration-secs.
  EXPECT_LT(ms, 100000);
}

TEST_F(SshdTest, AWorkerKilledMidJobGetsItsJobRetriedOnceWithOneResult) {
  // A job that runs long enough to be killed under, then quick ones.
  std::vector<std::string> jobs = {R"({"commands": ["sleep 1.71"], "id": "victim"})"};
  for (int i = 0; i < 5; ++i) jobs.push_back(R"({"commands": ["true"]})");
  std::string file = writeJobsFile(workDir_, jobs);
  SoakProcess soak(soakArgs({"--workload", "jobs", "--sessions", "1", "--jobs-file", file, "--log-each-job",
                             "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "agent_started").empty(); }, 20)) << soak.err();
  pid_t agent = linesOf(readJsonl(logPath_), "agent_started").at(0)["pid"].get<pid_t>();
  int64_t deadline = monoMs() + 20000;
  while (!processRunning("sleep 1.71") && monoMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(processRunning("sleep 1.71")) << "the job never started";
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  int code = soak.wait(60);
  auto lines = readJsonl(logPath_);
  EXPECT_NE(code, -1) << soak.err();
  auto retried = linesOf(lines, "job_retried");
  ASSERT_EQ(retried.size(), 1u) << soak.err();
  EXPECT_EQ(retried[0]["job_name"], "victim");
  EXPECT_EQ(retried[0]["attempt"], 2);
  EXPECT_EQ(retried[0]["session_id"], 0);
  uint64_t victimId = retried[0]["job_id"].get<uint64_t>();
  EXPECT_LT(indexOf(lines, "agent_crashed"), indexOf(lines, "job_retried"));
  std::vector<Json> victim;
  for (const auto& j : linesOf(lines, "job")) {
    if (j["job_id"] == victimId) victim.push_back(j);
  }
  ASSERT_EQ(victim.size(), 1u) << "exactly one result for the retried job";
  EXPECT_EQ(victim[0]["attempt"], 2);
  EXPECT_EQ(victim[0]["outcome"], "done") << victim[0].dump();
  EXPECT_EQ(linesOf(lines, "job").size(), 6u);
  expectFinalQueue(lines, 6);
  EXPECT_EQ(linesOf(lines, "job_queue").back()["retried"], 1);
  EXPECT_EQ(linesOf(lines, "job_queue").back()["results"], 6);
}

TEST_F(SshdTest, ABadJobsFileLineIsRefusedAtStartOrSkippedAndLogged) {
  std::string file = writeJobsFile(workDir_, {R"({"commands": ["true"]})", R"({"commands": "uname -n"})",
                                              R"({"commands": ["true"], "id": "last"})"});
  auto refused = runSoak(soakArgs({"--workload", "jobs", "--sessions", "1", "--jobs-file", file}), 30);
  EXPECT_EQ(refused.exitCode, exit_code::BAD_INPUT) << refused.err;
  EXPECT_NE(refused.err.find("line 2"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("\"commands\""), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--skip-bad-jobs"), std::string::npos) << refused.err;
  EXPECT_TRUE(linesOf(refused.lines, "job").empty());

  auto r = runSoak(soakArgs({"--workload", "jobs", "--sessions", "1", "--jobs-file", file, "--skip-bad-jobs",
                             "--log-each-job", "--duration-secs", "60"}),
                   90);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto rejected = linesOf(r.lines, "job_rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["line"], 2);
  EXPECT_EQ(rejected[0]["field"], "commands");
  EXPECT_EQ(rejected[0]["success"], false);
  auto jobs = linesOf(r.lines, "job");
  ASSERT_EQ(jobs.size(), 2u);
  std::set<std::string> names;
  for (const auto& j : jobs) names.insert(j["job"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"line 1", "last"}));
  EXPECT_EQ(jobs[0]["line"].is_number() ? 1 : 0, 1);
  expectFinalQueue(r.lines, 2);
}

TEST_F(SshdTest, CompareReuseRunsTheFileOncePerPhaseAndMeasuresTheSshd) {
  std::vector<std::string> jobs(24, R"({"commands": ["uname -n", "true"]})");
  std::string file = writeJobsFile(workDir_, jobs);
  auto r = runSoak(soakArgs({"--workload", "jobs", "--sessions", "2", "--jobs-file", file, "--compare-reuse",
                             "--server-pid", std::to_string(sshd_->pid()), "--duration-secs", "60"}),
                   90);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto phases = linesOf(r.lines, "job_phase");
  ASSERT_EQ(phases.size(), 2u) << r.err;
  EXPECT_EQ(phases[0]["phase"], "reuse_off");
  EXPECT_EQ(phases[1]["phase"], "reuse_on");
  for (const auto& p : phases) {
    EXPECT_EQ(p["submitted"], 24) << p.dump();
    EXPECT_EQ(p["results"], 24) << p.dump();
    EXPECT_EQ(p["not_started"], 0) << p.dump();
    EXPECT_EQ(p["server_pid"], sshd_->pid());
    ASSERT_TRUE(p["server_cpu_ms"].is_number()) << p.dump();
    std::printf("phase %s: %.2f s, sshd CPU %llu ms\n", p["phase"].get<std::string>().c_str(),
                p["secs"].get<double>(), static_cast<unsigned long long>(p["server_cpu_ms"].get<uint64_t>()));
  }
  uint64_t offOpened = statsSum(r.lines, "connections_opened", "reuse_off");
  uint64_t onOpened = statsSum(r.lines, "connections_opened", "reuse_on");
  EXPECT_EQ(offOpened, 24u) << "reuse off: one connection per job";
  EXPECT_LE(onOpened, 2u) << "reuse on: one per worker";
  EXPECT_GT(offOpened, onOpened);
  EXPECT_EQ(statsSum(r.lines, "done", "reuse_off"), 24u);
  EXPECT_EQ(statsSum(r.lines, "done", "reuse_on"), 24u);
  // The sshd worked harder for 24 handshakes than for 2.
  EXPECT_GE(phases[0]["server_cpu_ms"].get<uint64_t>(), phases[1]["server_cpu_ms"].get<uint64_t>());
  expectFinalQueue(r.lines, 48);
}

TEST_F(SshdTest, AnIdleTimeoutShorterThanTheJobGapClosesTheCachedConnection) {
  // One job every 1.5 s, connections idle-closed after 1 s: every job but
  // the first finds its connection closed and opens a new one.
  auto r = runSoak(soakArgs({"--workload", "jobs", "--sessions", "1", "--job-rate", "0.66", "--job-count", "3",
                             "--job-commands", "true", "--max-idle-secs", "1", "--duration-secs", "30"}),
                   60);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto closes = linesOf(r.lines, "job_connection_closed");
  uint64_t idle = 0;
  for (const auto& c : closes) {
    if (c["reason"] == "idle") {
      ++idle;
      EXPECT_GE(c["idle_ms"].get<uint64_t>(), 1000u) << c.dump();
    }
  }
  EXPECT_GE(idle, 2u) << r.err;
  EXPECT_EQ(statsSum(r.lines, "done"), 3u);
  EXPECT_EQ(statsSum(r.lines, "connections_opened"), 3u);
  EXPECT_EQ(statsSum(r.lines, "reused"), 0u);
  expectFinalQueue(r.lines, 3);
}

TEST_F(SshdTest, AJobWhoseWorkerDiesTwiceIsFailedWorkerDiedNotRunAThirdTime) {
  std::string file = writeJobsFile(workDir_, {R"({"commands": ["sleep 1.72"], "id": "doomed"})",
                                              R"({"commands": ["true"], "id": "after"})"});
  SoakProcess soak(soakArgs({"--workload", "jobs", "--sessions", "1", "--jobs-file", file, "--log-each-job",
                             "--duration-secs", "60"}));
  // Kill the worker each time the job runs: first the agent, then its
  // restart. A killed attempt's sleep may outlive its agent (the sshd does
  // not kill an exec without a pty), so each attempt is a new process.
  std::set<pid_t> sleeps;
  for (size_t kill = 1; kill <= 2; ++kill) {
    ASSERT_TRUE(waitForNewProcess("sleep 1.72", sleeps, 20000)) << "attempt " << kill << " never started";
    auto started = linesOf(readJsonl(logPath_), "agent_started");
    ASSERT_EQ(started.size(), kill) << soak.err();
    ASSERT_EQ(::kill(started.back()["pid"].get<pid_t>(), SIGKILL), 0);
  }
  EXPECT_NE(soak.wait(60), -1) << soak.err();
  auto lines = readJsonl(logPath_);
  EXPECT_EQ(linesOf(lines, "job_retried").size(), 1u);
  std::map<std::string, std::vector<Json>> byName;
  for (const auto& j : linesOf(lines, "job")) byName[j["job"].get<std::string>()].push_back(j);
  ASSERT_EQ(byName["doomed"].size(), 1u);
  const Json& doomed = byName["doomed"][0];
  EXPECT_EQ(doomed["outcome"], "failed") << doomed.dump();
  EXPECT_EQ(doomed["failure_kind"], "worker_died") << doomed.dump();
  EXPECT_EQ(doomed["attempt"], 2);
  EXPECT_EQ(doomed["session_id"], 0);
  ASSERT_EQ(byName["after"].size(), 1u);
  EXPECT_EQ(byName["after"][0]["outcome"], "done");
  expectFinalQueue(lines, 2);
}

// A command whose output never pauses keeps the worker reading without a
// single wait: the heartbeat must go out from its reads (the recv hook), or
// the watchdog takes a busy worker for a silent one and kills it mid-job.
TEST_F(SshdTest, AJobStreamingOutputForLongerThanTheWatchdogBoundIsNotTakenForSilence) {
  std::string file = writeJobsFile(workDir_, {"{\"commands\": [\"timeout 5 yes || true\"], \"id\": \"stream\"}"});
  auto r = runSoak(soakArgs({"--workload", "jobs", "--sessions", "1", "--jobs-file", file, "--log-each-job",
                             "--heartbeat-secs", "1", "--duration-secs", "60"}),
                   90);
  EXPECT_EQ(linesOf(r.lines, "agent_unresponsive").size(), 0u) << r.err;
  EXPECT_EQ(linesOf(r.lines, "agent_crashed").size(), 0u) << r.err;
  auto jobs = linesOf(r.lines, "job");
  ASSERT_EQ(jobs.size(), 1u) << r.err;
  EXPECT_EQ(jobs[0]["outcome"], "done") << jobs[0].dump();
  // It did stream for longer than the bound (3 heartbeats).
  EXPECT_GT(jobs[0]["run_us"].get<uint64_t>(), 3000000u) << jobs[0].dump();
}
