// One round of the transfer workload (transfer.h) on its own exec channel,
// as a non-blocking state machine stepped from the agent's loop: open (with
// the receive window asked for), exec, move the bytes, collect the remote's
// checksum, close, free.
//
//   up:   writes the round's bytes (PseudoRandomBytes, one write buffer at
//         a time, hashed as generated), sends EOF, reads stdout to EOF; the
//         remote's SHA-256 is the last 64-hex-digit word there.
//   down: reads stdout to EOF, hashing and counting it; the remote's SHA-256
//         is the last 64-hex-digit word on stderr.
// stdout and stderr are both drained all along: a stream left unread fills
// the window (login noise lands on stderr) and, in libssh2 1.10, its packets
// pile up inside libssh2.
//
// Memory: the caller's buffer (one write, or one read) and whatever libssh2
// holds, bounded by the channel window. Stalls (nothing moved in the round's
// direction for a while) are measured here and reported by the workload.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "events.capnp.h"
#include "session_agent/ssh/channel.h"
#include "session_agent/workloads/transfer_data.h"

namespace sshsoak::agent {

// A finished round: what the two ends said.
struct RoundResult {
  wire::TransferDirection direction = wire::TransferDirection::UP;
  uint32_t round = 0;
  uint64_t bytes = 0;           // sent (up) or received (down)
  uint64_t expectedBytes = 0;   // the round's size
  int64_t ns = 0;               // the open request to the remote's EOF (its checksum is in)
  int64_t cpuNs = 0;            // the agent's CPU time over the same span
  std::string localSha256;      // of what the agent sent or received
  std::string remoteSha256;     // "" if the remote printed none
  int64_t stalledMs = 0;        // time spent in stalls
  int exitStatus = -1;          // the remote command's, as libssh2 saw it

  // Both ends agree on every byte.
  bool intact() const { return bytes == expectedBytes && !remoteSha256.empty() && localSha256 == remoteSha256; }
};

// A stall that ended (bytes moved again, or the round ended while stalled).
struct StallReport {
  int64_t stalledMs = 0;
  uint64_t bufferedBytes = 0;  // what the agent held meanwhile
};

class TransferRound {
 public:
  using Status = ChannelStatus;

  struct Plan {
    wire::TransferDirection direction = wire::TransferDirection::UP;
    uint32_t round = 0;
    std::string command;     // "{bytes}" already replaced
    uint64_t bytes = 0;
    uint32_t windowBytes = 0;
    uint32_t stallMs = 0;    // no progress this long: a stall
    uint32_t giveUpMs = 0;   // no progress this long: the round is given up (timedOut)
    uint64_t seed = 0;       // of the upload's data
  };

  // buffer: the write (up) or read (down) buffer, borrowed for the round's
  // life; its size is the size of each write handed to libssh2.
  TransferRound(Plan plan, std::span<char> buffer, int64_t nowMs);
  TransferRound(const TransferRound&) = delete;
  TransferRound& operator=(const TransferRound&) = delete;
  // Abandoned mid-way, its channel is left to libssh2_session_free (see
  // ~Channel).
  ~TransferRound() = default;

  // Advances as far as it goes without blocking, or until this turn's
  // budget of bytes is moved; progressed is set when a byte moved or a
  // state changed.
  Status step(LIBSSH2_SESSION* session, int64_t nowMs, bool& progressed);
  // A loop turn begins: a fresh budget. On a link faster than the agent a
  // write never blocks and a read always finds data, and the loop steps a
  // workload for as long as it progresses: without a budget, a round would
  // keep the loop from its commands (shutdown, drop) until it ended.
  void beginTurn() { turnBudget_ = TURN_BUDGET_BYTES; }
  // This turn's budget is spent: the loop should look at its commands and
  // come back at once.
  bool yielded() const { return turnBudget_ == 0; }
  static constexpr uint64_t TURN_BUDGET_BYTES = 8u << 20;

  // Time passed (the workload's afterWait): marks a stall that began.
  void checkStall(int64_t nowMs);
  // No progress for giveUpMs: the workload gives the round up.
  bool timedOut(int64_t nowMs) const { return nowMs >= lastProgressMs_ + plan_.giveUpMs; }
  // When the round must be looked at again though the socket stays quiet:
  // the stall's start, then the give-up time.
  int64_t nextDeadlineMs() const;
  // A stall that ended since the last call (once each).
  std::optional<StallReport> takeEndedStall();
  // The round ends while stalled (given up): the stall so far, if any.
  std::optional<StallReport> endStall(int64_t nowMs);

  // After Status::Done.
  const RoundResult& result() const { return result_; }
  // After Status::Failed.
  const SshError& failure() const { return failure_; }
  const Plan& plan() const { return plan_; }
  // Data for this channel already inside libssh2 (see Channel).
  bool hasBufferedData() const;
  // Gives the channel up at once (shutdown), never waiting.
  void closeNow() { channel_.closeNow(); }
  // After a failure or a give-up: one try at closing and freeing the
  // channel (libssh2 sends EOF and close, waits for the server's close,
  // drops the channel's unread data). True once there is nothing left to
  // do (freed, never opened, or the close failed: the session's free takes
  // it then).
  bool closeStep() { return !channel_.isOpen() || channel_.free() != LIBSSH2_ERROR_EAGAIN; }

 private:
  enum class State { Open, Exec, Upload, SendEof, Receive, AwaitClosed, Close, Free, Done };

  bool up() const { return plan_.direction == wire::TransferDirection::UP; }
  Status fail(SshError error);
  Status failCall(const std::string& what, int rc);
  // The data direction moved (bytes, or the remote's EOF): ends a stall.
  void moved(int64_t nowMs);
  // A state changed (also the round's progress).
  void advanced(State next, int64_t nowMs, bool& progressed);
  // Reads stdout and stderr until libssh2 has nothing more (down: or the
  // budget is spent); false on error (recorded).
  bool drain(int64_t nowMs, bool& progressed);
  // up: hands libssh2 the round's bytes until it would block, the budget is
  // spent, or all are sent (true); false on error (recorded).
  bool upload(int64_t nowMs, bool& progressed, bool& allSent);
  bool remoteEof() const { return libssh2_channel_eof(channel_.get()) != 0; }
  void finishTiming(int64_t nowMs);
  uint64_t heldBytes() const { return up() ? pendingLength_ - pendingOffset_ : 0; }

  Plan plan_;
  std::span<char> buffer_;
  State state_ = State::Open;
  Channel channel_;
  SshError failure_;
  bool failed_ = false;

  Sha256 sha_;
  PseudoRandomBytes data_;
  HexWordScanner remoteHash_;  // stdout (up) or stderr (down)
  uint64_t generated_ = 0;     // up: bytes generated and hashed
  size_t pendingOffset_ = 0;   // up: buffer_[offset, length) not yet taken by libssh2
  size_t pendingLength_ = 0;
  uint64_t moved_ = 0;         // sent or received
  uint64_t turnBudget_ = TURN_BUDGET_BYTES;
  std::string stderrTail_;     // up: the end of stderr, for an error message
  uint64_t heldAtStall_ = 0;

  int64_t startNs_;
  int64_t startCpuNs_;
  int64_t lastProgressMs_;     // anything at all (a state change, a byte either way)
  int64_t lastMovedMs_;        // the data direction only
  bool dataPhase_ = false;     // stalls count only while data should flow
  std::optional<int64_t> stallSinceMs_;
  std::optional<StallReport> endedStall_;
  int64_t stalledMs_ = 0;
  RoundResult result_;
};

}  // namespace sshsoak::agent
