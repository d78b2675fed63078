#include "session_agent/event_sink.h"

#include <unistd.h>

#include <algorithm>

#include "shared/wire_names.h"

namespace sshsoak::agent {

namespace {

// The sink whose heartbeat the waits without one keep (one per agent).
EventSink* processSink = nullptr;

}  // namespace

EventSink::EventSink(int fd, uint32_t sessionId, uint32_t heartbeatMs)
    : fd_(fd), sessionId_(sessionId), heartbeatMs_(heartbeatMs), lastSentMs_(monoMs()) {
  if (heartbeatMs_ > 0) processSink = this;
}

EventSink::~EventSink() {
  if (processSink == this) processSink = nullptr;
}

void EventSink::write(capnp::MessageBuilder& message) {
  if (!writeFrame(fd_, message)) supervisorGone_ = true;
  lastSentMs_ = monoMs();
}

void EventSink::failure(wire::Event::Builder event, wire::Failure::Builder f,
                        wire::FailureCategory category, const std::string& message,
                        int libssh2Error) {
  f.setCategory(category);
  f.setMessage(message);
  f.setLibssh2Error(libssh2Error);
  event.setSuccess(false);
  event.setDetail(std::string(categoryName(category)) + ": " + message);
}

int64_t EventSink::maybeHeartbeat(int64_t nowMs) {
  if (heartbeatMs_ == 0) return NEVER_MS;
  // Cheap: any other event in the interval is proof of life enough.
  if (nowMs - lastSentMs_ >= heartbeatMs_) {
    emit([&](wire::Event::Builder e) {
      auto h = e.initHeartbeat();
      h.setSeq(++heartbeatSeq_);
      h.setPhase(phase_);
      e.setSuccess(true);
    });
  }
  return lastSentMs_ + heartbeatMs_;
}

void EventSink::writeGarbageForTesting() {
  // A frame header announcing one segment of 2^29 words: more than any
  // frame may hold, so the reader refuses it instead of waiting for it.
  const uint32_t words[4] = {0, 0x20000000u, 0xdeadbeefu, 0xdeadbeefu};
  if (::write(fd_, words, sizeof words) < 0) supervisorGone_ = true;
}

int64_t heartbeatDue(int64_t nowMs) {
  return processSink != nullptr ? processSink->maybeHeartbeat(nowMs) : EventSink::NEVER_MS;
}

int waitTimeoutMs(int64_t nowMs, int64_t untilMs) {
  int64_t until = std::min(untilMs, heartbeatDue(nowMs));
  return static_cast<int>(std::clamp<int64_t>(until - nowMs, 0, 60'000));
}

}  // namespace sshsoak::agent
