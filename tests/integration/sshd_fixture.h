// Integration-test fixture: a real OpenSSH sshd on 127.0.0.1 (LocalSshd),
// the real sshsoak binary run as a child, and teardown checks that nothing
// leaked (fds of this process, /dev/shm entries, agent processes).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "supervisor/run/local_sshd.h"
#include "supervisor/run/jsonl_log.h"

namespace sshsoak::testing {

// Under ASan, freed memory waits in its quarantine (up to 256 MB by default)
// and counts in RSS: the memory bounds are the plain build's to check; under
// ASan they are widened by the quarantine's size, so only a growth beyond it
// (unbounded) fails there.
#ifdef SSHSOAK_TESTS_UNDER_ASAN
constexpr long ASAN_QUARANTINE_KB = 256 * 1024;
#else
constexpr long ASAN_QUARANTINE_KB = 0;
#endif

std::vector<Json> readJsonl(const std::string& path);
std::vector<Json> linesOf(const std::vector<Json>& lines, const std::string& event);
// The lines of one event for one session.
std::vector<Json> ofSession(const std::vector<Json>& lines, const std::string& event, int session);
std::set<std::string> listDevShm();
// Segments in /dev/shm now and not in `before` that this test process or an
// sshsoak it started made. Segments named "sshsoak-<pid>-..." of other PIDs
// belong to other runs on the same machine (another worktree's tests) and
// are not ours to judge; a name without a PID counts as ours.
std::vector<std::string> newShmOfOurs(const std::set<std::string>& before);
// The command line of a live process ("" if it is gone or a zombie).
std::string cmdlineOf(pid_t pid);
std::string environOf(pid_t pid);
std::vector<pid_t> childrenOf(pid_t parent);

// sshsoak running in the background.
class SoakProcess {
 public:
  SoakProcess(const std::vector<std::string>& args, bool stdinPipe = false);
  ~SoakProcess();
  pid_t pid() const { return pid_; }
  // Exit code, or -1 after killing it at the timeout (a test failure).
  int wait(int timeoutSecs);
  void writeStdin(const std::string& text);
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  int stdinFd_ = -1;
  std::string dir_;
  bool reaped_ = false;
  int exitCode_ = -1;
};

struct SoakResult {
  int exitCode = -1;
  std::vector<Json> lines;
  std::string out, err;
};

class SshdTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // --targets/--user/--key/--known-hosts for the fixture's sshd, and a log
  // file of this test's own.
  std::vector<std::string> soakArgs(std::vector<std::string> extra = {}) const;
  SoakResult runSoak(const std::vector<std::string>& args, int timeoutSecs = 120);
  // Polls the log until pred holds or the timeout passes.
  bool waitForLog(const std::function<bool(const std::vector<Json>&)>& pred, int timeoutSecs);

  std::unique_ptr<LocalSshd> sshd_;
  std::string workDir_;
  std::string logPath_;

 private:
  int fdsBefore_ = 0;
  std::set<std::string> shmBefore_;
};

}  // namespace sshsoak::testing
