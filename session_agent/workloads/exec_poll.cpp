#include "session_agent/workloads/exec_poll.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/connection.h"
#include "shared/clock.h"

namespace sshsoak::agent {

namespace {

std::string fmtPct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v);
  return buf;
}

}  // namespace

ExecPollSpec ExecPollSpec::fromWire(wire::ExecPollWorkloadSpec::Reader spec) {
  ExecPollSpec s{std::max(spec.getIntervalMs(), MIN_WORKLOAD_INTERVAL_MS), {}};
  for (auto command : spec.getCommands()) s.commands.emplace_back(command.cStr());
  if (s.commands.empty()) s.commands = pollCommands();
  // The event's figures are parsed from the outputs by position.
  if (s.commands.size() != pollCommands().size()) {
    throw std::invalid_argument("execPoll workload: " + std::to_string(s.commands.size()) +
                                " commands; it parses exactly " + std::to_string(pollCommands().size()) +
                                " outputs (/proc/stat, /proc/meminfo, df)");
  }
  return s;
}

void ExecPollWorkload::start(const WorkloadContext& context, int64_t nowMs) {
  context_.emplace(context);
  nextPollMs_ = nowMs + spec_.intervalMs;
  period_.begin(nowMs, std::max(context.detail.rollupMs, MIN_ROLLUP_MS));
}

void ExecPollWorkload::onTurn(int64_t nowMs) {
  if (period_.due(nowMs)) sendRollup(nowMs);
  if (round_ || nowMs < nextPollMs_) return;
  round_.emplace(spec_.commands, nowMs, context_->stepTimeoutMs);
  roundStartUs_ = monoNs() / 1000;
}

void ExecPollWorkload::sendRollup(int64_t nowMs) {
  if (!rollup_.empty()) {
    context_->events.emit([&](wire::Event::Builder e) { rollup_.reportAndReset(e, period_.elapsedMs(nowMs)); });
  }
  period_.next(nowMs);
}

void ExecPollWorkload::flushRollup(int64_t nowMs) {
  if (context_) sendRollup(nowMs);
}

StepResult ExecPollWorkload::step(int64_t nowMs) {
  StepResult result;
  if (!round_) return result;
  switch (round_->step(context_->conn.session(), result.progressed)) {
    case ExecRound::Status::Running:
      break;
    case ExecRound::Status::Failed:
      result.lost = context_->channelFailed(round_->failure(), &wire::Event::Builder::initExecPollError);
      if (!result.lost) {
        round_.reset();
        nextPollMs_ = nowMs + spec_.intervalMs;
      }
      break;
    case ExecRound::Status::Done:
      finishRound(nowMs);
      break;
  }
  return result;
}

std::optional<SessionLost> ExecPollWorkload::afterWait(int64_t nowMs) {
  if (!round_ || !round_->timedOut(nowMs)) return std::nullopt;
  context_->reportError(&wire::Event::Builder::initExecPollError, wire::FailureCategory::TIMEOUT,
                        "exec poll did not finish within " + std::to_string(context_->stepTimeoutMs) + " ms");
  return SessionLost{wire::DisconnectCause::SILENCE, "exec poll timed out"};
}

void ExecPollWorkload::finishRound(int64_t nowMs) {
  const ExecRound& round = *round_;
  uint32_t rttMs = static_cast<uint32_t>(nowMs - round.startMs());
  auto cpu = parseProcStat(round.output(0));
  auto mem = parseMemUsedPct(round.output(1));
  auto disk = parseDfUsedPct(round.output(2));
  const SshError* problem = !cpu ? &cpu.error() : !mem ? &mem.error() : !disk ? &disk.error() : nullptr;
  if (problem != nullptr) {
    context_->events.emit([&](wire::Event::Builder e) {
      context_->events.failure(e, e.initExecPollError(), problem->category, problem->message);
      e.setElapsedMs(rttMs);
    });
  } else {
    double busy = cpuBusyPct(*cpu, lastCpu_);
    lastCpu_ = *cpu;
    double memPct = *mem, diskPct = *disk;
    uint32_t bytes = 0;
    for (size_t i = 0; i < round.size(); ++i) bytes += static_cast<uint32_t>(round.output(i).size());
    rollup_.add(static_cast<uint64_t>(std::max<int64_t>(monoNs() / 1000 - roundStartUs_, 0)), bytes, busy, memPct,
                diskPct);
    if (context_->detail.full) {
      context_->events.emit([&](wire::Event::Builder e) {
        auto p = e.initExecPoll();
        p.setRttMs(rttMs);
        p.setCpuBusyPct(static_cast<float>(busy));
        p.setMemUsedPct(static_cast<float>(memPct));
        p.setDiskUsedPct(static_cast<float>(diskPct));
        p.setBytes(bytes);
        e.setSuccess(true);
        e.setElapsedMs(rttMs);
        e.setDetail("cpu=" + fmtPct(busy) + " mem=" + fmtPct(memPct) + " disk=" + fmtPct(diskPct) +
                    " rtt_ms=" + std::to_string(rttMs));
      });
    }
  }
  round_.reset();
  nextPollMs_ = std::max(nextPollMs_ + spec_.intervalMs, nowMs);
}

void ExecPollWorkload::abandon() {
  round_.reset();
  context_.reset();
}

}  // namespace sshsoak::agent
