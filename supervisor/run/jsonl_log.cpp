#include "supervisor/run/jsonl_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "shared/clock.h"
#include "supervisor/analysis/jsonl_reader.h"

namespace sshsoak {

namespace {

UniqueFd openForAppend(const std::string& path) {
  return UniqueFd(sysCall(("open " + path).c_str(),
                          [&] { return ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644); }));
}

uint64_t sizeOf(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// The line with run_id right after the predecessor's eight fields (or at
// the end of a line that lacks them).
Json stamped(const Json& line, const std::string& runId) {
  if (runId.empty() || !line.is_object() || line.contains("run_id")) return line;
  Json out = Json::object();
  bool placed = false;
  for (auto it = line.begin(); it != line.end(); ++it) {
    out[it.key()] = it.value();
    if (it.key() == "success" && !placed) {
      out["run_id"] = runId;
      placed = true;
    }
  }
  if (!placed) out["run_id"] = runId;
  return out;
}

// Issue 17: shard and shards right after run_id (or at the end), and the
// slot's number as the global session id.
Json shardStamped(Json line, uint32_t index, uint32_t count, uint32_t firstSessionId) {
  if (!line.is_object() || line.contains("shard")) return line;
  if (firstSessionId > 0 && line.contains("session_id") && line["session_id"].is_number_unsigned()) {
    line["session_id"] = line["session_id"].get<uint64_t>() + firstSessionId;
  }
  Json out = Json::object();
  bool placed = false;
  for (auto it = line.begin(); it != line.end(); ++it) {
    out[it.key()] = std::move(it.value());
    if (it.key() == "run_id" && !placed) {
      out["shard"] = index;
      out["shards"] = count;
      placed = true;
    }
  }
  if (!placed) {
    out["shard"] = index;
    out["shards"] = count;
  }
  return out;
}

pid_t readPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  long pid = std::strtol(buf, nullptr, 10);
  return pid > 0 ? static_cast<pid_t>(pid) : 0;
}

}  // namespace

std::string LogFailure::text() const {
  return path + ": " + what + ": " + std::strerror(errnum) + " (errno " + std::to_string(errnum) + ")";
}

LogLock::LogLock(const std::string& logPath, Mode mode) : path_(lockPath(logPath)) {
  // The file found may be one its last holder is just removing (it unlinks
  // it while holding it exclusively): after locking, the path must still
  // name the file we hold, else try again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      error_ = path_ + ": cannot open: " + std::strerror(errno);
      return;
    }
    int op = (mode == Mode::EXCLUSIVE ? LOCK_EX : LOCK_SH) | LOCK_NB;
    int rc;
    do rc = ::flock(fd.get(), op);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) {
        error_ = path_ + ": cannot lock: " + std::strerror(errno);
        return;
      }
      holder_ = readPid(fd.get());
      return;
    }
    struct stat held{}, named{};
    if (::fstat(fd.get(), &held) != 0 || ::stat(path_.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev) {
      continue;
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (mode == Mode::EXCLUSIVE && ::ftruncate(fd.get(), 0) != 0) {
      spdlog::warn("{}: cannot truncate: {}", path_, std::strerror(errno));
    }
    if (::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      spdlog::warn("{}: cannot write our pid: {}", path_, std::strerror(errno));
    }
    fd_ = std::move(fd);
    return;
  }
  error_ = path_ + ": removed and recreated by other runs while locking; try again";
}

LogLock::~LogLock() {
  if (fd_.get() < 0) return;
  // Remove the file only when no other run shares it: upgrade to exclusive
  // without waiting; unlinked while held, so a run locking it meanwhile
  // sees the path no longer names its file and tries again.
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) ::unlink(path_.c_str());
}

JsonlLog::JsonlLog(const std::string& path, LogRotation rotation)
    : path_(path), rotation_(rotation), fd_(openForAppend(path)), bytes_(sizeOf(fd_.get())) {
  // A run killed mid-write left a cut last line: this run's first line goes
  // on a line of its own, not glued to it (readers skip the cut one).
  char last = '\n';
  if (bytes_ > 0 && ::pread(fd_.get(), &last, 1, static_cast<off_t>(bytes_ - 1)) == 1 && last != '\n') {
    writeAll(fd_.get(), "\n", 1);
    ++bytes_;
  }
}

void JsonlLog::write(const Json& given) {
  bool isRunStarted = given.is_object() && given.value("event", "") == "run_started";
  if (isRunStarted && runId_.empty() && given.contains("run_id") && given["run_id"].is_string()) {
    runId_ = given["run_id"].get<std::string>();
  }
  Json line = stamped(given, runId_);
  if (shard_) line = shardStamped(std::move(line), shard_->index, shard_->count, shard_->firstSessionId);
  // Invalid UTF-8 from a remote host is replaced, never a reason to throw.
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  text += '\n';
  if (!failure_) {
    int64_t now = monoMs();
    if (now - lastCheckMs_ >= 1000) {
      lastCheckMs_ = now;
      checkFile();
    }
  }
  // Rotate before the line that would cross the cap, so that each file
  // stays within it (a single line larger than the cap still goes whole).
  if (!failure_ && rotation_.maxBytes > 0 && bytes_ > 0 && bytes_ + text.size() > rotation_.maxBytes && rotate() &&
      runStarted_) {
    Json continued = lineHead(wallNs(), std::nullopt, "", "log_continued");
    continued["run_id"] = runStarted_->value("run_id", "");
    continued["part"] = part_;
    continued["run_started"] = *runStarted_;
    writeText(continued.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", continued);
  }
  if (isRunStarted) {
    runStarted_ = line;
    runOffset_ = bytes_;
  }
  writeText(text, line);
}

void JsonlLog::writeText(const std::string& text, const Json& line) {
  if (!failure_) {
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd_.get(), text.data() + done, text.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      int err = n < 0 ? errno : EIO;
      if (done > 0) {
        // A torn line: cut it off again, so that the file ends with a whole
        // line. Only when it is still the file's end (a run appending to the
        // same file may have written after it: then its last newline-less
        // part is repaired by the next open, and readers skip it).
        off_t end = ::lseek(fd_.get(), 0, SEEK_CUR);
        struct stat st{};
        if (end >= static_cast<off_t>(done) && ::fstat(fd_.get(), &st) == 0 && st.st_size == end &&
            ::ftruncate(fd_.get(), end - static_cast<off_t>(done)) != 0) {
          spdlog::warn("{}: cannot cut the partly written line: {}", path_, std::strerror(errno));
        }
      }
      markFailed(err, done > 0 ? "write failed part-way (" + std::to_string(done) + " of " + std::to_string(text.size()) +
                               " bytes; cut back)"
                         : "write failed");
      break;
    }
    if (!failure_) {
      bytes_ += text.size();
      ++lines_;
    }
  }
  if (listener_) listener_(line);
}

void JsonlLog::checkFile() {
  if (failure_) return;
  struct stat ours{}, named{};
  if (::fstat(fd_.get(), &ours) != 0) {
    markFailed(errno, "cannot stat the open log");
    return;
  }
  if (ours.st_nlink == 0 || ::stat(path_.c_str(), &named) != 0) {
    markFailed(ENOENT, "deleted under the run");
    return;
  }
  if (named.st_ino != ours.st_ino || named.st_dev != ours.st_dev) {
    markFailed(ESTALE, "replaced by another file under the run (inode " + std::to_string(named.st_ino) + ", ours " +
                     std::to_string(ours.st_ino) + ")");
  }
}

void JsonlLog::markFailed(int errnum, std::string what) {
  if (failure_) return;
  failure_ = LogFailure{path_, errnum, std::move(what)};
  if (onFailure_) onFailure_(*failure_);
}

Result<std::vector<Json>, ReadError> JsonlLog::readRunBack() const {
  auto file = readJsonl(path_, static_cast<std::streamoff>(runOffset_));
  if (!file) return fail(file.error());
  std::vector<Json> lines = std::move(file->lines);
  if (part_ > 1 && runStarted_ && !lines.empty() && textField(lines.front(), "event") == "log_continued") {
    lines.front() = *runStarted_;
  }
  return lines;
}

bool JsonlLog::rotate() {
  if (rotationFailed_) return false;
  checkFile();  // a replaced file is not rotated into LOG.1
  if (failure_) return false;
  // LOG.keep is the oldest kept; it would become LOG.keep+1: delete it.
  std::string oldest = rotatedPath(path_, rotation_.keep);
  if (::unlink(oldest.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("log rotation: cannot delete {}: {}", oldest, std::strerror(errno));
  }
  for (uint32_t k = rotation_.keep; k-- > 1;) {
    std::string from = rotatedPath(path_, k);
    if (std::rename(from.c_str(), rotatedPath(path_, k + 1).c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("log rotation: cannot rename {}: {}", from, std::strerror(errno));
    }
  }
  // Open the next file before giving up the current one: if either step
  // fails, every line still goes to the file we have.
  std::string first = rotatedPath(path_, 1);
  if (std::rename(path_.c_str(), first.c_str()) != 0) {
    rotationFailed_ = true;
    spdlog::error("log rotation: cannot rename {} to {}: {}; the log grows on in one file", path_, first,
                  std::strerror(errno));
    return false;
  }
  try {
    fd_ = openForAppend(path_);
  } catch (const std::system_error& e) {
    // The old file (now LOG.1) is still open: it goes back to its name and
    // the log goes on in it (else the file check would find LOG gone and
    // call the log deleted under the run).
    rotationFailed_ = true;
    if (std::rename(first.c_str(), path_.c_str()) == 0) {
      spdlog::error("log rotation: {}; the log grows on in one file", e.what());
    } else {
      spdlog::error("log rotation: {}; the log goes on in {}", e.what(), first);
    }
    return false;
  }
  bytes_ = sizeOf(fd_.get());
  runOffset_ = 0;
  // Earlier runs' lines rotated away before this run's first line do not
  // make this run's parts.
  if (runStarted_) ++part_;
  return true;
}

}  // namespace sshsoak
