#include "session_agent/workloads/pty_stream.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "shared/clock.h"

namespace sshsoak::agent {

namespace {

constexpr std::string_view BEGIN_MARK = "@@sshsoak-begin ";
constexpr std::string_view END_MARK = "@@sshsoak-end ";

}  // namespace

uint32_t expectedPtyLines(wire::Intensity intensity) {
  switch (intensity) {
    case wire::Intensity::LOW: return 5;
    case wire::Intensity::MEDIUM: return 20;
    case wire::Intensity::HIGH: return 200;
  }
  return 20;
}

uint64_t expectedPtyBytes(wire::Intensity intensity, uint32_t pauseMs, uint32_t windowMs) {
  // "sshsoak pty line N\r\n" is ~22 bytes, "y\r\n" 3; two marks ~64.
  uint64_t lineBytes = intensity == wire::Intensity::HIGH ? 3 : 22;
  uint64_t perCycle = expectedPtyLines(intensity) * lineBytes + 64;
  uint64_t cycles = windowMs / std::max<uint32_t>(pauseMs, 10) + 1;
  return perCycle * cycles;
}

std::string ptyTerminalModes() {
  // RFC 4254 8 opcodes.
  constexpr uint8_t TTY_OP_END = 0, VERASE = 3, ICANON = 51, ECHO = 53, ECHOE = 54;
  std::string modes;
  auto put = [&](uint8_t opcode, uint32_t value) {
    modes.push_back(static_cast<char>(opcode));
    for (int shift = 24; shift >= 0; shift -= 8) modes.push_back(static_cast<char>((value >> shift) & 0xff));
  };
  put(VERASE, static_cast<uint8_t>(ECHO_ERASE));
  put(ICANON, 1);
  put(ECHO, 1);
  put(ECHOE, 1);
  modes.push_back(static_cast<char>(TTY_OP_END));
  return modes;
}

std::string ptyCommand(wire::Intensity intensity, uint32_t pauseMs) {
  std::string burst;
  switch (intensity) {
    case wire::Intensity::LOW:
    case wire::Intensity::MEDIUM:
      burst = "i=0; while [ $i -lt " + std::to_string(expectedPtyLines(intensity)) +
              " ]; do i=$((i+1)); echo \"sshsoak pty line $i\" || exit; done";
      break;
    case wire::Intensity::HIGH:
      burst = "yes | head -n 200";
      break;
  }
  char pause[32];
  std::snprintf(pause, sizeof pause, "%u.%03u", pauseMs / 1000, pauseMs % 1000);
  // POSIX sh, so it runs under any login shell; `exec` drops the extra
  // shell level. The loop dies with the channel: SIGHUP from sshd, and if
  // that never comes (a shell that ignores it, a hangup lost with the
  // session) the first echo into the closed terminal fails and `|| exit`
  // ends it, rather than leaving a remote loop behind every lost session.
  return "exec sh -c 'n=0; while :; do n=$((n+1)); echo \"" + std::string(BEGIN_MARK) + "$n\" || exit; " + burst +
         "; echo \"" + std::string(END_MARK) + "$n\" || exit; sleep " + pause + "; done'";
}

std::vector<PtyCycleResult> PtyCycleParser::feed(const char* data, size_t len, int64_t nowMs, int64_t nowUs) {
  std::vector<PtyCycleResult> out;
  feedUs_ = nowUs;
  for (size_t i = 0; i < len; ++i) {
    char c = data[i];
    // The probe's echo can land anywhere, even inside a line if the loop
    // was printing (a pause of 0): it is never part of the output.
    if (c == ECHO_PROBE) {
      echoed(nowUs);
      continue;
    }
    // The erase's echo "\b \b", possibly split across reads. The tty
    // writes it in one go, so other output does not come between.
    if (eraseSeen_ == 1 && c == ' ') {
      eraseSeen_ = 2;
      continue;
    }
    if (eraseSeen_ == 2 && c == '\b') {
      eraseSeen_ = 0;
      continue;
    }
    if (eraseSeen_ != 0) flushErase();
    if (c == '\b') {
      eraseSeen_ = 1;
      continue;
    }
    byte(c, nowMs, out);
  }
  return out;
}

void PtyCycleParser::byte(char c, int64_t nowMs, std::vector<PtyCycleResult>& out) {
  if (c == '\n') {
    line(partial_, nowMs, out);
    partial_.clear();
    return;
  }
  partial_.push_back(c);
  // A line without a newline this long is not ours; do not grow forever.
  if (partial_.size() > 64 * 1024) partial_.clear();
}

void PtyCycleParser::flushErase() {
  partial_.push_back('\b');
  if (eraseSeen_ == 2) partial_.push_back(' ');
  eraseSeen_ = 0;
}

void PtyCycleParser::echoed(int64_t nowUs) {
  if (probeSentUs_ < 0) {
    ++strayEchoes_;
    return;
  }
  int64_t us = std::clamp<int64_t>(nowUs - probeSentUs_, 0, UINT32_MAX);
  probeSentUs_ = -1;
  if (echoUs_.size() < MAX_ECHO_SAMPLES_PER_CYCLE) echoUs_.push_back(static_cast<uint32_t>(us));
}

void PtyCycleParser::line(std::string_view text, int64_t nowMs, std::vector<PtyCycleResult>& out) {
  size_t rawBytes = text.size() + 1;  // with its newline
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);  // the PTY's ONLCR
  auto number = [](std::string_view s) {
    uint32_t n = 0;
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
  };
  if (text.substr(0, BEGIN_MARK.size()) == BEGIN_MARK) {
    inCycle_ = true;
    current_ = PtyCycleResult{};  // echo samples stay in echoUs_ until the end
    current_.cycle = number(text.substr(BEGIN_MARK.size()));
    startMs_ = nowMs;
    startUs_ = feedUs_;
    return;
  }
  if (!inCycle_) return;  // before the first marker: login noise
  if (text.substr(0, END_MARK.size()) == END_MARK) {
    current_.ms = static_cast<uint32_t>(nowMs - startMs_);
    current_.us = static_cast<uint64_t>(std::max<int64_t>(feedUs_ - startUs_, 0));
    current_.echoUs = std::move(echoUs_);
    echoUs_.clear();
    out.push_back(std::move(current_));
    inCycle_ = false;
    return;
  }
  ++current_.lines;
  current_.bytes += rawBytes;
}

PtyStream::Status PtyStream::step(LIBSSH2_SESSION* session, int64_t nowMs, bool& progressed,
                                  std::vector<PtyCycleResult>& cycles) {
  if (channel_.failed()) return Status::Failed;
  for (;;) {
    switch (state_) {
      case State::Open:
        if (!channel_.advance(channel_.open(session), "cannot open the PTY channel", progressed)) {
          return channel_.status();
        }
        state_ = State::RequestPty;
        break;
      case State::RequestPty: {
        static const std::string modes = ptyTerminalModes();
        if (!channel_.advance(libssh2_channel_request_pty_ex(channel_.get(), "xterm", 5, modes.data(),
                                                             static_cast<unsigned>(modes.size()), 80, 24, 0, 0),
                              "the server refused a PTY", progressed)) {
          return channel_.status();
        }
        state_ = State::Exec;
        break;
      }
      case State::Exec:
        if (!channel_.advance(channel_.exec(ptyCommand(intensity_, pauseMs_)), "the server refused the PTY command",
                              progressed)) {
          return channel_.status();
        }
        state_ = State::Streaming;
        break;
      case State::Streaming: {
        if (floodWindowStartMs_ < 0 || nowMs - floodWindowStartMs_ >= FLOOD_WINDOW_MS) {
          floodWindowStartMs_ = nowMs;
          floodWindowBytes_ = 0;
          floodReported_ = false;
        }
        size_t readBytes = 0;
        int rc = channel_.read(
            0,
            [&](const char* data, size_t n) {
              readBytes += n;
              // A fresh clock per chunk: echoes are a few hundred µs on
              // loopback, below the loop's ms stamp.
              auto done = parser_.feed(data, n, nowMs, monoNs() / 1000);
              for (auto& c : done) {
                schedule_.cycleEnded(nowMs, pauseMs_);
                if (skippingBacklog_) {
                  ++skippedCycles_;
                } else {
                  cycles.push_back(std::move(c));
                }
              }
            },
            progressed, PTY_READ_BUDGET_BYTES);
        if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) return channel_.fail("reading the PTY", rc);
        // Ran dry within the budget: what comes next is live again.
        if (readBytes < PTY_READ_BUDGET_BYTES) skippingBacklog_ = false;
        floodWindowBytes_ += readBytes;
        uint64_t expected = expectedPtyBytes(intensity_, pauseMs_, FLOOD_WINDOW_MS);
        if (!floodReported_ && floodWindowBytes_ > std::max(FLOOD_FACTOR * expected, FLOOD_FLOOR_BYTES)) {
          floodReported_ = true;
          flood_ = PtyFloodReport{floodWindowBytes_, expected,
                                  static_cast<uint32_t>(std::max<int64_t>(nowMs - floodWindowStartMs_, 1))};
        }
        // A PTY merges stderr, but drain the stream anyway; its errors
        // show on stdout first.
        (void)channel_.read(1, [](const char*, size_t) {}, progressed);
        if (libssh2_channel_eof(channel_.get())) {
          return channel_.fail("the remote PTY loop ended (exit status " +
                                   std::to_string(libssh2_channel_get_exit_status(channel_.get())) + ")",
                               0);
        }
        return typeProbe(nowMs, progressed);
      }
    }
  }
}

PtyStream::Status PtyStream::typeProbe(int64_t nowMs, bool& progressed) {
  if (probeWritten_ == PROBE_BYTES) {
    if (nextProbeMs() > nowMs) return Status::Running;
    // The key is pressed now; a write libssh2 has to finish later is part
    // of the lag the user sees.
    parser_.probeSent(monoNs() / 1000);
    schedule_.typed();
    probeWritten_ = 0;
  }
  static constexpr char PROBE[PROBE_BYTES] = {ECHO_PROBE, ECHO_ERASE};
  while (probeWritten_ < PROBE_BYTES) {
    // libssh2 1.10: EAGAIN means "call again with the same data"; 0 means
    // no window yet.
    ssize_t n = libssh2_channel_write(channel_.get(), PROBE + probeWritten_, PROBE_BYTES - probeWritten_);
    if (n == LIBSSH2_ERROR_EAGAIN || n == 0) return Status::Running;
    if (n < 0) return channel_.fail("typing a key into the PTY", static_cast<int>(n));
    probeWritten_ += static_cast<size_t>(n);
    // libssh2_channel_write reads the socket first: data for any channel
    // may now wait inside libssh2, so the loop must step again.
    progressed = true;
  }
  return Status::Running;
}

int64_t PtyStream::nextProbeMs() const {
  if (!streaming() || !probing_ || parser_.probeInFlight()) return NO_WAKE_MS;
  return schedule_.dueMs();
}

std::optional<int64_t> PtyStream::probeSentMs() const {
  if (!probing_ || !parser_.probeInFlight()) return std::nullopt;
  // From the µs clock to the loop's ms one (both monoNs).
  return parser_.probeSentUs() / 1000;
}

void PtyStream::skipBacklog() {
  skippingBacklog_ = true;
  parser_.forgetProbe();
}

std::optional<PtyFloodReport> PtyStream::takeFlood() {
  auto f = flood_;
  flood_.reset();
  return f;
}

void PtyStream::stopProbing() {
  probing_ = false;
  parser_.forgetProbe();
}

}  // namespace sshsoak::agent
