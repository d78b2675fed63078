#include "session_agent/ssh/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

using namespace sshsoak;

namespace {
constexpr int64_t MS = 1'000'000;
}  // namespace

TEST(Backoff, CeilingDoublesFromAttemptZeroUpToCap) {
  Backoff b({100 * MS, 1000 * MS}, 1);
  EXPECT_EQ(b.ceilingNs(0), 100 * MS);  // attempt counts from 0: first wait <= base
  EXPECT_EQ(b.ceilingNs(1), 200 * MS);
  EXPECT_EQ(b.ceilingNs(2), 400 * MS);
  EXPECT_EQ(b.ceilingNs(3), 800 * MS);
  EXPECT_EQ(b.ceilingNs(4), 1000 * MS);
  EXPECT_EQ(b.ceilingNs(40), 1000 * MS);
}

TEST(Backoff, LargeAttemptsSaturateAtCapWithoutOverflow) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  Backoff b({500 * MS, max}, 2);
  for (uint32_t a : {30u, 33u, 34u, 62u, 63u, 64u, 65u, 1000u, std::numeric_limits<uint32_t>::max()}) {
    const int64_t c = b.ceilingNs(a);
    EXPECT_GT(c, 0) << "attempt " << a;
    EXPECT_LE(c, max) << "attempt " << a;
  }
  EXPECT_EQ(b.ceilingNs(64), max);
  // base * 2^34 still fits, 2^35 does not (500e6 * 2^35 > 2^63 - 1).
  EXPECT_EQ(b.ceilingNs(34), 500 * MS * (int64_t{1} << 34));
  EXPECT_EQ(b.ceilingNs(35), max);

  Backoff d({500 * MS, 8000 * MS}, 3);  // sshsoak's defaults
  EXPECT_EQ(d.ceilingNs(0), 500 * MS);
  EXPECT_EQ(d.ceilingNs(std::numeric_limits<uint32_t>::max()), 8000 * MS);
  const int64_t v = d.nextDelayNs(std::numeric_limits<uint32_t>::max());
  EXPECT_GE(v, 0);
  EXPECT_LE(v, 8000 * MS);
}

TEST(Backoff, DrawsStayInRangeAndCoverIt) {
  Backoff b({100 * MS, 1000 * MS}, 42);
  for (uint32_t attempt = 0; attempt < 8; ++attempt) {
    const int64_t ceiling = b.ceilingNs(attempt);
    constexpr int N = 20'000;
    int buckets[10] = {};
    int64_t lo = ceiling, hi = 0;
    for (int i = 0; i < N; ++i) {
      const int64_t d = b.nextDelayNs(attempt);
      ASSERT_GE(d, 0);
      ASSERT_LE(d, ceiling);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      ++buckets[std::min<int64_t>(9, d * 10 / (ceiling + 1))];
    }
    // Full jitter: the whole [0, ceiling] is used, each tenth roughly equally
    // (expected N/10 = 2000; 1500 is > 10 sigma away, so this never flakes).
    EXPECT_LT(lo, ceiling / 100) << "attempt " << attempt;
    EXPECT_GT(hi, ceiling - ceiling / 100) << "attempt " << attempt;
    for (int k = 0; k < 10; ++k) EXPECT_GT(buckets[k], 1500) << "attempt " << attempt << " tenth " << k;
  }
}

TEST(Backoff, SameSeedRepeatsDifferentSeedsDiffer) {
  Backoff a({100 * MS, 1000 * MS}, 7), a2({100 * MS, 1000 * MS}, 7), b({100 * MS, 1000 * MS}, 8);
  std::vector<int64_t> va, va2, vb;
  for (int i = 0; i < 100; ++i) {
    va.push_back(a.nextDelayNs(3));
    va2.push_back(a2.nextDelayNs(3));
    vb.push_back(b.nextDelayNs(3));
  }
  EXPECT_EQ(va, va2);
  EXPECT_NE(va, vb);
}

TEST(Backoff, SessionSeedsDifferBetweenSessionsAndCalls) {
  // Agents started in the same instant must not draw the same delays.
  EXPECT_NE(makeBackoffSeed(1), makeBackoffSeed(2));
  EXPECT_NE(makeBackoffSeed(1), makeBackoffSeed(1));
  auto s1 = Backoff::forSession({500 * MS, 8000 * MS}, 1), s2 = Backoff::forSession({500 * MS, 8000 * MS}, 2);
  std::vector<int64_t> v1, v2;
  for (int i = 0; i < 20; ++i) {
    v1.push_back(s1.nextDelayNs(4));
    v2.push_back(s2.nextDelayNs(4));
  }
  EXPECT_NE(v1, v2);
}

TEST(Backoff, RejectsNonsenseConfig) {
  EXPECT_THROW(Backoff({0, 1000}, 1), std::invalid_argument);
  EXPECT_THROW(Backoff({-5, 1000}, 1), std::invalid_argument);
  EXPECT_THROW(Backoff({5, -1}, 1), std::invalid_argument);
  Backoff zeroCap({5, 0}, 1);  // cap 0: never wait, allowed
  EXPECT_EQ(zeroCap.nextDelayNs(3), 0);
}
