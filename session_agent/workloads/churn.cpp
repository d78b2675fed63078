#include "session_agent/workloads/churn.h"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/exec_task.h"
#include "session_agent/workloads/workload.h"
#include "shared/clock.h"
#include "shared/fd.h"

namespace sshsoak::agent {

namespace {

using Cat = wire::FailureCategory;

// What a churn command may print that we keep (its output is not looked at;
// stderr is counted and dropped).
constexpr size_t MAX_COMMAND_OUTPUT = 4096;

int64_t saturatingAdd(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) return std::numeric_limits<int64_t>::max();
  return a + b;
}

}  // namespace

ChurnSpec ChurnSpec::fromWire(wire::ChurnWorkloadSpec::Reader w) {
  ChurnSpec s;
  s.rate.startPerSec = w.getRateStartPerSec();
  s.rate.endPerSec = w.getRateEndPerSec();
  s.rate.rampMs = w.getRampMs();
  s.rate.steps = std::max<uint32_t>(w.getRampSteps(), 1);
  auto valid = [](double r) { return std::isfinite(r) && r >= 0; };
  if (!valid(s.rate.startPerSec) || !valid(s.rate.endPerSec)) {
    throw std::invalid_argument("churn: the rate must be a number of connections per second, 0 or more");
  }
  if (!s.rate.ramp()) s.rate.startPerSec = s.rate.endPerSec;
  if (s.rate.ramp() && (s.rate.startPerSec <= 0 || s.rate.endPerSec <= 0)) {
    throw std::invalid_argument("churn: a ramp's rates must be above 0 (0 means unpaced)");
  }
  s.agents = std::max<uint32_t>(w.getAgents(), 1);
  s.agentIndex = w.getAgentIndex();
  if (s.agentIndex >= s.agents) {
    throw std::invalid_argument("churn: agent index " + std::to_string(s.agentIndex) + " is not among the run's " +
                                std::to_string(s.agents) + " agents");
  }
  s.scheduleStartNs = w.getScheduleStartNs();
  s.command = w.getCommand();
  s.reportIntervalMs = std::max(w.getReportIntervalMs(), MIN_WORKLOAD_INTERVAL_MS);
  s.logEachConnection = w.getLogEachConnection();
  s.connectTimeoutMs = std::max(w.getConnectTimeoutMs(), MIN_WORKLOAD_INTERVAL_MS);
  return s;
}

std::string_view churnPhaseName(ChurnPhase phase) {
  switch (phase) {
    case ChurnPhase::TCP: return "tcp";
    case ChurnPhase::KEX: return "kex";
    case ChurnPhase::AUTH: return "auth";
    case ChurnPhase::EXEC: return "exec";
    case ChurnPhase::CLOSE: return "close";
  }
  return "?";
}

ChurnPhase churnPhaseOf(OpenPhase reached) {
  switch (reached) {
    case OpenPhase::TCP: return ChurnPhase::TCP;
    case OpenPhase::KEX:
    case OpenPhase::HOSTKEY: return ChurnPhase::KEX;
    case OpenPhase::AUTH: return ChurnPhase::AUTH;
    case OpenPhase::DONE: return ChurnPhase::EXEC;
  }
  return ChurnPhase::TCP;
}

std::string_view churnFailureName(ChurnFailure kind) {
  switch (kind) {
    case ChurnFailure::REFUSED: return "refused";
    case ChurnFailure::RESET_BEFORE_BANNER: return "reset_before_banner";
    case ChurnFailure::TIMEOUT_TCP: return "timeout_tcp";
    case ChurnFailure::TIMEOUT_KEX: return "timeout_kex";
    case ChurnFailure::TIMEOUT_AUTH: return "timeout_auth";
    case ChurnFailure::TIMEOUT_EXEC: return "timeout_exec";
    case ChurnFailure::TIMEOUT_CLOSE: return "timeout_close";
    case ChurnFailure::KEX: return "kex";
    case ChurnFailure::AUTH: return "auth";
    case ChurnFailure::EXEC: return "exec";
    case ChurnFailure::HOSTKEY: return "hostkey";
    case ChurnFailure::DROPPED: return "dropped";
    case ChurnFailure::OTHER: return "other";
  }
  return "other";
}

ChurnFailure classifyChurnFailure(ChurnPhase phase, const SshError& error, bool peerGone) {
  if (error.category == Cat::TIMEOUT) {
    switch (phase) {
      case ChurnPhase::TCP: return ChurnFailure::TIMEOUT_TCP;
      case ChurnPhase::KEX: return ChurnFailure::TIMEOUT_KEX;
      case ChurnPhase::AUTH: return ChurnFailure::TIMEOUT_AUTH;
      case ChurnPhase::EXEC: return ChurnFailure::TIMEOUT_EXEC;
      case ChurnPhase::CLOSE: return ChurnFailure::TIMEOUT_CLOSE;
    }
  }
  if (error.category == Cat::HOSTKEY) return ChurnFailure::HOSTKEY;
  if (error.category == Cat::ALGORITHMS) return ChurnFailure::KEX;
  switch (phase) {
    case ChurnPhase::TCP:
      return error.category == Cat::REFUSED ? ChurnFailure::REFUSED : ChurnFailure::OTHER;
    case ChurnPhase::KEX:
      // sshd past MaxStartups, or one going down, closes an accepted
      // connection before its banner or in the middle of the key exchange.
      return peerGone ? ChurnFailure::RESET_BEFORE_BANNER : ChurnFailure::KEX;
    case ChurnPhase::AUTH:
      return error.category == Cat::AUTH ? ChurnFailure::AUTH : ChurnFailure::OTHER;
    case ChurnPhase::EXEC: return ChurnFailure::EXEC;
    case ChurnPhase::CLOSE: return ChurnFailure::OTHER;
  }
  return ChurnFailure::OTHER;
}

ChurnSchedule::ChurnSchedule(const ChurnSpec& spec)
    : rate_(spec.rate), agents_(spec.agents), index_(spec.agentIndex) {
  joinAt(0);
}

int64_t ChurnSchedule::timeOfNs(uint64_t index) const {
  double ms = rate_.timeOfStart(static_cast<double>(index));
  if (!std::isfinite(ms) || ms * 1e6 >= static_cast<double>(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return std::llround(ms * 1e6);
}

void ChurnSchedule::joinAt(int64_t sinceNs) {
  // The run-wide starts before sinceNs are gone; the first at or after it
  // that is ours (index k mod n).
  double before = rate_.startsBy(static_cast<double>(std::max<int64_t>(sinceNs, 0)) / 1e6);
  auto first = static_cast<uint64_t>(std::ceil(before - 1e-9));
  next_ = first + (index_ + agents_ - first % agents_) % agents_;
  nextNs_ = timeOfNs(next_);
}

void ChurnSchedule::advance() {
  next_ += agents_;
  nextNs_ = timeOfNs(next_);
}

void ChurnIntervalStats::finished(const ChurnConnectionResult& c) {
  const uint64_t phases[] = {c.tcpUs, c.kexUs, c.authUs, c.execUs, c.closeUs};
  for (size_t i = 0; i < std::size(phases); ++i) {
    if (phases[i] > 0) histograms_[i].record(phases[i]);
  }
  if (c.failure) {
    ++failed_;
    FailureSlot& slot = failures_[static_cast<size_t>(*c.failure)];
    if (slot.count++ == 0) slot.example = c.message.substr(0, MAX_EXAMPLE_BYTES);
    return;
  }
  ++succeeded_;
  histograms_[5].record(c.totalUs());
  histograms_[6].record(c.serviceUs());
}

void ChurnIntervalStats::reportAndReset(wire::ChurnStats::Builder out) {
  out.setAttempted(attempted_);
  out.setSucceeded(succeeded_);
  out.setFailed(failed_);
  auto list = out.initHistograms(MEASURES.size());
  for (size_t m = 0; m < MEASURES.size(); ++m) {
    const LatencyHistogram& h = histograms_[m];
    size_t nonZero = 0;
    h.forEachNonZero([&](size_t, uint64_t) { ++nonZero; });
    auto wire = list[m];
    wire.setName(std::string(MEASURES[m]));
    auto indices = wire.initIndices(nonZero);
    auto counts = wire.initCounts(nonZero);
    size_t k = 0;
    h.forEachNonZero([&](size_t i, uint64_t count) {
      indices.set(k, static_cast<uint32_t>(i));
      counts.set(k, count);
      ++k;
    });
  }
  size_t kinds = std::count_if(failures_.begin(), failures_.end(), [](const auto& f) { return f.count > 0; });
  auto failures = out.initFailures(kinds);
  size_t k = 0;
  for (size_t i = 0; i < failures_.size(); ++i) {
    if (failures_[i].count == 0) continue;
    auto f = failures[k++];
    f.setKind(std::string(churnFailureName(static_cast<ChurnFailure>(i))));
    f.setCount(failures_[i].count);
    f.setExample(failures_[i].example);
  }
  attempted_ = succeeded_ = failed_ = 0;
  for (auto& h : histograms_) h.reset();
  for (auto& f : failures_) {
    f.count = 0;
    f.example.clear();
  }
}

void fillChurnConnection(wire::ChurnConnection::Builder out, const ChurnConnectionResult& c) {
  out.setLagUs(c.lagUs());
  out.setTcpUs(c.tcpUs);
  out.setKexUs(c.kexUs);
  out.setAuthUs(c.authUs);
  out.setExecUs(c.execUs);
  out.setCloseUs(c.closeUs);
  out.setTotalUs(c.totalUs());
  if (c.failure) {
    out.setFailureKind(std::string(churnFailureName(*c.failure)));
    out.setMessage(c.message);
  }
}

ChurnRunner::ChurnRunner(ChurnSpec spec, ConnectSettings connect, EventSink& events, CommandPipe commands)
    : spec_(std::move(spec)),
      connect_(std::move(connect)),
      events_(events),
      commands_(std::move(commands)),
      schedule_(spec_) {}

bool ChurnRunner::shouldStop() const { return commands_.stopRequested || events_.supervisorGone(); }

void ChurnRunner::run() {
  int64_t nowNs = monoNs();
  // The supervisor's wall-clock origin on our monotonic clock: every agent,
  // a restarted one too, places its starts on the same run-wide grid.
  originNs_ = spec_.scheduleStartNs > 0 ? nowNs - (wallNs() - spec_.scheduleStartNs) : nowNs;
  if (!spec_.unpaced()) schedule_.joinAt(nowNs - originNs_);
  // Read once, not at every authentication (client CPU per connection).
  // Unreadable: left to libssh2, whose failure then names the file.
  if (!connect_.key) {
    if (auto text = readWholeFile(connect_.keyPath)) connect_.key = ClientKey::load(std::move(*text));
  }
  lastReportMs_ = monoMs();
  reportedCpuNs_ = processCpuNs();
  ticker_.dueMs = lastReportMs_ + spec_.reportIntervalMs;
  ticker_.tick = [this](int64_t nowMs) { report(nowMs); };

  while (!shouldStop()) {
    int64_t intendedNs = spec_.unpaced() ? monoNs() : saturatingAdd(originNs_, schedule_.nextNs());
    if (!waitUntil(intendedNs)) break;
    if (!spec_.unpaced()) schedule_.advance();
    stats_.started();
    auto connection = connectOnce(intendedNs);
    if (!connection) break;
    stats_.finished(*connection);
    if (spec_.logEachConnection) {
      events_.emit([&](wire::Event::Builder e) {
        fillChurnConnection(e.initChurnConnection(), *connection);
        e.setSuccess(!connection->failure);
        if (connection->failure) {
          e.setDetail(std::string(churnFailureName(*connection->failure)) + ": " + connection->message);
        }
      });
    }
    if (algorithmsMismatch_) {
      // Like the session agent's: not retried, a user must change the
      // server's or the client's algorithms. Said once, then the runner
      // idles (reports continue) until it is told to stop.
      events_.emit([&](wire::Event::Builder e) {
        events_.failure(e, e.initManualReconnect(), Cat::ALGORITHMS,
                        algorithmsMismatch_->message + " (churn stopped connecting: needs a user)",
                        algorithmsMismatch_->libssh2Error);
      });
      waitUntil(std::numeric_limits<int64_t>::max());
      break;
    }
  }
  report(monoMs());  // the last, partial interval
}

bool ChurnRunner::waitUntil(int64_t untilNs) {
  for (;;) {
    if (shouldStop()) return false;
    int64_t nowNs = monoNs();
    int64_t dueNs = ticker_.dueMs * 1'000'000;
    if (nowNs >= dueNs) {
      report(nowNs / 1'000'000);
      continue;
    }
    if (nowNs >= untilNs) return true;
    // The heartbeat is due at a whole ms; heartbeatDue sends it when it is.
    int64_t beatNs = std::min(heartbeatDue(nowNs / 1'000'000), int64_t{INT64_MAX / 1'000'000}) * 1'000'000;
    int64_t sleepNs = std::max<int64_t>(std::min({untilNs, dueNs, beatNs, nowNs + int64_t{60'000'000'000}}) - nowNs, 0);
    timespec ts{static_cast<time_t>(sleepNs / 1'000'000'000), static_cast<long>(sleepNs % 1'000'000'000)};
    pollfd pfd{commands_.fd, POLLIN, 0};
    int n = ::ppoll(&pfd, 1, &ts, nullptr);
    if (n < 0 && errno != EINTR) throwErrno("ppoll");
    if (n > 0) {
      commands_.read();
      commands_.dropRequested = false;  // between connections there is nothing to drop
    }
  }
}

std::optional<ChurnFailure> ChurnRunner::interrupted() {
  commands_.read();
  if (shouldStop()) return std::nullopt;
  if (commands_.dropRequested) {
    commands_.dropRequested = false;
    return ChurnFailure::DROPPED;
  }
  return ChurnFailure::OTHER;  // woken by a partial command frame: the connection's wait was given up
}

std::optional<ChurnConnectionResult> ChurnRunner::connectOnce(int64_t intendedNs) {
  ChurnConnectionResult r;
  r.intendedNs = intendedNs;
  r.startNs = monoNs();
  const int64_t deadlineMs = r.startNs / 1'000'000 + spec_.connectTimeoutMs;
  ChurnPhase phase = ChurnPhase::TCP;
  auto failed = [&](ChurnFailure kind, std::string message) {
    r.failure = kind;
    r.message = std::move(message);
    r.endNs = monoNs();
    return std::optional<ChurnConnectionResult>(std::move(r));
  };
  // A wait cut short by the command pipe: a shutdown abandons the
  // connection uncounted, a drop fails it.
  auto cut = [&]() -> std::optional<ChurnConnectionResult> {
    auto kind = interrupted();
    if (!kind) return std::nullopt;
    return failed(*kind, *kind == ChurnFailure::DROPPED
                             ? "cut by an injected drop during " + std::string(churnPhaseName(phase))
                             : "interrupted during " + std::string(churnPhaseName(phase)) +
                                   " by an incomplete command from the supervisor");
  };
  auto overtime = [&](ChurnFailure kind, const std::string& what) {
    return failed(kind, what + " did not finish within the connection's " + std::to_string(spec_.connectTimeoutMs) +
                            " ms (--reconnect-timeout-secs)");
  };

  OpenTimings timings;
  auto opened = SshConnection::open(connect_, deadlineMs, commands_.fd, &timings, &ticker_);
  r.tcpUs = timings.tcpUs;
  r.kexUs = timings.kexUs;
  r.authUs = timings.authUs;
  phase = churnPhaseOf(timings.reached);
  if (!opened) {
    const SshError& error = opened.error();
    if (error.cancelled) return cut();
    if (error.category == Cat::ALGORITHMS) algorithmsMismatch_ = error;
    return failed(classifyChurnFailure(phase, error, timings.peerGone), error.message);
  }
  std::unique_ptr<SshConnection> conn = std::move(opened).value();
  // The host key was checked against the file once; the same key again
  // needs no second look (ConnectSettings::trustedHostKey).
  if (connect_.trustedHostKey.empty()) connect_.trustedHostKey = conn->hostKey;

  if (!spec_.command.empty()) {
    int64_t execStartNs = monoNs();
    ExecTask task(spec_.command, MAX_COMMAND_OUTPUT);
    for (;;) {
      // Every turn: output that keeps coming keeps `progressed` true.
      if (monoMs() >= deadlineMs) return overtime(ChurnFailure::TIMEOUT_EXEC, "'" + spec_.command + "'");
      bool progressed = false;
      ExecTask::Status status = task.step(conn->session(), progressed);
      if (status == ExecTask::Status::Done) break;
      if (status == ExecTask::Status::Failed) return failed(ChurnFailure::EXEC, task.error());
      if (progressed) continue;
      Wait w = conn->waitSocket(deadlineMs, commands_.fd);
      if (w == Wait::TIMEOUT) return overtime(ChurnFailure::TIMEOUT_EXEC, "'" + spec_.command + "'");
      if (w == Wait::CANCELLED) return cut();
    }
    if (task.exitStatus() != 0) {
      return failed(ChurnFailure::EXEC, "'" + spec_.command + "' exited with status " +
                                            std::to_string(task.exitStatus()));
    }
    r.execUs = usSince(execStartNs);
  }

  phase = ChurnPhase::CLOSE;
  int64_t closeStartNs = monoNs();
  LIBSSH2_SESSION* session = conn->session();
  Driven d = conn->drive([&] { return libssh2_session_disconnect(session, "sshsoak churn: done"); }, deadlineMs,
                         commands_.fd);
  if (d.wait == Wait::TIMEOUT) return overtime(ChurnFailure::TIMEOUT_CLOSE, "the SSH disconnect");
  if (d.wait == Wait::CANCELLED) return cut();
  if (d.rc != 0) {
    return failed(classifyChurnFailure(phase, SshError{Cat::SOCKET, conn->lastError(), d.rc}, false),
                  libssh2Failure(session, "SSH disconnect"));
  }
  conn.reset();  // frees the session and closes the socket: part of the close
  r.closeUs = usSince(closeStartNs);
  r.endNs = monoNs();
  return r;
}

int64_t ChurnRunner::behindMs(int64_t nowNs) const {
  if (spec_.unpaced()) return 0;
  int64_t nextNs = saturatingAdd(originNs_, schedule_.nextNs());
  return nowNs > nextNs ? (nowNs - nextNs) / 1'000'000 : 0;
}

void ChurnRunner::report(int64_t nowMs) {
  int64_t cpuNs = processCpuNs();
  // Whole ms, the remainder carried: the intervals' CPU sums to the run's.
  int64_t cpuMs = std::max<int64_t>(cpuNs - reportedCpuNs_, 0) / 1'000'000;
  reportedCpuNs_ += cpuMs * 1'000'000;
  int64_t intervalMs = std::max<int64_t>(nowMs - lastReportMs_, 0);
  int64_t behind = behindMs(nowMs * 1'000'000);
  double target = spec_.rate.targetAt(nowMs - originNs_ / 1'000'000);
  events_.emit([&](wire::Event::Builder e) {
    auto c = e.initChurnStats();
    c.setIntervalMs(static_cast<uint32_t>(std::min<int64_t>(intervalMs, UINT32_MAX)));
    c.setTargetPerSec(target);
    c.setBehindMs(static_cast<uint32_t>(std::min<int64_t>(behind, UINT32_MAX)));
    c.setCpuMs(static_cast<uint32_t>(std::min<int64_t>(cpuMs, UINT32_MAX)));
    e.setDetail(std::to_string(stats_.attempted()) + " attempted, " + std::to_string(stats_.succeeded()) + " ok, " +
                std::to_string(stats_.failed()) + " failed");
    e.setSuccess(stats_.failed() == 0);
    stats_.reportAndReset(c);
  });
  lastReportMs_ = nowMs;
  ticker_.dueMs += spec_.reportIntervalMs;
  // Reports cannot catch up on intervals that passed unreported (a stopped
  // agent, a long stall): the next one is a full interval away.
  if (ticker_.dueMs <= nowMs) ticker_.dueMs = nowMs + spec_.reportIntervalMs;
}

}  // namespace sshsoak::agent
