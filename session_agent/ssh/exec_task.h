// One remote command on its own exec channel, as a non-blocking state
// machine: open, exec, read stdout and stderr to EOF, close, free. The agent
// steps it from its loop; it never waits itself.
#pragma once

#include <libssh2.h>

#include <string>

#include "session_agent/ssh/channel.h"

namespace sshsoak::agent {

class ExecTask {
 public:
  using Status = ChannelStatus;
  // At most this much of each stream per step(): a command whose output
  // never stops (yes, cat /dev/zero) returns to its caller between reads,
  // so the caller's deadlines and commands still hold.
  static constexpr size_t READ_BUDGET_BYTES = 256 * 1024;

  explicit ExecTask(std::string command, size_t maxOutputBytes = 1u << 20)
      : command_(std::move(command)), maxOutputBytes_(maxOutputBytes) {}
  ExecTask(const ExecTask&) = delete;
  ExecTask& operator=(const ExecTask&) = delete;
  // Abandoned mid-way, its channel is left to libssh2_session_free (see
  // ~Channel).
  ~ExecTask() = default;

  // Advances as far as possible without blocking; sets progressed when any
  // byte moved or a state changed.
  Status step(LIBSSH2_SESSION* session, bool& progressed);

  // The server confirmed the channel (it is past opening).
  bool channelOpen() const { return state_ != State::Open && !channel_.failed(); }
  const std::string& command() const { return command_; }
  const std::string& output() const { return stdout_; }
  size_t stderrBytes() const { return stderrBytes_; }
  // The command's exit status, read once the server closed the channel: set
  // only on the way to Status::Done. -1 while running and after
  // Status::Failed (never reached), so -1 means "no status", not a code.
  // After Done it is libssh2's answer, which is 0 also when the server sent
  // no exit-status (a command killed by a signal sends exit-signal instead).
  int exitStatus() const { return exitStatus_; }
  // Data for this channel already inside libssh2 (see Channel).
  bool hasBufferedData() const {
    return state_ == State::Read && !channel_.failed() && channel_.hasBufferedData();
  }
  // After Status::Failed: what failed, with libssh2's words and code.
  const SshError& failure() const { return channel_.failure(); }
  const std::string& error() const { return channel_.failure().message; }
  int libssh2Error() const { return channel_.failure().libssh2Error; }

 private:
  // Once the channel failed, step() answers Failed whatever the state.
  enum class State { Open, Exec, Read, Close, WaitClosed, Free, Done };

  std::string command_;
  size_t maxOutputBytes_;
  State state_ = State::Open;
  Channel channel_;
  std::string stdout_;
  size_t stderrBytes_ = 0;
  int exitStatus_ = -1;
};

}  // namespace sshsoak::agent
