#include "session_agent/agent.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "shared/clock.h"
#include "shared/fd.h"

namespace sshsoak::agent {

namespace {

std::string fmtPct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v);
  return buf;
}

}  // namespace

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
  s.pollIntervalMs = std::max<uint32_t>(c.getPollIntervalMs(), 100);
  s.intensity = c.getIntensity();
  s.reconnectTimeoutMs = std::max<uint32_t>(c.getReconnectTimeoutMs(), 100);
  s.maxReconnectAttempts = c.getMaxReconnectAttempts();
  s.keepaliveIntervalMs = c.getKeepaliveIntervalMs();
  s.keepaliveCountMax = std::max<uint32_t>(c.getKeepaliveCountMax(), 1);
  s.keepaliveIntervalMs = std::max<uint32_t>(s.keepaliveIntervalMs, 100);
  s.ptyIntervalMs = c.getPtyIntervalMs();
  s.tokenBucketName = c.getTokenBucketName();
  if (c.getBackoffBaseMs() > 0) s.backoff.baseNs = int64_t{c.getBackoffBaseMs()} * 1'000'000;
  if (c.getBackoffCapMs() > 0) s.backoff.capNs = int64_t{c.getBackoffCapMs()} * 1'000'000;
  return s;
}

Agent::Agent(AgentSettings settings, int eventFd, int commandFd)
    : settings_(std::move(settings)),
      events_(eventFd, settings_.sessionId),
      commandFd_(commandFd),
      backoff_(Backoff::forSession(settings_.backoff, settings_.sessionId)) {
  setNonBlocking(commandFd_);
}

int Agent::run() {
  events_.emit([&](wire::Event::Builder e) {
    auto started = e.initStarted();
    started.setPid(::getpid());
    started.setVersion("0.1.0");
    e.setSuccess(true);
  });
  if (!settings_.tokenBucketName.empty()) bucket_.emplace(TokenBucket::open(settings_.tokenBucketName));
  bool everUp = false;
  int64_t detectMs = monoMs();
  while (!stopRequested_ && connectPhase(everUp, detectMs)) {
    everUp = true;
    sessionLoop();
    detectMs = lossMs_;
  }
  closeSession();
  if (!stopRequested_) waitForShutdown();
  events_.emit([](wire::Event::Builder e) {
    e.setStopped();
    e.setSuccess(true);
  });
  return 0;
}

bool Agent::connectPhase(bool reconnect, int64_t detectMs) {
  // The first connect gets one try plus the same retries a reconnect gets.
  uint32_t maxAttempts = settings_.maxReconnectAttempts + (reconnect ? 0 : 1);
  for (uint32_t attempt = 1; attempt <= maxAttempts; ++attempt) {
    // Full jitter before every reconnect attempt, the first included: ten
    // sessions that lost the same link must not come back in lock step.
    int64_t delayMs = -1;
    if (reconnect || attempt > 1) {
      delayMs = backoff_.nextDelayNs(attempt - 1) / 1'000'000;
      if (!sleepFor(delayMs)) return false;
    }
    if (!takeToken()) return false;
    int64_t grantedNs = wallNs();
    int64_t startMs = monoMs();
    auto error = establish();
    if (stopRequested_) return false;
    int64_t nowMs = monoMs();
    if (!error) {
      uint32_t execMs = lastFirstExecMs_;
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
        e.setSuccess(true);
        // Reconnect time runs from detection to usable: jitter and token
        // waits count (DESIGN.md).
        e.setElapsedMs(reconnect ? nowMs - detectMs : nowMs - startMs);
        if (reconnect || attempt > 1) e.setAttempt(static_cast<int32_t>(attempt));
        e.setTokenGrantedNs(grantedNs);
        e.setBackoffMs(delayMs);
        e.setDetail("kex=" + conn_->kex + " hostkey=" + conn_->hostKeyType + " cipher=" + conn_->cipher +
                    " handshake_ms=" + std::to_string(conn_->handshakeMs) +
                    " auth_ms=" + std::to_string(conn_->authMs) + " exec_ms=" + std::to_string(execMs));
      });
      nextPollMs_ = monoMs() + settings_.pollIntervalMs;
      return true;
    }
    events_.emit([&](wire::Event::Builder e) {
      auto f = reconnect ? e.initReconnectFailed() : e.initConnectFailed();
      events_.failure(e, f, error->category, error->message, error->libssh2Error);
      e.setElapsedMs(nowMs - startMs);
      e.setAttempt(static_cast<int32_t>(attempt));
      e.setTokenGrantedNs(grantedNs);
      e.setBackoffMs(delayMs);
    });
    // F4 and a changed host key: a user must act; retrying cannot help and
    // only hammers the server (autossh's classic mistake).
    if (error->category == wire::FailureCategory::AUTH || error->category == wire::FailureCategory::HOSTKEY) {
      events_.emit([&](wire::Event::Builder e) {
        auto f = error->category == wire::FailureCategory::AUTH ? e.initAuthFailed() : e.initManualReconnect();
        events_.failure(e, f, error->category, error->message + " (not retried: needs a user)", error->libssh2Error);
        e.setAttempt(static_cast<int32_t>(attempt));
      });
      return false;
    }
  }
  events_.emit([&](wire::Event::Builder e) {
    events_.failure(e, e.initManualReconnect(), wire::FailureCategory::OTHER,
                    "gave up after " + std::to_string(maxAttempts) + " attempts: manual reconnect required");
    e.setAttempt(static_cast<int32_t>(maxAttempts));
  });
  return false;
}

bool Agent::sleepFor(int64_t ms) {
  int64_t until = monoMs() + std::max<int64_t>(ms, 0);
  while (!stopRequested_) {
    int64_t left = until - monoMs();
    if (left <= 0) return true;
    pollfd pfd{commandFd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 60'000))) > 0) readCommands();
    dropRequested_ = false;  // nothing to drop while not connected
  }
  return false;
}

bool Agent::takeToken() {
  if (!bucket_) return true;
  for (;;) {
    Acquire a = bucket_->tryAcquire();
    if (a.granted) return true;
    if (!sleepFor((a.waitNs + 999'999) / 1'000'000)) return false;
  }
}

std::optional<ConnectError> Agent::establish() {
  int64_t deadlineMs = monoMs() + settings_.reconnectTimeoutMs;
  auto result = SshConnection::open(settings_.connect, deadlineMs, commandFd_);
  if (auto* err = std::get_if<ConnectError>(&result)) {
    if (err->message == "cancelled") readCommands();
    return *err;
  }
  conn_ = std::move(std::get<std::unique_ptr<SshConnection>>(result));
  // Usable means an exec round trip came back, not just "authenticated".
  int64_t execStart = monoMs();
  ExecTask probe(PROBE_COMMAND);
  std::optional<ConnectError> error;
  if (!runExec(probe, deadlineMs)) {
    error = ConnectError{probe.error().empty() ? wire::FailureCategory::TIMEOUT : wire::FailureCategory::CHANNEL,
                         probe.error().empty() ? "first exec did not finish before the deadline" : probe.error(),
                         probe.libssh2Error()};
  } else if (probe.output().find(PROBE_REPLY) == std::string::npos) {
    error = ConnectError{wire::FailureCategory::CHANNEL, "first exec returned unexpected output (exit status " +
                                                             std::to_string(probe.exitStatus()) + ")"};
  }
  if (error) {
    conn_->cut();
    conn_.reset();
    return error;
  }
  lastFirstExecMs_ = static_cast<uint32_t>(monoMs() - execStart);
  return std::nullopt;
}

bool Agent::runExec(ExecTask& task, int64_t deadlineMs) {
  for (;;) {
    bool progressed = false;
    auto status = task.step(conn_->session(), progressed);
    if (status == ExecTask::Status::Done) return true;
    if (status == ExecTask::Status::Failed) return false;
    if (progressed) continue;
    int w = conn_->waitSocket(deadlineMs, commandFd_);
    if (w == 0) return false;
    if (w == DRIVE_CANCELLED) {
      readCommands();
      if (stopRequested_ || dropRequested_) return false;
    }
  }
}

void Agent::sessionLoop() {
  conn_->setLiveness(settings_.keepaliveIntervalMs, settings_.keepaliveCountMax);
  lastProbeMs_ = monoMs();
  pty_ = std::make_unique<PtyStream>(settings_.intensity, settings_.ptyIntervalMs);
  ptyStartedMs_ = monoMs();
  while (conn_ && !stopRequested_) {
    int64_t now = monoMs();
    if (!round_ && now >= nextPollMs_) startPollRound();
    if (!pty_ && now >= ptyRetryMs_) {
      pty_ = std::make_unique<PtyStream>(settings_.intensity, settings_.ptyIntervalMs);
      ptyStartedMs_ = now;
    }
    // Step everything until nothing moves: libssh2 may have buffered data
    // for one channel while reading for another, so one pass is not enough.
    bool progressed = true;
    while (progressed && conn_) {
      progressed = false;
      if (pty_) stepPty(progressed);
      if (conn_ && round_) stepPollRound(progressed);
    }
    if (!conn_ || checkTransport() || checkLiveness()) break;
    if ((pty_ && pty_->hasBufferedData()) || (round_ && round_->tasks[round_->current]->hasBufferedData())) {
      continue;  // data already inside libssh2: read it before sleeping
    }

    // Sleep until the socket, a command, or the next timer.
    int64_t silenceDeadline = conn_->lastRecvMs() + int64_t{settings_.keepaliveIntervalMs} * settings_.keepaliveCountMax;
    int64_t probeDue = std::max(conn_->lastRecvMs(), lastProbeMs_) + settings_.keepaliveIntervalMs;
    // The next round's start matters only while no round is running: a
    // round stalled on a dead link would otherwise make this a busy loop.
    int64_t wakeMs = std::min({round_ ? round_->deadlineMs : nextPollMs_, silenceDeadline, probeDue});
    if (!pty_) wakeMs = std::min(wakeMs, ptyRetryMs_);
    else if (!pty_->streaming()) wakeMs = std::min(wakeMs, ptyStartedMs_ + settings_.reconnectTimeoutMs + 1);
    // While a channel is open, libssh2 is called every turn and consumes
    // whatever arrives. With none, the socket is watched only for EOF.
    bool libssh2Reads = pty_ || round_;
    short sockEvents = 0;
    if (libssh2Reads || !idleDataPending_) sockEvents |= POLLIN;
    bool sending = round_ || (pty_ && !pty_->streaming());
    if (sending && (libssh2_session_block_directions(conn_->session()) & LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
      sockEvents |= POLLOUT;
    }
    pollfd pfds[2] = {{commandFd_, POLLIN, 0}, {conn_->fd(), sockEvents, 0}};
    int timeout = static_cast<int>(std::clamp<int64_t>(wakeMs - monoMs(), 0, 60'000));
    int n = ::poll(pfds, 2, timeout);
    if (n < 0 && errno != EINTR) throwErrno("poll");
    if (pfds[0].revents != 0) readCommands();
    if (dropRequested_) {
      dropRequested_ = false;
      conn_->cut();
      events_.emit([](wire::Event::Builder e) {
        e.setDisconnectInjected();
        e.setSuccess(true);
        e.setDetail("socket shut down by fault injection");
      });
      loseSession(wire::DisconnectCause::INJECTED, "socket shut down by fault injection");
      break;
    }
    if (round_ && monoMs() >= round_->deadlineMs) {
      events_.emit([&](wire::Event::Builder e) {
        events_.failure(e, e.initExecPollError(), wire::FailureCategory::TIMEOUT,
                        "exec poll did not finish within " + std::to_string(settings_.reconnectTimeoutMs) + " ms");
      });
      loseSession(wire::DisconnectCause::SILENCE, "exec poll timed out");
      break;
    }
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
}

void Agent::stepPty(bool& progressed) {
  std::vector<PtyCycleResult> cycles;
  auto status = pty_->step(conn_->session(), monoMs(), progressed, cycles);
  uint32_t expected = expectedPtyLines(settings_.intensity);
  for (const auto& c : cycles) {
    events_.emit([&](wire::Event::Builder e) {
      auto p = e.initPtyCycle();
      p.setBytes(c.bytes);
      p.setLines(c.lines);
      p.setMs(c.ms);
      p.setCycle(c.cycle);
      p.setExpectedLines(expected);
      e.setSuccess(c.lines == expected);
      e.setElapsedMs(c.ms);
      e.setDetail("lines=" + std::to_string(c.lines) + "/" + std::to_string(expected) +
                  " bytes=" + std::to_string(c.bytes) + " ms=" + std::to_string(c.ms));
    });
  }
  if (status != PtyStream::Status::Failed) {
    // Setting the PTY up (open, pty-req, exec) has a deadline too: a server
    // that answers keepalives but never this would otherwise stall it.
    if (!pty_->streaming() && monoMs() - ptyStartedMs_ > settings_.reconnectTimeoutMs) {
      events_.emit([&](wire::Event::Builder e) {
        events_.failure(e, e.initPtyError(), wire::FailureCategory::TIMEOUT,
                        "the PTY channel was not streaming within " + std::to_string(settings_.reconnectTimeoutMs) + " ms");
      });
      pty_->close();
      pty_.reset();
      ptyRetryMs_ = monoMs() + settings_.pollIntervalMs;
    }
    return;
  }
  if (auto cause = transportFailure(pty_->libssh2Error())) {
    loseSession(*cause, pty_->error());
    return;
  }
  events_.emit([&](wire::Event::Builder e) {
    events_.failure(e, e.initPtyError(), wire::FailureCategory::CHANNEL, pty_->error(), pty_->libssh2Error());
  });
  pty_->close();
  pty_.reset();
  ptyRetryMs_ = monoMs() + settings_.pollIntervalMs;  // try again, not in a tight loop
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
      if (auto cause = transportFailure(rc)) {
        loseSession(*cause, "keepalive: " + conn_->lastError());
        return true;
      }
    }
  }
  return false;
}

void Agent::startPollRound() {
  round_.emplace();
  for (const auto& cmd : pollCommands()) round_->tasks.push_back(std::make_unique<ExecTask>(cmd));
  round_->startMs = monoMs();
  round_->deadlineMs = round_->startMs + settings_.reconnectTimeoutMs;
  idleDataPending_ = false;
}

void Agent::stepPollRound(bool& progressed) {
  auto& task = *round_->tasks[round_->current];
  auto status = task.step(conn_->session(), progressed);
  if (status == ExecTask::Status::Running) return;
  if (status == ExecTask::Status::Failed) {
    if (auto cause = transportFailure(task.libssh2Error())) {
      loseSession(*cause, task.error());
      return;
    }
    events_.emit([&](wire::Event::Builder e) {
      events_.failure(e, e.initExecPollError(), wire::FailureCategory::CHANNEL, task.error(),
                      task.libssh2Error());
    });
    round_.reset();
    nextPollMs_ = monoMs() + settings_.pollIntervalMs;
    return;
  }
  progressed = true;
  if (++round_->current < round_->tasks.size()) return;
  finishPollRound();
}

void Agent::finishPollRound() {
  const auto& t = round_->tasks;
  uint32_t rttMs = static_cast<uint32_t>(monoMs() - round_->startMs);
  auto cpu = parseProcStat(t[0]->output());
  auto mem = parseMemUsedPct(t[1]->output());
  auto disk = parseDfUsedPct(t[2]->output());
  std::string problem;
  if (auto* e = std::get_if<ParseError>(&cpu)) problem = e->message;
  else if (auto* e2 = std::get_if<ParseError>(&mem)) problem = e2->message;
  else if (auto* e3 = std::get_if<ParseError>(&disk)) problem = e3->message;
  if (!problem.empty()) {
    events_.emit([&](wire::Event::Builder e) {
      events_.failure(e, e.initExecPollError(), wire::FailureCategory::PARSE, problem);
      e.setElapsedMs(rttMs);
    });
  } else {
    auto now = std::get<CpuTimes>(cpu);
    double busy = cpuBusyPct(now, lastCpu_);
    lastCpu_ = now;
    double memPct = std::get<double>(mem), diskPct = std::get<double>(disk);
    uint32_t bytes = 0;
    for (const auto& task : t) bytes += static_cast<uint32_t>(task->output().size());
    events_.emit([&](wire::Event::Builder e) {
      auto p = e.initExecPoll();
      p.setRttMs(rttMs);
      p.setCpuBusyPct(static_cast<float>(busy));
      p.setMemUsedPct(static_cast<float>(memPct));
      p.setDiskUsedPct(static_cast<float>(diskPct));
      p.setBytes(bytes);
      e.setSuccess(true);
      e.setElapsedMs(rttMs);
      e.setDetail("cpu=" + fmtPct(busy) + " mem=" + fmtPct(memPct) + " disk=" + fmtPct(diskPct) +
                  " rtt_ms=" + std::to_string(rttMs));
    });
  }
  round_.reset();
  nextPollMs_ = std::max(nextPollMs_ + settings_.pollIntervalMs, monoMs());
}

std::optional<wire::DisconnectCause> Agent::transportFailure(int rc) const {
  if (conn_->peerClosed()) return wire::DisconnectCause::END_OF_FILE;
  if (conn_->lastRecvErrno() == ECONNRESET) return wire::DisconnectCause::RESET;
  switch (rc) {
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
      return wire::DisconnectCause::SOCKET_ERROR;
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_PROTO:
      return wire::DisconnectCause::PROTOCOL;
    default:
      return std::nullopt;
  }
}

void Agent::loseSession(wire::DisconnectCause cause, const std::string& message) {
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
  round_.reset();
  pty_.reset();
  conn_->cut();
  conn_.reset();
}

void Agent::closeSession() {
  round_.reset();
  if (pty_ && conn_) pty_->close();
  pty_.reset();
  if (!conn_) return;
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
    }
  }
}

void Agent::waitForShutdown() {
  // Nothing left to do but wait to be told: sleep in poll, no timer, no CPU.
  while (!stopRequested_) {
    pollfd pfd{commandFd_, POLLIN, 0};
    if (::poll(&pfd, 1, -1) > 0) readCommands();
    dropRequested_ = false;
  }
}

}  // namespace sshsoak::agent
