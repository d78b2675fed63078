// The run's jobs (--workload jobs), pure bookkeeping with no I/O: which
// jobs wait, which worker runs which one, what each ended as. The
// JobDispatcher (job_dispatcher.h) drives it from the event loop with the
// clock; the tests drive it with numbers (docs/design.md, "Jobs: the queue").
//
// Every job is accounted for exactly once:
//   submitted = done + failed + aborted + cancelled + not_started + queued + in_flight
// and at the end of a run queued = in_flight = 0. A result that does not match
// the job in flight at its worker is refused (not counted), so no job is
// answered twice; a worker that dies with a job gets it queued once more
// (attempt 2), and a second death makes it failed (worker_died).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events.capnp.h"
#include "supervisor/cli.h"

namespace sshsoak::jobs {

// --compare-reuse runs reuse_off, then reuse_on; a plain run is one phase.
enum class Phase { REUSE_ON, REUSE_OFF };
std::string_view phaseName(Phase phase);  // "reuse_on", "reuse_off"

struct QueuedJob {
  uint64_t id = 0;                        // the run's, from 1, unique across phases
  const cli::JobSpec* spec = nullptr;     // the file's line, or the queue's generated spec
  uint64_t generatedNumber = 0;           // #N of generated jobs (0: from the file)
  cli::Target target;                     // resolved: the spec's, or the run's round-robin
  std::string user;                       // resolved: the spec's, or --user
  int64_t intendedUs = 0;                 // enqueued (file) or its scheduled start (generated): total_us counts from here
  int64_t queuedUs = 0;                   // the current attempt's enqueue (= intendedUs on attempt 1): queue wait counts from here
  int64_t dispatchedUs = 0;               // sent to its worker
  uint32_t attempt = 1;
  Phase phase = Phase::REUSE_ON;

  // The name the log shows: the file's id, "line N", or "#N".
  std::string name() const;
  // "user@host:port".
  std::string targetText() const;
};

struct JobQueueConfig {
  std::vector<cli::JobSpec> fileJobs;     // empty: generated jobs
  std::vector<std::string> commands;      // generated jobs' commands
  std::vector<cli::Target> targets;       // round-robin for jobs without a target
  std::string user;                       // for jobs without a user
  uint32_t workers = 0;
  double ratePerSec = 0;                  // generated; 0: closed loop
  uint64_t countPerPhase = 0;             // generated; 0: until the phase ends
  uint64_t maxQueue = 10000;              // generated jobs waiting beyond this are shed
};

struct JobCounters {
  uint64_t submitted = 0;    // entered the queue (a retry is not a new submission)
  uint64_t queued = 0;       // waiting now
  uint64_t inFlight = 0;     // at a worker now
  uint64_t results = 0;      // done + failed + aborted + cancelled
  uint64_t done = 0;
  uint64_t failed = 0;
  uint64_t aborted = 0;
  uint64_t cancelled = 0;
  uint64_t retried = 0;
  uint64_t shed = 0;         // generated but dropped: the queue was full (not submitted)
  uint64_t notStarted = 0;   // waiting when their phase (or the run) ended

  // Jobs not accounted for: must be 0 at every moment.
  int64_t lost() const {
    return static_cast<int64_t>(submitted) -
           static_cast<int64_t>(results + notStarted + queued + inFlight);
  }
};

// One job handed to one idle worker.
struct Dispatch {
  uint32_t worker = 0;
  const QueuedJob* job = nullptr;  // valid until that worker's result or death
};

// What became of a finished job: its final record and how it ended.
struct Finished {
  QueuedJob job;
  wire::JobOutcome outcome = wire::JobOutcome::DONE;
};

// A worker died. retried: its job is queued again (attempt 2); otherwise
// `finished` is the result the supervisor makes for it.
struct WorkerDeath {
  QueuedJob job;
  bool retried = false;
  std::optional<Finished> finished;
  std::string failureKind;  // of the made result: worker_died or run_ended
  std::string message;
};

class JobQueue {
 public:
  explicit JobQueue(JobQueueConfig config);

  bool generated() const { return config_.fileJobs.empty(); }
  Phase phase() const { return phase_; }
  // The current phase takes no new jobs (its end was called).
  bool phaseEnded() const { return phaseEnded_; }

  // A phase begins: a file's jobs are all queued at `nowUs`; generated
  // jobs are scheduled from it.
  void startPhase(Phase phase, int64_t nowUs);
  // Generated jobs: open loop, every job whose intended start is due by
  // nowUs (shed beyond maxQueue); closed loop, one per idle worker with
  // nothing waiting for it. Nothing for a file or an ended phase.
  void generate(int64_t nowUs);
  // Open loop: when the next job is due (nullopt: none will be).
  std::optional<int64_t> nextDueUs() const;
  // Every job of the phase is submitted (the file's; --job-count reached).
  bool phaseFullySubmitted() const;
  // Nothing waits and nothing runs.
  bool drained() const { return queue_.empty() && inFlightCount_ == 0; }

  // The worker can take a job (agent started, or its result came).
  void workerIdle(uint32_t worker);
  // The worker's agent is stopping (its pipe ended, or the run stops it):
  // it takes no new job; one in flight stays so until its answer or death.
  void workerLeaving(uint32_t worker);
  // One queued job to one idle worker (the one idle longest), or nullopt.
  std::optional<Dispatch> dispatchOne(int64_t nowUs);

  // The worker's answer. nullopt, and nothing counted, when it is not for
  // the job in flight at that worker (a stray or duplicate answer).
  std::optional<Finished> onResult(uint32_t worker, uint64_t jobId, wire::JobOutcome outcome);
  // The worker's agent is gone (crash, kill, or the run's end). nullopt
  // when it had no job. runEnding: the run is stopping, so a job is not run
  // again but ends cancelled (run_ended).
  std::optional<WorkerDeath> onWorkerDied(uint32_t worker, bool runEnding, int64_t nowUs);

  // The phase ends: no more generation, the jobs still waiting are
  // not_started. Jobs in flight finish.
  void endPhase();

  const JobCounters& counters() const { return total_; }
  const JobCounters& phaseCounters() const { return phaseTotal_; }
  const QueuedJob* inFlight(uint32_t worker) const;

 private:
  struct Worker {
    bool idle = false;
    bool listed = false;  // in idleList_ (at most once: the list stays bounded by the workers)
    std::optional<QueuedJob> job;
  };
  void enqueue(const cli::JobSpec& spec, uint64_t generatedNumber, int64_t intendedUs);
  void countOutcome(wire::JobOutcome outcome);
  template <typename F>
  void bothCounters(F&& f) {
    f(total_);
    f(phaseTotal_);
  }

  JobQueueConfig config_;
  cli::JobSpec generatedSpec_;
  std::deque<QueuedJob> queue_;
  std::vector<Worker> workers_;
  std::deque<uint32_t> idleList_;  // idle workers, oldest first; an entry whose worker died is skipped
  uint32_t idleCount_ = 0;
  uint64_t inFlightCount_ = 0;
  uint64_t nextId_ = 1;
  uint64_t nextTarget_ = 0;
  Phase phase_ = Phase::REUSE_ON;
  bool phaseStarted_ = false;
  bool phaseEnded_ = true;
  int64_t phaseStartUs_ = 0;
  uint64_t generatedInPhase_ = 0;  // submitted or shed
  uint64_t generatedNumber_ = 0;   // #N across the run
  JobCounters total_;
  JobCounters phaseTotal_;
};

}  // namespace sshsoak::jobs
