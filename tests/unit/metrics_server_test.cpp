// The metrics endpoint on a real loopback socket and a real Asio loop (run
// here, on the test's thread): answers, refusals and the bounds that keep a
// slow or hostile client from stalling the loop or growing memory.
#include "supervisor/run/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "shared/clock.h"

using namespace sshsoak;
using namespace sshsoak::metrics;
using namespace std::chrono_literals;

namespace {

class Client {
 public:
  explicit Client(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    setNonBlocking(fd_.get());
  }
  bool connected() const { return connected_; }
  // Sends what the socket takes now; returns the bytes sent.
  size_t send(std::string_view data) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // Runs the loop until the server closes the connection or the time is up;
  // what arrived meanwhile is in reply(). True when closed.
  bool awaitClose(boost::asio::io_context& io, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      io.run_for(5ms);
      char buf[65536];
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) reply_.append(buf, static_cast<size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return true;
    }
    return false;
  }
  const std::string& reply() const { return reply_; }

 private:
  UniqueFd fd_;
  bool connected_ = false;
  std::string reply_;
};

struct Endpoint {
  boost::asio::io_context io;
  uint16_t port = 0;
  int renders = 0;
  std::unique_ptr<Server> server;

  explicit Endpoint(Server::Limits limits = {}) {
    auto l = bindListener(ListenAddress{"127.0.0.1", 0});
    EXPECT_TRUE(l) << l.error();
    port = static_cast<uint16_t>(std::stoi(l->bound.substr(l->bound.rfind(':') + 1)));
    server = std::make_unique<Server>(
        io, std::move(l->fd),
        [this](std::string& out, Format f) {
          ++renders;
          out = f == Format::OPENMETRICS ? "# EOF\n" : "sshsoak_up 1\n";
        },
        limits);
    server->start();
  }

  std::string fetch(const std::string& request) {
    Client c(port);
    EXPECT_TRUE(c.connected());
    EXPECT_EQ(c.send(request), request.size());
    EXPECT_TRUE(c.awaitClose(io, 2000ms)) << "no answer to " << request;
    return c.reply();
  }
};

}  // namespace

TEST(MetricsServer, AnswersGetAndHeadOfMetricsAndRefusesTheRest) {
  Endpoint e;
  std::string ok = e.fetch("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n")) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << ok;
  EXPECT_NE(ok.find("Content-Length: 13\r\n"), std::string::npos) << ok;
  EXPECT_TRUE(ok.ends_with("\r\n\r\nsshsoak_up 1\n")) << ok;

  std::string om = e.fetch("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nACCEPT: application/openmetrics-text;version=1.0.0\r\n\r\n");
  EXPECT_NE(om.find("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
            std::string::npos)
      << om;
  EXPECT_TRUE(om.ends_with("# EOF\n")) << om;

  std::string head = e.fetch("HEAD /metrics HTTP/1.0\n\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;

  EXPECT_TRUE(e.fetch("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
  std::string post = e.fetch("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos) << post;
  EXPECT_TRUE(e.fetch("hello\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));

  EXPECT_EQ(e.renders, 3);
  EXPECT_EQ(e.server->figures().scrapesPrometheus, 2u);
  EXPECT_EQ(e.server->figures().scrapesOpenMetrics, 1u);
  EXPECT_EQ(e.server->figures().notFound, 1u);
  EXPECT_EQ(e.server->figures().badRequests, 2u);
  EXPECT_EQ(e.server->openConnections(), 0u);
}

TEST(MetricsServer, ASilentClientDoesNotHoldUpAScrapeAndIsClosedAtItsDeadline) {
  Endpoint e(Server::Limits{.maxConnections = 4, .maxRequestBytes = 1024, .deadline = 300ms});
  Client silent(e.port);
  ASSERT_TRUE(silent.connected());
  Client trickle(e.port);
  ASSERT_TRUE(trickle.connected());
  trickle.send("GET /met");
  int64_t start = monoMs();
  std::string ok = e.fetch("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK")) << ok;
  EXPECT_LT(monoMs() - start, 250) << "the scrape waited for the silent clients";
  EXPECT_EQ(e.server->openConnections(), 2u);
  EXPECT_TRUE(silent.awaitClose(e.io, 2000ms));
  EXPECT_TRUE(trickle.awaitClose(e.io, 2000ms));
  EXPECT_EQ(silent.reply(), "");  // closed, nothing answered
  EXPECT_EQ(e.server->figures().timedOut, 2u);
  EXPECT_EQ(e.server->openConnections(), 0u);
}

TEST(MetricsServer, AHugeHeadIsRefusedAtTheLimitWithoutReadingOn) {
  Endpoint e(Server::Limits{.maxConnections = 4, .maxRequestBytes = 1024, .deadline = 2000ms});
  Client c(e.port);
  ASSERT_TRUE(c.connected());
  std::string huge = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(4 << 20, 'x');
  size_t sent = 0;
  auto until = std::chrono::steady_clock::now() + 2s;
  // Send as much as the socket takes, running the loop between sends.
  while (sent < huge.size() && std::chrono::steady_clock::now() < until && c.reply().empty()) {
    sent += c.send(std::string_view(huge).substr(sent));
    c.awaitClose(e.io, 5ms);
  }
  EXPECT_TRUE(c.awaitClose(e.io, 2000ms));
  EXPECT_TRUE(c.reply().starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n")) << c.reply();
  EXPECT_EQ(e.server->figures().refusedTooLarge, 1u);
  EXPECT_EQ(e.renders, 0);
  // The endpoint answers the next scrape as before.
  EXPECT_TRUE(e.fetch("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

TEST(MetricsServer, ConnectionsOverTheLimitAreClosedAtOnce) {
  Endpoint e(Server::Limits{.maxConnections = 3, .maxRequestBytes = 1024, .deadline = 5000ms});
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(e.port));
    ASSERT_TRUE(held.back()->connected());
  }
  e.io.run_for(50ms);
  EXPECT_EQ(e.server->openConnections(), 3u);
  Client extra(e.port);
  ASSERT_TRUE(extra.connected());
  int64_t start = monoMs();
  EXPECT_TRUE(extra.awaitClose(e.io, 1000ms));
  EXPECT_LT(monoMs() - start, 500);
  EXPECT_EQ(e.server->figures().refusedBusy, 1u);
  held.clear();  // their slots free as their EOFs are read
  e.io.run_for(100ms);
  EXPECT_EQ(e.server->openConnections(), 0u);
  EXPECT_TRUE(e.fetch("GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

TEST(MetricsServer, StopClosesEverything) {
  Endpoint e;
  Client c(e.port);
  ASSERT_TRUE(c.connected());
  e.io.run_for(50ms);
  EXPECT_EQ(e.server->openConnections(), 1u);
  e.server->stop();
  EXPECT_TRUE(c.awaitClose(e.io, 1000ms));
  EXPECT_EQ(e.server->openConnections(), 0u);
  Client late(e.port);
  EXPECT_FALSE(late.connected());  // the listening socket is closed: refused
}
