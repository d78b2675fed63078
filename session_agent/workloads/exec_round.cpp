#include "session_agent/workloads/exec_round.h"

namespace sshsoak::agent {

ExecRound::ExecRound(const std::vector<std::string>& commands, int64_t nowMs, uint32_t timeoutMs)
    : startMs_(nowMs), deadlineMs_(nowMs + timeoutMs) {
  for (const auto& command : commands) tasks_.push_back(std::make_unique<ExecTask>(command));
}

ExecRound::Status ExecRound::step(LIBSSH2_SESSION* session, bool& progressed) {
  if (current_ == tasks_.size()) return Status::Done;
  auto status = tasks_[current_]->step(session, progressed);
  if (status != Status::Done) return status;
  progressed = true;
  return ++current_ < tasks_.size() ? Status::Running : Status::Done;
}

}  // namespace sshsoak::agent
