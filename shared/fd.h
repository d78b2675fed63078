// Move-only owner of a file descriptor, and the one syscall wrapper.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace sshsoak {

// Throws std::system_error naming the call and its context. For "should not
// happen" failures; expected outcomes (refused, timed out) are values.
[[noreturn]] void throwErrno(const std::string& what, int err = errno);

// Runs a syscall-like expression, retrying on EINTR; throws on -1.
template <typename F>
auto sysCall(const char* what, F&& f) {
  for (;;) {
    auto rc = f();
    if (rc != -1) return rc;
    if (errno == EINTR) continue;
    throwErrno(what);
  }
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  // Never retries close(): on Linux the fd is gone even on EINTR.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

struct Pipe {
  UniqueFd readEnd;
  UniqueFd writeEnd;
};
// Both ends close-on-exec; children get what they need through dup2.
Pipe makePipe();

void setNonBlocking(int fd, bool on = true);

// Writes all of buf, waiting (poll) when the fd is non-blocking and full.
// Returns false if the reader is gone (EPIPE); throws on other errors.
bool writeAll(int fd, const void* buf, size_t len);

// Number of open fds of this process (from /proc/self/fd).
int countOpenFds();

// A whole file's bytes, or nullopt if it cannot be read.
std::optional<std::string> readWholeFile(const std::string& path);

}  // namespace sshsoak
