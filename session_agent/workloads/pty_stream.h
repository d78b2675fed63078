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
  enum class Status { Running, Failed };

  PtyStream(wire::Intensity intensity, uint32_t pauseMs) : intensity_(intensity), pauseMs_(pauseMs) {}
  PtyStream(const PtyStream&) = delete;
  PtyStream& operator=(const PtyStream&) = delete;

  // Advances without blocking; appends completed cycles to `cycles`.
  Status step(LIBSSH2_SESSION* session, int64_t nowMs, bool& progressed, std::vector<PtyCycleResult>& cycles);
  bool streaming() const { return state_ == State::Streaming; }
  // libssh2 reads whatever the socket holds into every channel's buffer, so
  // data for this channel can be waiting inside libssh2 while the socket is
  // quiet: the loop must not sleep in poll() then. Only > 0 counts: 1.10
  // answers an error when a keepalive reply sits in its packet list.
  bool hasBufferedData() const {
    return state_ == State::Streaming && channel_ != nullptr && (libssh2_poll_channel_read(channel_, 0) > 0 || libssh2_poll_channel_read(channel_, 1) > 0);
  }
  const std::string& error() const { return error_; }
  int libssh2Error() const { return libssh2Error_; }
  // Sends the channel close, once, best effort, without waiting.
  void close();

 private:
  enum class State { Open, RequestPty, Exec, Streaming, Failed };
  Status fail(LIBSSH2_SESSION* session, const std::string& what, int rc);

  wire::Intensity intensity_;
  uint32_t pauseMs_;
  State state_ = State::Open;
  LIBSSH2_CHANNEL* channel_ = nullptr;
  PtyCycleParser parser_;
  std::string error_;
  int libssh2Error_ = 0;
};

}  // namespace sshsoak::agent
