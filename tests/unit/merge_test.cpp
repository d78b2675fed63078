// Issue 17: `report --merge` on shard logs written here: counts summed,
// percentiles from the merged histograms equal to those of one log holding
// every event (exactly), a row per shard, a running and a missing shard
// named and failing the verdict, lines of another run left out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "supervisor/analysis/merge.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/verdict.h"

using namespace sshsoak;

namespace {

constexpr int64_t T0 = 1'764'144'000'000'000'000;

struct Shard {
  std::vector<Json> lines;
};

Json line(int64_t ns, std::optional<uint32_t> session, const std::string& event) {
  return lineHead(ns, session, session ? "127.0.0.1:22" : "", event);
}

// Stamps lines as a shard's JsonlLog does.
Json stamp(Json j, const std::string& runId, std::optional<std::pair<uint32_t, uint32_t>> shard) {
  j["run_id"] = runId;
  if (shard) {
    j["shard"] = shard->first;
    j["shards"] = shard->second;
  }
  return j;
}

class MergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sshsoak-merge-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Sessions [first, end) of a run of `total` sessions: each connects, some
  // are dropped and reconnect after a random time; with a summary (a
  // finished shard) made as the live run makes it.
  std::vector<Json> shardLines(uint32_t first, uint32_t end, std::mt19937_64& rng, bool finished) {
    std::vector<Json> out;
    Json started = line(T0, std::nullopt, "run_started");
    started["sessions"] = end - first;
    started["workload"] = "pty";
    out.push_back(started);
    int64_t ns = T0;
    for (uint32_t s = first; s < end; ++s) out.push_back(line(ns += 1'000'000, s, "connected"));
    for (int k = 0; k < 40; ++k) {
      uint32_t s = first + static_cast<uint32_t>(rng() % (end - first));
      out.push_back(line(ns += 5'000'000, s, "disconnected"));
      Json r = line(ns += 1'000'000, s, "reconnected");
      r["elapsed_ms"] = 300 + static_cast<int64_t>(rng() % 9000);  // beyond 256: HdrHistogram's buckets widen there
      out.push_back(r);
    }
    if (finished) {
      RunModel model;
      for (const auto& l : out) model.onLine(l);
      Json summary = model.summary(ns += 1'000'000, 60, out.size() + 1);
      summary["verdict"] = verdictJson(evaluate(model.verdictInputs(), thresholdsOf(cli::Options{})));
      out.push_back(summary);
    }
    return out;
  }

  std::string write(const std::string& name, const std::vector<Json>& lines) {
    std::string path = (dir_ / name).string();
    std::ofstream f(path);
    for (const auto& l : lines) f << l.dump() << "\n";
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(MergeTest, MergedFiguresEqualOneLogHoldingEveryEvent) {
  std::mt19937_64 rng(7);
  const uint32_t total = 12, n = 3;
  std::vector<Json> everything;
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < n; ++i) {
    auto [first, end] = cli::shardSessions(total, i, n);
    auto lines = shardLines(first, end, rng, true);
    std::vector<Json> stamped;
    for (const auto& l : lines) {
      stamped.push_back(stamp(l, "r17", std::make_pair(i, n)));
      if (textField(l, "event") != "summary" && textField(l, "event") != "run_started") everything.push_back(l);
    }
    paths.push_back(write("shard-" + std::to_string(i) + ".jsonl", stamped));
  }
  // Lines of another run in a shard's file are named and left out.
  {
    std::ofstream f(paths[0], std::ios::app);
    f << stamp(line(T0, 0, "connected"), "other-run", std::make_pair(0u, 3u)).dump() << "\n";
  }
  report::Input input = report::read({dir_.string() + "/shard-0.jsonl", paths[1], paths[2]});
  ASSERT_TRUE(input.errors.empty());
  auto merged = merge::merge(input);
  ASSERT_TRUE(merged.ok()) << merged.error();
  ASSERT_EQ(merged->shardCount, n);
  ASSERT_EQ(merged->shards.size(), n);
  for (const auto& row : merged->shards) EXPECT_EQ(row.state, "complete") << row.index << " " << row.why;
  bool namedOther = false;
  std::string warnings;
  for (const auto& w : merged->warnings) {
    namedOther |= w.find("other-run") != std::string::npos;
    warnings += w + "\n";
  }
  for (const auto& w : input.warnings) warnings += w + "\n";
  EXPECT_TRUE(namedOther) << warnings;

  // One log with all the events, as a single run reads it.
  RunModel one;
  Json started = line(T0, std::nullopt, "run_started");
  started["sessions"] = total;
  one.onLine(started);
  for (const auto& l : everything) one.onLine(l);
  Json single = one.summary(T0, 60, 0);
  const Json& s = merged->summary;
  for (const char* key : {"global_reconnect_p50_ms", "global_reconnect_p95_ms", "global_reconnect_max_ms"}) {
    ASSERT_TRUE(single[key].is_number());
    EXPECT_EQ(s[key], single[key]) << key;
  }
  for (const char* key : {"sessions", "interrupts", "reconnects", "abnormal_ends", "sessions_up_at_end"}) {
    EXPECT_EQ(s[key], single[key]) << key;
  }
  EXPECT_EQ(s["per_session"].size(), total);
  EXPECT_EQ(s["histograms"]["reconnect_ms"], single["histograms"]["reconnect_ms"]);
  // The verdict's reconnect p95 is the merged one.
  bool sawP95 = false;
  for (const auto& c : s["verdict"]) {
    if (c["criterion"] == "reconnect_p95_ms") {
      EXPECT_EQ(c["measured"], single["global_reconnect_p95_ms"]);
      sawP95 = true;
    }
    if (c["criterion"] == "shards_finished") {
      EXPECT_EQ(c["result"], "pass");
    }
  }
  EXPECT_TRUE(sawP95);
  ASSERT_EQ(s["shards"].size(), n);
  EXPECT_EQ(s["shards"][1]["shard"], 1);
  EXPECT_EQ(s["shards"][1]["state"], "complete");
  std::string table = merge::markdown(*merged);
  EXPECT_NE(table.find("| 0/3 | complete |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 2/3 | complete |"), std::string::npos) << table;
  EXPECT_NE(table.find("| **total** |"), std::string::npos) << table;
}

TEST_F(MergeTest, RunningAndMissingShardsAreNamedAndFailTheVerdict) {
  std::mt19937_64 rng(9);
  std::vector<std::string> paths;
  const uint32_t n = 4;
  for (uint32_t i = 0; i < 3; ++i) {  // shard 3 has no log at all
    auto [first, end] = cli::shardSessions(8, i, n);
    auto lines = shardLines(first, end, rng, i != 1);  // shard 1 was killed: no summary
    std::vector<Json> stamped;
    for (const auto& l : lines) stamped.push_back(stamp(l, "r", std::make_pair(i, n)));
    paths.push_back(write("s" + std::to_string(i) + ".jsonl", stamped));
  }
  auto files = merge::expandPaths({dir_.string()});
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 3u);
  auto merged = merge::merge(report::read(*files));
  ASSERT_TRUE(merged.ok()) << merged.error();
  ASSERT_EQ(merged->shards.size(), 4u);
  EXPECT_EQ(merged->shards[0].state, "complete");
  EXPECT_EQ(merged->shards[1].state, "running");
  EXPECT_EQ(merged->shards[3].state, "missing");
  EXPECT_FALSE(merge::passed(*merged));
  // The summary says so too (--summary-json and --junit read it).
  EXPECT_EQ(merged->summary["success"], false);
  bool failed = false;
  for (const auto& c : merged->summary["verdict"]) {
    if (c["criterion"] == "shards_finished") {
      failed = c["result"] == "fail";
      EXPECT_NE(c["note"].get<std::string>().find("shard 1 running"), std::string::npos);
      EXPECT_NE(c["note"].get<std::string>().find("shard 3 missing"), std::string::npos);
    }
  }
  EXPECT_TRUE(failed);
  // The killed shard's events so far still count.
  EXPECT_EQ(merged->summary["sessions"], 6);  // shards 0..2 of 8 in 4: 2 + 2 + 2
}

TEST_F(MergeTest, LogsWithoutShardsAreRefused) {
  std::string path = write("plain.jsonl", {stamp(line(T0, 0, "connected"), "x", std::nullopt)});
  auto merged = merge::merge(report::read({path}));
  ASSERT_FALSE(merged.ok());
  EXPECT_NE(merged.error().find("no shard"), std::string::npos);
}

}  // namespace
