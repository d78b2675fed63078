// What the supervisor learns from the event stream and from agent exits,
// per session and for the run, and the `summary` it makes of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "supervisor/run/exit_status.h"
#include "supervisor/run/jsonl_log.h"

namespace sshsoak {

struct SessionStats {
  uint32_t id = 0;
  std::string host;
  uint32_t connects = 0;
  uint32_t connectFailures = 0;
  uint32_t disconnects = 0;
  uint32_t injectedDrops = 0;
  uint32_t reconnects = 0;
  uint32_t reconnectFailures = 0;
  uint32_t execPolls = 0;
  uint32_t execPollErrors = 0;
  uint32_t ptyCycles = 0;
  uint32_t ptyErrors = 0;
  uint64_t ptyBytes = 0;
  uint32_t sessionsOpened = 0;  // SSH sessions that became usable
  std::vector<int64_t> reconnectMs;
  bool up = false;
  bool manual = false;
  bool authFailed = false;
  std::string state = "starting";
  std::string lastError;
  std::optional<ExitInfo> lastExit;
  bool crashed = false;  // the slot's last agent ended other than by a clean shutdown
  uint32_t crashes = 0;  // every unexpected agent end; each is one abnormal end
  uint32_t restarts = 0;
  bool gaveUp = false;   // crash loop: the slot is not restarted any more
  std::string gaveUpReason;
};

// Nearest-rank on the sorted values at index floor(n * q), clamped: the
// same figure the predecessor's one-liner prints from the log.
std::optional<int64_t> percentile(std::vector<int64_t> values, double q);

class RunStats {
 public:
  explicit RunStats(const std::vector<std::string>& hosts);

  void onEvent(wire::Event::Reader event);
  // expected: the exit came after our shutdown request.
  // Every unexpected exit counts as a crash. Returns the session's state
  // before the exit (for the agent_crashed line).
  std::string onAgentExit(uint32_t sessionId, const ExitInfo& exit, bool expected);
  void onAgentRestart(uint32_t sessionId);
  void onGaveUp(uint32_t sessionId, const std::string& reason);
  uint32_t totalCrashes() const { return sumOf(&SessionStats::crashes); }
  uint32_t totalRestarts() const { return sumOf(&SessionStats::restarts); }
  uint32_t totalInterrupts() const { return sumOf(&SessionStats::disconnects); }
  uint32_t totalReconnects() const { return sumOf(&SessionStats::reconnects); }
  std::vector<int64_t> allReconnectMs() const;

  const SessionStats& session(uint32_t id) const { return sessions_.at(id); }
  size_t sessionCount() const { return sessions_.size(); }
  // Agent crashes, plus sessions that ended abnormally without a crash at
  // the end (never connected, lost without recovery).
  uint32_t abnormalEnds() const;
  // Why the session ended abnormally, or empty.
  std::string abnormalReason(const SessionStats& s) const;

  Json summary(int64_t wallNs, double durationSecs, uint64_t linesLogged) const;

 private:
  uint32_t sumOf(uint32_t SessionStats::*field) const;
  std::vector<SessionStats> sessions_;
};

}  // namespace sshsoak
