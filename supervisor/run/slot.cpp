#include "supervisor/run/slot.h"

#include "shared/wire_names.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <cerrno>
#include <stdexcept>

#include "shared/clock.h"

namespace sshsoak {

namespace {

// The table of slot.h: which state may follow which.
bool allowed(SlotState from, SlotState to) {
  using S = SlotState;
  switch (from) {
    case S::Starting: return to == S::Running || to == S::Draining;
    case S::Running: return to == S::Draining;
    case S::Draining: return to == S::Finished || to == S::Restarting || to == S::GaveUp;
    case S::Restarting: return to == S::Starting || to == S::GaveUp || to == S::Finished;
    case S::GaveUp:
    case S::Finished: return false;
  }
  return false;
}

}  // namespace

std::string_view slotStateName(SlotState state) {
  switch (state) {
    case SlotState::Starting: return "starting";
    case SlotState::Running: return "running";
    case SlotState::Draining: return "draining";
    case SlotState::Restarting: return "restarting";
    case SlotState::GaveUp: return "gave up";
    case SlotState::Finished: return "finished";
  }
  return "?";
}

Slot::Slot(uint32_t id, std::string host, RestartConfig restart, boost::asio::io_context& io)
    : id_(id), host_(std::move(host)), policy_(restart), restartTimer_(io) {}

Slot::~Slot() { killAgent(); }

void Slot::transition(SlotState to, std::string_view why) {
  SlotState from = state_;
  if (!allowed(from, to)) {
    throw std::logic_error("session " + std::to_string(id_) + ": no slot transition " +
                           std::string(slotStateName(from)) + " -> " + std::string(slotStateName(to)) + " (" +
                           std::string(why) + ")");
  }
  state_ = to;
  spdlog::debug("session {:02}: {} -> {} ({})", id_, slotStateName(from), slotStateName(to), why);
}

void Slot::attach(pid_t pid, UniqueFd commandFd, std::unique_ptr<boost::asio::posix::stream_descriptor> events) {
  // The first agent is spawned in the Starting the slot was created in;
  // every later one after a restart delay.
  if (state_ == SlotState::Restarting) {
    transition(SlotState::Starting, "agent pid " + std::to_string(pid));
  } else if (state_ != SlotState::Starting || pid_ > 0) {
    throw std::logic_error("session " + std::to_string(id_) + ": an agent attached in state " +
                           std::string(slotStateName(state_)));
  }
  pid_ = pid;
  reaped_ = false;
  waitStatus_ = 0;
  startedMono_ = monoMs();
  // An agent that never says agent_started is silent from its spawn on.
  lastHeardMono_ = startedMono_;
  lastEvent_ = {};
  lastPhase_.clear();
  killedBecause_.clear();
  connectedSinceSpawn_ = false;
  commandFd_ = std::move(commandFd);
  events_ = std::move(events);
  eof_ = false;
  frames_ = FrameReader();
}

bool Slot::tryReap() {
  if (!agentRunning()) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
  reaped_ = true;
  waitStatus_ = status;
  return true;
}

void Slot::sendKill() {
  if (agentRunning()) ::kill(pid_, SIGKILL);
}

void Slot::killAgent() {
  if (!agentRunning()) return;
  sendKill();
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  waitStatus_ = status;
}

void Slot::detach() {
  pid_ = -1;
  commandFd_.reset();
  events_.reset();
}

void Slot::pipeEnded() {
  eof_ = true;
  if (events_) {
    boost::system::error_code ignored;
    events_->close(ignored);
  }
}

bool Slot::send(capnp::MessageBuilder& message) {
  if (!commandFd_) return false;
  return writeFrame(commandFd_.get(), message);
}

void Slot::heard(int64_t nowMono, wire::Event::Which event, std::string_view heartbeatPhase) {
  lastHeardMono_ = nowMono;
  // A heartbeat tells the phase; the last other event tells what happened.
  if (event == wire::Event::HEARTBEAT) {
    lastPhase_.assign(heartbeatPhase.substr(0, 32));
  } else {
    lastEvent_ = eventName(event);
  }
}

std::optional<uint32_t> Slot::restartMark(wire::Event::Which event) {
  using W = wire::Event::Which;
  bool mark = restarts_ > 0 && (event == W::STARTED || (event == W::CONNECTED && !connectedSinceSpawn_));
  if (event == W::CONNECTED) connectedSinceSpawn_ = true;
  return mark ? std::optional<uint32_t>(restarts_) : std::nullopt;
}

void Slot::scheduleRestart(int64_t delayMs, std::function<void()> then) {
  transition(SlotState::Restarting, "restart in " + std::to_string(delayMs) + " ms");
  restartTimer_.expires_after(std::chrono::milliseconds(delayMs));
  restartTimer_.async_wait([then = std::move(then)](const boost::system::error_code& ec) {
    if (!ec) then();
  });
}

}  // namespace sshsoak
