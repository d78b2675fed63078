// One session slot of the run: the agent process that serves it, that
// agent's two pipes, its restart policy and its state. The state changes in
// one place, Slot::transition, which logs every change; an agent is killed in
// one place, Slot (sendKill, killAgent). The Supervisor drives the slots from its event
// loop (docs/design.md, "Supervision").
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>

#include "events.capnp.h"
#include "shared/fd.h"
#include "shared/frame.h"
#include "supervisor/run/exit_status.h"
#include "supervisor/run/restart_policy.h"

namespace sshsoak {

// A slot's life (s6-supervise's and systemd's service states, reduced):
//
//   Starting --first event--> Running
//   Starting, Running --exited, pipe closed or told to stop--> Draining
//   Draining --exit recorded--> Finished (run ending) | Restarting | GaveUp
//   Restarting --restart timer--> Starting | GaveUp (cannot spawn)
//   Restarting --run ending--> Finished
//
// Draining waits for both ends of an agent: its reaped exit status and the
// end of its event pipe, in either order; only then is its exit logged, so
// every event it wrote is logged before its agent_exited/agent_crashed line.
enum class SlotState {
  Starting,    // an agent is spawned; no event from it yet
  Running,     // its events arrive
  Draining,    // it exited, closed its pipe or is being stopped; not yet both reaped and drained
  Restarting,  // it crashed; the restart timer runs
  GaveUp,      // too many crashes, or it could not be started again: never restarted
  Finished,    // its last agent is reaped, drained and recorded, and the run is ending
};

std::string_view slotStateName(SlotState state);  // "starting", "running", ...

class Slot {
 public:
  // Bytes read from an agent's event pipe at a time.
  static constexpr size_t READ_CHUNK_BYTES = 65536;

  // A slot is created in Starting, just before its first agent is spawned.
  Slot(uint32_t id, std::string host, RestartConfig restart, boost::asio::io_context& io);
  // An agent still running is killed and reaped: none outlives the run.
  ~Slot();
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  uint32_t id() const { return id_; }
  const std::string& host() const { return host_; }
  SlotState state() const { return state_; }
  // Nothing more will happen in this slot (GaveUp or Finished).
  bool ended() const { return state_ == SlotState::GaveUp || state_ == SlotState::Finished; }

  // The only writer of the state. Logs "session 03: running -> draining
  // (why)" at debug level. A transition the table above does not have is a
  // bug: throws std::logic_error naming the slot and both states.
  void transition(SlotState to, std::string_view why);

  // ---- The agent process.
  // A freshly spawned agent: its pid, the write end of its command pipe and
  // the read end of its event pipe. Moves the slot to Starting.
  void attach(pid_t pid, UniqueFd commandFd, std::unique_ptr<boost::asio::posix::stream_descriptor> events);
  // The current agent's pid; -1 once its exit is recorded.
  pid_t pid() const { return pid_; }
  // Spawned and not reaped yet.
  bool agentRunning() const { return pid_ > 0 && !reaped_; }
  // waitpid(WNOHANG): true when the agent has just been reaped.
  bool tryReap();
  // The one place an agent is killed. sendKill: SIGKILL to a running agent,
  // nothing more (it is reaped on SIGCHLD, like any exit). killAgent:
  // SIGKILL, then waitpid until it is reaped (a SIGKILLed process goes at
  // once). Both are no-ops when none is running.
  void sendKill();
  void killAgent();
  // Reaped and its event pipe drained: its exit can be recorded.
  bool exitedAndDrained() const { return pid_ > 0 && reaped_ && eof_; }
  ExitInfo exitInfo() const { return decodeWaitStatus(waitStatus_); }
  int64_t uptimeMs(int64_t nowMono) const { return nowMono - startedMono_; }
  // After the exit is recorded: closes both pipes and forgets the pid.
  void detach();

  // ---- Its pipes.
  // The event pipe while it is being read; null once it ended.
  boost::asio::posix::stream_descriptor* events() { return eof_ ? nullptr : events_.get(); }
  std::array<char, READ_CHUNK_BYTES>& readBuffer() { return buf_; }
  FrameReader& frames() { return frames_; }
  // EOF, a read error or a stream that cannot be decoded: no more events
  // from this agent.
  void pipeEnded();
  // Writes one message to the agent's command pipe. False if it has none or
  // the agent is gone (EPIPE).
  bool send(capnp::MessageBuilder& message);

  // ---- Liveness (the watchdog, docs/reference.md "Heartbeat and watchdog").
  // Any frame is life: called for each one, heartbeats included.
  void heard(int64_t nowMono, wire::Event::Which event, std::string_view heartbeatPhase = {});
  int64_t lastHeardMono() const { return lastHeardMono_; }
  // After the supervisor itself could not run (stopped, stalled): the
  // silence it could not watch is not the agent's.
  void forgiveSilence(int64_t nowMono) { lastHeardMono_ = std::max(lastHeardMono_, nowMono); }
  // The name of the last event heard other than a heartbeat ("" before the
  // first), and the phase of its last heartbeat ("" before the first).
  std::string_view lastEvent() const { return lastEvent_; }
  const std::string& lastPhase() const { return lastPhase_; }
  // The watchdog killed this agent (agent_unresponsive), or the supervisor
  // killed it for a protocol error: its crash line says why. Cleared at the
  // next attach.
  void killedBecause(std::string why) { killedBecause_ = std::move(why); }
  const std::string& killedBecause() const { return killedBecause_; }

  // ---- Supervision.
  uint32_t restarts() const { return restarts_; }
  void countRestart() { ++restarts_; }
  // The restart count to mark an event's log line with: a restarted agent's
  // "agent_started" and its first "connected" carry it.
  std::optional<uint32_t> restartMark(wire::Event::Which event);
  RestartDecision onCrash(int64_t nowMono) { return policy_.onCrash(nowMono, startedMono_); }
  // Moves the slot to Restarting; `then` runs when the delay is over (not
  // when the timer is cancelled).
  void scheduleRestart(int64_t delayMs, std::function<void()> then);
  void cancelRestart() { restartTimer_.cancel(); }

 private:
  const uint32_t id_;
  const std::string host_;
  SlotState state_ = SlotState::Starting;
  RestartPolicy policy_;
  boost::asio::steady_timer restartTimer_;
  uint32_t restarts_ = 0;  // how many times this slot was started again

  // The current agent.
  pid_t pid_ = -1;
  bool reaped_ = true;
  int waitStatus_ = 0;
  int64_t startedMono_ = 0;
  bool connectedSinceSpawn_ = false;
  int64_t lastHeardMono_ = 0;   // the agent's spawn, then its last frame
  std::string_view lastEvent_;  // wire_names' static names
  std::string lastPhase_;
  std::string killedBecause_;
  UniqueFd commandFd_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> events_;
  bool eof_ = true;
  FrameReader frames_;
  std::array<char, READ_CHUNK_BYTES> buf_{};
};

}  // namespace sshsoak
