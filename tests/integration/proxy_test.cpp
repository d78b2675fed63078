// sshsoak-proxy, the fault relay, on its own: the real binary started by the
// supervisor's FaultRelay, plain TCP on loopback between this test (client
// and server ends, one thread, poll) and the relay. Each fault kind is
// measured where it acts: bytes, times, closes and resets.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "shared/clock.h"
#include "shared/fd.h"
#include "netns.h"
#include "supervisor/run/fault_relay.h"

using namespace sshsoak;

namespace {

std::string proxyPath() { return SSHSOAK_PROXY_BIN; }

UniqueFd listenLoopback(uint16_t& port) {
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(l.get(), 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return l;
}

UniqueFd connectLoopback(uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  int one = 1;
  ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

// Waits up to timeoutMs for fd to be readable; then reads what is there.
// Returns bytes read, 0 on EOF, -1 on timeout, -2 on error (errno kept).
ssize_t readSome(int fd, std::string& out, int timeoutMs, size_t max = 65536) {
  pollfd p{fd, POLLIN, 0};
  int rc = ::poll(&p, 1, timeoutMs);
  if (rc == 0) return -1;
  std::string buf(max, '\0');
  ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  if (n < 0) return -2;
  out.append(buf.data(), static_cast<size_t>(n));
  return n;
}

// Reads exactly n bytes (or fails the test at the deadline).
std::string readExactly(int fd, size_t n, int timeoutMs) {
  std::string out;
  int64_t deadline = monoMs() + timeoutMs;
  while (out.size() < n) {
    int left = static_cast<int>(deadline - monoMs());
    if (left <= 0 || readSome(fd, out, left, n - out.size()) <= 0) break;
  }
  EXPECT_EQ(out.size(), n);
  return out;
}

void sendAll(int fd, const std::string& data) { ASSERT_TRUE(writeAll(fd, data.data(), data.size())); }

class Proxy : public ::testing::Test {
 protected:
  void SetUp() override {
    fdsBefore_ = countOpenFds();
    for (int i = 0; i < 2; ++i) servers_.push_back(listenLoopback(serverPorts_.emplace_back()));
  }
  void TearDown() override {
    if (relay_) relay_->stop();
    relay_.reset();
    servers_.clear();
    io_.reset();  // its reactor's fds
    EXPECT_EQ(countOpenFds(), fdsBefore_) << "the relay's pipes are closed";
  }

  // Starts the relay for two sessions (each to its own server here).
  void start(std::vector<std::string> specs) {
    cli::Options o;
    for (auto port : serverPorts_) o.slots.push_back(cli::Target{"127.0.0.1", port});
    for (const auto& s : specs) {
      auto f = cli::parseNetFault(s);
      ASSERT_TRUE(f.ok()) << f.error().message;
      o.netFaults.push_back(*f);
    }
    options_ = o;
    startMonoNs_ = monoNs();
    relay_ = std::make_unique<FaultRelay>(*io_, proxyPath(), options_, startMonoNs_);
    relay_->start([this](const Json& r) { reports_.push_back(r); }, [this](const std::string& how) { died_ = how; });
  }

  // A connection through the relay: the client end and the server's end.
  std::pair<UniqueFd, UniqueFd> open(uint32_t session) {
    UniqueFd client = connectLoopback(relay_->port(session));
    pollfd p{servers_[session].get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 3000), 1) << "the relay connects upstream";
    UniqueFd server(::accept4(servers_[session].get(), nullptr, nullptr, SOCK_CLOEXEC));
    int one = 1;
    ::setsockopt(server.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return {std::move(client), std::move(server)};
  }

  std::vector<Json> reportsOf(const std::string& event) {
    io_->poll();
    std::vector<Json> out;
    for (const auto& r : reports_) {
      if (r.value("event", "") == event) out.push_back(r);
    }
    return out;
  }
  int64_t sinceStartMs() const { return (monoNs() - startMonoNs_) / 1'000'000; }
  void sleepUntilMs(int64_t ms) {
    while (sinceStartMs() < ms) ::usleep(5000);
  }

  std::optional<boost::asio::io_context> io_{std::in_place};
  cli::Options options_;
  std::unique_ptr<FaultRelay> relay_;
  std::vector<Json> reports_;
  std::string died_;
  std::vector<UniqueFd> servers_;
  std::vector<uint16_t> serverPorts_;
  int64_t startMonoNs_ = 0;
  int fdsBefore_ = 0;
};

// Round trip of one small message, client -> server -> client, in ms.
double roundTripMs(int client, int server) {
  int64_t t0 = monoNs();
  sendAll(client, "ping");
  readExactly(server, 4, 5000);
  sendAll(server, "pong");
  readExactly(client, 4, 5000);
  return static_cast<double>(monoNs() - t0) / 1e6;
}

TEST_F(Proxy, NoFaultRelaysBothWaysAndClosesCleanly) {
  start({"latency=100ms@60m"});  // not before an hour: nothing in force
  auto [client, server] = open(0);
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  sendAll(client.get(), big);
  EXPECT_TRUE(readExactly(server.get(), big.size(), 5000) == big);
  for (int i = 0; i < 20; ++i) EXPECT_LT(roundTripMs(client.get(), server.get()), 50.0);
  ::shutdown(client.get(), SHUT_WR);
  std::string rest;
  EXPECT_EQ(readSome(server.get(), rest, 3000), 0) << "the client's FIN reaches the server";
  sendAll(server.get(), "bye");
  server.reset();
  EXPECT_EQ(readExactly(client.get(), 3, 3000), "bye");
  EXPECT_EQ(readSome(client.get(), rest, 3000), 0);
  EXPECT_TRUE(reportsOf("window_started").empty());
}

TEST_F(Proxy, LatencyPerDirectionOnTheAffectedSessionOnly) {
  start({"latency=60ms,up@0"});
  auto [c0, s0] = open(0);
  auto [c1, s1] = open(1);
  std::vector<double> slow, fast;
  for (int i = 0; i < 5; ++i) slow.push_back(roundTripMs(c0.get(), s0.get()));
  for (int i = 0; i < 5; ++i) fast.push_back(roundTripMs(c1.get(), s1.get()));
  for (double ms : slow) {
    EXPECT_GE(ms, 59.0);
    EXPECT_LT(ms, 120.0) << "only the up direction is delayed";
  }
  for (double ms : fast) EXPECT_LT(ms, 30.0) << "session 1 is not affected";
  auto started = reportsOf("window_started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0]["fault_id"], 0);
  EXPECT_EQ(started[0]["occurrence"], 1);
}

TEST_F(Proxy, LatencyJitterKeepsTheOrder) {
  start({"latency=20ms~15ms"});
  auto [client, server] = open(0);
  std::string sent;
  for (int i = 0; i < 200; ++i) {
    std::string piece = std::to_string(i) + ",";
    sent += piece;
    sendAll(client.get(), piece);
    ::usleep(200);
  }
  EXPECT_TRUE(readExactly(server.get(), sent.size(), 5000) == sent);
}

TEST_F(Proxy, BandwidthCapsAConnection) {
  start({"bandwidth=400KB,down"});
  auto [client, server] = open(0);
  std::string data(800000, 'd');
  int64_t t0 = monoNs();
  // The server writes as fast as it can; the client reads what arrives.
  setNonBlocking(server.get());
  size_t sent = 0, got = 0;
  std::string buf;
  while (got < data.size() && monoNs() - t0 < 10'000'000'000) {
    if (sent < data.size()) {
      ssize_t n = ::send(server.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    buf.clear();
    if (readSome(client.get(), buf, 10) > 0) got += buf.size();
  }
  double secs = static_cast<double>(monoNs() - t0) / 1e9;
  ASSERT_EQ(got, data.size());
  double rate = static_cast<double>(got) / secs;
  std::printf("800 KB at 400 KB/s: %.2f s, %.0f KB/s\n", secs, rate / 1000);
  EXPECT_GT(secs, 1.7) << "capped";
  EXPECT_LT(secs, 3.0) << "but not slower than the cap by much";
  // Up is not capped.
  std::string up(800000, 'u');
  t0 = monoNs();
  sendAll(client.get(), up);
  readExactly(server.get(), up.size(), 5000);
  EXPECT_LT(static_cast<double>(monoNs() - t0) / 1e9, 1.0);
}

// Held, not dropped; bounded: the writer is pushed back by TCP, and what was
// held arrives after the window, in order.
TEST_F(Proxy, BlackholeHoldsBytesBoundedAndReleasesThemAfterTheWindow) {
  start({"blackhole@300ms+1200ms@0"});
  auto [client, server] = open(0);
  sleepUntilMs(400);
  ASSERT_EQ(reportsOf("window_started").size(), 1u);
  EXPECT_EQ(reportsOf("window_started")[0]["connections"], 1);
  setNonBlocking(client.get());
  std::string data(16 * 1024 * 1024, 'b');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>('A' + (i / 4096) % 26);
  size_t accepted = 0;
  int64_t until = monoMs() + 500;
  while (monoMs() < until) {
    ssize_t n = ::send(client.get(), data.data() + accepted, data.size() - accepted, MSG_NOSIGNAL);
    if (n > 0) accepted += static_cast<size_t>(n);
    else ::usleep(2000);
  }
  std::printf("a blackholed connection took %zu bytes (relay buffer 256 KiB + kernel buffers)\n", accepted);
  EXPECT_LT(accepted, data.size()) << "the writer was pushed back";
  EXPECT_LT(accepted, 12u * 1024 * 1024);
  std::string got;
  EXPECT_EQ(readSome(server.get(), got, 300), -1) << "nothing forwarded during the window";
  sleepUntilMs(1600);
  // After the window: everything accepted arrives, in order.
  setNonBlocking(client.get(), false);
  std::string all = readExactly(server.get(), accepted, 10000);
  EXPECT_TRUE(all == data.substr(0, accepted));
  auto ended = reportsOf("window_ended");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_GT(ended[0]["bytes_held"].get<uint64_t>(), 100000u);
  EXPECT_LE(ended[0]["bytes_held"].get<uint64_t>(), accepted);
  EXPECT_GE(ended[0]["duration_ms"].get<int64_t>(), 1150);
}

namespace {

// Byte i of a stream that shows a lost, doubled or reordered block.
char patternAt(uint64_t i) { return static_cast<char>((i * 2654435761u >> 11) ^ (i >> 16)); }

double cpuSecs(pid_t pid) { return static_cast<double>(sshsoak::testing::cpuTicks(pid)) / ::sysconf(_SC_CLK_TCK); }

// Pipes a process holds open (its /proc/PID/fd links "pipe:[...]").
int pipesOf(pid_t pid) {
  int n = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      char link[64] = {};
      std::string path = dir + "/" + e->d_name;
      if (::readlink(path.c_str(), link, sizeof link - 1) > 0 && std::string(link).rfind("pipe:", 0) == 0) ++n;
    }
    ::closedir(d);
  }
  return n;
}

}  // namespace

// A bulk flow with no fault shaping it goes through a pipe with splice(2).
// Windows that begin while the pipe holds bytes (the reader paused just
// before each) take those bytes with the rest: a blackhole holds them, a
// latency delays them; every byte arrives once and in order, and the
// flow's pipes go with its connection.
TEST_F(Proxy, ABulkFlowThatAFaultCatchesMidwayKeepsEveryByteInOrder) {
  start({"blackhole@500ms+400ms@0", "latency=30ms@1300ms+400ms@0"});
  // A small receive buffer at the server's end (the accepted socket takes
  // it from the listener): a pause of the reader fills the relay's pipe,
  // not megabytes of loopback socket buffers.
  int small = 64 * 1024;
  ASSERT_EQ(::setsockopt(servers_[0].get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  const int pipesIdle = pipesOf(relay_->pid());
  auto [client, server] = open(0);
  setNonBlocking(client.get());
  setNonBlocking(server.get());
  std::string block(1 << 20, '\0');
  std::string in(1 << 20, '\0');
  uint64_t sent = 0, got = 0, wrong = 0;
  int pipesBulk = 0;
  int64_t nextBurst = 0;
  bool shut = false;
  const int64_t deadline = monoMs() + 20000;
  while (monoMs() < deadline) {
    const int64_t t = sinceStartMs();
    // 1 MiB every 20 ms until 2 s: reads that fill the relay's buffer.
    if (t < 2000 && monoMs() >= nextBurst) {
      for (size_t i = 0; i < block.size(); ++i) block[i] = patternAt(sent + i);
      size_t off = 0;
      while (off < block.size() && sinceStartMs() < 2000) {
        ssize_t n = ::send(client.get(), block.data() + off, block.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
          off += static_cast<size_t>(n);
          continue;
        }
        ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
        // Pushed back: read on the other end meanwhile (unless paused).
        break;
      }
      sent += off;
      nextBurst = monoMs() + 20;
    }
    if (t >= 2000 && !shut) {
      ::shutdown(client.get(), SHUT_WR);
      shut = true;
    }
    pipesBulk = std::max(pipesBulk, pipesOf(relay_->pid()));
    // The reader pauses before each window, so the relay's pipe is full
    // when it begins.
    const bool paused = (t >= 380 && t < 520) || (t >= 1180 && t < 1320);
    if (paused) {
      ::usleep(2000);
      continue;
    }
    pollfd p{server.get(), POLLIN, 0};
    if (::poll(&p, 1, 2) <= 0) continue;
    ssize_t n = ::recv(server.get(), in.data(), in.size(), 0);
    if (n == 0) break;  // the FIN, after everything
    if (n < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      continue;
    }
    for (ssize_t i = 0; i < n; ++i) wrong += in[static_cast<size_t>(i)] != patternAt(got + static_cast<uint64_t>(i));
    got += static_cast<uint64_t>(n);
  }
  std::printf("[ figures  ] %.1f MB relayed; relay pipes idle %d, during the bulk flow %d\n", got / 1e6, pipesIdle,
              pipesBulk);
  EXPECT_TRUE(shut);
  EXPECT_EQ(got, sent) << "every byte sent arrived, then the FIN";
  EXPECT_EQ(wrong, 0u) << "in order, none lost, doubled or changed";
  EXPECT_GT(sent, 20u * 1024 * 1024);
  EXPECT_EQ(pipesBulk, pipesIdle + 2) << "the bulk direction went through a pipe of its own";
  client.reset();
  server.reset();
  const int64_t until = monoMs() + 3000;
  while (pipesOf(relay_->pid()) != pipesIdle && monoMs() < until) ::usleep(10000);
  EXPECT_EQ(pipesOf(relay_->pid()), pipesIdle) << "the pipe was closed with its connection";
  auto ended = reportsOf("window_ended");
  ASSERT_EQ(ended.size(), 2u);
}

// TCP urgent data in a bulk flow on the splice path: a splice stops at the
// urgent mark, where read() steps over it. The flow must neither stall
// there (with the loop spinning on a readable socket) nor take the mark for
// the end: everything around the urgent byte arrives, then the FIN.
TEST_F(Proxy, UrgentDataInABulkFlowNeitherStallsNorSpinsTheRelay) {
  start({"latency=100ms@60m"});  // not in force
  const int pipesIdle = pipesOf(relay_->pid());
  auto [client, server] = open(0);
  std::string before(2 * 1024 * 1024, '\0'), after(256 * 1024, '\0');
  for (size_t i = 0; i < before.size(); ++i) before[i] = patternAt(i);
  for (size_t i = 0; i < after.size(); ++i) after[i] = patternAt(before.size() + i);
  const double cpu0 = cpuSecs(relay_->pid());
  sendAll(client.get(), before.substr(0, 1024 * 1024));
  // The relay has taken the flow to its pipe once the server has the first
  // megabyte; then the rest, the urgent byte, more, and the FIN.
  std::string got = readExactly(server.get(), 1024 * 1024, 5000);
  ASSERT_EQ(pipesOf(relay_->pid()), pipesIdle + 2) << "the flow is on the splice path when the urgent byte comes";
  sendAll(client.get(), before.substr(1024 * 1024));
  ASSERT_EQ(::send(client.get(), "!", 1, MSG_OOB), 1) << std::strerror(errno);
  sendAll(client.get(), after);
  ::shutdown(client.get(), SHUT_WR);
  const int64_t deadline = monoMs() + 5000;
  for (;;) {
    int left = static_cast<int>(deadline - monoMs());
    if (left <= 0) break;
    ssize_t n = readSome(server.get(), got, left);
    if (n <= 0) break;
  }
  const double cpu = cpuSecs(relay_->pid()) - cpu0;
  std::printf("[ figures  ] %zu of %zu bytes arrived; relay CPU %.2f s\n", got.size(), before.size() + after.size(),
              cpu);
  EXPECT_EQ(got.size(), before.size() + after.size()) << "the bytes after the urgent byte arrived, then the FIN";
  EXPECT_TRUE(got == before + after) << "in order; the urgent byte is not in the stream (no SO_OOBINLINE)";
  EXPECT_LT(cpu, 1.0) << "the relay did not spin";
}

// Out of fds: accept fails while the listener stays readable. The relay
// leaves the listener alone for a while (the client waits in the backlog)
// instead of waking without end, and serves the client once fds are free.
TEST_F(Proxy, OutOfFdsTheRelayWaitsIdleAndServesTheClientOnceItCan) {
  start({"latency=100ms@60m"});  // not in force
  const pid_t pid = relay_->pid();
  rlimit was{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &was), 0) << std::strerror(errno);
  // One fd above the highest open now (and any holes below it): a client
  // could be accepted, but its upstream socket could not be made.
  int highest = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') highest = std::max(highest, std::atoi(e->d_name));
  }
  ::closedir(d);
  rlimit tight{static_cast<rlim_t>(highest + 2), was.rlim_max};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr), 0) << std::strerror(errno);
  struct Restore {
    pid_t pid;
    rlimit was;
    ~Restore() { ::prlimit(pid, RLIMIT_NOFILE, &was, nullptr); }
  } restore{pid, was};
  // Connect until a client is not relayed: it waits in the relay's
  // backlog (holes in the fd table take a few first). None is reset: the
  // relay accepts a client only when it has both its fds.
  std::vector<UniqueFd> clients;
  std::vector<UniqueFd> relayed;
  bool waiting = false;
  for (int i = 0; i < 8 && !waiting; ++i) {
    clients.push_back(connectLoopback(relay_->port(0)));
    pollfd p{servers_[0].get(), POLLIN, 0};
    if (::poll(&p, 1, 300) == 1) {
      relayed.emplace_back(::accept4(servers_[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
      continue;
    }
    char b;
    ssize_t n = ::recv(clients.back().get(), &b, 1, MSG_DONTWAIT);
    ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        << "client " << i << " was " << (n == 0 ? "closed" : std::strerror(errno)) << ", not left waiting";
    waiting = true;
  }
  ASSERT_TRUE(waiting) << "no client was left waiting in the backlog";
  const double cpu0 = cpuSecs(pid);
  ::usleep(1'000'000);
  const double cpu = cpuSecs(pid) - cpu0;
  std::printf("[ figures  ] relay CPU over 1 s with a client it cannot accept: %.2f s (%zu relayed first)\n", cpu,
              relayed.size());
  EXPECT_LT(cpu, 0.3) << "the relay spun on a listener it could not accept from";
  {
    // Still not relayed after that second: it was stuck, not just slow.
    pollfd p{servers_[0].get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 0), 0) << "the client was relayed while the relay had no fds";
    char b;
    ASSERT_LT(::recv(clients.back().get(), &b, 1, MSG_DONTWAIT), 0) << "the waiting client was not reset";
  }
  // fds free again: the waiting client is relayed.
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &was, nullptr), 0);
  pollfd p{servers_[0].get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1) << "the waiting client reaches the server once the relay can accept";
  UniqueFd server(::accept4(servers_[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
  sendAll(clients.back().get(), "late");
  EXPECT_EQ(readExactly(server.get(), 4, 3000), "late");
}

TEST_F(Proxy, ResetSendsRstBothWaysAndResetsNewConnectionsInTheWindow) {
  start({"reset@300ms+600ms@0"});
  auto [client, server] = open(0);
  auto [c1, s1] = open(1);
  sleepUntilMs(400);
  std::string buf;
  EXPECT_EQ(readSome(client.get(), buf, 1000), -2);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(readSome(server.get(), buf, 1000), -2);
  EXPECT_EQ(errno, ECONNRESET);
  // A new connection during the window: reset at once.
  UniqueFd again = connectLoopback(relay_->port(0));
  EXPECT_EQ(readSome(again.get(), buf, 1000), -2);
  EXPECT_EQ(errno, ECONNRESET);
  // Session 1 is untouched.
  EXPECT_LT(roundTripMs(c1.get(), s1.get()), 50.0);
  sleepUntilMs(1000);
  auto [c2, s2] = open(0);
  EXPECT_LT(roundTripMs(c2.get(), s2.get()), 50.0) << "after the window, connections work";
  auto ended = reportsOf("window_ended");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0]["resets"], 2);       // the open one, and the new one
  EXPECT_EQ(ended[0]["connections"], 2);
}

TEST_F(Proxy, TimeoutStopsForwardingThenClosesAfterT) {
  start({"timeout=500ms@200ms+3s@0"});
  auto [client, server] = open(0);
  sleepUntilMs(250);
  int64_t t0 = monoMs();
  sendAll(client.get(), "held");
  std::string buf;
  ssize_t n = readSome(server.get(), buf, 3000);
  int64_t closedAfter = monoMs() - t0;
  EXPECT_EQ(n, 0) << "closed, and the held bytes not forwarded: " << buf;
  EXPECT_GE(closedAfter, 350);
  EXPECT_LT(closedAfter, 1200);
  sleepUntilMs(3400);
  EXPECT_EQ(reportsOf("window_ended").at(0)["resets"], 1);
}

TEST_F(Proxy, SlowCloseDelaysTheFin) {
  start({"slow-close=700ms"});
  auto [client, server] = open(0);
  sendAll(client.get(), "last words");
  int64_t t0 = monoMs();
  client.reset();
  EXPECT_EQ(readExactly(server.get(), 10, 2000), "last words");
  std::string buf;
  ssize_t n = readSome(server.get(), buf, 3000);
  EXPECT_EQ(n, 0);
  int64_t finAfter = monoMs() - t0;
  EXPECT_GE(finAfter, 650);
  EXPECT_LT(finAfter, 1500);
}

TEST_F(Proxy, LimitDataClosesAfterNBytes) {
  start({"limit-data=10KB,down"});
  auto [client, server] = open(0);
  sendAll(client.get(), std::string(20000, 'u'));  // up is not counted
  readExactly(server.get(), 20000, 3000);
  std::string down(30000, 'd');
  sendAll(server.get(), down);
  std::string got;
  int64_t deadline = monoMs() + 3000;
  ssize_t n = 1;
  while (n > 0 && monoMs() < deadline) n = readSome(client.get(), got, 1000);
  EXPECT_LE(n, 0) << "closed";
  EXPECT_EQ(got.size(), 10000u) << "exactly the limit went through";
  relay_->stop();
  auto ended = reportsOf("window_ended");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0]["resets"], 1);
}

TEST_F(Proxy, SlicerSplitsWritesAndPacesThem) {
  start({"slicer=100B~20B/5ms@0"});
  auto [client, server] = open(0);
  std::string data(3000, 's');
  int64_t t0 = monoNs();
  sendAll(client.get(), data);
  std::vector<size_t> reads;
  size_t got = 0;
  while (got < data.size()) {
    std::string buf;
    if (readSome(server.get(), buf, 2000) <= 0) break;
    reads.push_back(buf.size());
    got += buf.size();
  }
  double ms = static_cast<double>(monoNs() - t0) / 1e6;
  EXPECT_EQ(got, data.size());
  EXPECT_GE(reads.size(), 20u) << "arrived in slices";
  EXPECT_LE(*std::max_element(reads.begin(), reads.end()), 240u) << "at most two slices of <= 120 B at once";
  EXPECT_GE(ms, 100.0) << "about 25 slices, 5 ms apart";
}

TEST_F(Proxy, RepeatingWindowsAreReportedEachTime) {
  // Every 400 ms: latency 100-200 ms, a reset at 150 ms. At 750 ms two of
  // each have started and ended, and nothing is open: 150 ms from any edge,
  // so a loaded machine (ASan, CI) does not move a window across the look.
  start({"latency=1ms@100ms+100ms/400ms", "reset@150ms/400ms@1"});
  sleepUntilMs(750);
  auto started = reportsOf("window_started");
  auto ended = reportsOf("window_ended");
  size_t latencyStarts = 0, resetStarts = 0;
  for (const auto& s : started) (s["fault_id"] == 0 ? latencyStarts : resetStarts)++;
  EXPECT_EQ(latencyStarts, 2u);  // 100, 500 ms
  EXPECT_EQ(resetStarts, 2u);    // 150, 550 ms
  EXPECT_EQ(ended.size(), 4u) << "every window started has ended by 750 ms";
  for (const auto& e : ended) {
    if (e["fault_id"] == 1) {
      EXPECT_EQ(e["duration_ms"], 0);
    }
  }
}

TEST_F(Proxy, StopEndsOpenWindowsAndLeavesNothing) {
  start({"blackhole@0s"});
  auto [client, server] = open(0);
  pid_t pid = relay_->pid();
  relay_->stop();
  auto ended = reportsOf("window_ended");
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0]["connections"], 1);
  EXPECT_NE(::kill(pid, 0), 0) << "the relay is gone and reaped";
  std::string buf;
  EXPECT_LE(readSome(client.get(), buf, 2000), 0) << "its connections are closed";
}

TEST_F(Proxy, ARelayThatDiesIsReported) {
  start({"latency=1ms"});
  ::kill(relay_->pid(), SIGKILL);
  int64_t deadline = monoMs() + 3000;
  while (died_.empty() && monoMs() < deadline) io_->run_one_for(std::chrono::milliseconds(50));
  EXPECT_NE(died_.find("SIGKILL"), std::string::npos) << died_;
}

}  // namespace
