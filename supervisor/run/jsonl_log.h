// The JSONL event log (lines as supervisor/log_line.h makes them). The
// supervisor is its only writer, and every line goes to the file with one
// write(2) as it happens: a crash or SIGKILL of the supervisor loses nothing
// already logged.
//
// With a size cap (--log-max-mb) the file is rotated like logrotate's
// numbered scheme: LOG.k becomes LOG.k+1 (the one beyond `keep` is deleted),
// LOG becomes LOG.1, and a new LOG starts with a `log_continued` line that
// carries the run's `run_started` line, so each file reads on its own.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/log_line.h"
#include "shared/result.h"
#include "shared/fd.h"

namespace sshsoak {

struct ReadError;  // supervisor/analysis/jsonl_reader.h (not included: tests name their own readJsonl)

struct LogRotation {
  uint64_t maxBytes = 0;  // 0: never rotate
  uint32_t keep = 9;      // rotated files kept: LOG.1 .. LOG.keep
};

class JsonlLog {
 public:
  // Opens for append (creating it); throws std::system_error.
  explicit JsonlLog(const std::string& path, LogRotation rotation = {});
  void write(const Json& line);
  // Called with every line once it is written: the live run's model sees
  // exactly what the log gets (JSONL is the contract with the analysis).
  void setListener(std::function<void(const Json&)> listener) { listener_ = std::move(listener); }
  const std::string& path() const { return path_; }
  uint64_t linesWritten() const { return lines_; }
  // Where this run's `run_started` line begins in the current file (0 after
  // a rotation: the file then starts with `log_continued`), and the part
  // (1 before any rotation, 2 after the first, ...).
  uint64_t runOffset() const { return runOffset_; }
  uint32_t part() const { return part_; }
  // The run's `run_started` line, once written.
  const std::optional<Json>& runStarted() const { return runStarted_; }
  // The run's lines in the current file, read back: from its run_started
  // line, or after a rotation from the log_continued line, replaced by the
  // run_started it carries (so a reader sees one run).
  Result<std::vector<Json>, ReadError> readRunBack() const;
  // The path of the k-th rotated file (LOG.k).
  static std::string rotatedPath(const std::string& path, uint32_t k) { return path + "." + std::to_string(k); }

 private:
  void writeText(const std::string& text, const Json& line);
  // Shifts the numbered files and starts a new LOG; false (and the old file
  // kept) if the file system refuses: a rotation never loses a line.
  bool rotate();

  std::string path_;
  LogRotation rotation_;
  UniqueFd fd_;
  uint64_t bytes_ = 0;  // the current file's size
  uint64_t lines_ = 0;
  uint64_t runOffset_ = 0;
  uint32_t part_ = 1;
  bool rotationFailed_ = false;
  std::optional<Json> runStarted_;
  std::function<void(const Json&)> listener_;
};

}  // namespace sshsoak
