#include "supervisor/run/job_dispatcher.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "shared/clock.h"
#include "shared/wire_names.h"
#include "supervisor/run/jsonl_log.h"
#include "supervisor/run/proc_sample.h"

namespace asio = boost::asio;

namespace sshsoak::jobs {

namespace {

uint64_t nonNegative(int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : 0; }

}  // namespace

void buildRunJob(wire::Command::Builder command, const QueuedJob& job) {
  auto j = command.initRunJob();
  j.setId(job.id);
  j.setHost(job.target.host);
  j.setPort(job.target.port);
  j.setUser(job.user);
  const auto& commands = job.spec->commands;
  auto list = j.initCommands(static_cast<unsigned>(commands.size()));
  for (unsigned i = 0; i < commands.size(); ++i) list.set(i, commands[i]);
  j.setCommandTimeoutMs(job.spec->commandTimeoutMs);  // 0: the worker's --command-timeout-secs
  j.setReuse(job.phase == Phase::REUSE_ON);
  j.setAttempt(job.attempt);
}

JobQueueConfig queueConfigOf(const cli::Options& o) {
  JobQueueConfig c;
  c.fileJobs = o.jobs;
  c.commands = o.jobCommands;
  c.targets = o.targets;
  c.user = o.user;
  c.workers = static_cast<uint32_t>(o.slots.size());
  c.ratePerSec = o.jobRatePerSec;
  c.countPerPhase = o.jobCount;
  c.maxQueue = o.maxJobQueue;
  return c;
}

JobDispatcher::JobDispatcher(const cli::Options& options, asio::io_context& io, JsonlLog& log,
                             DispatcherHooks hooks)
    : options_(options),
      log_(log),
      hooks_(std::move(hooks)),
      queue_(queueConfigOf(options)),
      stats_(options.slots.size()),
      generationTimer_(io),
      phaseTimer_(io),
      reportTimer_(io) {
  if (options.compareReuse) phases_ = {Phase::REUSE_OFF, Phase::REUSE_ON};
  else phases_ = {options.reuse ? Phase::REUSE_ON : Phase::REUSE_OFF};
}

int64_t JobDispatcher::nowUs() const { return monoNs() / 1000; }

void JobDispatcher::start() {
  for (const auto& r : options_.rejectedJobs) {
    Json j = lineHead(wallNs(), std::nullopt, "", "job_rejected");
    j["detail"] = "--jobs-file line " + std::to_string(r.line) + (r.field.empty() ? "" : ", field " + r.field) +
                  ": " + r.message;
    j["success"] = false;
    j["line"] = r.line;
    j["field"] = r.field;
    j["message"] = r.message;
    log_.write(j);
  }
  if (!options_.rejectedJobs.empty()) {
    spdlog::warn("--skip-bad-jobs: {} lines of {} left out (job_rejected lines in the log)",
                 options_.rejectedJobs.size(), options_.jobsFile);
  }
  intervalStartUs_ = nowUs();
  armReport();
  beginPhase(0);
}

void JobDispatcher::beginPhase(size_t index) {
  phaseIndex_ = index;
  phaseLineWritten_ = false;
  phaseStartUs_ = nowUs();
  phaseCpuStartTicks_ = options_.serverPid > 0 ? processTreeCpuTicks(options_.serverPid) : std::nullopt;
  queue_.startPhase(phases_[index], phaseStartUs_);
  spdlog::info("jobs: phase {} ({} of {}){}", phaseName(phases_[index]), index + 1, phases_.size(),
               queue_.generated() ? "" : ": " + std::to_string(options_.jobs.size()) + " jobs from the file");
  // Generated jobs with --compare-reuse: half the run each; otherwise the
  // run's duration (or the last result) ends the phase.
  if (queue_.generated() && phases_.size() > 1) {
    phaseTimer_.expires_after(std::chrono::milliseconds(int64_t{options_.durationSecs} * 1000 /
                                                        static_cast<int64_t>(phases_.size())));
    phaseTimer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !shuttingDown_) endPhase();
    });
  }
  pump();
}

// Generates what is due, hands out what waits to idle workers, and ends the
// phase when it is complete.
void JobDispatcher::pump() {
  if (shuttingDown_) return;
  queue_.generate(nowUs());
  while (auto d = queue_.dispatchOne(nowUs())) dispatch(*d);
  armGeneration();
  checkPhaseEnd();
}

void JobDispatcher::dispatch(const Dispatch& d) {
  capnp::MallocMessageBuilder message;
  buildRunJob(message.initRoot<wire::Command>(), *d.job);
  // A worker gone meanwhile keeps the job in flight until its death is
  // recorded, which retries it.
  if (!hooks_.send(d.worker, message)) {
    spdlog::debug("jobs: worker {:02} is gone; job {} waits for its exit to be recorded", d.worker, d.job->id);
  }
}

void JobDispatcher::armGeneration() {
  auto due = queue_.nextDueUs();
  if (!due) return;
  int64_t waitUs = std::max<int64_t>(0, *due - nowUs());
  generationTimer_.expires_after(std::chrono::microseconds(waitUs));
  generationTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) pump();
  });
}

void JobDispatcher::checkPhaseEnd() {
  if (shuttingDown_) return;
  if (!queue_.phaseEnded() && queue_.phaseFullySubmitted() && queue_.drained()) {
    endPhase();
    return;
  }
  if (queue_.phaseEnded() && queue_.drained()) phaseOver();
}

// No new job in this phase; what waits is not_started; what runs finishes.
void JobDispatcher::endPhase() {
  if (queue_.phaseEnded()) return;
  uint64_t waiting = queue_.counters().queued;
  queue_.endPhase();
  generationTimer_.cancel();
  phaseTimer_.cancel();
  spdlog::info("jobs: phase {} ends ({} waiting not started, {} running finish)", phaseName(queue_.phase()),
               waiting, queue_.counters().inFlight);
  if (queue_.drained()) phaseOver();
}

// The phase ended and drained: its lines, then the next phase or the end.
void JobDispatcher::phaseOver() {
  if (phaseIndex_ + 1 < phases_.size()) {
    flushStats();
    writePhaseLine();
    beginPhase(phaseIndex_ + 1);
    return;
  }
  // The last phase's lines come with the final rollup, in finish().
  if (hooks_.allDone) hooks_.allDone(queue_.generated() ? "every generated job has its result" : "all jobs done");
}

void JobDispatcher::onAgentStarted(uint32_t worker) {
  queue_.workerIdle(worker);
  pump();
}

void JobDispatcher::onWorkerLeaving(uint32_t worker) { queue_.workerLeaving(worker); }

void JobDispatcher::onJobResult(uint32_t worker, wire::Event::Reader event) {
  auto r = event.getJobResult();
  // Its pointers first (a bad one throws kj::Exception, the agent's protocol
  // error): nothing is counted for a frame that turns out undecodable.
  std::string failureKind(r.getFailureKind());
  std::string message(r.getMessage());
  (void)r.getExitCodes().size();
  auto finished = queue_.onResult(worker, r.getJobId(), r.getOutcome());
  if (!finished) {
    const QueuedJob* expected = queue_.inFlight(worker);
    spdlog::warn("jobs: worker {:02} answered job {} but {}; ignored", worker, r.getJobId(),
                 expected ? "its job in flight is " + std::to_string(expected->id) : std::string("it has no job in flight"));
    return;
  }
  const QueuedJob& job = finished->job;
  int64_t now = nowUs();
  uint64_t queueWaitUs = nonNegative(job.dispatchedUs - job.queuedUs);
  uint64_t totalUs = nonNegative(now - job.intendedUs);
  record(worker, JobSample{.outcome = r.getOutcome(),
                           .reused = r.getReused(),
                           .queueWaitUs = queueWaitUs,
                           .connectUs = r.getConnectUs(),
                           .livenessUs = r.getLivenessUs(),
                           .runUs = r.getRunUs(),
                           .totalUs = totalUs,
                           .commandsRun = r.getCommandsRun(),
                           .commandsFailed = r.getCommandsFailed(),
                           .deadReplaced = r.getDeadReplaced(),
                           .connectionsOpened = r.getConnectionsOpened(),
                           .failureKind = failureKind,
                           .message = message});
  if (r.getOutcome() != wire::JobOutcome::DONE || options_.logEachJob) {
    Json j = eventToJson(event, job.target.text());
    j["job"] = job.name();
    j["target"] = job.targetText();
    j["line"] = job.generatedNumber > 0 ? Json(nullptr) : Json(job.spec->line);
    j["phase"] = std::string(phaseName(job.phase));
    j["queue_wait_us"] = queueWaitUs;
    j["total_us"] = totalUs;
    log_.write(j);
  }
  pump();
}

void JobDispatcher::onWorkerGone(uint32_t worker, bool runEnding) {
  auto death = queue_.onWorkerDied(worker, runEnding || shuttingDown_, nowUs());
  if (!death) return;
  const QueuedJob& job = death->job;
  if (death->retried) {
    spdlog::warn("jobs: worker {:02} died running job {} ({}); queued again (attempt {})", worker, job.id,
                 job.name(), job.attempt + 1);
    Json j = lineHead(wallNs(), worker, job.target.text(), "job_retried");
    j["detail"] = "its worker died with it in flight; it runs again (its first attempt may have run in part)";
    j["success"] = false;
    j["job_id"] = job.id;
    j["job_name"] = job.name();  // not "job": that is an event's name (grep -c '"job"' counts job lines)
    j["target"] = job.targetText();
    j["attempt"] = job.attempt + 1;
    log_.write(j);
    pump();
    return;
  }
  // The supervisor's own result for it: the worker cannot answer any more.
  wire::JobOutcome outcome = death->finished->outcome;
  spdlog::warn("jobs: worker {:02} gone with job {} ({}): {}", worker, job.id, job.name(), death->message);
  int64_t now = nowUs();
  uint64_t queueWaitUs = job.dispatchedUs > 0 ? nonNegative(job.dispatchedUs - job.queuedUs) : 0;
  uint64_t totalUs = nonNegative(now - job.intendedUs);
  record(worker, JobSample{.outcome = outcome,
                           .queueWaitUs = queueWaitUs,
                           .totalUs = totalUs,
                           .failureKind = death->failureKind,
                           .message = death->message});
  Json j = lineHead(wallNs(), worker, job.target.text(), "job");
  j["detail"] = death->message;
  j["attempt"] = job.attempt;
  j["success"] = false;
  j["job_id"] = job.id;
  j["outcome"] = std::string(jobOutcomeName(outcome));
  j["reused"] = false;
  j["connect_us"] = 0;
  j["liveness_us"] = 0;
  j["run_us"] = 0;
  j["commands_run"] = 0;
  j["commands_failed"] = 0;
  j["exit_codes"] = Json::array();
  j["failure_kind"] = death->failureKind;
  j["message"] = death->message;
  j["dead_replaced"] = 0;
  j["connections_opened"] = 0;
  j["job"] = job.name();
  j["target"] = job.targetText();
  j["line"] = job.generatedNumber > 0 ? Json(nullptr) : Json(job.spec->line);
  j["phase"] = std::string(phaseName(job.phase));
  j["queue_wait_us"] = queueWaitUs;
  j["total_us"] = totalUs;
  log_.write(j);
  pump();
}

void JobDispatcher::onShutdown() {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  generationTimer_.cancel();
  phaseTimer_.cancel();
  reportTimer_.cancel();
  // The workers cancel their jobs in flight (cancelled results); nothing
  // new starts.
  if (!queue_.phaseEnded()) queue_.endPhase();
}

void JobDispatcher::finish() {
  if (finished_) return;
  finished_ = true;
  shuttingDown_ = true;
  // Every agent's exit is recorded by now; a job still in flight would be
  // one nobody answered: it ends cancelled rather than lost.
  for (uint32_t w = 0; w < stats_.size(); ++w) {
    if (queue_.inFlight(w) != nullptr) onWorkerGone(w, true);
  }
  if (!queue_.phaseEnded()) queue_.endPhase();
  flushStats();
  writeQueueLine(true);
  writePhaseLine();
  const JobCounters& c = queue_.counters();
  if (c.lost() != 0) {
    spdlog::error("jobs: {} jobs unaccounted for (submitted {}, results {}, not started {})", c.lost(), c.submitted,
                  c.results, c.notStarted);
  }
}

void JobDispatcher::record(uint32_t worker, const JobSample& sample) {
  if (worker < stats_.size()) stats_[worker].add(sample);
}

void JobDispatcher::armReport() {
  reportTimer_.expires_after(std::chrono::seconds(options_.jobReportSecs));
  reportTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shuttingDown_) return;
    flushStats();
    writeQueueLine(false);
    armReport();
  });
}

// One job_stats line per worker with results since the last.
void JobDispatcher::flushStats() {
  int64_t now = nowUs();
  int64_t intervalMs = (now - intervalStartUs_) / 1000;
  for (uint32_t w = 0; w < stats_.size(); ++w) {
    if (stats_[w].empty()) continue;
    log_.write(stats_[w].takeLine(wallNs(), w, hooks_.workerHost ? hooks_.workerHost(w) : "", intervalMs,
                                  queue_.phase()));
  }
  intervalStartUs_ = now;
}

void JobDispatcher::writeQueueLine(bool final) {
  const JobCounters& c = queue_.counters();
  Json j = lineHead(wallNs(), std::nullopt, "", "job_queue");
  j["submitted"] = c.submitted;
  j["queued"] = c.queued;
  j["in_flight"] = c.inFlight;
  j["results"] = c.results;
  j["retried"] = c.retried;
  j["shed"] = c.shed;
  j["not_started"] = c.notStarted;
  j["final"] = final;
  j["phase"] = std::string(phaseName(queue_.phase()));
  log_.write(j);
}

void JobDispatcher::writePhaseLine() {
  if (phaseLineWritten_) return;
  phaseLineWritten_ = true;
  const JobCounters& c = queue_.phaseCounters();
  int64_t now = nowUs();
  Json j = lineHead(wallNs(), std::nullopt, "", "job_phase");
  j["phase"] = std::string(phaseName(queue_.phase()));
  j["secs"] = std::round(static_cast<double>(now - phaseStartUs_) / 1e3) / 1e3;
  j["submitted"] = c.submitted;
  j["results"] = c.results;
  j["not_started"] = c.notStarted;
  j["server_pid"] = options_.serverPid > 0 ? Json(options_.serverPid) : Json(nullptr);
  std::optional<uint64_t> endTicks = options_.serverPid > 0 ? processTreeCpuTicks(options_.serverPid) : std::nullopt;
  if (phaseCpuStartTicks_ && endTicks && *endTicks >= *phaseCpuStartTicks_) {
    j["server_cpu_ms"] = (*endTicks - *phaseCpuStartTicks_) * 1000 / static_cast<uint64_t>(clockTicksPerSec());
  } else {
    j["server_cpu_ms"] = nullptr;
  }
  log_.write(j);
  spdlog::info("jobs: phase {}: {} results of {} submitted in {:.1f} s{}", phaseName(queue_.phase()), c.results,
               c.submitted, static_cast<double>(now - phaseStartUs_) / 1e6,
               j["server_cpu_ms"].is_null() ? "" : ", sshd CPU " + j["server_cpu_ms"].dump() + " ms");
}

}  // namespace sshsoak::jobs
