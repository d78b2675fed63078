// The JSONL event log (lines as supervisor/log_line.h makes them). The
// supervisor is its only writer, and every line goes to the file with one
// write(2) as it happens: a crash or SIGKILL of the supervisor loses nothing
// already logged.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "supervisor/log_line.h"
#include "shared/fd.h"

namespace sshsoak {

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
