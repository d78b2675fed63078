// Network faults and the reconnect pacer as the log tells them (issue 16):
// the summary's `faults` (one object per fault window: who was affected,
// who noticed and how fast, who came back and how fast) and `pacer` (the
// adaptive bucket's rate over the run), from the net_fault_started /
// net_fault_ended / pacer_rate lines and the agents' disconnected /
// reconnected lines. Fed by RunModel::onLine, so the live summary, the
// result table, the HTML and `sshsoak report` read one computation
// (docs/reference.md, "Network faults and reconnect pacing (issue 16)").
//
// Bounded at any run length: at most MAX_WINDOWS windows are kept (the
// rest are counted), and a window keeps per-session marks only while its
// sessions can still notice it or are still down; after that it is a few
// figures.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "supervisor/log_line.h"

namespace sshsoak {

class FaultModel {
 public:
  static constexpr size_t MAX_WINDOWS = 1000;
  // Without a run_started line that says otherwise: the --keepalive-*
  // defaults (5 s x 3).
  static constexpr int64_t DEFAULT_KEEPALIVE_BUDGET_MS = 15'000;
  // A disconnected line may reach the log a little after a later line of
  // another process: a window stops taking notices this long after its
  // notice period, by the lines' clocks.
  static constexpr int64_t LATE_LINE_GRACE_NS = 2'000'000'000;

  // run_started's `keepalive` ("5 s x 3"): the notice period is a window's
  // end plus interval x count.
  void onRunStarted(const Json& runStarted);
  // Every line of the run, in log order (session: the line's session_id).
  void onLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session);

  int64_t keepaliveBudgetMs() const { return keepaliveBudgetMs_; }
  size_t windowCount() const { return windows_.size(); }
  // Windows that still keep per-session marks (sessions can notice them,
  // or some that noticed are not back yet).
  size_t liveWindows() const { return live_.size(); }
  uint64_t ignored() const { return ignored_; }
  // The summary's `faults`: windows still open are closed at endNs (the
  // run's end) and say so (`open_at_end`). runStartNs: start_secs's origin.
  // sessionsInRun: how many a window of all sessions affects.
  Json json(int64_t endNs, int64_t runStartNs, uint32_t sessionsInRun) const;

 private:
  struct Mark {  // one affected session that noticed
    int64_t noticeNs = 0;        // its first disconnected line in the notice period
    int64_t lastDownNs = 0;      // its last one
    std::optional<int64_t> upNs;  // back (reconnected or connected) after lastDownNs
  };
  struct Window {
    uint32_t faultId = 0, occurrence = 0;
    std::string kind, spec;
    std::string startTs;
    int64_t startNs = 0;
    std::optional<int64_t> endNs;  // from net_fault_ended
    std::optional<int64_t> durationMs, plannedMs;
    bool allSessions = false;
    std::vector<uint32_t> sessions;  // sorted; dropped once the notice period is over
    uint32_t affected = 0;
    std::optional<uint64_t> connectionsAtStart, connectionsTouched, bytesHeld, resets;
    // While sessions can notice or are still down: per noticed session.
    std::unordered_map<uint32_t, Mark> marks;
    bool noticing = true;  // the notice period is not over
    // Settled figures: a notice period over, or a session back, for good.
    uint32_t noticed = 0, recovered = 0;
    std::vector<int64_t> noticeMs, recoverMs;  // while live
    std::optional<int64_t> noticeP50, noticeMax, recoverP50, recoverMax;  // once settled
    bool settled = false;
    bool affects(uint32_t session) const;
  };
  struct SessionSeen {
    std::optional<int64_t> downNs, upNs;  // its last disconnected, its last reconnected / connected
  };

  void start(const Json& line, int64_t ns);
  void end(const Json& line, int64_t ns);
  void down(uint32_t session, int64_t ns);
  void up(uint32_t session, int64_t ns);
  void advance(int64_t ns);
  void closeNotice(size_t window);
  void settle(size_t window);
  bool inNoticePeriod(const Window& w, int64_t ns) const;
  static void recordRecovery(Window& w, const Mark& m);

  int64_t keepaliveBudgetMs_ = DEFAULT_KEEPALIVE_BUDGET_MS;
  std::deque<Window> windows_;
  std::vector<size_t> live_;  // windows not yet settled
  std::map<std::pair<uint32_t, uint32_t>, size_t> open_;  // (fault_id, occurrence) -> window, until its end line
  std::unordered_map<uint32_t, SessionSeen> seen_;
  uint64_t ignored_ = 0;
};

// The adaptive reconnect pacer's rate over the run, from pacer_rate lines
// (written only when the rate changed) and run_started's reconnect_pacing
// and token_rate.
class PacerModel {
 public:
  static constexpr size_t MAX_REASONS = 16;
  void onRunStarted(const Json& runStarted);
  void onLine(const Json& line, const std::string& event);
  // The summary's `pacer`.
  Json json() const;
  std::string mode() const;
  uint64_t changes() const { return increases_ + decreases_; }
  std::optional<double> initialRate() const { return initial_; }

 private:
  std::string mode_;  // as run_started says; "" when it does not
  std::optional<double> initial_, min_, max_, last_;
  uint64_t increases_ = 0, decreases_ = 0, lines_ = 0;
  std::map<std::string, uint64_t> decreaseReasons_;
};

}  // namespace sshsoak
