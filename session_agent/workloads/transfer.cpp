#include "session_agent/workloads/transfer.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "session_agent/event_sink.h"
#include "session_agent/ssh/connection.h"
#include "shared/wire_names.h"

namespace sshsoak::agent {

namespace {

std::string mbText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string shortHash(const std::string& hex) { return hex.empty() ? "none" : hex.substr(0, 16); }

}  // namespace

TransferSpec TransferSpec::fromWire(wire::TransferWorkloadSpec::Reader spec) {
  TransferSpec s;
  s.up = spec.getUp();
  s.down = spec.getDown();
  s.bytesPerRound = spec.getBytesPerRound();
  s.upCommand = expandBytes(spec.getUpCommand().cStr(), s.bytesPerRound);
  s.downCommand = expandBytes(spec.getDownCommand().cStr(), s.bytesPerRound);
  s.windowBytes = std::max(spec.getWindowBytes(), MIN_WINDOW_BYTES);
  s.writeBytes = spec.getWriteBytes();
  s.stallMs = std::max(spec.getStallMs(), MIN_WORKLOAD_INTERVAL_MS);
  s.pauseMs = spec.getPauseMs();
  if (!s.up && !s.down) throw std::invalid_argument("transfer workload: neither up nor down asked for");
  if (s.bytesPerRound == 0) throw std::invalid_argument("transfer workload: 0 bytes per round");
  if (s.writeBytes == 0 || s.writeBytes > MAX_WRITE_BYTES) {
    throw std::invalid_argument("transfer workload: a write of " + std::to_string(s.writeBytes) +
                                " bytes; it takes 1 to " + std::to_string(MAX_WRITE_BYTES));
  }
  if (s.up && s.upCommand.empty()) throw std::invalid_argument("transfer workload: no up command");
  if (s.down && s.downCommand.empty()) throw std::invalid_argument("transfer workload: no down command");
  return s;
}

uint32_t TransferSpec::giveUpMs(uint32_t stepTimeoutMs) const {
  return static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(stepTimeoutMs, uint64_t{stallMs} * 10),
                                                  UINT32_MAX));
}

uint32_t TransferSpec::errorPauseMs() const { return std::max(pauseMs, ERROR_PAUSE_MS); }

wire::TransferDirection TransferSpec::directionOf(uint32_t round) const {
  if (up && down) return round % 2 == 1 ? wire::TransferDirection::UP : wire::TransferDirection::DOWN;
  return up ? wire::TransferDirection::UP : wire::TransferDirection::DOWN;
}

TransferWorkload::TransferWorkload(TransferSpec spec)
    : spec_(std::move(spec)),
      buffer_(std::make_unique<char[]>(spec_.writeBytes)),
      // New data every round and in every agent: a seed per process, mixed
      // with the round's number.
      seedBase_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}

void TransferWorkload::start(const WorkloadContext& context, int64_t nowMs) {
  context_.emplace(context);
  nextRoundMs_ = nowMs;
}

void TransferWorkload::onTurn(int64_t nowMs) {
  if (round_) {
    round_->beginTurn();
    return;
  }
  if (!closing_ && nowMs >= nextRoundMs_) begin(nowMs);
}

void TransferWorkload::begin(int64_t nowMs) {
  uint32_t number = ++rounds_;
  TransferRound::Plan plan;
  plan.direction = spec_.directionOf(number);
  plan.round = number;
  plan.command = plan.direction == wire::TransferDirection::UP ? spec_.upCommand : spec_.downCommand;
  plan.bytes = spec_.bytesPerRound;
  plan.windowBytes = spec_.windowBytes;
  plan.stallMs = spec_.stallMs;
  plan.giveUpMs = spec_.giveUpMs(context_->stepTimeoutMs);
  plan.seed = mixSeed(seedBase_ + number);
  round_ = std::make_unique<TransferRound>(std::move(plan), std::span<char>(buffer_.get(), spec_.writeBytes), nowMs);
}

StepResult TransferWorkload::step(int64_t nowMs) {
  StepResult result;
  if (closing_) stepClosing(result.progressed);
  if (!round_) return result;
  auto status = round_->step(context_->conn.session(), nowMs, result.progressed);
  if (auto stall = round_->takeEndedStall()) reportStall(*stall);
  switch (status) {
    case TransferRound::Status::Running:
      break;
    case TransferRound::Status::Failed:
      if (auto stall = round_->endStall(nowMs)) reportStall(*stall);
      result.lost = context_->channelFailed(round_->failure(), &wire::Event::Builder::initTransferError);
      if (!result.lost) drop(nowMs);
      break;
    case TransferRound::Status::Done:
      finish(nowMs);
      break;
  }
  return result;
}

std::optional<SessionLost> TransferWorkload::afterWait(int64_t nowMs) {
  if (closing_ && nowMs >= closingDeadlineMs_) closing_.reset();  // left to libssh2_session_free
  if (!round_) return std::nullopt;
  round_->checkStall(nowMs);
  if (!round_->timedOut(nowMs)) return std::nullopt;
  if (auto stall = round_->endStall(nowMs)) reportStall(*stall);
  uint32_t giveUp = round_->plan().giveUpMs;
  context_->reportError(&wire::Event::Builder::initTransferError, wire::FailureCategory::TIMEOUT,
                        std::string(directionName(round_->plan().direction)) + " round " +
                            std::to_string(round_->plan().round) + ": no progress for " + std::to_string(giveUp) +
                            " ms (max(step timeout, 10 x --transfer-stall-secs)); channel dropped");
  // Only this channel: the session answers keepalives, or the loop would
  // have found it dead.
  drop(nowMs);
  return std::nullopt;
}

int64_t TransferWorkload::nextWakeMs() const {
  if (closing_) return closingDeadlineMs_;
  if (!round_) return nextRoundMs_;
  if (round_->yielded()) return 0;
  return round_->nextDeadlineMs();
}

void TransferWorkload::finish(int64_t nowMs) {
  const RoundResult& r = round_->result();
  const auto& plan = round_->plan();
  std::string dir(directionName(r.direction));
  if (r.intact()) {
    double seconds = static_cast<double>(std::max<int64_t>(r.ns, 1)) / 1e9;
    double mbPerSec = static_cast<double>(r.bytes) / 1e6 / seconds;
    auto ms = static_cast<uint32_t>(std::min<int64_t>(r.ns / 1'000'000, UINT32_MAX));
    context_->events.emit([&](wire::Event::Builder e) {
      auto t = e.initTransferRound();
      t.setDirection(r.direction);
      t.setRound(r.round);
      t.setBytes(r.bytes);
      t.setMs(ms);
      t.setMbPerSec(mbPerSec);
      t.setCpuMs(static_cast<uint32_t>(std::min<int64_t>(r.cpuNs / 1'000'000, UINT32_MAX)));
      t.setWindowBytes(plan.windowBytes);
      t.setWriteBytes(spec_.writeBytes);
      t.setSha256(r.localSha256);
      t.setStalledMs(static_cast<uint32_t>(std::min<int64_t>(r.stalledMs, UINT32_MAX)));
      e.setSuccess(true);
      e.setElapsedMs(ms);
      e.setDetail(dir + " " + std::to_string(r.bytes) + " bytes in " + std::to_string(ms) + " ms (" +
                  mbText(mbPerSec) + " MB/s), sha256 " + shortHash(r.localSha256) + " on both ends");
    });
  } else {
    std::string why;
    if (r.bytes != r.expectedBytes) {
      why = std::to_string(r.bytes) + " bytes " + (r.direction == wire::TransferDirection::UP ? "sent" : "received") +
            ", expected " + std::to_string(r.expectedBytes);
    } else if (r.remoteSha256.empty()) {
      why = "the remote printed no SHA-256 (exit status " + std::to_string(r.exitStatus) + "); check --transfer-" +
            dir + "-cmd";
    } else {
      why = "sha256 differs: agent " + shortHash(r.localSha256) + ", remote " + shortHash(r.remoteSha256);
    }
    context_->events.emit([&](wire::Event::Builder e) {
      auto t = e.initTransferCorrupt();
      t.setDirection(r.direction);
      t.setRound(r.round);
      t.setBytes(r.bytes);
      t.setLocalSha256(r.localSha256);
      t.setRemoteSha256(r.remoteSha256);
      e.setSuccess(false);
      e.setDetail(dir + " round " + std::to_string(r.round) + ": " + why);
    });
  }
  round_.reset();
  nextRoundMs_ = nowMs + spec_.pauseMs;
}

void TransferWorkload::reportStall(const StallReport& stall) {
  const auto& plan = round_->plan();
  auto ms = static_cast<uint32_t>(std::min<int64_t>(stall.stalledMs, UINT32_MAX));
  context_->events.emit([&](wire::Event::Builder e) {
    auto t = e.initTransferStall();
    t.setDirection(plan.direction);
    t.setRound(plan.round);
    t.setStalledMs(ms);
    t.setBufferedBytes(stall.bufferedBytes);
    // A stall is what the remote did, not a failure of the round.
    e.setSuccess(true);
    e.setElapsedMs(ms);
    e.setDetail(std::string(directionName(plan.direction)) + " round " + std::to_string(plan.round) +
                ": nothing moved for " + std::to_string(ms) + " ms; the agent held " +
                std::to_string(stall.bufferedBytes) + " bytes");
  });
}

void TransferWorkload::drop(int64_t nowMs) {
  closing_ = std::move(round_);
  closingDeadlineMs_ = nowMs + context_->stepTimeoutMs;
  nextRoundMs_ = nowMs + spec_.errorPauseMs();
  bool progressed = false;
  stepClosing(progressed);
}

void TransferWorkload::stepClosing(bool& progressed) {
  if (!closing_->closeStep()) return;
  closing_.reset();
  progressed = true;
}

void TransferWorkload::abandon() {
  round_.reset();
  closing_.reset();
  context_.reset();
}

void TransferWorkload::close() {
  if (round_) round_->closeNow();
  if (closing_) closing_->closeNow();
  round_.reset();
  closing_.reset();
  context_.reset();
}

}  // namespace sshsoak::agent
