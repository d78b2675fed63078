#include "supervisor/run/exit_status.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

using namespace sshsoak;

namespace {

// The real wait status of a child that did `body`.
int statusOf(void (*body)()) {
  pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

}  // namespace

TEST(ExitStatus, ExitCodes) {
  auto zero = decodeWaitStatus(statusOf([] { ::_exit(0); }));
  EXPECT_TRUE(zero.clean());
  EXPECT_EQ(zero.text(), "exit 0");
  auto code = decodeWaitStatus(statusOf([] { ::_exit(111); }));
  EXPECT_FALSE(code.clean());
  EXPECT_FALSE(code.signaled);
  EXPECT_EQ(code.code, 111);
  EXPECT_EQ(code.text(), "exit 111");
  EXPECT_EQ(code.signalName(), "");
}

TEST(ExitStatus, KilledBySignal) {
  auto killed = decodeWaitStatus(statusOf([] { ::raise(SIGKILL); }));
  EXPECT_TRUE(killed.signaled);
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_FALSE(killed.coreDumped);
  EXPECT_FALSE(killed.clean());
  EXPECT_EQ(killed.text(), "signal 9 (SIGKILL)");
  EXPECT_EQ(killed.signalName(), "SIGKILL");
}

TEST(ExitStatus, CoreDumpFlagFromTheStatusWord) {
  // Whether a real abort dumps core depends on RLIMIT_CORE and
  // core_pattern; the decoding is checked on the status word itself.
  int status = SIGABRT | 0x80;  // WCOREDUMP bit
  ASSERT_TRUE(WIFSIGNALED(status));
  auto e = decodeWaitStatus(status);
  EXPECT_TRUE(e.signaled);
  EXPECT_EQ(e.signal, SIGABRT);
  EXPECT_TRUE(e.coreDumped);
  EXPECT_EQ(e.text(), "signal 6 (SIGABRT), core dumped");
}

TEST(ExitInfo, DecodesExitCodesSignalsAndCores) {
  EXPECT_EQ(decodeWaitStatus(0).text(), "exit 0");
  EXPECT_TRUE(decodeWaitStatus(0).clean());
  EXPECT_EQ(decodeWaitStatus(3 << 8).text(), "exit 3");
  EXPECT_EQ(decodeWaitStatus(SIGKILL).text(), "signal 9 (SIGKILL)");
  EXPECT_EQ(decodeWaitStatus(SIGABRT | 0x80).text(), "signal 6 (SIGABRT), core dumped");
  EXPECT_FALSE(decodeWaitStatus(SIGKILL).clean());
}
