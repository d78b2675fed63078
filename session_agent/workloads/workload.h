// What the session loop drives once a session is usable, without knowing
// which workload it is (as mosh's Transport<State> drives any state type):
// the PTY stream, the exec polls, and whatever comes next. A workload owns
// its channels and its timers; the loop owns the connection (keepalive,
// silence, transport errors, injected drops) and the one poll() that sleeps
// until the socket, a command or the earliest wake-up of anyone.
//
// One turn of the loop, in order:
//   onTurn(now)           begin what is due (a poll round, a PTY retry)
//   step() ...            repeated while anyone progressed: libssh2 may
//                         buffer data for one channel while reading another
//   hasBufferedData()     if anyone's data waits inside libssh2, no sleep
//   wantsRead/Write, nextWakeMs   shape the poll() that sleeps
//   afterWait(now)        own deadlines, checked once the sleep ended
// A workload that finds the connection itself gone reports SessionLost;
// the loop then calls abandon() on everyone. Adding a workload: its files
// in workloads/, one entry in workloads/registry.{h,cpp}, and its spec in
// schemas/events.capnp (WorkloadSpec).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "events.capnp.h"

namespace sshsoak::agent {

class EventSink;
class SshConnection;

// What the loop hands a workload when a session becomes usable; valid until
// abandon() or close().
struct WorkloadContext {
  SshConnection& conn;
  EventSink& events;
  // The budget of one unit of work (an exec round, a PTY setup): the CLI's
  // --reconnect-timeout-secs, as for establishing a session.
  uint32_t stepTimeoutMs;
};

struct SessionLost {
  wire::DisconnectCause cause;
  std::string message;
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
  // Readiness: advance every channel as far as it goes without blocking.
  virtual StepResult step() = 0;
  // Time: the loop's sleep ended; check own deadlines.
  virtual std::optional<SessionLost> afterWait(int64_t nowMs) = 0;

  // A channel is open: libssh2 is called every turn and consumes whatever
  // the socket brings, so the loop watches it for input.
  virtual bool wantsRead() const = 0;
  // Requests are being sent: the loop watches for output room when libssh2
  // is blocked on it.
  virtual bool wantsWrite() const = 0;
  // The next time this workload must run even if the socket stays quiet
  // (NO_WAKE_MS: none).
  virtual int64_t nextWakeMs() const = 0;
  // Data for one of its channels already waits inside libssh2.
  virtual bool hasBufferedData() const = 0;

  // The session is lost: drop every channel without a libssh2 call
  // (libssh2_session_free takes them).
  virtual void abandon() = 0;
  // The session is closing: close channels best effort, never waiting.
  virtual void close() = 0;
};

}  // namespace sshsoak::agent
