#include "session_agent/agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "session_agent/workloads/churn.h"
#include "session_agent/workloads/jobs_worker.h"
#include "session_agent/workloads/transfer.h"
#include "shared/clock.h"
#include "shared/fd.h"

namespace sshsoak::agent {

namespace {

// The agent's open fds once a session is usable, for connected's `fds`: a
// reconnect that leaves more than the first connect did keeps something
// from the lost session. A dozen entries of /proc/self/fd; 0 (unknown) if
// it cannot be read.
uint32_t openFds() {
  try {
    return static_cast<uint32_t>(std::max(countOpenFds(), 0));
  } catch (const std::system_error&) {
    return 0;
  }
}

// SIGCONT since the last look: the agent was stopped (SIGSTOP, SIGTSTP, a
// debugger). A late wake-up alone misses a stop that ends in a poll whose
// timeout was long and whose socket has data by the resume (an exec in
// flight and no key due: seconds), or a stop outside poll().
std::atomic<bool> continued{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void onContinue(int) { continued.store(true, std::memory_order_relaxed); }

}  // namespace

void watchForStops() {
  struct sigaction sa {};
  sa.sa_handler = onContinue;
  ::sigemptyset(&sa.sa_mask);
  // Blocking reads and writes restart; poll() returns EINTR, which every
  // wait in the agent takes as an early wake-up.
  sa.sa_flags = SA_RESTART;
  if (::sigaction(SIGCONT, &sa, nullptr) != 0) throwErrno("sigaction SIGCONT");
}

bool Agent::stoppedSinceLastLook(int64_t lateMs) {
  bool wasContinued = continued.exchange(false, std::memory_order_relaxed);
  return wasContinued || lateMs > STALL_MS;
}

AgentSettings AgentSettings::fromWire(wire::AgentConfig::Reader c) {
  AgentSettings s;
  s.sessionId = c.getSessionId();
  s.connect.host = c.getHost();
  s.connect.port = c.getPort();
  s.connect.user = c.getUser();
  s.connect.keyPath = c.getKeyPath();
  s.connect.passphrase = c.getPassphrase();
  s.connect.knownHostsPath = c.getKnownHostsPath();
  s.connect.hostKeyPolicy = c.getHostKeyPolicy();
  s.reconnectTimeoutMs = std::max(c.getReconnectTimeoutMs(), MIN_RECONNECT_TIMEOUT_MS);
  s.maxReconnectAttempts = c.getMaxReconnectAttempts();
  s.keepaliveIntervalMs = std::max(c.getKeepaliveIntervalMs(), MIN_KEEPALIVE_INTERVAL_MS);
  s.keepaliveCountMax = std::max(c.getKeepaliveCountMax(), MIN_KEEPALIVE_COUNT_MAX);
  s.tokenBucketName = c.getTokenBucketName();
  s.backoff.baseNs = int64_t{std::max(c.getBackoffBaseMs(), MIN_BACKOFF_BASE_MS)} * 1'000'000;
  s.backoff.capNs = std::max(int64_t{c.getBackoffCapMs()} * 1'000'000, s.backoff.baseNs);
  for (auto spec : c.getWorkloads()) s.workloads.push_back(workloadSpecFromWire(spec));
  s.detail.rollupMs = std::max(c.getRollupMs(), MIN_ROLLUP_MS);
  s.detail.full = c.getLogDetailFull();
  s.detail.leakFdPerCycle = c.getLeakFdPerCycleForTesting();
  s.detail.leakKbPerCycle = c.getLeakKbPerCycleForTesting();
  s.heartbeatMs = c.getHeartbeatMs();
  s.hangAfterMs = c.getHangForTestingAfterMs();
  s.garbageForTesting = c.getGarbageForTesting();
  return s;
}

std::string_view stateName(SessionState state) {
  switch (state) {
    case SessionState::CONNECTING: return "connecting";
    case SessionState::READY: return "ready";
    case SessionState::LOST: return "lost";
    case SessionState::BACKING_OFF: return "backing-off";
    case SessionState::MANUAL: return "manual";
    case SessionState::CLOSING: return "closing";
  }
  return "?";
}

bool transitionAllowed(SessionState from, SessionState to) {
  using S = SessionState;
  if (to == S::CLOSING) return from != S::CLOSING;
  switch (from) {
    case S::CONNECTING: return to == S::READY || to == S::BACKING_OFF || to == S::MANUAL;
    case S::BACKING_OFF: return to == S::CONNECTING;
    case S::READY: return to == S::LOST;
    case S::LOST: return to == S::BACKING_OFF || to == S::MANUAL;  // MANUAL: no attempt allowed
    case S::MANUAL:
    case S::CLOSING: return false;
  }
  return false;
}

Agent::Agent(AgentSettings settings, int eventFd, int commandFd, FrameReader pending)
    : settings_(std::move(settings)),
      events_(eventFd, settings_.sessionId, settings_.heartbeatMs),
      startMs_(monoMs()),
      commandFd_(commandFd),
      commandReader_(std::move(pending)),
      trace_(std::getenv("SSHSOAK_AGENT_TRACE") != nullptr),
      backoff_(Backoff::forSession(settings_.backoff, settings_.sessionId)) {
  setNonBlocking(commandFd_);
  for (const auto& spec : settings_.workloads) {
    if (!spec.sessionless()) workloads_.push_back(spec.make());
  }
}

void Agent::transition(SessionState next, std::string_view why) {
  if (!transitionAllowed(state_, next)) {
    throw std::logic_error("session " + std::to_string(settings_.sessionId) + ": no transition from " +
                           std::string(stateName(state_)) + " to " + std::string(stateName(next)));
  }
  if (trace_) {
    std::fprintf(stderr, "sshsoak-agent[%02u] %lld ms: %s -> %s (%.*s)\n", settings_.sessionId,
                 static_cast<long long>(monoMs()), stateName(state_).data(), stateName(next).data(),
                 static_cast<int>(why.size()), why.data());
  }
  state_ = next;
}

int Agent::run() {
  events_.emit([&](wire::Event::Builder e) {
    auto started = e.initStarted();
    started.setPid(::getpid());
    started.setVersion("0.1.0");
    e.setSuccess(true);
  });
  if (settings_.garbageForTesting) events_.writeGarbageForTesting();
  // Churn holds no session: its own loop, instead of the session's.
  for (const auto& spec : settings_.workloads) {
    if (const auto* churn = spec.get<ChurnSpec>()) {
      events_.setPhase("churn");
      return runChurn(*churn);
    }
    if (const auto* jobs = spec.get<JobsSpec>()) {
      events_.setPhase("jobs");
      return runJobs(*jobs);
    }
  }
  if (!settings_.tokenBucketName.empty()) bucket_.emplace(TokenBucket::open(settings_.tokenBucketName));
  beginConnectPhase(false, monoMs());
  for (;;) {
    switch (state_) {
      case SessionState::CONNECTING:
        connectAttempt();
        break;
      case SessionState::BACKING_OFF:
        backOff();
        break;
      case SessionState::READY:
        sessionLoop();
        break;
      case SessionState::LOST:
        if (stopRequested_) {
          transition(SessionState::CLOSING, "told to stop");
        } else {
          beginConnectPhase(true, lossMs_);
        }
        break;
      case SessionState::MANUAL:
        // Nothing left to do but wait to be told.
        events_.setPhase("manual");
        waitForShutdown();
        transition(SessionState::CLOSING, "told to stop");
        break;
      case SessionState::CLOSING:
        events_.setPhase("stopping");
        closeSession();
        events_.emit([](wire::Event::Builder e) {
          e.setStopped();
          e.setSuccess(true);
        });
        return 0;
    }
  }
}

int Agent::runChurn(const ChurnSpec& spec) {
  ChurnRunner runner(spec, settings_.connect, events_,
                     CommandPipe{commandFd_, [this] { readCommands(); }, stopRequested_, dropRequested_});
  runner.run();
  transition(SessionState::CLOSING, "told to stop");
  events_.emit([](wire::Event::Builder e) {
    e.setStopped();
    e.setSuccess(true);
  });
  return 0;
}

int Agent::runJobs(const JobsSpec& spec) {
  jobsWorker_ = true;
  // A job sent right behind the configuration may be in commandReader_
  // already, where no poll of the pipe would find it.
  readCommands();
  JobWorker worker(spec, settings_.connect, events_,
                   JobCommandPipe{commandFd_, [this] { readCommands(); }, stopRequested_, dropRequested_, jobs_});
  worker.run();
  transition(SessionState::CLOSING, "told to stop");
  events_.emit([](wire::Event::Builder e) {
    e.setStopped();
    e.setSuccess(true);
  });
  return 0;
}

void Agent::beginConnectPhase(bool reconnect, int64_t detectMs) {
  phase_ = ConnectPhase{};
  phase_.reconnect = reconnect;
  phase_.detectMs = detectMs;
  // The first connect gets one try plus the same retries a reconnect gets.
  // 64 bits: --max-reconnect-attempts 4294967295 must not wrap to 0 here.
  phase_.maxAttempts = std::min<uint64_t>(uint64_t{settings_.maxReconnectAttempts} + (reconnect ? 0 : 1),
                                          std::numeric_limits<uint32_t>::max());
  // --max-reconnect-attempts 0: a lost session is not reconnected at all.
  if (phase_.maxAttempts == 0) {
    giveUpAttempts();
    return;
  }
  // Full jitter before every reconnect attempt, the first included: ten
  // sessions that lost the same link must not come back in lock step.
  if (reconnect) transition(SessionState::BACKING_OFF, "reconnect");
  // The first connect's first attempt starts at once, in CONNECTING.
}

void Agent::backOff() {
  events_.setPhase("backoff");
  phase_.backoffMs = backoff_.nextDelayNs(phase_.attempt - 1) / 1'000'000;
  if (!sleepFor(phase_.backoffMs)) {
    transition(SessionState::CLOSING, "told to stop");
    return;
  }
  transition(SessionState::CONNECTING, "backoff waited");
}

void Agent::connectAttempt() {
  const uint32_t attempt = phase_.attempt;
  const bool reconnect = phase_.reconnect;
  const int64_t delayMs = phase_.backoffMs;
  events_.setPhase("connecting");
  if (!takeToken()) {
    transition(SessionState::CLOSING, "told to stop");
    return;
  }
  int64_t grantedNs = wallNs();
  int64_t startMs = monoMs();
  auto established = establish();
  // The handshake slot was released when the first exec's channel was
  // confirmed (runExec), not at USERAUTH_SUCCESS: sshd stops counting a
  // connection against MaxStartups only when its privileged monitor has
  // reaped the pre-auth child and closed the startup pipe, a few ms after
  // the client already saw the success (longer in a storm). Released at
  // authentication, a storm of 100 under a window of 8 still had one
  // MaxStartups drop; the channel's confirmation comes from the post-auth
  // child, which exists only after that close. Here: every other path.
  releaseHandshakeSlot();
  if (stopRequested_) {
    transition(SessionState::CLOSING, "told to stop");
    return;
  }
  int64_t nowMs = monoMs();
  // Adaptive pacing learns from every attempt (fixed pacing ignores it).
  if (bucket_) {
    if (established) {
      bucket_->reportSuccess((int64_t{conn_->handshakeMs} + conn_->authMs) * 1000, monoNs());
    } else {
      bucket_->reportFailure(established.error().overload, monoNs());
    }
  }
  if (established) {
    uint32_t execMs = lastFirstExecMs_;
    uint32_t fds = openFds();
    events_.emit([&](wire::Event::Builder e) {
      auto c = reconnect ? e.initReconnected() : e.initConnected();
      c.setHandshakeMs(conn_->handshakeMs);
      c.setAuthMs(conn_->authMs);
      c.setFirstExecMs(execMs);
      c.setKex(conn_->kex);
      c.setHostKeyType(conn_->hostKeyType);
      c.setCipher(conn_->cipher);
      c.setMac(conn_->mac);
      c.setHostKeyAdded(conn_->hostKeyAdded);
      c.setFds(fds);
      e.setSuccess(true);
      // Reconnect time runs from detection to usable: jitter and token
      // waits count (docs/runbook.md, "Failure scenarios").
      e.setElapsedMs(reconnect ? nowMs - phase_.detectMs : nowMs - startMs);
      if (reconnect || attempt > 1) e.setAttempt(static_cast<int32_t>(attempt));
      e.setTokenGrantedNs(grantedNs);
      e.setBackoffMs(delayMs);
      e.setDetail("kex=" + conn_->kex + " hostkey=" + conn_->hostKeyType + " cipher=" + conn_->cipher +
                  " handshake_ms=" + std::to_string(conn_->handshakeMs) +
                  " auth_ms=" + std::to_string(conn_->authMs) + " exec_ms=" + std::to_string(execMs));
    });
    transition(SessionState::READY, reconnect ? "reconnected" : "connected");
    return;
  }
  const SshError& error = established.error();
  events_.emit([&](wire::Event::Builder e) {
    auto f = reconnect ? e.initReconnectFailed() : e.initConnectFailed();
    events_.failure(e, f, error.category, error.message, error.libssh2Error);
    e.setElapsedMs(nowMs - startMs);
    e.setAttempt(static_cast<int32_t>(attempt));
    e.setTokenGrantedNs(grantedNs);
    e.setBackoffMs(delayMs);
  });
  // F4, a changed host key, no algorithm in common: a user must act;
  // retrying cannot help and only hammers the server (autossh's classic
  // mistake).
  if (error.category == wire::FailureCategory::AUTH || error.category == wire::FailureCategory::HOSTKEY ||
      error.category == wire::FailureCategory::ALGORITHMS) {
    events_.emit([&](wire::Event::Builder e) {
      auto f = error.category == wire::FailureCategory::AUTH ? e.initAuthFailed() : e.initManualReconnect();
      events_.failure(e, f, error.category, error.message + " (not retried: needs a user)", error.libssh2Error);
      e.setAttempt(static_cast<int32_t>(attempt));
    });
    transition(SessionState::MANUAL, "not retried: needs a user");
    return;
  }
  if (attempt < phase_.maxAttempts) {
    ++phase_.attempt;
    transition(SessionState::BACKING_OFF, "attempt failed");
    return;
  }
  giveUpAttempts();
}

void Agent::giveUpAttempts() {
  events_.emit([&](wire::Event::Builder e) {
    events_.failure(e, e.initManualReconnect(), wire::FailureCategory::OTHER,
                    "gave up after " + std::to_string(phase_.maxAttempts) + " attempts: manual reconnect required");
    e.setAttempt(static_cast<int32_t>(phase_.maxAttempts));
  });
  transition(SessionState::MANUAL, "attempts used up");
}

bool Agent::sleepFor(int64_t ms) {
  int64_t until = monoMs() + std::max<int64_t>(ms, 0);
  while (!stopRequested_) {
    int64_t left = until - monoMs();
    if (left <= 0) return true;
    pollfd pfd{commandFd_, POLLIN, 0};
    if (::poll(&pfd, 1, waitTimeoutMs(monoMs(), until)) > 0) readCommands();
    dropRequested_ = false;  // nothing to drop while not connected
  }
  return false;
}

bool Agent::takeToken() {
  if (!bucket_) return true;
  // The slot first: a token taken while no slot is free would be a connect
  // the rate allowed and nobody made.
  for (uint64_t tries = 0;; ++tries) {
    handshakeSlot_ = bucket_->claimHandshakeSlot(monoNs());
    if (handshakeSlot_ != TokenBucket::NO_SLOT_FREE) break;
    // Slots are freed by other processes, with no wake-up to wait on: look
    // again after a random wait, 4-16 ms at first and up to 4-64 ms after
    // a few tries, so that a storm's waiters neither spin nor come back in
    // step (500 waiters at 10 ms are 50,000 wake-ups a second). With many
    // waiters one of them still looks within a few ms of a release.
    const uint64_t spread = std::min<uint64_t>(61, 13 + 8 * tries);
    if (!sleepFor(4 + static_cast<int64_t>(backoff_.uniform(spread)))) return false;
  }
  for (;;) {
    Acquire a = bucket_->tryAcquire();
    if (a.granted) {
      if (handshakeSlot_ >= 0) bucket_->restampHandshakeSlot(handshakeSlot_, monoNs());
      return true;
    }
    if (!sleepFor((a.waitNs + 999'999) / 1'000'000)) {
      releaseHandshakeSlot();
      return false;
    }
  }
}

void Agent::releaseHandshakeSlot() {
  if (bucket_ && handshakeSlot_ >= 0) bucket_->releaseHandshakeSlot(handshakeSlot_);
  handshakeSlot_ = TokenBucket::NO_SLOT_NEEDED;
}

Status<SshError> Agent::establish() {
  int64_t deadlineMs = monoMs() + settings_.reconnectTimeoutMs;
  auto opened = SshConnection::open(settings_.connect, deadlineMs, commandFd_);
  if (!opened) {
    if (opened.error().cancelled) readCommands();
    return fail(opened.error());
  }
  conn_ = std::move(opened).value();
  // Usable means an exec round trip came back, not just "authenticated".
  int64_t execStart = monoMs();
  ExecTask probe(PROBE_COMMAND);
  std::optional<SshError> error;
  if (!runExec(probe, deadlineMs)) {
    if (probe.error().empty()) {
      error = SshError{wire::FailureCategory::TIMEOUT, "first exec did not finish before the deadline",
                       probe.libssh2Error()};
      error->overload = ConnectSignal::TIMEOUT;
    } else {
      error = probe.failure();
    }
  } else if (probe.output().find(PROBE_REPLY) == std::string::npos) {
    error = SshError{wire::FailureCategory::CHANNEL, "first exec returned unexpected output (exit status " +
                                                         std::to_string(probe.exitStatus()) + ")"};
  }
  if (error) {
    conn_->cut();
    conn_.reset();
    return fail(std::move(*error));
  }
  lastFirstExecMs_ = static_cast<uint32_t>(monoMs() - execStart);
  return Ok{};
}

bool Agent::runExec(ExecTask& task, int64_t deadlineMs) {
  for (;;) {
    // Checked every turn, not only when a wait times out: a server that
    // keeps output coming keeps `progressed` true.
    if (monoMs() >= deadlineMs) return false;
    bool progressed = false;
    auto status = task.step(conn_->session(), progressed);
    // The first exec's channel is confirmed by sshd's post-auth child, which
    // exists only once sshd stopped counting this connection against
    // MaxStartups: the handshake slot can go (see connectAttempt).
    if (handshakeSlot_ >= 0 && task.channelOpen()) releaseHandshakeSlot();
    if (status == ExecTask::Status::Done) return true;
    if (status == ExecTask::Status::Failed) return false;
    if (progressed) continue;
    Wait w = conn_->waitSocket(deadlineMs, commandFd_);
    if (w == Wait::TIMEOUT) return false;
    if (w == Wait::CANCELLED) {
      readCommands();
      if (stopRequested_ || dropRequested_) return false;
    }
  }
}

void Agent::sessionLoop() {
  conn_->setLiveness(settings_.keepaliveIntervalMs, settings_.keepaliveCountMax);
  lastProbeMs_ = monoMs();
  WorkloadContext context{*conn_, events_, settings_.reconnectTimeoutMs, settings_.detail};
  bool transfer = std::any_of(settings_.workloads.begin(), settings_.workloads.end(),
                              [](const auto& spec) { return spec.template get<TransferSpec>() != nullptr; });
  events_.setPhase(transfer ? "transfer" : "session");
  for (auto& w : workloads_) w->start(context, monoMs());
  while (state_ == SessionState::READY && !stopRequested_) {
    int64_t now = monoMs();
    if (settings_.hangAfterMs > 0 && now - startMs_ >= settings_.hangAfterMs) hangForTesting();
    // A turn that never sleeps (output pouring in) still beats.
    events_.maybeHeartbeat(now);
    bool libssh2Reads = false;
    for (auto& w : workloads_) {
      w->onTurn(now);
      libssh2Reads = libssh2Reads || w->wantsRead();
    }
    // With a channel open, libssh2 is called every turn and takes in what
    // the socket holds, bytes the idle peek saw included.
    if (libssh2Reads) idleDataPending_ = false;
    // Step everything until nothing moves: libssh2 may have buffered data
    // for one channel while reading for another, so one pass is not enough.
    bool progressed = true;
    // Bounded: a stream that never runs dry (a PTY flood) must still let the
    // turn reach its poll (commands, deadlines, keepalives, heartbeat).
    const int64_t stepsUntilMs = now + MAX_STEPPING_MS;
    while (progressed && state_ == SessionState::READY && monoMs() < stepsUntilMs) {
      progressed = false;
      // A fresh clock per pass: what the step reads is stamped with it.
      int64_t stepNow = monoMs();
      // Stopped mid-turn: what queued meanwhile is not work done now.
      if (stoppedSinceLastLook(0)) {
        for (auto& w : workloads_) w->resumedAfterStall(stepNow);
      }
      for (auto& w : workloads_) {
        StepResult r = w->step(stepNow);
        progressed = progressed || r.progressed;
        if (r.lost) {
          loseSession(r.lost->cause, r.lost->message);
          break;
        }
      }
    }
    if (state_ != SessionState::READY || checkTransport() || checkLiveness()) break;
    // Data already inside libssh2 (or a stream still pouring): read it
    // before sleeping, but look at the command pipe on the way.
    bool buffered = progressed ||
                    std::any_of(workloads_.begin(), workloads_.end(), [](const auto& w) { return w->hasBufferedData(); });

    // Sleep until the socket, a command, or the next timer.
    int64_t silenceDeadline = conn_->lastRecvMs() + int64_t{settings_.keepaliveIntervalMs} * settings_.keepaliveCountMax;
    int64_t probeDue = std::max(conn_->lastRecvMs(), lastProbeMs_) + settings_.keepaliveIntervalMs;
    int64_t wakeMs = std::min(silenceDeadline, probeDue);
    libssh2Reads = false;
    bool sending = false;
    for (const auto& w : workloads_) {
      wakeMs = std::min(wakeMs, w->nextWakeMs());
      libssh2Reads = libssh2Reads || w->wantsRead();
      sending = sending || w->wantsWrite();
    }
    // While a channel is open, libssh2 is called every turn and consumes
    // whatever arrives. With none, the socket is watched only for EOF.
    short sockEvents = 0;
    if (libssh2Reads || !idleDataPending_) sockEvents |= POLLIN;
    if (sending && (libssh2_session_block_directions(conn_->session()) & LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
      sockEvents |= POLLOUT;
    }
    pollfd pfds[2] = {{commandFd_, POLLIN, 0}, {conn_->fd(), sockEvents, 0}};
    const int64_t sleepFromMs = monoMs();
    const int timeoutMs = buffered ? 0 : waitTimeoutMs(sleepFromMs, wakeMs);
    int n = ::poll(pfds, 2, timeoutMs);
    // Continued after a stop, or woke far later than asked (a stalled
    // machine): the agent did not run meanwhile. What it never did is not
    // logged as done.
    if (stoppedSinceLastLook(monoMs() - sleepFromMs - timeoutMs)) {
      for (auto& w : workloads_) w->resumedAfterStall(monoMs());
    }
    if (n < 0 && errno != EINTR) throwErrno("poll");
    if (pfds[0].revents != 0) readCommands();
    if (dropRequested_) {
      dropRequested_ = false;
      conn_->cut();
      flushRollups();
      events_.emit([](wire::Event::Builder e) {
        e.setDisconnectInjected();
        e.setSuccess(true);
        e.setDetail("socket shut down by fault injection");
      });
      loseSession(wire::DisconnectCause::INJECTED, "socket shut down by fault injection");
      break;
    }
    for (auto& w : workloads_) {
      if (auto lost = w->afterWait(monoMs())) {
        loseSession(lost->cause, lost->message);
        break;
      }
    }
    if (state_ != SessionState::READY) break;
    if (!libssh2Reads && (pfds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char byte;
      ssize_t peek = ::recv(conn_->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (peek == 0) {
        loseSession(wire::DisconnectCause::END_OF_FILE, "the server closed the connection");
      } else if (peek < 0 && errno != EAGAIN) {
        int err = errno;
        loseSession(err == ECONNRESET ? wire::DisconnectCause::RESET : wire::DisconnectCause::SOCKET_ERROR,
                    std::strerror(err));
      } else if (peek > 0) {
        // Bytes for libssh2 (a global request, say): the next reader takes
        // them. Until then do not watch the socket, or poll would spin.
        idleDataPending_ = true;
      }
    }
  }
  if (state_ == SessionState::READY) transition(SessionState::CLOSING, "told to stop");
}

bool Agent::checkTransport() {
  if (conn_->peerClosed()) {
    loseSession(wire::DisconnectCause::END_OF_FILE, "the server closed the connection");
    return true;
  }
  int err = conn_->lastRecvErrno();
  if (err == 0) return false;
  wire::DisconnectCause cause = err == ECONNRESET   ? wire::DisconnectCause::RESET
                                : err == ETIMEDOUT  ? wire::DisconnectCause::SILENCE
                                                    : wire::DisconnectCause::SOCKET_ERROR;
  loseSession(cause, std::string("socket: ") + std::strerror(err));
  return true;
}

bool Agent::checkLiveness() {
  int64_t now = monoMs();
  int64_t silentMs = now - conn_->lastRecvMs();
  int64_t limitMs = int64_t{settings_.keepaliveIntervalMs} * settings_.keepaliveCountMax;
  if (silentMs >= limitMs) {
    loseSession(wire::DisconnectCause::SILENCE,
                "nothing received for " + std::to_string(silentMs) + " ms (keepalive " +
                    std::to_string(settings_.keepaliveIntervalMs) + " ms x " +
                    std::to_string(settings_.keepaliveCountMax) + ")");
    return true;
  }
  // As OpenSSH's ServerAliveInterval: a keepalive only after an interval
  // with nothing received, then one per interval. A busy session sends none
  // (and libssh2 1.10 keeps every keepalive reply it gets: libssh2#623).
  if (silentMs >= settings_.keepaliveIntervalMs && now - lastProbeMs_ >= settings_.keepaliveIntervalMs) {
    lastProbeMs_ = now;
    int rc = conn_->sendKeepalive();
    if (rc != 0 && rc != LIBSSH2_ERROR_EAGAIN) {
      if (auto cause = conn_->transportFailure(rc)) {
        loseSession(*cause, "keepalive: " + conn_->lastError());
        return true;
      }
    }
  }
  return false;
}

void Agent::flushRollups() {
  int64_t now = monoMs();
  for (auto& w : workloads_) w->flushRollup(now);
}

void Agent::loseSession(wire::DisconnectCause cause, const std::string& message) {
  // The lost connection's last partial interval goes before its
  // disconnected line: the reconnect starts a new interval, so no count is
  // lost and none is told twice.
  flushRollups();
  lossMs_ = monoMs();
  uint32_t silentMs = static_cast<uint32_t>(
      std::max<int64_t>(0, monoMs() - std::max(conn_->lastRecvMs(), int64_t{0})));
  events_.emit([&](wire::Event::Builder e) {
    auto d = e.initDisconnected();
    d.setCause(cause);
    d.setSilentMs(silentMs);
    d.setMessage(message);
    e.setSuccess(false);
    e.setDetail(message);
  });
  for (auto& w : workloads_) w->abandon();
  conn_->cut();
  conn_.reset();
  transition(SessionState::LOST, message);
}

void Agent::closeSession() {
  if (!conn_) return;
  flushRollups();  // the last partial interval, before agent_stopped
  for (auto& w : workloads_) w->close();
  conn_->closeGracefully(monoMs() + 1000);
  conn_.reset();
}

void Agent::readCommands() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(commandFd_, buf, sizeof buf);
    if (n > 0) {
      commandReader_.feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      stopRequested_ = true;  // the supervisor is gone: nobody to report to
      break;
    }
    if (errno == EINTR) continue;
    break;  // EAGAIN: all read
  }
  while (auto words = commandReader_.next()) {
    capnp::FlatArrayMessageReader reader(*words);
    auto cmd = reader.getRoot<wire::Command>();
    switch (cmd.which()) {
      case wire::Command::SHUTDOWN: stopRequested_ = true; break;
      case wire::Command::DROP_CONNECTION: dropRequested_ = true; break;
      case wire::Command::RUN_JOB:
        if (jobsWorker_) jobs_.push_back(JobRequest::fromWire(cmd.getRunJob()));
        break;
    }
  }
}

void Agent::waitForShutdown() {
  // Sleep in poll, no timer, no CPU.
  while (!stopRequested_) {
    pollfd pfd{commandFd_, POLLIN, 0};
    // No timer but the heartbeat's (none at all with heartbeats off).
    int64_t due = heartbeatDue(monoMs());
    int timeout = due == EventSink::NEVER_MS ? -1 : waitTimeoutMs(monoMs(), due);
    if (::poll(&pfd, 1, timeout) > 0) readCommands();
    dropRequested_ = false;
  }
}

void Agent::hangForTesting() {
  // Stuck the way a real bug sticks: in a read that never returns (the
  // pipe's write end stays open here), sending nothing, heartbeat included.
  if (trace_) std::fprintf(stderr, "sshsoak-agent[%02u]: hanging for testing\n", settings_.sessionId);
  Pipe stuck = makePipe();
  char byte;
  for (;;) {
    if (::read(stuck.readEnd.get(), &byte, 1) >= 0 || errno != EINTR) break;
  }
  std::abort();  // not reached: the write end is ours and never written
}

}  // namespace sshsoak::agent
