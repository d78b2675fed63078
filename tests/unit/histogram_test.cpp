#include "shared/histogram.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>
#include <algorithm>

namespace sshsoak {
namespace {

TEST(LatencyHistogram, EmptyHasNoFigures) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.valueAtPercentile(99), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 256; ++v) h.record(v);
  EXPECT_EQ(h.count(), 256u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 255u);
  EXPECT_EQ(h.valueAtPercentile(50), 127u);
}

TEST(LatencyHistogram, IndexRoundTripsWithinOnePercent) {
  for (uint64_t v : {1ull, 255ull, 256ull, 1000ull, 12345ull, 999999ull, 123456789ull, (1ull << 36)}) {
    size_t i = LatencyHistogram::indexOf(v);
    ASSERT_LT(i, LatencyHistogram::COUNTS_LENGTH);
    EXPECT_LE(LatencyHistogram::lowestEquivalent(i), v);
    EXPECT_GE(LatencyHistogram::highestEquivalent(i), v);
    double width = double(LatencyHistogram::highestEquivalent(i) - LatencyHistogram::lowestEquivalent(i));
    EXPECT_LE(width / double(v), 0.01) << v;
  }
}

TEST(LatencyHistogram, HugeValuesSaturateInsteadOfOverflowing) {
  LatencyHistogram h;
  h.record(~uint64_t{0});
  EXPECT_EQ(h.count(), 1u);
  EXPECT_GE(h.max(), LatencyHistogram::HIGHEST_TRACKABLE);
}

TEST(LatencyHistogram, PercentilesMatchSortedValuesWithinOnePercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(8.0, 1.5);
  std::vector<uint64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    uint64_t exact = values[static_cast<size_t>(p / 100.0 * double(values.size())) - 1];
    uint64_t got = h.valueAtPercentile(p);
    EXPECT_NEAR(double(got), double(exact), double(exact) * 0.011 + 1) << p;
  }
  EXPECT_GE(h.max(), values.back());
}

TEST(LatencyHistogram, MergeOfPartsEqualsTheWhole) {
  LatencyHistogram whole, a, b;
  for (uint64_t v = 1; v < 50000; v += 7) {
    whole.record(v);
    (v % 3 == 0 ? a : b).record(v);
  }
  LatencyHistogram merged;
  merged.merge(a);
  // Through the sparse form, as the wire and the log carry it.
  b.forEachNonZero([&](size_t i, uint64_t c) { ASSERT_TRUE(merged.addAtIndex(i, c)); });
  EXPECT_EQ(merged.count(), whole.count());
  for (double p : {1.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(merged.valueAtPercentile(p), whole.valueAtPercentile(p));
  EXPECT_FALSE(merged.addAtIndex(LatencyHistogram::COUNTS_LENGTH, 1));
}

TEST(LatencyHistogram, CorrectedRecordingFillsTheMissedIntervals) {
  LatencyHistogram h;
  h.recordCorrected(1000, 100);  // 1000, 900, ..., 100
  EXPECT_EQ(h.count(), 10u);
  EXPECT_EQ(h.min(), 100u);
}

}  // namespace
}  // namespace sshsoak
