// A child's wait status, decoded: exit code, or signal and core dump.
#pragma once

#include <string>

namespace sshsoak {

struct ExitInfo {
  bool signaled = false;
  int code = 0;    // valid when !signaled
  int signal = 0;  // valid when signaled
  bool coreDumped = false;

  bool clean() const { return !signaled && code == 0; }
  std::string text() const;
  std::string signalName() const;  // "SIGKILL"; "" when !signaled  // "exit 0", "signal 9 (SIGKILL)", "signal 6 (SIGABRT), core dumped"
};

ExitInfo decodeWaitStatus(int status);

}  // namespace sshsoak
