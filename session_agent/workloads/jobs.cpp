#include "session_agent/workloads/jobs.h"

#include <algorithm>
#include <limits>

#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

using Cat = wire::FailureCategory;

JobsSpec JobsSpec::fromWire(wire::JobsWorkloadSpec::Reader w) {
  JobsSpec s;
  s.maxIdleMs = w.getMaxIdleMs();
  s.maxConnections = std::max<uint32_t>(w.getMaxConnections(), 1);
  s.failureStrategy = w.getFailureStrategy();
  s.failureThreshold = std::max<uint32_t>(w.getFailureThreshold(), 1);
  s.commandTimeoutMs = std::max(w.getCommandTimeoutMs(), MIN_WORKLOAD_INTERVAL_MS);
  s.connectTimeoutMs = std::max(w.getConnectTimeoutMs(), MIN_WORKLOAD_INTERVAL_MS);
  s.livenessCheck = w.getLivenessCheck();
  return s;
}

JobRequest JobRequest::fromWire(wire::Job::Reader w) {
  JobRequest j;
  j.id = w.getId();
  j.host = w.getHost();
  j.port = w.getPort();
  j.user = w.getUser();
  j.commands.reserve(w.getCommands().size());
  for (auto c : w.getCommands()) j.commands.emplace_back(c.cStr(), c.size());
  j.commandTimeoutMs = w.getCommandTimeoutMs();
  j.reuse = w.getReuse();
  j.attempt = std::max<uint32_t>(w.getAttempt(), 1);
  return j;
}

std::string_view jobFailureName(JobFailure kind) {
  switch (kind) {
    case JobFailure::CONNECT_REFUSED: return "connect_refused";
    case JobFailure::CONNECT_TIMEOUT: return "connect_timeout";
    case JobFailure::CONNECT_RESET: return "connect_reset";
    case JobFailure::KEX: return "kex";
    case JobFailure::AUTH: return "auth";
    case JobFailure::HOSTKEY: return "hostkey";
    case JobFailure::CONNECT_OTHER: return "connect_other";
    case JobFailure::COMMAND_EXIT: return "command_exit";
    case JobFailure::COMMAND_TIMEOUT: return "command_timeout";
    case JobFailure::CHANNEL: return "channel";
    case JobFailure::CONNECTION_LOST: return "connection_lost";
    case JobFailure::RUN_ENDED: return "run_ended";
  }
  return "connect_other";
}

JobFailure classifyConnectFailure(const OpenTimings& timings, const SshError& error) {
  if (error.category == Cat::TIMEOUT) return JobFailure::CONNECT_TIMEOUT;
  if (error.category == Cat::HOSTKEY) return JobFailure::HOSTKEY;
  // No algorithm in common, whether or not the server hung up meanwhile.
  if (error.category == Cat::ALGORITHMS) return JobFailure::KEX;
  switch (timings.reached) {
    case OpenPhase::TCP:
      return error.category == Cat::REFUSED ? JobFailure::CONNECT_REFUSED : JobFailure::CONNECT_OTHER;
    case OpenPhase::KEX:
    case OpenPhase::HOSTKEY:
      // sshd past MaxStartups, or one going down, closes an accepted
      // connection before its banner or in the middle of the key exchange.
      return timings.peerGone ? JobFailure::CONNECT_RESET : JobFailure::KEX;
    case OpenPhase::AUTH:
      return error.category == Cat::AUTH ? JobFailure::AUTH : JobFailure::CONNECT_OTHER;
    case OpenPhase::DONE: return JobFailure::CONNECT_OTHER;
  }
  return JobFailure::CONNECT_OTHER;
}

std::optional<JobFailure> commandFailure(CommandEnd end) {
  switch (end) {
    case CommandEnd::OK: return std::nullopt;
    case CommandEnd::EXIT: return JobFailure::COMMAND_EXIT;
    case CommandEnd::TIMEOUT: return JobFailure::COMMAND_TIMEOUT;
    case CommandEnd::CHANNEL: return JobFailure::CHANNEL;
    case CommandEnd::CONNECTION_LOST: return JobFailure::CONNECTION_LOST;
  }
  return JobFailure::CHANNEL;
}

bool JobProgress::afterCommand(bool failed) {
  ++ran_;
  if (failed) ++failed_;
  if (failed) {
    switch (strategy_) {
      case wire::FailureStrategy::CONTINUE: break;
      case wire::FailureStrategy::ABORT_FIRST: stopped_ = true; break;
      case wire::FailureStrategy::ABORT_AFTER_N: stopped_ = failed_ >= threshold_; break;
    }
  }
  return !stopped_ && ran_ < commands_;
}

wire::JobOutcome JobProgress::outcome() const {
  if (failed_ == 0 && ran_ == commands_) return wire::JobOutcome::DONE;
  // Stopped by the strategy with commands left: aborted. A strategy that
  // fires on the last command stopped nothing: the job ran to its end.
  if (stopped_ && ran_ < commands_) return wire::JobOutcome::ABORTED;
  return wire::JobOutcome::FAILED;
}

std::optional<PoolEntry> ConnectionPool::take(const PoolKey& key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const PoolEntry& e) { return e.key == key; });
  if (it == entries_.end()) return std::nullopt;
  PoolEntry entry = std::move(*it);
  entries_.erase(it);
  return entry;
}

std::optional<PoolEntry> ConnectionPool::takeLru() {
  if (entries_.empty()) return std::nullopt;
  auto it = std::min_element(entries_.begin(), entries_.end(),
                             [](const PoolEntry& a, const PoolEntry& b) { return a.lastUsedMs < b.lastUsedMs; });
  PoolEntry entry = std::move(*it);
  entries_.erase(it);
  return entry;
}

void ConnectionPool::put(PoolEntry entry) { entries_.push_back(std::move(entry)); }

std::vector<PoolEntry> ConnectionPool::takeIdle(int64_t nowMs) {
  std::vector<PoolEntry> idle;
  if (maxIdleMs_ == 0) return idle;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (nowMs - it->lastUsedMs >= maxIdleMs_) {
      idle.push_back(std::move(*it));
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return idle;
}

int64_t ConnectionPool::nextIdleDeadlineMs() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  if (maxIdleMs_ == 0) return next;
  for (const auto& e : entries_) next = std::min(next, e.lastUsedMs + int64_t{maxIdleMs_});
  return next;
}

}  // namespace sshsoak::agent
