#include "supervisor/analysis/jsonl_reader.h"

#include <capnp/schema.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <unordered_set>

#include "shared/wire_names.h"

namespace sshsoak {

std::string ReadError::text() const { return path + ": cannot open: " + std::strerror(errnum); }

Result<JsonlFile, ReadError> readJsonl(const std::string& path, std::streamoff offset) {
  std::ifstream in(path);
  if (!in) return fail(ReadError{path, errno});
  if (offset > 0) in.seekg(offset);
  JsonlFile file;
  std::string text;
  size_t lineNo = 0;
  while (std::getline(in, text)) {
    ++lineNo;
    if (text.empty()) continue;
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("event")) {
      file.damagedLine = lineNo;
      break;
    }
    file.lines.push_back(std::move(j));
  }
  return file;
}

const std::vector<std::string>& knownEvents() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all;
    for (auto f : capnp::Schema::from<wire::Event>().getUnionFields()) {
      all.emplace_back(eventName(static_cast<wire::Event::Which>(f.getProto().getDiscriminantValue())));
    }
    for (const char* supervisorEvent :
         {"run_started", "log_continued", "resource_sample", "checkpoint", "summary", "fault_started", "fault_injected",
          "agent_exited", "agent_crashed", "agent_gave_up", "agent_restarted", "agent_unresponsive", "agent_protocol_error",
          "run_aborted", "job", "job_phase",
          "job_queue", "job_rejected", "job_retried", "job_stats",
          // Issue 16: the relay's fault windows and the adaptive pacer's rate.
          "net_fault_started", "net_fault_ended", "pacer_rate"}) {
      all.emplace_back(supervisorEvent);
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
  }();
  return names;
}

bool isKnownEvent(const std::string& name) {
  static const std::unordered_set<std::string> known(knownEvents().begin(), knownEvents().end());
  return known.count(name) > 0;
}

std::optional<uint64_t> countField(const Json& j, const char* key, uint64_t max) {
  const Json& v = field(j, key);
  uint64_t n = 0;
  if (v.is_number_unsigned()) n = v.get<uint64_t>();
  else if (v.is_number_integer() && v.get<int64_t>() >= 0) n = static_cast<uint64_t>(v.get<int64_t>());
  else return std::nullopt;
  return n <= max ? std::optional<uint64_t>(n) : std::nullopt;
}

namespace {

// The value as the log has it, short.
std::string shown(const Json& v) {
  std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

}  // namespace

std::optional<std::string> lineProblem(const Json& line) {
  if (!line.is_object()) return "not a JSON object";
  auto bad = [&](const char* key, const std::string& why) {
    return std::optional<std::string>(std::string("field ") + key + ": " + shown(field(line, key)) + " " + why);
  };
  const Json& event = field(line, "event");
  if (event.is_null()) return std::optional<std::string>("field event: missing");
  if (!event.is_string()) return bad("event", "is not a string");
  if (!isKnownEvent(event.get<std::string>())) return bad("event", "is not an event sshsoak writes");
  if (!field(line, "ts").is_string()) return bad("ts", "is not a timestamp string");
  const Json& session = field(line, "session_id");
  if (!session.is_null() && !countField(line, "session_id", UINT32_MAX)) return bad("session_id", "is not a session number");
  for (const char* text : {"host", "detail", "run_id"}) {
    if (!field(line, text).is_null() && !field(line, text).is_string()) return bad(text, "is not a string");
  }
  const Json& elapsed = field(line, "elapsed_ms");
  if (!elapsed.is_null() && !countField(line, "elapsed_ms") &&
      !(elapsed.is_number_float() && elapsed.get<double>() >= 0 && std::isfinite(elapsed.get<double>()))) {
    return bad("elapsed_ms", "is not a duration");
  }
  if (!field(line, "attempt").is_null() && !countField(line, "attempt", UINT32_MAX)) {
    return bad("attempt", "is not an attempt number");
  }
  const Json& success = field(line, "success");
  if (!success.is_null() && !success.is_boolean()) return bad("success", "is not true or false");
  std::string name = event.get<std::string>();
  if (name == "run_started" && !field(line, "sessions").is_null() && !countField(line, "sessions", UINT32_MAX)) {
    return bad("sessions", "is not a session count");
  }
  if (name == "checkpoint" && !field(line, "checkpoint").is_null() && !countField(line, "checkpoint", UINT32_MAX)) {
    return bad("checkpoint", "is not a checkpoint number");
  }
  if (name == "summary" || name == "checkpoint") {
    if (!field(line, "abnormal_ends").is_null() && !countField(line, "abnormal_ends", UINT32_MAX)) {
      return bad("abnormal_ends", "is not a count");
    }
    const Json& verdict = field(line, "verdict");
    if (!verdict.is_null()) {
      if (!verdict.is_array()) return bad("verdict", "is not a list of criteria");
      for (const auto& c : verdict) {
        if (!c.is_object()) return bad("verdict", "holds an entry that is not an object");
        for (const char* text : {"criterion", "result", "comparison", "unit"}) {
          if (c.contains(text) && !c[text].is_string()) return bad("verdict", std::string("has a ") + text + " that is not a string");
        }
        for (const char* number : {"measured", "threshold"}) {
          if (c.contains(number) && !c[number].is_null() && !c[number].is_number()) {
            return bad("verdict", std::string("has a ") + number + " that is not a number");
          }
        }
      }
    }
    for (const char* object : {"resources", "workload"}) {
      if (!field(line, object).is_null() && !field(line, object).is_object()) return bad(object, "is not an object");
    }
  }
  return std::nullopt;
}

const Json& field(const Json& j, const char* key) {
  static const Json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::string textField(const Json& j, const char* key) {
  const Json& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

}  // namespace sshsoak
