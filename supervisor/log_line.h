// A line of the JSONL event log: the predecessor's format (ts, session_id,
// host, event, detail, elapsed_ms, attempt, success first; typed fields
// after). JSONL is the contract between the live run (supervisor/run/, which
// writes the lines) and the analysis (supervisor/analysis/, which reads them,
// live or from a file); docs/reference.md lists every line and field.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "events.capnp.h"

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

}  // namespace sshsoak
