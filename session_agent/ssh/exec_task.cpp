#include "session_agent/ssh/exec_task.h"

#include <algorithm>

namespace sshsoak::agent {

ExecTask::Status ExecTask::fail(const std::string& what, int rc) {
  channel_.fail(what, rc);
  state_ = State::Failed;
  return Status::Failed;
}

ExecTask::Status ExecTask::step(LIBSSH2_SESSION* session, bool& progressed) {
  for (;;) {
    switch (state_) {
      case State::Open: {
        int rc = channel_.open(session);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail("cannot open an exec channel", rc);
        progressed = true;
        state_ = State::Exec;
        break;
      }
      case State::Exec: {
        int rc = libssh2_channel_exec(channel_.get(), command_.c_str());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail("exec '" + command_ + "' refused", rc);
        progressed = true;
        state_ = State::Read;
        break;
      }
      case State::Read: {
        bool wouldBlock = false;
        int rc = channel_.read(
            0,
            [&](const char* data, size_t n) {
              size_t room = maxOutputBytes_ - std::min(maxOutputBytes_, stdout_.size());
              stdout_.append(data, std::min(room, n));
            },
            progressed);
        if (rc == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
        else if (rc < 0) return fail("reading the output of '" + command_ + "'", rc);
        // stderr must be drained too, or its window fills and the server
        // stops (login-shell noise such as pyenv's lands there).
        rc = channel_.read(1, [&](const char*, size_t n) { stderrBytes_ += n; }, progressed);
        if (rc == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
        else if (rc < 0) return fail("reading the errors of '" + command_ + "'", rc);
        if (!libssh2_channel_eof(channel_.get())) {
          if (wouldBlock) return Status::Running;
          continue;
        }
        progressed = true;
        state_ = State::Close;
        break;
      }
      case State::Close: {
        int rc = libssh2_channel_close(channel_.get());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail("closing the channel of '" + command_ + "'", rc);
        progressed = true;
        state_ = State::WaitClosed;
        break;
      }
      case State::WaitClosed: {
        // The exit status arrives before the server's close; wait for it.
        int rc = libssh2_channel_wait_closed(channel_.get());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail("closing the channel of '" + command_ + "'", rc);
        exitStatus_ = libssh2_channel_get_exit_status(channel_.get());
        progressed = true;
        state_ = State::Free;
        break;
      }
      case State::Free: {
        if (channel_.free() == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        progressed = true;
        state_ = State::Done;
        return Status::Done;
      }
      case State::Done:
        return Status::Done;
      case State::Failed:
        return Status::Failed;
    }
  }
}

}  // namespace sshsoak::agent
