// --workload jobs in the analysis: the figures, the summary's "workload"
// object, the verdict's job criteria and what people see (console, result
// table, HTML, status line), all from synthetic lines of the shapes
// docs/reference.md ("Jobs lines") fixes.
#include <capnp/message.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "supervisor/analysis/console.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/report.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/analysis/workload_model.h"

using namespace sshsoak;

namespace {

constexpr int64_t T0 = 1'800'000'000'000'000'000;  // the run's start, ns
constexpr int64_t SEC = 1'000'000'000;

Json runStarted(const std::string& reuse, uint32_t workers = 2) {
  Json j = lineHead(T0, std::nullopt, "", "run_started");
  j["run_id"] = "j1";
  j["sessions"] = workers;
  j["workload"] = "jobs";
  j["jobs_source"] = "generated";
  j["reuse"] = reuse;
  return j;
}

// One worker's job_stats rollup, as the supervisor writes it.
struct Stats {
  std::string phase = "reuse_on";
  uint64_t done = 0, failed = 0, aborted = 0, cancelled = 0, reused = 0, opened = 0, deadReplaced = 0;
  std::map<std::string, std::vector<uint64_t>> us;  // latency name -> values, µs
  std::vector<std::tuple<std::string, uint64_t, std::string>> failures;  // kind, count, example
  uint32_t intervalMs = 1000;
};

Json jobStats(uint32_t worker, int64_t ns, const Stats& st) {
  Json j = lineHead(ns, worker, "", "job_stats");
  j["interval_ms"] = st.intervalMs;
  j["phase"] = st.phase;
  j["done"] = st.done;
  j["failed"] = st.failed;
  j["aborted"] = st.aborted;
  j["cancelled"] = st.cancelled;
  j["reused"] = st.reused;
  j["connections_opened"] = st.opened;
  j["dead_replaced"] = st.deadReplaced;
  j["commands_run"] = 3 * (st.done + st.failed);
  j["commands_failed"] = st.failed + st.aborted;
  Json lat = Json::object();
  for (const auto& [name, values] : st.us) {
    LatencyHistogram h;
    for (auto v : values) h.record(v);
    lat[name] = histogramJson(h);
  }
  j["latency_us"] = std::move(lat);
  Json f = Json::object();
  for (const auto& [kind, count, example] : st.failures) f[kind] = Json{{"count", count}, {"example", example}};
  j["failures"] = std::move(f);
  return j;
}

// The queue's counts are the run's (every phase so far); phase: the current one.
Json jobQueue(int64_t ns, const std::string& phase, uint64_t submitted, uint64_t results, uint64_t notStarted,
              bool final, uint64_t queued = 0, uint64_t inFlight = 0, uint64_t shed = 0) {
  Json j = lineHead(ns, std::nullopt, "", "job_queue");
  j["submitted"] = submitted;
  j["queued"] = queued;
  j["in_flight"] = inFlight;
  j["results"] = results;
  j["retried"] = 0;
  j["shed"] = shed;
  j["not_started"] = notStarted;
  j["final"] = final;
  j["phase"] = phase;
  return j;
}

// A phase's own account, when it ends.
Json jobPhase(int64_t ns, const std::string& phase, double secs, uint64_t submitted, uint64_t results,
              uint64_t notStarted, std::optional<uint64_t> cpuMs) {
  Json j = lineHead(ns, std::nullopt, "", "job_phase");
  j["phase"] = phase;
  j["secs"] = secs;
  j["submitted"] = submitted;
  j["results"] = results;
  j["not_started"] = notStarted;
  j["server_pid"] = cpuMs ? Json(4242) : Json(nullptr);
  j["server_cpu_ms"] = cpuMs ? Json(*cpuMs) : Json(nullptr);
  return j;
}

// An agent's event as the supervisor logs it (eventToJson), plus what the
// supervisor adds to a job line.
Json eventLine(uint32_t session, int64_t ns, auto fill) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  e.setWallNs(ns);
  e.setSuccess(true);
  fill(e);
  return eventToJson(e.asReader(), "h:22");
}

Json jobLine(uint32_t worker, int64_t ns, uint64_t jobId, wire::JobOutcome outcome, const std::string& kind,
             const std::string& message) {
  Json j = eventLine(worker, ns, [&](wire::Event::Builder e) {
    auto r = e.initJobResult();
    r.setJobId(jobId);
    r.setOutcome(outcome);
    r.setAttempt(1);
    r.setRunUs(5000);
    r.setCommandsRun(2);
    r.setCommandsFailed(outcome == wire::JobOutcome::DONE ? 0 : 1);
    auto codes = r.initExitCodes(2);
    codes.set(0, 0);
    codes.set(1, outcome == wire::JobOutcome::DONE ? 0 : 3);
    r.setFailureKind(kind);
    r.setMessage(message);
  });
  j["host"] = "10.0.0.9:22";
  j["job"] = "#" + std::to_string(jobId);
  j["target"] = "admin@10.0.0.9:22";
  j["line"] = nullptr;
  j["phase"] = "reuse_on";
  j["queue_wait_us"] = 100;
  j["total_us"] = 6000;
  return j;
}

Json closedLine(uint32_t worker, int64_t ns, wire::JobCloseReason reason) {
  return eventLine(worker, ns, [&](wire::Event::Builder e) {
    auto c = e.initJobConnectionClosed();
    c.setHost("10.0.0.9");
    c.setPort(22);
    c.setUser("admin");
    c.setReason(reason);
    c.setAgeMs(60000);
    c.setIdleMs(30000);
    c.setJobsServed(12);
  });
}

Json retriedLine(uint32_t worker, int64_t ns, uint64_t jobId) {
  Json j = lineHead(ns, worker, "h:22", "job_retried");
  j["job_id"] = jobId;
  j["job"] = "#" + std::to_string(jobId);
  j["target"] = "admin@10.0.0.9:22";
  j["attempt"] = 2;
  return j;
}

Json rejectedLine(uint32_t line) {
  Json j = lineHead(T0, std::nullopt, "", "job_rejected");
  j["success"] = false;
  j["line"] = line;
  j["field"] = "commands";
  j["message"] = "must be a non-empty list of strings";
  return j;
}

double ms(uint64_t us) { return std::round(static_cast<double>(us) / 10.0) / 100.0; }

const Criterion& criterion(const std::vector<Criterion>& v, const std::string& name) {
  for (const auto& c : v) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no criterion " + name);
}

bool hasCriterion(const std::vector<Criterion>& v, const std::string& name) {
  return std::any_of(v.begin(), v.end(), [&](const Criterion& c) { return c.name == name; });
}

Thresholds jobsDefaults() {
  cli::Options o;
  o.workload = cli::WorkloadKind::JOBS;
  return thresholdsOf(o);
}

std::string printed(const Json& summary) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&buf, &size);
  printSummary(out, summary, "run.jsonl");
  std::fclose(out);
  std::string text(buf, size);
  std::free(buf);
  return text;
}

// A --compare-reuse run: 2 workers, 10 s of reuse off then 10 s of reuse on,
// 100 jobs each. Off: every job connects (20 ms); on: 4 connections, the
// rest reused (a 1 ms liveness check). The sshd's CPU: 2000 ms vs 400 ms.
// Without the final queue line: killed during reuse on.
std::vector<Json> compareRunLines(bool withFinalQueue = true) {
  std::vector<Json> lines;
  lines.push_back(runStarted("compare"));
  for (int sec = 1; sec <= 10; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.phase = "reuse_off";
      st.done = 5;
      st.opened = 5;
      st.us["connect"].assign(5, 20'000);
      st.us["queue_wait"].assign(5, 500);
      st.us["run"].assign(5, 10'000);
      st.us["total"].assign(5, 30'500);
      lines.push_back(jobStats(w, T0 + sec * SEC, st));
    }
  }
  lines.push_back(jobQueue(T0 + 9 * SEC, "reuse_off", 98, 96, 0, false, 0, 2));
  lines.push_back(jobPhase(T0 + 10 * SEC, "reuse_off", 10.0, 100, 100, 0, 2000));
  for (int sec = 11; sec <= 20; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.phase = "reuse_on";
      st.done = sec == 20 && w == 1 ? 4 : 5;
      st.failed = sec == 20 && w == 1 ? 1 : 0;
      if (st.failed) st.failures = {{"command_exit", 1, "`false` exited 1"}};
      bool first = sec == 11;
      st.opened = first ? 2 : 0;
      st.reused = first ? 3 : 5;
      st.us["connect"].assign(st.opened, 20'000);
      st.us["liveness"].assign(st.reused, 1'000);
      st.us["queue_wait"].assign(5, 500);
      st.us["run"].assign(5, 10'000);
      st.us["total"].assign(first ? 2 : 0, 30'500);
      st.us["total"].resize(5, 11'500);
      lines.push_back(jobStats(w, T0 + sec * SEC, st));
    }
  }
  lines.push_back(jobLine(1, T0 + 20 * SEC, 199, wire::JobOutcome::FAILED, "command_exit", "`false` exited 1"));
  lines.push_back(closedLine(0, T0 + 20 * SEC, wire::JobCloseReason::IDLE));
  if (withFinalQueue) {
    lines.push_back(jobQueue(T0 + 20 * SEC, "reuse_on", 200, 200, 0, true));
    lines.push_back(jobPhase(T0 + 20 * SEC, "reuse_on", 10.0, 100, 100, 0, 400));
  } else {
    lines.push_back(jobQueue(T0 + 19 * SEC, "reuse_on", 195, 190, 0, false, 3, 2));
  }
  return lines;
}

report::Run runOf(std::vector<Json> lines) { return report::splitRuns("synthetic.jsonl", lines).at(0); }

}  // namespace

TEST(JobsFigures, CountsLatenciesReuseAndClosesFromTheLines) {
  RunModel model({"h:22", "h:22"});
  model.onLine(runStarted("on"));
  model.onLine(rejectedLine(7));
  std::mt19937 rng(13);
  std::lognormal_distribution<double> dist(9.0, 0.8);  // ~8 ms, a tail
  LatencyHistogram all;
  uint64_t connectUs = 0, connects = 0;
  for (int sec = 1; sec <= 20; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.done = 10;
      st.failed = sec == 7 && w == 0 ? 1 : 0;
      st.aborted = sec == 9 && w == 1 ? 2 : 0;
      uint64_t n = st.done + st.failed + st.aborted;
      st.opened = sec == 1 ? 1 : 0;
      st.reused = n - st.opened;
      st.deadReplaced = sec == 15 && w == 1 ? 1 : 0;
      if (st.failed) st.failures.emplace_back("command_exit", 1, "`false` exited 1");
      if (st.aborted) st.failures.emplace_back("command_timeout", 2, "`sleep 60` passed 30 s");
      for (uint64_t i = 0; i < n; ++i) {
        auto v = static_cast<uint64_t>(dist(rng)) + 1;
        st.us["total"].push_back(v);
        all.record(v);
      }
      if (st.opened) {
        st.us["connect"] = {15'000 + 1000 * w};
        connectUs += 15'000 + 1000 * w;
        ++connects;
      }
      model.onLine(jobStats(w, T0 + sec * SEC, st));
    }
  }
  model.onLine(jobLine(0, T0 + 7 * SEC, 61, wire::JobOutcome::FAILED, "command_exit", "`false` exited 1"));
  model.onLine(jobLine(1, T0 + 9 * SEC, 80, wire::JobOutcome::ABORTED, "command_timeout", "`sleep 60` passed 30 s"));
  model.onLine(jobLine(1, T0 + 9 * SEC, 81, wire::JobOutcome::ABORTED, "command_timeout", "`sleep 60` passed 30 s"));
  model.onLine(retriedLine(1, T0 + 12 * SEC, 120));
  model.onLine(closedLine(0, T0 + 18 * SEC, wire::JobCloseReason::IDLE));
  model.onLine(closedLine(0, T0 + 19 * SEC, wire::JobCloseReason::IDLE));
  model.onLine(closedLine(1, T0 + 15 * SEC, wire::JobCloseReason::DEAD));
  model.onLine(closedLine(1, T0 + 16 * SEC, wire::JobCloseReason::TAINTED));
  model.onLine(jobQueue(T0 + 20 * SEC, "reuse_on", 410, 403, 7, true, 0, 0, 5));
  model.onLine(jobPhase(T0 + 20 * SEC, "reuse_on", 20.0, 410, 403, 7, 1234));

  Json s = model.summary(T0 + 21 * SEC, 21, 100);
  Json w = s["workload"];
  ASSERT_EQ(w["name"], "jobs") << w.dump();
  EXPECT_EQ(w["reuse"], "on");
  EXPECT_EQ(w["workers"], 2);
  EXPECT_EQ(w["submitted"], 410);
  EXPECT_EQ(w["done"], 400);
  EXPECT_EQ(w["failed"], 1);
  EXPECT_EQ(w["aborted"], 2);
  EXPECT_EQ(w["cancelled"], 0);
  EXPECT_EQ(w["not_started"], 7);
  EXPECT_EQ(w["lost"], 0);
  EXPECT_EQ(w["queue_final"], true);
  EXPECT_FALSE(w.contains("incomplete"));
  EXPECT_EQ(w["retried"], 1);
  EXPECT_EQ(w["shed"], 5);
  EXPECT_EQ(w["rejected"], 1);
  EXPECT_DOUBLE_EQ(w["span_secs"].get<double>(), 20.0);  // job_phase's secs
  EXPECT_DOUBLE_EQ(w["jobs_per_sec"].get<double>(), 20.15);  // 403 results / 20 s
  // The run's p95 is that of every value of every worker and interval.
  const Json& total = w["latency_ms"]["total"];
  EXPECT_EQ(total["n"], 403);
  EXPECT_DOUBLE_EQ(total["p50"].get<double>(), ms(all.valueAtPercentile(50)));
  EXPECT_DOUBLE_EQ(total["p95"].get<double>(), ms(all.valueAtPercentile(95)));
  EXPECT_DOUBLE_EQ(total["p99"].get<double>(), ms(all.valueAtPercentile(99)));
  EXPECT_DOUBLE_EQ(total["max"].get<double>(), ms(all.max()));
  EXPECT_EQ(w["latency_ms"]["connect"]["n"], 2);
  EXPECT_EQ(w["latency_ms"]["liveness"]["n"], 0);
  EXPECT_EQ(w["latency_ms"]["liveness"]["p95"], nullptr);  // nothing timed is no figure, not 0
  EXPECT_DOUBLE_EQ(w["reuse_rate"].get<double>(), 0.995);  // 401 of 403
  EXPECT_EQ(w["connections_opened"], 2);
  EXPECT_DOUBLE_EQ(w["connections_per_hour_per_worker"].get<double>(), 180.0);  // 2 / 2 workers / (20 s / 3600)
  EXPECT_EQ(w["idle_closes"], 2);
  EXPECT_EQ(w["lru_closes"], 0);
  EXPECT_EQ(w["dead_replaced"], 1);  // the job_stats' count
  EXPECT_EQ(w["dropped_closes"], 0);
  EXPECT_EQ(w["tainted_closes"], 1);
  // Reuse on: the jobs that did not connect x the run's mean connect time.
  double meanConnectMs = static_cast<double>(connectUs) / static_cast<double>(connects) / 1000.0;
  EXPECT_NEAR(w["setup_saved_ms"].get<double>(), 401 * meanConnectMs, 401 * meanConnectMs * 0.01);
  EXPECT_NE(w["setup_saved_method"].get<std::string>().find("estimated"), std::string::npos);
  EXPECT_EQ(w["failures"]["command_exit"]["count"], 1);
  EXPECT_EQ(w["failures"]["command_timeout"]["count"], 2);
  EXPECT_EQ(w["failures"]["command_timeout"]["example"], "`sleep 60` passed 30 s");
  EXPECT_EQ(w["detail_lines"], 3);
  ASSERT_EQ(w["first_failures"].size(), 3u);
  EXPECT_EQ(w["first_failures"][0]["job"], "#61");
  EXPECT_EQ(w["first_failures"][0]["exit_codes"], (Json{0, 3}));
  EXPECT_EQ(w["first_failures"][1]["outcome"], "aborted");
  ASSERT_EQ(w["phases"].size(), 1u);
  EXPECT_EQ(w["phases"]["reuse_on"]["server_cpu_ms"], 1234);
  EXPECT_DOUBLE_EQ(w["phases"]["reuse_on"]["server_cpu_ms_per_job"].get<double>(), 3.06);  // 1234 / 403
  EXPECT_FALSE(w.contains("compare"));

  // Workers hold no session: one with results is up, none is an abnormal end.
  EXPECT_EQ(s["sessions_up_at_end"], 2);
  EXPECT_EQ(s["abnormal_ends"], 0);
  // A job line's host is its target, not the worker's slot.
  EXPECT_EQ(s["per_session"][0]["host"], "h:22");
}

TEST(JobsFigures, PercentilesMergeExactlyAndAreNotAveraged) {
  // Worker 0 is fast, worker 1 slow, each interval alike: the average of the
  // rollups' p95s would be half way; the run's p95 is the slow worker's.
  RunModel model;
  model.onLine(runStarted("on"));
  LatencyHistogram all;
  for (int sec = 1; sec <= 4; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.done = w == 0 ? 90 : 10;
      st.us["total"].assign(st.done, w == 0 ? 2'000 : 400'000);
      for (auto v : st.us["total"]) all.record(v);
      model.onLine(jobStats(w, T0 + sec * SEC, st));
    }
  }
  model.onLine(jobQueue(T0 + 5 * SEC, "reuse_on", 400, 400, 0, true));
  Json w = model.summary(T0 + 5 * SEC, 5, 10)["workload"];
  double p95 = w["latency_ms"]["total"]["p95"].get<double>();
  EXPECT_DOUBLE_EQ(p95, ms(all.valueAtPercentile(95)));
  EXPECT_NEAR(p95, 400.0, 4.0);  // 10 % of the jobs are 400 ms: p95 is one of them
  EXPECT_DOUBLE_EQ(w["latency_ms"]["total"]["p50"].get<double>(), ms(all.valueAtPercentile(50)));
  EXPECT_EQ(w["latency_ms"]["total"]["n"], 400);
  // The verdict judges the same figure.
  EXPECT_DOUBLE_EQ(*model.verdictInputs().jobP95Ms, p95);
}

TEST(JobsFigures, CompareReuseKeepsEachPhaseAndTheirRatios) {
  RunModel model;
  for (const auto& l : compareRunLines()) model.onLine(l);
  Json w = model.summary(T0 + 21 * SEC, 21, 100)["workload"];
  ASSERT_EQ(w["reuse"], "compare");
  EXPECT_EQ(w["submitted"], 200);
  EXPECT_EQ(w["done"], 199);
  EXPECT_EQ(w["failed"], 1);
  EXPECT_EQ(w["lost"], 0);
  EXPECT_DOUBLE_EQ(w["span_secs"].get<double>(), 20.0);
  ASSERT_EQ(w["phases"].size(), 2u);
  const Json& off = w["phases"]["reuse_off"];
  const Json& on = w["phases"]["reuse_on"];
  EXPECT_EQ(off["done"], 100);
  EXPECT_EQ(off["failed"], 0);
  // Each phase's own account is its job_phase line; the queue's is the run's.
  EXPECT_EQ(off["submitted"], 100);
  EXPECT_EQ(off["lost"], 0);
  EXPECT_EQ(on["submitted"], 100);
  EXPECT_EQ(on["lost"], 0);
  EXPECT_EQ(on["done"], 99);
  EXPECT_EQ(on["failed"], 1);
  EXPECT_DOUBLE_EQ(off["jobs_per_sec"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(on["jobs_per_sec"].get<double>(), 10.0);
  EXPECT_EQ(off["connections_opened"], 100);
  EXPECT_EQ(on["connections_opened"], 4);
  EXPECT_DOUBLE_EQ(off["reuse_rate"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(on["reuse_rate"].get<double>(), 0.96);
  EXPECT_NEAR(off["latency_ms"]["total"]["p95"].get<double>(), 30.5, 0.3);
  // 4 % of reuse on's jobs connected (30.5 ms): its p95 is a reused job's.
  EXPECT_NEAR(on["latency_ms"]["total"]["p95"].get<double>(), 11.5, 0.1);
  EXPECT_NEAR(on["latency_ms"]["total"]["p99"].get<double>(), 30.5, 0.3);
  EXPECT_EQ(off["server_cpu_ms"], 2000);
  EXPECT_DOUBLE_EQ(off["server_cpu_ms_per_job"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(on["server_cpu_ms_per_job"].get<double>(), 4.0);
  EXPECT_EQ(off["server_pid"], 4242);
  // Setup per job: off 20 ms connect; on (4 x 20 + 96 x 1) / 100 = 1.76 ms.
  EXPECT_NEAR(off["setup_ms_per_job"].get<double>(), 20.0, 0.2);
  EXPECT_NEAR(on["setup_ms_per_job"].get<double>(), 1.76, 0.02);
  EXPECT_NEAR(w["setup_saved_ms"].get<double>(), (20.0 - 1.76) * 100, 20.0);
  EXPECT_NE(w["setup_saved_method"].get<std::string>().find("measured"), std::string::npos);
  const Json& c = w["compare"];
  EXPECT_DOUBLE_EQ(c["throughput_ratio"].get<double>(), 1.0);
  EXPECT_NEAR(c["p95_ratio"].get<double>(), 11.5 / 30.5, 0.01);
  EXPECT_DOUBLE_EQ(c["server_cpu_ratio"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(c["connections_ratio"].get<double>(), 0.04);
  // The run's totals merge both phases: 200 total latencies.
  EXPECT_EQ(w["latency_ms"]["total"]["n"], 200);
  EXPECT_EQ(w["connections_opened"], 104);

  // Jobs per second over time, per phase: off in the first 10 s, on after.
  const auto& series = model.workload().jobs().series;
  auto offPts = series.ratePoints(0), onPts = series.ratePoints(1);
  ASSERT_GE(offPts.size(), 15u);
  EXPECT_NEAR(offPts[5].second, 10.0, 1e-9);
  EXPECT_NEAR(onPts[5].second, 0.0, 1e-9);
  EXPECT_NEAR(onPts[15].second, 10.0, 1e-9);
}

TEST(JobsFigures, LostIsWhatTheResultsAndNotStartedDoNotAccountFor) {
  RunModel model;
  model.onLine(runStarted("off"));
  Stats st;
  st.phase = "reuse_off";
  st.done = 95;
  st.failed = 2;
  st.opened = 97;
  st.us["total"].assign(97, 25'000);
  model.onLine(jobStats(0, T0 + SEC, st));
  model.onLine(jobQueue(T0 + 2 * SEC, "reuse_off", 100, 97, 2, true));  // 100 - (97 + 2) = 1 lost
  Json w = model.summary(T0 + 2 * SEC, 2, 5)["workload"];
  EXPECT_EQ(w["lost"], 1);
  EXPECT_EQ(w["not_started"], 2);
  EXPECT_EQ(w["setup_saved_ms"], 0);  // reuse off: the baseline
  auto v = evaluate(model.verdictInputs(), jobsDefaults());
  EXPECT_EQ(criterion(v, "jobs_lost").result, Verdict::FAIL);
  EXPECT_DOUBLE_EQ(*criterion(v, "jobs_lost").measured, 1.0);
  EXPECT_EQ(criterion(v, "job_failures").result, Verdict::FAIL);  // 2 failed > 0
}

TEST(JobsFigures, AJobCountedTwiceIsNoPassEither) {
  RunModel model;
  model.onLine(runStarted("on"));
  Stats st;
  st.done = 11;
  st.us["total"].assign(11, 5'000);
  model.onLine(jobStats(0, T0 + SEC, st));
  model.onLine(jobQueue(T0 + 2 * SEC, "reuse_on", 10, 10, 0, true));
  EXPECT_EQ(model.summary(T0 + 2 * SEC, 2, 5)["workload"]["lost"], -1);
  auto v = evaluate(model.verdictInputs(), jobsDefaults());
  EXPECT_EQ(criterion(v, "jobs_lost").result, Verdict::FAIL);
}

TEST(JobsFigures, AKilledRunWithoutTheFinalQueueLineSaysSo) {
  auto lines = compareRunLines(false);
  RunModel model;
  for (const auto& l : lines) model.onLine(l);
  Json w = model.summary(T0 + 21 * SEC, 21, 100)["workload"];
  EXPECT_EQ(w["queue_final"], false);
  EXPECT_EQ(w["lost"], nullptr);
  EXPECT_EQ(w["not_started"], nullptr);
  ASSERT_TRUE(w["incomplete"].is_string());
  EXPECT_NE(w["incomplete"].get<std::string>().find("no final job_queue line"), std::string::npos);
  EXPECT_EQ(w["submitted"], 195);  // the last report's, the run's so far
  EXPECT_EQ(w["phases"]["reuse_off"]["lost"], 0);  // its phase did end: job_phase accounts for it
  EXPECT_EQ(w["phases"]["reuse_off"]["submitted"], 100);
  EXPECT_EQ(w["phases"]["reuse_on"]["submitted"], nullptr);
  EXPECT_EQ(w["phases"]["reuse_on"]["lost"], nullptr);
  // The live run judges it: jobs that cannot be accounted for are no pass.
  auto v = evaluate(model.verdictInputs(), jobsDefaults());
  const Criterion& lost = criterion(v, "jobs_lost");
  EXPECT_EQ(lost.result, Verdict::FAIL);
  EXPECT_NE(lost.note.find("no final job_queue"), std::string::npos);
  EXPECT_EQ(model.workloadStatus(), "jobs 9 done/s, queue 3, in flight 2, p95 11.5 ms, 1 failed");

  // The table and the HTML of the log say it too.
  report::Run run = runOf(lines);
  EXPECT_NE(run.notes.find("incomplete"), std::string::npos);
  std::string md = report::markdown(report::Input{{run}, {}, {}});
  EXPECT_NE(md.find("Incomplete: no final job_queue line"), std::string::npos) << md;
  std::string html = report::renderHtml({run});
  EXPECT_NE(html.find("<b>Incomplete:</b> no final job_queue line"), std::string::npos);
}

TEST(JobsFigures, StatusLineIsTheLastIntervalsRateQueueInFlightAndP95) {
  RunModel model;
  model.onLine(runStarted("on"));
  EXPECT_EQ(model.workloadStatus(), "jobs: no report yet");
  for (int sec = 1; sec <= 3; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.done = sec == 3 ? 20 : 5;
      st.failed = sec == 1 && w == 0 ? 1 : 0;
      st.us["total"].assign(st.done, 12'000);
      st.intervalMs = 1000;
      model.onLine(jobStats(w, T0 + sec * SEC + w * 1000, st));
    }
    model.onLine(jobQueue(T0 + sec * SEC, "reuse_on", 100 * static_cast<uint64_t>(sec), 0, 0, false, 7, 2));
  }
  EXPECT_EQ(model.workloadStatus(), "jobs 40 done/s, queue 7, in flight 2, p95 12 ms, 1 failed");
}

TEST(JobsFigures, TheLiveRunsModelLearnsReuseAndWorkersFromTheOptions) {
  cli::Options o;
  o.workload = cli::WorkloadKind::JOBS;
  o.compareReuse = true;
  o.slots = {cli::Target{"h", 22}, cli::Target{"h", 22}, cli::Target{"h", 22}};
  RunModel model({"h:22", "h:22", "h:22"});
  model.configureWorkload(o, T0);
  Stats st;
  st.done = 3;
  model.onLine(jobStats(0, T0 + SEC, st));
  Json s = model.summary(T0 + 2 * SEC, 2, 3);
  EXPECT_EQ(s["workload"]["reuse"], "compare");
  EXPECT_EQ(s["workload"]["workers"], 3);
  EXPECT_EQ(s["abnormal_ends"], 0);  // workers 1 and 2 had no job: no session to lose
  EXPECT_EQ(s["sessions_up_at_end"], 1);
}

TEST(JobsFigures, ASupervisorsJobLineAboutACrashedWorkerIsNoRestart) {
  RunModel model({"h:22"});
  model.onLine(runStarted("on", 1));
  model.onLine(lineHead(T0, 0, "h:22", "agent_started"));
  Json crash = lineHead(T0 + SEC, 0, "h:22", "agent_crashed");
  crash["detail"] = "signal 9 (SIGKILL)";
  model.onLine(crash);
  model.onLine(retriedLine(0, T0 + SEC, 5));
  Json made = lineHead(T0 + SEC, 0, "10.0.0.9:22", "job");  // the supervisor's result for a job it could not retry
  made["job_id"] = 6;
  made["outcome"] = "failed";
  made["failure_kind"] = "worker_died";
  model.onLine(made);
  Stats st;
  st.done = 1;
  model.onLine(jobStats(0, T0 + SEC, st));  // the dead worker's last rollup
  EXPECT_EQ(model.session(0).restarts, 0u);
  EXPECT_EQ(model.session(0).state, SessionState::CRASHED);
  EXPECT_EQ(model.abnormalEnds(), 1u);
  model.onLine(lineHead(T0 + 2 * SEC, 0, "h:22", "agent_started"));  // the restarted worker
  model.onLine(jobStats(0, T0 + 3 * SEC, st));
  EXPECT_EQ(model.session(0).restarts, 1u);
  EXPECT_TRUE(model.session(0).up());
}

TEST(JobsFigures, NothingGrowsWithTheRun) {
  RunModel model;
  model.onLine(runStarted("on"));
  // Five hours of 1 s rollups from 2 workers, every one with a failure.
  for (int sec = 1; sec <= 18000; ++sec) {
    for (uint32_t w = 0; w < 2; ++w) {
      Stats st;
      st.done = 3;
      st.failed = 1;
      st.failures = {{"command_exit", 1, "exit " + std::to_string(sec)}};
      st.us["total"] = {4'000, 5'000, 6'000, 90'000};
      model.onLine(jobStats(w, T0 + sec * SEC, st));
    }
    if (sec % 600 == 0) model.onLine(jobLine(0, T0 + sec * SEC, 4 * sec, wire::JobOutcome::FAILED, "command_exit", "x"));
  }
  const JobsFigures& f = model.workload().jobs();
  EXPECT_LE(f.series.size(), BoundedSeries::MAX_POINTS);
  EXPECT_EQ(f.phases.size(), 1u);
  EXPECT_EQ(f.failures.size(), 1u);
  EXPECT_EQ(f.firstFailures.size(), JobsFigures::FIRST_FAILURES);
  EXPECT_EQ(f.detailLines, 30u);
  EXPECT_EQ(f.workersSeen.size(), 2u);
  EXPECT_EQ(f.latency("total").count(), 144000u);
  double total = 0;
  for (size_t b = 0; b < f.series.size(); ++b) total += f.series.at(b, 1);
  EXPECT_DOUBLE_EQ(total, 144000.0);  // every result is in the chart
}

// ---- the verdict ----

namespace {

VerdictInputs healthyJobs() {
  VerdictInputs in;
  in.workload = cli::WorkloadKind::JOBS;
  in.jobsResults = 1000;
  in.jobsLost = 0;
  in.jobP95Ms = 120;
  in.meanTotalCpuPct = 60;  // the load, not the harness: not judged by default
  return in;
}

}  // namespace

TEST(JobsVerdict, EachCriterionPassesAndFailsOnItsOwn) {
  auto v = evaluate(healthyJobs(), jobsDefaults());
  for (const char* n : {"job_failures", "jobs_lost", "job_p95_ms"}) EXPECT_EQ(criterion(v, n).result, Verdict::PASS) << n;
  EXPECT_EQ(criterion(v, "cpu_pct").result, Verdict::NA);
  EXPECT_TRUE(allPassed(v));

  auto check = [](auto mutate, const std::string& name) {
    VerdictInputs in = healthyJobs();
    mutate(in);
    auto got = evaluate(in, jobsDefaults());
    EXPECT_FALSE(allPassed(got)) << name;
    for (const char* n : {"job_failures", "jobs_lost", "job_p95_ms"}) {
      EXPECT_EQ(criterion(got, n).result, n == name ? Verdict::FAIL : Verdict::PASS) << name << "/" << n;
    }
  };
  check([](VerdictInputs& in) { in.jobsFailed = 1; }, "job_failures");
  check([](VerdictInputs& in) { in.jobsAborted = 1; }, "job_failures");
  check([](VerdictInputs& in) { in.jobsLost = 2; }, "jobs_lost");
  check([](VerdictInputs& in) { in.jobsLost = -1; }, "jobs_lost");  // a job counted twice
  check([](VerdictInputs& in) {
    in.jobsLost.reset();  // no final job_queue
    in.jobsUnaccounted = 0;
  }, "jobs_lost");
  check([](VerdictInputs& in) { in.jobP95Ms = 10000; }, "job_p95_ms");  // strictly below
}

TEST(JobsVerdict, ThresholdsComeFromTheFlags) {
  cli::Options o;
  o.workload = cli::WorkloadKind::JOBS;
  o.maxJobFailures = 3;
  o.maxJobP95Ms = 100;
  VerdictInputs in = healthyJobs();
  in.jobsFailed = 2;
  in.jobsAborted = 1;
  auto v = evaluate(in, thresholdsOf(o));
  EXPECT_EQ(criterion(v, "job_failures").result, Verdict::PASS);
  EXPECT_DOUBLE_EQ(criterion(v, "job_failures").threshold, 3.0);
  EXPECT_NE(criterion(v, "job_failures").note.find("2 failed + 1 aborted of 1000"), std::string::npos);
  EXPECT_EQ(criterion(v, "job_p95_ms").result, Verdict::FAIL);  // 120 ms >= 100
  o.maxCpuPctGiven = true;
  EXPECT_EQ(criterion(evaluate(in, thresholdsOf(o)), "cpu_pct").result, Verdict::FAIL);  // 60 % >= 5 %
}

TEST(JobsVerdict, NoJobTimedIsNotApplicableAndOtherWorkloadsHaveNoJobCriteria) {
  VerdictInputs in = healthyJobs();
  in.jobP95Ms.reset();
  auto v = evaluate(in, jobsDefaults());
  EXPECT_EQ(criterion(v, "job_p95_ms").result, Verdict::NA);
  EXPECT_EQ(criterion(v, "job_p95_ms").note, "no job timed");
  for (auto kind : {cli::WorkloadKind::PTY, cli::WorkloadKind::CHURN, cli::WorkloadKind::TRANSFER}) {
    VerdictInputs other;
    other.workload = kind;
    cli::Options o;
    o.workload = kind;
    auto crit = evaluate(other, thresholdsOf(o));
    for (const char* n : {"job_failures", "jobs_lost", "job_p95_ms"}) EXPECT_FALSE(hasCriterion(crit, n)) << n;
  }
}

// ---- what people see ----

TEST(JobsOutput, ConsoleTableAndHtmlShowTheABSideBySide) {
  auto lines = compareRunLines();
  RunModel model;
  for (const auto& l : lines) model.onLine(l);
  Json s = model.summary(T0 + 21 * SEC, 21, 100);
  auto criteria = evaluate(model.verdictInputs(), jobsDefaults());
  s["verdict"] = verdictJson(criteria);
  s["success"] = allPassed(criteria);
  std::string text = printed(s);
  EXPECT_NE(text.find("== jobs (reuse compare) =="), std::string::npos) << text;
  EXPECT_NE(text.find("jobs                  200 submitted: 199 done, 1 failed, 0 aborted, 0 cancelled, 0 not started, 0 lost"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("A/B                   reuse off"), std::string::npos) << text;
  EXPECT_NE(text.find("  jobs/s              10                     10                     1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  sshd CPU ms         2000 (20/job)          400 (4/job)            0.2 per job\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  connections opened  100 (1/job)            4 (0.04/job)           0.04 per job\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  failed command_exit"), std::string::npos) << text;
  EXPECT_NE(text.find("pool closes           idle 1, lru 0"), std::string::npos) << text;
  EXPECT_NE(text.find("job_failures"), std::string::npos) << text;

  std::string md = report::markdown(report::Input{{runOf(lines)}, {}, {}});
  EXPECT_NE(md.find("**Jobs j1** (reuse compare, 2 workers)"), std::string::npos) << md;
  EXPECT_NE(md.find("| 200 | 199 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 10 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| jobs/s | 10 | 10 | 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| sshd CPU ms | 2000 (20/job) | 400 (4/job) | 0.2 per job |"), std::string::npos) << md;
  EXPECT_NE(md.find("| connections opened | 100 (1/job) | 4 (0.04/job) | 0.04 per job |"), std::string::npos) << md;
  EXPECT_NE(md.find("| p95 job latency ms | "), std::string::npos) << md;
  EXPECT_NE(md.find("| total | 200 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| command_exit | 1 | `false` exited 1 |"), std::string::npos) << md;

  std::string html = report::renderHtml({runOf(lines)});
  EXPECT_NE(html.find("<h3>Jobs: reuse off vs on (--compare-reuse)</h3>"), std::string::npos);
  EXPECT_NE(html.find("<td>sshd CPU ms</td><td>2000 (20/job)</td><td>400 (4/job)</td><td>0.2 per job</td>"),
            std::string::npos);
  EXPECT_NE(html.find("aria-label='jobs rate'"), std::string::npos);
  EXPECT_NE(html.find("aria-label='job latency'"), std::string::npos);
  EXPECT_NE(html.find("<td>command_exit</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>#199</td>"), std::string::npos);  // the first failed job
}

TEST(JobsOutput, ARunWithOnePhasePrintsNoAB) {
  std::vector<Json> lines = {runStarted("on", 1)};
  Stats st;
  st.done = 4;
  st.us["total"].assign(4, 3'000);
  lines.push_back(jobStats(0, T0 + SEC, st));
  lines.push_back(jobQueue(T0 + SEC, "reuse_on", 4, 4, 0, true));
  RunModel model;
  for (const auto& l : lines) model.onLine(l);
  Json s = model.summary(T0 + 2 * SEC, 2, 3);
  s["success"] = true;
  std::string text = printed(s);
  EXPECT_NE(text.find("== jobs (reuse on) =="), std::string::npos) << text;
  EXPECT_EQ(text.find("A/B"), std::string::npos) << text;
  std::string md = report::markdown(report::Input{{runOf(lines)}, {}, {}});
  EXPECT_EQ(md.find("--compare-reuse"), std::string::npos) << md;
  std::string html = report::renderHtml({runOf(lines)});
  EXPECT_NE(html.find("<h3>Jobs (reuse on, 1 worker)</h3>"), std::string::npos);
  EXPECT_EQ(html.find("reuse off vs on"), std::string::npos);
}
