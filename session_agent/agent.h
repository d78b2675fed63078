// The session agent: one process, one SSH connection, one event loop. It
// connects, proves the session usable with an exec round trip, then runs
// its workloads (session_agent/workloads/) on that session until the
// supervisor says stop, reporting everything as events. Its life is one
// explicit state machine (SessionState); the connection's health
// (keepalive, silence, transport errors, injected drops) is the loop's,
// everything else is a workload's.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events.capnp.h"
#include "session_agent/event_sink.h"
#include "session_agent/ssh/backoff.h"
#include "session_agent/ssh/connection.h"
#include "session_agent/ssh/exec_task.h"
#include "session_agent/workloads/jobs.h"
#include "session_agent/workloads/registry.h"
#include "shared/frame.h"
#include "shared/result.h"
#include "shared/token_bucket.h"

namespace sshsoak::agent {

struct ChurnSpec;

// Filled from the supervisor's AgentConfig only: every default is the
// command line's (supervisor/cli.h), none lives here.
struct AgentSettings {
  uint32_t sessionId{};
  ConnectSettings connect;
  uint32_t reconnectTimeoutMs{};
  uint32_t maxReconnectAttempts{};
  uint32_t keepaliveIntervalMs{};
  uint32_t keepaliveCountMax{};
  std::string tokenBucketName;  // empty: no shared bucket (tests)
  BackoffConfig backoff;        // the wire's, floored
  std::vector<WorkloadSpec> workloads;
  DetailSettings detail;        // rollups, --log-detail full, test-only leaks
  uint32_t heartbeatMs{};       // 0: no heartbeats (event_sink.h)
  uint32_t hangAfterMs{};       // test only: block for good this long after start (0: never)
  bool garbageForTesting{};     // test only: write a bad frame after agent_started

  static AgentSettings fromWire(wire::AgentConfig::Reader config);
};

// Floors for the wire's timings: a zero would make the loop spin or every
// deadline pass at once.
constexpr uint32_t MIN_RECONNECT_TIMEOUT_MS = 100;
constexpr uint32_t MIN_KEEPALIVE_INTERVAL_MS = 100;
constexpr uint32_t MIN_KEEPALIVE_COUNT_MAX = 1;
constexpr uint32_t MIN_BACKOFF_BASE_MS = 1;
// A session loop turn steps its workloads for at most this long before it
// looks at the command pipe and its timers again.
constexpr int64_t MAX_STEPPING_MS = 100;
// A sleep that ended this much later than asked: the agent was not running.
constexpr int64_t STALL_MS = 500;

// The first exec of every connection: the session is usable once its
// output, PROBE_REPLY, comes back.
inline constexpr const char* PROBE_COMMAND = "echo sshsoak-ready";
inline constexpr const char* PROBE_REPLY = "sshsoak-ready";

// A session's life; the reconnect rules are docs/runbook.md's "Failure
// scenarios". Only Agent::transition() changes it.
enum class SessionState {
  CONNECTING,   // taking a token, then connect + auth + first exec
  READY,        // usable: the workloads run
  LOST,         // the connection went away (disconnected was logged)
  BACKING_OFF,  // waiting the jitter before the next attempt
  MANUAL,       // a user must act (auth refused, host key, attempts used up)
  CLOSING,      // told to stop: close and report stopped
};
std::string_view stateName(SessionState state);
// The transitions a session can make; Agent::transition throws
// std::logic_error on any other (a bug in the agent, not a network event).
bool transitionAllowed(SessionState from, SessionState to);

// Installs the SIGCONT handler behind Agent's stall checks; once, before
// Agent::run.
void watchForStops();

class Agent {
 public:
  // pending: what was read from the command pipe after the AgentConfig (a
  // command the supervisor sent right behind it, a job say), taken first.
  Agent(AgentSettings settings, int eventFd, int commandFd, FrameReader pending = {});
  // Returns the process exit code: 0 after a clean shutdown.
  int run();

 private:
  // The attempts of one connect phase (the first connect, or after a loss).
  struct ConnectPhase {
    bool reconnect = false;
    uint32_t attempt = 1;
    uint32_t maxAttempts = 0;
    int64_t detectMs = 0;    // when the loss was detected (or the agent started)
    int64_t backoffMs = -1;  // the jitter waited before this attempt; -1: none
  };

  // True once after a SIGCONT (watchForStops), or when a sleep ended
  // lateMs > STALL_MS later than asked.
  static bool stoppedSinceLastLook(int64_t lateMs);
  // The one writer of state_. Traces to stderr when SSHSOAK_AGENT_TRACE is set.
  void transition(SessionState next, std::string_view why);
  void beginConnectPhase(bool reconnect, int64_t detectMs);
  // BACKING_OFF: sleeps the jitter, then CONNECTING.
  void backOff();
  // CONNECTING: one attempt; then READY, BACKING_OFF (retry) or MANUAL.
  void connectAttempt();
  // Retries used up (or none allowed): manual_reconnect_required, then MANUAL.
  void giveUpAttempts();
  // One connect + auth + first exec within --reconnect-timeout-secs.
  Status<SshError> establish();
  // Sleeps in poll on the command pipe; false if told to stop meanwhile.
  bool sleepFor(int64_t ms);
  // Waits for a handshake slot (adaptive pacing), then a token; false when
  // told to stop. The slot is released when the attempt has ended
  // (connectAttempt, releaseHandshakeSlot).
  bool takeToken();
  void releaseHandshakeSlot();
  // READY: runs the workloads until the session is lost or a stop comes.
  void sessionLoop();
  void readCommands();
  // Looks at what the socket told libssh2 (EOF, reset, timeout); true if the
  // session was lost.
  bool checkTransport();
  // Keepalive and silence; true if the session was lost.
  bool checkLiveness();
  // Runs one exec to the end, blocking this agent only, bounded.
  bool runExec(ExecTask& task, int64_t deadlineMs);
  void loseSession(wire::DisconnectCause cause, const std::string& message);
  // Every workload sends its partial rollup (Workload::flushRollup).
  void flushRollups();
  void closeSession();
  void waitForShutdown();
  // Test only (--hang-for-testing): never returns.
  [[noreturn]] void hangForTesting();
  // --workload churn: connections back to back (workloads/churn.h) until
  // told to stop; returns the exit code.
  int runChurn(const ChurnSpec& spec);
  // --workload jobs: a worker running the jobs it is sent
  // (workloads/jobs_worker.h) until told to stop; returns the exit code.
  int runJobs(const JobsSpec& spec);

  AgentSettings settings_;
  EventSink events_;
  int64_t startMs_;
  int commandFd_;
  FrameReader commandReader_;
  SessionState state_ = SessionState::CONNECTING;
  bool trace_ = false;
  ConnectPhase phase_;
  std::unique_ptr<SshConnection> conn_;
  bool stopRequested_ = false;
  bool dropRequested_ = false;
  // Command.runJob, queued for the jobs worker (only a jobs worker takes
  // them: any other agent ignores one, so nothing accumulates).
  bool jobsWorker_ = false;
  std::deque<JobRequest> jobs_;

  std::vector<std::unique_ptr<Workload>> workloads_;
  bool idleDataPending_ = false;
  int64_t lastProbeMs_ = 0;
  int64_t lossMs_ = 0;
  uint32_t lastFirstExecMs_ = 0;
  Backoff backoff_;
  std::optional<TokenBucket> bucket_;
  int handshakeSlot_ = TokenBucket::NO_SLOT_NEEDED;
};

}  // namespace sshsoak::agent
