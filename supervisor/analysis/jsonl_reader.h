// The one reader of JSONL event logs, for `sshsoak report` and for the end
// of a live run: a file (or its tail from an offset) as parsed lines. A log
// cut short by a killed run is read up to the damage, and the damaged line
// is named by its number so that the reader can say where.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ios>
#include <optional>
#include <string>
#include <vector>

#include "shared/result.h"
#include "supervisor/log_line.h"

namespace sshsoak {

struct JsonlFile {
  std::vector<Json> lines;  // every event line before any damage, in order
  // The first line (1-based, counted from the offset) that is not a
  // complete event; reading stopped before it.
  std::optional<size_t> damagedLine;
};

// The file could not be opened at all.
struct ReadError {
  std::string path;
  int errnum = 0;
  std::string text() const;  // "PATH: cannot open: No such file or directory"
};

Result<JsonlFile, ReadError> readJsonl(const std::string& path, std::streamoff offset = 0);

// Every event name sshsoak writes: the agents' (shared/wire_names.h, the
// one list) and the supervisor's (docs/reference.md).
const std::vector<std::string>& knownEvents();
bool isKnownEvent(const std::string& name);

// What is wrong with a parsed line that `report` cannot use, naming the
// field and the value as it is in the log ("field session_id: -5 is not a
// session number"); nullopt for a usable line. Checked: the object, the
// eight head fields' types, a known event, run_id, and the figures the
// report reads from summary, checkpoint and run_started lines.
std::optional<std::string> lineProblem(const Json& line);

// A whole number field in [0, max], or nullopt (missing, negative, a
// fraction, out of range, not a number): never a wrapped value.
std::optional<uint64_t> countField(const Json& j, const char* key, uint64_t max = UINT64_MAX);

// A field of a log line, or null when it is missing: logs come from other
// versions and damaged files, and const operator[] on a missing key is
// undefined behaviour in nlohmann::json.
const Json& field(const Json& j, const char* key);
// A string field, or "" when it is missing or not a string.
std::string textField(const Json& j, const char* key);

}  // namespace sshsoak
