// The PTY workload: one long-lived channel with a pseudo-terminal running a
// remote loop that prints a burst of lines (as --intensity says), then
// sleeps, forever. It stays open beside the exec polls for the whole
// session, as a terminal would, so the two are multiplexed on one
// connection for real. Bursts are framed by marker lines, and each becomes
// one pty_cycle event (bytes, lines, ms), not one event per line.
//
// Keystroke echo: in the pause after each burst the stream types
// ECHO_PROBES_PER_CYCLE keys, one at a time, and times each until the
// remote tty echoes it back (what a terminal user feels as lag). Nothing
// on the remote side reads stdin, so the tty's canonical line buffer
// (4 KB) would fill with the keys: each probe ECHO_PROBE is followed by the
// erase character (VERASE, DEL by default), which takes it out again and
// echoes "\b \b". The parser removes both echoes from the byte stream, so
// a cycle's bytes and lines are the loop's output alone. ECHO_PROBE never
// appears in that output (markers, "sshsoak pty line N", `yes`'s "y").
// A probe's sample is taken whenever its echo comes back, however late, and
// is reported with the next pty_cycle: dropping slow echoes would hide the
// very stalls the figure is for. The loop itself never waits for an echo.
#pragma once

#include <libssh2.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "session_agent/ssh/channel.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

// The key typed to measure echo, and what erases it again (the tty's
// default VERASE: sshd gets no terminal modes from us).
constexpr char ECHO_PROBE = '~';
constexpr char ECHO_ERASE = '\x7f';
constexpr uint32_t ECHO_PROBES_PER_CYCLE = 3;
// Samples carried by one pty_cycle at most; more are not kept (with one
// probe in flight at a time and three per pause, only a stream of cycles
// far apart could reach it).
constexpr size_t MAX_ECHO_SAMPLES_PER_CYCLE = 16;

// Output far beyond what the workload's intensity makes (issue 15): the
// bytes of one window, against what the intensity makes in it.
struct PtyFloodReport {
  uint64_t bytes = 0;
  uint64_t expectedBytes = 0;
  uint32_t windowMs = 0;
};

// What the remote loop prints per window at most, for the flood watch: the
// intensity's lines per cycle and a cycle per pause (or per 10 ms at a pause
// of 0), marks included.
uint64_t expectedPtyBytes(wire::Intensity intensity, uint32_t pauseMs, uint32_t windowMs);

// A flood is more than FLOOD_FACTOR x the expected bytes in a window, and at
// least FLOOD_FLOOR_BYTES; reported once per window at most.
constexpr uint32_t FLOOD_WINDOW_MS = 1000;
constexpr uint64_t FLOOD_FACTOR = 10;
constexpr uint64_t FLOOD_FLOOR_BYTES = 256 * 1024;
// Bytes read from the PTY per step: a stream that never runs dry (a flood)
// still lets the loop turn (commands, deadlines, heartbeat).
constexpr size_t PTY_READ_BUDGET_BYTES = 256 * 1024;

struct PtyCycleResult {
  uint32_t cycle = 0;
  uint64_t bytes = 0;  // of the burst's lines, as received (CR LF included)
  uint32_t lines = 0;
  uint32_t ms = 0;
  uint64_t us = 0;     // the same span on a µs clock read per chunk (the rollup's "cycle" histogram)
  // Keystroke echo samples (µs) that came back since the previous cycle.
  std::vector<uint32_t> echoUs;
};

// The terminal modes of the pty-req (RFC 4254 8: opcode, uint32 value,
// TTY_OP_END): canonical input with echo and erase echo, and DEL as the
// erase character, so that the echo probe behaves the same on any server,
// not only where these are the kernel's defaults (Linux). Exposed for tests.
std::string ptyTerminalModes();

// The remote command for an intensity and pause; exposed for tests.
std::string ptyCommand(wire::Intensity intensity, uint32_t pauseMs);
uint32_t expectedPtyLines(wire::Intensity intensity);

// Splits the PTY byte stream into cycles and takes the keystroke echoes
// out of it. Pure: fed bytes and a clock.
class PtyCycleParser {
 public:
  // Returns the cycles completed by these bytes; nowUs (same clock as
  // probeSent's) stamps the echoes among them.
  std::vector<PtyCycleResult> feed(const char* data, size_t len, int64_t nowMs, int64_t nowUs);
  std::vector<PtyCycleResult> feed(const char* data, size_t len, int64_t nowMs) {
    return feed(data, len, nowMs, nowMs * 1000);
  }

  // A probe was typed at sentUs; its echo, the next ECHO_PROBE in the
  // stream, becomes a sample. One probe in flight at a time.
  void probeSent(int64_t sentUs) { probeSentUs_ = sentUs; }
  bool probeInFlight() const { return probeSentUs_ >= 0; }
  int64_t probeSentUs() const { return probeSentUs_; }
  // Gives up on the probe in flight: its echo, if it ever comes, is no
  // sample (counted in strayEchoes()).
  void forgetProbe() { probeSentUs_ = -1; }
  // ECHO_PROBEs that came back with no probe in flight.
  uint64_t strayEchoes() const { return strayEchoes_; }

 private:
  void line(std::string_view text, int64_t nowMs, std::vector<PtyCycleResult>& out);
  void echoed(int64_t nowUs);
  // A "\b" or "\b " that turned out not to be an erase echo is data.
  void flushErase();
  // One byte of the loop's own output.
  void byte(char c, int64_t nowMs, std::vector<PtyCycleResult>& out);

  std::string partial_;
  bool inCycle_ = false;
  PtyCycleResult current_;
  int64_t startMs_ = 0;
  int64_t startUs_ = 0;
  int64_t feedUs_ = 0;  // the µs clock of the chunk being fed
  int64_t probeSentUs_ = -1;
  // Samples since the last cycle's end, moved into the next cycle.
  std::vector<uint32_t> echoUs_;
  uint64_t strayEchoes_ = 0;
  // How much of an erase echo "\b \b" has been seen (0: none).
  int eraseSeen_ = 0;
};

// When to type the next probe: ECHO_PROBES_PER_CYCLE of them spread evenly
// over the remote loop's pause after a burst (at 1/4, 2/4, 3/4 of it), so
// that no burst output runs at the same time. Pure.
class EchoProbeSchedule {
 public:
  // A burst ended at nowMs; the remote loop now sleeps pauseMs. Probes of
  // the previous pause not typed yet are dropped.
  void cycleEnded(int64_t nowMs, uint32_t pauseMs) {
    endMs_ = nowMs;
    pauseMs_ = pauseMs;
    next_ = 0;
  }
  // When the next probe is due; NO_WAKE_MS when none is left.
  int64_t dueMs() const {
    if (next_ >= ECHO_PROBES_PER_CYCLE) return NO_WAKE_MS;
    return endMs_ + int64_t{pauseMs_} * (next_ + 1) / (ECHO_PROBES_PER_CYCLE + 1);
  }
  void typed() { ++next_; }

 private:
  int64_t endMs_ = 0;
  uint32_t pauseMs_ = 0;
  uint32_t next_ = ECHO_PROBES_PER_CYCLE;  // nothing before the first burst
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

  // Keystroke echo. A probe's bytes are being written (libssh2 was
  // blocked): the loop must watch for output room.
  bool probeWriting() const { return streaming() && probeWritten_ < PROBE_BYTES; }
  // When the next probe is due (monoMs clock), NO_WAKE_MS if none.
  int64_t nextProbeMs() const;
  // The probe in flight was typed at this monoMs time; nullopt if none.
  std::optional<int64_t> probeSentMs() const;
  // No more probes on this channel: the one in flight never came back
  // (the remote tty may not echo at all).
  void stopProbing();
  // The agent did not run for a while (stopped, stalled): what the remote
  // printed meanwhile is drained but not counted as cycles (their timings
  // would be the stop's, not the server's), and the probe in flight is
  // forgotten. Live again once the stream has run dry.
  void skipBacklog();
  uint64_t skippedCycles() const { return skippedCycles_; }
  // A flood seen since the last call (at most one per window).
  std::optional<PtyFloodReport> takeFlood();

 private:
  // Once the channel failed, step() answers Failed whatever the state.
  enum class State { Open, RequestPty, Exec, Streaming };

  // Types the due probe, or goes on with one half written.
  Status typeProbe(int64_t nowMs, bool& progressed);

  static constexpr size_t PROBE_BYTES = 2;  // ECHO_PROBE, ECHO_ERASE

  wire::Intensity intensity_;
  uint32_t pauseMs_;
  State state_ = State::Open;
  Channel channel_;
  PtyCycleParser parser_;
  EchoProbeSchedule schedule_;
  bool probing_ = true;
  size_t probeWritten_ = PROBE_BYTES;  // < PROBE_BYTES: a write in progress
  bool skippingBacklog_ = false;
  uint64_t skippedCycles_ = 0;
  // The flood watch: bytes in the current window, drained without storing.
  int64_t floodWindowStartMs_ = -1;
  uint64_t floodWindowBytes_ = 0;
  bool floodReported_ = false;  // in this window
  std::optional<PtyFloodReport> flood_;
};

}  // namespace sshsoak::agent
