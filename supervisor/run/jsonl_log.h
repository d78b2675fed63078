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

#include <sys/types.h>

#include <cstdint>
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

// A write to the log that failed, or the file found deleted or replaced
// under the run: named on the console (path, errno) by whoever handles it.
struct LogFailure {
  std::string path;
  int errnum = 0;     // the errno of the failed call (ENOENT: deleted, ESTALE: replaced)
  std::string what;   // "write", "deleted", "replaced by another file", ...
  std::string text() const;  // "PATH: write failed: No space left on device"
};

// The log's lock: LOG.lock, a side file held with flock(2) for the run's
// life (a lock on the side file survives the run reading its own log back,
// which an fcntl lock would not, and the kernel drops it when the holder
// dies, so a SIGKILLed run's leftover file blocks nobody). It holds the
// holder's pid, for the refusal message. A run with --append takes it
// shared: appending runs share the file; a run without --append is
// refused while any run holds it.
class LogLock {
 public:
  enum class Mode { EXCLUSIVE, SHARED };
  // Takes the lock. Refused (held by a live process): holderPid() names it
  // (0 when the holder has not yet written its pid). A file system that
  // cannot hold the lock file at all: error() says why.
  LogLock(const std::string& logPath, Mode mode);
  ~LogLock();
  LogLock(const LogLock&) = delete;
  LogLock& operator=(const LogLock&) = delete;
  bool held() const { return fd_.get() >= 0; }
  pid_t holderPid() const { return holder_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  static std::string lockPath(const std::string& logPath) { return logPath + ".lock"; }

 private:
  std::string path_;
  UniqueFd fd_;
  pid_t holder_ = 0;
  std::string error_;
};

struct LogRotation {
  uint64_t maxBytes = 0;  // 0: never rotate
  uint32_t keep = 9;      // rotated files kept: LOG.1 .. LOG.keep
};

class JsonlLog {
 public:
  // Opens for append (creating it); throws std::system_error.
  explicit JsonlLog(const std::string& path, LogRotation rotation = {});
  // Stamps the line with the run's id (after the predecessor's eight
  // fields), writes it with one write(2) and hands it to the listener. A
  // failed write (or the file found deleted or replaced) is reported once to
  // the failure handler; from then on lines go to the listener only.
  void write(const Json& line);
  // The run's id, stamped on every line; set from the run_started line
  // when not set before.
  void setRunId(std::string id) { runId_ = std::move(id); }
  const std::string& runId() const { return runId_; }
  // Issue 17: a shard's lines carry `shard` and `shards` after run_id, and
  // its slots' local numbers become the run's global session ids here, the
  // one place every line passes (the listener gets the global ids too).
  void setShard(uint32_t index, uint32_t count, uint32_t firstSessionId) {
    shard_ = ShardStamp{index, count, firstSessionId};
  }
  // Called once, on the first failure (from inside write()).
  void setFailureHandler(std::function<void(const LogFailure&)> handler) { onFailure_ = std::move(handler); }
  const std::optional<LogFailure>& failure() const { return failure_; }
  // Checks that the file is still the one we write to (not deleted, not
  // replaced); write() calls it at most once a second.
  void checkFile();
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
  void markFailed(int errnum, std::string what);
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
  std::string runId_;
  struct ShardStamp {
    uint32_t index = 0, count = 1, firstSessionId = 0;
  };
  std::optional<ShardStamp> shard_;
  std::optional<LogFailure> failure_;
  std::function<void(const LogFailure&)> onFailure_;
  int64_t lastCheckMs_ = 0;
  std::function<void(const Json&)> listener_;
};

}  // namespace sshsoak
