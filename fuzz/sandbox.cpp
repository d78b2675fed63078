#include "fuzz/sandbox.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace sshsoak::fuzz {

std::string asFile(const uint8_t* data, size_t size) {
  static int fd = [] {
    int f = ::memfd_create("sshsoak-fuzz-input", MFD_CLOEXEC);
    if (f < 0) throw std::runtime_error("memfd_create failed");
    return f;
  }();
  if (::ftruncate(fd, 0) != 0) throw std::runtime_error("ftruncate of the memfd failed");
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) throw std::runtime_error("write to the memfd failed");
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

const std::string& sandboxDir() {
  // Never destroyed: the atexit handler below runs after static destructors.
  static const std::string& dir = *new std::string([] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sshsoak-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern + " failed");
    // Removed when the process ends normally; a crash leaves it for a look.
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(sandboxDir(), ec);
    });
    return pattern;
  }());
  return dir;
}

void clearSandbox() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(sandboxDir(), ec)) {
    std::filesystem::remove_all(entry.path(), ec);
  }
}

InSandbox::InSandbox() : previous_(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  if (::chdir(sandboxDir().c_str()) != 0) throw std::runtime_error("chdir " + sandboxDir() + " failed");
}

InSandbox::~InSandbox() {
  if (previous_ >= 0) {
    (void)::fchdir(previous_);
    ::close(previous_);
  }
}

}  // namespace sshsoak::fuzz
