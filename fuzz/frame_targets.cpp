// The pipes between sshsoak and its agents: what one side reads is whatever
// the other wrote, so neither may trust a frame's header or its message.
#include <capnp/serialize.h>

#include <algorithm>
#include <exception>

#include "events.capnp.h"
#include "fuzz/fuzz_targets.h"
#include "session_agent/agent.h"
#include "session_agent/workloads/jobs.h"
#include "shared/frame.h"
#include "supervisor/log_line.h"

namespace sshsoak::fuzz {

namespace {

// Feeds the bytes in pieces of 1, 2, 3, ... bytes, as a pipe may deliver
// them, and hands each whole frame to onFrame after each piece.
template <typename OnFrame>
void readFrames(const uint8_t* data, size_t size, OnFrame onFrame) {
  FrameReader reader;
  size_t pos = 0;
  for (size_t piece = 1; pos < size; ++piece) {
    size_t n = std::min(piece, size - pos);
    reader.feed(data + pos, n);
    pos += n;
    while (auto words = reader.next()) onFrame(*words);
  }
}

}  // namespace

int frameEvents(const uint8_t* data, size_t size) {
  try {
    readFrames(data, size, [](const kj::Array<capnp::word>& words) {
      capnp::FlatArrayMessageReader message(words);
      auto event = message.getRoot<wire::Event>();
      Json line = eventToJson(event, "fuzz.example:22");
      // As the log writes it (run/jsonl_log.cpp).
      std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
      (void)text;
    });
  } catch (const std::exception&) {
    // Supervisor::onEventBytes: an unreadable stream is reported and no
    // longer read (FrameError, or kj's exception for a bad message).
  }
  return 0;
}

int agentFrames(const uint8_t* data, size_t size) {
  try {
    bool configured = false;
    readFrames(data, size, [&](const kj::Array<capnp::word>& words) {
      capnp::FlatArrayMessageReader message(words);
      if (!configured) {
        configured = true;
        auto settings = agent::AgentSettings::fromWire(message.getRoot<wire::AgentConfig>());
        (void)settings;
        return;
      }
      auto cmd = message.getRoot<wire::Command>();
      if (cmd.which() == wire::Command::RUN_JOB) {
        auto job = agent::JobRequest::fromWire(cmd.getRunJob());
        (void)job;
      }
    });
  } catch (const std::exception&) {
    // sshsoak-agent's main: an internal error, the agent exits.
  }
  return 0;
}

}  // namespace sshsoak::fuzz
