#include "supervisor/run/job_queue.h"

#include <cmath>
#include <utility>

namespace sshsoak::jobs {

std::string_view phaseName(Phase phase) {
  switch (phase) {
    case Phase::REUSE_ON: return "reuse_on";
    case Phase::REUSE_OFF: return "reuse_off";
  }
  return "?";
}

std::string QueuedJob::name() const {
  if (generatedNumber > 0) return "#" + std::to_string(generatedNumber);
  if (spec != nullptr && !spec->name.empty()) return spec->name;
  return "line " + std::to_string(spec != nullptr ? spec->line : 0);
}

std::string QueuedJob::targetText() const { return user + "@" + target.text(); }

JobQueue::JobQueue(JobQueueConfig config) : config_(std::move(config)), workers_(config_.workers) {
  generatedSpec_.commands = config_.commands;
}

void JobQueue::startPhase(Phase phase, int64_t nowUs) {
  phase_ = phase;
  phaseStarted_ = true;
  phaseEnded_ = false;
  phaseStartUs_ = nowUs;
  generatedInPhase_ = 0;
  phaseTotal_ = JobCounters{};
  // Whatever a previous phase still has in flight stays counted in it; a
  // new phase starts when the last one drained, so this is 0 then.
  phaseTotal_.inFlight = inFlightCount_;
  for (const auto& spec : config_.fileJobs) enqueue(spec, 0, nowUs);
}

void JobQueue::enqueue(const cli::JobSpec& spec, uint64_t generatedNumber, int64_t intendedUs) {
  QueuedJob job;
  job.id = nextId_++;
  job.spec = &spec;
  job.generatedNumber = generatedNumber;
  if (spec.target) {
    job.target = *spec.target;
  } else if (!config_.targets.empty()) {
    job.target = config_.targets[nextTarget_++ % config_.targets.size()];
  }
  job.user = spec.user.empty() ? config_.user : spec.user;
  job.intendedUs = intendedUs;
  job.queuedUs = intendedUs;
  job.phase = phase_;
  queue_.push_back(std::move(job));
  bothCounters([](JobCounters& c) {
    ++c.submitted;
    ++c.queued;
  });
}

bool JobQueue::phaseFullySubmitted() const {
  if (!generated()) return phaseStarted_;
  return config_.countPerPhase > 0 && generatedInPhase_ >= config_.countPerPhase;
}

void JobQueue::generate(int64_t nowUs) {
  if (!generated() || phaseEnded_) return;
  auto more = [&] { return config_.countPerPhase == 0 || generatedInPhase_ < config_.countPerPhase; };
  if (config_.ratePerSec <= 0) {
    // Closed loop: a job ready for each idle worker, no backlog.
    while (more() && queue_.size() < idleCount_) {
      ++generatedInPhase_;
      enqueue(generatedSpec_, ++generatedNumber_, nowUs);
    }
    return;
  }
  // Open loop: the schedule is fixed from the phase's start, so a slow
  // server shows as queue wait, not as a lower rate.
  while (more()) {
    int64_t due = *nextDueUs();
    if (due > nowUs) break;
    ++generatedInPhase_;
    ++generatedNumber_;
    if (queue_.size() >= config_.maxQueue) {
      bothCounters([](JobCounters& c) { ++c.shed; });
      continue;
    }
    enqueue(generatedSpec_, generatedNumber_, due);
  }
}

std::optional<int64_t> JobQueue::nextDueUs() const {
  if (!generated() || phaseEnded_ || config_.ratePerSec <= 0) return std::nullopt;
  if (config_.countPerPhase > 0 && generatedInPhase_ >= config_.countPerPhase) return std::nullopt;
  return phaseStartUs_ + static_cast<int64_t>(std::llround(static_cast<double>(generatedInPhase_) * 1e6 /
                                                           config_.ratePerSec));
}

void JobQueue::workerIdle(uint32_t worker) {
  if (worker >= workers_.size()) return;
  Worker& w = workers_[worker];
  // A worker with a job is not idle until that job's answer (or its death).
  if (w.idle || w.job) return;
  w.idle = true;
  ++idleCount_;
  if (!w.listed) {
    w.listed = true;
    idleList_.push_back(worker);
  }
}

void JobQueue::workerLeaving(uint32_t worker) {
  if (worker >= workers_.size() || !workers_[worker].idle) return;
  workers_[worker].idle = false;  // its entry in idleList_ is skipped
  --idleCount_;
}

std::optional<Dispatch> JobQueue::dispatchOne(int64_t nowUs) {
  while (!queue_.empty() && !idleList_.empty()) {
    uint32_t worker = idleList_.front();
    idleList_.pop_front();
    Worker& w = workers_[worker];
    w.listed = false;
    if (!w.idle) continue;  // it died since it was listed
    w.idle = false;
    --idleCount_;
    w.job = std::move(queue_.front());
    queue_.pop_front();
    w.job->dispatchedUs = nowUs;
    ++inFlightCount_;
    bothCounters([](JobCounters& c) {
      --c.queued;
      ++c.inFlight;
    });
    return Dispatch{worker, &*w.job};
  }
  return std::nullopt;
}

void JobQueue::countOutcome(wire::JobOutcome outcome) {
  bothCounters([outcome](JobCounters& c) {
    ++c.results;
    switch (outcome) {
      case wire::JobOutcome::DONE: ++c.done; break;
      case wire::JobOutcome::FAILED: ++c.failed; break;
      case wire::JobOutcome::ABORTED: ++c.aborted; break;
      case wire::JobOutcome::CANCELLED: ++c.cancelled; break;
    }
  });
}

std::optional<Finished> JobQueue::onResult(uint32_t worker, uint64_t jobId, wire::JobOutcome outcome) {
  if (worker >= workers_.size()) return std::nullopt;
  Worker& w = workers_[worker];
  if (!w.job || w.job->id != jobId) return std::nullopt;
  Finished f{std::move(*w.job), outcome};
  w.job.reset();
  --inFlightCount_;
  bothCounters([](JobCounters& c) {
    if (c.inFlight > 0) --c.inFlight;
  });
  countOutcome(outcome);
  workerIdle(worker);
  return f;
}

std::optional<WorkerDeath> JobQueue::onWorkerDied(uint32_t worker, bool runEnding, int64_t nowUs) {
  if (worker >= workers_.size()) return std::nullopt;
  workerLeaving(worker);
  Worker& w = workers_[worker];
  if (!w.job) return std::nullopt;
  WorkerDeath d;
  d.job = std::move(*w.job);
  w.job.reset();
  --inFlightCount_;
  bothCounters([](JobCounters& c) {
    if (c.inFlight > 0) --c.inFlight;
  });
  if (runEnding) {
    d.failureKind = "run_ended";
    d.message = "the run ended and its worker was gone before it answered";
    d.finished = Finished{d.job, wire::JobOutcome::CANCELLED};
  } else if (d.job.attempt >= 2) {
    d.failureKind = "worker_died";
    d.message = "its worker died twice running it (attempt " + std::to_string(d.job.attempt) + "); not run again";
    d.finished = Finished{d.job, wire::JobOutcome::FAILED};
  } else if (phaseEnded_) {
    // Its phase is over: running it again would run it under the next
    // phase's connection policy.
    d.failureKind = "worker_died";
    d.message = "its worker died as its phase ended; not run again";
    d.finished = Finished{d.job, wire::JobOutcome::FAILED};
  } else {
    // First death: at the front, so it runs next. Its first attempt may
    // have run some commands (at least once, docs/reference.md "Jobs").
    d.retried = true;
    QueuedJob again = d.job;
    again.attempt = d.job.attempt + 1;
    again.queuedUs = nowUs;
    again.dispatchedUs = 0;
    queue_.push_front(std::move(again));
    bothCounters([](JobCounters& c) {
      ++c.queued;
      ++c.retried;
    });
    return d;
  }
  countOutcome(d.finished->outcome);
  return d;
}

void JobQueue::endPhase() {
  phaseEnded_ = true;
  uint64_t left = queue_.size();
  queue_.clear();
  bothCounters([left](JobCounters& c) {
    c.notStarted += left;
    c.queued -= std::min(c.queued, left);
  });
}

const QueuedJob* JobQueue::inFlight(uint32_t worker) const {
  if (worker >= workers_.size() || !workers_[worker].job) return nullptr;
  return &*workers_[worker].job;
}

}  // namespace sshsoak::jobs
