#include "session_agent/workloads/pty_workload.h"

#include <vector>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/connection.h"
#include "shared/clock.h"

namespace sshsoak::agent {

void PtyWorkload::start(const WorkloadContext& context, int64_t nowMs) {
  context_.emplace(context);
  open(nowMs);
}

void PtyWorkload::open(int64_t nowMs) {
  pty_ = std::make_unique<PtyStream>(spec_.intensity, spec_.pauseMs);
  startedMs_ = nowMs;
}

void PtyWorkload::onTurn(int64_t nowMs) {
  if (!pty_ && nowMs >= retryMs_) open(nowMs);
}

StepResult PtyWorkload::step() {
  StepResult result;
  if (!pty_) return result;
  std::vector<PtyCycleResult> cycles;
  auto status = pty_->step(context_->conn.session(), monoMs(), result.progressed, cycles);
  uint32_t expected = expectedPtyLines(spec_.intensity);
  for (const auto& c : cycles) {
    context_->events.emit([&](wire::Event::Builder e) {
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
    if (!pty_->streaming() && monoMs() - startedMs_ > context_->stepTimeoutMs) {
      replace(wire::FailureCategory::TIMEOUT,
              "the PTY channel was not streaming within " + std::to_string(context_->stepTimeoutMs) + " ms", 0);
    }
    return result;
  }
  const SshError& failure = pty_->failure();
  if (auto cause = context_->conn.transportFailure(failure.libssh2Error)) {
    result.lost = SessionLost{*cause, failure.message};
    return result;
  }
  replace(wire::FailureCategory::CHANNEL, failure.message, failure.libssh2Error);
  return result;
}

void PtyWorkload::replace(wire::FailureCategory category, const std::string& message, int libssh2Error) {
  context_->events.emit([&](wire::Event::Builder e) {
    context_->events.failure(e, e.initPtyError(), category, message, libssh2Error);
  });
  pty_->close();
  pty_.reset();
  retryMs_ = monoMs() + spec_.retryMs;  // try again, not in a tight loop
}

int64_t PtyWorkload::nextWakeMs() const {
  if (!pty_) return retryMs_;
  // One past the setup deadline, so that step() finds it passed.
  if (!pty_->streaming()) return startedMs_ + context_->stepTimeoutMs + 1;
  return NO_WAKE_MS;
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
