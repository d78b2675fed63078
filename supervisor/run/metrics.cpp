#include "supervisor/run/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <capnp/schema.h>
#include <charconv>
#include <cmath>
#include <cstring>

#include "events.capnp.h"
#include "shared/wire_names.h"

namespace sshsoak::metrics {

namespace {

// Appends to the caller's buffer: numbers through to_chars, label values
// escaped in place, nothing built per sample.
class Writer {
 public:
  Writer(std::string& out, Format format, std::string_view runLabels)
      : out_(out), format_(format), runLabels_(runLabels) {}

  // A family's HELP and TYPE. A counter's samples end in _total; its
  // family is named without it in OpenMetrics, with it in Prometheus text.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    bool counter = type == "counter";
    for (std::string_view what : {std::string_view("# HELP "), std::string_view("# TYPE ")}) {
      out_ += what;
      out_ += name;
      if (counter && format_ == Format::PROMETHEUS) out_ += "_total";
      out_ += ' ';
      out_ += what == "# HELP " ? help : type;
      out_ += '\n';
    }
  }

  struct Label {
    std::string_view name, value;
  };

  void sample(std::string_view name, std::string_view suffix, std::initializer_list<Label> extra, double value) {
    head(name, suffix, extra);
    number(value);
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view suffix, std::initializer_list<Label> extra, uint64_t value) {
    head(name, suffix, extra);
    integer(value);
    out_ += '\n';
  }
  // A histogram bucket: le as the text formats want it (a float, or +Inf).
  void bucket(std::string_view name, std::optional<double> le, uint64_t value) {
    out_ += name;
    out_ += "_bucket{";
    out_ += runLabels_;
    out_ += ",le=\"";
    if (le) number(*le);
    else out_ += "+Inf";
    out_ += "\"} ";
    integer(value);
    out_ += '\n';
  }
  void end() {
    if (format_ == Format::OPENMETRICS) out_ += "# EOF\n";
  }

 private:
  void head(std::string_view name, std::string_view suffix, std::initializer_list<Label> extra) {
    out_ += name;
    out_ += suffix;
    out_ += '{';
    out_ += runLabels_;
    for (const Label& l : extra) {
      out_ += ',';
      out_ += l.name;
      out_ += "=\"";
      appendEscaped(l.value);
      out_ += '"';
    }
    out_ += "} ";
  }
  void appendEscaped(std::string_view v) {
    for (char c : v) {
      if (c == '\\') out_ += "\\\\";
      else if (c == '"') out_ += "\\\"";
      else if (c == '\n') out_ += "\\n";
      else out_ += c;
    }
  }
  void integer(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  // Whole values as integers (the formats accept both), others in the
  // shortest form that reads back the same.
  void number(double v) {
    if (std::isnan(v)) {
      out_ += "NaN";
    } else if (std::isinf(v)) {
      out_ += v > 0 ? "+Inf" : "-Inf";
    } else if (v == std::trunc(v) && std::abs(v) < 1e15) {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
      out_.append(buf, r.ptr);
    } else {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, v);
      out_.append(buf, r.ptr);
    }
  }

  std::string& out_;
  Format format_;
  std::string_view runLabels_;
};

// The disconnect causes and their names (wire_names.h), fixed at build time:
// every cause has a series from the first scrape, so rate() works at once.
const std::vector<std::string_view>& causeNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> all;
    for (auto e : capnp::Schema::from<wire::DisconnectCause>().getEnumerants()) {
      all.push_back(causeName(static_cast<wire::DisconnectCause>(e.getOrdinal())));
    }
    return all;
  }();
  return names;
}

constexpr const char* ROLE_LABELS[] = {"supervisor", "agents", "sshd"};  // by ProcRole

}  // namespace

Format formatFor(std::string_view accept) {
  return accept.find("application/openmetrics-text") != std::string_view::npos ? Format::OPENMETRICS
                                                                               : Format::PROMETHEUS;
}

std::string_view contentType(Format format) {
  return format == Format::OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                       : "text/plain; version=0.0.4; charset=utf-8";
}

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Renderer::Renderer(RunLabels labels) {
  labels_ = "run_id=\"" + escapeLabelValue(labels.runId) + "\"";
  if (labels.shard) labels_ += ",shard=\"" + std::to_string(*labels.shard) + "\"";
}

void Renderer::render(std::string& out, Format format, const Snapshot& s) const {
  out.clear();
  Writer w(out, format, labels_);
  using L = Writer::Label;

  w.family("sshsoak_run_start_time_seconds", "gauge", "When the run started (Unix time).");
  w.sample("sshsoak_run_start_time_seconds", "", {}, s.startTimeSecs);
  w.family("sshsoak_run_elapsed_seconds", "gauge", "Time since the run started.");
  w.sample("sshsoak_run_elapsed_seconds", "", {}, std::round(s.elapsedSecs * 1000.0) / 1000.0);
  w.family("sshsoak_run_duration_seconds", "gauge", "The run's planned length (--duration-secs).");
  w.sample("sshsoak_run_duration_seconds", "", {}, s.durationSecs);
  w.family("sshsoak_run_stopping", "gauge", "1 once the run has begun to stop (duration reached, q, a signal).");
  w.sample("sshsoak_run_stopping", "", {}, uint64_t{s.stopping ? 1u : 0u});

  if (s.model != nullptr) {
    const RunModel& m = *s.model;
    RunModel::StateCounts states = m.sessionsByState();
    w.family("sshsoak_sessions", "gauge", "Sessions by state (the summary's per_session state names).");
    for (size_t i = 0; i < states.size(); ++i) {
      w.sample("sshsoak_sessions", "", {L{"state", stateName(ALL_SESSION_STATES[i])}}, uint64_t{states[i]});
    }
    w.family("sshsoak_connects", "counter", "First connects that made a session usable (connected lines).");
    w.sample("sshsoak_connects", "_total", {}, uint64_t{m.connects()});
    w.family("sshsoak_disconnects", "counter", "Sessions lost (interrupts: disconnected lines), by cause.");
    const auto& causes = m.interruptions().causes;
    for (std::string_view cause : causeNames()) {
      auto it = causes.find(std::string(cause));
      w.sample("sshsoak_disconnects", "_total", {L{"cause", cause}}, uint64_t{it == causes.end() ? 0u : it->second});
    }
    w.family("sshsoak_reconnects", "counter", "Sessions back after a loss (reconnected lines).");
    w.sample("sshsoak_reconnects", "_total", {}, uint64_t{m.reconnects()});
    w.family("sshsoak_failures", "counter",
             "Failure lines by event and category (connect_failed, reconnect_failed, auth_failed, ...).");
    for (const auto& [key, n] : m.failures()) {
      w.sample("sshsoak_failures", "_total", {L{"event", key.first}, L{"category", key.second}}, n);
    }
    w.family("sshsoak_agent_crashes", "counter", "Agent processes that ended unexpectedly.");
    w.sample("sshsoak_agent_crashes", "_total", {}, uint64_t{m.crashes()});
    w.family("sshsoak_agent_restarts", "counter", "Agent processes restarted after a crash.");
    w.sample("sshsoak_agent_restarts", "_total", {}, uint64_t{m.restarts()});

    const BucketedMs& b = m.reconnectBuckets();
    w.family("sshsoak_reconnect_duration_seconds", "histogram",
             "Reconnect time: detection of the loss to the new session's first exec.");
    for (size_t i = 0; i < b.BOUNDS_MS.size(); ++i) {
      w.bucket("sshsoak_reconnect_duration_seconds", static_cast<double>(b.BOUNDS_MS[i]) / 1000.0, b.atOrBelow[i]);
    }
    w.bucket("sshsoak_reconnect_duration_seconds", std::nullopt, b.count);
    w.sample("sshsoak_reconnect_duration_seconds", "_sum", {}, static_cast<double>(b.sumMs) / 1000.0);
    w.sample("sshsoak_reconnect_duration_seconds", "_count", {}, b.count);
  }

  if (s.resources != nullptr) {
    const ResourceStats& r = *s.resources;
    auto byRole = [&](std::string_view name, std::string_view help, auto value) {
      w.family(name, "gauge", help);
      for (size_t i = 0; i < std::size(ROLE_LABELS); ++i) {
        const RoleFigures& f = r.lastOf(static_cast<ProcRole>(i));
        if (f.seen) w.sample(name, "", {L{"role", ROLE_LABELS[i]}}, value(f));
      }
    };
    byRole("sshsoak_processes", "Processes of each role at the newest sample (sshd: the local sshd's).",
           [](const RoleFigures& f) { return uint64_t{f.processes}; });
    byRole("sshsoak_process_cpu_percent", "CPU of each role's processes over the newest sampling interval, % of one core.",
           [](const RoleFigures& f) { return std::round(f.cpuPct * 10.0) / 10.0; });
    byRole("sshsoak_process_resident_memory_bytes", "RSS of each role's processes at the newest sample.",
           [](const RoleFigures& f) { return f.rssKb * 1024; });
    byRole("sshsoak_process_pss_bytes", "PSS (shared pages split between sharers) at the newest detail sample.",
           [](const RoleFigures& f) { return f.pssKb * 1024; });
    byRole("sshsoak_process_open_fds", "Open file descriptors at the newest detail sample.",
           [](const RoleFigures& f) { return uint64_t{f.fds}; });
    byRole("sshsoak_process_threads", "Threads at the newest sample.",
           [](const RoleFigures& f) { return uint64_t{f.threads}; });
  }

  if (s.tokenRatePerSec) {
    w.family("sshsoak_token_bucket_rate_per_second", "gauge",
             "Connect attempts per second the shared token bucket grants across all sessions.");
    w.sample("sshsoak_token_bucket_rate_per_second", "", {}, *s.tokenRatePerSec);
  }
  if (s.tokenBurst) {
    w.family("sshsoak_token_bucket_burst", "gauge", "Connect attempts the token bucket allows at once.");
    w.sample("sshsoak_token_bucket_burst", "", {}, uint64_t{*s.tokenBurst});
  }

  if (s.criteria != nullptr) {
    const auto& criteria = *s.criteria;
    w.family("sshsoak_verdict_measured", "gauge",
             "Each verdict criterion's measured value, in the unit its name ends in (absent while n/a).");
    for (const Criterion& c : criteria) {
      if (c.measured) w.sample("sshsoak_verdict_measured", "", {L{"criterion", c.name}}, *c.measured);
    }
    w.family("sshsoak_verdict_threshold", "gauge", "Each verdict criterion's threshold.");
    for (const Criterion& c : criteria) {
      w.sample("sshsoak_verdict_threshold", "", {L{"criterion", c.name}, L{"comparison", c.comparison}}, c.threshold);
    }
    w.family("sshsoak_verdict_pass", "gauge", "1 while the criterion passes or is n/a, 0 while it fails.");
    for (const Criterion& c : criteria) {
      w.sample("sshsoak_verdict_pass", "", {L{"criterion", c.name}}, uint64_t{c.result == Verdict::FAIL ? 0u : 1u});
    }
    w.family("sshsoak_verdict_applicable", "gauge", "1 when the criterion has something to measure, 0 while n/a.");
    for (const Criterion& c : criteria) {
      w.sample("sshsoak_verdict_applicable", "", {L{"criterion", c.name}}, uint64_t{c.result == Verdict::NA ? 0u : 1u});
    }
    w.family("sshsoak_verdict_passing", "gauge", "1 while every criterion passes or is n/a (the run's exit code would be 0).");
    w.sample("sshsoak_verdict_passing", "", {}, uint64_t{allPassed(criteria) ? 1u : 0u});
  }

  if (s.server != nullptr) {
    const ServerFigures& f = *s.server;
    w.family("sshsoak_metrics_scrapes", "counter", "Requests for /metrics answered, by the text format served.");
    w.sample("sshsoak_metrics_scrapes", "_total", {L{"format", "prometheus"}}, f.scrapesPrometheus);
    w.sample("sshsoak_metrics_scrapes", "_total", {L{"format", "openmetrics"}}, f.scrapesOpenMetrics);
    w.family("sshsoak_metrics_requests_refused", "counter", "Requests to the metrics endpoint not answered with metrics, by reason.");
    w.sample("sshsoak_metrics_requests_refused", "_total", {L{"reason", "busy"}}, f.refusedBusy);
    w.sample("sshsoak_metrics_requests_refused", "_total", {L{"reason", "too_large"}}, f.refusedTooLarge);
    w.sample("sshsoak_metrics_requests_refused", "_total", {L{"reason", "timeout"}}, f.timedOut);
    w.sample("sshsoak_metrics_requests_refused", "_total", {L{"reason", "bad_request"}}, f.badRequests);
    w.sample("sshsoak_metrics_requests_refused", "_total", {L{"reason", "not_found"}}, f.notFound);
    w.family("sshsoak_metrics_render_seconds", "gauge", "What rendering the previous scrape's text cost the supervisor.");
    w.sample("sshsoak_metrics_render_seconds", "", {}, f.lastRenderSecs);
  }
  w.end();
}

Result<ListenAddress, std::string> parseListenAddress(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail("--metrics-listen " + std::string(text) + ": " + why +
                " (give ADDR:PORT, e.g. 127.0.0.1:9464, [::1]:9464 or 0.0.0.0:0 for any free port)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 address goes in brackets");
  }
  if (host.empty()) return bad("no address");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(value)};
}

Result<Listener, std::string> bindListener(const ListenAddress& address) {
  std::string given = (address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host) + ":" +
                      std::to_string(address.port);
  auto failed = [&](const std::string& why, const std::string& fix) {
    return fail("--metrics-listen " + given + ": " + why + " (" + fix + ")");
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return failed(std::string("cannot resolve the address: ") + ::gai_strerror(rc), "give an address of this machine");
  }
  std::string lastError = "no address to bind";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      lastError = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
      lastError = std::strerror(errno);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t boundPort = 0;
    std::string text;
    if (bound.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&bound);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      boundPort = ntohs(in6->sin6_port);
      text = "[" + std::string(host) + "]:" + std::to_string(boundPort);
    } else {
      auto* in4 = reinterpret_cast<sockaddr_in*>(&bound);
      ::inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
      boundPort = ntohs(in4->sin_port);
      text = std::string(host) + ":" + std::to_string(boundPort);
    }
    ::freeaddrinfo(found);
    return Listener{std::move(fd), std::move(text)};
  }
  ::freeaddrinfo(found);
  return failed("cannot listen: " + lastError,
                "is the port taken by another process? name a free port, or port 0 for any free one");
}

Result<Ok, std::string> writeTextfile(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp";
  auto failed = [&](const char* step, const std::string& file) {
    return fail("--metrics-textfile " + path + ": cannot " + step + " " + file + ": " + std::strerror(errno));
  };
  // No fsync: the rename is what makes the swap atomic for a reader; after
  // a crash of the machine the next write replaces whatever is left.
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return failed("create", tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      fd.reset();
      ::unlink(tmp.c_str());
      errno = err;
      return failed("write", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (int rc = ::close(fd.release()); rc != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    errno = err;
    return failed("write", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    errno = err;
    return failed("rename it over", path);
  }
  return Ok{};
}

}  // namespace sshsoak::metrics
