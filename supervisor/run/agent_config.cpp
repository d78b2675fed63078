#include "supervisor/run/agent_config.h"

#include <unistd.h>

namespace sshsoak {

void fillAgentConfig(wire::AgentConfig::Builder c, const cli::Options& options, uint32_t sessionId,
                     const std::string& bucketName, int64_t scheduleStartNs) {
  const auto& slot = options.slots[sessionId];
  uint32_t pollIntervalMs = options.pollIntervalSecs * 1000;
  uint32_t reconnectTimeoutMs = options.reconnectTimeoutSecs * 1000;
  c.setSessionId(sessionId);
  c.setHost(slot.host);
  c.setPort(slot.port);
  c.setUser(options.user);
  c.setKeyPath(options.keyPath);
  c.setPassphrase(options.passphrase);
  c.setKnownHostsPath(options.knownHostsPath);
  c.setHostKeyPolicy(options.hostKeyPolicy);
  c.setReconnectTimeoutMs(reconnectTimeoutMs);
  c.setMaxReconnectAttempts(options.maxReconnectAttempts);
  c.setKeepaliveIntervalMs(options.keepaliveIntervalSecs * 1000);
  c.setKeepaliveCountMax(options.keepaliveCountMax);
  c.setSupervisorPid(::getpid());
  c.setCrashForTesting(options.crashAgentsForTesting || options.crashSessionForTesting == sessionId);
  c.setTokenBucketName(bucketName);
  c.setBackoffBaseMs(options.backoffBaseMs);
  c.setBackoffCapMs(options.backoffCapMs);
  c.setRollupMs(options.rollupSecs * 1000);
  c.setHeartbeatMs(options.heartbeatSecs * 1000);
  c.setHangForTestingAfterMs(options.hangForTestingMs);
  c.setGarbageForTesting(options.garbageForTesting);
  c.setLogDetailFull(options.logDetail == cli::LogDetail::FULL);
  c.setLeakFdPerCycleForTesting(options.leakFdForTesting);
  c.setLeakKbPerCycleForTesting(options.leakKbForTesting);

  switch (options.workload) {
    case cli::WorkloadKind::CHURN: {
      auto churn = c.initWorkloads(1)[0].initChurn();
      churn.setRateStartPerSec(options.churnRate.startPerSec);
      churn.setRateEndPerSec(options.churnRate.endPerSec);
      churn.setRampMs(options.churnRate.rampSecs * 1000);
      churn.setRampSteps(options.churnRampSteps);
      churn.setAgents(static_cast<uint32_t>(options.slots.size()));
      churn.setAgentIndex(sessionId);
      churn.setScheduleStartNs(scheduleStartNs);
      churn.setCommand(options.churnCommand);
      churn.setReportIntervalMs(options.churnReportSecs * 1000);
      churn.setLogEachConnection(options.logEachConnection);
      churn.setConnectTimeoutMs(reconnectTimeoutMs);
      return;
    }
    case cli::WorkloadKind::TRANSFER: {
      auto transfer = c.initWorkloads(1)[0].initTransfer();
      transfer.setUp(options.transferUp);
      transfer.setDown(options.transferDown);
      transfer.setBytesPerRound(uint64_t{options.transferMb} * 1000 * 1000);
      transfer.setUpCommand(options.transferUpCommand);
      transfer.setDownCommand(options.transferDownCommand);
      transfer.setWindowBytes(options.transferWindowKb * 1024);
      transfer.setWriteBytes(options.transferWriteKb * 1024);
      transfer.setStallMs(options.transferStallSecs * 1000);
      transfer.setPauseMs(options.transferPauseMs);
      return;
    }
    case cli::WorkloadKind::JOBS: {
      auto jobs = c.initWorkloads(1)[0].initJobs();
      jobs.setMaxIdleMs(options.maxIdleSecs * 1000);
      jobs.setMaxConnections(options.maxConnectionsPerWorker);
      jobs.setFailureStrategy(options.failureStrategy);
      jobs.setFailureThreshold(options.failureThreshold);
      jobs.setCommandTimeoutMs(options.commandTimeoutSecs * 1000);
      jobs.setConnectTimeoutMs(reconnectTimeoutMs);
      jobs.setLivenessCheck(options.livenessCheck);
      return;
    }
    case cli::WorkloadKind::PTY: break;
  }
  // Side by side on every session, stepped in this order: the PTY stream,
  // then the exec polls.
  auto workloads = c.initWorkloads(2);
  auto pty = workloads[0].initPty();
  pty.setIntensity(options.intensity);
  pty.setIntervalMs(static_cast<uint32_t>(options.ptyIntervalSecs * 1000.0 + 0.5));
  pty.setRetryIntervalMs(pollIntervalMs);  // a failed PTY channel is retried at the poll pace
  auto poll = workloads[1].initExecPoll();
  poll.setIntervalMs(pollIntervalMs);
  // commands left empty: the agent's standard round, the only one whose
  // outputs it can parse (session_agent/workloads/exec_poll.h).
}

}  // namespace sshsoak
