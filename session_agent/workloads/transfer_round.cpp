#include "session_agent/workloads/transfer_round.h"

#include <algorithm>
#include <utility>

#include "shared/clock.h"

namespace sshsoak::agent {

namespace {

constexpr size_t STDERR_TAIL_BYTES = 240;

}  // namespace

TransferRound::TransferRound(Plan plan, std::span<char> buffer, int64_t nowMs)
    : plan_(std::move(plan)),
      buffer_(buffer),
      data_(plan_.seed),
      startNs_(monoNs()),
      startCpuNs_(processCpuNs()),
      lastProgressMs_(nowMs),
      lastMovedMs_(nowMs) {
  result_.direction = plan_.direction;
  result_.round = plan_.round;
  result_.expectedBytes = plan_.bytes;
}

TransferRound::Status TransferRound::fail(SshError error) {
  failure_ = std::move(error);
  failed_ = true;
  return Status::Failed;
}

TransferRound::Status TransferRound::failCall(const std::string& what, int rc) {
  channel_.fail(what, rc);
  return fail(channel_.failure());
}

void TransferRound::advanced(State next, int64_t nowMs, bool& progressed) {
  state_ = next;
  lastProgressMs_ = nowMs;
  progressed = true;
}

void TransferRound::moved(int64_t nowMs) {
  lastMovedMs_ = nowMs;
  lastProgressMs_ = nowMs;
  if (stallSinceMs_) {
    endedStall_ = StallReport{nowMs - *stallSinceMs_, heldAtStall_};
    stalledMs_ += nowMs - *stallSinceMs_;
    stallSinceMs_.reset();
  }
}

void TransferRound::checkStall(int64_t nowMs) {
  if (!dataPhase_ || stallSinceMs_ || nowMs < lastMovedMs_ + plan_.stallMs) return;
  stallSinceMs_ = lastMovedMs_;
  heldAtStall_ = heldBytes();
}

int64_t TransferRound::nextDeadlineMs() const {
  int64_t giveUp = lastProgressMs_ + plan_.giveUpMs;
  if (dataPhase_ && !stallSinceMs_) return std::min(giveUp, lastMovedMs_ + plan_.stallMs);
  return giveUp;
}

std::optional<StallReport> TransferRound::takeEndedStall() { return std::exchange(endedStall_, std::nullopt); }

std::optional<StallReport> TransferRound::endStall(int64_t nowMs) {
  if (!stallSinceMs_) return std::nullopt;
  StallReport report{nowMs - *stallSinceMs_, heldAtStall_};
  stalledMs_ += report.stalledMs;
  stallSinceMs_.reset();
  return report;
}

bool TransferRound::hasBufferedData() const {
  // Only where step() reads everything there is: while waiting for the
  // close, leftovers wait in libssh2 on purpose and must not keep the loop
  // from sleeping.
  return (state_ == State::Upload || state_ == State::Receive) && !failed_ && channel_.hasBufferedData();
}

void TransferRound::finishTiming(int64_t nowMs) {
  result_.ns = monoNs() - startNs_;
  result_.cpuNs = processCpuNs() - startCpuNs_;
  result_.bytes = moved_;
  result_.localSha256 = sha_.finishHex();
  moved(nowMs);  // the remote's EOF ends a stall too
  dataPhase_ = false;
}

bool TransferRound::drain(int64_t nowMs, bool& progressed) {
  LIBSSH2_CHANNEL* ch = channel_.get();
  if (up()) {
    int rc = channel_.read(0, [&](const char* data, size_t n) { remoteHash_.feed(data, n); }, progressed);
    if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
      failCall("reading the output of '" + plan_.command + "'", rc);
      return false;
    }
  } else {
    while (turnBudget_ > 0) {
      // One large read: libssh2 copies every packet it holds for the
      // channel in one call, and each call first drains the socket.
      ssize_t n = libssh2_channel_read_ex(ch, 0, buffer_.data(), buffer_.size());
      if (n > 0) {
        auto got = static_cast<size_t>(n);
        sha_.update(buffer_.data(), got);
        moved_ += got;
        turnBudget_ -= std::min<uint64_t>(turnBudget_, got);
        moved(nowMs);
        progressed = true;
        continue;
      }
      if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) break;
      failCall("reading the data of '" + plan_.command + "'", static_cast<int>(n));
      return false;
    }
  }
  // stderr: the down checksum, and login noise either way; read it all, or
  // its window fills and the server stops.
  int rc = channel_.read(
      1,
      [&](const char* data, size_t n) {
        if (!up()) {
          remoteHash_.feed(data, n);
          return;
        }
        stderrTail_.append(data, n);
        if (stderrTail_.size() > STDERR_TAIL_BYTES) stderrTail_.erase(0, stderrTail_.size() - STDERR_TAIL_BYTES);
      },
      progressed);
  if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
    failCall("reading the errors of '" + plan_.command + "'", rc);
    return false;
  }
  return true;
}

bool TransferRound::upload(int64_t nowMs, bool& progressed, bool& allSent) {
  LIBSSH2_CHANNEL* ch = channel_.get();
  while (turnBudget_ > 0) {
    if (pendingOffset_ == pendingLength_) {
      if (generated_ == plan_.bytes) {
        allSent = true;
        return true;
      }
      // The next write: generated and hashed only now, so the agent never
      // holds more than one.
      size_t n = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), plan_.bytes - generated_));
      data_.fill(buffer_.data(), n);
      sha_.update(buffer_.data(), n);
      generated_ += n;
      pendingOffset_ = 0;
      pendingLength_ = n;
    }
    // libssh2 1.10 sends at most one packet (32 KB) per call; what it took
    // is gone from our buffer (encrypted into its own), so the next call
    // goes on from there.
    ssize_t n = libssh2_channel_write(ch, buffer_.data() + pendingOffset_, pendingLength_ - pendingOffset_);
    if (n > 0) {
      auto sent = static_cast<size_t>(n);
      pendingOffset_ += sent;
      moved_ += sent;
      turnBudget_ -= std::min<uint64_t>(turnBudget_, sent);
      moved(nowMs);
      progressed = true;
      continue;
    }
    // 0: the server's window is full (libssh2 then waits for input, where
    // the window adjust will come from); EAGAIN: the socket is.
    if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) return true;
    failCall("sending data to '" + plan_.command + "'", static_cast<int>(n));
    return false;
  }
  return true;
}

TransferRound::Status TransferRound::step(LIBSSH2_SESSION* session, int64_t nowMs, bool& progressed) {
  if (failed_) return Status::Failed;
  for (;;) {
    switch (state_) {
      case State::Open: {
        int rc = channel_.open(session, plan_.windowBytes);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return failCall("cannot open a transfer channel", rc);
        advanced(State::Exec, nowMs, progressed);
        break;
      }
      case State::Exec: {
        int rc = channel_.exec(plan_.command);
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return failCall("exec '" + plan_.command + "' refused", rc);
        advanced(up() ? State::Upload : State::Receive, nowMs, progressed);
        dataPhase_ = true;
        lastMovedMs_ = nowMs;
        break;
      }
      case State::Upload: {
        // The replies first, so that the write below is libssh2's last call
        // and its block direction is the one the loop waits for.
        if (!drain(nowMs, progressed)) return Status::Failed;
        // A command that stops reading early (or never ran) ends its side
        // while bytes are still to go: nobody would ever take them.
        if (moved_ < plan_.bytes && remoteEof()) {
          auto last = stderrTail_.find_last_not_of(" \t\r\n");
          std::string tail =
              last == std::string::npos ? "" : " (its stderr ends: " + stderrTail_.substr(0, last + 1) + ")";
          return fail(SshError{wire::FailureCategory::CHANNEL,
                               "'" + plan_.command + "' ended after " + std::to_string(moved_) + " of " +
                                   std::to_string(plan_.bytes) +
                                   " bytes: an up command must read its stdin to EOF" + tail,
                               0});
        }
        bool allSent = false;
        if (!upload(nowMs, progressed, allSent)) return Status::Failed;
        if (!allSent) return Status::Running;
        advanced(State::SendEof, nowMs, progressed);
        break;
      }
      case State::SendEof: {
        int rc = libssh2_channel_send_eof(channel_.get());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return failCall("sending EOF to '" + plan_.command + "'", rc);
        advanced(State::Receive, nowMs, progressed);
        // Waiting for the checksum counts as the round's data phase: a
        // remote that sits on it is a stall as much as one that stops reading.
        lastMovedMs_ = nowMs;
        break;
      }
      case State::Receive: {
        if (!drain(nowMs, progressed)) return Status::Failed;
        if (yielded() || !remoteEof()) return Status::Running;
        finishTiming(nowMs);
        advanced(State::AwaitClosed, nowMs, progressed);
        break;
      }
      case State::AwaitClosed: {
        // The remote's close follows its EOF once the command exited; the
        // exit status and any stderr still on the way arrive before it.
        int rc = libssh2_channel_wait_closed(channel_.get());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return failCall("waiting for '" + plan_.command + "' to close", rc);
        if (!drain(nowMs, progressed)) return Status::Failed;
        result_.exitStatus = libssh2_channel_get_exit_status(channel_.get());
        advanced(State::Close, nowMs, progressed);
        break;
      }
      case State::Close: {
        int rc = libssh2_channel_close(channel_.get());
        if (rc == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        if (rc != 0) return failCall("closing the channel of '" + plan_.command + "'", rc);
        advanced(State::Free, nowMs, progressed);
        break;
      }
      case State::Free: {
        if (channel_.free() == LIBSSH2_ERROR_EAGAIN) return Status::Running;
        result_.remoteSha256 = remoteHash_.last();
        result_.stalledMs = stalledMs_;
        advanced(State::Done, nowMs, progressed);
        return Status::Done;
      }
      case State::Done:
        return Status::Done;
    }
  }
}

}  // namespace sshsoak::agent
