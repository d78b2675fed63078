#include "supervisor/run/fault_relay.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <system_error>

#include "shared/clock.h"
#include "shared/spawn.h"
#include "supervisor/run/exit_status.h"

namespace bp = boost::process;
namespace asio = boost::asio;

namespace sshsoak {

namespace {

constexpr int RELAY_REPORT_FD = 3;
constexpr int RELAY_CONFIG_FD = 4;
constexpr int64_t READY_TIMEOUT_MS = 10000;
constexpr int64_t STOP_TIMEOUT_MS = 3000;
// A report line is a few hundred bytes; anything this long is not one.
constexpr size_t MAX_REPORT_LINE = 64 * 1024;

[[noreturn]] void cannotStart(const std::string& proxyPath, const std::string& why) {
  throw std::system_error(std::make_error_code(std::errc::io_error),
                          "cannot start the fault relay " + proxyPath + ": " + why);
}

// One line from fd within the deadline (blocking side of the start-up).
std::optional<std::string> readLineBefore(int fd, std::string& pending, int64_t deadlineMs) {
  for (;;) {
    if (auto nl = pending.find('\n'); nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return line;
    }
    int64_t left = deadlineMs - monoMs();
    if (left <= 0 || pending.size() > MAX_REPORT_LINE) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    pending.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

Json netFaultLine(const Json& report, const std::vector<cli::NetFault>& faults, uint32_t sessions,
                 uint32_t firstId) {
  std::string event = report.value("event", "");
  bool started = event == "window_started";
  if (!started && event != "window_ended") return nullptr;
  uint32_t id = report.value("fault_id", uint32_t{0});
  if (id >= faults.size()) return nullptr;
  const cli::NetFault& fault = faults[id];
  // The line's time is the relay's: when the window began or ended.
  int64_t atNs = report.value("wall_ns", wallNs());
  Json j = lineHead(atNs, std::nullopt, "", started ? "net_fault_started" : "net_fault_ended");
  j["fault_id"] = id;
  j["occurrence"] = report.value("occurrence", uint32_t{1});
  j["kind"] = std::string(faultKindName(fault.spec.kind));
  j["spec"] = fault.given;
  if (started) {
    Json ids = Json::array();
    // Global ids (a shard's sessions start at firstId), as every other
    // line and the SPEC's session list have them.
    for (uint32_t s = firstId; s < firstId + sessions; ++s) {
      if (fault.spec.appliesTo(s)) ids.push_back(s);
    }
    j["sessions"] = std::move(ids);
    j["connections"] = report.value("connections", uint64_t{0});
    j["planned_ms"] = fault.spec.when.lengthMs ? Json(*fault.spec.when.lengthMs) : Json(nullptr);
  } else {
    j["duration_ms"] = report.value("duration_ms", int64_t{0});
    j["connections"] = report.value("connections", uint64_t{0});
    j["bytes_held"] = report.value("bytes_held", uint64_t{0});
    j["resets"] = report.value("resets", uint64_t{0});
  }
  return j;
}

FaultRelay::FaultRelay(asio::io_context& io, const std::string& proxyPath, const cli::Options& options,
                       int64_t startMonoNs)
    : io_(io) {
  if (::access(proxyPath.c_str(), X_OK) != 0) cannotStart(proxyPath, std::strerror(errno) + std::string(" (build it)"));
  Pipe reports = makePipe();
  Pipe config = makePipe();
  ChildSetup setup;
  setup.fdMap = {{{reports.writeEnd.get(), RELAY_REPORT_FD}, {config.readEnd.get(), RELAY_CONFIG_FD}}};
  bp::child child(bp::exe = proxyPath, bp::args = {std::string("relay")}, bp::std_in < bp::null,
                  bp::std_out > bp::null, setup);
  pid_ = child.id();
  child.detach();  // reaped by PID here
  reports.writeEnd.reset();
  config.readEnd.reset();
  config_ = std::move(config.writeEnd);

  Json c;
  c["start_mono_ns"] = startMonoNs;
  c["seed"] = static_cast<uint64_t>(wallNs());
  c["faults"] = Json::array();
  for (const auto& f : options.netFaults) c["faults"].push_back(f.spec.text());
  c["sessions"] = Json::array();
  for (uint32_t i = 0; i < options.slots.size(); ++i) {
    // The SPECs name global session ids: on a shard, slot i is session
    // firstSessionId + i. The relay's ports stay in slot order.
    c["sessions"].push_back({{"id", options.firstSessionId + i}, {"host", options.slots[i].host}, {"port", options.slots[i].port}});
  }
  std::string text = c.dump() + "\n";
  if (!writeAll(config_.get(), text.data(), text.size())) {
    cannotStart(proxyPath, "it exited at once: " + reap(true));
  }
  auto line = readLineBefore(reports.readEnd.get(), pending_, monoMs() + READY_TIMEOUT_MS);
  Json ready = line ? Json::parse(*line, nullptr, false) : Json();
  if (!ready.is_object() || ready.value("event", "") != "ready") {
    std::string detail = ready.is_object() ? ready.value("detail", "no ports") : "no ready line within 10 s";
    ::kill(pid_, SIGKILL);
    cannotStart(proxyPath, detail + " (" + reap(true) + ")");
  }
  ports_ = ready.at("ports").get<std::vector<uint16_t>>();
  if (ports_.size() != options.slots.size()) {
    ::kill(pid_, SIGKILL);
    reap(true);
    cannotStart(proxyPath, "it listens on " + std::to_string(ports_.size()) + " ports for " +
                               std::to_string(options.slots.size()) + " sessions");
  }
  reports_ = std::make_unique<asio::posix::stream_descriptor>(io_, reports.readEnd.release());
}

FaultRelay::~FaultRelay() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

void FaultRelay::start(std::function<void(const Json&)> onReport, std::function<void(const std::string&)> onDied) {
  onReport_ = std::move(onReport);
  onDied_ = std::move(onDied);
  // Lines that came with the ready line.
  onBytes(0);
  armRead();
}

void FaultRelay::armRead() {
  if (!reports_) return;  // stopped
  reports_->async_read_some(asio::buffer(buf_), [this](const boost::system::error_code& ec, size_t n) {
    if (ec == asio::error::operation_aborted) return;
    // A read that completed just before stop() cancelled it still runs here,
    // after stop() dropped the descriptor: keep its bytes, read no more.
    if (!reports_) {
      if (!ec) onBytes(n);
      return;
    }
    if (ec) {
      // EOF: the relay ended. Expected only once stop() asked it to.
      if (!stopping_) {
        std::string how = reap(true);
        if (onDied_) onDied_(how);
      }
      return;
    }
    onBytes(n);
    armRead();
  });
}

void FaultRelay::onBytes(size_t n) {
  pending_.append(buf_.data(), n);
  size_t nl;
  while ((nl = pending_.find('\n')) != std::string::npos) {
    Json report = Json::parse(pending_.substr(0, nl), nullptr, false);
    pending_.erase(0, nl + 1);
    if (report.is_object() && onReport_) onReport_(report);
  }
  if (pending_.size() > MAX_REPORT_LINE) pending_.clear();
}

std::string FaultRelay::reap(bool wait) {
  if (reaped_) return "already reaped";
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, wait ? 0 : WNOHANG);
  if (r != pid_) return "still running";
  reaped_ = true;
  return decodeWaitStatus(status).text();
}

void FaultRelay::stop() {
  if (reaped_ || pid_ <= 0) return;
  stopping_ = true;
  config_.reset();  // EOF: the relay ends its open windows and exits
  int fd = reports_ ? reports_->native_handle() : -1;
  int64_t deadline = monoMs() + STOP_TIMEOUT_MS;
  if (fd >= 0) {
    boost::system::error_code ec;
    reports_->cancel(ec);
    std::string rest;
    rest.swap(pending_);
    while (auto line = readLineBefore(fd, rest, deadline)) {
      Json report = Json::parse(*line, nullptr, false);
      if (report.is_object() && onReport_) onReport_(report);
    }
    reports_.reset();
  }
  // Its reports ended: it has exited or is about to.
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (monoMs() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    ::usleep(10000);
  }
  reaped_ = true;
}

}  // namespace sshsoak
