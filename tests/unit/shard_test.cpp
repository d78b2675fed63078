// Issue 17: --shard I/N and --shard-count N with JOB_COMPLETION_INDEX: the
// split of sessions and rate, the environment path and its errors, and the
// stamp every line of a shard gets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "supervisor/cli.h"
#include "supervisor/exit_codes.h"
#include "supervisor/run/jsonl_log.h"

using namespace sshsoak;
using namespace sshsoak::cli;

namespace {

std::optional<std::string> jobIndex;  // what JOB_COMPLETION_INDEX reads as in the next parse

class ShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sshsoak-shard-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    key_ = (dir_ / "id_ed25519").string();
    std::ofstream(key_) << "not really a key\n";
    jobIndex.reset();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<Options, UsageError> run(std::vector<std::string> extra) {
    std::vector<std::string> args = {"sshsoak", "--targets", "h0:22,h1:22,h2:22", "--user", "u", "--key", key_,
                                     "--log-path", (dir_ / "run.jsonl").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    return parse(static_cast<int>(argv.size()), argv.data(), [](const std::string& name) -> std::optional<std::string> {
      if (name == "JOB_COMPLETION_INDEX") return jobIndex;
      return std::nullopt;
    });
  }
  std::string usageOf(std::vector<std::string> extra) {
    auto r = run(std::move(extra));
    EXPECT_FALSE(r.ok());
    if (r.ok()) return "";
    EXPECT_EQ(r.error().exitCode, exit_code::USAGE) << r.error().message;
    return r.error().message;
  }
  std::filesystem::path dir_;
  std::string key_;
};

TEST(ShardSplit, EverySessionInExactlyOneShardInOrder) {
  for (uint32_t sessions : {1u, 3u, 7u, 10u, 100u, 1001u}) {
    for (uint32_t n = 1; n <= std::min(sessions, 9u); ++n) {
      uint32_t next = 0;
      for (uint32_t i = 0; i < n; ++i) {
        auto [first, end] = shardSessions(sessions, i, n);
        EXPECT_EQ(first, next) << sessions << " " << i << "/" << n;
        EXPECT_GT(end, first) << "shard " << i << "/" << n << " of " << sessions << " has no session";
        // floor(I*S/N): the sizes differ by at most one.
        EXPECT_LE(end - first, sessions / n + 1);
        EXPECT_GE(end - first, sessions / n);
        next = end;
      }
      EXPECT_EQ(next, sessions);
    }
  }
  EXPECT_EQ(shardSessions(10, 0, 4), std::make_pair(0u, 2u));
  EXPECT_EQ(shardSessions(10, 1, 4), std::make_pair(2u, 5u));
  EXPECT_EQ(shardSessions(10, 3, 4), std::make_pair(7u, 10u));
}

TEST_F(ShardTest, ShardFlagTakesItsSessionsGlobalIdsAndRate) {
  auto o = run({"--sessions", "10", "--shard", "1/4", "--token-rate", "8"});
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->shardIndex, 1u);
  EXPECT_EQ(o->shardCount, 4u);
  EXPECT_EQ(o->sessionsTotal, 10u);
  EXPECT_EQ(o->firstSessionId, 2u);
  EXPECT_EQ(o->sessions, 3u);
  ASSERT_EQ(o->slots.size(), 3u);
  // Sessions 2, 3, 4 get the targets their global ids get in one run.
  EXPECT_EQ(o->slots[0].host, "h2");
  EXPECT_EQ(o->slots[1].host, "h0");
  EXPECT_EQ(o->slots[2].host, "h1");
  EXPECT_DOUBLE_EQ(o->tokenRatePerSec, 2.0);
}

TEST_F(ShardTest, DropsKeepGlobalIdsRenumberedToTheShard) {
  auto o = run({"--sessions", "10", "--shard", "1/2", "--drop", "5@0,6,9", "--drop", "7@1", "--drop", "9"});
  ASSERT_TRUE(o.ok()) << o.error().message;
  ASSERT_EQ(o->firstSessionId, 5u);
  ASSERT_EQ(o->drops.size(), 2u);  // the drop of session 1 only is another shard's
  EXPECT_EQ(o->drops[0].sessions, (std::vector<uint32_t>{1, 4}));  // 6 and 9; 0 is shard 0's
  EXPECT_TRUE(o->drops[1].sessions.empty());  // all sessions
}

TEST_F(ShardTest, NoShardMeansTheWholeRun) {
  auto o = run({"--sessions", "10"});
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_FALSE(o->shardIndex);
  EXPECT_EQ(o->sessions, 10u);
  EXPECT_EQ(o->sessionsTotal, 10u);
  EXPECT_EQ(o->firstSessionId, 0u);
}

TEST_F(ShardTest, ShardCountReadsJobCompletionIndex) {
  jobIndex = "3";
  auto o = run({"--sessions", "8", "--shard-count", "4", "--token-rate", "4"});
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->shardIndex, 3u);
  EXPECT_EQ(o->shardCount, 4u);
  EXPECT_EQ(o->firstSessionId, 6u);
  EXPECT_EQ(o->sessions, 2u);
  EXPECT_DOUBLE_EQ(o->tokenRatePerSec, 1.0);
  // Both given and agreeing is fine.
  auto same = run({"--sessions", "8", "--shard-count", "4", "--shard", "3/4"});
  EXPECT_TRUE(same.ok());
}

TEST_F(ShardTest, BadValuesAreUsageErrorsNamingTheInput) {
  EXPECT_NE(usageOf({"--shard", "4/4"}).find("I must be below N"), std::string::npos);
  EXPECT_NE(usageOf({"--shard", "1"}).find("--shard '1'"), std::string::npos);
  EXPECT_NE(usageOf({"--shard", "a/2"}).find("whole numbers"), std::string::npos);
  EXPECT_NE(usageOf({"--shard", "0/0"}).find("N must be at least 1"), std::string::npos);
  EXPECT_NE(usageOf({"--sessions", "3", "--shard", "0/4"}).find("more shards than --sessions 3"), std::string::npos);
  // --shard-count without the variable.
  EXPECT_NE(usageOf({"--shard-count", "4"}).find("JOB_COMPLETION_INDEX is not set"), std::string::npos);
  jobIndex = "4";
  EXPECT_NE(usageOf({"--shard-count", "4"}).find("not below --shard-count 4"), std::string::npos);
  jobIndex = "x";
  EXPECT_NE(usageOf({"--shard-count", "4"}).find("not a whole number"), std::string::npos);
  jobIndex = "1";
  EXPECT_NE(usageOf({"--shard-count", "4", "--shard", "2/4"}).find("disagrees"), std::string::npos);
  EXPECT_NE(usageOf({"--shard-count", "0"}).find("--shard-count 0"), std::string::npos);
}

TEST_F(ShardTest, ChurnAndJobsAreRefusedBecauseTheirRateIsNotSplit) {
  EXPECT_NE(usageOf({"--sessions", "4", "--shard", "0/2", "--workload", "churn"}).find("--shard with --workload churn"),
            std::string::npos);
  EXPECT_NE(usageOf({"--sessions", "4", "--shard", "1/2", "--workload", "jobs"}).find("--shard with --workload jobs"),
            std::string::npos);
}

TEST_F(ShardTest, AShardWithNoneOfTheGivenDropsStillKnowsDropsWereGiven) {
  // The demo drop (main.cpp) is for runs without any planned drop; a shard
  // whose sessions the --drop does not name must not get it.
  auto o = run({"--sessions", "6", "--shard", "1/2", "--drop", "5@0-1"});
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_TRUE(o->drops.empty());
  EXPECT_TRUE(o->dropsGiven);
  auto none = run({"--sessions", "6", "--shard", "1/2"});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->dropsGiven);
}

TEST_F(ShardTest, EveryLineCarriesShardAfterRunIdAndGlobalSessionIds) {
  std::string path = (dir_ / "log.jsonl").string();
  {
    JsonlLog log(path);
    log.setRunId("r1");
    log.setShard(2, 4, 5);
    std::vector<Json> seen;
    log.setListener([&](const Json& l) { seen.push_back(l); });
    log.write(lineHead(0, std::nullopt, "", "run_started"));
    log.write(lineHead(0, 1, "h:22", "connected"));
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1]["session_id"], 6);  // slot 1 of the shard whose first session is 5
  }
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    Json j = Json::parse(line);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    auto at = std::find(keys.begin(), keys.end(), "run_id");
    ASSERT_NE(at, keys.end());
    ASSERT_LT(static_cast<size_t>(at - keys.begin()) + 2, keys.size());
    EXPECT_EQ(*(at + 1), "shard");
    EXPECT_EQ(*(at + 2), "shards");
    EXPECT_EQ(j["shard"], 2);
    EXPECT_EQ(j["shards"], 4);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

}  // namespace
