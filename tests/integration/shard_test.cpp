// Issue 17: shards as separate sshsoak processes against one real sshd,
// merged by `sshsoak report --merge`: the merged percentiles equal those of
// one log holding every shard's events (exactly), a row per shard, and a
// shard SIGKILLed mid-run (no summary) is named and fails the verdict.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>

#include "sshd_fixture.h"
#include "supervisor/analysis/hlog.h"
#include "supervisor/analysis/merge.h"
#include "supervisor/analysis/stats.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

std::string slurpFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ShardRunTest : public SshdTest {
 protected:
  std::string shardLog(uint32_t i) const { return workDir_ + "/shards/shard-" + std::to_string(i) + ".jsonl"; }
  std::vector<std::string> shardArgs(uint32_t i, uint32_t n, std::vector<std::string> extra) const {
    std::filesystem::create_directories(workDir_ + "/shards");
    auto args = soakArgs({"--run-id", "itest-17", "--shard", std::to_string(i) + "/" + std::to_string(n), "--log-path",
                          shardLog(i), "--sample-interval-secs", "1"});
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  // `sshsoak report ARGS...`: exit code, stdout, stderr.
  SoakResult runReport(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"report"};
    all.insert(all.end(), args.begin(), args.end());
    SoakProcess p(all);
    SoakResult r;
    r.exitCode = p.wait(60);
    r.out = p.out();
    r.err = p.err();
    return r;
  }
};

TEST_F(ShardRunTest, ThreeShardsMergeToTheFiguresOfOneLogWithEveryEvent) {
  const uint32_t n = 3;
  std::vector<std::unique_ptr<SoakProcess>> shards;
  for (uint32_t i = 0; i < n; ++i) {
    // Every session dropped twice: reconnect times to merge.
    shards.push_back(std::make_unique<SoakProcess>(
        shardArgs(i, n, {"--sessions", "6", "--duration-secs", "9", "--drop", "2/4", "--poll-interval-secs", "2"})));
  }
  for (auto& s : shards) EXPECT_EQ(s->wait(90), exit_code::PASSED) << s->err();

  // Each shard stands alone: its own sessions (global ids), stamps on every line.
  std::vector<int64_t> allReconnectMs;
  std::set<uint64_t> sessions;
  for (uint32_t i = 0; i < n; ++i) {
    auto lines = sshsoak::testing::readJsonl(shardLog(i));
    ASSERT_FALSE(lines.empty());
    for (const auto& l : lines) {
      ASSERT_EQ(l["run_id"], "itest-17") << l.dump();
      ASSERT_EQ(l["shard"], i) << l.dump();
      ASSERT_EQ(l["shards"], n) << l.dump();
    }
    for (const auto& c : linesOf(lines, "connected")) {
      uint64_t id = c["session_id"].get<uint64_t>();
      EXPECT_GE(id, 2u * i);
      EXPECT_LT(id, 2u * (i + 1));
      sessions.insert(id);
    }
    for (const auto& r : linesOf(lines, "reconnected")) allReconnectMs.push_back(r["elapsed_ms"].get<int64_t>());
    ASSERT_EQ(linesOf(lines, "summary").size(), 1u);
    EXPECT_TRUE(linesOf(lines, "summary")[0]["histograms"].contains("reconnect_ms"));
  }
  EXPECT_EQ(sessions.size(), 6u);
  ASSERT_GE(allReconnectMs.size(), 6u);

  // The binary: a directory of shard logs, exit 0, a row per shard and the total.
  std::string hlogPath = workDir_ + "/merged.hlog";
  auto r = runReport({"--merge", workDir_ + "/shards", "--html", workDir_ + "/merged.html", "--hlog", hlogPath});
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.out << r.err;
  for (const char* row : {"| 0/3 | complete |", "| 1/3 | complete |", "| 2/3 | complete |", "| **total** | pass |"}) {
    EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  }
  EXPECT_NE(slurpFile(workDir_ + "/merged.html").find("Merged run itest-17 (3 shards): PASS"), std::string::npos);

  // The merged summary: percentiles exactly those of every event in one list.
  std::vector<std::string> files;
  for (uint32_t i = 0; i < n; ++i) files.push_back(shardLog(i));
  auto merged = merge::merge(report::read(files));
  ASSERT_TRUE(merged.ok()) << merged.error();
  const Json& s = merged->summary;
  EXPECT_EQ(s["global_reconnect_p50_ms"], *percentile(allReconnectMs, 0.50));
  EXPECT_EQ(s["global_reconnect_p95_ms"], *percentile(allReconnectMs, 0.95));
  EXPECT_EQ(s["global_reconnect_max_ms"], *percentile(allReconnectMs, 1.0));
  EXPECT_EQ(s["reconnects"], allReconnectMs.size());
  EXPECT_EQ(s["sessions"], 6);
  EXPECT_EQ(s["per_session"].size(), 6u);

  // The .hlog decodes back to the merged counts.
  auto log = hlog::parse(slurpFile(hlogPath));
  ASSERT_TRUE(log.ok()) << log.error();
  bool sawReconnect = false;
  for (const auto& e : log->entries) {
    if (e.tag != "reconnect_ms") continue;
    sawReconnect = true;
    EXPECT_EQ(e.histogram.total, allReconnectMs.size());
    EXPECT_EQ(e.histogram.nearestRank(0.95), percentile(allReconnectMs, 0.95));
  }
  EXPECT_TRUE(sawReconnect);
}

TEST_F(ShardRunTest, AShardKilledMidRunIsNamedAndFailsTheMergedVerdict) {
  const uint32_t n = 2;
  SoakProcess done(shardArgs(0, n, {"--sessions", "4", "--duration-secs", "5"}));
  SoakProcess killed(shardArgs(1, n, {"--sessions", "4", "--duration-secs", "30"}));
  // Killed once its sessions are up: no summary, no clean end.
  for (int i = 0; i < 300 && linesOf(sshsoak::testing::readJsonl(shardLog(1)), "connected").size() < 2; ++i) ::usleep(100'000);
  auto before = sshsoak::testing::readJsonl(shardLog(1));
  ASSERT_EQ(linesOf(before, "connected").size(), 2u) << killed.err();
  ASSERT_EQ(::kill(killed.pid(), SIGKILL), 0);
  killed.wait(10);
  EXPECT_EQ(done.wait(60), exit_code::PASSED) << done.err();
  for (const auto& started : linesOf(before, "agent_started")) ::kill(started["pid"].get<pid_t>(), SIGKILL);

  auto r = runReport({"--merge", shardLog(0), shardLog(1)});
  EXPECT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.out << r.err;
  EXPECT_NE(r.out.find("| 1/2 | running |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| 0/2 | complete |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| **total** | FAIL |"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("shard 1/2 running"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("| shards_finished | 1 | == 2 | fail | shard 1 running |"), std::string::npos) << r.out;

  // A shard index nobody logged is named missing.
  auto three = runReport({"--merge", shardLog(0)});
  EXPECT_EQ(three.exitCode, exit_code::CRITERIA_FAILED);
  EXPECT_NE(three.out.find("| 1/2 | missing |"), std::string::npos) << three.out;

  // The killed run's shared memory is a dead run's: the next run's start removes it.
  auto cleanup = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "1"}), 30);
  EXPECT_EQ(cleanup.exitCode, exit_code::PASSED) << cleanup.err;
}

}  // namespace
