// Rollups of high-rate detail (issue 14, docs/reference.md "Long-run
// lines"): a session's PTY cycles and exec polls over one interval, summed
// into one pty_stats / exec_poll_stats event instead of one event each, so
// that a day's log stays small. What the per-cycle lines would have said is
// kept as counts and fixed-size HdrHistograms (shared/histogram.h), reset
// when the interval is sent: nothing per cycle outlives its interval.
// Errors are never rolled up (pty_error, exec_poll_error stay one event
// each). Pure: fed results, filled into wire builders.
#pragma once

#include <cstdint>

#include "events.capnp.h"
#include "session_agent/workloads/pty_stream.h"
#include "shared/histogram.h"

namespace sshsoak::agent {

// Copies a histogram's non-zero counts into a wire Histogram (sent sparse).
void fillHistogram(wire::Histogram::Builder out, const char* name, const LatencyHistogram& h);

// When the current interval began and when it is due; the interval after a
// late one starts when the late one was sent (intervals are never caught up
// on, and never overlap).
class RollupPeriod {
 public:
  void begin(int64_t nowMs, uint32_t periodMs) {
    startMs_ = nowMs;
    periodMs_ = periodMs;
    dueMs_ = nowMs + periodMs;
  }
  bool due(int64_t nowMs) const { return nowMs >= dueMs_; }
  int64_t dueMs() const { return dueMs_; }
  // The interval's length at nowMs, for interval_ms.
  uint32_t elapsedMs(int64_t nowMs) const;
  // The next interval, from nowMs.
  void next(int64_t nowMs) { begin(nowMs, periodMs_); }

 private:
  int64_t startMs_ = 0;
  int64_t dueMs_ = 0;
  uint32_t periodMs_ = 0;
};

class PtyRollup {
 public:
  void add(const PtyCycleResult& cycle, uint32_t expectedLines);
  bool empty() const { return cycles_ == 0; }
  uint32_t cycles() const { return cycles_; }
  uint32_t shortCycles() const { return shortCycles_; }
  // Fills the event (ptyStats, success) and resets.
  void reportAndReset(wire::Event::Builder event, uint32_t intervalMs);

 private:
  uint32_t cycles_ = 0;
  uint32_t shortCycles_ = 0;
  uint64_t bytes_ = 0;
  uint64_t lines_ = 0;
  uint32_t lastCycle_ = 0;
  LatencyHistogram cycleUs_;  // burst, first byte to end marker
  LatencyHistogram echoUs_;   // keystroke echo
};

class ExecPollRollup {
 public:
  void add(uint64_t rttUs, uint64_t bytes, double cpuBusyPct, double memUsedPct, double diskUsedPct);
  bool empty() const { return polls_ == 0; }
  uint32_t polls() const { return polls_; }
  // Fills the event (execPollStats, success) and resets.
  void reportAndReset(wire::Event::Builder event, uint32_t intervalMs);

 private:
  uint32_t polls_ = 0;
  uint64_t bytes_ = 0;
  LatencyHistogram rttUs_;
  float cpuBusyPctMax_ = 0;
  float memUsedPctLast_ = 0;
  float diskUsedPctLast_ = 0;
};

}  // namespace sshsoak::agent
