// What the session loop drives once a session is usable, without knowing
// which workload it is (as mosh's Transport<State> drives any state type):
// the PTY stream, the exec polls, and whatever comes next. A workload owns
// its channels and its timers; the loop owns the connection (keepalive,
// silence, transport errors, injected drops) and the one poll() that sleeps
// until the socket, a command or the earliest wake-up of anyone.
//
// One turn of the loop, in order (nowMs is monoMs(), read by the loop):
//   onTurn(now)           begin what is due (a poll round, a PTY retry)
//   step(now) ...         repeated while anyone progressed: libssh2 may
//                         buffer data for one channel while reading another
//   hasBufferedData()     if anyone's data waits inside libssh2, no sleep
//   wantsRead/Write, nextWakeMs   shape the poll() that sleeps
//   afterWait(now)        deadlines, checked once the sleep ended
// Deadlines belong to afterWait() alone, so that one timeout is checked in
// one place whatever the loop did before; nextWakeMs() returns the deadline
// itself, and afterWait() finds it passed when nowMs >= it.
// A workload that finds the connection itself gone reports SessionLost;
// the loop then calls abandon() on everyone. A channel failure is triaged in
// one place, WorkloadContext::channelFailed().
//
// Adding a workload (say "churn"):
//   1. its files: workloads/churn.{h,cpp}, a class ChurnWorkload deriving
//      from Workload, with `using Spec = ChurnSpec;` and
//      `static ChurnSpec ChurnSpec::fromWire(wire::ChurnWorkloadSpec::Reader)`
//      (floor intervals at MIN_WORKLOAD_INTERVAL_MS; throw
//      std::invalid_argument on a spec it cannot run);
//   2. its spec on the wire: a ChurnWorkloadSpec struct and a member of
//      the WorkloadSpec union in schemas/events.capnp;
//   3. its one registry entry: the include and one `case` line in
//      workloadSpecFromWire() in workloads/registry.cpp (until it is there
//      -Wswitch warns, and fails a -DSSHSOAK_WERROR=ON build);
//   4. its source line, workloads/churn.cpp, in session_agent/CMakeLists.txt;
//   5. to run it: one more workloads[] entry (and count) in
//      supervisor/run/agent_config.cpp, filled from the CLI's options.
// Its tests mirror its files: tests/unit/churn_test.cpp, and a registry case
// in tests/unit/registry_test.cpp.
// An exec-based workload runs its commands with ExecRound (exec_round.h).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "events.capnp.h"
#include "session_agent/ssh/error.h"

namespace sshsoak::agent {

class EventSink;
class SshConnection;

// Floor for every interval from the wire: a zero or tiny one would make a
// workload spin.
constexpr uint32_t MIN_WORKLOAD_INTERVAL_MS = 100;

// What the AgentConfig says about detail (--log-detail, --rollup-secs):
// PTY cycles and exec polls are rolled up (rollup.h) every rollupMs.
struct DetailSettings {
  uint32_t rollupMs = 0;  // floored at MIN_ROLLUP_MS
  bool full = false;      // also one event per cycle and per poll, as before rollups
  // Test only (--leak-*-for-testing): what the PTY workload keeps per
  // cycle, a leak for the leak verdict to catch.
  bool leakFdPerCycle = false;
  uint32_t leakKbPerCycle = 0;
};

// Floor for a rollup period from the wire (the CLI allows >= 1 s).
constexpr uint32_t MIN_ROLLUP_MS = 1000;

struct SessionLost {
  wire::DisconnectCause cause;
  std::string message;
};

// A workload's own error event, e.g. &wire::Event::Builder::initPtyError.
using ErrorEvent = wire::Failure::Builder (wire::Event::Builder::*)();

// What the loop hands a workload when a session becomes usable; valid until
// abandon() or close().
struct WorkloadContext {
  SshConnection& conn;
  EventSink& events;
  // The budget of one unit of work (an exec round, a PTY setup): the CLI's
  // --reconnect-timeout-secs, as for establishing a session.
  uint32_t stepTimeoutMs;
  // Rollups or also per-cycle events (rollup.h); the test-only leaks.
  DetailSettings detail;

  // A channel of the workload failed. If that is the connection itself
  // going away, returns the SessionLost for the loop (no event: the loop
  // reports the disconnect). Otherwise reports it as the workload's
  // errorEvent (category CHANNEL) and returns nothing: the caller drops the
  // channel and tries again later.
  std::optional<SessionLost> channelFailed(const SshError& failure, ErrorEvent errorEvent) const;
  // Emits the workload's errorEvent.
  void reportError(ErrorEvent errorEvent, wire::FailureCategory category, const std::string& message,
                   int libssh2Error = 0) const;
};

struct StepResult {
  bool progressed = false;
  std::optional<SessionLost> lost;  // the connection is gone: stop stepping
};

constexpr int64_t NO_WAKE_MS = std::numeric_limits<int64_t>::max();

class Workload {
 public:
  virtual ~Workload() = default;

  // The session became usable (first connect or reconnect).
  virtual void start(const WorkloadContext& context, int64_t nowMs) = 0;
  // Time: a loop turn begins; start what is due at nowMs.
  virtual void onTurn(int64_t nowMs) = 0;
  // Readiness: advance every channel as far as it goes without blocking;
  // nowMs stamps what arrived (a PTY burst's end, an exec round's finish).
  virtual StepResult step(int64_t nowMs) = 0;
  // Time: the loop's sleep ended; the one place to check own deadlines (a
  // deadline passed may lose the session or just be reported).
  virtual std::optional<SessionLost> afterWait(int64_t nowMs) = 0;

  // A channel is open: libssh2 is called every turn and consumes whatever
  // the socket brings, so the loop watches it for input.
  virtual bool wantsRead() const = 0;
  // libssh2 may have to send for this workload now (a channel being opened,
  // a request, window adjusts and closes of an exec channel): the loop then
  // watches for output room, and only while libssh2 says it is blocked on
  // sending. False while idle or merely streaming, so that a stale block
  // direction (libssh2's last call's) cannot make the loop wait for POLLOUT,
  // which is nearly always ready, and spin.
  virtual bool wantsWrite() const = 0;
  // The next time this workload must run even if the socket stays quiet
  // (NO_WAKE_MS: none).
  virtual int64_t nextWakeMs() const = 0;
  // Data for one of its channels already waits inside libssh2.
  virtual bool hasBufferedData() const = 0;

  // The session is about to be reported lost (disconnect_injected,
  // disconnected) or closed (agent_stopped): send what was rolled up so far,
  // a partial interval, so that those events follow it and an interval never
  // spans two connections. The next start() begins a new interval.
  virtual void flushRollup(int64_t /*nowMs*/) {}
  // The agent did not run for a while (SIGSTOP, a stalled machine): work it
  // never did is not logged as done. Schedules skip the missed periods
  // anyway; a stream drops the backlog the peer buffered meanwhile.
  virtual void resumedAfterStall(int64_t /*nowMs*/) {}
  // The session is lost: drop every channel without a libssh2 call
  // (libssh2_session_free takes them).
  virtual void abandon() = 0;
  // The session is closing: close channels best effort, never waiting.
  virtual void close() = 0;
};

}  // namespace sshsoak::agent
