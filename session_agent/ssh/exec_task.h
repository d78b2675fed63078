// One remote command on its own exec channel, as a non-blocking state
// machine: open, exec, read stdout and stderr to EOF, close, free. The agent
// steps it from its loop; it never waits itself.
#pragma once

#include <libssh2.h>

#include <string>

namespace sshsoak::agent {

class ExecTask {
 public:
  enum class Status { Running, Done, Failed };

  explicit ExecTask(std::string command, size_t maxOutputBytes = 1u << 20)
      : command_(std::move(command)), maxOutputBytes_(maxOutputBytes) {}
  ExecTask(const ExecTask&) = delete;
  ExecTask& operator=(const ExecTask&) = delete;
  // If the task is abandoned mid-way, its channel is left to
  // libssh2_session_free, which frees every channel of the session.
  ~ExecTask() = default;

  // Advances as far as possible without blocking; sets progressed when any
  // byte moved or a state changed.
  Status step(LIBSSH2_SESSION* session, bool& progressed);

  const std::string& command() const { return command_; }
  const std::string& output() const { return stdout_; }
  size_t stderrBytes() const { return stderrBytes_; }
  int exitStatus() const { return exitStatus_; }
  // libssh2 reads whatever the socket holds into every channel's buffer, so
  // data for this channel can be waiting inside libssh2 while the socket is
  // quiet: the loop must not sleep in poll() then. Only > 0 counts: 1.10
  // answers an error when a keepalive reply sits in its packet list.
  bool hasBufferedData() const {
    return state_ == State::Read && channel_ != nullptr && (libssh2_poll_channel_read(channel_, 0) > 0 || libssh2_poll_channel_read(channel_, 1) > 0);
  }
  const std::string& error() const { return error_; }
  int libssh2Error() const { return libssh2Error_; }

 private:
  enum class State { Open, Exec, Read, Close, WaitClosed, Free, Done, Failed };
  Status fail(LIBSSH2_SESSION* session, const std::string& what, int rc);

  std::string command_;
  size_t maxOutputBytes_;
  State state_ = State::Open;
  LIBSSH2_CHANNEL* channel_ = nullptr;
  std::string stdout_;
  size_t stderrBytes_ = 0;
  int exitStatus_ = -1;
  std::string error_;
  int libssh2Error_ = 0;
};

}  // namespace sshsoak::agent
