#include "session_agent/workloads/jobs_worker.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <limits>
#include <sstream>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/exec_task.h"
#include "shared/clock.h"
#include "shared/fd.h"

namespace sshsoak::agent {

namespace {

// What this process already knows without a round trip: the link was cut
// (a drop), or the server closed or reset it while the connection sat in
// the pool (a killed sshd child sends its FIN at once).
bool locallyAlive(SshConnection& conn) {
  if (conn.isCut() || conn.peerClosed() || conn.lastRecvErrno() != 0) return false;
  char byte;
  ssize_t n = ::recv(conn.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  return n > 0 || errno == EAGAIN || errno == EWOULDBLOCK;
}

std::string target(const PoolKey& key) { return key.user + "@" + key.host + ":" + std::to_string(key.port); }

}  // namespace

void JobReport::noteFailure(JobFailure kind, std::string words) {
  if (failure) return;
  failure = kind;
  if (words.size() > JobWorker::MAX_MESSAGE_BYTES) words.resize(JobWorker::MAX_MESSAGE_BYTES);
  message = std::move(words);
}

JobWorker::JobWorker(JobsSpec spec, ConnectSettings connect, EventSink& events, JobCommandPipe commands)
    : spec_(spec),
      connect_(std::move(connect)),
      events_(events),
      commands_(std::move(commands)),
      pool_(spec_.maxConnections, spec_.maxIdleMs) {}

bool JobWorker::shouldStop() const { return commands_.stopRequested || events_.supervisorGone(); }

void JobWorker::run() {
  // Read once, not at every authentication (client CPU per connection).
  // Unreadable: left to libssh2, whose failure then names the file.
  if (!connect_.key) {
    if (auto text = readWholeFile(connect_.keyPath)) connect_.key = ClientKey::load(std::move(*text));
  }
  while (!shouldStop()) {
    if (!commands_.jobs.empty()) {
      JobRequest job = std::move(commands_.jobs.front());
      commands_.jobs.pop_front();
      runJob(job);
      continue;
    }
    int64_t now = monoMs();
    closeIdle(now);
    // Asleep until a command, or the next cached connection falls idle.
    int64_t wake = pool_.nextIdleDeadlineMs();
    wake = std::min(wake, heartbeatDue(now));
    int timeout = wake == std::numeric_limits<int64_t>::max()
                      ? -1
                      : static_cast<int>(std::clamp<int64_t>(wake - now, 0, 60'000));
    pollfd pfd{commands_.fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, timeout);
    if (n < 0 && errno != EINTR) throwErrno("poll");
    if (n > 0) readCommands();
  }
  // Jobs sent but not started (the supervisor sends one at a time, so only
  // if it broke that rule): each still gets its one answer.
  while (!commands_.jobs.empty()) {
    answerCancelled(commands_.jobs.front());
    commands_.jobs.pop_front();
  }
  // The end of the run: no close events, these are not the pool's choices.
  for (auto& entry : pool_.entries()) closeEntry(entry, std::nullopt);
  pool_.entries().clear();
}

void JobWorker::readCommands() {
  commands_.read();
  if (commands_.dropRequested) {
    commands_.dropRequested = false;
    applyDrop();
  }
}

void JobWorker::applyDrop() {
  // A network failure the worker has not noticed: the sockets are shut,
  // the entries stay in the pool, and the next reuse's checks find them
  // dead. The running job's connection goes too: its command fails
  // (connection_lost).
  size_t cut = 0;
  for (auto& entry : pool_.entries()) {
    if (entry.conn && !entry.conn->isCut()) {
      entry.conn->cut();
      ++cut;
    }
  }
  if (active_ && active_->conn && !active_->conn->isCut()) {
    active_->conn->cut();
    activeDropped_ = true;
    ++cut;
  }
  events_.emit([&](wire::Event::Builder e) {
    e.setDisconnectInjected();
    e.setSuccess(true);
    e.setDetail("socket shut down by fault injection (" + std::to_string(cut) + " connections of the worker)");
  });
}

void JobWorker::answerCancelled(const JobRequest& job) {
  JobReport report;
  report.outcome = wire::JobOutcome::CANCELLED;
  report.noteFailure(JobFailure::RUN_ENDED, "the run ended before the job started");
  emitResult(job, report);
}

void JobWorker::runJob(const JobRequest& job) {
  JobReport report;
  const PoolKey key{job.user, job.host, job.port};
  const uint32_t timeoutMs = job.commandTimeoutMs != 0 ? job.commandTimeoutMs : spec_.commandTimeoutMs;
  closeIdle(monoMs());
  bool stopped = false;
  std::string stopMessage = "the run ended before the job's first command";
  activeDropped_ = false;
  if (job.reuse) takeCached(key, report, stopped);

  JobProgress progress(spec_.failureStrategy, spec_.failureThreshold, job.commands.size());
  bool couldNotConnect = false;
  int64_t runStartNs = 0;
  int64_t runEndNs = 0;
  uint64_t connectUsBeforeRun = 0;  // runUs leaves out the fresh connections opened mid-job
  for (size_t i = 0; !stopped && i < job.commands.size(); ++i) {
    if (!active_ && !open(job, report, stopped)) {
      couldNotConnect = !stopped;
      break;
    }
    if (runStartNs == 0) {
      runStartNs = monoNs();
      connectUsBeforeRun = report.connectUs;
    }
    int32_t exitCode = -1;
    std::string message;
    auto end = runCommand(job.commands[i], timeoutMs, exitCode, message);
    report.exitCodes.push_back(end ? exitCode : -1);
    runEndNs = monoNs();
    if (!end) {
      stopped = true;
      stopMessage = "the run ended during command " + std::to_string(i + 1) + " ('" + job.commands[i] + "')";
      break;
    }
    auto failure = commandFailure(*end);
    if (failure) {
      ++report.commandsFailed;
      report.noteFailure(*failure, message);
    }
    // The connection is not kept after a timeout (its channel state is
    // unknown) or a loss; under continue the next command opens another.
    if (*end == CommandEnd::TIMEOUT) closeActive(wire::JobCloseReason::TAINTED, job.reuse);
    if (*end == CommandEnd::CONNECTION_LOST) {
      closeActive(activeDropped_ ? wire::JobCloseReason::DROPPED : wire::JobCloseReason::DEAD, job.reuse);
    }
    if (!progress.afterCommand(failure.has_value())) break;
  }
  if (runStartNs != 0) {
    uint64_t spanUs = runEndNs > runStartNs ? static_cast<uint64_t>(runEndNs - runStartNs) / 1000 : 0;
    uint64_t reconnectUs = report.connectUs - connectUsBeforeRun;
    report.runUs = std::max<uint64_t>(spanUs > reconnectUs ? spanUs - reconnectUs : 0, 1);
  }

  if (stopped) {
    // Whatever failed before, the job did not end on its own: run_ended.
    report.outcome = wire::JobOutcome::CANCELLED;
    report.failure.reset();
    report.noteFailure(JobFailure::RUN_ENDED, stopMessage);
    if (active_) closeEntry(*active_, std::nullopt);
    active_.reset();
  } else {
    report.outcome = couldNotConnect ? wire::JobOutcome::FAILED : progress.outcome();
    if (active_ && job.reuse) {
      active_->lastUsedMs = monoMs();
      ++active_->jobsServed;
      if (pool_.full()) {
        if (auto lru = pool_.takeLru()) closeEntry(*lru, wire::JobCloseReason::LRU);
      }
      pool_.put(std::move(*active_));
    } else if (active_) {
      closeEntry(*active_, std::nullopt);  // reuse off: the job's own connection
    }
    active_.reset();
  }
  emitResult(job, report);
}

void JobWorker::takeCached(const PoolKey& key, JobReport& report, bool& stopped) {
  auto cached = pool_.take(key);
  if (!cached) return;
  active_ = std::move(*cached);
  auto ok = alive(*active_->conn, report);
  if (!ok) {
    stopped = true;
    return;
  }
  if (*ok) {
    report.reused = true;
    return;
  }
  ++report.deadReplaced;
  closeActive(activeDropped_ ? wire::JobCloseReason::DROPPED : wire::JobCloseReason::DEAD, true);
}

std::optional<bool> JobWorker::alive(SshConnection& conn, JobReport& report) {
  int64_t startNs = monoNs();
  std::optional<bool> ok = locallyAlive(conn);
  if (*ok && spec_.livenessCheck) ok = livenessRoundTrip(conn);
  report.livenessUs += usSince(startNs);
  return ok;
}

std::optional<bool> JobWorker::livenessRoundTrip(SshConnection& conn) {
  // The round trip is a channel open of a type no server knows: the server
  // answers SSH_MSG_CHANNEL_OPEN_FAILURE, and libssh2 takes that answer off
  // its packet list and frees it. An OpenSSH keepalive (a global request
  // with want-reply) would do the same on the wire, but libssh2 1.10 keeps
  // every reply to one in the session's list for the connection's life
  // (libssh2#623): a cached connection serving a million jobs would hold a
  // million of them.
  static constexpr char TYPE[] = "liveness@sshsoak";
  LIBSSH2_SESSION* session = conn.session();
  const int64_t deadlineMs = monoMs() + std::min(spec_.connectTimeoutMs, LIVENESS_TIMEOUT_MS);
  for (;;) {
    LIBSSH2_CHANNEL* channel = libssh2_channel_open_ex(session, TYPE, sizeof TYPE - 1, LIBSSH2_CHANNEL_WINDOW_DEFAULT,
                                                       LIBSSH2_CHANNEL_PACKET_DEFAULT, nullptr, 0);
    if (channel != nullptr) {
      // A server that accepts anything: it answered, so it is alive. The
      // channel is freed now (libssh2 sends its close), or every reuse of
      // this connection would leave one more open channel on both ends.
      while (libssh2_channel_free(channel) == LIBSSH2_ERROR_EAGAIN) {
        if (conn.waitSocket(deadlineMs, -1) != Wait::READY) break;  // left to libssh2_session_free
      }
      return true;
    }
    int rc = libssh2_session_last_errno(session);
    if (rc != LIBSSH2_ERROR_EAGAIN) return rc == LIBSSH2_ERROR_CHANNEL_FAILURE;  // refused: it answered
    Wait w = conn.waitSocket(deadlineMs, commands_.fd);
    if (w == Wait::TIMEOUT) return false;
    if (w == Wait::CANCELLED) {
      readCommands();
      if (shouldStop()) return std::nullopt;
    }
  }
}

bool JobWorker::open(const JobRequest& job, JobReport& report, bool& stopped) {
  ConnectSettings settings = connect_;
  settings.host = job.host;
  settings.port = job.port;
  settings.user = job.user;
  const int64_t startNs = monoNs();
  const int64_t deadlineMs = startNs / 1'000'000 + spec_.connectTimeoutMs;
  for (;;) {
    OpenTimings timings;
    auto opened = SshConnection::open(settings, deadlineMs, commands_.fd, &timings);
    if (opened) {
      report.connectUs += usSince(startNs);
      ++report.connectionsOpened;
      auto conn = std::move(opened).value();
      // The host key was checked against the file once; the same key again
      // needs no second look (ConnectSettings::trustedHostKey).
      connect_.trustedHostKey = conn->hostKey;
      int64_t now = monoMs();
      active_ = PoolEntry{PoolKey{job.user, job.host, job.port}, std::move(conn), now, now, 0};
      activeDropped_ = false;
      return true;
    }
    const SshError& error = opened.error();
    if (!error.cancelled) {
      report.noteFailure(classifyConnectFailure(timings, error), target({job.user, job.host, job.port}) + ": " +
                                                                     error.message);
      return false;
    }
    // A command came: a shutdown ends the job; anything else (a drop: this
    // connection did not exist yet; a partial frame) starts the open again
    // under the same deadline.
    readCommands();
    if (shouldStop()) {
      stopped = true;
      return false;
    }
  }
}

std::optional<CommandEnd> JobWorker::runCommand(const std::string& command, uint32_t timeoutMs, int32_t& exitCode,
                                                std::string& message) {
  SshConnection& conn = *active_->conn;
  ExecTask task(command, MAX_COMMAND_OUTPUT);
  const int64_t deadlineMs = monoMs() + timeoutMs;
  auto timedOut = [&] {
    exitCode = -1;
    message = "'" + command + "' did not finish within " + std::to_string(timeoutMs) + " ms";
    return CommandEnd::TIMEOUT;
  };
  for (;;) {
    // Checked here too, not only in the wait: a command that never stops
    // writing keeps the loop busy and never waits.
    if (monoMs() >= deadlineMs) return timedOut();
    bool progressed = false;
    ExecTask::Status status = task.step(conn.session(), progressed);
    if (status == ExecTask::Status::Done) {
      exitCode = task.exitStatus();
      if (exitCode == 0) return CommandEnd::OK;
      message = "'" + command + "' exited with status " + std::to_string(exitCode);
      return CommandEnd::EXIT;
    }
    if (status == ExecTask::Status::Failed) {
      exitCode = -1;
      bool lost = conn.isCut() || conn.transportFailure(task.libssh2Error()).has_value();
      message = "'" + command + "': " + task.error();
      if (lost) message += activeDropped_ ? " (cut by an injected drop)" : " (the connection went away)";
      return lost ? CommandEnd::CONNECTION_LOST : CommandEnd::CHANNEL;
    }
    if (progressed || task.hasBufferedData()) {
      // Busy, so no wait sees the command pipe: look at it without waiting,
      // so a shutdown or a drop is not held off by a flood of output.
      pollfd pfd{commands_.fd, POLLIN, 0};
      if (::poll(&pfd, 1, 0) > 0) {
        readCommands();
        if (shouldStop()) return std::nullopt;
      }
      continue;
    }
    Wait w = conn.waitSocket(deadlineMs, commands_.fd);
    if (w == Wait::TIMEOUT) return timedOut();
    if (w == Wait::CANCELLED) {
      readCommands();
      if (shouldStop()) return std::nullopt;
    }
  }
}

void JobWorker::closeActive(wire::JobCloseReason reason, bool reported) {
  if (!active_) return;
  closeEntry(*active_, reported ? std::optional(reason) : std::nullopt);
  active_.reset();
  activeDropped_ = false;
}

void JobWorker::closeEntry(PoolEntry& entry, std::optional<wire::JobCloseReason> reason) {
  int64_t now = monoMs();
  if (reason) emitClosed(entry, *reason, now);
  if (entry.conn) {
    // A dead or tainted link gets no goodbye: cut, so nothing waits on it.
    if (reason == wire::JobCloseReason::DEAD || reason == wire::JobCloseReason::TAINTED ||
        reason == wire::JobCloseReason::DROPPED) {
      entry.conn->cut();
    }
    entry.conn->closeGracefully(now + std::min(spec_.connectTimeoutMs, CLOSE_TIMEOUT_MS));
    entry.conn.reset();
  }
}

void JobWorker::closeIdle(int64_t nowMs) {
  for (auto& entry : pool_.takeIdle(nowMs)) closeEntry(entry, wire::JobCloseReason::IDLE);
}

void JobWorker::emitClosed(const PoolEntry& entry, wire::JobCloseReason reason, int64_t nowMs) {
  events_.emit([&](wire::Event::Builder e) {
    auto c = e.initJobConnectionClosed();
    c.setHost(entry.key.host);
    c.setPort(entry.key.port);
    c.setUser(entry.key.user);
    c.setReason(reason);
    c.setAgeMs(static_cast<uint64_t>(std::max<int64_t>(nowMs - entry.openedMs, 0)));
    c.setIdleMs(static_cast<uint64_t>(std::max<int64_t>(nowMs - entry.lastUsedMs, 0)));
    c.setJobsServed(entry.jobsServed);
    // Closing a connection is the pool's business, not a failure.
    e.setSuccess(true);
  });
}

void JobWorker::emitResult(const JobRequest& job, const JobReport& report) {
  events_.emit([&](wire::Event::Builder e) {
    auto r = e.initJobResult();
    r.setJobId(job.id);
    r.setOutcome(report.outcome);
    r.setAttempt(job.attempt);
    r.setReused(report.reused);
    r.setConnectUs(report.connectUs);
    r.setLivenessUs(report.livenessUs);
    r.setRunUs(report.runUs);
    r.setCommandsRun(static_cast<uint32_t>(report.exitCodes.size()));
    r.setCommandsFailed(report.commandsFailed);
    auto codes = r.initExitCodes(static_cast<unsigned>(report.exitCodes.size()));
    for (size_t i = 0; i < report.exitCodes.size(); ++i) codes.set(static_cast<unsigned>(i), report.exitCodes[i]);
    if (report.failure) {
      r.setFailureKind(std::string(jobFailureName(*report.failure)));
      r.setMessage(report.message);
      e.setDetail(std::string(jobFailureName(*report.failure)) + ": " + report.message);
    }
    r.setDeadReplaced(report.deadReplaced);
    r.setConnectionsOpened(report.connectionsOpened);
    e.setSuccess(report.outcome == wire::JobOutcome::DONE);
  });
}

}  // namespace sshsoak::agent
