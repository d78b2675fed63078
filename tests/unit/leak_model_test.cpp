#include "supervisor/analysis/leak_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "supervisor/analysis/run_model.h"

using namespace sshsoak;

namespace {

// 2026-11-23T10:00:00 plus `secs`, as the log writes it.
std::string ts(double secs) {
  long whole = static_cast<long>(secs);
  char buf[64];
  std::snprintf(buf, sizeof buf, "2026-11-23T%02ld:%02ld:%02ld.%06ld+00:00", 10 + whole / 3600, (whole / 60) % 60,
                whole % 60, static_cast<long>((secs - static_cast<double>(whole)) * 1e6));
  return buf;
}

Json runStarted(double warmup = 60, double minFit = 600) {
  return Json{{"ts", ts(0)}, {"event", "run_started"}, {"run_id", "r"}, {"sessions", 1},
              {"warmup_secs", warmup}, {"leak_min_fit_secs", minFit}};
}

struct Proc {
  int64_t pid;
  Json session;  // null: the supervisor
  double rssKb;
  int64_t fds = 10;
  int64_t threads = 2;
  std::string role = "";  // "": the 8 columns of the first resource_sample
};

Json sample(double secs, const std::vector<Proc>& procs, int closeWait = 0, int missed = 0) {
  Json list = Json::array();
  for (const auto& p : procs) {
    Json row = {p.pid, p.session, 0.5, p.rssKb, p.rssKb / 2, p.fds, p.threads, 100};
    if (!p.role.empty()) {
      row.push_back(p.role);
      row.push_back(1);
      row.push_back(0);
    }
    list.push_back(row);
  }
  return Json{{"ts", ts(secs)}, {"event", "resource_sample"}, {"procs", list},
              {"tcp", {{"established", 1}, {"close_wait", closeWait}, {"time_wait", 0}}}, {"missed", missed},
              {"total", {{"cpu_pct", 1.0}, {"rss_kb", 1000}, {"pss_kb", 500}}}};
}

// Feeds through the run model, as the live run and `report` do.
void feedAll(RunModel& model, const std::vector<Json>& lines) {
  for (const auto& l : lines) model.onLine(l);
}

}  // namespace

TEST(TheilSen, AKnownSlopeAndIntercept) {
  std::vector<std::pair<double, double>> pts;
  for (int i = 0; i < 50; ++i) pts.emplace_back(i, 2.0 * i + 3.0);
  auto f = theilSen(pts);
  ASSERT_TRUE(f);
  EXPECT_DOUBLE_EQ(f->slope, 2.0);
  EXPECT_DOUBLE_EQ(f->intercept, 3.0);
}

TEST(TheilSen, OutliersDoNotTiltIt) {
  std::vector<std::pair<double, double>> pts;
  for (int i = 0; i < 100; ++i) pts.emplace_back(i, 0.5 * i + (i % 10 == 3 ? 1000.0 : 0.0));  // 10 % far off
  auto f = theilSen(pts);
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->slope, 0.5, 0.05);
  EXPECT_NEAR(f->intercept, 0.0, 2.0);
}

TEST(TheilSen, ATransientIsFlatAndAStaircaseIsItsMeanGrowth) {
  std::vector<std::pair<double, double>> spike, stairs;
  for (int i = 0; i < 100; ++i) {
    spike.emplace_back(i, 50.0 + (i >= 40 && i < 45 ? 30.0 : 0.0));  // a reconnect's buffers, freed again
    stairs.emplace_back(i, 10.0 + 5.0 * (i / 10));                    // +5 every 10: 0.5 per step
  }
  EXPECT_NEAR(theilSen(spike)->slope, 0.0, 1e-9);
  EXPECT_NEAR(theilSen(stairs)->slope, 0.5, 0.06);
}

TEST(TheilSen, NoFitWithoutTwoDistinctXs) {
  EXPECT_FALSE(theilSen({}));
  EXPECT_FALSE(theilSen({{1, 2}}));
  EXPECT_FALSE(theilSen({{1, 2}, {1, 5}}));
}

TEST(Downsampler, StaysBoundedAndKeepsTheShape) {
  Downsampler d(256);
  for (int i = 0; i < 100000; ++i) {
    double t = i;
    d.add(LeakPoint{t, t / 100.0, -1, 0, 10 + (i % 1000 == 500 ? 50 : 0), 3, 1});
  }
  auto pts = d.points();
  EXPECT_LE(pts.size(), 257u);
  EXPECT_GE(pts.size(), 128u);
  EXPECT_EQ(d.samples(), 100000u);
  EXPECT_LT(pts.front().t, 500);
  EXPECT_GT(pts.back().t, 99000);
  for (const auto& p : pts) {
    EXPECT_NEAR(p.rssMb, p.t / 100.0, 1e-6) << "a bin's mean stays on the line";
    EXPECT_EQ(p.fds, 10) << "a bin keeps the floor of its fds, not a transient";
  }
  uint64_t n = 0;
  for (const auto& p : pts) n += p.n;
  EXPECT_EQ(n, 100000u) << "every sample is in one bin";
}

TEST(LeakModel, ALeakingAgentIsTheWorstAndAFlatSupervisorIsNot) {
  RunModel model;
  std::vector<Json> lines{runStarted()};
  for (int i = 0; i <= 720; ++i) {  // 2 h every 10 s
    double t = i * 10.0;
    lines.push_back(sample(t, {{1, nullptr, 20000.0 + (i % 7) * 50, 12, 3, "supervisor"},
                               {100, 0, 8000.0 + t / 3600.0 * 10 * 1024, 10 + i / 100, 2, "agent"}}, 2));
  }
  feedAll(model, lines);
  VerdictInputs in = model.verdictInputs();
  ASSERT_TRUE(in.memorySlopeMbPerH) << in.leakNa;
  EXPECT_NEAR(*in.memorySlopeMbPerH, 10.0, 0.05);
  EXPECT_NE(in.memorySlopeWho.find("agent 0 (pid 100)"), std::string::npos) << in.memorySlopeWho;
  EXPECT_NE(in.memorySlopeWho.find("PSS slope 5"), std::string::npos) << in.memorySlopeWho;
  ASSERT_TRUE(in.fdGrowth);
  EXPECT_EQ(*in.fdGrowth, 6);  // fds 10 -> 17 over the run: the floor of the last tenth over the first's
  EXPECT_EQ(in.closeWaitSockets, 2u);
  EXPECT_EQ(in.samplesTaken, 721u);
  bool sawSupervisor = false;
  for (const auto& p : model.leaks().processes()) {
    if (p.role != "supervisor") continue;
    sawSupervisor = true;
    ASSERT_TRUE(p.rss);
    EXPECT_NEAR(p.rss->slope, 0.0, 0.1);
    EXPECT_EQ(*p.fdGrowth, 0);
  }
  EXPECT_TRUE(sawSupervisor);

  auto v = evaluate(in, Thresholds{});
  for (const auto& c : v) {
    if (c.name == "memory_slope_mb_per_h" || c.name == "fd_growth" || c.name == "close_wait_sockets") {
      EXPECT_EQ(c.result, Verdict::FAIL) << c.name;
    }
  }
  Json j = model.leaksJson();
  EXPECT_EQ(j["processes"][0]["pid"], 100);
  EXPECT_EQ(j["processes"][0]["role"], "agent");
  EXPECT_EQ(j["processes_total"], 2);
  EXPECT_EQ(j["worst_rss_slope"]["mb_per_h"], *in.memorySlopeMbPerH);
  EXPECT_TRUE(j["na"].is_null());
}

TEST(LeakModel, AFlatRunPassesAndATransientFdDoesNotCount) {
  RunModel model;
  std::vector<Json> lines{runStarted()};
  for (int i = 0; i <= 360; ++i) {
    bool reconnecting = i % 60 == 30;  // a reconnect's sockets for one sample
    lines.push_back(sample(i * 10.0, {{100, 0, 8000.0 + (i % 3) * 100, reconnecting ? 14 : 10, 2, "agent"}}));
  }
  feedAll(model, lines);
  VerdictInputs in = model.verdictInputs();
  ASSERT_TRUE(in.memorySlopeMbPerH);
  EXPECT_LT(std::fabs(*in.memorySlopeMbPerH), 0.2);
  EXPECT_EQ(in.fdGrowth, 0);
  for (const auto& c : evaluate(in, Thresholds{})) {
    if (c.name == "memory_slope_mb_per_h" || c.name == "fd_growth" || c.name == "close_wait_sockets") {
      EXPECT_EQ(c.result, Verdict::PASS) << c.name << ": " << c.note;
    }
  }
}

TEST(LeakModel, AShortRunIsNotApplicableWithTheReason) {
  RunModel model;
  std::vector<Json> lines{runStarted(60, 600)};
  for (int i = 0; i <= 30; ++i) lines.push_back(sample(i * 10.0, {{100, 0, 8000.0 + i * 500, 10, 2, "agent"}}));
  feedAll(model, lines);
  VerdictInputs in = model.verdictInputs();
  EXPECT_FALSE(in.memorySlopeMbPerH);
  EXPECT_NE(in.leakNa.find("--leak-min-fit-secs"), std::string::npos) << in.leakNa;
  EXPECT_NE(in.leakNa.find("agent 0 (pid 100)"), std::string::npos) << in.leakNa;
  for (const auto& c : evaluate(in, Thresholds{})) {
    if (c.name == "memory_slope_mb_per_h") {
      EXPECT_EQ(c.result, Verdict::NA);
      EXPECT_NE(c.note.find("--leak-min-fit-secs"), std::string::npos);
    }
  }
}

TEST(LeakModel, TheOldEightColumnsAreReadAndTheWarmUpComesFromTheRunsLength) {
  RunModel model;
  // No warmup_secs (an older log): 60 s, capped at half the run.
  model.onLine(Json{{"ts", ts(0)}, {"event", "run_started"}, {"sessions", 1}, {"duration_secs", 100}});
  for (int i = 0; i <= 10; ++i) model.onLine(sample(i * 10.0, {{7, nullptr, 1000, 5, 1, ""}, {8, 0, 2000, 5, 1, ""}}));
  EXPECT_DOUBLE_EQ(model.leaks().warmupSecs(), 50.0);
  auto procs = model.leaks().processes();
  ASSERT_EQ(procs.size(), 2u);
  for (const auto& p : procs) {
    EXPECT_EQ(p.role, p.pid == 7 ? "supervisor" : "agent");
    EXPECT_EQ(p.samples, 6u) << "the samples from 50 s on";
  }
}

TEST(LeakModel, AnAgentHoldingFdsAfterAReconnectIsFdGrowth) {
  RunModel model;
  model.onLine(runStarted());
  model.onLine(Json{{"ts", ts(1)}, {"event", "agent_started"}, {"session_id", 3}, {"pid", 4242}});
  model.onLine(Json{{"ts", ts(2)}, {"event", "connected"}, {"session_id", 3}, {"fds", 9}});
  model.onLine(Json{{"ts", ts(50)}, {"event", "reconnected"}, {"session_id", 3}, {"fds", 10}});
  model.onLine(Json{{"ts", ts(90)}, {"event", "reconnected"}, {"session_id", 3}, {"fds", 12}});
  model.onLine(Json{{"ts", ts(95)}, {"event", "reconnected"}, {"session_id", 3}, {"fds", 9}});
  VerdictInputs in = model.verdictInputs();
  ASSERT_TRUE(in.fdGrowth);
  EXPECT_EQ(*in.fdGrowth, 3);
  EXPECT_NE(in.fdGrowthWho.find("agent 3 (pid 4242)"), std::string::npos) << in.fdGrowthWho;
  EXPECT_NE(in.fdGrowthWho.find("reconnect"), std::string::npos);
  // A restarted agent is a new baseline.
  model.onLine(Json{{"ts", ts(100)}, {"event", "agent_started"}, {"session_id", 4}, {"pid", 5000}});
  model.onLine(Json{{"ts", ts(101)}, {"event", "connected"}, {"session_id", 4}, {"fds", 20}});
  model.onLine(Json{{"ts", ts(150)}, {"event", "reconnected"}, {"session_id", 4}, {"fds", 20}});
  EXPECT_EQ(*model.verdictInputs().fdGrowth, 3);
}

TEST(LeakModel, ThousandsOfProcessesComingAndGoingStayBounded) {
  LeakModel m;
  m.configure(0, 60, 0);
  // 5000 short-lived agents, each sampled 20 times then gone, 10 at a time.
  int64_t ns = 0;
  for (int gen = 0; gen < 500; ++gen) {
    for (int s = 0; s < 23; ++s) {
      std::vector<Proc> procs{{1, nullptr, 20000, 10, 2, "supervisor"}};
      if (s < 20) {
        for (int k = 0; k < 10; ++k) procs.push_back({1000 + gen * 10 + k, k, 8000.0 + s * (k == 0 && gen == 7 ? 900 : 1), 10, 2, "agent"});
      }
      Json line = sample(0, procs);
      ns += 10'000'000'000;
      m.onLine(line, "resource_sample", ns);
    }
  }
  auto procs = m.processes();
  EXPECT_LE(procs.size(), LeakModel::GONE_KEPT + 11);
  size_t withSeries = 0;
  for (const auto& p : procs) withSeries += p.series.empty() ? 0 : 1;
  EXPECT_LE(withSeries, LeakModel::SERIES_KEPT + 11);
  VerdictInputs in;
  m.fill(in);
  ASSERT_TRUE(in.memorySlopeMbPerH);
  EXPECT_NE(in.memorySlopeWho.find("pid 1070"), std::string::npos) << "the worst gone agent is kept: " << in.memorySlopeWho;
  Json j = m.json();
  EXPECT_LE(j["processes"].size(), LeakModel::SERIES_KEPT);
  EXPECT_EQ(j["processes_total"], 5001);
  EXPECT_EQ(j["rss_slope_by_role"]["agent"]["fitted"], LeakModel::GONE_KEPT) << "the distribution covers every agent kept";
}

// A short fit sees one heap step of the supervisor (a malloc top pad, 128 KiB)
// as a steep slope; a rise under the noise floor over the span is judged flat,
// a real leak of the same span is not.
TEST(LeakModel, OneHeapStepInAShortFitIsNoiseAndARealLeakIsNot) {
  auto run = [](double stepKb, double perSampleKb) {
    RunModel model;
    std::vector<Json> lines{runStarted(10, 40)};
    for (int i = 0; i <= 40; ++i) {
      double t = i * 2.0;
      double rss = 7500 + (t >= 50 ? stepKb : 0) + perSampleKb * i;
      lines.push_back(sample(t, {{1, nullptr, rss, 10, 2, "supervisor"}, {100, 0, 8000, 6, 1, "agent"}}));
    }
    feedAll(model, lines);
    return model.verdictInputs();
  };
  VerdictInputs step = run(128, 0);
  ASSERT_TRUE(step.memorySlopeMbPerH);
  EXPECT_EQ(*step.memorySlopeMbPerH, 0.0) << step.memorySlopeWho;
  EXPECT_NE(step.memorySlopeWho.find("noise"), std::string::npos) << step.memorySlopeWho;
  VerdictInputs leak = run(0, 64);  // 64 KiB a sample: 2.5 MB over the fit
  ASSERT_TRUE(leak.memorySlopeMbPerH);
  EXPECT_GT(*leak.memorySlopeMbPerH, 50.0) << leak.memorySlopeWho;
  EXPECT_NE(leak.memorySlopeWho.find("supervisor"), std::string::npos) << leak.memorySlopeWho;
}

// A process that comes and goes before it could be fitted (a reconnect's
// sshd) is counted, not kept: thousands an hour cost nothing.
TEST(LeakModel, ProcessesGoneBeforeAFitAreCountedNotKept) {
  LeakModel m;
  m.configure(0, 60, 0);
  int64_t ns = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<Proc> procs{{1, nullptr, 20000, 10, 2, "supervisor"}, {5000 + i, nullptr, 3000, 8, 1, "sshd"}};
    ns += 10'000'000'000;
    m.onLine(sample(0, procs), "resource_sample", ns);
  }
  EXPECT_LE(m.processes().size(), 5u);
  EXPECT_GE(m.json()["processes_gone_unfitted"].get<uint64_t>(), 2990u);
}
