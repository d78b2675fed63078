// The PTY workload: one PtyStream per session, each burst one pty_cycle
// event. A channel that fails, or is not streaming within the step timeout,
// is reported (pty_error) and replaced after retryMs; a failure that is the
// connection itself going away loses the session.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "session_agent/workloads/pty_stream.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

struct PtySpec {
  wire::Intensity intensity = wire::Intensity::MEDIUM;
  uint32_t pauseMs = 0;  // the remote sleep between bursts
  uint32_t retryMs = 0;  // after a failed channel, before the next one
};

class PtyWorkload final : public Workload {
 public:
  explicit PtyWorkload(PtySpec spec) : spec_(spec) {}

  void start(const WorkloadContext& context, int64_t nowMs) override;
  void onTurn(int64_t nowMs) override;
  StepResult step() override;
  std::optional<SessionLost> afterWait(int64_t) override { return std::nullopt; }
  bool wantsRead() const override { return pty_ != nullptr; }
  bool wantsWrite() const override { return pty_ != nullptr && !pty_->streaming(); }
  int64_t nextWakeMs() const override;
  bool hasBufferedData() const override { return pty_ != nullptr && pty_->hasBufferedData(); }
  void abandon() override;
  void close() override;

 private:
  void open(int64_t nowMs);
  // Reports a failed channel (pty_error) and schedules the next one.
  void replace(wire::FailureCategory category, const std::string& message, int libssh2Error);

  PtySpec spec_;
  std::optional<WorkloadContext> context_;
  std::unique_ptr<PtyStream> pty_;
  int64_t startedMs_ = 0;  // when pty_ was opened: its setup deadline runs from here
  int64_t retryMs_ = 0;    // no pty_: when to open the next one
};

}  // namespace sshsoak::agent
