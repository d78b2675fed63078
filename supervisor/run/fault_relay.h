// The supervisor's side of sshsoak-proxy (--fault, issue 16): starts it when
// faults are given, sends its configuration over a pipe (never argv), learns
// each session's relay port, turns its window reports into the
// net_fault_started / net_fault_ended lines, and stops it at the end with no
// process or fd left. Protocol: proxy/main.cpp.
#pragma once

#include <sys/types.h>

#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shared/fd.h"
#include "supervisor/cli.h"
#include "supervisor/log_line.h"

namespace sshsoak {

// A report of the relay as a log line: net_fault_started / net_fault_ended
// with the fields docs/reference.md gives; null for any other report.
// sessions: the run's session count (a fault for all names them all);
// firstId: the first one's global id (a shard's; 0 otherwise).
Json netFaultLine(const Json& report, const std::vector<cli::NetFault>& faults, uint32_t sessions,
                  uint32_t firstId = 0);

class FaultRelay {
 public:
  // Starts proxyPath and waits (bounded) for its ports. Throws
  // std::system_error naming the binary and the cause if it cannot start.
  FaultRelay(boost::asio::io_context& io, const std::string& proxyPath, const cli::Options& options,
             int64_t startMonoNs);
  ~FaultRelay();
  FaultRelay(const FaultRelay&) = delete;
  FaultRelay& operator=(const FaultRelay&) = delete;

  // Session i's relay port on 127.0.0.1.
  uint16_t port(uint32_t session) const { return ports_.at(session); }
  pid_t pid() const { return pid_; }
  // Each report line as it arrives (on the loop); onDied once if the relay
  // ends before stop() (with its exit status in words).
  void start(std::function<void(const Json&)> onReport, std::function<void(const std::string&)> onDied);
  // Asks it to end (EOF on its config pipe), hands over its last reports
  // (open windows end), reaps it; SIGKILL after a bound.
  void stop();

 private:
  void armRead();
  void onBytes(size_t n);
  std::string reap(bool wait);

  boost::asio::io_context& io_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  bool stopping_ = false;
  UniqueFd config_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> reports_;
  std::array<char, 4096> buf_{};
  std::string pending_;
  std::vector<uint16_t> ports_;
  std::function<void(const Json&)> onReport_;
  std::function<void(const std::string&)> onDied_;
};

}  // namespace sshsoak
