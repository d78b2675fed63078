// The JSONL event log: one line per event in the predecessor's format (ts,
// session_id, host, event, detail, elapsed_ms, attempt, success first; typed
// fields after). The supervisor is its only writer, and every line goes to
// the file with one write(2) as it happens: a crash or SIGKILL of the
// supervisor loses nothing already logged.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "events.capnp.h"
#include "shared/fd.h"

namespace sshsoak {

using Json = nlohmann::ordered_json;

// The common head of every line; session-less lines pass a null id.
Json lineHead(int64_t wallNs, std::optional<uint32_t> sessionId, const std::string& host,
              std::string_view event);

// An agent's event as a log line.
Json eventToJson(wire::Event::Reader event, const std::string& host);

class JsonlLog {
 public:
  // Opens for append (creating it); throws std::system_error.
  explicit JsonlLog(const std::string& path);
  void write(const Json& line);
  const std::string& path() const { return path_; }
  uint64_t linesWritten() const { return lines_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t lines_ = 0;
};

}  // namespace sshsoak
