// The agent's only output: Cap'n Proto events on the event fd. Each event is
// written whole and at once (no buffering in the agent), so whatever an agent
// emitted before it crashed is in the pipe for the supervisor to log.
//
// It also keeps the agent's heartbeat (docs/reference.md, "Heartbeat and
// watchdog"): an agent that sent nothing for heartbeatMs sends a heartbeat
// frame naming its phase, so that the supervisor can tell a quiet agent from
// a stuck one. Every wait of the agent calls maybeHeartbeat (or the free
// heartbeatDue, for waits deep in a connect) and sleeps no longer than the
// time it returns: the heartbeat comes from the agent's own loop, so an agent
// stuck in a call or a busy loop stops sending it.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <limits>
#include <string>

#include "events.capnp.h"
#include "shared/clock.h"
#include "shared/frame.h"

namespace sshsoak::agent {

class EventSink {
 public:
  static constexpr int64_t NEVER_MS = std::numeric_limits<int64_t>::max();

  // heartbeatMs 0: no heartbeats. The sink with heartbeats is the process's
  // (heartbeatDue below reaches it); an agent has one.
  EventSink(int fd, uint32_t sessionId, uint32_t heartbeatMs = 0);
  ~EventSink();
  EventSink(const EventSink&) = delete;
  EventSink& operator=(const EventSink&) = delete;

  template <typename Fill>
  void emit(Fill&& fill) {
    capnp::MallocMessageBuilder message;
    auto event = message.initRoot<wire::Event>();
    event.setSessionId(sessionId_);
    event.setWallNs(wallNs());
    fill(event);
    write(message);
  }

  // Helpers for the common shapes.
  void failure(wire::Event::Builder event, wire::Failure::Builder f, wire::FailureCategory category,
               const std::string& message, int libssh2Error = 0);

  bool supervisorGone() const { return supervisorGone_; }

  // What the agent is doing, for the heartbeat: a string literal
  // ("connecting", "backoff", "session", "churn", "jobs", "transfer",
  // "manual", "stopping").
  void setPhase(const char* phase) { phase_ = phase; }
  const char* phase() const { return phase_; }
  // Sends a heartbeat if nothing went out for heartbeatMs. Returns when the
  // next one is due (NEVER_MS: heartbeats are off): a wait sleeps no longer.
  int64_t maybeHeartbeat(int64_t nowMs);
  // Test only (--garbage-for-testing): writes bytes that are no valid frame.
  void writeGarbageForTesting();

 private:
  void write(capnp::MessageBuilder& message);

  int fd_;
  uint32_t sessionId_;
  uint32_t heartbeatMs_;
  int64_t lastSentMs_;
  uint64_t heartbeatSeq_ = 0;
  const char* phase_ = "starting";
  bool supervisorGone_ = false;
};

// The process's heartbeat, for waits that hold no EventSink (pollUntil deep
// in a connect): EventSink::maybeHeartbeat of the agent's sink, or NEVER_MS
// when there is none or heartbeats are off.
int64_t heartbeatDue(int64_t nowMs);

// A wait's poll(2) timeout: until untilMs, but no later than the next
// heartbeat and no longer than a minute; never negative.
int waitTimeoutMs(int64_t nowMs, int64_t untilMs);

}  // namespace sshsoak::agent
