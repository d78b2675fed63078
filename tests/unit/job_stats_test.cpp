// The per-worker job rollup (supervisor/run/job_stats.h).
#include "supervisor/run/job_stats.h"

#include <gtest/gtest.h>

using namespace sshsoak;
using namespace sshsoak::jobs;

TEST(JobStats, ALineCountsTheIntervalThenStartsAfresh) {
  JobStats s;
  EXPECT_TRUE(s.empty());
  s.add(JobSample{.outcome = wire::JobOutcome::DONE, .reused = false, .queueWaitUs = 100, .connectUs = 5000,
                  .runUs = 2000, .totalUs = 7100, .commandsRun = 3, .connectionsOpened = 1, .failureKind = {}, .message = {}});
  s.add(JobSample{.outcome = wire::JobOutcome::DONE, .reused = true, .queueWaitUs = 50, .livenessUs = 300,
                  .runUs = 1800, .totalUs = 2200, .commandsRun = 3, .failureKind = {}, .message = {}});
  s.add(JobSample{.outcome = wire::JobOutcome::ABORTED, .reused = true, .queueWaitUs = 70, .livenessUs = 250,
                  .runUs = 900, .totalUs = 1300, .commandsRun = 1, .commandsFailed = 1, .deadReplaced = 1,
                  .connectionsOpened = 1, .failureKind = "command_exit", .message = "false: exit 1"});
  s.add(JobSample{.outcome = wire::JobOutcome::FAILED, .failureKind = "command_exit", .message = "second"});
  Json j = s.takeLine(0, 3, "127.0.0.1:22", 10000, Phase::REUSE_ON);
  EXPECT_EQ(j["event"], "job_stats");
  EXPECT_EQ(j["session_id"], 3);
  EXPECT_EQ(j["interval_ms"], 10000);
  EXPECT_EQ(j["phase"], "reuse_on");
  EXPECT_EQ(j["done"], 2);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["aborted"], 1);
  EXPECT_EQ(j["cancelled"], 0);
  EXPECT_EQ(j["reused"], 2);
  EXPECT_EQ(j["connections_opened"], 2);
  EXPECT_EQ(j["dead_replaced"], 1);
  EXPECT_EQ(j["commands_run"], 7);
  EXPECT_EQ(j["commands_failed"], 1);
  EXPECT_EQ(j["latency_us"]["queue_wait"]["n"], 4);
  EXPECT_EQ(j["latency_us"]["connect"]["n"], 2) << "only jobs that opened a connection";
  EXPECT_EQ(j["latency_us"]["liveness"]["n"], 2) << "only jobs that checked";
  EXPECT_EQ(j["latency_us"]["total"]["n"], 4);
  LatencyHistogram connect;
  ASSERT_TRUE(addHistogramJson(j["latency_us"]["connect"], connect));
  EXPECT_NEAR(static_cast<double>(connect.max()), 5000, 50);
  EXPECT_EQ(j["failures"]["command_exit"]["count"], 2);
  EXPECT_EQ(j["failures"]["command_exit"]["example"], "false: exit 1") << "the first example";
  EXPECT_TRUE(s.empty());
  Json next = s.takeLine(0, 3, "", 10000, Phase::REUSE_ON);
  EXPECT_EQ(next["done"], 0);
  EXPECT_EQ(next["latency_us"]["total"]["n"], 0);
  EXPECT_TRUE(next["failures"].empty());
}

TEST(JobStats, FailureKindsAreBounded) {
  JobStats s;
  for (int i = 0; i < 100; ++i) {
    std::string kind = "kind_" + std::to_string(i);
    s.add(JobSample{.outcome = wire::JobOutcome::FAILED, .failureKind = kind, .message = std::string(1000, 'x')});
  }
  Json j = s.takeLine(0, 0, "", 1, Phase::REUSE_OFF);
  EXPECT_EQ(j["failures"].size(), JobStats::MAX_FAILURE_KINDS);
  EXPECT_EQ(j["failures"]["other"]["count"], 100 - (JobStats::MAX_FAILURE_KINDS - 1));
  EXPECT_EQ(j["failures"]["kind_0"]["example"].get<std::string>().size(), JobStats::MAX_EXAMPLE_CHARS);
  uint64_t total = 0;
  for (const auto& [k, v] : j["failures"].items()) total += v["count"].get<uint64_t>();
  EXPECT_EQ(total, 100u);
}
