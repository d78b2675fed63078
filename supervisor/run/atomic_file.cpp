#include "supervisor/run/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "shared/fd.h"

namespace sshsoak {

Status<std::string> writeFileAtomically(const std::string& path, std::string_view content) {
  namespace fs = std::filesystem;
  fs::path target(path);
  // Same directory: rename(2) is atomic only within one file system.
  fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()));
  auto failed = [&](const std::string& what) {
    int err = errno;
    ::unlink(temp.c_str());
    return fail(path + ": cannot " + what + ": " + std::strerror(err));
  };
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail(path + ": cannot create " + temp.string() + ": " + std::strerror(errno));
  try {
    if (!writeAll(fd.get(), content.data(), content.size())) return failed("write " + temp.string());
  } catch (const std::system_error& e) {
    ::unlink(temp.c_str());
    return fail(path + ": cannot write " + temp.string() + ": " + e.code().message());
  }
  // On disk before the rename: after a reboot the report is whole.
  if (::fsync(fd.get()) != 0) return failed("flush " + temp.string());
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) return failed("rename " + temp.string() + " to it");
  return Ok{};
}

}  // namespace sshsoak
