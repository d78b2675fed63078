// The PTY workload: one long-lived channel with a pseudo-terminal running a
// remote loop that prints a burst of lines (as --intensity says), then
// sleeps, forever. It stays open beside the exec polls for the whole
// session, as a terminal would, so the two are multiplexed on one
// connection for real. Bursts are framed by marker lines, and each becomes
// one pty_cycle event (bytes, lines, ms), not one event per line.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "session_agent/ssh/channel.h"

namespace sshsoak::agent {

struct PtyCycleResult {
  uint32_t cycle = 0;
  uint64_t bytes = 0;  // of the burst's lines, as received (CR LF included)
  uint32_t lines = 0;
  uint32_t ms = 0;
};

// The remote command for an intensity and pause; exposed for tests.
std::string ptyCommand(wire::Intensity intensity, uint32_t pauseMs);
uint32_t expectedPtyLines(wire::Intensity intensity);

// Splits the PTY byte stream into cycles. Pure: fed bytes and a clock.
class PtyCycleParser {
 public:
  // Returns the cycles completed by these bytes.
  std::vector<PtyCycleResult> feed(const char* data, size_t len, int64_t nowMs);

 private:
  void line(std::string_view text, int64_t nowMs, std::vector<PtyCycleResult>& out);
  std::string partial_;
  bool inCycle_ = false;
  PtyCycleResult current_;
  int64_t startMs_ = 0;
};

class PtyStream {
 public:
  // Never Done: the stream runs until it fails or is closed.
  using Status = ChannelStatus;

  PtyStream(wire::Intensity intensity, uint32_t pauseMs) : intensity_(intensity), pauseMs_(pauseMs) {}
  PtyStream(const PtyStream&) = delete;
  PtyStream& operator=(const PtyStream&) = delete;
  // Dropped without close() (the session was lost), its channel is left to
  // libssh2_session_free (see ~Channel).
  ~PtyStream() = default;

  // Advances without blocking; appends completed cycles to `cycles`.
  Status step(LIBSSH2_SESSION* session, int64_t nowMs, bool& progressed, std::vector<PtyCycleResult>& cycles);
  bool streaming() const { return state_ == State::Streaming && !channel_.failed(); }
  // Data for this channel already inside libssh2 (see Channel).
  bool hasBufferedData() const { return streaming() && channel_.hasBufferedData(); }
  // After Status::Failed: what failed, with libssh2's words and code.
  const SshError& failure() const { return channel_.failure(); }
  // Sends the channel close, once, best effort, without waiting.
  void close() { channel_.closeNow(); }

 private:
  // Once the channel failed, step() answers Failed whatever the state.
  enum class State { Open, RequestPty, Exec, Streaming };

  wire::Intensity intensity_;
  uint32_t pauseMs_;
  State state_ = State::Open;
  Channel channel_;
  PtyCycleParser parser_;
};

}  // namespace sshsoak::agent
