#include "sshd_fixture.h"

#include <fcntl.h>
#include <cstdio>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "shared/clock.h"
#include "shared/fd.h"
#include "supervisor/analysis/jsonl_reader.h"

namespace fs = std::filesystem;

namespace sshsoak::testing {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// The analysis's reader: a line still being written ends the lines read.
std::vector<Json> readJsonl(const std::string& path) {
  auto file = sshsoak::readJsonl(path);
  return file ? std::move(file->lines) : std::vector<Json>{};
}

std::vector<Json> linesOf(const std::vector<Json>& lines, const std::string& event) {
  std::vector<Json> out;
  for (const auto& l : lines) {
    if (l["event"] == event) out.push_back(l);
  }
  return out;
}

std::vector<Json> ofSession(const std::vector<Json>& lines, const std::string& event, int session) {
  std::vector<Json> out;
  for (const auto& l : linesOf(lines, event)) {
    if (l["session_id"] == session) out.push_back(l);
  }
  return out;
}

std::set<std::string> listDevShm() {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator("/dev/shm")) names.insert(e.path().filename().string());
  return names;
}

namespace {

std::set<pid_t>& startedSoakPids() {
  static std::set<pid_t> pids;
  return pids;
}

bool ownedByThisTest(const std::string& name) {
  const std::string prefix = "sshsoak-";
  if (name.rfind(prefix, 0) != 0) return true;
  size_t end = name.find_first_not_of("0123456789", prefix.size());
  if (end == prefix.size() || end == std::string::npos || name[end] != '-' || end - prefix.size() > 9) return true;
  pid_t pid = static_cast<pid_t>(std::stol(name.substr(prefix.size(), end - prefix.size())));
  return pid == ::getpid() || startedSoakPids().count(pid) > 0;
}

}  // namespace

std::vector<std::string> newShmOfOurs(const std::set<std::string>& before) {
  std::vector<std::string> out;
  for (const auto& name : listDevShm()) {
    if (before.count(name) == 0 && ownedByThisTest(name)) out.push_back(name);
  }
  return out;
}

std::string cmdlineOf(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (stat.empty() || close == std::string::npos || stat[close + 2] == 'Z') return "";
  std::string c = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& ch : c) {
    if (ch == '\0') ch = ' ';
  }
  return c;
}

std::string environOf(pid_t pid) { return slurp("/proc/" + std::to_string(pid) + "/environ"); }

std::vector<pid_t> childrenOf(pid_t parent) {
  std::vector<pid_t> kids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = slurp("/proc/" + name + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') kids.push_back(std::stoi(name));
  }
  return kids;
}

SoakProcess::SoakProcess(const std::vector<std::string>& args, bool stdinPipe) {
  char tmpl[] = "/tmp/sshsoak-run-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  int pipeFds[2] = {-1, -1};
  if (stdinPipe && ::pipe2(pipeFds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  std::string outPath = dir_ + "/stdout", errPath = dir_ + "/stderr";
  pid_ = ::fork();
  if (pid_ == 0) {
    int in = stdinPipe ? pipeFds[0] : ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    ::dup2(::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    ::close_range(3, ~0U, 0);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(SSHSOAK_BIN));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SSHSOAK_BIN, argv.data());
    ::_exit(127);
  }
  startedSoakPids().insert(pid_);
  if (stdinPipe) {
    ::close(pipeFds[0]);
    stdinFd_ = pipeFds[1];
  }
}

SoakProcess::~SoakProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (stdinFd_ >= 0) ::close(stdinFd_);
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

int SoakProcess::wait(int timeoutSecs) {
  if (reaped_) return exitCode_;
  int64_t deadline = monoMs() + int64_t{timeoutSecs} * 1000;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (monoMs() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      reaped_ = true;
      ADD_FAILURE() << "sshsoak did not finish within " << timeoutSecs << " s; killed";
      return exitCode_ = -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  reaped_ = true;
  exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exitCode_;
}

void SoakProcess::writeStdin(const std::string& text) {
  ASSERT_TRUE(writeAll(stdinFd_, text.data(), text.size()));
}

std::string SoakProcess::out() const { return slurp(dir_ + "/stdout"); }
std::string SoakProcess::err() const { return slurp(dir_ + "/stderr"); }

void SshdTest::SetUp() {
  ::signal(SIGPIPE, SIG_IGN);
  fdsBefore_ = countOpenFds();
  shmBefore_ = listDevShm();
  char tmpl[] = "/tmp/sshsoak-test-XXXXXX";
  workDir_ = ::mkdtemp(tmpl);
  logPath_ = workDir_ + "/run.jsonl";
  sshd_ = std::make_unique<LocalSshd>();
}

void SshdTest::TearDown() {
  sshd_.reset();
  std::error_code ec;
  fs::remove_all(workDir_, ec);
  // Nothing left behind by the run or the fixture.
  EXPECT_EQ(countOpenFds(), fdsBefore_) << "file descriptors leaked";
  EXPECT_EQ(newShmOfOurs(shmBefore_), std::vector<std::string>{}) << "shared-memory segments left in /dev/shm";
}

std::vector<std::string> SshdTest::soakArgs(std::vector<std::string> extra) const {
  std::vector<std::string> args = {"--targets", sshd_->target(), "--user", sshd_->user(), "--key",
                                   sshd_->clientKeyPath(), "--known-hosts", sshd_->knownHostsPath(),
                                   "--log-path", logPath_,
                                   // Short test runs are dominated by their connects, so their
                                   // CPU mean says little; tests about the CPU criterion set
                                   // their own threshold after these (the last value wins).
                                   "--max-cpu-pct", "50"};
#ifdef SSHSOAK_TESTS_UNDER_ASAN
  // Likewise memory under ASan: its shadow memory and allocator regions
  // put ten agents and the supervisor at 195-206 MB PSS, around the 200 MB
  // default, where a plain build measures ~20 MB. The plain build keeps
  // the default; tests about the memory criterion set their own.
  args.insert(args.end(), {"--max-memory-mb", "400"});
#endif
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

SoakResult SshdTest::runSoak(const std::vector<std::string>& args, int timeoutSecs) {
  SoakProcess p(args);
  SoakResult r;
  r.exitCode = p.wait(timeoutSecs);
  r.out = p.out();
  r.err = p.err();
  r.lines = readJsonl(logPath_);
  return r;
}

bool SshdTest::waitForLog(const std::function<bool(const std::vector<Json>&)>& pred, int timeoutSecs) {
  int64_t deadline = monoMs() + int64_t{timeoutSecs} * 1000;
  while (monoMs() < deadline) {
    if (pred(readJsonl(logPath_))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace sshsoak::testing
