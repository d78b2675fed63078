// A real sshsoak-agent process driven directly, as the supervisor drives
// one: its event pipe on fd 3 and its command pipe on fd 4
// (shared/agent_fds.h), an AgentConfig first, then Commands; its events read
// back and turned into log lines (supervisor/log_line.h) for the tests to
// look at. No supervisor in between, so an agent's part is tested alone.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "shared/frame.h"
#include "shared/fd.h"
#include "supervisor/log_line.h"
#include "supervisor/run/local_sshd.h"

namespace sshsoak::testing {

// What a test sets of a jobs worker (JobsWorkloadSpec).
struct JobsWorkerConfig {
  uint32_t maxIdleMs = 0;
  uint32_t maxConnections = 4;
  wire::FailureStrategy failureStrategy = wire::FailureStrategy::ABORT_FIRST;
  uint32_t failureThreshold = 1;
  uint32_t commandTimeoutMs = 10'000;
  uint32_t connectTimeoutMs = 5'000;
  bool livenessCheck = true;
};

struct JobArgs {
  uint64_t id = 1;
  std::string host = "127.0.0.1";
  std::vector<std::string> commands;
  bool reuse = true;
  uint32_t commandTimeoutMs = 0;
};

class AgentHarness {
 public:
  // Spawns build's sshsoak-agent and configures it as a jobs worker of the
  // fixture's sshd (its user, key and known_hosts, accept-new so that a
  // second name of the same server is learnt).
  AgentHarness(const LocalSshd& sshd, const JobsWorkerConfig& config);
  // Kills the agent if it still runs, reaps it, closes the pipes.
  ~AgentHarness();
  AgentHarness(const AgentHarness&) = delete;
  AgentHarness& operator=(const AgentHarness&) = delete;

  pid_t pid() const { return pid_; }
  void runJob(const JobArgs& job);
  void drop();
  void shutdown();

  // Reads events until pred holds on one of the lines read so far (all
  // kept, in order), or the timeout passes; returns whether it held.
  bool waitFor(const std::function<bool(const Json&)>& pred, int timeoutMs);
  // Sends a job and waits for its result line; a null Json on timeout.
  Json runAndWait(const JobArgs& job, int timeoutMs = 15'000);
  // Waits for the agent to exit; its exit code, or -1 on timeout.
  int waitExit(int timeoutMs);
  const std::vector<Json>& lines() const { return lines_; }
  std::vector<Json> linesOf(const std::string& event) const;
  std::string stderrText() const;

 private:
  void send(capnp::MessageBuilder& message);
  // One read of what the pipe holds (waiting up to waitMs); false at EOF.
  bool readSome(int waitMs);

  const LocalSshd& sshd_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd events_;
  UniqueFd commands_;
  FrameReader reader_;
  bool eof_ = false;
  std::vector<Json> lines_;
  std::string stderrPath_;
};

// The sshd processes serving connections: children of the listener (the
// pre-auth and privsep processes of each connection included).
std::vector<pid_t> sshdConnectionProcesses(const LocalSshd& sshd);

}  // namespace sshsoak::testing
