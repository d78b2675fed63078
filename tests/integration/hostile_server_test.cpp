// Hostile servers: real TCP peers on 127.0.0.1 (a listener thread in this
// test) that say nothing, trickle, flood, or stop half-way through the key
// exchange. SshConnection::open must end each at its deadline (or earlier,
// for a peer that is plainly not SSH) with a named category and step,
// sleeping in poll meanwhile: the connecting thread's CPU time is measured
// (CLOCK_THREAD_CPUTIME_ID, the peer's thread apart). Also: name resolution
// under the same deadline against a DNS server that never answers, in a
// private network and mount namespace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "netns.h"
#include "sshd_fixture.h"
#include "session_agent/ssh/connection.h"
#include "shared/clock.h"
#include "shared/wire_names.h"

using namespace sshsoak;
using namespace sshsoak::agent;
using namespace sshsoak::testing;
using Cat = wire::FailureCategory;

namespace {

constexpr int64_t DEADLINE_MS = 1500;
constexpr int64_t SLACK_MS = 300;
// No peer runs longer than this, even if the client never gives up (the
// bug this guards against): the test then fails instead of hanging.
constexpr int64_t PEER_LIMIT_MS = 8000;

int64_t threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

long rssKbSelf() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Sleeps up to ms, or less once `stop` is set.
bool pause(const std::atomic<bool>& stop, int ms) {
  for (int i = 0; i < ms && !stop; i += 5) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return !stop;
}

// Writes all of `bytes` unless stopped; false once the client is gone.
bool sendAll(int fd, const std::string& bytes, const std::atomic<bool>& stop) {
  size_t off = 0;
  while (off < bytes.size() && !stop) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return !stop;
}

using Behaviour = std::function<void(int fd, const std::atomic<bool>& stop)>;

// A listener on 127.0.0.1 whose thread accepts one connection and runs the
// behaviour on it, for at most PEER_LIMIT_MS.
class HostilePeer {
 public:
  explicit HostilePeer(Behaviour behaviour) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 4) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "listener: " << std::strerror(errno);
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, behaviour] {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(PEER_LIMIT_MS)) <= 0) return;
      int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      std::thread limit([this] {
        for (int64_t t = 0; t < PEER_LIMIT_MS && !stop_; t += 10) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        stop_ = true;
      });
      behaviour(fd, stop_);
      // Held open until the test is done: the client, not the peer, ends it.
      while (pause(stop_, 100)) {
      }
      limit.join();
      ::close(fd);
    });
  }
  ~HostilePeer() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Attempt {
  std::optional<SshError> error;
  int64_t elapsedMs = 0;
  int64_t cpuMs = 0;
  long rssGrowthKb = 0;
};

Attempt connectTo(uint16_t port, const std::string& host = "127.0.0.1", int64_t deadlineMs = DEADLINE_MS,
                  int cancelFd = -1) {
  ConnectSettings s;
  s.host = host;
  s.port = port;
  s.user = "nobody";
  s.keyPath = "/nonexistent/key";
  s.knownHostsPath = "/nonexistent/known_hosts";
  s.hostKeyPolicy = wire::HostKeyPolicy::OFF;
  Attempt a;
  long rss = rssKbSelf();
  int64_t cpu = threadCpuNs();
  int64_t start = monoMs();
  auto r = SshConnection::open(s, start + deadlineMs, cancelFd);
  a.elapsedMs = monoMs() - start;
  a.cpuMs = (threadCpuNs() - cpu) / 1'000'000;
  a.rssGrowthKb = rssKbSelf() - rss;
  if (!r) a.error = r.error();
  std::printf("%s:%u ended after %lld ms (deadline %lld ms), %lld ms CPU (%.1f %%), RSS %+ld KB: %s: %s\n",
              host.c_str(), port, static_cast<long long>(a.elapsedMs), static_cast<long long>(deadlineMs),
              static_cast<long long>(a.cpuMs), a.elapsedMs > 0 ? 100.0 * a.cpuMs / a.elapsedMs : 0.0,
              a.rssGrowthKb, a.error ? std::string(categoryName(a.error->category)).c_str() : "ok",
              a.error ? a.error->message.c_str() : "");
  return a;
}

// Ended at the deadline (not before, not much after), as a timeout naming
// `step`, having slept meanwhile.
void expectTimedOutAt(const Attempt& a, const std::string& step) {
  ASSERT_TRUE(a.error) << "connected to a hostile peer?";
  EXPECT_EQ(a.error->category, Cat::TIMEOUT) << a.error->message;
  EXPECT_NE(a.error->message.find(step), std::string::npos) << a.error->message;
  EXPECT_GE(a.elapsedMs, DEADLINE_MS - 5);
  EXPECT_LE(a.elapsedMs, DEADLINE_MS + SLACK_MS);
  EXPECT_LE(a.cpuMs * 10, a.elapsedMs) << "more than 10 % CPU while waiting on the peer";
}

// Ended before the deadline as a protocol error, cheaply.
void expectRejectedEarly(const Attempt& a, const std::string& step) {
  ASSERT_TRUE(a.error) << "connected to a hostile peer?";
  EXPECT_EQ(a.error->category, Cat::PROTOCOL) << a.error->message;
  EXPECT_NE(a.error->message.find(step), std::string::npos) << a.error->message;
  EXPECT_EQ(a.error->message.find("MaxStartups"), std::string::npos) << a.error->message;
  EXPECT_LE(a.elapsedMs, DEADLINE_MS + SLACK_MS);
  EXPECT_LE(a.cpuMs, 200 + a.elapsedMs / 10);
  EXPECT_LE(a.rssGrowthKb, 16 * 1024 + ASAN_QUARANTINE_KB) << "a flood grew memory";
}

size_t openFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

const std::string BANNER = "SSH-2.0-Hostile_1.0\r\n";

}  // namespace

TEST(HostileServer, SilentPeerEndsAtTheBannerDeadline) {
  HostilePeer peer([](int, const std::atomic<bool>&) {});
  expectTimedOutAt(connectTo(peer.port()), "SSH banner");
}

TEST(HostileServer, OneByteAtATimeEndsAtTheDeadline) {
  // Never a line end: the banner never completes, yet the socket turns
  // readable every 20 ms. This kept drive() looping past its deadline.
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    while (pause(stop, 20) && sendAll(fd, "S", stop)) {
    }
  });
  expectTimedOutAt(connectTo(peer.port()), "SSH banner");
}

TEST(HostileServer, BannerByteByByteThenPartialKexinitEndsAtTheDeadline) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    for (char c : BANNER) {
      if (!pause(stop, 10) || !sendAll(fd, std::string(1, c), stop)) return;
    }
    // The first bytes of a KEXINIT packet of 1,000 bytes, a byte every 30 ms.
    std::string partial("\0\0\x03\xe8\x0a\x14", 6);
    partial += std::string(200, 'k');
    for (char c : partial) {
      if (!pause(stop, 30) || !sendAll(fd, std::string(1, c), stop)) return;
    }
  });
  expectTimedOutAt(connectTo(peer.port()), "KEXINIT did not arrive");
}

TEST(HostileServer, BannerThenNothingEndsAtTheKexDeadline) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) { sendAll(fd, BANNER, stop); });
  Attempt a = connectTo(peer.port());
  expectTimedOutAt(a, "key exchange");
  EXPECT_NE(a.error->message.find("SSH-2.0-Hostile_1.0"), std::string::npos) << a.error->message;
}

TEST(HostileServer, SlowLinesWithoutBannerEndAtTheDeadline) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    for (int i = 0; pause(stop, 50) && sendAll(fd, "not ssh, line " + std::to_string(i) + "\r\n", stop); ++i) {
    }
  });
  Attempt a = connectTo(peer.port());
  ASSERT_TRUE(a.error);
  // libssh2 1.10 takes the first line for the banner whatever it says and
  // fails on what follows; either way it ends in time, named.
  if (a.error->category == Cat::TIMEOUT) {
    expectTimedOutAt(a, "SSH banner");
  } else {
    expectRejectedEarly(a, "SSH banner");
  }
}

TEST(HostileServer, FloodOfLinesIsCutOffWithBoundedMemory) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    std::string lines;
    for (int i = 0; i < 1000; ++i) lines += "flood line " + std::to_string(i) + "\r\n";
    while (sendAll(fd, lines, stop)) {
    }
  });
  Attempt a = connectTo(peer.port());
  expectRejectedEarly(a, "SSH banner");
}

TEST(HostileServer, FloodOfBytesIsCutOffWithBoundedMemory) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    const std::string chunk(64 * 1024, 'x');
    while (sendAll(fd, chunk, stop)) {
    }
  });
  expectRejectedEarly(connectTo(peer.port()), "SSH banner");
}

TEST(HostileServer, FloodAfterTheBannerIsCutOff) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    if (!sendAll(fd, BANNER, stop)) return;
    const std::string chunk(64 * 1024, '\x7f');
    while (sendAll(fd, chunk, stop)) {
    }
  });
  expectRejectedEarly(connectTo(peer.port()), "without a valid KEXINIT");
}

// Valid SSH_MSG_IGNORE packets (plaintext, 16 bytes each) without end.
const std::string IGNORE_PACKET("\0\0\0\x0c\x06\x02\0\0\0\0\0\0\0\0\0\0", 16);

void putString(std::string& out, const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  out += s;
}

// A KEXINIT libssh2 1.10 agrees with.
std::string agreeableKexinit() {
  std::string payload(1, static_cast<char>(20));
  payload += std::string(16, 'c');
  for (const char* l : {"curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256",
                        "hmac-sha2-256", "none", "none", "", ""}) {
    putString(payload, l);
  }
  payload += std::string(5, '\0');
  uint8_t padding = static_cast<uint8_t>(8 - (payload.size() + 5) % 8 + 4);
  std::string packet;
  putString(packet, std::string(1, static_cast<char>(padding)) + payload + std::string(padding, '\0'));
  return packet;
}

void sendIgnoresForever(int fd, const std::atomic<bool>& stop) {
  std::string burst;
  for (int i = 0; i < 256; ++i) burst += IGNORE_PACKET;
  while (sendAll(fd, burst, stop)) {
  }
}

TEST(HostileServer, EndlessIgnorePacketsInsteadOfAKexinitAreCutOff) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    if (sendAll(fd, BANNER, stop)) sendIgnoresForever(fd, stop);
  });
  expectRejectedEarly(connectTo(peer.port()), "without a valid KEXINIT");
}

TEST(HostileServer, EndlessIgnorePacketsAfterTheKexinitEndAtTheDeadline) {
  // libssh2 takes each packet and asks for the next inside one call: the
  // socket never runs dry, so only the recv hook's deadline stops it.
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    if (sendAll(fd, BANNER + agreeableKexinit(), stop)) sendIgnoresForever(fd, stop);
  });
  Attempt a = connectTo(peer.port());
  ASSERT_TRUE(a.error);
  EXPECT_EQ(a.error->category, Cat::TIMEOUT) << a.error->message;
  EXPECT_NE(a.error->message.find("key exchange did not finish"), std::string::npos) << a.error->message;
  EXPECT_GE(a.elapsedMs, DEADLINE_MS - 5);
  EXPECT_LE(a.elapsedMs, DEADLINE_MS + SLACK_MS);
  EXPECT_LE(a.rssGrowthKb, 16 * 1024 + ASAN_QUARANTINE_KB) << "endless packets grew memory";
}

TEST(HostileServer, GarbageAfterTheBannerIsAProtocolError) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    std::string garbage(4, '\0');
    garbage[3] = 40;  // a plausible length, then no KEXINIT
    garbage += std::string(40, '\x55');
    sendAll(fd, BANNER + garbage, stop);
  });
  Attempt a = connectTo(peer.port());
  ASSERT_TRUE(a.error);
  EXPECT_NE(a.error->category, Cat::ALGORITHMS) << a.error->message;
  EXPECT_EQ(a.error->message.find("MaxStartups"), std::string::npos) << a.error->message;
  EXPECT_LE(a.elapsedMs, DEADLINE_MS + SLACK_MS);
  EXPECT_LE(a.cpuMs * 10, std::max<int64_t>(a.elapsedMs, 100));
}

TEST(HostileServer, CommandPipeCancelsAWaitAtOnce) {
  HostilePeer peer([](int, const std::atomic<bool>&) {});
  int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  itimerspec when{};
  when.it_value.tv_nsec = 300'000'000;
  ::timerfd_settime(tfd, 0, &when, nullptr);
  Attempt a = connectTo(peer.port(), "127.0.0.1", DEADLINE_MS, tfd);
  ::close(tfd);
  ASSERT_TRUE(a.error);
  EXPECT_TRUE(a.error->cancelled) << a.error->message;
  EXPECT_LT(a.elapsedMs, 300 + SLACK_MS);
}

// Name resolution under the connect deadline: in a fresh process of its own
// network namespace (NetnsSshdTest; fresh, because glibc's getaddrinfo_a
// workers do not survive a fork) and its own mount namespace,
// /etc/resolv.conf names a UDP "DNS server" on 127.0.0.1:53 that takes every
// query and answers none.
class HostileDns : public NetnsSshdTest {};

TEST_F(HostileDns, UnansweredDnsEndsAtTheConnectDeadline) {
  if (delegated()) return;
  ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
  std::string conf = workDir_ + "/resolv.conf";
  std::ofstream(conf) << "nameserver 127.0.0.1\noptions timeout:3 attempts:1\n";
  ASSERT_EQ(::mount(conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr), 0) << std::strerror(errno);
  size_t fdsBefore = openFds();
  int dns = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(dns, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);

  Attempt at = connectTo(22, "sshsoak-no-such-host.test", DEADLINE_MS);
  // Read (and drop) what the resolver sent: proof that it asked this server.
  int queries = 0;
  char buf[512];
  while (::recv(dns, buf, sizeof buf, MSG_DONTWAIT) > 0) ++queries;
  ::close(dns);
  ::umount("/etc/resolv.conf");
  std::printf("%d queries reached the silent DNS server\n", queries);
  EXPECT_GE(queries, 1) << "the resolver never asked the test's DNS server";
  ASSERT_TRUE(at.error);
  EXPECT_TRUE(at.error->category == Cat::TIMEOUT || at.error->category == Cat::RESOLVE) << at.error->message;
  EXPECT_NE(at.error->message.find("took too long"), std::string::npos) << at.error->message;
  EXPECT_GE(at.elapsedMs, DEADLINE_MS - 5);
  EXPECT_LE(at.elapsedMs, DEADLINE_MS + SLACK_MS);
  EXPECT_LE(at.cpuMs * 10, at.elapsedMs);
  // The abandoned lookup (its pipe, the resolver's socket) is freed when
  // glibc's resolver gives up (timeout:3 attempts:1): nothing outlives it.
  int64_t until = monoMs() + 6000;
  while (openFds() > fdsBefore && monoMs() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(openFds(), fdsBefore) << "the abandoned lookup was never freed";
}

// The same through a short sshsoak run: a peer that accepts every
// connection and trickles a byte every 20 ms to each, never a banner. Each
// attempt of the agent ends at --reconnect-timeout-secs as a `timeout`
// naming the SSH banner, and the agent sleeps meanwhile (its
// /proc/PID/stat CPU time).
TEST_F(SshdTest, HostileTricklingPeerEndsEachAttemptAtItsDeadlineWithTheAgentIdle) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    std::vector<int> conns;
    for (int64_t end = monoMs() + 30'000; !stop && monoMs() < end;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (int c; (c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0 && conns.size() < 64;) {
        conns.push_back(c);
      }
      for (int c : conns) [[maybe_unused]] ssize_t n = ::send(c, "S", 1, MSG_NOSIGNAL);
    }
    for (int c : conns) ::close(c);
  });
  // A failed ASSERT below returns early: the peer is still stopped and
  // joined (a joinable thread's destructor would abort the test binary).
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    int listener;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
      ::close(listener);
    }
  } joiner{stop, peer, listener};
  std::string target = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  SoakProcess soak({"--targets", target, "--user", sshd_->user(), "--key", sshd_->clientKeyPath(), "--known-hosts",
                    sshd_->knownHostsPath(), "--log-path", logPath_, "--sessions", "1", "--duration-secs", "4",
                    "--reconnect-timeout-secs", "1", "--backoff-base-ms", "100", "--backoff-cap-ms", "200"});
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "agent_started").empty(); }, 10)) << soak.err();
  pid_t agent = linesOf(readJsonl(logPath_), "agent_started").front()["pid"].get<pid_t>();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  long before = cpuTicks(agent);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  long used = cpuTicks(agent) - before;
  long hz = ::sysconf(_SC_CLK_TCK);
  int code = soak.wait(30);
  stop = true;
  peer.join();
  ASSERT_NE(code, -1) << soak.err();
  std::printf("agent %d: %ld ticks (%.0f ms) of CPU over 2.5 s of trickled connect attempts\n", agent, used,
              1000.0 * used / hz);
  EXPECT_LE(used * 1000 / hz, 125) << "more than 5 % CPU while waiting on a trickling peer";
  auto lines = readJsonl(logPath_);
  std::vector<Json> failed = linesOf(lines, "connect_failed");
  for (const auto& r : linesOf(lines, "reconnect_failed")) failed.push_back(r);
  ASSERT_GE(failed.size(), 2u);
  for (const auto& f : failed) {
    EXPECT_EQ(f["category"], "timeout") << f.dump();
    EXPECT_NE(f["message"].get<std::string>().find("SSH banner"), std::string::npos) << f.dump();
    if (f.contains("elapsed_ms") && f["elapsed_ms"].is_number()) {
      EXPECT_GE(f["elapsed_ms"].get<int64_t>(), 995) << f.dump();
      EXPECT_LE(f["elapsed_ms"].get<int64_t>(), 1000 + SLACK_MS) << f.dump();
    }
  }
}

// libssh2 stays inside one handshake call for as long as whole packets keep
// coming (endless IGNOREs after a good KEXINIT): the agent never waits, so
// its heartbeat must go out from its reads, or the watchdog would take an
// agent busy reading for a silent one (bound: 3 x 1 s here, while the
// connect deadline is 6 s).
TEST_F(SshdTest, AnAgentReadingAnEndlessKexIsNotTakenForSilence) {
  HostilePeer peer([](int fd, const std::atomic<bool>& stop) {
    if (sendAll(fd, BANNER + agreeableKexinit(), stop)) sendIgnoresForever(fd, stop);
  });
  std::string target = "127.0.0.1:" + std::to_string(peer.port());
  auto r = runSoak({"--targets", target, "--user", sshd_->user(), "--key", sshd_->clientKeyPath(), "--known-hosts",
                    sshd_->knownHostsPath(), "--log-path", logPath_, "--sessions", "1", "--duration-secs", "5",
                    "--heartbeat-secs", "1", "--reconnect-timeout-secs", "6"},
                   40);
  EXPECT_EQ(linesOf(r.lines, "agent_unresponsive").size(), 0u) << r.err;
  EXPECT_EQ(linesOf(r.lines, "agent_crashed").size(), 0u) << r.err;
  EXPECT_EQ(linesOf(r.lines, "agent_started").size(), 1u) << r.err;
}
