// The churn workload's pure parts: its spec from the wire, the open-loop
// schedule each agent takes its share of, failure kinds, and the interval
// statistics it reports. The network side runs in
// tests/integration/churn_test.cpp against a real sshd.
#include "session_agent/workloads/churn.h"
#include "shared/clock.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>

#include "session_agent/workloads/registry.h"
#include "session_agent/workloads/workload.h"

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

ChurnSpec specOf(double startPerSec, double endPerSec, uint32_t rampMs, uint32_t steps, uint32_t agents,
                 uint32_t index) {
  ChurnSpec s;
  s.rate = ChurnRamp{startPerSec, endPerSec, rampMs, steps};
  s.agents = agents;
  s.agentIndex = index;
  return s;
}

ChurnConnectionResult success(uint64_t tcpUs, int64_t lagNs, int64_t serviceNs) {
  ChurnConnectionResult c;
  c.intendedNs = 1'000'000'000;
  c.startNs = c.intendedNs + lagNs;
  c.endNs = c.startNs + serviceNs;
  c.tcpUs = tcpUs;
  c.kexUs = 3000;
  c.authUs = 1000;
  c.execUs = 5000;
  c.closeUs = 100;
  return c;
}

}  // namespace

TEST(ChurnSpec, FromWireFloorsIntervalsAndKeepsTheRest) {
  capnp::MallocMessageBuilder message;
  auto w = message.initRoot<wire::ChurnWorkloadSpec>();
  w.setRateStartPerSec(100);
  w.setRateEndPerSec(100);
  w.setAgents(4);
  w.setAgentIndex(3);
  w.setScheduleStartNs(123);
  w.setCommand("true");
  w.setReportIntervalMs(0);
  w.setConnectTimeoutMs(5);
  w.setLogEachConnection(true);
  ChurnSpec s = ChurnSpec::fromWire(w.asReader());
  EXPECT_EQ(s.reportIntervalMs, MIN_WORKLOAD_INTERVAL_MS);
  EXPECT_EQ(s.connectTimeoutMs, MIN_WORKLOAD_INTERVAL_MS);
  EXPECT_EQ(s.agents, 4u);
  EXPECT_EQ(s.agentIndex, 3u);
  EXPECT_EQ(s.scheduleStartNs, 123);
  EXPECT_EQ(s.command, "true");
  EXPECT_TRUE(s.logEachConnection);
  EXPECT_FALSE(s.unpaced());
  EXPECT_DOUBLE_EQ(s.rate.targetAt(0), 100);
}

TEST(ChurnSpec, RateZeroIsUnpaced) {
  capnp::MallocMessageBuilder message;
  auto w = message.initRoot<wire::ChurnWorkloadSpec>();
  w.setAgents(1);
  EXPECT_TRUE(ChurnSpec::fromWire(w.asReader()).unpaced());
}

TEST(ChurnSpec, SpecsNoAgentCanRunAreRefused) {
  capnp::MallocMessageBuilder message;
  auto w = message.initRoot<wire::ChurnWorkloadSpec>();
  w.setAgents(2);
  w.setAgentIndex(2);
  EXPECT_THROW(ChurnSpec::fromWire(w.asReader()), std::invalid_argument);
  w.setAgentIndex(1);
  w.setRateStartPerSec(0);
  w.setRateEndPerSec(50);
  w.setRampMs(10'000);
  EXPECT_THROW(ChurnSpec::fromWire(w.asReader()), std::invalid_argument);
  w.setRateStartPerSec(-1);
  w.setRampMs(0);
  EXPECT_THROW(ChurnSpec::fromWire(w.asReader()), std::invalid_argument);
}

// The registry decodes it, and the agent knows from it that no session loop runs.
TEST(ChurnSpec, TheRegistryKeepsItAsASessionlessSpec) {
  capnp::MallocMessageBuilder message;
  auto spec = message.initRoot<wire::WorkloadSpec>();
  auto churn = spec.initChurn();
  churn.setRateStartPerSec(20);
  churn.setRateEndPerSec(20);
  churn.setAgents(1);
  WorkloadSpec made = workloadSpecFromWire(spec.asReader());
  EXPECT_TRUE(made.sessionless());
  ASSERT_NE(made.get<ChurnSpec>(), nullptr);
  EXPECT_DOUBLE_EQ(made.get<ChurnSpec>()->rate.endPerSec, 20);
  EXPECT_EQ(made.make(), nullptr);
}

TEST(ChurnSchedule, AgentsShareTheRunWideStartsWithoutOverlap) {
  // 100/s over 3 agents: together they take every start 0, 10, 20 ... ms once.
  std::set<int64_t> all;
  for (uint32_t k = 0; k < 3; ++k) {
    ChurnSchedule s(specOf(100, 100, 0, 1, 3, k));
    EXPECT_EQ(s.nextIndex(), k);
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(s.nextIndex() % 3, k);
      EXPECT_TRUE(all.insert(s.nextNs()).second) << "start at " << s.nextNs() << " ns taken twice";
      s.advance();
    }
  }
  ASSERT_EQ(all.size(), 300u);
  int64_t expected = 0;
  for (int64_t ns : all) {
    EXPECT_EQ(ns, expected);
    expected += 10'000'000;
  }
}

TEST(ChurnSchedule, ALateAgentStartsAtItsFirstSlotAfterJoiningWithNoBacklog) {
  // 10/s over 4 agents; agent 2 (re)joins 2.55 s into the run: the run-wide
  // start 26 (2.6 s) is the first after it, and 26 = 2 mod 4.
  ChurnSchedule s(specOf(10, 10, 0, 1, 4, 2));
  s.joinAt(2'550'000'000);
  EXPECT_EQ(s.nextIndex(), 26u);
  EXPECT_EQ(s.nextNs(), 2'600'000'000);
  // Agent 3 joining then waits for start 27.
  ChurnSchedule t(specOf(10, 10, 0, 1, 4, 3));
  t.joinAt(2'550'000'000);
  EXPECT_EQ(t.nextIndex(), 27u);
  // A start exactly at the join time is taken, not skipped.
  ChurnSchedule u(specOf(10, 10, 0, 1, 4, 2));
  u.joinAt(2'600'000'000);
  EXPECT_EQ(u.nextIndex(), 26u);
}

TEST(ChurnSchedule, ARampSpreadsItsIntegralOverTheAgents) {
  // 10 -> 100/s in 3 steps over 9 s, then 100/s: 10 x 3 + 55 x 3 + 100 x 3 +
  // 100 x 1 = 595 starts in the first 10 s, whichever agents take them.
  uint64_t inTenSeconds = 0;
  for (uint32_t k = 0; k < 5; ++k) {
    ChurnSchedule s(specOf(10, 100, 9'000, 3, 5, k));
    int64_t last = -1;
    while (s.nextNs() < 10'000'000'000) {
      EXPECT_GT(s.nextNs(), last);
      last = s.nextNs();
      ++inTenSeconds;
      s.advance();
    }
  }
  EXPECT_NEAR(static_cast<double>(inTenSeconds), 595, 1);
}

TEST(ChurnFailure, KindsByPhase) {
  using Cat = wire::FailureCategory;
  auto kind = [](ChurnPhase phase, Cat category, bool peerGone = false) {
    return churnFailureName(classifyChurnFailure(phase, SshError{category, "x"}, peerGone));
  };
  EXPECT_EQ(kind(ChurnPhase::TCP, Cat::REFUSED), "refused");
  EXPECT_EQ(kind(ChurnPhase::TCP, Cat::SOCKET), "other");
  EXPECT_EQ(kind(ChurnPhase::TCP, Cat::RESOLVE), "other");
  // sshd past MaxStartups (or stopping) closes before its banner or mid key exchange.
  EXPECT_EQ(kind(ChurnPhase::KEX, Cat::PROTOCOL, true), "reset_before_banner");
  EXPECT_EQ(kind(ChurnPhase::KEX, Cat::PROTOCOL, false), "kex");
  EXPECT_EQ(kind(ChurnPhase::KEX, Cat::HOSTKEY), "hostkey");
  EXPECT_EQ(kind(ChurnPhase::AUTH, Cat::AUTH), "auth");
  EXPECT_EQ(kind(ChurnPhase::AUTH, Cat::SOCKET, true), "other");
  EXPECT_EQ(kind(ChurnPhase::EXEC, Cat::CHANNEL), "exec");
  EXPECT_EQ(kind(ChurnPhase::CLOSE, Cat::SOCKET), "other");
  EXPECT_EQ(kind(ChurnPhase::TCP, Cat::TIMEOUT), "timeout_tcp");
  EXPECT_EQ(kind(ChurnPhase::KEX, Cat::TIMEOUT, true), "timeout_kex");
  EXPECT_EQ(kind(ChurnPhase::AUTH, Cat::TIMEOUT), "timeout_auth");
  EXPECT_EQ(kind(ChurnPhase::EXEC, Cat::TIMEOUT), "timeout_exec");
  EXPECT_EQ(kind(ChurnPhase::CLOSE, Cat::TIMEOUT), "timeout_close");
  EXPECT_EQ(churnPhaseOf(OpenPhase::HOSTKEY), ChurnPhase::KEX);
  EXPECT_EQ(churnPhaseOf(OpenPhase::DONE), ChurnPhase::EXEC);
}

TEST(ChurnIntervalStats, CountsHistogramsAndTheFirstExampleOfEachKind) {
  ChurnIntervalStats stats;
  for (int i = 0; i < 4; ++i) stats.started();
  // On time: total == service.
  stats.finished(success(200, 0, 10'000'000));
  // 40 ms late: total counts from the intended start (coordinated omission).
  stats.finished(success(300, 40'000'000, 10'000'000));
  ChurnConnectionResult refused;
  refused.tcpUs = 0;
  refused.failure = ChurnFailure::REFUSED;
  refused.message = "connect: Connection refused";
  stats.finished(refused);
  ChurnConnectionResult reset;
  reset.tcpUs = 150;  // its TCP connect happened and is a real TCP time
  reset.failure = ChurnFailure::REFUSED;
  reset.message = std::string(1000, 'x');
  stats.finished(reset);

  EXPECT_EQ(stats.attempted(), 4u);
  EXPECT_EQ(stats.succeeded(), 2u);
  EXPECT_EQ(stats.failed(), 2u);
  EXPECT_EQ(stats.failures(ChurnFailure::REFUSED), 2u);
  EXPECT_EQ(stats.example(ChurnFailure::REFUSED), "connect: Connection refused");
  EXPECT_EQ(stats.histogram(0).count(), 3u);  // tcp: both successes and the failure that got that far
  EXPECT_EQ(stats.histogram(1).count(), 2u);  // kex
  EXPECT_EQ(stats.histogram(5).count(), 2u);  // total: successes only
  EXPECT_NEAR(static_cast<double>(stats.histogram(5).max()), 50'000, 500);
  EXPECT_NEAR(static_cast<double>(stats.histogram(6).max()), 10'000, 100);

  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<wire::ChurnStats>();
  stats.reportAndReset(out);
  EXPECT_EQ(out.getAttempted(), 4u);
  EXPECT_EQ(out.getSucceeded(), 2u);
  EXPECT_EQ(out.getFailed(), 2u);
  ASSERT_EQ(out.getHistograms().size(), ChurnIntervalStats::MEASURES.size());
  for (size_t m = 0; m < ChurnIntervalStats::MEASURES.size(); ++m) {
    auto h = out.getHistograms()[m];
    EXPECT_EQ(std::string(h.getName().cStr()), ChurnIntervalStats::MEASURES[m]);
    ASSERT_EQ(h.getIndices().size(), h.getCounts().size());
    // Sparse and mergeable: the counts rebuild the histogram exactly.
    LatencyHistogram rebuilt;
    for (unsigned i = 0; i < h.getIndices().size(); ++i) {
      EXPECT_GT(h.getCounts()[i], 0u);
      ASSERT_TRUE(rebuilt.addAtIndex(h.getIndices()[i], h.getCounts()[i]));
    }
    EXPECT_EQ(rebuilt.count(), m == 0 ? 3u : 2u) << ChurnIntervalStats::MEASURES[m];
  }
  ASSERT_EQ(out.getFailures().size(), 1u);
  EXPECT_EQ(std::string(out.getFailures()[0].getKind().cStr()), "refused");
  EXPECT_EQ(out.getFailures()[0].getCount(), 2u);

  // The next interval starts empty.
  EXPECT_EQ(stats.attempted(), 0u);
  EXPECT_EQ(stats.failures(ChurnFailure::REFUSED), 0u);
  EXPECT_TRUE(stats.example(ChurnFailure::REFUSED).empty());
  for (size_t m = 0; m < ChurnIntervalStats::MEASURES.size(); ++m) EXPECT_TRUE(stats.histogram(m).empty());
}

TEST(ChurnIntervalStats, ExamplesAreBounded) {
  ChurnIntervalStats stats;
  ChurnConnectionResult c;
  c.failure = ChurnFailure::OTHER;
  c.message = std::string(10'000, 'y');
  stats.finished(c);
  EXPECT_EQ(stats.example(ChurnFailure::OTHER).size(), ChurnIntervalStats::MAX_EXAMPLE_BYTES);
}

TEST(ChurnConnection, OneLinePerConnection) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<wire::ChurnConnection>();
  fillChurnConnection(out, success(200, 2'000'000, 9'000'000));
  EXPECT_EQ(out.getLagUs(), 2000u);
  EXPECT_EQ(out.getTcpUs(), 200u);
  EXPECT_EQ(out.getTotalUs(), 11'000u);
  EXPECT_EQ(out.getFailureKind().size(), 0u);

  ChurnConnectionResult failed;
  failed.intendedNs = 10;
  failed.startNs = 5;  // cannot be early; never negative
  failed.endNs = 5;
  failed.failure = ChurnFailure::RESET_BEFORE_BANNER;
  failed.message = "closed";
  auto second = message.initRoot<wire::ChurnConnection>();
  fillChurnConnection(second, failed);
  EXPECT_EQ(second.getLagUs(), 0u);
  EXPECT_EQ(std::string(second.getFailureKind().cStr()), "reset_before_banner");
  EXPECT_EQ(std::string(second.getMessage().cStr()), "closed");
}

TEST(ChurnCpu, ProcessCpuTimeAdvancesWithWork) {
  int64_t before = processCpuNs();
  volatile double x = 0;
  for (int i = 0; i < 5'000'000; ++i) x = x + std::sqrt(static_cast<double>(i));
  EXPECT_GT(processCpuNs(), before);
}
