// The supervisor's job queue (supervisor/run/job_queue.h), driven with
// numbers: no process, no clock.
#include "supervisor/run/job_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

using namespace sshsoak;
using namespace sshsoak::jobs;
using Outcome = wire::JobOutcome;

namespace {

cli::JobSpec fileJob(uint32_t line, std::string name = "") {
  cli::JobSpec s;
  s.line = line;
  s.name = std::move(name);
  s.commands = {"true"};
  return s;
}

JobQueueConfig fileConfig(uint32_t jobs, uint32_t workers) {
  JobQueueConfig c;
  for (uint32_t i = 1; i <= jobs; ++i) c.fileJobs.push_back(fileJob(i));
  c.targets = {cli::Target{"127.0.0.1", 2222}};
  c.user = "soak";
  c.workers = workers;
  return c;
}

JobQueueConfig generatedConfig(double rate, uint64_t count, uint64_t maxQueue, uint32_t workers) {
  JobQueueConfig c;
  c.commands = {"uname -n", "true"};
  c.targets = {cli::Target{"a", 22}, cli::Target{"b", 22}};
  c.user = "soak";
  c.workers = workers;
  c.ratePerSec = rate;
  c.countPerPhase = count;
  c.maxQueue = maxQueue;
  return c;
}

void expectAccounted(const JobCounters& c) {
  EXPECT_EQ(c.lost(), 0) << "submitted " << c.submitted << " results " << c.results << " not_started "
                         << c.notStarted << " queued " << c.queued << " in_flight " << c.inFlight;
  EXPECT_EQ(c.results, c.done + c.failed + c.aborted + c.cancelled);
}

}  // namespace

TEST(JobQueue, FileJobsAreQueuedAtStartWithTargetsRoundRobinAndTheirNames) {
  JobQueueConfig c;
  c.fileJobs = {fileJob(1, "web-1"), fileJob(2), fileJob(3), fileJob(5)};
  c.fileJobs[2].target = cli::Target{"10.0.0.5", 22};
  c.fileJobs[2].user = "admin";
  c.targets = {cli::Target{"a", 22}, cli::Target{"b", 2222}};
  c.user = "soak";
  c.workers = 4;
  JobQueue q(c);
  q.startPhase(Phase::REUSE_ON, 1000);
  EXPECT_EQ(q.counters().submitted, 4u);
  EXPECT_EQ(q.counters().queued, 4u);
  for (uint32_t w = 0; w < 4; ++w) q.workerIdle(w);
  std::vector<std::pair<std::string, std::string>> seen;
  while (auto d = q.dispatchOne(2000)) {
    seen.emplace_back(d->job->name(), d->job->targetText());
    EXPECT_EQ(d->job->intendedUs, 1000);
    EXPECT_EQ(d->job->dispatchedUs, 2000);
    EXPECT_EQ(d->job->attempt, 1u);
    EXPECT_EQ(d->job->phase, Phase::REUSE_ON);
  }
  // Jobs without a target take the run's in turn; one with its own keeps it.
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"web-1", "soak@a:22"},
                                                                     {"line 2", "soak@b:2222"},
                                                                     {"line 3", "admin@10.0.0.5:22"},
                                                                     {"line 5", "soak@a:22"}}));
  EXPECT_EQ(q.counters().inFlight, 4u);
  expectAccounted(q.counters());
}

TEST(JobQueue, OneJobPerIdleWorkerAndAResultMakesItIdleAgain) {
  JobQueue q(fileConfig(3, 2));
  q.startPhase(Phase::REUSE_OFF, 0);
  q.workerIdle(0);
  q.workerIdle(0);  // twice idle is still one worker
  auto d = q.dispatchOne(10);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->worker, 0u);
  uint64_t id = d->job->id;
  EXPECT_FALSE(q.dispatchOne(10)) << "worker 0 is busy, worker 1 not started";
  q.workerIdle(0);  // busy: an agent_started repeated does not make it take a second job
  EXPECT_FALSE(q.dispatchOne(10));
  auto f = q.onResult(0, id, Outcome::DONE);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->job.id, id);
  ASSERT_TRUE(q.dispatchOne(20));
  EXPECT_EQ(q.counters().done, 1u);
  expectAccounted(q.counters());
}

TEST(JobQueue, AStrayOrDuplicateResultIsRefusedAndNotCounted) {
  JobQueue q(fileConfig(2, 2));
  q.startPhase(Phase::REUSE_ON, 0);
  q.workerIdle(0);
  q.workerIdle(1);
  auto a = q.dispatchOne(1);
  auto b = q.dispatchOne(1);
  ASSERT_TRUE(a && b);
  uint64_t idA = a->job->id, idB = b->job->id;
  EXPECT_FALSE(q.onResult(0, idB, Outcome::DONE)) << "job B is not worker 0's";
  EXPECT_FALSE(q.onResult(0, 999, Outcome::DONE));
  EXPECT_FALSE(q.onResult(7, idA, Outcome::DONE)) << "no such worker";
  EXPECT_EQ(q.counters().results, 0u);
  ASSERT_TRUE(q.onResult(0, idA, Outcome::FAILED));
  EXPECT_FALSE(q.onResult(0, idA, Outcome::DONE)) << "answered twice";
  EXPECT_EQ(q.counters().results, 1u);
  EXPECT_EQ(q.counters().failed, 1u);
  expectAccounted(q.counters());
}

TEST(JobQueue, AWorkerDeathRetriesItsJobOnceThenTheJobFails) {
  JobQueue q(fileConfig(2, 2));
  q.startPhase(Phase::REUSE_ON, 0);
  q.workerIdle(0);
  auto d = q.dispatchOne(100);
  ASSERT_TRUE(d);
  uint64_t id = d->job->id;
  EXPECT_FALSE(q.onWorkerDied(1, false, 150)) << "an idle worker's death has no job";
  auto first = q.onWorkerDied(0, false, 200);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->retried);
  EXPECT_FALSE(first->finished);
  EXPECT_EQ(q.counters().retried, 1u);
  expectAccounted(q.counters());
  // It goes first, before the job that was waiting, on another worker.
  q.workerIdle(1);
  auto again = q.dispatchOne(300);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->worker, 1u);
  EXPECT_EQ(again->job->id, id);
  EXPECT_EQ(again->job->attempt, 2u);
  EXPECT_EQ(again->job->intendedUs, 0) << "total_us still counts from its first queueing";
  EXPECT_EQ(again->job->queuedUs, 200) << "queue wait counts from the retry";
  EXPECT_FALSE(q.onResult(0, id, Outcome::DONE)) << "the dead worker's late answer";
  auto second = q.onWorkerDied(1, false, 400);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->retried);
  ASSERT_TRUE(second->finished);
  EXPECT_EQ(second->finished->outcome, Outcome::FAILED);
  EXPECT_EQ(second->failureKind, "worker_died");
  EXPECT_EQ(q.counters().failed, 1u);
  EXPECT_EQ(q.counters().retried, 1u);
  expectAccounted(q.counters());
}

TEST(JobQueue, ADeathAsTheRunEndsCancelsAndADeathAfterThePhaseEndedFails) {
  JobQueue q(fileConfig(3, 3));
  q.startPhase(Phase::REUSE_ON, 0);
  for (uint32_t w = 0; w < 3; ++w) q.workerIdle(w);
  while (q.dispatchOne(1)) {
  }
  auto ending = q.onWorkerDied(0, true, 5);
  ASSERT_TRUE(ending && ending->finished);
  EXPECT_EQ(ending->finished->outcome, Outcome::CANCELLED);
  EXPECT_EQ(ending->failureKind, "run_ended");
  q.endPhase();
  auto late = q.onWorkerDied(1, false, 6);
  ASSERT_TRUE(late && late->finished);
  EXPECT_FALSE(late->retried) << "not run again under the next phase's policy";
  EXPECT_EQ(late->finished->outcome, Outcome::FAILED);
  ASSERT_TRUE(q.onResult(2, q.inFlight(2)->id, Outcome::ABORTED));
  EXPECT_TRUE(q.drained());
  EXPECT_EQ(q.counters().cancelled, 1u);
  EXPECT_EQ(q.counters().failed, 1u);
  EXPECT_EQ(q.counters().aborted, 1u);
  expectAccounted(q.counters());
}

TEST(JobQueue, APhaseEndLeavesWaitingJobsNotStartedAndTheNextPhaseReplaysTheFile) {
  JobQueue q(fileConfig(10, 2));
  q.startPhase(Phase::REUSE_OFF, 0);
  q.workerIdle(0);
  q.workerIdle(1);
  auto a = q.dispatchOne(1);
  auto b = q.dispatchOne(1);
  uint64_t idA = a->job->id, idB = b->job->id;
  q.endPhase();
  EXPECT_TRUE(q.phaseEnded());
  EXPECT_EQ(q.counters().notStarted, 8u);
  EXPECT_EQ(q.counters().queued, 0u);
  EXPECT_FALSE(q.dispatchOne(2));
  EXPECT_FALSE(q.drained()) << "two jobs still run";
  ASSERT_TRUE(q.onResult(0, idA, Outcome::DONE));
  ASSERT_TRUE(q.onResult(1, idB, Outcome::DONE));
  EXPECT_TRUE(q.drained());
  expectAccounted(q.counters());
  EXPECT_EQ(q.phaseCounters().submitted, 10u);
  EXPECT_EQ(q.phaseCounters().results, 2u);

  q.startPhase(Phase::REUSE_ON, 100);
  EXPECT_EQ(q.phaseCounters().submitted, 10u);
  EXPECT_EQ(q.phaseCounters().results, 0u);
  EXPECT_EQ(q.counters().submitted, 20u);
  auto c = q.dispatchOne(101);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->job->id, 11u) << "ids stay unique across phases";
  EXPECT_EQ(c->job->phase, Phase::REUSE_ON);
  EXPECT_EQ(c->job->name(), "line 1");
  expectAccounted(q.counters());
}

TEST(JobQueue, OpenLoopFollowsItsScheduleAndShedsBeyondTheQueueBound) {
  JobQueue q(generatedConfig(10, 0, 5, 1));
  q.startPhase(Phase::REUSE_ON, 1'000'000);
  EXPECT_EQ(q.nextDueUs(), 1'000'000);
  q.generate(1'000'000);
  EXPECT_EQ(q.counters().submitted, 1u);
  EXPECT_EQ(q.nextDueUs(), 1'100'000);
  // One second later with no worker: 10 more due, 4 fit (5 in all), 6 shed.
  q.generate(2'000'000);
  EXPECT_EQ(q.counters().submitted, 5u);
  EXPECT_EQ(q.counters().shed, 6u);
  EXPECT_EQ(q.counters().queued, 5u);
  EXPECT_EQ(q.nextDueUs(), 2'100'000);
  q.workerIdle(0);
  auto d = q.dispatchOne(2'050'000);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->job->name(), "#1");
  EXPECT_EQ(d->job->intendedUs, 1'000'000) << "queue wait counts from the intended start";
  EXPECT_EQ(d->job->spec->commands, (std::vector<std::string>{"uname -n", "true"}));
  q.endPhase();
  EXPECT_FALSE(q.nextDueUs());
  q.generate(9'000'000);
  EXPECT_EQ(q.counters().submitted, 5u) << "no generation after the phase ended";
  EXPECT_EQ(q.counters().notStarted, 4u);
  expectAccounted(q.counters());
}

TEST(JobQueue, OpenLoopStopsAtTheJobCount) {
  JobQueue q(generatedConfig(1000, 7, 100, 1));
  q.startPhase(Phase::REUSE_ON, 0);
  EXPECT_FALSE(q.phaseFullySubmitted());
  q.generate(60'000'000);
  EXPECT_EQ(q.counters().submitted, 7u);
  EXPECT_TRUE(q.phaseFullySubmitted());
  EXPECT_FALSE(q.nextDueUs());
}

TEST(JobQueue, ClosedLoopKeepsOneJobReadyPerIdleWorker) {
  JobQueue q(generatedConfig(0, 5, 100, 3));
  q.startPhase(Phase::REUSE_ON, 0);
  q.generate(0);
  EXPECT_EQ(q.counters().submitted, 0u) << "no idle worker, no job";
  q.workerIdle(0);
  q.workerIdle(1);
  q.generate(10);
  q.generate(10);
  EXPECT_EQ(q.counters().submitted, 2u);
  std::vector<uint64_t> ids;
  while (auto d = q.dispatchOne(10)) ids.push_back(d->job->id);
  EXPECT_EQ(ids.size(), 2u);
  // Targets alternate.
  EXPECT_EQ(q.inFlight(0)->target.host, "a");
  EXPECT_EQ(q.inFlight(1)->target.host, "b");
  for (uint32_t w = 0; w < 2; ++w) q.onResult(w, ids[w], Outcome::DONE);
  q.workerIdle(2);
  q.generate(20);
  EXPECT_EQ(q.counters().submitted, 5u);
  q.generate(20);
  EXPECT_EQ(q.counters().submitted, 5u) << "--job-count 5";
  EXPECT_TRUE(q.phaseFullySubmitted());
  expectAccounted(q.counters());
}

// Many jobs, few workers, everything going wrong at random (deaths,
// restarts, stray and repeated answers): every job ends exactly once.
TEST(JobQueue, ThousandJobsUnderRandomDeathsAndStrayAnswersLoseNoneAndAnswerNoneTwice) {
  constexpr uint32_t WORKERS = 4;
  constexpr uint32_t JOBS = 1000;
  JobQueue q(fileConfig(JOBS, WORKERS));
  q.startPhase(Phase::REUSE_ON, 0);
  std::mt19937 rng(13);
  std::map<uint64_t, int> ended;  // job id -> times it ended
  std::set<uint32_t> alive;
  for (uint32_t w = 0; w < WORKERS; ++w) {
    q.workerIdle(w);
    alive.insert(w);
  }
  int64_t now = 0;
  uint64_t retries = 0;
  for (int step = 0; step < 200000 && !q.drained(); ++step) {
    now += 10;
    while (q.dispatchOne(now)) {
    }
    uint32_t w = rng() % WORKERS;
    int dice = static_cast<int>(rng() % 100);
    if (!alive.count(w)) {
      if (dice < 50) {  // restarted
        alive.insert(w);
        q.workerIdle(w);
      }
      continue;
    }
    if (dice < 3) {  // killed
      alive.erase(w);
      if (auto d = q.onWorkerDied(w, false, now)) {
        if (d->retried) ++retries;
        else ++ended[d->job.id];
      }
    } else if (dice < 6) {  // a stray answer
      EXPECT_FALSE(q.onResult(w, rng() % (JOBS + 10) + JOBS + 1, Outcome::DONE));
    } else if (const QueuedJob* job = q.inFlight(w)) {
      uint64_t id = job->id;
      auto f = q.onResult(w, id, static_cast<Outcome>(rng() % 4));
      ASSERT_TRUE(f);
      ++ended[id];
      if (dice < 10) {
        EXPECT_FALSE(q.onResult(w, id, Outcome::DONE)) << "a repeated answer";
      }
    }
    ASSERT_EQ(q.counters().lost(), 0) << "at step " << step;
  }
  ASSERT_TRUE(q.drained());
  EXPECT_EQ(ended.size(), JOBS);
  for (const auto& [id, times] : ended) EXPECT_EQ(times, 1) << "job " << id;
  const JobCounters& c = q.counters();
  EXPECT_EQ(c.submitted, JOBS);
  EXPECT_EQ(c.results, JOBS);
  EXPECT_EQ(c.retried, retries);
  EXPECT_GT(c.retried, 0u) << "the test must exercise retries";
  EXPECT_EQ(c.submitted, c.done + c.failed + c.aborted + c.cancelled + c.notStarted);
}
