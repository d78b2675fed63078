// Where the file-reading targets put their input and where the CLI target's
// side effects land (cli::parse creates the --log-path file, as the run will).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sshsoak::fuzz {

// The bytes as a file: a memfd, rewritten on each call, named by its
// /proc/self/fd path. Never on disk.
std::string asFile(const uint8_t* data, size_t size);

// A private directory (made once per process, under $TMPDIR or /tmp).
const std::string& sandboxDir();
// Empties sandboxDir().
void clearSandbox();

// The current directory is sandboxDir() for this object's life.
class InSandbox {
 public:
  InSandbox();
  ~InSandbox();
  InSandbox(const InSandbox&) = delete;
  InSandbox& operator=(const InSandbox&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace sshsoak::fuzz
