// The supervisor's side of --workload jobs, driven from its event loop: the
// JobQueue (what waits, what runs where), the phases of the run
// (--compare-reuse: reuse_off, then reuse_on), sending Command.runJob to an
// idle worker, the job / job_retried / job_rejected / job_stats / job_queue /
// job_phase lines, and the end of the run when every job has its result.
// The Supervisor tells it about its agents; it never touches a process.
// docs/design.md, "Jobs: the queue"; the lines: docs/reference.md, "Jobs lines".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <vector>

#include <capnp/message.h>

#include "events.capnp.h"
#include "supervisor/cli.h"
#include "supervisor/log_line.h"
#include "supervisor/run/job_queue.h"
#include "supervisor/run/job_stats.h"

namespace sshsoak {
class JsonlLog;
}

namespace sshsoak::jobs {

// What the dispatcher needs of the supervisor.
struct DispatcherHooks {
  // Writes a message to the worker's command pipe; false if it is gone.
  std::function<bool(uint32_t worker, capnp::MessageBuilder& message)> send;
  // The worker's slot host (job_stats' host).
  std::function<std::string(uint32_t worker)> workerHost;
  // Every phase is over: the run can end.
  std::function<void(const std::string& why)> allDone;
};

// Fills a Command.runJob for a queued job (the dispatcher's, and the
// benchmark's, one definition).
void buildRunJob(wire::Command::Builder command, const QueuedJob& job);

// The job queue's configuration from the run's options.
JobQueueConfig queueConfigOf(const cli::Options& options);

class JobDispatcher {
 public:
  JobDispatcher(const cli::Options& options, boost::asio::io_context& io, JsonlLog& log, DispatcherHooks hooks);
  JobDispatcher(const JobDispatcher&) = delete;
  JobDispatcher& operator=(const JobDispatcher&) = delete;

  // At the run's start: job_rejected lines, the first phase, the rollups.
  void start();
  // The worker's agent said agent_started: it is idle.
  void onAgentStarted(uint32_t worker);
  // A jobResult event: counted, rolled up and (not done, or --log-each-job)
  // logged as a job line. A result that is not for the worker's job in
  // flight is a warning and is ignored.
  void onJobResult(uint32_t worker, wire::Event::Reader event);
  // The worker's agent is stopping or its pipe ended: no new job for it.
  void onWorkerLeaving(uint32_t worker);
  // Its exit is recorded (crash, kill, or the end of the run): its job in
  // flight is retried once, or ends failed (worker_died) / cancelled
  // (run_ended).
  void onWorkerGone(uint32_t worker, bool runEnding);
  // The run is stopping: no new job; what waits is not_started.
  void onShutdown();
  // After the loop, before the summary: the last job_stats, the final
  // job_queue and the last phase's job_phase.
  void finish();

  const JobQueue& queue() const { return queue_; }

 private:
  void beginPhase(size_t index);
  void pump();
  void dispatch(const Dispatch& d);
  void checkPhaseEnd();
  void endPhase();
  void phaseOver();
  void armGeneration();
  void armReport();
  void flushStats();
  void writeQueueLine(bool final);
  void writePhaseLine();
  void record(uint32_t worker, const JobSample& sample);
  int64_t nowUs() const;

  const cli::Options& options_;
  JsonlLog& log_;
  DispatcherHooks hooks_;
  JobQueue queue_;
  std::vector<Phase> phases_;
  size_t phaseIndex_ = 0;
  int64_t phaseStartUs_ = 0;
  std::optional<uint64_t> phaseCpuStartTicks_;
  bool phaseLineWritten_ = false;
  bool shuttingDown_ = false;
  bool finished_ = false;
  std::vector<JobStats> stats_;  // one per worker
  int64_t intervalStartUs_ = 0;
  boost::asio::steady_timer generationTimer_;
  boost::asio::steady_timer phaseTimer_;
  boost::asio::steady_timer reportTimer_;
};

}  // namespace sshsoak::jobs
