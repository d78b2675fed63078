#include "supervisor/run/faults.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "shared/fd.h"

namespace sshsoak {

namespace {

bool number(std::string_view s, uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

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

std::variant<DropSpec, std::string> parseDropSpec(const std::string& text) {
  DropSpec d;
  std::string_view rest = text;
  std::string_view sessions;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    sessions = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (sessions.empty()) return "'" + text + "': no sessions after '@'";
  }
  std::string_view atPart = rest, everyPart;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    atPart = rest.substr(0, slash);
    everyPart = rest.substr(slash + 1);
    if (!number(everyPart, d.everySecs) || d.everySecs == 0) {
      return "'" + text + "': the period after '/' must be a whole number of seconds >= 1";
    }
  }
  if (!number(atPart, d.atSecs) || d.atSecs == 0) {
    return "'" + text + "': expected AT[/EVERY][@SESSIONS] with AT in whole seconds >= 1, e.g. 30, 30/60, 30@0-4";
  }
  while (!sessions.empty()) {
    auto comma = sessions.find(',');
    std::string_view item = sessions.substr(0, comma);
    sessions = comma == std::string_view::npos ? std::string_view{} : sessions.substr(comma + 1);
    uint32_t lo = 0, hi = 0;
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      if (!number(item.substr(0, dash), lo) || !number(item.substr(dash + 1), hi) || hi < lo || hi - lo > 10000) {
        return "'" + text + "': bad session range '" + std::string(item) + "'";
      }
    } else if (!number(item, lo)) {
      return "'" + text + "': bad session id '" + std::string(item) + "'";
    } else {
      hi = lo;
    }
    for (uint32_t s = lo; s <= hi; ++s) d.sessions.push_back(s);
  }
  return d;
}

std::variant<FaultCommand, std::string> parseFaultCommand(const std::string& text) {
  auto colon = text.find(':');
  FaultCommand f;
  if (colon == std::string::npos || !number(std::string_view(text).substr(0, colon), f.atSecs) || f.atSecs == 0) {
    return "'" + text + "': expected AT:COMMAND with AT in whole seconds >= 1, e.g. '30:iptables -A ...'";
  }
  f.command = text.substr(colon + 1);
  if (f.command.find_first_not_of(" \t") == std::string::npos) return "'" + text + "': empty command";
  return f;
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
