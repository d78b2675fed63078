// The jobs worker's pure parts (session_agent/workloads/jobs.h): the spec,
// failure classification, the failure strategy's decisions, and the
// connection pool's choices. The network side is tested against a real sshd
// (tests/integration/jobs_agent_test.cpp).
#include "session_agent/workloads/jobs.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <limits>

#include "shared/wire_names.h"

namespace sshsoak::agent {
namespace {

using FS = wire::FailureStrategy;
using O = wire::JobOutcome;
using Cat = wire::FailureCategory;

// Runs a job's commands through the strategy: ok[i] is command i's success.
// Returns the outcome and how many commands ran.
std::pair<O, size_t> play(FS strategy, uint32_t threshold, std::vector<bool> ok) {
  JobProgress p(strategy, threshold, ok.size());
  for (size_t i = 0; i < ok.size(); ++i) {
    if (!p.afterCommand(!ok[i])) break;
  }
  return {p.outcome(), p.ran()};
}

TEST(JobProgress, ContinueRunsEveryCommandAndFailsAtTheEnd) {
  auto [outcome, ran] = play(FS::CONTINUE, 1, {true, false, true, false, true});
  EXPECT_EQ(outcome, O::FAILED);
  EXPECT_EQ(ran, 5u);
}

TEST(JobProgress, AbortFirstStopsAtTheFirstFailure) {
  auto [outcome, ran] = play(FS::ABORT_FIRST, 1, {true, false, true, false, true});
  EXPECT_EQ(outcome, O::ABORTED);
  EXPECT_EQ(ran, 2u);
}

TEST(JobProgress, AbortAfterNStopsAtTheNthFailure) {
  auto [outcome, ran] = play(FS::ABORT_AFTER_N, 2, {true, false, true, false, true});
  EXPECT_EQ(outcome, O::ABORTED);
  EXPECT_EQ(ran, 4u);
  // Fewer failures than N: it runs to its end, failed.
  std::tie(outcome, ran) = play(FS::ABORT_AFTER_N, 3, {true, false, true, false, true});
  EXPECT_EQ(outcome, O::FAILED);
  EXPECT_EQ(ran, 5u);
}

TEST(JobProgress, AStrategyFiringOnTheLastCommandStoppedNothing) {
  // Aborted means "stopped before its last command"; a failing last
  // command ends the job the same under every strategy: failed.
  EXPECT_EQ(play(FS::ABORT_FIRST, 1, {true, true, false}).first, O::FAILED);
  EXPECT_EQ(play(FS::ABORT_AFTER_N, 1, {true, true, false}).first, O::FAILED);
}

TEST(JobProgress, AllSucceededIsDone) {
  for (FS s : {FS::CONTINUE, FS::ABORT_FIRST, FS::ABORT_AFTER_N}) {
    auto [outcome, ran] = play(s, 1, {true, true, true});
    EXPECT_EQ(outcome, O::DONE) << failureStrategyName(s);
    EXPECT_EQ(ran, 3u);
  }
}

TEST(JobProgress, AThresholdOfZeroIsOne) {
  EXPECT_EQ(play(FS::ABORT_AFTER_N, 0, {false, true}).first, O::ABORTED);
}

TEST(JobFailures, ConnectFailuresAreClassifiedByPhase) {
  OpenTimings t;
  t.reached = OpenPhase::TCP;
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::REFUSED, "refused"}), JobFailure::CONNECT_REFUSED);
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::TIMEOUT, "t"}), JobFailure::CONNECT_TIMEOUT);
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::RESOLVE, "no such host"}), JobFailure::CONNECT_OTHER);
  t.reached = OpenPhase::KEX;
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::PROTOCOL, "kex"}), JobFailure::KEX);
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::TIMEOUT, "kex"}), JobFailure::CONNECT_TIMEOUT);
  t.peerGone = true;  // MaxStartups: closed before the key exchange ended
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::PROTOCOL, "closed"}), JobFailure::CONNECT_RESET);
  t = OpenTimings{};
  t.reached = OpenPhase::HOSTKEY;
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::HOSTKEY, "changed"}), JobFailure::HOSTKEY);
  t.reached = OpenPhase::AUTH;
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::AUTH, "refused"}), JobFailure::AUTH);
  EXPECT_EQ(classifyConnectFailure(t, SshError{Cat::SOCKET, "gone during auth"}), JobFailure::CONNECT_OTHER);
}

TEST(JobFailures, CommandEndsMapToKinds) {
  EXPECT_FALSE(commandFailure(CommandEnd::OK));
  EXPECT_EQ(commandFailure(CommandEnd::EXIT), JobFailure::COMMAND_EXIT);
  EXPECT_EQ(commandFailure(CommandEnd::TIMEOUT), JobFailure::COMMAND_TIMEOUT);
  EXPECT_EQ(commandFailure(CommandEnd::CHANNEL), JobFailure::CHANNEL);
  EXPECT_EQ(commandFailure(CommandEnd::CONNECTION_LOST), JobFailure::CONNECTION_LOST);
}

TEST(JobFailures, NamesAreTheReferencesKinds) {
  // docs/reference.md, "Jobs": the failure kinds a worker reports.
  std::vector<std::string> names;
  for (int k = 0; k <= static_cast<int>(JobFailure::RUN_ENDED); ++k) {
    names.emplace_back(jobFailureName(static_cast<JobFailure>(k)));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"connect_refused", "connect_timeout", "connect_reset", "kex", "auth",
                                             "hostkey", "connect_other", "command_exit", "command_timeout",
                                             "channel", "connection_lost", "run_ended"}));
}

PoolEntry entry(const std::string& host, int64_t lastUsedMs) {
  PoolEntry e;
  e.key = PoolKey{"u", host, 22};
  e.openedMs = lastUsedMs;
  e.lastUsedMs = lastUsedMs;
  return e;
}

TEST(ConnectionPool, TakesTheTargetsEntryByUserHostAndPort) {
  ConnectionPool pool(4, 0);
  pool.put(entry("a", 10));
  pool.put(entry("b", 20));
  EXPECT_FALSE(pool.take(PoolKey{"other", "a", 22}));
  EXPECT_FALSE(pool.take(PoolKey{"u", "a", 2222}));
  auto a = pool.take(PoolKey{"u", "a", 22});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->key.host, "a");
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_FALSE(pool.take(PoolKey{"u", "a", 22})) << "taken out while its job runs";
}

TEST(ConnectionPool, LruClosesTheLeastRecentlyUsed) {
  ConnectionPool pool(2, 0);
  pool.put(entry("a", 30));
  EXPECT_FALSE(pool.full());
  pool.put(entry("b", 10));
  EXPECT_TRUE(pool.full());
  auto victim = pool.takeLru();
  ASSERT_TRUE(victim);
  EXPECT_EQ(victim->key.host, "b");
  EXPECT_FALSE(pool.full());
  ConnectionPool empty(1, 0);
  EXPECT_FALSE(empty.takeLru());
}

TEST(ConnectionPool, ACapacityOfZeroIsOne) {
  ConnectionPool pool(0, 0);
  EXPECT_FALSE(pool.full());
  pool.put(entry("a", 1));
  EXPECT_TRUE(pool.full());
}

TEST(ConnectionPool, IdleDeadlinesAndCloses) {
  ConnectionPool pool(4, 1000);
  EXPECT_EQ(pool.nextIdleDeadlineMs(), std::numeric_limits<int64_t>::max());
  pool.put(entry("a", 5000));
  pool.put(entry("b", 4200));
  EXPECT_EQ(pool.nextIdleDeadlineMs(), 5200);
  EXPECT_TRUE(pool.takeIdle(5199).empty());
  auto idle = pool.takeIdle(5200);
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0].key.host, "b");
  EXPECT_EQ(pool.nextIdleDeadlineMs(), 6000);
  EXPECT_EQ(pool.takeIdle(7000).size(), 1u);
  EXPECT_EQ(pool.size(), 0u);
}

TEST(ConnectionPool, MaxIdleZeroNeverCloses) {
  ConnectionPool pool(4, 0);
  pool.put(entry("a", 0));
  EXPECT_EQ(pool.nextIdleDeadlineMs(), std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(pool.takeIdle(std::numeric_limits<int64_t>::max() / 2).empty());
}

TEST(JobsSpec, FromWireFloorsWhatWouldSpinOrNeverFire) {
  capnp::MallocMessageBuilder m;
  auto w = m.initRoot<wire::JobsWorkloadSpec>();
  w.setMaxConnections(0);
  w.setFailureThreshold(0);
  w.setCommandTimeoutMs(0);
  w.setConnectTimeoutMs(0);
  w.setFailureStrategy(FS::CONTINUE);
  w.setLivenessCheck(true);
  JobsSpec s = JobsSpec::fromWire(w.asReader());
  EXPECT_EQ(s.maxConnections, 1u);
  EXPECT_EQ(s.failureThreshold, 1u);
  EXPECT_GT(s.commandTimeoutMs, 0u);
  EXPECT_GT(s.connectTimeoutMs, 0u);
  EXPECT_EQ(s.maxIdleMs, 0u);
  EXPECT_EQ(s.failureStrategy, FS::CONTINUE);
  EXPECT_TRUE(s.livenessCheck);
}

TEST(JobRequest, FromWireCopiesTheJob) {
  JobRequest j;
  {
    capnp::MallocMessageBuilder m;
    auto w = m.initRoot<wire::Job>();
    w.setId(42);
    w.setHost("h");
    w.setPort(2222);
    w.setUser("u");
    auto c = w.initCommands(2);
    c.set(0, "true");
    c.set(1, "uname -n");
    w.setReuse(true);
    w.setAttempt(0);
    j = JobRequest::fromWire(w.asReader());
  }  // the message is gone: the request must own its values
  EXPECT_EQ(j.id, 42u);
  EXPECT_EQ(j.host, "h");
  EXPECT_EQ(j.port, 2222);
  EXPECT_EQ(j.user, "u");
  EXPECT_EQ(j.commands, (std::vector<std::string>{"true", "uname -n"}));
  EXPECT_EQ(j.commandTimeoutMs, 0u);
  EXPECT_TRUE(j.reuse);
  EXPECT_EQ(j.attempt, 1u);
}

}  // namespace
}  // namespace sshsoak::agent
