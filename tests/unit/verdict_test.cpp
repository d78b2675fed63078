#include "supervisor/analysis/verdict.h"

#include <gtest/gtest.h>

#include "supervisor/cli.h"

using namespace sshsoak;

namespace {

const Criterion& find(const std::vector<Criterion>& v, const std::string& name) {
  for (const auto& c : v) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no criterion " + name);
}

// The thresholds a run gets without --max-.../--min-... flags: the design's.
Thresholds designDefaults() { return thresholdsOf(cli::Options{}); }

VerdictInputs healthy() {
  VerdictInputs in;
  in.abnormalEnds = 0;
  in.interrupts = 10;
  in.reconnects = 10;
  in.reconnectP95Ms = 1200;
  in.peakTotalPssKb = 50 * 1024;
  in.peakTotalRssKb = 90 * 1024;
  in.meanTotalCpuPct = 0.7;
  in.memorySlopeMbPerH = 0.2;
  in.memorySlopeWho = "agent 3 (pid 1234); its PSS slope 0.1 MB/h";
  in.fdGrowth = 0;
  in.fdGrowthWho = "supervisor (pid 1), after warm-up";
  in.closeWaitSockets = 0;
  in.longestUnsampledMs = 1000;
  in.unsampledFrom = "2026-11-26T05:00:00.000000+00:00";
  return in;
}

}  // namespace

TEST(Verdict, AllPassWithTheDesignDefaults) {
  auto v = evaluate(healthy(), designDefaults());
  ASSERT_EQ(v.size(), 9u);
  for (const auto& c : v) EXPECT_EQ(c.result, Verdict::PASS) << c.name;
  EXPECT_TRUE(allPassed(v));
  EXPECT_DOUBLE_EQ(*find(v, "memory_mb").measured, 50.0);  // PSS, not RSS
  EXPECT_NE(find(v, "memory_mb").note.find("RSS 90"), std::string::npos);
}

TEST(Verdict, EachCriterionFailsOnItsOwn) {
  auto check = [](auto mutate, const std::string& name) {
    VerdictInputs in = healthy();
    mutate(in);
    auto v = evaluate(in, designDefaults());
    EXPECT_FALSE(allPassed(v)) << name;
    for (const auto& c : v) EXPECT_EQ(c.result, c.name == name ? Verdict::FAIL : Verdict::PASS) << name << "/" << c.name;
  };
  check([](VerdictInputs& in) { in.abnormalEnds = 1; }, "abnormal_ends");
  check([](VerdictInputs& in) { in.reconnects = 8; }, "reconnect_rate_pct");  // 80 %
  check([](VerdictInputs& in) { in.reconnectP95Ms = 15001; }, "reconnect_p95_ms");
  check([](VerdictInputs& in) { in.peakTotalPssKb = 200 * 1024; }, "memory_mb");  // strictly below
  check([](VerdictInputs& in) { in.meanTotalCpuPct = 5.0; }, "cpu_pct");
  check([](VerdictInputs& in) { in.memorySlopeMbPerH = 1.0; }, "memory_slope_mb_per_h");  // strictly below
  check([](VerdictInputs& in) { in.fdGrowth = 1; }, "fd_growth");
  check([](VerdictInputs& in) { in.closeWaitSockets = 1; }, "close_wait_sockets");
  check([](VerdictInputs& in) { in.longestUnsampledMs = 5100; }, "unsampled_secs");
}

TEST(Verdict, ARunNotSampledForAWhileSaysWhenAndFails) {
  VerdictInputs in = healthy();
  in.longestUnsampledMs = 10'000;
  in.unsampledFrom = "2026-11-26T05:00:00.000000+00:00";
  auto v = evaluate(in, designDefaults());
  const Criterion& c = find(v, "unsampled_secs");
  EXPECT_EQ(c.result, Verdict::FAIL);
  EXPECT_DOUBLE_EQ(*c.measured, 10.0);
  EXPECT_NE(c.note.find("not sampled for 10 s (from 2026-11-26T05:00:00.000000+00:00 to 2026-11-26T05:00:10.000000+00:00)"),
            std::string::npos)
      << c.note;
  // 3 sample intervals, and never below 5 s.
  cli::Options slow;
  slow.sampleIntervalSecs = 4;
  EXPECT_DOUBLE_EQ(thresholdsOf(slow).maxUnsampledSecs, 12.0);
  EXPECT_DOUBLE_EQ(designDefaults().maxUnsampledSecs, 5.0);
  // Fewer than two samples: nothing to judge.
  in.longestUnsampledMs.reset();
  EXPECT_EQ(find(evaluate(in, designDefaults()), "unsampled_secs").result, Verdict::NA);
}

TEST(Verdict, TheLeakCriteriaNameTheProcessAndSayWhatIsJudged) {
  auto v = evaluate(healthy(), designDefaults());
  const Criterion& m = find(v, "memory_slope_mb_per_h");
  EXPECT_EQ(m.result, Verdict::PASS);
  EXPECT_NE(m.note.find("agent 3 (pid 1234)"), std::string::npos) << m.note;
  EXPECT_NE(m.note.find("PSS slope 0.1"), std::string::npos) << m.note;
  EXPECT_NE(m.note.find("judged on anonymous memory"), std::string::npos) << m.note;
  EXPECT_NE(find(v, "fd_growth").note.find("supervisor (pid 1)"), std::string::npos);
}

TEST(Verdict, AShortRunJudgesTheLeaksNotApplicableAndSaysWhy) {
  VerdictInputs in = healthy();
  in.memorySlopeMbPerH.reset();
  in.fdGrowth.reset();
  in.closeWaitSockets.reset();
  in.leakNa = "too short to fit: agent 0 (pid 5): 3 samples over 20 s";
  auto v = evaluate(in, designDefaults());
  for (const char* n : {"memory_slope_mb_per_h", "fd_growth", "close_wait_sockets"}) {
    EXPECT_EQ(find(v, n).result, Verdict::NA) << n;
  }
  EXPECT_NE(find(v, "memory_slope_mb_per_h").note.find("3 samples over 20 s"), std::string::npos);
  EXPECT_TRUE(allPassed(v));
}

TEST(Verdict, MissedSamplesAreSaid) {
  VerdictInputs in = healthy();
  in.samplesTaken = 90;
  in.samplesMissed = 10;
  auto v = evaluate(in, designDefaults());
  EXPECT_NE(find(v, "cpu_pct").note.find("missed 10 of 100 samples"), std::string::npos) << find(v, "cpu_pct").note;
  EXPECT_NE(find(v, "memory_slope_mb_per_h").note.find("missed 10"), std::string::npos);
}

TEST(Verdict, MemoryAndCpuThresholdsScaleWithTheSessionsUnlessGiven) {
  cli::Options o;
  o.sessions = 1000;
  Thresholds t = thresholdsOf(o);
  EXPECT_DOUBLE_EQ(t.maxMemoryMb, 20000.0);
  EXPECT_DOUBLE_EQ(t.maxCpuPct, 500.0);
  auto v = evaluate(healthy(), t);
  EXPECT_NE(find(v, "memory_mb").note.find("scaled to 1000 sessions"), std::string::npos);
  EXPECT_NE(find(v, "cpu_pct").note.find("scaled to 1000 sessions"), std::string::npos);
  o.maxMemoryMbGiven = true;
  o.maxMemoryMb = 300;
  t = thresholdsOf(o);
  EXPECT_DOUBLE_EQ(t.maxMemoryMb, 300.0);
  EXPECT_DOUBLE_EQ(t.maxCpuPct, 500.0);
  EXPECT_EQ(find(evaluate(healthy(), t), "memory_mb").note.find("scaled"), std::string::npos);
  cli::Options few;
  few.sessions = 5;
  EXPECT_DOUBLE_EQ(thresholdsOf(few).maxMemoryMb, 200.0);
  EXPECT_DOUBLE_EQ(thresholdsOf(few).maxCpuPct, 5.0);
}

TEST(Verdict, BoundariesThatPass) {
  VerdictInputs in = healthy();
  in.interrupts = 10;
  in.reconnects = 9;  // exactly 90 %
  in.reconnectP95Ms = 15000;
  auto v = evaluate(in, designDefaults());
  EXPECT_EQ(find(v, "reconnect_rate_pct").result, Verdict::PASS);
  EXPECT_DOUBLE_EQ(*find(v, "reconnect_rate_pct").measured, 90.0);
  EXPECT_EQ(find(v, "reconnect_p95_ms").result, Verdict::PASS);
}

TEST(Verdict, NothingToMeasureIsNotApplicableAndDoesNotFail) {
  VerdictInputs in;  // no interrupts, no reconnects, no samples
  auto v = evaluate(in, designDefaults());
  EXPECT_EQ(find(v, "abnormal_ends").result, Verdict::PASS);
  for (const char* n : {"reconnect_rate_pct", "reconnect_p95_ms", "memory_mb", "cpu_pct", "memory_slope_mb_per_h",
                        "fd_growth", "close_wait_sockets"}) {
    EXPECT_EQ(find(v, n).result, Verdict::NA) << n;
    EXPECT_FALSE(find(v, n).measured.has_value()) << n;
  }
  EXPECT_TRUE(allPassed(v));
  Json j = verdictJson(v);
  EXPECT_EQ(j[1]["result"], "n/a");
  EXPECT_EQ(j[1]["measured"], nullptr);
}

TEST(Verdict, InterruptsWithoutAnyReconnectFail) {
  VerdictInputs in = healthy();
  in.reconnects = 0;
  in.reconnectP95Ms.reset();
  auto v = evaluate(in, designDefaults());
  EXPECT_EQ(find(v, "reconnect_rate_pct").result, Verdict::FAIL);
  EXPECT_EQ(find(v, "reconnect_p95_ms").result, Verdict::NA);
  EXPECT_FALSE(allPassed(v));
}

TEST(Verdict, TheDesignDefaultsComeFromTheCommandLinesOptions) {
  Thresholds t = designDefaults();
  EXPECT_EQ(t.maxAbnormalEnds, 0u);
  EXPECT_DOUBLE_EQ(t.minReconnectRatePct, 90.0);
  EXPECT_EQ(t.maxReconnectP95Ms, 15000u);
  EXPECT_DOUBLE_EQ(t.maxMemoryMb, 200.0);
  EXPECT_DOUBLE_EQ(t.maxCpuPct, 5.0);
}

TEST(Verdict, ThresholdsAreConfigurable) {
  VerdictInputs in = healthy();
  in.abnormalEnds = 2;
  Thresholds t = designDefaults();
  t.maxAbnormalEnds = 2;
  t.maxCpuPct = 0.5;
  auto v = evaluate(in, t);
  EXPECT_EQ(find(v, "abnormal_ends").result, Verdict::PASS);
  EXPECT_EQ(find(v, "cpu_pct").result, Verdict::FAIL);
  Json j = verdictJson(v);
  EXPECT_EQ(j[0]["criterion"], "abnormal_ends");
  EXPECT_EQ(j[0]["threshold"], 2.0);
  EXPECT_EQ(j[4]["result"], "fail");
}
