#include "shared/fd.h"

#include <fstream>
#include <sstream>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace sshsoak {

void throwErrno(const std::string& what, int err) {
  throw std::system_error(err, std::generic_category(), what);
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Pipe makePipe() {
  int fds[2];
  sysCall("pipe2", [&] { return ::pipe2(fds, O_CLOEXEC); });
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void setNonBlocking(int fd, bool on) {
  int flags = sysCall("fcntl(F_GETFL)", [&] { return ::fcntl(fd, F_GETFL); });
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  sysCall("fcntl(F_SETFL)", [&] { return ::fcntl(fd, F_SETFL, flags); });
}

bool writeAll(int fd, const void* buf, size_t len) {
  auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n >= 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd pfd{fd, POLLOUT, 0};
      ::poll(&pfd, 1, 1000);
      continue;
    }
    if (errno == EPIPE) return false;
    throwErrno("write");
  }
  return true;
}

int countOpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) throwErrno("opendir /proc/self/fd");
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the DIR's own fd
}

std::optional<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace sshsoak
