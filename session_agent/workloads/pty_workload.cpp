#include "session_agent/workloads/pty_workload.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/connection.h"

namespace sshsoak::agent {

PtySpec PtySpec::fromWire(wire::PtyWorkloadSpec::Reader spec) {
  return PtySpec{spec.getIntensity(), spec.getIntervalMs(),
                 std::max(spec.getRetryIntervalMs(), MIN_WORKLOAD_INTERVAL_MS)};
}

void PtyWorkload::start(const WorkloadContext& context, int64_t nowMs) {
  context_.emplace(context);
  period_.begin(nowMs, std::max(context.detail.rollupMs, MIN_ROLLUP_MS));
  open(nowMs);
}

void PtyWorkload::open(int64_t nowMs) {
  pty_ = std::make_unique<PtyStream>(spec_.intensity, spec_.pauseMs);
  setupDeadlineMs_ = nowMs + context_->stepTimeoutMs;
}

void PtyWorkload::onTurn(int64_t nowMs) {
  if (period_.due(nowMs)) sendRollup(nowMs);
  if (!pty_ && nowMs >= retryMs_) open(nowMs);
}

void PtyWorkload::sendRollup(int64_t nowMs) {
  // An interval without a cycle says nothing a pty_error has not: no line.
  if (!rollup_.empty()) {
    context_->events.emit([&](wire::Event::Builder e) { rollup_.reportAndReset(e, period_.elapsedMs(nowMs)); });
  }
  period_.next(nowMs);
}

void PtyWorkload::flushRollup(int64_t nowMs) {
  if (context_) sendRollup(nowMs);
}

void PtyWorkload::emitCycle(const PtyCycleResult& c, uint32_t expected) {
  context_->events.emit([&](wire::Event::Builder e) {
    auto p = e.initPtyCycle();
    p.setBytes(c.bytes);
    p.setLines(c.lines);
    p.setMs(c.ms);
    p.setCycle(c.cycle);
    p.setExpectedLines(expected);
    if (!c.echoUs.empty()) {
      auto echo = p.initEchoUs(static_cast<unsigned>(c.echoUs.size()));
      for (unsigned i = 0; i < c.echoUs.size(); ++i) echo.set(i, c.echoUs[i]);
    }
    e.setSuccess(c.lines == expected);
    e.setElapsedMs(c.ms);
    e.setDetail("lines=" + std::to_string(c.lines) + "/" + std::to_string(expected) +
                " bytes=" + std::to_string(c.bytes) + " ms=" + std::to_string(c.ms));
  });
}

void PtyWorkload::leakForTesting() {
  const DetailSettings& d = context_->detail;
  if (d.leakFdPerCycle) {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (fd) leakedFds_.push_back(std::move(fd));
  }
  if (d.leakKbPerCycle > 0) {
    size_t n = size_t{d.leakKbPerCycle} * 1024;
    auto block = std::make_unique<char[]>(n);
    std::memset(block.get(), 0x5a, n);  // touched: resident, not just reserved
    leakedKb_.push_back(std::move(block));
  }
}

StepResult PtyWorkload::step(int64_t nowMs) {
  StepResult result;
  if (!pty_) return result;
  std::vector<PtyCycleResult> cycles;
  auto status = pty_->step(context_->conn.session(), nowMs, result.progressed, cycles);
  uint32_t expected = expectedPtyLines(spec_.intensity);
  for (const auto& c : cycles) {
    rollup_.add(c, expected);
    if (context_->detail.full) emitCycle(c, expected);
    leakForTesting();
  }
  if (auto flood = pty_->takeFlood()) {
    context_->events.emit([&](wire::Event::Builder e) {
      auto f = e.initPtyFlood();
      f.setBytes(flood->bytes);
      f.setExpectedBytes(flood->expectedBytes);
      f.setWindowMs(flood->windowMs);
      e.setSuccess(false);
      e.setDetail(std::to_string(flood->bytes) + " bytes of PTY output in " + std::to_string(flood->windowMs) +
                  " ms where the workload makes " + std::to_string(flood->expectedBytes) +
                  ": the remote prints far more than the workload (a login script, a flooding command); drained, "
                  "not stored");
    });
  }
  if (status != PtyStream::Status::Failed) return result;
  result.lost = context_->channelFailed(pty_->failure(), &wire::Event::Builder::initPtyError);
  if (!result.lost) drop(nowMs);
  return result;
}

std::optional<SessionLost> PtyWorkload::afterWait(int64_t nowMs) {
  // Setting the PTY up (open, pty-req, exec) has a deadline too: a server
  // that answers keepalives but never this would otherwise stall it.
  if (pty_ && !pty_->streaming() && nowMs >= setupDeadlineMs_) {
    context_->reportError(&wire::Event::Builder::initPtyError, wire::FailureCategory::TIMEOUT,
                          "the PTY channel was not streaming within " + std::to_string(context_->stepTimeoutMs) +
                              " ms");
    drop(nowMs);
    return std::nullopt;
  }
  // A key whose echo has not come back within the same budget: the remote
  // tty may not echo at all (stty -echo in a login script). Said once, and
  // no more probes on this channel, so that a late echo cannot be taken
  // for a later key's; the stream itself goes on.
  if (auto sentMs = pty_ ? pty_->probeSentMs() : std::nullopt; sentMs && nowMs >= *sentMs + context_->stepTimeoutMs) {
    context_->reportError(&wire::Event::Builder::initPtyError, wire::FailureCategory::TIMEOUT,
                          "keystroke echo: a key typed into the PTY was not echoed within " +
                              std::to_string(context_->stepTimeoutMs) +
                              " ms; no more echo probes on this PTY channel (is echo off on the remote tty?)");
    pty_->stopProbing();
  }
  return std::nullopt;
}

void PtyWorkload::drop(int64_t nowMs) {
  pty_->close();
  pty_.reset();
  retryMs_ = nowMs + spec_.retryMs;  // try again, not in a tight loop
}

int64_t PtyWorkload::nextWakeMs() const {
  int64_t wake = period_.dueMs();
  if (!pty_) return std::min(wake, retryMs_);
  if (!pty_->streaming()) return std::min(wake, setupDeadlineMs_);
  wake = std::min(wake, pty_->nextProbeMs());
  if (auto sentMs = pty_->probeSentMs()) wake = std::min(wake, *sentMs + context_->stepTimeoutMs);
  return wake;
}

void PtyWorkload::abandon() {
  pty_.reset();
  context_.reset();
}

void PtyWorkload::close() {
  if (pty_) pty_->close();
  pty_.reset();
  context_.reset();
}

}  // namespace sshsoak::agent
