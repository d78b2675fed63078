// The exec-poll workload: every intervalMs, one round of commands, each on
// its own exec channel, one after the other (sshd's MaxSessions counts open
// channels per connection). The rounds that complete are rolled up into one
// exec_poll_stats event per rollup period (rollup.h: count, bytes, round
// trip histogram, the remote host's CPU, memory and disk use parsed from
// the outputs), and with --log-detail full each is also one exec_poll
// event; a round that
// does not finish within the step timeout loses the session, as a dead
// link would.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "session_agent/workloads/exec_round.h"
#include "session_agent/workloads/poll_parsers.h"
#include "session_agent/workloads/rollup.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

// The standard round. The event's figures are parsed from the outputs in
// this order: /proc/stat, /proc/meminfo, df.
inline const std::vector<std::string>& pollCommands() {
  static const std::vector<std::string> commands = {"cat /proc/stat", "cat /proc/meminfo", "df -h /"};
  return commands;
}

struct ExecPollSpec {
  uint32_t intervalMs = 0;
  std::vector<std::string> commands;  // as pollCommands(): stat, meminfo, df outputs

  // The interval floored at MIN_WORKLOAD_INTERVAL_MS, no commands meaning
  // pollCommands(); throws std::invalid_argument on commands whose outputs
  // it cannot parse.
  static ExecPollSpec fromWire(wire::ExecPollWorkloadSpec::Reader spec);
};

class ExecPollWorkload final : public Workload {
 public:
  using Spec = ExecPollSpec;
  explicit ExecPollWorkload(ExecPollSpec spec) : spec_(std::move(spec)) {}

  void start(const WorkloadContext& context, int64_t nowMs) override;
  void onTurn(int64_t nowMs) override;
  StepResult step(int64_t nowMs) override;
  // The round's deadline: a round that does not finish loses the session.
  std::optional<SessionLost> afterWait(int64_t nowMs) override;
  bool wantsRead() const override { return round_.has_value(); }
  // A round sends all along: opens, execs, window adjusts, closes.
  bool wantsWrite() const override { return round_.has_value(); }
  // The next round's start matters only while no round is running: a round
  // stalled on a dead link would otherwise make the loop spin.
  int64_t nextWakeMs() const override {
    return std::min(period_.dueMs(), round_ ? round_->deadlineMs() : nextPollMs_);
  }
  bool hasBufferedData() const override { return round_ && round_->hasBufferedData(); }
  void flushRollup(int64_t nowMs) override;
  // The polls that fell due while the agent did not run are one poll, now,
  // then the period again (not a catch-up of back-to-back polls).
  void resumedAfterStall(int64_t nowMs) override {
    if (!round_ && nextPollMs_ < nowMs) nextPollMs_ = nowMs;
  }
  void abandon() override;
  void close() override { abandon(); }

 private:
  void finishRound(int64_t nowMs);
  // Sends the rollup if it holds a poll, and begins the next interval.
  void sendRollup(int64_t nowMs);

  ExecPollSpec spec_;
  std::optional<WorkloadContext> context_;
  std::optional<ExecRound> round_;
  int64_t nextPollMs_ = 0;
  int64_t roundStartUs_ = 0;  // the round trip on a µs clock, for the rollup's histogram
  ExecPollRollup rollup_;
  RollupPeriod period_;
  // The previous /proc/stat sample, across reconnects: busy CPU is the
  // share between two samples.
  std::optional<CpuTimes> lastCpu_;
};

}  // namespace sshsoak::agent
