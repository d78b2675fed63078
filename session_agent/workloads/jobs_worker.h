// The jobs worker's network side (the pure parts are jobs.h): it sleeps in
// poll on the command pipe (no CPU while idle, woken early only for the next
// idle close), runs the jobs it is sent one at a time on pooled connections,
// and answers each with one jobResult. docs/design.md, "The jobs worker".
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "session_agent/ssh/connection.h"
#include "session_agent/workloads/jobs.h"

namespace sshsoak::agent {

class EventSink;

// What the worker needs of the agent's command pipe (Agent owns it):
// churn's CommandPipe plus the queue that Agent::readCommands puts each
// Command.runJob into.
struct JobCommandPipe {
  int fd;                      // readable when a command or EOF waits
  std::function<void()> read;  // reads what is there, setting the flags and queueing jobs
  const bool& stopRequested;   // shutdown, or the supervisor is gone
  bool& dropRequested;         // cut every connection (--drop)
  std::deque<JobRequest>& jobs;
};

// One job's answer as it is built (the wire's JobResult, in C++ values);
// it lives only for the job.
struct JobReport {
  wire::JobOutcome outcome = wire::JobOutcome::DONE;
  bool reused = false;
  uint64_t connectUs = 0, livenessUs = 0, runUs = 0;
  uint32_t commandsFailed = 0;
  std::vector<int32_t> exitCodes;  // one per command started
  std::optional<JobFailure> failure;
  std::string message;
  uint32_t deadReplaced = 0;
  uint32_t connectionsOpened = 0;

  // Keeps the first failure (the job's failure_kind).
  void noteFailure(JobFailure kind, std::string words);
};

class JobWorker {
 public:
  // The failure messages are cut to this (a command's words, libssh2's).
  static constexpr size_t MAX_MESSAGE_BYTES = 300;
  // Stdout kept per command; it is not looked at, only drained. Stderr is
  // counted and dropped (a login shell's noise cannot fail a job).
  static constexpr size_t MAX_COMMAND_OUTPUT = 4096;
  // A graceful close waits at most this for the disconnect to go out.
  static constexpr uint32_t CLOSE_TIMEOUT_MS = 1000;
  // The liveness round trip's deadline: min(connect timeout, this).
  static constexpr uint32_t LIVENESS_TIMEOUT_MS = 2000;

  JobWorker(JobsSpec spec, ConnectSettings connect, EventSink& events, JobCommandPipe commands);
  // Returns once a shutdown came (or the supervisor went away); every job
  // it was sent has its result by then.
  void run();

 private:
  bool shouldStop() const;
  // Reads the pipe; applies a drop at once (to the running job's
  // connection too).
  void readCommands();
  void applyDrop();
  void runJob(const JobRequest& job);
  // The running job's connection: a cached one that passed the checks, or
  // nothing (a dead one was closed and counted).
  void takeCached(const PoolKey& key, JobReport& report, bool& stopped);
  // true if it answered (or the local checks were enough); false if dead;
  // nothing if a shutdown came meanwhile.
  std::optional<bool> alive(SshConnection& conn, JobReport& report);
  std::optional<bool> livenessRoundTrip(SshConnection& conn);
  // Opens active_ for the job; false with the failure noted (or stopped set).
  bool open(const JobRequest& job, JobReport& report, bool& stopped);
  // One command to its end; nothing if a shutdown came.
  std::optional<CommandEnd> runCommand(const std::string& command, uint32_t timeoutMs, int32_t& exitCode,
                                       std::string& message);
  // Closes active_: reported (a pool connection closed for a reason of its
  // own) when reported is set.
  void closeActive(wire::JobCloseReason reason, bool reported);
  void closeEntry(PoolEntry& entry, std::optional<wire::JobCloseReason> reason);
  void closeIdle(int64_t nowMs);
  void emitClosed(const PoolEntry& entry, wire::JobCloseReason reason, int64_t nowMs);
  void emitResult(const JobRequest& job, const JobReport& report);
  void answerCancelled(const JobRequest& job);

  JobsSpec spec_;
  ConnectSettings connect_;
  EventSink& events_;
  JobCommandPipe commands_;
  ConnectionPool pool_;
  std::optional<PoolEntry> active_;  // the running job's connection
  bool activeDropped_ = false;       // active_ was cut by an injected drop
};

}  // namespace sshsoak::agent
