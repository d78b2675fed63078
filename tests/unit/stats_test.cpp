#include "supervisor/analysis/stats.h"

#include <gtest/gtest.h>

using namespace sshsoak;

TEST(Percentile, MatchesThePredecessorsOneLiner) {
  // times.sort(); p50=times[len//2]; p95=times[int(len*0.95)]
  std::vector<int64_t> t = {900, 100, 300, 500, 700, 200, 400, 600, 800, 1000};
  EXPECT_EQ(*percentile(t, 0.50), 600);
  EXPECT_EQ(*percentile(t, 0.95), 1000);
  EXPECT_EQ(*percentile({42}, 0.95), 42);
  EXPECT_FALSE(percentile({}, 0.5).has_value());
}

TEST(Percentile, MaxIsTheLastAndZeroTheFirst) {
  std::vector<int64_t> t = {5, 3, 9};
  EXPECT_EQ(*percentile(t, 1.0), 9);
  EXPECT_EQ(*percentile(t, 0.0), 3);
}

TEST(RatePct, OneDecimalAndNoFigureForNothingToRecover) {
  EXPECT_DOUBLE_EQ(*ratePct(3, 4), 75.0);
  EXPECT_DOUBLE_EQ(*ratePct(2, 3), 66.7);
  EXPECT_DOUBLE_EQ(*ratePct(9, 10), 90.0);
  EXPECT_DOUBLE_EQ(*ratePct(0, 5), 0.0);
  EXPECT_FALSE(ratePct(0, 0).has_value());
}

TEST(FigureText, CountsStayCountsTheRestGetOneDecimal) {
  EXPECT_EQ(figureText(0), "0");
  EXPECT_EQ(figureText(15000), "15000");
  EXPECT_EQ(figureText(7.5), "7.5");
  EXPECT_EQ(figureText(20.44), "20.4");
  EXPECT_EQ(figureText(0.96), "1.0");
}
