// The metrics endpoint (--metrics-listen): a small HTTP/1.1 responder on the
// supervisor's Boost.Asio loop that answers GET /metrics with the text
// metrics.h renders, when the request has arrived whole.
//
// A slow or hostile client cannot stall the run or grow memory:
//   - at most Limits::maxConnections at once, each in a fixed slot with its
//     own request buffer (Limits::maxRequestBytes: a longer head is answered
//     431) and response buffer; one more connection is closed at once (counted);
//   - every connection has one deadline (Limits::deadline) for the request
//     and the response together: a client that sends nothing, trickles, or
//     does not read the answer is closed when it passes;
//   - the loop never blocks on a client: reads and writes are asynchronous,
//     and the text is rendered in one go once the request head is complete.
// Only GET and HEAD of /metrics (a query string is ignored); 404 for other
// paths, 405 for other methods, 400 for what is not HTTP. Each answer closes
// its connection (Connection: close), as a scraper expects nothing more.
#pragma once

#include <array>
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shared/fd.h"
#include "supervisor/run/metrics.h"

namespace sshsoak::metrics {

class Server {
 public:
  // The bounds (the run's are the defaults; tests shorten the deadline).
  struct Limits {
    size_t maxConnections = 8;
    size_t maxRequestBytes = 8192;  // a request head; Prometheus sends ~300 bytes
    std::chrono::milliseconds deadline{5000};  // request and response, from accept
  };

  // render(out, format): the exposition, appended to out (cleared first).
  using RenderFn = std::function<void(std::string& out, Format format)>;
  Server(boost::asio::io_context& io, UniqueFd listening, RenderFn render, Limits limits);
  Server(boost::asio::io_context& io, UniqueFd listening, RenderFn render)
      : Server(io, std::move(listening), std::move(render), Limits{}) {}
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();
  // Stops accepting and closes every connection (the run is over).
  void stop();
  const ServerFigures& figures() const { return figures_; }
  size_t openConnections() const;

 private:
  struct Conn {
    Conn(boost::asio::io_context& io, size_t requestBytes) : socket(io), deadline(io), request(requestBytes) {}
    boost::asio::ip::tcp::socket socket;
    boost::asio::steady_timer deadline;
    std::vector<char> request;  // allocated once, never grown
    size_t received = 0;
    std::string head;  // the response's status line and headers
    std::string body;  // capacity kept between connections
    bool open = false;
    uint64_t generation = 0;  // handlers of a closed connection's earlier life do nothing
  };
  void accept();
  void onAccepted(boost::asio::ip::tcp::socket socket);
  void read(Conn& c);
  void onRequest(Conn& c);
  void respond(Conn& c, int status, std::string_view reason, std::string_view contentType, bool withBody);
  void close(Conn& c);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retryTimer_;  // after a failed accept (EMFILE): no spinning
  RenderFn render_;
  Limits limits_;
  std::vector<std::unique_ptr<Conn>> conns_;  // limits_.maxConnections fixed slots
  ServerFigures figures_;
  bool stopped_ = false;
};

}  // namespace sshsoak::metrics
