// The PTY workload: one PtyStream per session, its bursts rolled up into
// one pty_stats event per rollup period (rollup.h), and with
// --log-detail full also one pty_cycle event each. A channel that fails, or is not streaming within the step timeout,
// is reported (pty_error) and replaced after retryMs; a failure that is the
// connection itself going away loses the session. Each cycle carries the
// keystroke echo samples taken since the previous one (pty_stream.h); a
// key not echoed within the step timeout is reported (pty_error) and ends
// the probing on that channel, not the stream.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "session_agent/workloads/pty_stream.h"
#include "session_agent/workloads/rollup.h"
#include "session_agent/workloads/workload.h"
#include "shared/fd.h"

namespace sshsoak::agent {

struct PtySpec {
  wire::Intensity intensity = wire::Intensity::MEDIUM;
  uint32_t pauseMs = 0;  // the remote sleep between bursts
  uint32_t retryMs = 0;  // after a failed channel, before the next one

  // The retry floored at MIN_WORKLOAD_INTERVAL_MS; the pause is kept (no
  // pause between bursts is a valid load).
  static PtySpec fromWire(wire::PtyWorkloadSpec::Reader spec);
};

class PtyWorkload final : public Workload {
 public:
  using Spec = PtySpec;
  explicit PtyWorkload(PtySpec spec) : spec_(spec) {}

  void start(const WorkloadContext& context, int64_t nowMs) override;
  void onTurn(int64_t nowMs) override;
  StepResult step(int64_t nowMs) override;
  // The setup deadline: a PTY not streaming in time is replaced, the
  // session kept.
  std::optional<SessionLost> afterWait(int64_t nowMs) override;
  bool wantsRead() const override { return pty_ != nullptr; }
  // Setting up sends requests (open, pty-req, exec). Streaming sends only
  // small window adjusts, which libssh2 retries on the next read (at the
  // latest on the keepalive's wake-up), and the echo probes' two bytes,
  // watched only while libssh2 could not write them; a PTY open for the
  // whole session must not keep the loop watching a stale block direction
  // (workload.h).
  bool wantsWrite() const override { return pty_ != nullptr && (!pty_->streaming() || pty_->probeWriting()); }
  int64_t nextWakeMs() const override;
  bool hasBufferedData() const override { return pty_ != nullptr && pty_->hasBufferedData(); }
  void flushRollup(int64_t nowMs) override;
  void resumedAfterStall(int64_t /*nowMs*/) override {
    if (pty_) pty_->skipBacklog();
  }
  void abandon() override;
  void close() override;

 private:
  void open(int64_t nowMs);
  void emitCycle(const PtyCycleResult& c, uint32_t expected);
  // Sends the rollup if it holds a cycle, and begins the next interval.
  void sendRollup(int64_t nowMs);
  // Test only: what --leak-*-for-testing keeps per cycle.
  void leakForTesting();
  // Drops the failed channel (reported already) and schedules the next one.
  void drop(int64_t nowMs);

  PtySpec spec_;
  std::optional<WorkloadContext> context_;
  std::unique_ptr<PtyStream> pty_;
  int64_t setupDeadlineMs_ = 0;  // pty_ not streaming by then: replaced
  int64_t retryMs_ = 0;    // no pty_: when to open the next one
  PtyRollup rollup_;
  RollupPeriod period_;
  // Test only: kept until the agent ends, across reconnects.
  std::vector<UniqueFd> leakedFds_;
  std::vector<std::unique_ptr<char[]>> leakedKb_;
};

}  // namespace sshsoak::agent
