// Key-exchange failures against a real OpenSSH sshd: one that cannot agree
// on a cipher with libssh2 1.10 (chacha20-poly1305 only) is the
// `algorithms` category, named and never retried; one refusing new
// connections (MaxStartups) gets the MaxStartups hint, and only it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "sshd_fixture.h"
#include "session_agent/ssh/connection.h"
#include "shared/clock.h"
#include "shared/wire_names.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::agent;
using namespace sshsoak::testing;
using Cat = wire::FailureCategory;

namespace {

constexpr const char* CHACHA_ONLY = "Ciphers chacha20-poly1305@openssh.com";

ConnectSettings settingsFor(const LocalSshd& sshd) {
  ConnectSettings s;
  s.host = "127.0.0.1";
  s.port = sshd.port();
  s.user = sshd.user();
  s.keyPath = sshd.clientKeyPath();
  s.knownHostsPath = sshd.knownHostsPath();
  return s;
}

// A TCP connection that says nothing: unauthenticated for sshd until its
// LoginGraceTime.
int holdOpen(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  return fd;
}

}  // namespace

TEST_F(SshdTest, NoCommonCipherIsAnAlgorithmsErrorNamingBothOffers) {
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{.extraConfig = CHACHA_ONLY});
  int64_t start = monoMs();
  auto r = SshConnection::open(settingsFor(*sshd_), start + 3000, -1);
  ASSERT_FALSE(r);
  const SshError& e = r.error();
  std::printf("after %lld ms: %s\n", static_cast<long long>(monoMs() - start), e.message.c_str());
  EXPECT_EQ(e.category, Cat::ALGORITHMS) << e.message;
  EXPECT_NE(e.message.find("no common cipher (client to server)"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("the server offers chacha20-poly1305@openssh.com"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("we offer aes"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("OpenSSH"), std::string::npos) << "the server's banner: " << e.message;
  EXPECT_EQ(e.message.find("MaxStartups"), std::string::npos) << e.message;
}

TEST_F(SshdTest, NoCommonCipherIsReportedOnceAndTheSessionWaitsForAUser) {
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{.extraConfig = CHACHA_ONLY});
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "3", "--backoff-base-ms", "100",
                             "--backoff-cap-ms", "200"}),
                   60);
  ASSERT_NE(r.exitCode, -1) << r.err;
  EXPECT_NE(r.exitCode, 0);
  auto failed = linesOf(r.lines, "connect_failed");
  ASSERT_EQ(failed.size(), 2u) << "one attempt per session, no retry";
  for (const auto& f : failed) {
    EXPECT_EQ(f["category"], "algorithms") << f.dump();
    EXPECT_NE(f["message"].get<std::string>().find("no common cipher"), std::string::npos) << f.dump();
  }
  EXPECT_TRUE(linesOf(r.lines, "reconnect_failed").empty());
  auto manual = linesOf(r.lines, "manual_reconnect_required");
  ASSERT_EQ(manual.size(), 2u);
  for (const auto& m : manual) EXPECT_EQ(m["category"], "algorithms") << m.dump();
}

TEST_F(SshdTest, ChurnStopsConnectingAtANoCommonCipher) {
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{.extraConfig = CHACHA_ONLY});
  auto r = runSoak(soakArgs({"--workload", "churn", "--churn-rate", "20", "--sessions", "1", "--duration-secs", "3",
                             "--churn-report-secs", "1"}),
                   60);
  ASSERT_NE(r.exitCode, -1) << r.err;
  auto manual = linesOf(r.lines, "manual_reconnect_required");
  ASSERT_EQ(manual.size(), 1u) << r.err;
  EXPECT_EQ(manual[0]["category"], "algorithms");
  uint64_t attempted = 0;
  for (const auto& s : linesOf(r.lines, "churn_stats")) attempted += s["attempted"].get<uint64_t>();
  EXPECT_EQ(attempted, 1u) << "churn kept hammering a server it cannot agree with";
}

TEST_F(SshdTest, MaxStartupsRefusalGetsTheHintAndNothingElseDoes) {
  sshd_ = std::make_unique<LocalSshd>(LocalSshdOptions{.extraConfig = "MaxStartups 1:100:1"});
  int held = holdOpen(sshd_->port());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // sshd has accepted it
  auto refused = SshConnection::open(settingsFor(*sshd_), monoMs() + 3000, -1);
  ::close(held);
  ASSERT_FALSE(refused);
  std::printf("refused: %s: %s\n", std::string(categoryName(refused.error().category)).c_str(),
              refused.error().message.c_str());
  EXPECT_EQ(refused.error().category, Cat::PROTOCOL);
  EXPECT_NE(refused.error().message.find("MaxStartups refuses new connections"), std::string::npos)
      << refused.error().message;

  // With the held connection gone, the same server lets us in.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto ok = SshConnection::open(settingsFor(*sshd_), monoMs() + 5000, -1);
  EXPECT_TRUE(ok) << ok.error().message;
}

// tinysshd (Debian's package; scripts/setup.sh installs it) offers only
// chacha20-poly1305, which libssh2 1.10 lacks. Run inetd-style: a child
// accepts one connection on a listener of this test and execs tinysshd on it.
TEST(Tinysshd, OnlyChacha20IsAnAlgorithmsErrorNamingTheCipher) {
  ASSERT_EQ(::access("/usr/sbin/tinysshd", X_OK), 0) << "tinysshd is missing: run scripts/setup.sh";
  char dir[] = "/tmp/sshsoak-tinysshd-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string keys = std::string(dir) + "/keys";
  std::string out;
  ASSERT_EQ(runProgram("/usr/sbin/tinysshd-makekey", {keys}, &out), 0) << out;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int c = ::accept(listener, nullptr, nullptr);
    if (c < 0 || ::dup2(c, 0) < 0 || ::dup2(c, 1) < 0) ::_exit(127);
    ::execl("/usr/sbin/tinysshd", "tinysshd", keys.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(listener);
  ConnectSettings s;
  s.host = "127.0.0.1";
  s.port = ntohs(a.sin_port);
  s.user = "nobody";
  s.keyPath = "/nonexistent";
  s.knownHostsPath = "/nonexistent";
  s.hostKeyPolicy = wire::HostKeyPolicy::OFF;
  auto r = SshConnection::open(s, monoMs() + 3000, -1);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(r);
  std::printf("%s: %s\n", std::string(categoryName(r.error().category)).c_str(), r.error().message.c_str());
  EXPECT_EQ(r.error().category, Cat::ALGORITHMS) << r.error().message;
  EXPECT_NE(r.error().message.find("SSH-2.0-tinyssh"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("no common cipher (client to server)"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("the server offers chacha20-poly1305@openssh.com"), std::string::npos)
      << r.error().message;
}
