#include "supervisor/analysis/percentiles_cmd.h"

#include <gtest/gtest.h>

#include "supervisor/analysis/stats.h"

using namespace sshsoak;

TEST(PercentilesCmd, KeysNameThePercent) {
  EXPECT_EQ(percentiles_cmd::key(0.5), "p50");
  EXPECT_EQ(percentiles_cmd::key(0.95), "p95");
  EXPECT_EQ(percentiles_cmd::key(0.99), "p99");
  EXPECT_EQ(percentiles_cmd::key(0.999), "p99.9");
  EXPECT_EQ(percentiles_cmd::key(1.0), "p100");
  EXPECT_EQ(percentiles_cmd::key(0.0), "p0");
}

// The subcommand is sshsoak::percentile, nothing else: the same figures on
// odd, even, unsorted and repeated values.
TEST(PercentilesCmd, MatchesPercentile) {
  const std::vector<double> qs = {0.0, 0.5, 0.9, 0.95, 0.99, 1.0};
  for (const std::vector<int64_t>& values : std::vector<std::vector<int64_t>>{
           {42},
           {900, 100, 300, 500, 700, 200, 400, 600, 800, 1000},
           {5, 1, 4, 2, 3},
           {7, 7, 7, 1},
           {-3, 0, 12, 4000000000}}) {
    Json j = percentiles_cmd::toJson(values, qs);
    EXPECT_EQ(j["n"], values.size());
    for (double q : qs) EXPECT_EQ(j[percentiles_cmd::key(q)], *percentile(values, q)) << q;
  }
}

TEST(PercentilesCmd, NoValuesGiveNull) {
  Json j = percentiles_cmd::toJson({}, {0.5, 0.95});
  EXPECT_EQ(j.dump(), R"({"n":0,"p50":null,"p95":null})");
}
