// The workload registry: specs from the wire, floors on their intervals, and
// a spec the agent cannot run refused at start rather than mid-run.
#include "session_agent/workloads/registry.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/jobs.h"
#include "session_agent/workloads/pty_workload.h"
#include "session_agent/workloads/transfer.h"

using namespace sshsoak;
using namespace sshsoak::agent;

TEST(WorkloadRegistry, ExecPollDefaultsToTheStandardRoundAndFloorsItsInterval) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  spec.initExecPoll().setIntervalMs(0);
  WorkloadSpec w = workloadSpecFromWire(spec.asReader());
  const auto* s = w.get<ExecPollSpec>();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->intervalMs, MIN_WORKLOAD_INTERVAL_MS);
  EXPECT_EQ(s->commands, pollCommands());
  EXPECT_NE(w.make(), nullptr);
}

TEST(WorkloadRegistry, ExecPollWithCommandsItCannotParseIsRefused) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  auto commands = spec.initExecPoll().initCommands(1);
  commands.set(0, "uptime");
  EXPECT_THROW(workloadSpecFromWire(spec.asReader()), std::invalid_argument);
}

TEST(WorkloadRegistry, PtyKeepsItsPauseAndFloorsItsRetry) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  auto pty = spec.initPty();
  pty.setIntensity(wire::Intensity::LOW);
  pty.setIntervalMs(0);  // no pause between bursts is a valid load
  pty.setRetryIntervalMs(5);
  WorkloadSpec made = workloadSpecFromWire(spec.asReader());
  const auto* s = made.get<PtySpec>();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->intensity, wire::Intensity::LOW);
  EXPECT_EQ(s->pauseMs, 0u);
  EXPECT_EQ(s->retryMs, MIN_WORKLOAD_INTERVAL_MS);
  auto w = made.make();
  ASSERT_NE(w, nullptr);
  // Before any session: nothing open, nothing to read or send.
  EXPECT_FALSE(w->wantsRead());
  EXPECT_FALSE(w->wantsWrite());
  EXPECT_FALSE(w->hasBufferedData());
}

TEST(WorkloadRegistry, TransferDecodesItsSpecAndIsIdleBeforeASession) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  auto transfer = spec.initTransfer();
  transfer.setUp(true);
  transfer.setDown(false);
  transfer.setBytesPerRound(1000);
  transfer.setUpCommand("sha256sum");
  transfer.setDownCommand("head -c {bytes} /dev/zero");
  transfer.setWindowBytes(1 << 20);
  transfer.setWriteBytes(4096);
  transfer.setStallMs(1000);
  WorkloadSpec made = workloadSpecFromWire(spec.asReader());
  const auto* s = made.get<TransferSpec>();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->up);
  EXPECT_FALSE(s->down);
  EXPECT_EQ(s->bytesPerRound, 1000u);
  EXPECT_EQ(s->windowBytes, 1u << 20);
  auto w = made.make();
  ASSERT_NE(w, nullptr);
  EXPECT_FALSE(w->wantsRead());
  EXPECT_FALSE(w->wantsWrite());
  EXPECT_FALSE(w->hasBufferedData());
}

TEST(WorkloadRegistry, JobsIsSessionlessAndKeepsItsSpec) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  auto jobs = spec.initJobs();
  jobs.setMaxIdleMs(60'000);
  jobs.setMaxConnections(4);
  jobs.setFailureStrategy(wire::FailureStrategy::ABORT_AFTER_N);
  jobs.setFailureThreshold(2);
  jobs.setCommandTimeoutMs(30'000);
  jobs.setConnectTimeoutMs(10'000);
  jobs.setLivenessCheck(false);
  WorkloadSpec made = workloadSpecFromWire(spec.asReader());
  EXPECT_TRUE(made.sessionless()) << "the agent runs a JobWorker instead of the session loop";
  EXPECT_EQ(made.make(), nullptr);
  const auto* s = made.get<JobsSpec>();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->maxIdleMs, 60'000u);
  EXPECT_EQ(s->maxConnections, 4u);
  EXPECT_EQ(s->failureStrategy, wire::FailureStrategy::ABORT_AFTER_N);
  EXPECT_EQ(s->failureThreshold, 2u);
  EXPECT_EQ(s->commandTimeoutMs, 30'000u);
  EXPECT_EQ(s->connectTimeoutMs, 10'000u);
  EXPECT_FALSE(s->livenessCheck);
}
