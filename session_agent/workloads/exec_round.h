// A round of remote commands, each on its own exec channel, one after the
// other (sshd's MaxSessions counts open channels per connection), under one
// deadline: what an exec-based workload runs (exec_poll.h), so that it only
// decides when to start a round and what the outputs mean.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "session_agent/ssh/exec_task.h"

namespace sshsoak::agent {

class ExecRound {
 public:
  // Done once every command finished; Failed as soon as one failed.
  using Status = ChannelStatus;

  ExecRound(const std::vector<std::string>& commands, int64_t nowMs, uint32_t timeoutMs);

  // Advances the current command as far as it goes without blocking; one
  // finished moves the round on to the next (progressed is set).
  Status step(LIBSSH2_SESSION* session, bool& progressed);
  // The deadline is the workload's to act on (in Workload::afterWait).
  bool timedOut(int64_t nowMs) const { return nowMs >= deadlineMs_; }
  int64_t startMs() const { return startMs_; }
  int64_t deadlineMs() const { return deadlineMs_; }

  // After Status::Done: the commands' stdout, in the order given.
  const std::string& output(size_t i) const { return tasks_[i]->output(); }
  size_t size() const { return tasks_.size(); }
  // After Status::Failed: the failed command's error.
  const SshError& failure() const { return tasks_[current_]->failure(); }
  // Data for the running command already inside libssh2 (see Channel).
  bool hasBufferedData() const { return current_ < tasks_.size() && tasks_[current_]->hasBufferedData(); }

 private:
  std::vector<std::unique_ptr<ExecTask>> tasks_;
  size_t current_ = 0;
  int64_t startMs_;
  int64_t deadlineMs_;
};

}  // namespace sshsoak::agent
