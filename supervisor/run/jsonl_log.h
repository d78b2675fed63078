// The JSONL event log: one line per event in the predecessor's format (ts,
// session_id, host, event, detail, elapsed_ms, attempt, success first; typed
// fields after). The supervisor is its only writer, and every line goes to
// the file with one write(2) as it happens: a crash or SIGKILL of the
// supervisor loses nothing already logged.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "events.capnp.h"
#include "shared/fd.h"

namespace sshsoak {

using Json = nlohmann::ordered_json;

// The common head of every line; session-less lines pass a null id.
Json lineHead(int64_t wallNs, std::optional<uint32_t> sessionId, const std::string& host,
              std::string_view event);

// An agent's event as a log line.
Json eventToJson(wire::Event::Reader event, const std::string& host);

// agent_gave_up's detail is the reason followed by this; the run model
// takes the reason back from it.
inline constexpr std::string_view GAVE_UP_DETAIL_SUFFIX = "; the slot is not restarted";

class JsonlLog {
 public:
  // Opens for append (creating it); throws std::system_error.
  explicit JsonlLog(const std::string& path);
  void write(const Json& line);
  // Called with every line once it is written: the live run's model sees
  // exactly what the log gets (JSONL is the contract with the analysis).
  void setListener(std::function<void(const Json&)> listener) { listener_ = std::move(listener); }
  const std::string& path() const { return path_; }
  uint64_t linesWritten() const { return lines_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t lines_ = 0;
  std::function<void(const Json&)> listener_;
};

}  // namespace sshsoak
