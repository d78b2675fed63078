#include "supervisor/analysis/workload_model.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "session_agent/workloads/rollup.h"
#include "supervisor/analysis/console.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/report.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/verdict.h"
#include "shared/clock.h"

using namespace sshsoak;

namespace {

constexpr int64_t T0 = 1'800'000'000'000'000'000;  // the run's start, ns
constexpr int64_t SEC = 1'000'000'000;

Json runStarted(const std::string& workload, Json extra = Json::object(), uint32_t sessions = 2) {
  Json j = lineHead(T0, std::nullopt, "", "run_started");
  j["run_id"] = "r1";
  j["sessions"] = sessions;
  if (!workload.empty()) j["workload"] = workload;
  j.update(extra);
  return j;
}

// An agent's event as the supervisor logs it: a Cap'n Proto event turned
// into its line by the same eventToJson.
Json eventLine(uint32_t session, int64_t ns, auto fill) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  e.setWallNs(ns);
  e.setSuccess(true);
  fill(e);
  return eventToJson(e.asReader(), "h:22");
}

void setHistogram(wire::Histogram::Builder b, const std::string& name, const std::vector<uint64_t>& us) {
  LatencyHistogram h;
  for (auto v : us) h.record(v);
  std::vector<std::pair<uint32_t, uint64_t>> nz;
  h.forEachNonZero([&](size_t i, uint64_t c) { nz.emplace_back(static_cast<uint32_t>(i), c); });
  b.setName(name);
  auto idx = b.initIndices(static_cast<unsigned>(nz.size()));
  auto cnt = b.initCounts(static_cast<unsigned>(nz.size()));
  for (unsigned i = 0; i < nz.size(); ++i) {
    idx.set(i, nz[i].first);
    cnt.set(i, nz[i].second);
  }
}

struct Interval {
  uint32_t attempted = 0, succeeded = 0, failed = 0;
  double target = 100;
  std::vector<uint64_t> totalUs;
  std::vector<std::pair<std::string, std::string>> failures;  // kind, example (one each)
  uint32_t cpuMs = 0, behindMs = 0;
};

Json churnStats(uint32_t session, int64_t ns, const Interval& in, uint32_t intervalMs = 1000) {
  return eventLine(session, ns, [&](wire::Event::Builder e) {
    auto c = e.initChurnStats();
    c.setIntervalMs(intervalMs);
    c.setTargetPerSec(in.target);
    c.setAttempted(in.attempted);
    c.setSucceeded(in.succeeded);
    c.setFailed(in.failed);
    c.setCpuMs(in.cpuMs);
    c.setBehindMs(in.behindMs);
    auto hs = c.initHistograms(2);
    setHistogram(hs[0], "total", in.totalUs);
    std::vector<uint64_t> tcp;
    for (auto v : in.totalUs) tcp.push_back(v / 10 + 1);
    setHistogram(hs[1], "tcp", tcp);
    auto fs = c.initFailures(static_cast<unsigned>(in.failures.size()));
    for (unsigned i = 0; i < in.failures.size(); ++i) {
      fs[i].setKind(in.failures[i].first);
      fs[i].setCount(1);
      fs[i].setExample(in.failures[i].second);
    }
  });
}

Json transferRound(uint32_t session, int64_t ns, wire::TransferDirection dir, uint32_t round, uint64_t bytes,
                   uint32_t ms, uint32_t cpuMs) {
  return eventLine(session, ns, [&](wire::Event::Builder e) {
    auto t = e.initTransferRound();
    t.setDirection(dir);
    t.setRound(round);
    t.setBytes(bytes);
    t.setMs(ms);
    t.setMbPerSec(static_cast<double>(bytes) / 1e6 / (ms / 1000.0));
    t.setCpuMs(cpuMs);
    t.setWindowBytes(2 << 20);
    t.setWriteBytes(256 << 10);
    t.setSha256(std::string(64, 'a'));
  });
}

const Criterion& criterion(const std::vector<Criterion>& v, const std::string& name) {
  for (const auto& c : v) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no criterion " + name);
}

bool hasCriterion(const std::vector<Criterion>& v, const std::string& name) {
  return std::any_of(v.begin(), v.end(), [&](const Criterion& c) { return c.name == name; });
}

Thresholds defaults(cli::WorkloadKind kind) {
  cli::Options o;
  o.workload = kind;
  return thresholdsOf(o);
}

}  // namespace

TEST(WorkloadModel, ChurnMergedPercentilesAreThoseOfTheUnionOfValues) {
  RunModel model;
  model.onLine(runStarted("churn", {{"churn_rate", "100"}, {"churn_ramp_steps", 10}}));
  std::mt19937 rng(7);
  std::lognormal_distribution<double> dist(8.0, 1.0);  // ~3 ms, long tail
  LatencyHistogram all;
  for (int sec = 1; sec <= 20; ++sec) {
    for (uint32_t agent = 0; agent < 2; ++agent) {
      Interval in;
      in.attempted = in.succeeded = 50;
      for (int i = 0; i < 50; ++i) {
        auto v = static_cast<uint64_t>(dist(rng)) + 1;
        in.totalUs.push_back(v);
        all.record(v);
      }
      model.onLine(churnStats(agent, T0 + sec * SEC, in));
    }
  }
  Json w = model.summary(T0 + 21 * SEC, 21, 100)["workload"];
  ASSERT_EQ(w["name"], "churn");
  EXPECT_EQ(w["attempted"], 2000);
  EXPECT_EQ(w["succeeded"], 2000);
  EXPECT_EQ(w["failed"], 0);
  // The whole run's histogram, not an average of the intervals'.
  auto us = [](uint64_t v) { return std::round(static_cast<double>(v) / 10.0) / 100.0; };
  EXPECT_DOUBLE_EQ(w["phases"]["total"]["p50_ms"].get<double>(), us(all.valueAtPercentile(50)));
  EXPECT_DOUBLE_EQ(w["phases"]["total"]["p99_ms"].get<double>(), us(all.valueAtPercentile(99)));
  EXPECT_DOUBLE_EQ(w["phases"]["total"]["p999_ms"].get<double>(), us(all.valueAtPercentile(99.9)));
  EXPECT_DOUBLE_EQ(w["phases"]["total"]["max_ms"].get<double>(), us(all.max()));
  EXPECT_EQ(w["phases"]["total"]["n"], 2000);
  EXPECT_TRUE(w["phases"].contains("tcp"));
  // 2000 connections over the reports' span, 0 s to 20 s.
  EXPECT_DOUBLE_EQ(w["span_secs"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(w["achieved_per_sec"].get<double>(), 100.0);
  EXPECT_FALSE(w.contains("ramp"));
}

TEST(WorkloadModel, ChurnFailuresCpuAndBehind) {
  RunModel model({"h:22", "h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "20"}}));
  Interval a{.attempted = 10, .succeeded = 8, .failed = 2, .target = 20, .totalUs = {1000, 2000},
             .failures = {{"refused", "connect: Connection refused"}, {"timeout_kex", "kex took 5 s"}}, .cpuMs = 30,
             .behindMs = 5};
  Interval b{.attempted = 10, .succeeded = 9, .failed = 1, .target = 20, .totalUs = {1000},
             .failures = {{"refused", "second example"}}, .cpuMs = 10, .behindMs = 250};
  model.onLine(churnStats(0, T0 + SEC, a));
  model.onLine(churnStats(1, T0 + 2 * SEC, b));
  Json s = model.summary(T0 + 3 * SEC, 3, 10);
  Json w = s["workload"];
  EXPECT_EQ(w["failures"]["refused"]["count"], 2);
  EXPECT_EQ(w["failures"]["refused"]["example"], "connect: Connection refused");  // the first one
  EXPECT_EQ(w["failures"]["timeout_kex"]["count"], 1);
  EXPECT_DOUBLE_EQ(w["cpu_ms_per_conn"].get<double>(), 2.0);  // 40 ms / 20 attempted
  EXPECT_EQ(w["max_behind_ms"], 250);
  // Churn agents hold no session: never "connected" is no abnormal end.
  EXPECT_EQ(s["abnormal_ends"], 0);
  EXPECT_EQ(s["per_session"][0]["abnormal_end"], nullptr);

  auto v = evaluate(model.verdictInputs(), defaults(cli::WorkloadKind::CHURN));
  EXPECT_EQ(criterion(v, "conn_failures").result, Verdict::FAIL);
  EXPECT_DOUBLE_EQ(*criterion(v, "conn_failures").measured, 3.0);
  EXPECT_EQ(criterion(v, "abnormal_ends").result, Verdict::PASS);
}

TEST(WorkloadModel, ChurnCrashIsStillAnAbnormalEnd) {
  RunModel model({"h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "20"}}, 1));
  Json crash = lineHead(T0 + SEC, 0, "h:22", "agent_crashed");
  crash["detail"] = "signal 9 (SIGKILL)";
  model.onLine(crash);
  EXPECT_EQ(model.abnormalEnds(), 1u);
}

TEST(WorkloadModel, RampFindsTheBreakingPointAndJudgesTheBestRateBeforeIt) {
  RunModel model({"h:22"});
  // 10..50/50s in 5 steps: 10, 20, 30, 40, 50 conn/s, 10 s each.
  model.onLine(runStarted("churn", {{"churn_rate", "10..50/50s"}, {"churn_ramp_steps", 5}, {"max_conn_failures", 0},
                                    {"max_connect_p99_ms", 100}},
                          1));
  for (int sec = 1; sec <= 50; ++sec) {
    int step = (sec - 1) / 10;
    double target = 10.0 + 10.0 * step;
    Interval in;
    in.target = target;
    in.attempted = static_cast<uint32_t>(target);
    // Step 4 (40/s) is where the server gives: p99 over the limit.
    uint64_t latency = step >= 3 ? 300'000 : 2'000;
    in.succeeded = in.attempted;
    for (uint32_t i = 0; i < in.attempted; ++i) in.totalUs.push_back(latency);
    model.onLine(churnStats(0, T0 + sec * SEC, in));
  }
  Json w = model.summary(T0 + 51 * SEC, 51, 100)["workload"];
  ASSERT_TRUE(w.contains("ramp"));
  const Json& steps = w["ramp"]["steps"];
  ASSERT_EQ(steps.size(), 5u);
  EXPECT_DOUBLE_EQ(steps[0]["target_per_sec"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(steps[4]["target_per_sec"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(steps[2]["achieved_per_sec"].get<double>(), 30.0);
  EXPECT_NEAR(steps[3]["p99_total_ms"].get<double>(), 300.0, 3.0);  // 1 % histogram precision
  const Json& bp = w["ramp"]["breaking_point"];
  ASSERT_TRUE(bp.is_object()) << bp.dump();
  EXPECT_EQ(bp["step"], 4);
  EXPECT_DOUBLE_EQ(bp["target_per_sec"].get<double>(), 40.0);
  EXPECT_NE(bp["reason"].get<std::string>().find("p99"), std::string::npos);

  VerdictInputs in = model.verdictInputs();
  EXPECT_TRUE(in.connRateFromRamp);
  EXPECT_DOUBLE_EQ(*in.connRatePerSec, 30.0);  // step 3, the last before the break
  auto v = evaluate(in, defaults(cli::WorkloadKind::CHURN));
  EXPECT_EQ(criterion(v, "conn_rate_per_sec").result, Verdict::FAIL);  // 30 < the default 100
  EXPECT_NE(criterion(v, "conn_rate_per_sec").note.find("breaking point"), std::string::npos);
}

TEST(WorkloadModel, RampWithoutABreakSaysNotReached) {
  RunModel model({"h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "10..20/20s"}, {"churn_ramp_steps", 2}}, 1));
  for (int sec = 1; sec <= 20; ++sec) {
    Interval in;
    in.target = sec <= 10 ? 10 : 20;
    in.attempted = in.succeeded = static_cast<uint32_t>(in.target);
    in.totalUs.assign(in.attempted, 1500);
    model.onLine(churnStats(0, T0 + sec * SEC, in));
  }
  Json w = model.summary(T0 + 21 * SEC, 21, 100)["workload"];
  EXPECT_EQ(w["ramp"]["breaking_point"], "not reached");
  EXPECT_DOUBLE_EQ(w["ramp"]["best_rate_before_break_per_sec"].get<double>(), 20.0);
}

TEST(WorkloadModel, RampStepBelowNinetyPercentOfTargetBreaks) {
  RunModel model({"h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "10..20/20s"}, {"churn_ramp_steps", 2}}, 1));
  for (int sec = 1; sec <= 20; ++sec) {
    Interval in;
    in.target = sec <= 10 ? 10 : 20;
    in.attempted = in.succeeded = sec <= 10 ? 10 : 15;  // 75 % of 20
    in.totalUs.assign(in.attempted, 1500);
    model.onLine(churnStats(0, T0 + sec * SEC, in));
  }
  auto bp = model.workload().breakingPoint();
  ASSERT_TRUE(bp);
  EXPECT_EQ(bp->step, 1u);
  EXPECT_NE(bp->reason.find("90 %"), std::string::npos);
}

TEST(WorkloadModel, TransferFiguresPerDirectionSessionAndAggregate) {
  RunModel model({"h:22", "h:22"});
  model.onLine(runStarted("transfer"));
  using D = wire::TransferDirection;
  // Session 0: 100 MB up in 1 s, then 100 MB down in 2 s; session 1: 100 MB up in 4 s.
  model.onLine(transferRound(0, T0 + 2 * SEC, D::UP, 1, 100'000'000, 1000, 500));
  model.onLine(transferRound(0, T0 + 4 * SEC, D::DOWN, 2, 100'000'000, 2000, 300));
  model.onLine(transferRound(1, T0 + 5 * SEC, D::UP, 1, 100'000'000, 4000, 700));
  model.onLine(eventLine(0, T0 + 5 * SEC, [](wire::Event::Builder e) {
    auto s = e.initTransferStall();
    s.setDirection(D::DOWN);
    s.setRound(3);
    s.setStalledMs(2500);
  }));
  Json s = model.summary(T0 + 6 * SEC, 6, 10);
  Json w = s["workload"];
  ASSERT_EQ(w["name"], "transfer");
  EXPECT_EQ(w["rounds"], 3);
  EXPECT_EQ(w["bytes"], 300'000'000);
  // 300 MB from the first round's start (1 s) to the last's end (5 s).
  EXPECT_DOUBLE_EQ(w["span_secs"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(w["aggregate_mb_per_sec"].get<double>(), 75.0);
  EXPECT_DOUBLE_EQ(w["directions"]["up"]["mb_per_sec_min"].get<double>(), 25.0);
  EXPECT_DOUBLE_EQ(w["directions"]["up"]["mb_per_sec_max"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(w["directions"]["up"]["cpu_secs_per_gb"].get<double>(), 6.0);  // 1.2 s / 0.2 GB
  EXPECT_EQ(w["directions"]["down"]["window_bytes"], 2 << 20);
  EXPECT_EQ(w["directions"]["down"]["write_bytes"], 256 << 10);
  // Session 0: 200 MB over 1..4 s; session 1: 100 MB over 1..5 s.
  EXPECT_DOUBLE_EQ(w["per_session_mb_per_sec"]["min"].get<double>(), 25.0);
  EXPECT_DOUBLE_EQ(w["per_session_mb_per_sec"]["max"].get<double>(), 66.7);
  EXPECT_EQ(w["stalls"]["count"], 1);
  EXPECT_EQ(w["stalls"]["max_ms"], 2500);
  EXPECT_EQ(w["corrupt_rounds"], 0);

  auto v = evaluate(model.verdictInputs(), defaults(cli::WorkloadKind::TRANSFER));
  EXPECT_EQ(criterion(v, "throughput_mbps").result, Verdict::PASS);  // 75 >= 50
  EXPECT_EQ(criterion(v, "corrupt_rounds").result, Verdict::PASS);
  EXPECT_FALSE(hasCriterion(v, "conn_rate_per_sec"));
  EXPECT_EQ(model.workloadStatus().rfind("transfer ", 0), 0u);
}

TEST(WorkloadModel, ACorruptRoundFailsTheVerdictAndIsNamed) {
  RunModel model({"h:22"});
  model.onLine(runStarted("transfer", Json::object(), 1));
  model.onLine(transferRound(0, T0 + 2 * SEC, wire::TransferDirection::UP, 1, 100'000'000, 1000, 500));
  model.onLine(eventLine(0, T0 + 3 * SEC, [](wire::Event::Builder e) {
    auto c = e.initTransferCorrupt();
    c.setDirection(wire::TransferDirection::DOWN);
    c.setRound(2);
    c.setBytes(100'000'000);
    c.setLocalSha256("aa");
    c.setRemoteSha256("bb");
  }));
  model.onLine(eventLine(0, T0 + 4 * SEC, [](wire::Event::Builder e) {
    auto f = e.initTransferError();
    f.setCategory(wire::FailureCategory::PROTOCOL);
    f.setMessage("channel closed mid-round");
  }));
  Json w = model.summary(T0 + 5 * SEC, 5, 10)["workload"];
  EXPECT_EQ(w["corrupt_rounds"], 1);
  EXPECT_EQ(w["first_corrupt"]["round"], 2);
  EXPECT_EQ(w["first_corrupt"]["remote_sha256"], "bb");
  EXPECT_EQ(w["errors"]["count"], 1);
  EXPECT_NE(w["errors"]["first"].get<std::string>().find("channel closed mid-round"), std::string::npos);
  auto v = evaluate(model.verdictInputs(), defaults(cli::WorkloadKind::TRANSFER));
  EXPECT_EQ(criterion(v, "corrupt_rounds").result, Verdict::FAIL);
  EXPECT_FALSE(allPassed(v));
}

TEST(WorkloadModel, EchoLatencyMergesEveryCyclesValues) {
  RunModel model({"h:22"});
  model.onLine(runStarted("", Json::object(), 1));  // a log from before --workload: pty
  LatencyHistogram all;
  for (int cycle = 1; cycle <= 30; ++cycle) {
    std::vector<uint32_t> echo = {static_cast<uint32_t>(300 + cycle), static_cast<uint32_t>(900 + 50 * cycle), 450};
    for (auto v : echo) all.record(v);
    model.onLine(eventLine(0, T0 + cycle * SEC, [&](wire::Event::Builder e) {
      auto p = e.initPtyCycle();
      p.setCycle(static_cast<uint32_t>(cycle));
      auto l = p.initEchoUs(static_cast<unsigned>(echo.size()));
      for (unsigned i = 0; i < echo.size(); ++i) l.set(i, echo[i]);
    }));
  }
  Json w = model.summary(T0 + 31 * SEC, 31, 10)["workload"];
  ASSERT_EQ(w["name"], "pty");
  EXPECT_EQ(w["echo"]["n"], 90);
  EXPECT_DOUBLE_EQ(w["echo"]["p99_ms"].get<double>(),
                   std::round(static_cast<double>(all.valueAtPercentile(99)) / 10.0) / 100.0);
  EXPECT_DOUBLE_EQ(w["echo"]["max_ms"].get<double>(), std::round(static_cast<double>(all.max()) / 10.0) / 100.0);
  EXPECT_EQ(model.workloadStatus().rfind("echo p99 ", 0), 0u);
  // The table and the HTML show it.
  std::string md = report::workloadMarkdown("r1", w);
  EXPECT_NE(md.find("**Keystroke echo r1**"), std::string::npos) << md;
  EXPECT_NE(md.find("| echo | 90 |"), std::string::npos) << md;
}

namespace {

// One session's PTY cycles and exec polls as a --log-detail full log has
// them: a pty_cycle and an exec_poll line each, and the same cycles and
// polls in one pty_stats and one exec_poll_stats line (the agent's own
// rollups, session_agent/workloads/rollup.h).
void feedCyclesBothWays(RunModel& model, uint32_t cycles, uint32_t polls, bool withRollups) {
  agent::PtyRollup pty;
  agent::ExecPollRollup poll;
  for (uint32_t n = 1; n <= cycles; ++n) {
    agent::PtyCycleResult c;
    c.cycle = n;
    c.lines = 20;
    c.bytes = 480;
    c.us = 2000;
    c.echoUs = {400 + n};
    pty.add(c, 20);
    model.onLine(eventLine(0, T0 + n * SEC, [&](wire::Event::Builder e) {
      auto p = e.initPtyCycle();
      p.setCycle(n);
      p.setLines(20);
      p.setBytes(480);
      p.initEchoUs(1).set(0, 400 + n);
    }));
  }
  for (uint32_t n = 1; n <= polls; ++n) {
    poll.add(5000, 3000, 10, 20, 30);
    model.onLine(eventLine(0, T0 + n * SEC, [&](wire::Event::Builder e) { e.initExecPoll().setBytes(3000); }));
  }
  if (!withRollups) return;
  model.onLine(eventLine(0, T0 + 60 * SEC, [&](wire::Event::Builder e) { pty.reportAndReset(e, 60'000); }));
  model.onLine(eventLine(0, T0 + 60 * SEC, [&](wire::Event::Builder e) { poll.reportAndReset(e, 60'000); }));
}

}  // namespace

TEST(WorkloadModel, AFullLogCountsCyclesPollsAndEchoesFromItsRollupsOnly) {
  RunModel model({"h:22"});
  model.onLine(runStarted("pty", Json{{"log_detail", "full"}, {"rollup_secs", 60}}, 1));
  model.onLine(eventLine(0, T0, [](wire::Event::Builder e) { e.initConnected(); }));
  feedCyclesBothWays(model, 40, 6, true);
  Json s = model.summary(T0 + 61 * SEC, 61, 50);
  EXPECT_EQ(s["per_session"][0]["pty_cycles"], 40);
  EXPECT_EQ(s["per_session"][0]["exec_polls"], 6);
  EXPECT_EQ(model.session(0).ptyBytes, 40u * 480);
  EXPECT_EQ(s["workload"]["echo"]["n"], 40);
}

TEST(WorkloadModel, ARollupLogWithoutPerCycleLinesCountsTheSame) {
  RunModel model({"h:22"});
  model.onLine(runStarted("pty", Json{{"log_detail", "rollup"}, {"rollup_secs", 60}}, 1));
  model.onLine(eventLine(0, T0, [](wire::Event::Builder e) { e.initConnected(); }));
  agent::PtyRollup pty;
  for (uint32_t n = 1; n <= 40; ++n) {
    agent::PtyCycleResult c;
    c.cycle = n;
    c.lines = 20;
    c.bytes = 480;
    c.echoUs = {400 + n};
    pty.add(c, 20);
    if (n % 20 == 0) {  // two intervals
      model.onLine(eventLine(0, T0 + n * SEC, [&](wire::Event::Builder e) { pty.reportAndReset(e, 20'000); }));
    }
  }
  Json s = model.summary(T0 + 41 * SEC, 41, 5);
  EXPECT_EQ(s["per_session"][0]["pty_cycles"], 40);
  EXPECT_EQ(model.session(0).ptyBytes, 40u * 480);
  EXPECT_EQ(s["workload"]["echo"]["n"], 40);
}

TEST(WorkloadModel, ALogFromBeforeRollupsCountsItsPerCycleLines) {
  RunModel model({"h:22"});
  model.onLine(runStarted("pty", Json::object(), 1));  // no log_detail: per-cycle lines only
  model.onLine(eventLine(0, T0, [](wire::Event::Builder e) { e.initConnected(); }));
  feedCyclesBothWays(model, 12, 3, false);
  Json s = model.summary(T0 + 13 * SEC, 13, 20);
  EXPECT_EQ(s["per_session"][0]["pty_cycles"], 12);
  EXPECT_EQ(s["per_session"][0]["exec_polls"], 3);
  EXPECT_EQ(s["workload"]["echo"]["n"], 12);
}

TEST(WorkloadModel, APtyRunsSummaryIsUnchangedButForTheWorkloadObject) {
  RunModel model({"h:22"});
  model.onLine(runStarted("pty", Json::object(), 1));
  model.onLine(eventLine(0, T0 + SEC, [](wire::Event::Builder e) { e.initConnected(); }));
  Json s = model.summary(T0 + 2 * SEC, 2, 3);
  EXPECT_EQ(s["workload"], (Json{{"name", "pty"}, {"echo", nullptr}}));
  EXPECT_EQ(s["abnormal_ends"], 0);
  auto v = evaluate(model.verdictInputs(), defaults(cli::WorkloadKind::PTY));
  // the predecessor's five criteria, the three leak criteria and sampling coverage, no more
  EXPECT_EQ(v.size(), 9u);
  for (size_t i = 5; i < v.size(); ++i) EXPECT_EQ(v[i].result, Verdict::NA) << v[i].name << ": too short to judge";
  EXPECT_EQ(model.workloadStatus(), "");
}

TEST(WorkloadModel, SeriesStayBoundedOverALongRun) {
  RunModel model({"h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "10"}}, 1));
  // Five hours of 1 s reports: 18000 intervals, far more than the plot keeps.
  // Every report is the same but for its time, so the line is built once
  // (a Cap'n Proto event turned into JSON, histograms included, costs more
  // than the model's whole work on it: 28 s under TSan) and re-stamped.
  Interval in;
  in.attempted = in.succeeded = 10;
  in.target = 10;
  in.totalUs = {1000};
  Json line = churnStats(0, T0 + SEC, in);
  ASSERT_EQ(line["ts"], isoTimestamp(T0 + SEC));  // re-stamped the way the supervisor stamps it
  for (int sec = 1; sec <= 18000; ++sec) {
    line["ts"] = isoTimestamp(T0 + sec * SEC);
    model.onLine(line);
  }
  const auto& series = model.workload().churn().series;
  EXPECT_LE(series.size(), BoundedSeries::MAX_POINTS);
  EXPECT_GE(series.widthMs(), 18000);
  auto pts = series.ratePoints(0);
  double total = 0;
  for (size_t b = 0; b < series.size(); ++b) total += series.at(b, 0);
  EXPECT_DOUBLE_EQ(total, 180000.0);  // merging keeps every connection
  EXPECT_NEAR(pts[pts.size() / 2].second, 10.0, 1e-6);
  EXPECT_DOUBLE_EQ(series.valuePoints(2)[3].second, 10.0);  // a target merges as a maximum
}

TEST(WorkloadModel, ChurnStatusLineIsTheLastIntervalsRateAgainstTheTarget) {
  RunModel model({"h:22", "h:22"});
  model.onLine(runStarted("churn", {{"churn_rate", "100"}}));
  for (int sec = 1; sec <= 5; ++sec) {
    for (uint32_t agent = 0; agent < 2; ++agent) {
      Interval in;
      in.attempted = 50;
      in.succeeded = sec == 5 ? 49u : 50u;
      in.totalUs.assign(in.succeeded, 12'000);
      model.onLine(churnStats(agent, T0 + sec * SEC + agent * 1000, in));
    }
  }
  EXPECT_EQ(model.workloadStatus(), "churn 98/100 conn/s, p99 12 ms, 0 failed");
}

TEST(WorkloadModel, TheLiveRunsModelLearnsTheWorkloadFromTheOptions) {
  // The live model never sees run_started: the supervisor tells it.
  cli::Options o;
  o.workload = cli::WorkloadKind::CHURN;
  o.churnRate = cli::ChurnRate{10, 20, 20};
  o.churnRampSteps = 2;
  RunModel model({"h:22", "h:22"});
  model.configureWorkload(o, T0);
  Interval in;
  in.attempted = in.succeeded = 10;
  in.target = 10;
  in.totalUs = {1000};
  model.onLine(churnStats(0, T0 + SEC, in));
  Json s = model.summary(T0 + 2 * SEC, 2, 3);
  EXPECT_EQ(s["workload"]["target"], "10..20/20s");
  EXPECT_EQ(s["workload"]["ramp"]["steps"].size(), 2u);
  EXPECT_EQ(s["abnormal_ends"], 0);  // session 1 never reported: no session to lose

  cli::Options t;
  t.workload = cli::WorkloadKind::TRANSFER;
  RunModel transfer({"h:22"});
  transfer.configureWorkload(t, T0);
  auto v = evaluate(transfer.verdictInputs(), thresholdsOf(t));
  // No round completed: the workload did not work, which is no pass.
  EXPECT_EQ(criterion(v, "throughput_mbps").result, Verdict::FAIL);
  EXPECT_EQ(criterion(v, "throughput_mbps").note, "no round completed");
  EXPECT_EQ(criterion(v, "corrupt_rounds").result, Verdict::PASS);
}

TEST(WorkloadVerdict, ALowTargetIsJudgedAgainstItselfUnlessMinConnRateIsGiven) {
  cli::Options o;
  o.workload = cli::WorkloadKind::CHURN;
  o.churnRate = cli::ChurnRate{20, 20, 0};
  EXPECT_DOUBLE_EQ(thresholdsOf(o).minConnRatePerSec, 19.0);  // 95 % of 20
  o.churnRate = cli::ChurnRate{500, 500, 0};
  EXPECT_DOUBLE_EQ(thresholdsOf(o).minConnRatePerSec, 100.0);
  // A ramp: 95 % of its top.
  o.churnRate = cli::ChurnRate{5, 60, 20};
  EXPECT_DOUBLE_EQ(thresholdsOf(o).minConnRatePerSec, 57.0);
  o.churnRate = cli::ChurnRate{20, 20, 0};
  o.minConnRateGiven = true;
  o.minConnRatePerSec = 100;
  EXPECT_DOUBLE_EQ(thresholdsOf(o).minConnRatePerSec, 100.0);
}

TEST(WorkloadVerdict, CpuIsNotJudgedOnLoadWorkloadsUnlessAsked) {
  VerdictInputs in;
  in.workload = cli::WorkloadKind::CHURN;
  in.meanTotalCpuPct = 80;
  in.connRatePerSec = 100;
  in.connectP99Ms = 20;
  auto v = evaluate(in, defaults(cli::WorkloadKind::CHURN));
  EXPECT_EQ(criterion(v, "cpu_pct").result, Verdict::NA);
  EXPECT_NE(criterion(v, "cpu_pct").note.find("--max-cpu-pct"), std::string::npos);
  EXPECT_EQ(criterion(v, "conn_rate_per_sec").result, Verdict::PASS);
  EXPECT_EQ(criterion(v, "connect_p99_ms").result, Verdict::PASS);
  cli::Options o;
  o.workload = cli::WorkloadKind::CHURN;
  o.maxCpuPctGiven = true;
  EXPECT_EQ(criterion(evaluate(in, thresholdsOf(o)), "cpu_pct").result, Verdict::FAIL);
  in.connectP99Ms = 1500;
  EXPECT_EQ(criterion(evaluate(in, defaults(cli::WorkloadKind::CHURN)), "connect_p99_ms").result, Verdict::FAIL);
}

// ---- what people see: console, result table, HTML ----

namespace {

std::vector<Json> churnRunLines() {
  std::vector<Json> lines;
  lines.push_back(runStarted("churn", {{"churn_rate", "10..30/30s"}, {"churn_ramp_steps", 3}}, 1));
  for (int sec = 1; sec <= 30; ++sec) {
    Interval in;
    in.target = 10.0 * (1 + (sec - 1) / 10);
    in.attempted = static_cast<uint32_t>(in.target);
    in.failed = sec > 20 ? 2 : 0;
    in.succeeded = in.attempted - in.failed;
    if (in.failed) in.failures = {{"reset_before_banner", "kex: connection reset before the banner"}};
    in.totalUs.assign(in.succeeded, 2000 + 100 * static_cast<uint64_t>(sec));
    lines.push_back(churnStats(0, T0 + sec * SEC, in));
  }
  return lines;
}

std::vector<Json> transferRunLines() {
  std::vector<Json> lines;
  lines.push_back(runStarted("transfer", {{"transfer_direction", "both"}}, 2));
  for (uint32_t s = 0; s < 2; ++s) {
    lines.push_back(eventLine(s, T0 + SEC / 2, [](wire::Event::Builder e) { e.initConnected(); }));
  }
  for (uint32_t r = 1; r <= 20; ++r) {
    for (uint32_t s = 0; s < 2; ++s) {
      auto dir = r % 2 ? wire::TransferDirection::UP : wire::TransferDirection::DOWN;
      lines.push_back(transferRound(s, T0 + SEC + r * SEC, dir, r, 64'000'000, 1000 - 100 * s, 200));
    }
  }
  return lines;
}

report::Run runOf(std::vector<Json> lines) {
  auto runs = report::splitRuns("synthetic.jsonl", lines);
  return runs.at(0);
}

}  // namespace

TEST(WorkloadOutput, ResultTableHasAWorkloadSectionOnlyWhenThereAreFigures) {
  report::Input churn{{runOf(churnRunLines())}, {}, {}};
  std::string md = report::markdown(churn);
  EXPECT_NE(md.find("**Churn r1** (target 10..30/30s conn/s)"), std::string::npos) << md;
  EXPECT_NE(md.find("| reset_before_banner | 10 | kex: connection reset before the banner |"), std::string::npos) << md;
  EXPECT_NE(md.find("Breaking point: step 3 (target 30 conn/s): 20 failed"), std::string::npos) << md;

  report::Input transfer{{runOf(transferRunLines())}, {}, {}};
  md = report::markdown(transfer);
  EXPECT_NE(md.find("**Transfer r1**: aggregate"), std::string::npos) << md;
  EXPECT_NE(md.find("| up | 20 |"), std::string::npos) << md;

  std::vector<Json> pty = {runStarted("pty", Json::object(), 1),
                           eventLine(0, T0 + SEC, [](wire::Event::Builder e) { e.initConnected(); })};
  md = report::markdown(report::Input{{runOf(pty)}, {}, {}});
  EXPECT_EQ(md.find("Churn"), std::string::npos);
  EXPECT_EQ(md.find("Transfer"), std::string::npos);
  EXPECT_EQ(md.find("echo"), std::string::npos);
}

TEST(WorkloadOutput, HtmlShowsTheWorkloadsChartsAndOnlyThen) {
  std::string churn = report::renderHtml({runOf(churnRunLines())});
  EXPECT_NE(churn.find("aria-label='churn rate'"), std::string::npos);
  EXPECT_NE(churn.find("aria-label='phase latency'"), std::string::npos);
  EXPECT_NE(churn.find("reset_before_banner"), std::string::npos);
  EXPECT_NE(churn.find("Breaking point"), std::string::npos);
  std::string transfer = report::renderHtml({runOf(transferRunLines())});
  EXPECT_NE(transfer.find("aria-label='transfer rate'"), std::string::npos);
  EXPECT_NE(transfer.find("aria-label='MB/s per session'"), std::string::npos);
  std::vector<Json> pty = {runStarted("pty", Json::object(), 1),
                           eventLine(0, T0 + SEC, [](wire::Event::Builder e) { e.initConnected(); })};
  std::string html = report::renderHtml({runOf(pty)});
  EXPECT_EQ(html.find("Churn"), std::string::npos);
  EXPECT_EQ(html.find("Transfer"), std::string::npos);
  EXPECT_EQ(html.find("echo"), std::string::npos);
}

TEST(WorkloadOutput, ConsoleSummaryPrintsTheWorkloadSection) {
  RunModel model({"h:22"});
  for (const auto& l : churnRunLines()) model.onLine(l);
  Json s = model.summary(T0 + 31 * SEC, 31, 31);
  s["success"] = true;
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  printSummary(f, s, "run.jsonl");
  std::fclose(f);
  std::string text(buf, len);
  std::free(buf);
  EXPECT_NE(text.find("== churn (target 10..30/30s conn/s) =="), std::string::npos) << text;
  EXPECT_NE(text.find("breaking point        step 3"), std::string::npos) << text;
  EXPECT_NE(text.find("reset_before_banner"), std::string::npos) << text;
}

TEST(WorkloadOutput, HtmlShowsTheEchoLatencyOfAPtyRun) {
  std::vector<Json> lines = {runStarted("pty", Json::object(), 1),
                             eventLine(0, T0 + SEC, [](wire::Event::Builder e) { e.initConnected(); })};
  for (uint32_t cycle = 1; cycle <= 5; ++cycle) {
    lines.push_back(eventLine(0, T0 + (1 + cycle) * SEC, [&](wire::Event::Builder e) {
      auto p = e.initPtyCycle();
      p.setCycle(cycle);
      auto l = p.initEchoUs(2);
      l.set(0, 400 * cycle);
      l.set(1, 2000);
    }));
  }
  std::string html = report::renderHtml({runOf(lines)});
  EXPECT_NE(html.find("<h3>Keystroke echo latency</h3>"), std::string::npos);
  EXPECT_NE(html.find("aria-label='echo latency'"), std::string::npos);
}
