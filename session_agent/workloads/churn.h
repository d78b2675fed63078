// --workload churn: connections back to back, each one TCP connect, SSH key
// exchange, authentication, a channel running a short command (none if the
// command is empty) and a clean close, timed phase by phase.
//
// Churn holds no long-lived session, so it is not a Workload of the session
// loop: the registry keeps its ChurnSpec (WorkloadSpec::sessionless) and
// Agent::run() hands the agent to a ChurnRunner instead.
//
// The schedule is open-loop (wrk2): the run-wide target rate
// (shared/churn_schedule.h) fixes when every connection of the run should
// start; agent k of n takes starts k, k+n, k+2n, ... An agent that is
// behind starts its next connection at once, and a connection's "total"
// time counts from its intended start, so a server that stalls shows in
// the latency instead of hiding in a lower rate (coordinated omission).
// Rate 0 is a closed loop: each connection starts when the last one ended.
//
// The pure parts (schedule, failure kinds, interval statistics) are
// separate from ChurnRunner, which does the network, so that they are
// tested without one (tests/unit/churn_test.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "events.capnp.h"
#include "session_agent/ssh/connection.h"
#include "session_agent/ssh/error.h"
#include "shared/churn_schedule.h"
#include "shared/histogram.h"

namespace sshsoak::agent {

class EventSink;

// ChurnWorkloadSpec (schemas/events.capnp), checked.
struct ChurnSpec {
  ChurnRamp rate;  // the whole run's target
  uint32_t agents = 1;
  uint32_t agentIndex = 0;
  int64_t scheduleStartNs = 0;  // CLOCK_REALTIME; 0: this agent's own start
  std::string command;          // empty: no channel
  uint32_t reportIntervalMs = 1000;
  bool logEachConnection = false;
  uint32_t connectTimeoutMs = 0;

  bool unpaced() const { return !rate.ramp() && rate.endPerSec <= 0; }
  // Floors the intervals (MIN_WORKLOAD_INTERVAL_MS); throws
  // std::invalid_argument on a spec no agent can run (a ramp through 0,
  // an agent index outside the run).
  static ChurnSpec fromWire(wire::ChurnWorkloadSpec::Reader spec);
};

// The phases of one connection, in order.
enum class ChurnPhase { TCP, KEX, AUTH, EXEC, CLOSE };
std::string_view churnPhaseName(ChurnPhase phase);
ChurnPhase churnPhaseOf(OpenPhase reached);

// FailureCount.kind. DROPPED: cut by an injected drop (--drop), a failure
// of that one connection.
enum class ChurnFailure {
  REFUSED,              // TCP connection refused: nothing listens
  RESET_BEFORE_BANNER,  // closed or reset before or during key exchange: sshd's MaxStartups, a restart
  TIMEOUT_TCP,
  TIMEOUT_KEX,
  TIMEOUT_AUTH,
  TIMEOUT_EXEC,
  TIMEOUT_CLOSE,
  KEX,      // key exchange failed otherwise (no common algorithm, bad banner)
  AUTH,     // the server refused the key
  EXEC,     // the channel failed, or the command exited non-zero
  HOSTKEY,  // unknown (strict) or changed host key
  DROPPED,
  OTHER,
};
constexpr size_t CHURN_FAILURE_KINDS = static_cast<size_t>(ChurnFailure::OTHER) + 1;
std::string_view churnFailureName(ChurnFailure kind);

// The kind of a failure in `phase`: a timeout by its phase, the server
// going away before the key exchange finished as reset_before_banner.
// peerGone: the server closed or reset the connection (OpenTimings).
ChurnFailure classifyChurnFailure(ChurnPhase phase, const SshError& error, bool peerGone);

// This agent's share of the run-wide schedule. Times are ns after the
// schedule's origin (its first intended start). Paced specs only.
class ChurnSchedule {
 public:
  explicit ChurnSchedule(const ChurnSpec& spec);
  // Starts this agent at its first start at or after sinceNs: an agent that
  // joins late (a restart) has no backlog from before it existed.
  void joinAt(int64_t sinceNs);
  // The intended start of this agent's next connection; INT64_MAX if the
  // target fell to nothing for good.
  int64_t nextNs() const { return nextNs_; }
  uint64_t nextIndex() const { return next_; }  // its number in the run-wide sequence
  // The next connection started: move on to this agent's one after it.
  void advance();

 private:
  int64_t timeOfNs(uint64_t index) const;
  ChurnRamp rate_;
  uint32_t agents_;
  uint32_t index_;
  uint64_t next_ = 0;
  int64_t nextNs_ = 0;
};

// One connection as measured. Phase times in µs, 0 for a phase not reached
// or not finished; intended/start/end on CLOCK_MONOTONIC (ns).
struct ChurnConnectionResult {
  int64_t intendedNs = 0;
  int64_t startNs = 0;
  int64_t endNs = 0;
  uint64_t tcpUs = 0, kexUs = 0, authUs = 0, execUs = 0, closeUs = 0;
  std::optional<ChurnFailure> failure;
  std::string message;

  uint64_t lagUs() const { return nsToUs(startNs - intendedNs); }
  uint64_t totalUs() const { return nsToUs(endNs - intendedNs); }    // from the intended start
  uint64_t serviceUs() const { return nsToUs(endNs - startNs); }     // from the actual start
  static uint64_t nsToUs(int64_t ns) { return ns > 0 ? static_cast<uint64_t>(ns) / 1000 : 0; }
};

// One report interval of one agent, in fixed memory: a histogram per
// measure and a slot per failure kind. Phases that finished are recorded
// also for a connection that failed later (its TCP connect was real);
// "total" and "service" only for connections that succeeded: a failure is
// counted as such, not as a latency.
class ChurnIntervalStats {
 public:
  // The histograms' names on the wire, in ChurnStats.histograms' order.
  static constexpr std::array<std::string_view, 7> MEASURES = {"tcp",   "kex",   "auth",   "exec",
                                                               "close", "total", "service"};
  static constexpr size_t MAX_EXAMPLE_BYTES = 300;

  void started() { ++attempted_; }
  void finished(const ChurnConnectionResult& connection);
  // Writes counts, histograms and failures into out (the caller sets the
  // interval, target, behind and CPU), then starts a new interval.
  void reportAndReset(wire::ChurnStats::Builder out);

  uint32_t attempted() const { return attempted_; }
  uint32_t succeeded() const { return succeeded_; }
  uint32_t failed() const { return failed_; }
  const LatencyHistogram& histogram(size_t measure) const { return histograms_[measure]; }
  uint32_t failures(ChurnFailure kind) const { return failures_[static_cast<size_t>(kind)].count; }
  const std::string& example(ChurnFailure kind) const { return failures_[static_cast<size_t>(kind)].example; }

 private:
  struct FailureSlot {
    uint32_t count = 0;
    std::string example;  // the first of the interval, at most MAX_EXAMPLE_BYTES
  };
  uint32_t attempted_ = 0, succeeded_ = 0, failed_ = 0;
  std::array<LatencyHistogram, MEASURES.size()> histograms_;
  std::array<FailureSlot, CHURN_FAILURE_KINDS> failures_;
};

// --log-each-connection's line.
void fillChurnConnection(wire::ChurnConnection::Builder out, const ChurnConnectionResult& connection);

// What the runner needs of the agent's command pipe (Agent owns it).
struct CommandPipe {
  int fd;                     // readable when a command or EOF waits
  std::function<void()> read; // reads what is there, setting the flags below
  const bool& stopRequested;  // shutdown, or the supervisor is gone
  bool& dropRequested;        // cut the current connection
};

// The network side: runs connections on the schedule until told to stop,
// reporting each interval, and a last partial interval at the end.
class ChurnRunner {
 public:
  ChurnRunner(ChurnSpec spec, ConnectSettings connect, EventSink& events, CommandPipe commands);
  // Returns once a shutdown came (or the supervisor went away).
  void run();

 private:
  bool shouldStop() const;
  // Sleeps (no CPU) until monotonic untilNs, reporting on time meanwhile;
  // false if told to stop first.
  bool waitUntil(int64_t untilNs);
  // One connection; nothing if a shutdown cut it short (then it is not counted).
  std::optional<ChurnConnectionResult> connectOnce(int64_t intendedNs);
  // After a wait was cancelled by the command pipe: reads it. Returns the
  // failure for the connection (dropped, or a partial command), or nothing
  // if a shutdown came.
  std::optional<ChurnFailure> interrupted();
  void report(int64_t nowMs);
  int64_t behindMs(int64_t nowNs) const;

  ChurnSpec spec_;
  ConnectSettings connect_;
  EventSink& events_;
  CommandPipe commands_;
  ChurnSchedule schedule_;
  ChurnIntervalStats stats_;
  WaitTicker ticker_;
  // Set by a connection that found no algorithm in common with the server:
  // the run reports it once and connects no more (every attempt would fail
  // the same way).
  std::optional<SshError> algorithmsMismatch_;
  int64_t originNs_ = 0;  // the schedule's origin on CLOCK_MONOTONIC
  int64_t lastReportMs_ = 0;
  int64_t reportedCpuNs_ = 0;
};

}  // namespace sshsoak::agent
