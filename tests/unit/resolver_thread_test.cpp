// SshConnection::open resolves names with glibc's getaddrinfo_a, whose
// answer comes in a thread glibc starts: a lookup the caller gives up on
// (deadline, command) is freed by whichever side lets go last. Run under
// ThreadSanitizer (thread_tests), with lookups abandoned at once and
// finished, side by side.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "session_agent/ssh/connection.h"
#include "shared/clock.h"

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

ConnectSettings localhostPort1() {
  ConnectSettings s;
  s.host = "localhost";
  s.port = 1;  // nothing listens: a resolved name ends in a refused connect
  s.user = "nobody";
  s.keyPath = "/nonexistent";
  s.knownHostsPath = "/nonexistent";
  return s;
}

}  // namespace

TEST(Resolver, AResolvedNameGoesOnToConnect) {
  for (int i = 0; i < 20; ++i) {
    auto r = SshConnection::open(localhostPort1(), monoMs() + 2000, -1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, wire::FailureCategory::REFUSED) << r.error().message;
  }
}

TEST(Resolver, ALookupAbandonedAtTheDeadlineIsFreedByGlibcsThread) {
  for (int i = 0; i < 50; ++i) {
    auto r = SshConnection::open(localhostPort1(), monoMs(), -1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, wire::FailureCategory::TIMEOUT) << r.error().message;
    EXPECT_NE(r.error().message.find("took too long"), std::string::npos) << r.error().message;
  }
  // The abandoned lookups finish meanwhile; LeakSanitizer and TSan judge.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

TEST(Resolver, TheCommandPipeCancelsALookup) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "x", 1), 1);
  for (int i = 0; i < 20; ++i) {
    auto r = SshConnection::open(localhostPort1(), monoMs() + 2000, p[0]);
    ASSERT_FALSE(r);
    // Cancelled, unless the lookup was already done by the first poll: then
    // loopback's connect may be refused before it waits on the pipe.
    EXPECT_TRUE(r.error().cancelled || r.error().category == wire::FailureCategory::REFUSED) << r.error().message;
  }
  ::close(p[0]);
  ::close(p[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}
