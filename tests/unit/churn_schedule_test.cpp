// The churn target over a run: the step rule the supervisor reports and the
// agents pace by, and its integral (where start number i falls).
#include "shared/churn_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "supervisor/cli.h"

using namespace sshsoak;

TEST(ChurnRamp, ConstantRateStartsEvenly) {
  ChurnRamp r{100, 100, 0, 10};
  EXPECT_EQ(r.pieces(), 1u);
  EXPECT_DOUBLE_EQ(r.targetAt(0), 100);
  EXPECT_DOUBLE_EQ(r.targetAt(1'000'000), 100);
  EXPECT_DOUBLE_EQ(r.startsBy(1000), 100);
  EXPECT_DOUBLE_EQ(r.startsBy(-5), 0);
  EXPECT_DOUBLE_EQ(r.timeOfStart(0), 0);
  EXPECT_DOUBLE_EQ(r.timeOfStart(1), 10);
  EXPECT_DOUBLE_EQ(r.timeOfStart(250), 2500);
}

TEST(ChurnRamp, ZeroRateNeverStarts) {
  ChurnRamp r{0, 0, 0, 1};
  EXPECT_DOUBLE_EQ(r.startsBy(60'000), 0);
  EXPECT_DOUBLE_EQ(r.timeOfStart(0), 0);
  EXPECT_TRUE(std::isinf(r.timeOfStart(1)));
}

// One definition: the command line's ChurnRate reports what the agents pace by.
TEST(ChurnRamp, TheCommandLineUsesTheSameStepRule) {
  cli::ChurnRate flag{10, 500, 60};
  for (uint32_t steps : {1u, 2u, 7u, 10u}) {
    ChurnRamp r{10, 500, 60'000, steps};
    for (int64_t ms = -10; ms <= 70'000; ms += 250) {
      ASSERT_DOUBLE_EQ(flag.targetAt(ms, steps), r.targetAt(ms)) << steps << " steps at " << ms << " ms";
    }
  }
}

TEST(ChurnRamp, TenStepsFromTenToFiveHundredOverAMinute) {
  ChurnRamp r{10, 500, 60'000, 10};
  EXPECT_DOUBLE_EQ(r.targetAt(0), 10);
  EXPECT_DOUBLE_EQ(r.targetAt(5'999), 10);
  EXPECT_NEAR(r.targetAt(6'000), 10 + 490.0 / 9, 1e-9);
  EXPECT_DOUBLE_EQ(r.targetAt(54'000), 500);  // the last step already runs at the end rate
  EXPECT_DOUBLE_EQ(r.targetAt(600'000), 500);
  EXPECT_EQ(r.pieces(), 11u);
  // Each piece's rate is the target inside it.
  for (uint32_t p = 0; p < r.pieces(); ++p) {
    auto mid = static_cast<int64_t>(r.pieceStartMs(p) + 1);
    EXPECT_DOUBLE_EQ(r.pieceRate(p), r.targetAt(mid)) << "piece " << p;
  }
  // Over the ramp the steps average (10 + 500) / 2.
  EXPECT_NEAR(r.startsBy(60'000), 60 * 255.0, 1e-6);
  EXPECT_NEAR(r.startsBy(61'000), 60 * 255.0 + 500, 1e-6);
  // The first step: 10/s for 6 s.
  EXPECT_NEAR(r.startsBy(6'000), 60, 1e-9);
}

TEST(ChurnRamp, TimeOfStartInvertsStartsBy) {
  for (ChurnRamp r : {ChurnRamp{10, 500, 60'000, 10}, ChurnRamp{300, 20, 10'000, 3}, ChurnRamp{5, 50, 2'000, 1},
                      ChurnRamp{100, 100, 0, 1}}) {
    double lastMs = -1;
    for (double n = 0; n < 20'000; n += 7.5) {
      double ms = r.timeOfStart(n);
      ASSERT_GE(ms, lastMs) << "start " << n;
      ASSERT_NEAR(r.startsBy(ms), n, 1e-6) << "start " << n;
      lastMs = ms;
    }
  }
}

TEST(ChurnRamp, OneStepHoldsTheStartRateUntilTheRampEnds) {
  ChurnRamp r{5, 50, 2'000, 1};
  EXPECT_DOUBLE_EQ(r.targetAt(1'999), 5);
  EXPECT_DOUBLE_EQ(r.targetAt(2'000), 50);
  EXPECT_NEAR(r.startsBy(2'000), 10, 1e-9);
  EXPECT_NEAR(r.timeOfStart(15), 2'100, 1e-9);
}
