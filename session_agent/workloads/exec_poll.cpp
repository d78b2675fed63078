#include "session_agent/workloads/exec_poll.h"

#include <algorithm>
#include <cstdio>

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

void ExecPollWorkload::start(const WorkloadContext& context, int64_t nowMs) {
  context_.emplace(context);
  nextPollMs_ = nowMs + spec_.intervalMs;
}

void ExecPollWorkload::onTurn(int64_t nowMs) {
  if (round_ || nowMs < nextPollMs_) return;
  round_.emplace();
  for (const auto& cmd : spec_.commands) round_->tasks.push_back(std::make_unique<ExecTask>(cmd));
  round_->startMs = monoMs();
  round_->deadlineMs = round_->startMs + context_->stepTimeoutMs;
}

StepResult ExecPollWorkload::step() {
  StepResult result;
  if (!round_) return result;
  auto& task = *round_->tasks[round_->current];
  auto status = task.step(context_->conn.session(), result.progressed);
  if (status == ExecTask::Status::Running) return result;
  if (status == ExecTask::Status::Failed) {
    const SshError& failure = task.failure();
    if (auto cause = context_->conn.transportFailure(failure.libssh2Error)) {
      result.lost = SessionLost{*cause, failure.message};
      return result;
    }
    context_->events.emit([&](wire::Event::Builder e) {
      context_->events.failure(e, e.initExecPollError(), wire::FailureCategory::CHANNEL, failure.message,
                               failure.libssh2Error);
    });
    round_.reset();
    nextPollMs_ = monoMs() + spec_.intervalMs;
    return result;
  }
  result.progressed = true;
  if (++round_->current < round_->tasks.size()) return result;
  finishRound();
  return result;
}

std::optional<SessionLost> ExecPollWorkload::afterWait(int64_t nowMs) {
  if (!round_ || nowMs < round_->deadlineMs) return std::nullopt;
  context_->events.emit([&](wire::Event::Builder e) {
    context_->events.failure(e, e.initExecPollError(), wire::FailureCategory::TIMEOUT,
                             "exec poll did not finish within " + std::to_string(context_->stepTimeoutMs) + " ms");
  });
  return SessionLost{wire::DisconnectCause::SILENCE, "exec poll timed out"};
}

void ExecPollWorkload::finishRound() {
  const auto& t = round_->tasks;
  uint32_t rttMs = static_cast<uint32_t>(monoMs() - round_->startMs);
  auto cpu = parseProcStat(t[0]->output());
  auto mem = parseMemUsedPct(t[1]->output());
  auto disk = parseDfUsedPct(t[2]->output());
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
    for (const auto& task : t) bytes += static_cast<uint32_t>(task->output().size());
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
  round_.reset();
  nextPollMs_ = std::max(nextPollMs_ + spec_.intervalMs, monoMs());
}

void ExecPollWorkload::abandon() {
  round_.reset();
  context_.reset();
}

}  // namespace sshsoak::agent
