#include "supervisor/run/metrics_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cctype>

#include "shared/clock.h"

namespace asio = boost::asio;

namespace sshsoak::metrics {

namespace {

constexpr std::chrono::milliseconds ACCEPT_RETRY{100};

bool equalsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The value of a header in a request head ("" when absent), without copying.
std::string_view headerValue(std::string_view head, std::string_view name) {
  size_t pos = head.find('\n');
  while (pos != std::string_view::npos && pos + 1 < head.size()) {
    size_t start = pos + 1;
    size_t end = head.find('\n', start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && equalsNoCase(line.substr(0, colon), name)) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      return value;
    }
    pos = end;
  }
  return {};
}

// Where the head ends (after its blank line), or npos while incomplete.
size_t headEnd(std::string_view data) {
  size_t crlf = data.find("\r\n\r\n");
  size_t lf = data.find("\n\n");
  size_t best = std::string_view::npos;
  if (crlf != std::string_view::npos) best = crlf + 4;
  if (lf != std::string_view::npos && (best == std::string_view::npos || lf + 2 < best)) best = lf + 2;
  return best;
}

}  // namespace

Server::Server(asio::io_context& io, UniqueFd listening, RenderFn render, Limits limits)
    : io_(io), acceptor_(io), retryTimer_(io), render_(std::move(render)), limits_(limits) {
  boost::system::error_code ec;
  int fd = listening.get();
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto protocol = addr.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
  acceptor_.assign(protocol, listening.release(), ec);
  if (ec) throw std::system_error(ec.value(), std::generic_category(), "--metrics-listen: adopting the socket");
  for (size_t i = 0; i < limits_.maxConnections; ++i) conns_.push_back(std::make_unique<Conn>(io_, limits_.maxRequestBytes));
}

Server::~Server() { stop(); }

void Server::start() { accept(); }

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  retryTimer_.cancel();
  acceptor_.close(ec);
  for (auto& c : conns_) {
    if (c->open) close(*c);
  }
}

size_t Server::openConnections() const {
  return static_cast<size_t>(std::count_if(conns_.begin(), conns_.end(), [](const auto& c) { return c->open; }));
}

void Server::accept() {
  if (stopped_) return;
  acceptor_.async_accept([this](const boost::system::error_code& ec, asio::ip::tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of fds or memory for a moment: try again shortly, without spinning.
      spdlog::debug("metrics endpoint: accept: {}", ec.message());
      retryTimer_.expires_after(ACCEPT_RETRY);
      retryTimer_.async_wait([this](const boost::system::error_code& e) {
        if (!e) accept();
      });
      return;
    }
    onAccepted(std::move(socket));
    accept();
  });
}

void Server::onAccepted(asio::ip::tcp::socket socket) {
  auto slot = std::find_if(conns_.begin(), conns_.end(), [](const auto& c) { return !c->open; });
  if (slot == conns_.end()) {
    ++figures_.refusedBusy;
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  Conn& c = **slot;
  c.socket = std::move(socket);
  c.open = true;
  c.received = 0;
  uint64_t generation = ++c.generation;
  c.deadline.expires_after(limits_.deadline);
  c.deadline.async_wait([this, &c, generation](const boost::system::error_code& ec) {
    if (ec || !c.open || c.generation != generation) return;
    ++figures_.timedOut;
    close(c);
  });
  read(c);
}

void Server::read(Conn& c) {
  uint64_t generation = c.generation;
  c.socket.async_read_some(
      asio::buffer(c.request.data() + c.received, c.request.size() - c.received),
      [this, &c, generation](const boost::system::error_code& ec, size_t n) {
        if (!c.open || c.generation != generation) return;
        if (ec) {
          close(c);
          return;
        }
        c.received += n;
        std::string_view data(c.request.data(), c.received);
        if (headEnd(data) != std::string_view::npos) {
          onRequest(c);
        } else if (c.received == c.request.size()) {
          ++figures_.refusedTooLarge;
          c.body = "request head too large\n";
          respond(c, 431, "Request Header Fields Too Large", "text/plain; charset=utf-8", true);
        } else {
          read(c);
        }
      });
}

void Server::onRequest(Conn& c) {
  std::string_view head(c.request.data(), headEnd(std::string_view(c.request.data(), c.received)));
  std::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
    ++figures_.badRequests;
    c.body = "bad request\n";
    respond(c, 400, "Bad Request", "text/plain; charset=utf-8", true);
    return;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    ++figures_.badRequests;
    c.body = "only GET and HEAD\n";
    respond(c, 405, "Method Not Allowed", "text/plain; charset=utf-8", true);
    return;
  }
  if (target != "/metrics") {
    ++figures_.notFound;
    c.body = "not found: the metrics are at /metrics\n";
    respond(c, 404, "Not Found", "text/plain; charset=utf-8", method == "GET");
    return;
  }
  Format format = formatFor(headerValue(head, "Accept"));
  ++(format == Format::OPENMETRICS ? figures_.scrapesOpenMetrics : figures_.scrapesPrometheus);
  int64_t startNs = monoNs();
  render_(c.body, format);
  figures_.lastRenderSecs = static_cast<double>(monoNs() - startNs) / 1e9;
  respond(c, 200, "OK", contentType(format), method == "GET");
}

void Server::respond(Conn& c, int status, std::string_view reason, std::string_view contentType, bool withBody) {
  c.head.clear();
  c.head += "HTTP/1.1 ";
  char num[24];
  c.head.append(num, std::to_chars(num, num + sizeof num, status).ptr);
  c.head += ' ';
  c.head += reason;
  c.head += "\r\nContent-Type: ";
  c.head += contentType;
  c.head += "\r\nContent-Length: ";
  c.head.append(num, std::to_chars(num, num + sizeof num, c.body.size()).ptr);
  if (status == 405) c.head += "\r\nAllow: GET, HEAD";
  c.head += "\r\nConnection: close\r\n\r\n";
  std::array<asio::const_buffer, 2> buffers{asio::buffer(c.head), asio::buffer(c.body.data(), withBody ? c.body.size() : 0)};
  uint64_t generation = c.generation;
  asio::async_write(c.socket, buffers, [this, &c, generation](const boost::system::error_code&, size_t) {
    if (!c.open || c.generation != generation) return;
    boost::system::error_code ec;
    c.socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    close(c);
  });
}

void Server::close(Conn& c) {
  boost::system::error_code ec;
  c.deadline.cancel();
  c.socket.close(ec);
  c.open = false;
  ++c.generation;
}

}  // namespace sshsoak::metrics
