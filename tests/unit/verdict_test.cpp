#include "supervisor/analysis/verdict.h"

#include <gtest/gtest.h>

using namespace sshsoak;

namespace {

const Criterion& find(const std::vector<Criterion>& v, const std::string& name) {
  for (const auto& c : v) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no criterion " + name);
}

VerdictInputs healthy() {
  VerdictInputs in;
  in.abnormalEnds = 0;
  in.interrupts = 10;
  in.reconnects = 10;
  in.reconnectP95Ms = 1200;
  in.peakTotalPssKb = 50 * 1024;
  in.peakTotalRssKb = 90 * 1024;
  in.meanTotalCpuPct = 0.7;
  return in;
}

}  // namespace

TEST(Verdict, AllPassWithTheDesignDefaults) {
  auto v = evaluate(healthy(), Thresholds{});
  ASSERT_EQ(v.size(), 5u);
  for (const auto& c : v) EXPECT_EQ(c.result, Verdict::PASS) << c.name;
  EXPECT_TRUE(allPassed(v));
  EXPECT_DOUBLE_EQ(*find(v, "memory_mb").measured, 50.0);  // PSS, not RSS
  EXPECT_NE(find(v, "memory_mb").note.find("RSS 90"), std::string::npos);
}

TEST(Verdict, EachCriterionFailsOnItsOwn) {
  auto check = [](auto mutate, const std::string& name) {
    VerdictInputs in = healthy();
    mutate(in);
    auto v = evaluate(in, Thresholds{});
    EXPECT_FALSE(allPassed(v)) << name;
    for (const auto& c : v) EXPECT_EQ(c.result, c.name == name ? Verdict::FAIL : Verdict::PASS) << name << "/" << c.name;
  };
  check([](VerdictInputs& in) { in.abnormalEnds = 1; }, "abnormal_ends");
  check([](VerdictInputs& in) { in.reconnects = 8; }, "reconnect_rate_pct");  // 80 %
  check([](VerdictInputs& in) { in.reconnectP95Ms = 15001; }, "reconnect_p95_ms");
  check([](VerdictInputs& in) { in.peakTotalPssKb = 200 * 1024; }, "memory_mb");  // strictly below
  check([](VerdictInputs& in) { in.meanTotalCpuPct = 5.0; }, "cpu_pct");
}

TEST(Verdict, BoundariesThatPass) {
  VerdictInputs in = healthy();
  in.interrupts = 10;
  in.reconnects = 9;  // exactly 90 %
  in.reconnectP95Ms = 15000;
  auto v = evaluate(in, Thresholds{});
  EXPECT_EQ(find(v, "reconnect_rate_pct").result, Verdict::PASS);
  EXPECT_DOUBLE_EQ(*find(v, "reconnect_rate_pct").measured, 90.0);
  EXPECT_EQ(find(v, "reconnect_p95_ms").result, Verdict::PASS);
}

TEST(Verdict, NothingToMeasureIsNotApplicableAndDoesNotFail) {
  VerdictInputs in;  // no interrupts, no reconnects, no samples
  auto v = evaluate(in, Thresholds{});
  EXPECT_EQ(find(v, "abnormal_ends").result, Verdict::PASS);
  for (const char* n : {"reconnect_rate_pct", "reconnect_p95_ms", "memory_mb", "cpu_pct"}) {
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
  auto v = evaluate(in, Thresholds{});
  EXPECT_EQ(find(v, "reconnect_rate_pct").result, Verdict::FAIL);
  EXPECT_EQ(find(v, "reconnect_p95_ms").result, Verdict::NA);
  EXPECT_FALSE(allPassed(v));
}

TEST(Verdict, ThresholdsAreConfigurable) {
  VerdictInputs in = healthy();
  in.abnormalEnds = 2;
  Thresholds t;
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
