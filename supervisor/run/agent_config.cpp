#include "supervisor/run/agent_config.h"

#include <unistd.h>

namespace sshsoak {

void fillAgentConfig(wire::AgentConfig::Builder c, const cli::Options& options, uint32_t sessionId,
                     const std::string& bucketName) {
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
