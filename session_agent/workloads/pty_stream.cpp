#include "session_agent/workloads/pty_stream.h"

#include <charconv>
#include <cstdio>

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

std::string ptyCommand(wire::Intensity intensity, uint32_t pauseMs) {
  std::string burst;
  switch (intensity) {
    case wire::Intensity::LOW:
    case wire::Intensity::MEDIUM:
      burst = "i=0; while [ $i -lt " + std::to_string(expectedPtyLines(intensity)) +
              " ]; do i=$((i+1)); echo \"sshsoak pty line $i\"; done";
      break;
    case wire::Intensity::HIGH:
      burst = "yes | head -n 200";
      break;
  }
  char pause[32];
  std::snprintf(pause, sizeof pause, "%u.%03u", pauseMs / 1000, pauseMs % 1000);
  // POSIX sh, so it runs under any login shell; `exec` drops the extra
  // shell level. The loop dies with the channel (SIGHUP from sshd).
  return "exec sh -c 'n=0; while :; do n=$((n+1)); echo \"" + std::string(BEGIN_MARK) + "$n\"; " + burst +
         "; echo \"" + std::string(END_MARK) + "$n\"; sleep " + pause + "; done'";
}

std::vector<PtyCycleResult> PtyCycleParser::feed(const char* data, size_t len, int64_t nowMs) {
  std::vector<PtyCycleResult> out;
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (data[i] != '\n') continue;
    partial_.append(data + start, i - start);
    line(partial_, nowMs, out);
    partial_.clear();
    start = i + 1;
  }
  partial_.append(data + start, len - start);
  // A line without a newline this long is not ours; do not grow forever.
  if (partial_.size() > 64 * 1024) partial_.clear();
  return out;
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
    current_ = PtyCycleResult{};
    current_.cycle = number(text.substr(BEGIN_MARK.size()));
    startMs_ = nowMs;
    return;
  }
  if (!inCycle_) return;  // before the first marker: login noise
  if (text.substr(0, END_MARK.size()) == END_MARK) {
    current_.ms = static_cast<uint32_t>(nowMs - startMs_);
    out.push_back(current_);
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
      case State::RequestPty:
        if (!channel_.advance(libssh2_channel_request_pty_ex(channel_.get(), "xterm", 5, nullptr, 0, 80, 24, 0, 0),
                              "the server refused a PTY", progressed)) {
          return channel_.status();
        }
        state_ = State::Exec;
        break;
      case State::Exec:
        if (!channel_.advance(channel_.exec(ptyCommand(intensity_, pauseMs_)), "the server refused the PTY command",
                              progressed)) {
          return channel_.status();
        }
        state_ = State::Streaming;
        break;
      case State::Streaming: {
        int rc = channel_.read(
            0,
            [&](const char* data, size_t n) {
              auto done = parser_.feed(data, n, nowMs);
              cycles.insert(cycles.end(), done.begin(), done.end());
            },
            progressed);
        if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) return channel_.fail("reading the PTY", rc);
        // A PTY merges stderr, but drain the stream anyway; its errors
        // show on stdout first.
        (void)channel_.read(1, [](const char*, size_t) {}, progressed);
        if (libssh2_channel_eof(channel_.get())) {
          return channel_.fail("the remote PTY loop ended (exit status " +
                                   std::to_string(libssh2_channel_get_exit_status(channel_.get())) + ")",
                               0);
        }
        return Status::Running;
      }
    }
  }
}

}  // namespace sshsoak::agent
