#include "session_agent/ssh/exec_task.h"

#include <algorithm>

namespace sshsoak::agent {

ExecTask::Status ExecTask::step(LIBSSH2_SESSION* session, bool& progressed) {
  if (channel_.failed()) return Status::Failed;
  for (;;) {
    switch (state_) {
      case State::Open:
        if (!channel_.advance(channel_.open(session), "cannot open an exec channel", progressed)) {
          return channel_.status();
        }
        state_ = State::Exec;
        break;
      case State::Exec:
        if (!channel_.advance(channel_.exec(command_), "exec '" + command_ + "' refused", progressed)) {
          return channel_.status();
        }
        state_ = State::Read;
        break;
      case State::Read: {
        bool wouldBlock = false;
        int rc = channel_.read(
            0,
            [&](const char* data, size_t n) {
              size_t room = maxOutputBytes_ - std::min(maxOutputBytes_, stdout_.size());
              stdout_.append(data, std::min(room, n));
            },
            progressed, READ_BUDGET_BYTES);
        if (rc == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
        else if (rc < 0) return channel_.fail("reading the output of '" + command_ + "'", rc);
        // stderr must be drained too, or its window fills and the server
        // stops (login-shell noise such as pyenv's lands there).
        rc = channel_.read(1, [&](const char*, size_t n) { stderrBytes_ += n; }, progressed, READ_BUDGET_BYTES);
        if (rc == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
        else if (rc < 0) return channel_.fail("reading the errors of '" + command_ + "'", rc);
        if (!libssh2_channel_eof(channel_.get())) {
          if (wouldBlock) return Status::Running;
          continue;
        }
        progressed = true;
        state_ = State::Close;
        break;
      }
      case State::Close:
        if (!channel_.advance(libssh2_channel_close(channel_.get()), "closing the channel of '" + command_ + "'",
                              progressed)) {
          return channel_.status();
        }
        state_ = State::WaitClosed;
        break;
      case State::WaitClosed:
        // The exit status arrives before the server's close; wait for it.
        if (!channel_.advance(libssh2_channel_wait_closed(channel_.get()),
                              "closing the channel of '" + command_ + "'", progressed)) {
          return channel_.status();
        }
        exitStatus_ = libssh2_channel_get_exit_status(channel_.get());
        state_ = State::Free;
        break;
      case State::Free: {
        if (channel_.free() == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        progressed = true;
        state_ = State::Done;
        return Status::Done;
      }
      case State::Done:
        return Status::Done;
    }
  }
}

}  // namespace sshsoak::agent
