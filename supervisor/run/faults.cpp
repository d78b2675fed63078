#include "supervisor/run/faults.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "shared/fd.h"

namespace sshsoak {

bool DropSpec::appliesTo(uint32_t session) const {
  return sessions.empty() || std::find(sessions.begin(), sessions.end(), session) != sessions.end();
}

std::string DropSpec::text() const {
  std::string t = "at " + std::to_string(atSecs) + " s";
  if (everySecs > 0) t += ", every " + std::to_string(everySecs) + " s";
  if (!sessions.empty()) {
    t += ", sessions";
    for (auto s : sessions) t += " " + std::to_string(s);
  } else {
    t += ", all sessions";
  }
  return t;
}

RunningFault::RunningFault(const FaultCommand& fault) : fault_(fault) {
  char tmpl[] = "/tmp/sshsoak-fault-XXXXXX";
  UniqueFd out(::mkostemp(tmpl, O_CLOEXEC));
  if (!out) throwErrno("mkostemp /tmp/sshsoak-fault-XXXXXX");
  outPath_ = tmpl;
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    int err = errno;
    ::unlink(outPath_.c_str());  // the destructor will not run
    throwErrno("fork for --fault-cmd", err);
  }
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out.get(), 1);
    ::dup2(out.get(), 2);
    ::close_range(3, ~0U, 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", fault_.command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
}

RunningFault::~RunningFault() {
  kill();
  ::unlink(outPath_.c_str());
}

bool RunningFault::reap() {
  if (done_) return true;
  pid_t r = ::waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) done_ = true;
  return done_;
}

void RunningFault::kill() {
  if (done_ || pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, &status_, 0);
  done_ = true;
}

std::string RunningFault::outputTail(size_t maxBytes) const {
  std::ifstream in(outPath_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > maxBytes ? all.substr(all.size() - maxBytes) : all;
}

}  // namespace sshsoak
