#include "supervisor/run/local_sshd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "shared/clock.h"
#include "shared/fd.h"
#include "shared/spawn.h"

namespace bp = boost::process;
namespace fs = std::filesystem;

namespace sshsoak {

namespace {

constexpr const char* SSHD = "/usr/sbin/sshd";
constexpr const char* SSH_KEYGEN = "/usr/bin/ssh-keygen";

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Created with its mode, never wider for a moment (the dir holds keys).
void writeFile(const std::string& path, const std::string& text, mode_t mode = 0600) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) throwErrno("open " + path);
  if (::fchmod(fd.get(), mode) != 0) throwErrno("fchmod " + path);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("write " + path);
    done += static_cast<size_t>(n);
  }
}

constexpr const char* DIR_PREFIX = "sshsoak-sshd-";
constexpr const char* LOCK_NAME = "lock";

// dir/lock, made and flock()ed before it has its name: a concurrent
// removeStale() sees either no lock file (and our live PID in the dir's
// name) or a held lock, never a free one.
UniqueFd lockDir(const std::string& dir) {
  std::string temp = dir + "/lock.new";
  UniqueFd fd(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) throwErrno("open " + temp);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) throwErrno("flock " + temp);
  if (::rename(temp.c_str(), (dir + "/" + LOCK_NAME).c_str()) != 0) throwErrno("rename " + temp);
  return fd;
}

// The PID in "sshsoak-sshd-PID-XXXXXX", or 0.
pid_t pidInName(const std::string& name) {
  size_t i = std::strlen(DIR_PREFIX);
  pid_t pid = 0;
  size_t digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 9) {
    pid = pid * 10 + (name[i] - '0');
    ++i;
    ++digits;
  }
  return digits > 0 && i < name.size() && name[i] == '-' ? pid : 0;
}

uint16_t pickFreePort(const std::string& address) {
  UniqueFd fd(sysCall("socket", [] { return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  sysCall("bind", [&] { return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa); });
  socklen_t len = sizeof sa;
  sysCall("getsockname",
          [&] { return ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len); });
  return ntohs(sa.sin_port);
}

// True once something on the port speaks SSH (sends its banner).
bool answersSsh(const std::string& address, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return false;
  pollfd pfd{fd.get(), POLLIN, 0};
  if (::poll(&pfd, 1, 2000) <= 0) return false;
  char buf[8] = {};
  return ::recv(fd.get(), buf, sizeof buf, 0) >= 4 && std::string(buf, 4) == "SSH-";
}

// Direct children of pid, from /proc/*/stat.
std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> kids;
  for (const auto& entry : fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = readFile("/proc/" + name + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) kids.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return kids;
}

}  // namespace

int runProgram(const std::string& exe, const std::vector<std::string>& args, std::string* out) {
  bp::ipstream output;
  ChildSetup setup;
  bp::child child(bp::exe = exe, bp::args = args, bp::std_in < bp::null,
                  (bp::std_out & bp::std_err) > output, setup);
  std::string all, line;
  while (std::getline(output, line)) all += line + "\n";
  child.wait();
  if (out != nullptr) *out = all;
  return child.exit_code();
}

LocalSshd::LocalSshd(LocalSshdOptions options) : options_(std::move(options)) {
  if (::access(SSHD, X_OK) != 0) {
    throw std::runtime_error(std::string(SSHD) +
                             " not found: install openssh-server (scripts/setup.sh does)");
  }
  passwd* pw = ::getpwuid(::geteuid());
  if (pw == nullptr) throw std::runtime_error("cannot find the current user's name");
  user_ = pw->pw_name;

  // mkdtemp makes it 0700.
  std::string tmpl = "/tmp/" + std::string(DIR_PREFIX) + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throwErrno("mkdtemp " + tmpl);
  dir_ = tmpl;
  try {
    lock_ = lockDir(dir_);
    std::string out;
    for (const char* name : {"host_ed25519", "client_ed25519"}) {
      if (runProgram(SSH_KEYGEN, {"-q", "-t", "ed25519", "-N", "", "-C", "sshsoak-throwaway", "-f",
                                  dir_ + "/" + name},
                     &out) != 0) {
        throw std::runtime_error("ssh-keygen failed: " + out);
      }
    }
    writeFile(authorizedKeysPath(), readFile(clientKeyPath() + ".pub"));
    // sshd refuses to start without its privilege-separation directory.
    if (::geteuid() == 0) fs::create_directories("/run/sshd");
    port_ = options_.port;
    for (int tries = 0;; ++tries) {
      if (options_.port == 0) port_ = pickFreePort(options_.listenAddress);
      try {
        start();
        break;
      } catch (const std::exception&) {
        // Another process may have taken the free port between our probe
        // and sshd's bind: try another one a few times.
        if (options_.port != 0 || tries >= 4) throw;
      }
    }
    // Known in advance, so that --host-key-policy strict works too.
    std::string hostPub = readFile(dir_ + "/host_ed25519.pub");
    std::istringstream fields(hostPub);
    std::string type, key;
    fields >> type >> key;
    writeFile(knownHostsPath(),
              "[" + options_.listenAddress + "]:" + std::to_string(port_) + " " + type + " " + key + "\n");
  } catch (...) {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

LocalSshd::~LocalSshd() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::vector<std::string> LocalSshd::removeStale(const std::string& parent) {
  std::vector<std::string> removed;
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) return removed;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind(DIR_PREFIX, 0) == 0) names.push_back(std::move(name));
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    std::string path = parent + "/" + name;
    struct stat st{};
    // Ours only (the sticky /tmp would refuse another user's anyway), and
    // never through a symlink.
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    UniqueFd lock(::open((path + "/" + LOCK_NAME).c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (lock) {
      // Held: its LocalSshd lives.
      if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;
    } else {
      // No lock file: killed while making the dir, or a dir of an older
      // sshsoak (no PID in its name: left alone). EPERM means alive.
      pid_t pid = pidInName(name);
      if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    }
    std::error_code ec;
    fs::remove_all(path, ec);
    if (!ec) removed.push_back(path);
  }
  return removed;
}

std::string LocalSshd::target() const {
  return options_.listenAddress + ":" + std::to_string(port_);
}

std::string LocalSshd::log() const { return readFile(logPath()); }

void LocalSshd::writeConfig() {
  std::ostringstream c;
  c << "Port " << port_ << "\n"
    << "ListenAddress " << options_.listenAddress << "\n"
    << "HostKey " << dir_ << "/host_ed25519\n"
    << "PidFile " << dir_ << "/sshd.pid\n"
    << "AuthorizedKeysFile " << authorizedKeysPath() << "\n"
    << "PubkeyAuthentication yes\n"
    << "PasswordAuthentication no\n"
    << "KbdInteractiveAuthentication no\n"
    << "UsePAM no\n"
    << "StrictModes no\n"
    << "PermitRootLogin prohibit-password\n"
    << "AllowUsers " << user_ << "\n"
    // bash sources ~/.bashrc for ssh commands unless it is a nested shell;
    // root's here runs `pyenv init` (~100 ms of server CPU per command).
    << "SetEnv SHLVL=1\n"
    << "LogLevel VERBOSE\n"
    << options_.extraConfig << "\n";
  writeFile(dir_ + "/sshd_config", c.str());
}

void LocalSshd::start() {
  if (pid_ > 0) return;
  writeConfig();
  std::string config = dir_ + "/sshd_config";
  std::string out;
  if (runProgram(SSHD, {"-t", "-f", config}, &out) != 0) {
    throw std::runtime_error("sshd rejected its config " + config + ": " + out);
  }
  ChildSetup setup;
  setup.newProcessGroup = true;
  setup.dieWithParent = options_.dieWithParent;
  // -D: stay in the foreground so that we own its PID; -E: log to a file the
  // tests read (MaxStartups drops, auth failures).
  bp::child child(bp::exe = SSHD, bp::args = {"-D", "-E", logPath(), "-f", config},
                  bp::std_in < bp::null, bp::std_out > bp::null, bp::std_err > bp::null, setup);
  pid_ = child.id();
  child.detach();  // we reap it ourselves, by PID
  if (!waitUntilReady(5000)) {
    stop();
    throw std::runtime_error("sshd on " + target() + " did not come up; its log says: " + log());
  }
}

bool LocalSshd::waitUntilReady(int timeoutMs) {
  int64_t deadline = monoMs() + timeoutMs;
  while (monoMs() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (answersSsh(options_.listenAddress, port_)) return true;
    ::usleep(20'000);
  }
  return false;
}

void LocalSshd::stop() {
  if (pid_ <= 0) return;
  // Everything, as when a server goes down for real: the listener and each
  // connection's processes. sshd puts every connection in a session of its
  // own (setsid), so each is stopped through its own process group.
  for (pid_t child : childrenOf(pid_)) ::kill(-child, SIGKILL);
  ::kill(-pid_, SIGTERM);
  int64_t deadline = monoMs() + 3000;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (monoMs() > deadline) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    ::usleep(5'000);
  }
  pid_ = -1;
}

std::string LocalSshd::makeUnauthorizedKey() {
  std::string path = dir_ + "/unauthorized_ed25519";
  if (::access(path.c_str(), R_OK) != 0) {
    std::string out;
    if (runProgram(SSH_KEYGEN, {"-q", "-t", "ed25519", "-N", "", "-f", path}, &out) != 0) {
      throw std::runtime_error("ssh-keygen failed: " + out);
    }
  }
  return path;
}

void LocalSshd::revokeClientKey() { writeFile(authorizedKeysPath(), ""); }

}  // namespace sshsoak
