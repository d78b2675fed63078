// The transfer workload (--workload transfer): rounds of bulk data on the
// long-lived session, one exec channel per round (transfer_round.h), the
// directions alternating up, down, up, ... when both are asked for, each
// round verified end to end by SHA-256:
//   - both ends agree: one transfer_round event (MB/s, the agent's CPU, the
//     window and write sizes, the time spent stalled);
//   - they do not, the remote printed no checksum, or the byte count is
//     wrong: one transfer_corrupt event (success false);
//   - the channel or the command failed: transfer_error (through
//     WorkloadContext::channelFailed, so a lost connection is the loop's
//     disconnect), then the next round after a pause;
//   - nothing moved in the round's direction for stallMs: one
//     transfer_stall event once it moves again (or the round ends), not a
//     failure;
//   - no progress at all for giveUpMs() (max(step timeout, 10 x stallMs)):
//     transfer_error (timeout); the channel is dropped, the session kept.
// The agent's memory is one buffer of writeBytes, reused by every round,
// plus what libssh2 holds (down: at most the window plus one read, as
// libssh2 1.10 tops the window up to its initial size plus the read's).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "session_agent/workloads/transfer_round.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

struct TransferSpec {
  bool up = true;
  bool down = true;
  uint64_t bytesPerRound = 0;
  std::string upCommand;    // "{bytes}" replaced
  std::string downCommand;  // "{bytes}" replaced
  uint32_t windowBytes = 0;
  uint32_t writeBytes = 0;
  uint32_t stallMs = 0;
  uint32_t pauseMs = 0;

  // A window below this cannot hold one packet of ours.
  static constexpr uint32_t MIN_WINDOW_BYTES = 32 * 1024;
  static constexpr uint32_t MAX_WRITE_BYTES = 64u << 20;

  // The stall floored at MIN_WORKLOAD_INTERVAL_MS, the window at
  // MIN_WINDOW_BYTES; throws std::invalid_argument on a spec it cannot run
  // (no direction, no bytes, no write size, a write above MAX_WRITE_BYTES).
  static TransferSpec fromWire(wire::TransferWorkloadSpec::Reader spec);

  // A round with no progress at all for this long is given up (the channel
  // dropped): the step budget every unit of work has, but never less than
  // ten stalls, so that a long stall is reported as one before it is an error.
  uint32_t giveUpMs(uint32_t stepTimeoutMs) const;
  // After a failed round, before the next: pauseMs, but at least
  // ERROR_PAUSE_MS, so a command that cannot run is not retried in a tight loop.
  uint32_t errorPauseMs() const;
  static constexpr uint32_t ERROR_PAUSE_MS = 1000;

  // Round n (from 1): up, down, up, ... with both; else the one asked for.
  wire::TransferDirection directionOf(uint32_t round) const;
};

class TransferWorkload final : public Workload {
 public:
  using Spec = TransferSpec;
  explicit TransferWorkload(TransferSpec spec);

  void start(const WorkloadContext& context, int64_t nowMs) override;
  void onTurn(int64_t nowMs) override;
  StepResult step(int64_t nowMs) override;
  // Stalls begin here; a round without progress for giveUpMs is dropped.
  std::optional<SessionLost> afterWait(int64_t nowMs) override;
  bool wantsRead() const override { return round_ != nullptr || closing_ != nullptr; }
  // A round sends all along (open, exec, data, EOF, close); libssh2 marks
  // the outbound direction only while a packet waits for socket room, and
  // the data write is the round's last call of a step, so the direction the
  // loop reads is the round's own, never a stale one.
  bool wantsWrite() const override { return round_ != nullptr || closing_ != nullptr; }
  // A round that spent its turn's budget wants to be back at once (after
  // the loop looked at its commands); else its stall or give-up time, a
  // failed channel's close deadline, or the next round's start.
  int64_t nextWakeMs() const override;
  bool hasBufferedData() const override { return round_ && !round_->yielded() && round_->hasBufferedData(); }
  void abandon() override;
  void close() override;

 private:
  void begin(int64_t nowMs);
  void finish(int64_t nowMs);
  // The round failed or was given up (reported already): its channel is
  // closed in the background (closing_), the next round scheduled.
  void drop(int64_t nowMs);
  // One try at finishing closing_'s close (afterWait leaves it to the
  // session's free once the step timeout has passed).
  void stepClosing(bool& progressed);
  void reportStall(const StallReport& stall);

  TransferSpec spec_;
  std::optional<WorkloadContext> context_;
  std::unique_ptr<TransferRound> round_;
  // A failed or given-up round whose channel is being closed: sshd's
  // MaxSessions counts it until then, and libssh2 keeps it (and its unread
  // data, up to a window) until freed. The next round waits for it.
  std::unique_ptr<TransferRound> closing_;
  int64_t closingDeadlineMs_ = 0;
  // The one data buffer, the size of a write, for every round of the run.
  std::unique_ptr<char[]> buffer_;
  uint64_t seedBase_;
  uint32_t rounds_ = 0;  // started on this agent, across reconnects
  int64_t nextRoundMs_ = 0;
};

}  // namespace sshsoak::agent
