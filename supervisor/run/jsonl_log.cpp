#include "supervisor/run/jsonl_log.h"

#include <fcntl.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
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

}  // namespace

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

void JsonlLog::write(const Json& line) {
  // Invalid UTF-8 from a remote host is replaced, never a reason to throw.
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  text += '\n';
  bool isRunStarted = line.is_object() && line.value("event", "") == "run_started";
  // Rotate before the line that would cross the cap, so that each file
  // stays within it (a single line larger than the cap still goes whole).
  if (rotation_.maxBytes > 0 && bytes_ > 0 && bytes_ + text.size() > rotation_.maxBytes && rotate() &&
      runStarted_) {
    Json continued = lineHead(wallNs(), std::nullopt, "", "log_continued");
    continued["part"] = part_;
    continued["run_id"] = runStarted_->value("run_id", "");
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
  writeAll(fd_.get(), text.data(), text.size());
  bytes_ += text.size();
  ++lines_;
  if (listener_) listener_(line);
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
    // The old file (now LOG.1) is still open: go on writing to it.
    rotationFailed_ = true;
    spdlog::error("log rotation: {}; the log goes on in {}", e.what(), first);
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
