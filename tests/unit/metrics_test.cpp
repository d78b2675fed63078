#include "supervisor/run/metrics.h"

#include <capnp/message.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <sstream>

#include "shared/clock.h"
#include "supervisor/analysis/verdict.h"

using namespace sshsoak;
using namespace sshsoak::metrics;

namespace {

Json eventLine(uint32_t session, auto fill) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  e.setSuccess(true);
  fill(e);
  return eventToJson(e.asReader(), "127.0.0.1:22");
}

// Four sessions: 0 and 1 up (1 after a drop and a 1.2 s reconnect), 2 down
// after a reset (a timed-out attempt since), 3 refused its key.
RunModel fourSessions() {
  RunModel model({"127.0.0.1:22", "127.0.0.1:22", "127.0.0.1:22", "127.0.0.1:22"});
  for (uint32_t i = 0; i < 3; ++i) model.onLine(eventLine(i, [](auto e) { e.initConnected(); }));
  model.onLine(eventLine(1, [](auto e) { e.initDisconnected().setCause(wire::DisconnectCause::INJECTED); }));
  model.onLine(eventLine(1, [](auto e) {
    e.initReconnected();
    e.setElapsedMs(1200);
  }));
  model.onLine(eventLine(2, [](auto e) { e.initDisconnected().setCause(wire::DisconnectCause::RESET); }));
  model.onLine(eventLine(2, [](auto e) {
    e.initReconnectFailed().setCategory(wire::FailureCategory::TIMEOUT);
    e.setSuccess(false);
  }));
  model.onLine(eventLine(3, [](auto e) {
    e.initAuthFailed().setCategory(wire::FailureCategory::AUTH);
    e.setSuccess(false);
  }));
  return model;
}

std::string rendered(Format format, const RunModel& model, const std::vector<Criterion>* criteria = nullptr,
                     const ResourceStats* resources = nullptr, std::optional<uint32_t> shard = std::nullopt) {
  Renderer r(RunLabels{"20260101T000000Z-42", shard});
  Snapshot s;
  s.model = &model;
  s.resources = resources;
  s.tokenRatePerSec = 10;
  s.tokenBurst = 8;
  s.criteria = criteria;
  s.startTimeSecs = 1767225600;
  s.elapsedSecs = 12.5;
  s.durationSecs = 60;
  ServerFigures server;
  server.scrapesOpenMetrics = 3;
  s.server = &server;
  std::string out;
  r.render(out, format, s);
  return out;
}

bool hasLine(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

// The exit code and output of a command run through the shell.
std::pair<int, std::string> run(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string tempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sshsoak-metrics-XXXXXX").string();
  return ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
}

}  // namespace

TEST(Metrics, SessionsConnectsReconnectsAndFailuresComeFromTheRunModel) {
  RunModel model = fourSessions();
  std::string text = rendered(Format::PROMETHEUS, model);
  const std::string L = "run_id=\"20260101T000000Z-42\"";
  EXPECT_TRUE(hasLine(text, "sshsoak_sessions{" + L + ",state=\"up\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_sessions{" + L + ",state=\"down\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_sessions{" + L + ",state=\"auth_refused\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_sessions{" + L + ",state=\"connect_failing\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_sessions{" + L + ",state=\"needs_manual_reconnect\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_connects_total{" + L + "} 3")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_reconnects_total{" + L + "} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_disconnects_total{" + L + ",cause=\"injected\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_disconnects_total{" + L + ",cause=\"reset\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_disconnects_total{" + L + ",cause=\"eof\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_failures_total{" + L + ",event=\"reconnect_failed\",category=\"timeout\"} 1"))
      << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_failures_total{" + L + ",event=\"auth_failed\",category=\"auth\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_token_bucket_rate_per_second{" + L + "} 10")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_run_elapsed_seconds{" + L + "} 12.5")) << text;
  // Every sample carries the run's labels; the sum of the states is the sessions.
  uint32_t sum = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.starts_with("#")) continue;
    EXPECT_NE(l.find(L), std::string::npos) << l;
    if (l.starts_with("sshsoak_sessions{")) sum += static_cast<uint32_t>(std::stoul(l.substr(l.rfind(' ') + 1)));
  }
  EXPECT_EQ(sum, 4u);
}

TEST(Metrics, ReconnectHistogramHasCumulativeBucketsSumAndCount) {
  RunModel model({"h:22"});
  model.onLine(eventLine(0, [](auto e) { e.initConnected(); }));
  for (uint32_t ms : {40u, 100u, 101u, 900u, 20000u, 200000u}) {
    model.onLine(eventLine(0, [](auto e) { e.initDisconnected(); }));
    model.onLine(eventLine(0, [ms](auto e) {
      e.initReconnected();
      e.setElapsedMs(ms);
    }));
  }
  std::string text = rendered(Format::PROMETHEUS, model);
  const std::string b = "sshsoak_reconnect_duration_seconds_bucket{run_id=\"20260101T000000Z-42\",le=";
  EXPECT_TRUE(hasLine(text, b + "\"0.05\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"0.1\"} 2")) << text;   // 100 ms is <= 0.1 s
  EXPECT_TRUE(hasLine(text, b + "\"0.25\"} 3")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"1\"} 4")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"15\"} 4")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"30\"} 5")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"120\"} 5")) << text;
  EXPECT_TRUE(hasLine(text, b + "\"+Inf\"} 6")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_reconnect_duration_seconds_count{run_id=\"20260101T000000Z-42\"} 6")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_reconnect_duration_seconds_sum{run_id=\"20260101T000000Z-42\"} 221.141")) << text;
}

TEST(Metrics, VerdictCriteriaAreGaugesOfMeasuredThresholdAndPass) {
  RunModel model = fourSessions();
  VerdictInputs in = model.verdictInputs();
  in.peakTotalPssKb = 300 * 1024;
  cli::Options o;
  std::vector<Criterion> criteria = evaluate(in, thresholdsOf(o));
  std::string text = rendered(Format::PROMETHEUS, model, &criteria);
  const std::string L = "run_id=\"20260101T000000Z-42\"";
  // 2 abnormal ends (down, auth refused) against 0: failing.
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_measured{" + L + ",criterion=\"abnormal_ends\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_threshold{" + L + ",criterion=\"abnormal_ends\",comparison=\"<=\"} 0"))
      << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_pass{" + L + ",criterion=\"abnormal_ends\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_measured{" + L + ",criterion=\"memory_mb\"} 300")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_pass{" + L + ",criterion=\"memory_mb\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_measured{" + L + ",criterion=\"reconnect_rate_pct\"} 50")) << text;
  // n/a: no value, passes, not applicable.
  EXPECT_EQ(text.find("sshsoak_verdict_measured{" + L + ",criterion=\"cpu_pct\"}"), std::string::npos) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_pass{" + L + ",criterion=\"cpu_pct\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_applicable{" + L + ",criterion=\"cpu_pct\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_verdict_passing{" + L + "} 0")) << text;
}

TEST(Metrics, ProcessGaugesByRoleFromTheNewestPass) {
  ResourceStats rs(0, 0, 100);
  auto proc = [](pid_t pid, ProcRole role, int64_t session, uint64_t ticks, uint64_t rss, uint64_t pss, uint32_t fds) {
    ProcFigures f;
    f.pid = pid;
    f.role = role;
    f.sessionId = session;
    f.bootMs = 0;
    f.cpuTicks = ticks;
    f.threads = 2;
    f.rssKb = rss;
    f.pssKb = pss;
    f.fds = fds;
    return f;
  };
  SamplePass p;
  p.detail = true;
  p.serverKnown = true;
  p.monoMs = 1000;
  auto at = [](ProcFigures f, int64_t bootMs, uint64_t ticks) {
    f.bootMs = bootMs;
    f.cpuTicks = ticks;
    return f;
  };
  p.procs = {at(proc(10, ProcRole::SUPERVISOR, -1, 0, 4000, 3000, 20), 1000, 100),
             at(proc(11, ProcRole::AGENT, 0, 0, 6000, 1000, 8), 1000, 50),
             at(proc(12, ProcRole::AGENT, 1, 0, 6000, 1200, 9), 1000, 50),
             at(proc(13, ProcRole::SSHD, -1, 0, 7000, 2000, 11), 1000, 10)};
  rs.addPass(p);
  // A cheap pass 1 s later: the supervisor used 10 ticks (10 %), each agent 2.
  SamplePass q;
  q.monoMs = 2000;
  q.procs = {at(proc(10, ProcRole::SUPERVISOR, -1, 0, 4100, 0, 0), 2000, 110),
             at(proc(11, ProcRole::AGENT, 0, 0, 6000, 0, 0), 2000, 52),
             at(proc(12, ProcRole::AGENT, 1, 0, 6000, 0, 0), 2000, 52)};
  rs.addPass(q);
  RunModel model;
  std::string text = rendered(Format::PROMETHEUS, model, nullptr, &rs);
  const std::string L = "run_id=\"20260101T000000Z-42\"";
  EXPECT_TRUE(hasLine(text, "sshsoak_processes{" + L + ",role=\"agents\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_process_cpu_percent{" + L + ",role=\"supervisor\"} 10")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_process_cpu_percent{" + L + ",role=\"agents\"} 4")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_process_resident_memory_bytes{" + L + ",role=\"supervisor\"} " +
                                std::to_string(4100 * 1024)))
      << text;
  // PSS and fds from the detail pass; the sshd as that pass saw it.
  EXPECT_TRUE(hasLine(text, "sshsoak_process_pss_bytes{" + L + ",role=\"agents\"} " + std::to_string(2200 * 1024)))
      << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_process_open_fds{" + L + ",role=\"agents\"} 17")) << text;
  EXPECT_TRUE(hasLine(text, "sshsoak_process_open_fds{" + L + ",role=\"sshd\"} 11")) << text;
}

TEST(Metrics, OpenMetricsNamesCounterFamiliesWithoutTotalAndEndsWithEof) {
  RunModel model = fourSessions();
  std::string prom = rendered(Format::PROMETHEUS, model);
  std::string om = rendered(Format::OPENMETRICS, model);
  EXPECT_TRUE(hasLine(prom, "# TYPE sshsoak_reconnects_total counter")) << prom;
  EXPECT_TRUE(hasLine(om, "# TYPE sshsoak_reconnects counter")) << om;
  EXPECT_TRUE(hasLine(om, "sshsoak_reconnects_total{run_id=\"20260101T000000Z-42\"} 1")) << om;
  EXPECT_TRUE(om.ends_with("\n# EOF\n")) << om;
  EXPECT_EQ(prom.find("# EOF"), std::string::npos);
  EXPECT_EQ(formatFor("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            Format::OPENMETRICS);
  EXPECT_EQ(formatFor("text/plain"), Format::PROMETHEUS);
  EXPECT_EQ(formatFor(""), Format::PROMETHEUS);
}

TEST(Metrics, ShardLabelAndEscapedRunId) {
  RunModel model({"h:22"});
  Renderer r(RunLabels{"a\"b\\c\nd", 3});
  Snapshot s;
  s.model = &model;
  std::string out;
  r.render(out, Format::PROMETHEUS, s);
  EXPECT_TRUE(hasLine(out, "sshsoak_connects_total{run_id=\"a\\\"b\\\\c\\nd\",shard=\"3\"} 0")) << out;
}

// promtool (Debian's prometheus package, installed by scripts/setup.sh)
// lints the exposition as Prometheus itself parses it.
TEST(Metrics, PromtoolChecksTheTextClean) {
  RunModel model = fourSessions();
  VerdictInputs in = model.verdictInputs();
  cli::Options o;
  std::vector<Criterion> criteria = evaluate(in, thresholdsOf(o));
  ResourceStats rs(0, 0, 100);
  SamplePass p;
  p.detail = true;
  ProcFigures sup;
  sup.pid = 10;
  sup.role = ProcRole::SUPERVISOR;
  sup.rssKb = 100;
  p.procs = {sup};
  rs.addPass(p);
  std::string dir = tempDir();
  ASSERT_FALSE(dir.empty());
  std::string file = dir + "/m.prom";
  std::ofstream(file) << rendered(Format::PROMETHEUS, model, &criteria, &rs, 2);
  auto [code, out] = run("promtool check metrics < " + file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "") << "promtool's lint found something:\n" << out;
  std::filesystem::remove_all(dir);
}

TEST(Metrics, RenderingReusesTheBuffer) {
  RunModel model = fourSessions();
  std::string out;
  Renderer r(RunLabels{"x", std::nullopt});
  Snapshot s;
  s.model = &model;
  r.render(out, Format::PROMETHEUS, s);
  size_t capacity = out.capacity();
  const char* data = out.data();
  r.render(out, Format::PROMETHEUS, s);
  EXPECT_EQ(out.capacity(), capacity);
  EXPECT_EQ(out.data(), data);
}

TEST(MetricsListen, AddressSyntax) {
  auto a = parseListenAddress("127.0.0.1:9464");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  auto v6 = parseListenAddress("[::1]:0");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  for (const char* bad : {"9464", "127.0.0.1", "127.0.0.1:", ":9464", "127.0.0.1:65536", "127.0.0.1:x", "::1:9464"}) {
    auto r = parseListenAddress(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().find("--metrics-listen " + std::string(bad)), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("e.g. 127.0.0.1:9464"), std::string::npos) << r.error();
  }
}

TEST(MetricsListen, PortZeroPicksAFreePortAndATakenPortIsNamed) {
  auto first = bindListener(ListenAddress{"127.0.0.1", 0});
  ASSERT_TRUE(first) << first.error();
  ASSERT_TRUE(first->bound.starts_with("127.0.0.1:")) << first->bound;
  uint16_t port = static_cast<uint16_t>(std::stoi(first->bound.substr(10)));
  EXPECT_GT(port, 0);
  auto second = bindListener(ListenAddress{"127.0.0.1", port});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find("--metrics-listen 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << second.error();
  EXPECT_NE(second.error().find("Address already in use"), std::string::npos) << second.error();
  EXPECT_NE(second.error().find("port 0"), std::string::npos) << second.error();
}

// node_exporter's textfile collector must never read half a file: a reader
// process reading it as fast as it can while it is rewritten, with texts of
// two different sizes, sees one whole text or the other, every time.
TEST(MetricsTextfile, AReaderNeverSeesATornFile) {
  std::string dir = tempDir();
  ASSERT_FALSE(dir.empty());
  std::string path = dir + "/sshsoak.prom";
  std::string a(200000, 'a'), b(70000, 'b');
  a += "\n# end a\n";
  b += "\n# end b\n";
  ASSERT_TRUE(writeTextfile(path, a));
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);
  pid_t reader = ::fork();
  ASSERT_GE(reader, 0);
  if (reader == 0) {
    ::close(pipeFds[1]);
    int torn = 0, reads = 0;
    char c;
    // Until the writer closes the pipe (bounded: the writer writes 400 times).
    for (;;) {
      std::ifstream in(path, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ++reads;
      if (text != a && text != b) ++torn;
      pollfd pfd{pipeFds[0], POLLIN, 0};
      if (::poll(&pfd, 1, 0) == 1 && ::read(pipeFds[0], &c, 1) <= 0) break;
    }
    ::_exit(torn != 0 ? 1 : reads <= 10 ? 2 : 0);
  }
  ::close(pipeFds[0]);
  // 400 rewrites, and for at least a second: under ASan on a loaded machine
  // 400 take less time than the reader needs to read often enough. Bounded.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (int i = 0; i < 4000 && (i < 400 || std::chrono::steady_clock::now() < until); ++i) {
    ASSERT_TRUE(writeTextfile(path, i % 2 ? a : b));
  }
  ::close(pipeFds[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(reader, &status, 0), reader);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(WEXITSTATUS(status), 1) << "the reader saw a torn file";
  EXPECT_NE(WEXITSTATUS(status), 2) << "the reader read 10 times or fewer while the file was rewritten";
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST(MetricsTextfile, AFailedWriteIsNamedAndLeavesNoTmp) {
  auto r = writeTextfile("/nonexistent-dir-sshsoak/x.prom", "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("--metrics-textfile /nonexistent-dir-sshsoak/x.prom"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("No such file or directory"), std::string::npos) << r.error();
}
