// Fault injection planned on the command line: drops of some or all
// sessions at a time or periodically (--drop, and the predecessor's
// --disconnect-after-secs), and a user's own command run at a given time
// (--fault-cmd "AT:COMMAND": their iptables, tc or service restart). The
// command line parses both (cli.cpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sshsoak {

struct DropSpec {
  uint32_t atSecs = 0;
  uint32_t everySecs = 0;          // 0: once
  std::vector<uint32_t> sessions;  // empty: all
  bool appliesTo(uint32_t session) const;
  std::string text() const;
};

struct FaultCommand {
  uint32_t atSecs = 0;
  std::string command;
};

// One user command running in the background: /bin/sh -c COMMAND in its own
// process group, output to a private temp file, reaped by PID.
class RunningFault {
 public:
  explicit RunningFault(const FaultCommand& fault);
  ~RunningFault();
  RunningFault(const RunningFault&) = delete;
  RunningFault& operator=(const RunningFault&) = delete;

  // Non-blocking; true once it has ended (then status() and outputTail()).
  bool reap();
  // SIGKILLs its process group and reaps it (end of the run).
  void kill();
  pid_t pid() const { return pid_; }
  const FaultCommand& fault() const { return fault_; }
  int waitStatus() const { return status_; }
  std::string outputTail(size_t maxBytes = 2000) const;

 private:
  FaultCommand fault_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
  std::string outPath_;
};

}  // namespace sshsoak
