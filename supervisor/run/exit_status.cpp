#include "supervisor/run/exit_status.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

namespace sshsoak {

ExitInfo decodeWaitStatus(int status) {
  ExitInfo info;
  if (WIFSIGNALED(status)) {
    info.signaled = true;
    info.signal = WTERMSIG(status);
    info.coreDumped = WCOREDUMP(status);
  } else if (WIFEXITED(status)) {
    info.code = WEXITSTATUS(status);
  }
  return info;
}

std::string ExitInfo::signalName() const {
  if (!signaled) return "";
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

std::string ExitInfo::text() const {
  if (!signaled) return "exit " + std::to_string(code);
  const char* abbrev = ::sigabbrev_np(signal);
  std::string s = "signal " + std::to_string(signal) + " (SIG" + (abbrev != nullptr ? abbrev : "?") + ")";
  if (coreDumped) s += ", core dumped";
  return s;
}

}  // namespace sshsoak
