// sshsoak-proxy: the fault relay the supervisor starts when --fault is given.
//
//   fd 4 (from the supervisor): one line of JSON, the configuration
//     {"start_mono_ns": N, "faults": [SPEC, ...], "buffer_bytes": N, "seed": N,
//      "sessions": [{"id": 0, "host": "127.0.0.1", "port": 22}, ...]}
//     then nothing; its EOF (the supervisor closed it, or died) stops the relay.
//   fd 3 (to the supervisor): JSON lines, {"event": "ready", "ports": [...]}
//     once listening (port i is session i's), then "window_started" /
//     "window_ended" per fault window, "error" with a detail if it cannot start.
//
// Nothing goes through argv but a name for ps. SIGTERM stops it like EOF.
#include <netdb.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "proxy/relay.h"
#include "shared/fd.h"

using sshsoak::UniqueFd;
using Json = nlohmann::json;

namespace {

constexpr int REPORT_FD = 3;
constexpr int CONFIG_FD = 4;
constexpr size_t MAX_CONFIG_BYTES = 16 << 20;

void send(const Json& j) {
  std::string line = j.dump() + "\n";
  if (!sshsoak::writeAll(REPORT_FD, line.data(), line.size())) {
    // The supervisor is gone: nothing left to relay for.
    ::_exit(0);
  }
}

int fatal(const std::string& detail) {
  send(Json{{"event", "error"}, {"detail", detail}});
  std::fprintf(stderr, "sshsoak-proxy: %s\n", detail.c_str());
  return 1;
}

bool readLine(int fd, std::string& line) {
  char buf[4096];
  while (line.find('\n') == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || line.size() > MAX_CONFIG_BYTES) return false;
    line.append(buf, static_cast<size_t>(n));
  }
  line.erase(line.find('\n'));
  return true;
}

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  ::sigprocmask(SIG_BLOCK, &stopSignals, nullptr);
  try {
    std::string text;
    if (!readLine(CONFIG_FD, text)) return fatal("no configuration on fd 4");
    Json config = Json::parse(text);
    sshsoak::proxy::RelayConfig rc;
    rc.startMonoNs = config.at("start_mono_ns").get<int64_t>();
    rc.bufferBytes = config.value("buffer_bytes", size_t{256 * 1024});
    rc.seed = config.value("seed", uint64_t{1});
    for (const auto& spec : config.at("faults")) {
      auto parsed = sshsoak::parseFaultSpec(spec.get<std::string>());
      if (!parsed) return fatal("bad fault " + parsed.error());
      rc.faults.push_back(*parsed);
    }
    for (const auto& s : config.at("sessions")) {
      sshsoak::proxy::SessionTarget t;
      t.id = s.at("id").get<uint32_t>();
      std::string host = s.at("host").get<std::string>();
      std::string port = std::to_string(s.at("port").get<uint32_t>());
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rcode = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
      if (rcode != 0 || res == nullptr) {
        return fatal("session " + std::to_string(t.id) + ": cannot resolve " + host + ": " + ::gai_strerror(rcode));
      }
      std::memcpy(&t.addr, res->ai_addr, res->ai_addrlen);
      t.addrLen = res->ai_addrlen;
      ::freeaddrinfo(res);
      rc.sessions.push_back(t);
    }
    sshsoak::proxy::Relay relay(std::move(rc), [](const sshsoak::proxy::WindowReport& r) {
      Json j{{"event", r.started ? "window_started" : "window_ended"},
             {"fault_id", r.faultId},
             {"occurrence", r.occurrence},
             {"wall_ns", r.wallNs},
             {"connections", r.connections}};
      if (!r.started) {
        j["duration_ms"] = r.durationMs;
        j["bytes_held"] = r.bytesHeld;
        j["resets"] = r.resets;
      }
      send(j);
    });
    UniqueFd sigFd(sshsoak::sysCall("signalfd", [&] { return ::signalfd(-1, &stopSignals, SFD_CLOEXEC); }));
    relay.addStopFd(CONFIG_FD);
    relay.addStopFd(sigFd.get());
    send(Json{{"event", "ready"}, {"ports", relay.ports()}, {"pid", ::getpid()}});
    relay.run();
    send(Json{{"event", "stopped"}});
    return 0;
  } catch (const std::exception& e) {
    return fatal(e.what());
  }
}
