// --workload jobs: the agent is a worker. The supervisor owns the queue and
// sends one Job at a time (Command.runJob); the worker runs its commands, one
// exec channel each, and answers with exactly one jobResult
// (docs/reference.md, "Jobs"; docs/design.md, "The jobs worker").
//
// Jobs hold no long-lived session of the session loop, so, as churn, the
// registry keeps only the JobsSpec (WorkloadSpec::sessionless) and
// Agent::run() hands the agent to a JobWorker (jobs_worker.h).
//
// This header holds the pure parts, tested without a network
// (tests/unit/jobs_test.cpp): the specs, the failure kinds and their
// classification, the failure strategy's decisions, and the connection
// pool's bookkeeping (which connection to reuse, which goes first under LRU,
// when one falls idle).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events.capnp.h"
#include "session_agent/ssh/connection.h"
#include "session_agent/ssh/error.h"

namespace sshsoak::agent {

// JobsWorkloadSpec (schemas/events.capnp), checked and floored.
struct JobsSpec {
  uint32_t maxIdleMs = 0;        // 0: a cached connection is never closed for idleness
  uint32_t maxConnections = 1;   // >= 1
  wire::FailureStrategy failureStrategy = wire::FailureStrategy::ABORT_FIRST;
  uint32_t failureThreshold = 1;  // >= 1
  uint32_t commandTimeoutMs = 0;  // >= MIN_WORKLOAD_INTERVAL_MS
  uint32_t connectTimeoutMs = 0;  // >= MIN_WORKLOAD_INTERVAL_MS
  bool livenessCheck = true;

  static JobsSpec fromWire(wire::JobsWorkloadSpec::Reader spec);
};

// A Job from the command pipe, copied out of the Cap'n Proto message (which
// lives only as long as the read).
struct JobRequest {
  uint64_t id = 0;
  std::string host;
  uint16_t port = 22;
  std::string user;
  std::vector<std::string> commands;
  uint32_t commandTimeoutMs = 0;  // 0: the spec's
  bool reuse = true;
  uint32_t attempt = 1;

  static JobRequest fromWire(wire::Job::Reader job);
};

// failure_kind (docs/reference.md, "Jobs"), the ones a worker reports;
// worker_died is the supervisor's.
enum class JobFailure {
  CONNECT_REFUSED,
  CONNECT_TIMEOUT,
  CONNECT_RESET,  // closed before the key exchange ended: MaxStartups, a restart
  KEX,
  AUTH,
  HOSTKEY,
  CONNECT_OTHER,
  COMMAND_EXIT,
  COMMAND_TIMEOUT,
  CHANNEL,
  CONNECTION_LOST,  // the connection died under a command (a drop, a killed sshd)
  RUN_ENDED,        // a shutdown came while the job ran
};
std::string_view jobFailureName(JobFailure kind);

// The kind of a failed SshConnection::open(), by how far it got (timings)
// and what it said: churn's classification (classifyChurnFailure) folded
// onto the jobs' coarser kinds.
JobFailure classifyConnectFailure(const OpenTimings& timings, const SshError& error);

// How one command ended, as the failure strategy sees it.
enum class CommandEnd { OK, EXIT, TIMEOUT, CHANNEL, CONNECTION_LOST };
std::optional<JobFailure> commandFailure(CommandEnd end);

// The failure strategy's decisions for one job: after each command, go on
// or stop; at the end, the outcome (docs/reference.md, "Failure strategy").
class JobProgress {
 public:
  JobProgress(wire::FailureStrategy strategy, uint32_t threshold, size_t commands)
      : strategy_(strategy), threshold_(threshold == 0 ? 1 : threshold), commands_(commands) {}

  // A command ended; true if the next one may run (false also after the last).
  bool afterCommand(bool failed);
  size_t ran() const { return ran_; }
  uint32_t failed() const { return failed_; }
  // done: every command ran and succeeded; aborted: the strategy stopped it
  // before its last command; failed: it ran to its end with a failure.
  wire::JobOutcome outcome() const;

 private:
  wire::FailureStrategy strategy_;
  uint32_t threshold_;
  size_t commands_;
  size_t ran_ = 0;
  uint32_t failed_ = 0;
  bool stopped_ = false;
};

// A cached connection's identity: the target.
struct PoolKey {
  std::string user;
  std::string host;
  uint16_t port = 0;
  bool operator==(const PoolKey&) const = default;
};

struct PoolEntry {
  PoolKey key;
  std::unique_ptr<SshConnection> conn;  // null only in tests of the bookkeeping
  int64_t openedMs = 0;
  int64_t lastUsedMs = 0;  // when its last job ended
  uint32_t jobsServed = 0;
};

// The worker's cached connections: at most `capacity`, one per target (a
// job takes its target's entry out while it runs and puts it back after).
// Small (--max-connections-per-worker), so a vector and linear scans.
class ConnectionPool {
 public:
  ConnectionPool(uint32_t capacity, uint32_t maxIdleMs) : capacity_(capacity == 0 ? 1 : capacity), maxIdleMs_(maxIdleMs) {}

  // Takes the target's cached connection out of the pool, if any.
  std::optional<PoolEntry> take(const PoolKey& key);
  // Whether putting one back now would pass the capacity: the caller first
  // evicts lruVictim() (and reports it).
  bool full() const { return entries_.size() >= capacity_; }
  // The least recently used entry, taken out; nothing if empty.
  std::optional<PoolEntry> takeLru();
  void put(PoolEntry entry);
  // Entries unused for maxIdleMs at nowMs, taken out (none with maxIdleMs 0).
  std::vector<PoolEntry> takeIdle(int64_t nowMs);
  // When the next entry falls idle; INT64_MAX if never.
  int64_t nextIdleDeadlineMs() const;
  size_t size() const { return entries_.size(); }
  // Every entry, for drops (cut in place) and the end of the run.
  std::vector<PoolEntry>& entries() { return entries_; }

 private:
  uint32_t capacity_;
  uint32_t maxIdleMs_;
  std::vector<PoolEntry> entries_;
};

}  // namespace sshsoak::agent
