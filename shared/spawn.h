// Child-process set-up shared by every spawn (agents, sshd, ssh-keygen):
// a Boost.Process extension whose on_exec_setup runs in the child between
// fork and exec. Only async-signal-safe calls belong in it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <array>
#include <boost/process/extend.hpp>
#include <utility>

namespace sshsoak {

struct ChildSetup : boost::process::extend::handler {
  // Pipe ends to place at fixed fd numbers in the child (fd, target).
  std::array<std::pair<int, int>, 2> fdMap{{{-1, -1}, {-1, -1}}};
  // Kill the child when the process that spawned it dies, even by SIGKILL.
  bool dieWithParent = true;
  // Start a new process group (sshd: so that stopping it by PID also stops
  // its per-connection children).
  bool newProcessGroup = false;
  pid_t parentPid = ::getpid();

  template <typename Executor>
  void on_exec_setup(Executor& /*exec*/) const {
    if (newProcessGroup) ::setpgid(0, 0);
    if (dieWithParent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // The parent may have died before prctl: then nobody would kill us.
      if (::getppid() != parentPid) ::_exit(127);
    }
    // Two steps, so that a source fd that happens to carry another entry's
    // target number is not overwritten: first out of the way, then in place
    // (dup2 clears close-on-exec on the target).
    int moved[2] = {-1, -1};
    for (size_t i = 0; i < fdMap.size(); ++i) {
      if (fdMap[i].first >= 0) moved[i] = ::fcntl(fdMap[i].first, F_DUPFD_CLOEXEC, 64);
    }
    int highest = 2;
    for (size_t i = 0; i < fdMap.size(); ++i) {
      if (moved[i] < 0) continue;
      ::dup2(moved[i], fdMap[i].second);
      if (fdMap[i].second > highest) highest = fdMap[i].second;
    }
    // Nothing else of ours leaks into the child: every other fd closes on
    // exec (Boost.Process's own exec-error pipe is close-on-exec already).
    ::close_range(static_cast<unsigned>(highest + 1), ~0U, CLOSE_RANGE_CLOEXEC);
  }
};

}  // namespace sshsoak
