#include "session_agent/ssh/exec_task.h"

#include "session_agent/ssh/connection.h"

namespace sshsoak::agent {

ExecTask::Status ExecTask::fail(LIBSSH2_SESSION* session, const std::string& what, int rc) {
  error_ = libssh2Failure(session, what);
  libssh2Error_ = rc;
  state_ = State::Failed;
  return Status::Failed;
}

ExecTask::Status ExecTask::step(LIBSSH2_SESSION* session, bool& progressed) {
  for (;;) {
    switch (state_) {
      case State::Open: {
        channel_ = libssh2_channel_open_session(session);
        if (channel_ == nullptr) {
          int rc = libssh2_session_last_errno(session);
          if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
          return fail(session, "cannot open an exec channel", rc);
        }
        progressed = true;
        state_ = State::Exec;
        break;
      }
      case State::Exec: {
        int rc = libssh2_channel_exec(channel_, command_.c_str());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail(session, "exec '" + command_ + "' refused", rc);
        progressed = true;
        state_ = State::Read;
        break;
      }
      case State::Read: {
        char buf[16384];
        bool wouldBlock = false;
        for (;;) {
          ssize_t n = libssh2_channel_read(channel_, buf, sizeof buf);
          if (n > 0) {
            progressed = true;
            size_t room = maxOutputBytes_ - std::min(maxOutputBytes_, stdout_.size());
            stdout_.append(buf, std::min(room, static_cast<size_t>(n)));
            continue;
          }
          if (n == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
          else if (n < 0) return fail(session, "reading the output of '" + command_ + "'", static_cast<int>(n));
          break;
        }
        // stderr must be drained too, or its window fills and the server
        // stops (login-shell noise such as pyenv's lands there).
        for (;;) {
          ssize_t n = libssh2_channel_read_stderr(channel_, buf, sizeof buf);
          if (n > 0) {
            progressed = true;
            stderrBytes_ += static_cast<size_t>(n);
            continue;
          }
          if (n == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
          else if (n < 0) return fail(session, "reading the errors of '" + command_ + "'", static_cast<int>(n));
          break;
        }
        if (!libssh2_channel_eof(channel_)) {
          if (wouldBlock) return Status::Running;
          continue;
        }
        progressed = true;
        state_ = State::Close;
        break;
      }
      case State::Close: {
        int rc = libssh2_channel_close(channel_);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail(session, "closing the channel of '" + command_ + "'", rc);
        progressed = true;
        state_ = State::WaitClosed;
        break;
      }
      case State::WaitClosed: {
        // The exit status arrives before the server's close; wait for it.
        int rc = libssh2_channel_wait_closed(channel_);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return fail(session, "closing the channel of '" + command_ + "'", rc);
        exitStatus_ = libssh2_channel_get_exit_status(channel_);
        progressed = true;
        state_ = State::Free;
        break;
      }
      case State::Free: {
        int rc = libssh2_channel_free(channel_);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        channel_ = nullptr;
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
