// The session agent: one process, one SSH connection, one event loop. It
// connects, proves the session usable with an exec round trip, then polls
// the remote host on a schedule until the supervisor says stop, reporting
// everything as events.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "session_agent/event_sink.h"
#include "session_agent/ssh/exec_task.h"
#include "session_agent/workloads/poll_parsers.h"
#include "session_agent/workloads/pty_stream.h"
#include "session_agent/ssh/connection.h"
#include "session_agent/ssh/backoff.h"
#include "shared/frame.h"
#include "shared/token_bucket.h"

namespace sshsoak::agent {

struct AgentSettings {
  uint32_t sessionId = 0;
  ConnectSettings connect;
  uint32_t pollIntervalMs = 5000;
  wire::Intensity intensity = wire::Intensity::MEDIUM;
  uint32_t reconnectTimeoutMs = 15000;
  uint32_t maxReconnectAttempts = 3;
  uint32_t keepaliveIntervalMs = 15000;
  uint32_t keepaliveCountMax = 3;
  uint32_t ptyIntervalMs = 1000;
  std::string tokenBucketName;  // empty: no shared bucket (tests)
  BackoffConfig backoff;

  static AgentSettings fromWire(wire::AgentConfig::Reader config);
};

// The first exec of every connection: the session is usable once its
// output, PROBE_REPLY, comes back.
inline constexpr const char* PROBE_COMMAND = "echo sshsoak-ready";
inline constexpr const char* PROBE_REPLY = "sshsoak-ready";

// The exec-poll commands, each on its own channel, one after the other
// (sshd's MaxSessions counts open channels per connection).
inline const std::vector<std::string>& pollCommands() {
  static const std::vector<std::string> commands = {"cat /proc/stat", "cat /proc/meminfo", "df -h /"};
  return commands;
}

class Agent {
 public:
  Agent(AgentSettings settings, int eventFd, int commandFd);
  // Returns the process exit code: 0 after a clean shutdown.
  int run();

 private:
  struct PollRound {
    std::vector<std::unique_ptr<ExecTask>> tasks;
    size_t current = 0;
    int64_t startMs = 0;
    int64_t deadlineMs = 0;
  };

  // Connects (first time or again) with backoff, a token and at most the
  // allowed attempts, emitting the events; false in a terminal state
  // (manual reconnect, auth failure) or when told to stop.
  bool connectPhase(bool reconnect, int64_t detectMs);
  // One connect + auth + first exec within --reconnect-timeout-secs.
  std::optional<ConnectError> establish();
  // Sleeps in poll on the command pipe; false if told to stop meanwhile.
  bool sleepFor(int64_t ms);
  bool takeToken();
  void sessionLoop();
  void readCommands();
  void startPollRound();
  void stepPollRound(bool& progressed);
  void finishPollRound();
  void stepPty(bool& progressed);
  // Looks at what the socket told libssh2 (EOF, reset, timeout); true if the
  // session was lost.
  bool checkTransport();
  // Keepalive and silence; true if the session was lost.
  bool checkLiveness();
  // Runs one exec to the end, blocking this agent only, bounded.
  bool runExec(ExecTask& task, int64_t deadlineMs);
  // Is this libssh2 failure the connection itself going away?
  std::optional<wire::DisconnectCause> transportFailure(int libssh2Error) const;
  void loseSession(wire::DisconnectCause cause, const std::string& message);
  void closeSession();
  void waitForShutdown();

  AgentSettings settings_;
  EventSink events_;
  int commandFd_;
  FrameReader commandReader_;
  std::unique_ptr<SshConnection> conn_;
  bool stopRequested_ = false;
  bool dropRequested_ = false;

  std::optional<PollRound> round_;
  int64_t nextPollMs_ = 0;
  bool idleDataPending_ = false;
  std::unique_ptr<PtyStream> pty_;
  int64_t ptyRetryMs_ = 0;
  int64_t ptyStartedMs_ = 0;
  int64_t lastProbeMs_ = 0;
  int64_t lossMs_ = 0;
  uint32_t lastFirstExecMs_ = 0;
  Backoff backoff_;
  std::optional<TokenBucket> bucket_;
  std::optional<CpuTimes> lastCpu_;
};

}  // namespace sshsoak::agent
