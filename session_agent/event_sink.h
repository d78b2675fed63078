// The agent's only output: Cap'n Proto events on the event fd. Each event is
// written whole and at once (no buffering in the agent), so whatever an agent
// emitted before it crashed is in the pipe for the supervisor to log.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <string>

#include "events.capnp.h"
#include "shared/clock.h"
#include "shared/frame.h"

namespace sshsoak::agent {

class EventSink {
 public:
  EventSink(int fd, uint32_t sessionId) : fd_(fd), sessionId_(sessionId) {}

  template <typename Fill>
  void emit(Fill&& fill) {
    capnp::MallocMessageBuilder message;
    auto event = message.initRoot<wire::Event>();
    event.setSessionId(sessionId_);
    event.setWallNs(wallNs());
    fill(event);
    if (!writeFrame(fd_, message)) supervisorGone_ = true;
  }

  // Helpers for the common shapes.
  void failure(wire::Event::Builder event, wire::Failure::Builder f, wire::FailureCategory category,
               const std::string& message, int libssh2Error = 0);

  bool supervisorGone() const { return supervisorGone_; }

 private:
  int fd_;
  uint32_t sessionId_;
  bool supervisorGone_ = false;
};

}  // namespace sshsoak::agent
