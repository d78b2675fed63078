// One SSH channel of a connection: a move-only owner of a LIBSSH2_CHANNEL*
// with the few things every user of a channel does the same way (open
// without blocking, drain stdout and stderr, ask libssh2 whether it already
// holds data, record a failure, close without waiting), and the step of a
// non-blocking state machine on it (advance(), status()). ExecTask and
// PtyStream are such state machines.
#pragma once

#include <libssh2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "session_agent/ssh/error.h"

namespace sshsoak::agent {

// Where a state machine on a channel stands after a step: Running (call
// again when the socket is ready), Done, or Failed (see Channel::failure()).
enum class ChannelStatus { Running, Done, Failed };

class Channel {
 public:
  Channel() = default;
  Channel(Channel&& other) noexcept
      : session_(std::exchange(other.session_, nullptr)), channel_(std::exchange(other.channel_, nullptr)),
        failure_(std::move(other.failure_)), failed_(other.failed_) {}
  Channel& operator=(Channel&& other) noexcept {
    if (this != &other) {
      session_ = std::exchange(other.session_, nullptr);
      channel_ = std::exchange(other.channel_, nullptr);
      failure_ = std::move(other.failure_);
      failed_ = other.failed_;
    }
    return *this;
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  // Never blocks, never throws, and makes no libssh2 call: a channel
  // dropped without closeNow() (the session was lost, or a task was
  // abandoned mid-way) stays in the session's list, and
  // libssh2_session_free frees every channel it still holds. Closing here
  // would send on a link that is usually dead or cut already, and after the
  // session is freed the pointer is dangling.
  ~Channel() = default;

  // One try at opening a "session" channel: 0 once open, EAGAIN (call
  // again), or libssh2's error code.
  int open(LIBSSH2_SESSION* session);
  // The same, asking for a receive window of windowBytes instead of
  // libssh2's 2 MiB (what the server may send before we read).
  int open(LIBSSH2_SESSION* session, uint32_t windowBytes);
  bool isOpen() const { return channel_ != nullptr; }
  LIBSSH2_CHANNEL* get() const { return channel_; }
  // One try at running a command on the open channel: 0, EAGAIN or an error.
  int exec(const std::string& command) { return libssh2_channel_exec(channel_, command.c_str()); }

  // The one step of every state on a non-blocking libssh2 call: given the
  // call's code, true once it is done (0: progressed is set, go to the next
  // state); false while it would block (EAGAIN) or when it failed, recorded
  // as fail(what, rc). Either way status() then says what to return.
  bool advance(int rc, const std::string& what, bool& progressed) {
    if (rc == 0) {
      progressed = true;
      return true;
    }
    if (rc != LIBSSH2_ERROR_EAGAIN) fail(what, rc);
    return false;
  }
  // Failed once fail() was called, else Running.
  ChannelStatus status() const { return failed_ ? ChannelStatus::Failed : ChannelStatus::Running; }

  // Reads one stream (0 stdout, 1 stderr) until libssh2 has nothing more,
  // or maxBytes came, passing each chunk to sink(const char*, size_t); sets
  // progressed when any byte came. Returns the last read's code: EAGAIN
  // (would block, or the budget is spent: call again), 0 (nothing more: EOF
  // or empty) or an error code. The budget lets a caller check its
  // deadlines between reads of a stream that never runs dry (`yes` on
  // loopback never leaves the socket empty).
  template <typename Sink>
  int read(int streamId, Sink&& sink, bool& progressed, size_t maxBytes = SIZE_MAX) {
    size_t total = 0;
    for (;;) {
      if (total >= maxBytes) return LIBSSH2_ERROR_EAGAIN;
      ssize_t n = libssh2_channel_read_ex(channel_, streamId, buffer_, sizeof buffer_);
      if (n > 0) {
        progressed = true;
        total += static_cast<size_t>(n);
        sink(buffer_, static_cast<size_t>(n));
        continue;
      }
      return static_cast<int>(n);
    }
  }

  // libssh2 reads whatever the socket holds into every channel's buffer, so
  // data for this channel can be waiting inside libssh2 while the socket is
  // quiet: the loop must not sleep in poll() then. Only > 0 counts: 1.10
  // answers an error when a keepalive reply sits in its packet list.
  bool hasBufferedData() const {
    return channel_ != nullptr &&
           (libssh2_poll_channel_read(channel_, 0) > 0 || libssh2_poll_channel_read(channel_, 1) > 0);
  }

  // Records a failed libssh2 call as "what: libssh2's last error" with its
  // code (category CHANNEL); the channel's state machine is over.
  ChannelStatus fail(const std::string& what, int libssh2Error);
  bool failed() const { return failed_; }
  const SshError& failure() const { return failure_; }

  // Sends the channel close and frees it, one try each, never a wait: if
  // libssh2 cannot finish now, the channel is freed with the session.
  void closeNow() noexcept;
  // After a completed close handshake: frees the channel; EAGAIN to retry.
  int free();

 private:
  LIBSSH2_SESSION* session_ = nullptr;
  LIBSSH2_CHANNEL* channel_ = nullptr;
  SshError failure_;
  bool failed_ = false;
  // Scratch for read(); any size works (libssh2 keeps what does not fit
  // for the next call). 16 KiB, as bench/ssh_client_bench.cpp's copy of
  // this loop.
  char buffer_[16384];
};

}  // namespace sshsoak::agent
