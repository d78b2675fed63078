// Issue 17, live metrics: a real Prometheus server (Debian's) scrapes a
// running sshsoak against the fixture's sshd and answers a query for a
// reconnect metric; promtool checks the text; the textfile is rewritten
// whole; hostile clients of the endpoint neither stall the run nor grow it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "shared/clock.h"
#include "shared/fd.h"
#include "sshd_fixture.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace sshsoak::testing {
namespace {

std::string fileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint16_t portOf(const std::string& hostPort) {
  return static_cast<uint16_t>(std::stoi(hostPort.substr(hostPort.rfind(':') + 1)));
}

UniqueFd connectTo(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

struct HttpReply {
  int status = 0;
  std::string headers, body;
};

// One HTTP/1.1 request, read to the server's close, within timeoutMs.
std::optional<HttpReply> httpGet(uint16_t port, const std::string& target, int timeoutMs = 3000,
                                 const std::string& extraHeaders = "") {
  UniqueFd fd = connectTo(port);
  if (!fd) return std::nullopt;
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extraHeaders + "\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return std::nullopt;
  std::string data;
  int64_t until = monoMs() + timeoutMs;
  for (;;) {
    int left = static_cast<int>(until - monoMs());
    if (left <= 0) return std::nullopt;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  size_t split = data.find("\r\n\r\n");
  if (split == std::string::npos || !data.starts_with("HTTP/1.1 ")) return std::nullopt;
  HttpReply r;
  r.status = std::stoi(data.substr(9, 3));
  r.headers = data.substr(0, split);
  r.body = data.substr(split + 4);
  // Prometheus answers its API chunked: join the chunks.
  if (r.headers.find("Transfer-Encoding: chunked") != std::string::npos) {
    std::string joined;
    size_t pos = 0;
    while (pos < r.body.size()) {
      size_t eol = r.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t len = std::stoul(r.body.substr(pos, eol - pos), nullptr, 16);
      if (len == 0) break;
      joined += r.body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    r.body = joined;
  }
  return r;
}

std::pair<int, std::string> shell(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

uint16_t freePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

long rssKbOf(pid_t pid) {
  std::istringstream in(fileText("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

// Debian's Prometheus server on loopback, with a config and a storage dir
// of the test's own; killed by its PID (SIGTERM, then SIGKILL) at the end.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& dir, uint16_t scrapePort) : port_(freePort()) {
    std::string config = dir + "/prometheus.yml";
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                             "scrape_configs:\n  - job_name: sshsoak\n    static_configs:\n"
                             "      - targets: ['127.0.0.1:" << scrapePort << "']\n";
    std::string data = dir + "/tsdb", out = dir + "/prometheus.out";
    fs::create_directories(data);
    std::string web = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    std::string cfg = "--config.file=" + config, tsdb = "--storage.tsdb.path=" + data;
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl("/usr/bin/prometheus", "prometheus", cfg.c_str(), tsdb.c_str(), web.c_str(),
              "--storage.tsdb.retention.time=1h", "--log.level=warn", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    logPath_ = out;
  }
  ~PrometheusServer() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  uint16_t port() const { return port_; }
  std::string log() const { return fileText(logPath_); }
  // The instant query's result vector, or nullopt if Prometheus did not answer.
  std::optional<Json> query(const std::string& promql) {
    std::string encoded;
    for (unsigned char c : promql) {
      char buf[4];
      if (std::isalnum(c) || c == '_') encoded += static_cast<char>(c);
      else {
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        encoded += buf;
      }
    }
    auto r = httpGet(port_, "/api/v1/query?query=" + encoded);
    if (!r || r->status != 200) return std::nullopt;
    Json j = Json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
    return j["data"]["result"];
  }
  // Polls a query until its result is not empty (bounded).
  std::optional<Json> awaitResult(const std::string& promql, int timeoutSecs) {
    int64_t until = monoMs() + int64_t{timeoutSecs} * 1000;
    while (monoMs() < until) {
      if (auto r = query(promql); r && r->is_array() && !r->empty()) return r;
      std::this_thread::sleep_for(500ms);
    }
    return std::nullopt;
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
  std::string logPath_;
};

std::string metricsAddressOf(const std::vector<Json>& lines) {
  for (const auto& l : linesOf(lines, "run_started")) {
    if (l.contains("metrics_listen") && l["metrics_listen"].is_string()) return l["metrics_listen"].get<std::string>();
  }
  return "";
}

}  // namespace

TEST_F(SshdTest, PrometheusScrapesALiveRunAndAnswersAReconnectQuery) {
  ASSERT_TRUE(fs::exists("/usr/bin/prometheus") && fs::exists("/usr/bin/promtool"))
      << "Debian's prometheus package is missing: run scripts/setup.sh";
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "60", "--drop", "6", "--metrics-listen",
                             "127.0.0.1:0", "--sample-detail-secs", "2"}),
                   /*stdinPipe=*/true);
  std::string address;
  ASSERT_TRUE(waitForLog([&](const auto& l) { return !(address = metricsAddressOf(l)).empty(); }, 20)) << soak.err();
  ASSERT_TRUE(address.starts_with("127.0.0.1:")) << address;
  EXPECT_NE(soak.err().find("metrics at http://" + address + "/metrics"), std::string::npos) << soak.err();
  uint16_t port = portOf(address);
  ASSERT_NE(port, 0);

  // promtool on the live text.
  auto text = httpGet(port, "/metrics");
  ASSERT_TRUE(text && text->status == 200);
  EXPECT_NE(text->headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << text->headers;
  std::string file = workDir_ + "/live.prom";
  std::ofstream(file) << text->body;
  auto [code, out] = shell("promtool check metrics < " + file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "") << out;
  auto notFound = httpGet(port, "/");
  ASSERT_TRUE(notFound);
  EXPECT_EQ(notFound->status, 404);

  PrometheusServer prom(workDir_, port);
  std::string runId = readJsonl(logPath_).at(0).value("run_id", "");
  ASSERT_FALSE(runId.empty());
  // The drop at 6 s brings both sessions back: Prometheus has the reconnects.
  auto reconnects = prom.awaitResult("sshsoak_reconnects_total > 0", 45);
  ASSERT_TRUE(reconnects) << "Prometheus never had sshsoak_reconnects_total > 0; its log:\n"
                          << prom.log() << "\nsshsoak:\n"
                          << soak.err();
  EXPECT_EQ((*reconnects)[0]["metric"]["run_id"], runId);
  EXPECT_EQ((*reconnects)[0]["metric"]["job"], "sshsoak");
  // The histogram and the sessions answer too; Prometheus asked for
  // OpenMetrics and parsed it (the scrapes by format say so).
  auto bucket = prom.awaitResult("sshsoak_reconnect_duration_seconds_count >= 2", 15);
  EXPECT_TRUE(bucket) << prom.log();
  auto up = prom.awaitResult("sshsoak_sessions{state=\"up\"} == 2", 15);
  EXPECT_TRUE(up) << prom.log();
  auto openMetrics = prom.awaitResult("sshsoak_metrics_scrapes_total{format=\"openmetrics\"} > 0", 10);
  EXPECT_TRUE(openMetrics) << prom.log();
  auto scrapeOk = prom.awaitResult("up{job=\"sshsoak\"} == 1", 5);
  EXPECT_TRUE(scrapeOk) << prom.log();
  prom.stop();

  soak.writeStdin("q\n");
  int exit = soak.wait(30);
  EXPECT_TRUE(exit == 0 || exit == 1) << exit << "\n" << soak.err();
  auto lines = readJsonl(logPath_);
  EXPECT_EQ(linesOf(lines, "summary").size(), 1u);
  EXPECT_EQ(linesOf(lines, "reconnected").size(), 2u);
  // The endpoint is closed with the run.
  EXPECT_FALSE(connectTo(port));
}

TEST_F(SshdTest, TheMetricsTextfileIsRewrittenWholeAndKeepsTheFinalFigures) {
  std::string path = workDir_ + "/textfile/sshsoak.prom";
  fs::create_directories(workDir_ + "/textfile");
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "6", "--metrics-textfile", path}));
  // Read it as node_exporter would, again and again while the run rewrites
  // it every second: always one whole text.
  int reads = 0, whole = 0;
  int64_t until = monoMs() + 5000;
  while (monoMs() < until) {
    std::string text = fileText(path);
    if (!text.empty()) {
      ++reads;
      whole += text.starts_with("# HELP sshsoak_run_start_time_seconds") &&
                       text.find("\nsshsoak_verdict_passing{") != std::string::npos && text.ends_with("\n")
                   ? 1
                   : 0;
    }
    std::this_thread::sleep_for(2ms);
  }
  int exit = soak.wait(30);
  EXPECT_TRUE(exit == 0 || exit == 1) << soak.err();
  EXPECT_GT(reads, 100);
  EXPECT_EQ(whole, reads) << "a read saw a torn or partial file";
  auto [code, out] = shell("promtool check metrics < " + path);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "") << out;
  std::string final = fileText(path);
  auto lines = readJsonl(logPath_);
  std::string runId = lines.at(0).value("run_id", "");
  EXPECT_EQ(lines.at(0).value("metrics_textfile", ""), path);
  // The final write: the sessions as they ended, the run stopping.
  EXPECT_NE(final.find("sshsoak_connects_total{run_id=\"" + runId + "\"} 2\n"), std::string::npos) << final;
  EXPECT_NE(final.find("sshsoak_run_stopping{run_id=\"" + runId + "\"} 1\n"), std::string::npos) << final;
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(SshdTest, AMetricsTextfileThatCannotBeWrittenIsNamedOnceAndTheRunGoesOn) {
  std::string dir = workDir_ + "/gone";
  fs::create_directories(dir);
  std::string path = dir + "/sshsoak.prom";
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "5", "--metrics-textfile", path}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "connected").empty(); }, 20)) << soak.err();
  fs::remove_all(dir);  // every later write fails (ENOENT)
  int exit = soak.wait(30);
  EXPECT_TRUE(exit == 0 || exit == 1) << soak.err();
  std::string err = soak.err();
  size_t first = err.find("--metrics-textfile " + path + ": cannot create " + path + ".tmp: No such file or directory");
  EXPECT_NE(first, std::string::npos) << err;
  EXPECT_EQ(err.find("--metrics-textfile " + path + ": cannot", first + 1), std::string::npos) << "named twice:\n" << err;
  EXPECT_EQ(linesOf(readJsonl(logPath_), "summary").size(), 1u);
}

TEST_F(SshdTest, AMetricsPortInUseIsAStartUpErrorNamingTheAddress) {
  UniqueFd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(taken.get(), 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&a), &len);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto r = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "5", "--metrics-listen", address}), 30);
  EXPECT_EQ(r.exitCode, 3) << r.err;
  EXPECT_NE(r.err.find("--metrics-listen " + address + ": cannot listen: Address already in use"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("port 0"), std::string::npos) << r.err;
  EXPECT_TRUE(linesOf(readJsonl(logPath_), "agent_started").empty());
  auto bad = runSoak(soakArgs({"--metrics-listen", "9464"}), 30);
  EXPECT_EQ(bad.exitCode, 2) << bad.err;
  EXPECT_NE(bad.err.find("--metrics-listen 9464: no port"), std::string::npos) << bad.err;
}

// Clients that connect and send nothing, trickle, send a head of many MB or
// open far more connections than the endpoint takes: the run keeps its
// schedule (sampling, the end on time), scrapes are still answered, and the
// supervisor's memory does not grow.
TEST_F(SshdTest, SilentOrHugeMetricsClientsNeitherStallTheRunNorGrowItsMemory) {
  auto started = std::chrono::steady_clock::now();
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "14", "--metrics-listen", "127.0.0.1:0",
                             "--sample-detail-secs", "1"}));
  std::string address;
  ASSERT_TRUE(waitForLog(
      [&](const auto& l) { return linesOf(l, "connected").size() == 2 && !(address = metricsAddressOf(l)).empty(); },
      20))
      << soak.err();
  uint16_t port = portOf(address);
  ASSERT_TRUE(httpGet(port, "/metrics"));  // the text's buffer exists before the baseline
  long rssBefore = rssKbOf(soak.pid());

  std::vector<UniqueFd> silent;
  for (int i = 0; i < 5; ++i) silent.push_back(connectTo(port));
  UniqueFd trickle = connectTo(port);
  ASSERT_TRUE(trickle);
  ::send(trickle.get(), "GET /me", 7, MSG_NOSIGNAL);
  // One head of up to 64 MB, sent for at most 2 s.
  UniqueFd huge = connectTo(port);
  ASSERT_TRUE(huge);
  setNonBlocking(huge.get());
  std::string chunk = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'x');
  size_t sent = 0;
  int64_t until = monoMs() + 2000;
  while (sent < (64u << 20) && monoMs() < until) {
    ssize_t n = ::send(huge.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    else if (errno != EAGAIN) break;  // refused and closed by the endpoint
    else std::this_thread::sleep_for(1ms);
  }
  // Far more connections than the endpoint takes, each closed at once.
  for (int i = 0; i < 100; ++i) connectTo(port);
  // A scrape is still answered while the silent ones hold their slots: not
  // after one of them times out (5 s per connection), which is what a stalled
  // endpoint would show. The bound is that, not a speed: under ASan on a
  // loaded CI machine one scrape took 1.03 s.
  auto before = std::chrono::steady_clock::now();
  auto scrape = httpGet(port, "/metrics", 4500);
  ASSERT_TRUE(scrape && scrape->status == 200);
  EXPECT_LT(std::chrono::steady_clock::now() - before, 4s);
  EXPECT_NE(scrape->body.find("sshsoak_metrics_requests_refused_total{run_id="), std::string::npos);
  long rssAfter = rssKbOf(soak.pid());
  EXPECT_LT(rssAfter - rssBefore, 2048 + ASAN_QUARANTINE_KB / 64) << rssBefore << " kB -> " << rssAfter << " kB";

  int exit = soak.wait(40);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_TRUE(exit == 0 || exit == 1) << soak.err();
  EXPECT_LT(secs, 14 + 10) << "the run did not end on time";
  auto lines = readJsonl(logPath_);
  ASSERT_EQ(linesOf(lines, "summary").size(), 1u);
  // Sampled on schedule throughout: no hole in the resource samples.
  for (const auto& s : linesOf(lines, "resource_sample")) {
    EXPECT_LT(s.value("unsampled_ms", 0), 3000) << s.dump();
  }
  EXPECT_EQ(linesOf(lines, "summary")[0]["sessions_up_at_end"], 2);
}

}  // namespace sshsoak::testing
