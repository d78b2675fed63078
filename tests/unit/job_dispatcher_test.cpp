// The JobDispatcher's lines and commands (supervisor/run/job_dispatcher.h),
// driven as the Supervisor drives it, without processes: the commands it
// sends are decoded from real Cap'n Proto frames, the lines it writes are
// read back from its log.
#include "supervisor/run/job_dispatcher.h"

#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "shared/clock.h"
#include "supervisor/run/jsonl_log.h"

using namespace sshsoak;
using namespace sshsoak::jobs;

namespace {

struct SentJob {
  uint32_t worker;
  uint64_t id;
  std::string host, user;
  uint16_t port;
  std::vector<std::string> commands;
  uint32_t timeoutMs, attempt;
  bool reuse;
};

class JobDispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.workload = cli::WorkloadKind::JOBS;
    options_.targets = {cli::Target{"127.0.0.1", 2222}};
    options_.slots.assign(2, options_.targets[0]);
    options_.user = "soak";
    options_.jobsFile = "jobs.jsonl";
    cli::JobSpec a;
    a.line = 1;
    a.name = "web-1";
    a.commands = {"uname -n", "false"};
    a.commandTimeoutMs = 5000;
    cli::JobSpec b;
    b.line = 3;
    b.commands = {"true"};
    b.target = cli::Target{"10.0.0.5", 22};
    b.user = "admin";
    options_.jobs = {a, b};
    options_.rejectedJobs = {cli::RejectedJob{2, "commands", "must be a non-empty array of command strings"}};
    logPath_ = "/tmp/sshsoak-unit-jobs-" + std::to_string(::getpid()) + ".jsonl";
    log_ = std::make_unique<JsonlLog>(logPath_);
    log_->setListener([this](const Json& line) { lines_.push_back(line); });
  }
  void TearDown() override { ::unlink(logPath_.c_str()); }

  std::unique_ptr<JobDispatcher> make() {
    return std::make_unique<JobDispatcher>(
        options_, io_, *log_,
        DispatcherHooks{.send =
                            [this](uint32_t w, capnp::MessageBuilder& m) {
                              // Through the wire format, as the agent reads it.
                              auto words = capnp::messageToFlatArray(m);
                              capnp::FlatArrayMessageReader reader(words);
                              auto j = reader.getRoot<wire::Command>().getRunJob();
                              SentJob s{w, j.getId(), j.getHost(), j.getUser(), j.getPort(), {},
                                        j.getCommandTimeoutMs(), j.getAttempt(), j.getReuse()};
                              for (auto c : j.getCommands()) s.commands.emplace_back(c);
                              sent_.push_back(s);
                              return true;
                            },
                        .workerHost = [](uint32_t) { return std::string("127.0.0.1:2222"); },
                        .allDone = [this](const std::string& why) { allDone_ = why; }});
  }

  // A worker's jobResult, as the agent sends it.
  void answer(JobDispatcher& d, uint32_t worker, uint64_t id, wire::JobOutcome outcome) {
    capnp::MallocMessageBuilder msg;
    auto ev = msg.initRoot<wire::Event>();
    ev.setSessionId(worker);
    ev.setWallNs(wallNs());
    ev.setSuccess(outcome == wire::JobOutcome::DONE);
    auto r = ev.initJobResult();
    r.setJobId(id);
    r.setOutcome(outcome);
    r.setAttempt(1);
    r.setConnectUs(4000);
    r.setRunUs(1500);
    r.setCommandsRun(2);
    r.setConnectionsOpened(1);
    if (outcome != wire::JobOutcome::DONE) {
      r.setCommandsFailed(1);
      r.setFailureKind("command_exit");
      r.setMessage("'false' exited 1");
    }
    auto codes = r.initExitCodes(2);
    codes.set(0, 0);
    codes.set(1, outcome == wire::JobOutcome::DONE ? 0 : 1);
    d.onJobResult(worker, ev.asReader());
  }

  std::vector<Json> ofEvent(const std::string& event) const {
    std::vector<Json> out;
    for (const auto& l : lines_) {
      if (l["event"] == event) out.push_back(l);
    }
    return out;
  }

  cli::Options options_;
  boost::asio::io_context io_;  // never run: nothing here waits for a timer
  std::string logPath_;
  std::unique_ptr<JsonlLog> log_;
  std::vector<Json> lines_;
  std::vector<SentJob> sent_;
  std::string allDone_;
};

}  // namespace

TEST_F(JobDispatcherTest, SendsOneJobPerIdleWorkerAndLogsAFailedResultWithTheQueuesFields) {
  auto d = make();
  d->start();
  auto rejected = ofEvent("job_rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0]["line"], 2);
  EXPECT_EQ(rejected[0]["field"], "commands");
  EXPECT_EQ(rejected[0]["success"], false);
  EXPECT_TRUE(sent_.empty()) << "no worker has started";

  d->onAgentStarted(0);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].worker, 0u);
  EXPECT_EQ(sent_[0].id, 1u);
  EXPECT_EQ(sent_[0].host, "127.0.0.1");
  EXPECT_EQ(sent_[0].port, 2222);
  EXPECT_EQ(sent_[0].user, "soak");
  EXPECT_EQ(sent_[0].commands, (std::vector<std::string>{"uname -n", "false"}));
  EXPECT_EQ(sent_[0].timeoutMs, 5000u);
  EXPECT_EQ(sent_[0].attempt, 1u);
  EXPECT_TRUE(sent_[0].reuse);
  d->onAgentStarted(1);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].host, "10.0.0.5");
  EXPECT_EQ(sent_[1].user, "admin");

  answer(*d, 0, 1, wire::JobOutcome::ABORTED);
  answer(*d, 0, 1, wire::JobOutcome::DONE);  // repeated: ignored
  auto jobs = ofEvent("job");
  ASSERT_EQ(jobs.size(), 1u);
  const Json& j = jobs[0];
  EXPECT_EQ(j["session_id"], 0);
  EXPECT_EQ(j["host"], "127.0.0.1:2222");
  EXPECT_EQ(j["job_id"], 1);
  EXPECT_EQ(j["job"], "web-1");
  EXPECT_EQ(j["target"], "soak@127.0.0.1:2222");
  EXPECT_EQ(j["line"], 1);
  EXPECT_EQ(j["phase"], "reuse_on");
  EXPECT_EQ(j["outcome"], "aborted");
  EXPECT_EQ(j["failure_kind"], "command_exit");
  EXPECT_EQ(j["exit_codes"], Json::array({0, 1}));
  EXPECT_TRUE(j["queue_wait_us"].is_number_unsigned());
  EXPECT_GE(j["total_us"].get<uint64_t>(), j["queue_wait_us"].get<uint64_t>());

  answer(*d, 1, 2, wire::JobOutcome::DONE);  // done: no line without --log-each-job
  EXPECT_EQ(ofEvent("job").size(), 1u);
  EXPECT_EQ(allDone_, "all jobs done");

  d->onShutdown();
  d->finish();
  auto stats = ofEvent("job_stats");
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0]["aborted"], 1);
  EXPECT_EQ(stats[1]["done"], 1);
  auto queue = ofEvent("job_queue");
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue[0]["final"], true);
  EXPECT_EQ(queue[0]["submitted"], 2);
  EXPECT_EQ(queue[0]["results"], 2);
  auto phase = ofEvent("job_phase");
  ASSERT_EQ(phase.size(), 1u);
  EXPECT_EQ(phase[0]["phase"], "reuse_on");
  EXPECT_EQ(phase[0]["results"], 2);
  EXPECT_EQ(phase[0]["server_pid"], nullptr);
  EXPECT_EQ(phase[0]["server_cpu_ms"], nullptr) << "no --server-pid: unknown, not 0";
}

TEST_F(JobDispatcherTest, AWorkerDeathRetriesOnceThenTheSupervisorReportsItFailed) {
  options_.jobs.resize(1);
  options_.reuse = false;
  auto d = make();
  d->start();
  d->onAgentStarted(0);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_FALSE(sent_[0].reuse) << "--reuse off";
  d->onWorkerLeaving(0);
  d->onWorkerGone(0, false);
  auto retried = ofEvent("job_retried");
  ASSERT_EQ(retried.size(), 1u);
  EXPECT_EQ(retried[0]["session_id"], 0);
  EXPECT_EQ(retried[0]["job_id"], 1);
  EXPECT_EQ(retried[0]["job_name"], "web-1");
  EXPECT_EQ(retried[0]["attempt"], 2);
  d->onAgentStarted(1);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].worker, 1u);
  EXPECT_EQ(sent_[1].id, 1u);
  EXPECT_EQ(sent_[1].attempt, 2u);
  d->onWorkerGone(1, false);
  auto jobs = ofEvent("job");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["outcome"], "failed");
  EXPECT_EQ(jobs[0]["failure_kind"], "worker_died");
  EXPECT_EQ(jobs[0]["attempt"], 2);
  EXPECT_EQ(jobs[0]["phase"], "reuse_off");
  EXPECT_EQ(jobs[0]["success"], false);
  for (const char* field : {"job_id", "job", "target", "line", "reused", "queue_wait_us", "connect_us", "liveness_us",
                            "run_us", "total_us", "commands_run", "commands_failed", "exit_codes", "message",
                            "dead_replaced", "connections_opened"}) {
    EXPECT_TRUE(jobs[0].contains(field)) << field;
  }
  EXPECT_EQ(allDone_, "all jobs done");
  d->finish();
  EXPECT_EQ(d->queue().counters().failed, 1u);
  EXPECT_EQ(d->queue().counters().lost(), 0);
}

TEST_F(JobDispatcherTest, CompareReuseReplaysTheFileOffThenOn) {
  options_.compareReuse = true;
  auto d = make();
  d->start();
  d->onAgentStarted(0);
  std::vector<bool> reuse;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(sent_.size(), static_cast<size_t>(i + 1)) << allDone_;
    reuse.push_back(sent_.back().reuse);
    answer(*d, 0, sent_.back().id, wire::JobOutcome::DONE);
  }
  EXPECT_EQ(reuse, (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(sent_.back().id, 4u);
  EXPECT_EQ(allDone_, "all jobs done");
  auto phases = ofEvent("job_phase");
  ASSERT_EQ(phases.size(), 1u) << "the first phase's line at its end; the last comes with the final rollup";
  EXPECT_EQ(phases[0]["phase"], "reuse_off");
  EXPECT_EQ(phases[0]["submitted"], 2);
  d->finish();
  phases = ofEvent("job_phase");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[1]["phase"], "reuse_on");
  EXPECT_EQ(phases[1]["results"], 2);
}
