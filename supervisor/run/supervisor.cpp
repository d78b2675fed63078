#include "supervisor/run/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <capnp/schema.h>
#include <algorithm>
#include <cstdio>

#include "events.capnp.h"
#include "shared/agent_fds.h"
#include "shared/clock.h"
#include "shared/wire_names.h"
#include "shared/spawn.h"
#include "supervisor/run/agent_config.h"
#include "supervisor/run/status_line.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/ci_results.h"
#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/report.h"

namespace bp = boost::process;
namespace asio = boost::asio;

namespace sshsoak {

namespace {

// After killing the agents left at the end, how long their pipes get to
// reach EOF before the loop stops anyway.
constexpr std::chrono::seconds KILLED_PIPES_BACKSTOP{2};

std::string twoDigits(uint32_t id) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02u", id);
  return buf;
}

}  // namespace

Supervisor::Supervisor(const cli::Options& options, std::string agentPath, JsonlLog& log)
    : options_(options),
      agentPath_(std::move(agentPath)),
      log_(log),
      run_(std::make_shared<RunAccumulator>([&] {
        std::vector<std::string> hosts;
        for (const auto& slot : options.slots) hosts.push_back(slot.text());
        return hosts;
      }(), options.firstSessionId)),
      model_(run_->model()),
      signals_(io_, SIGINT, SIGTERM, SIGCHLD),
      durationTimer_(io_),
      shutdownTimer_(io_),
      checkpointTimer_(io_),
      watchdogTimer_(io_) {
  log_.setListener([this](const Json& line) { run_->onLine(line); });
  log_.setFailureHandler([this](const LogFailure& failure) { onLogFailure(failure); });
}

Supervisor::~Supervisor() {
  log_.setListener(nullptr);
  log_.setFailureHandler(nullptr);
  if (sampler_) sampler_->stop();
  // Whatever path got us here, no agent outlives the run.
  slots_.clear();  // each slot kills and reaps an agent still running
}

std::vector<pid_t> Supervisor::agentPids() const {
  std::vector<pid_t> pids;
  for (const auto& slot : slots_) {
    if (slot->agentRunning()) pids.push_back(slot->pid());
  }
  return pids;
}

void Supervisor::spawn(Slot& slot) {
  Pipe events = makePipe();
  Pipe commands = makePipe();
  auto eventStream = std::make_unique<asio::posix::stream_descriptor>(io_, events.readEnd.release());
  ChildSetup setup;
  setup.fdMap = {{{events.writeEnd.get(), AGENT_EVENT_FD}, {commands.readEnd.get(), AGENT_COMMAND_FD}}};
  // argv is only a name for ps/top: "sshsoak-agent 03 host:22". The
  // configuration (with any passphrase) goes through the command pipe.
  bp::child child(bp::exe = agentPath_, bp::args = {twoDigits(slot.id()), slot.host()},
                  bp::std_in < bp::null, bp::std_out > bp::null, setup);
  pid_t pid = child.id();
  child.detach();  // reaped by PID on SIGCHLD, with the raw status kept
  slot.attach(pid, std::move(commands.writeEnd), std::move(eventStream));
  if (sampler_) sampler_->setAgent(slot.id(), pid);

  capnp::MallocMessageBuilder message;
  auto config = message.initRoot<wire::AgentConfig>();
  fillAgentConfig(config, options_, slot.id(), bucket_ ? bucket_->name() : "", startWallNs_);
  if (relay_) {
    // --fault: through the relay's port for this session (the lines keep
    // naming the real target).
    config.setHost("127.0.0.1");
    config.setPort(relay_->port(slot.id()));
  }
  slot.send(message);  // an agent dead already shows as EOF + exit
  armRead(slot);
}

void Supervisor::armRead(Slot& slot) {
  slot.events()->async_read_some(
      asio::buffer(slot.readBuffer()), [this, &slot](const boost::system::error_code& ec, size_t n) {
        if (ec) {
          if (ec != asio::error::operation_aborted) {
            slot.pipeEnded();
            onAgentEnding(slot, "event pipe closed");
          }
          return;
        }
        onEventBytes(slot, n);
        if (slot.events()) armRead(slot);
      });
}

// One read from an agent's event pipe. Two kinds of failure are kept apart:
// a frame the agent got wrong (not a frame, too large, not an Event, an
// event of a union member this build does not know, another slot's session
// id) is the agent's protocol error: logged with the slot, the agent killed
// and restarted through the crash path. Anything our own handling of a good
// event throws (the log, the model, the dispatcher) is a bug of ours: it is
// not caught here, and ends the run as an internal error (exit 70).
void Supervisor::onEventBytes(Slot& slot, size_t n) {
  slot.frames().feed(slot.readBuffer().data(), n);
  for (;;) {
    std::optional<kj::Array<capnp::word>> words;
    try {
      words = slot.frames().next();
    } catch (const FrameError& e) {
      agentProtocolError(slot, e.what());
      return;
    }
    if (!words) return;
    std::optional<capnp::FlatArrayMessageReader> reader;
    std::optional<wire::Event::Reader> decoded;
    Json line;
    std::string phase;
    std::string error;
    try {
      // eventToJson reads every field the line shows: a bad segment table,
      // pointer or text in the frame throws here, before anything is
      // logged or counted.
      reader.emplace(*words);
      auto event = reader->getRoot<wire::Event>();
      auto which = static_cast<uint16_t>(event.which());
      if (which >= capnp::Schema::from<wire::Event>().getUnionFields().size()) {
        error = "unknown event (union member " + std::to_string(which) + ")";
      } else if (event.getSessionId() != slot.id()) {
        error = "event claims session " + std::to_string(event.getSessionId());
      } else {
        if (event.which() == wire::Event::HEARTBEAT) {
          phase = event.getHeartbeat().getPhase().cStr();
        } else if (!(jobs_ && event.which() == wire::Event::JOB_RESULT)) {
          line = eventToJson(event, slot.host());
        }
        decoded = event;
      }
    } catch (const kj::Exception& e) {
      error = "undecodable event: " + std::string(e.getDescription().cStr());
    }
    if (!decoded) {
      agentProtocolError(slot, error);
      return;
    }
    onEvent(slot, *decoded, std::move(line), phase);
    // A protocol error found while handling it (an undecodable job result)
    // ended the pipe: what is still buffered from that agent is not read.
    if (slot.events() == nullptr) return;
  }
}

// Kills an agent that broke the protocol: a stream that went wrong cannot be
// resynchronised. The crash line that follows says why.
void Supervisor::agentProtocolError(Slot& slot, const std::string& error) {
  spdlog::error("session {:02}: agent pid {} broke the event protocol ({}); killing it", slot.id(), slot.pid(),
                error);
  Json j = lineHead(wallNs(), slot.id(), slot.host(), "agent_protocol_error");
  j["detail"] = error;
  j["success"] = false;
  j["pid"] = slot.pid();
  log_.write(j);
  slot.killedBecause("killed for a protocol error: " + error);
  slot.pipeEnded();
  slot.sendKill();
  onAgentEnding(slot, "protocol error");
}

void Supervisor::onEvent(Slot& slot, wire::Event::Reader event, Json line, const std::string& phase) {
  using W = wire::Event::Which;
  slot.heard(monoMs(), event.which(), phase);
  if (slot.state() == SlotState::Starting) {
    slot.transition(SlotState::Running, "first event: " + std::string(eventName(event.which())));
  }
  // A heartbeat is life, and nothing else: never logged.
  if (event.which() == W::HEARTBEAT) return;
  // A job's result is the dispatcher's to log (only failures, or each
  // job with --log-each-job), with what only the queue knows; a done
  // job costs no JSON at all.
  if (jobs_ && event.which() == W::JOB_RESULT) {
    // Not rendered above: the dispatcher reads the frame itself. A bad
    // pointer or text in it throws kj::Exception there, and only there (our
    // own code never throws one): the agent's protocol error, as above.
    try {
      jobs_->onJobResult(slot.id(), event);
    } catch (const kj::Exception& e) {
      agentProtocolError(slot, "undecodable job result: " + std::string(e.getDescription().cStr()));
    }
    return;
  }
  // A restarted agent's first session is logged like any connect, marked
  // with the restart count so that the summary and a reader can tell.
  if (auto restart = slot.restartMark(event.which())) line["restart"] = *restart;
  log_.write(line);
  if (jobs_ && event.which() == W::STARTED) jobs_->onAgentStarted(slot.id());
  switch (event.which()) {
    case W::CONNECTED:
    case W::RECONNECTED:
      spdlog::info("session {:02} {} {} in {} ms ({})", slot.id(), eventName(event.which()), slot.host(),
                   event.getElapsedMs(), std::string(event.getDetail()));
      break;
    case W::CONNECT_FAILED:
    case W::RECONNECT_FAILED:
    case W::DISCONNECTED:
    case W::EXEC_POLL_ERROR:
    case W::PTY_ERROR:
    case W::AUTH_FAILED:
    case W::MANUAL_RECONNECT:
    case W::TRANSFER_CORRUPT:
    case W::TRANSFER_ERROR:
    case W::PTY_FLOOD:
      spdlog::warn("session {:02} {} {}: {}", slot.id(), eventName(event.which()), slot.host(),
                   std::string(event.getDetail()));
      break;
    // Every event is named here (no default): a new one is a -Wswitch
    // warning until someone decides how loud it is on the console.
    case W::STARTED:
    case W::DISCONNECT_INJECTED:
    case W::EXEC_POLL:
    case W::PTY_CYCLE:
    case W::STOPPED:
    case W::CHURN_STATS:
    case W::CHURN_CONNECTION:
    case W::TRANSFER_ROUND:
    case W::TRANSFER_STALL:
    case W::JOB_RESULT:
    case W::JOB_CONNECTION_CLOSED:
    case W::PTY_STATS:
    case W::EXEC_POLL_STATS:
    case W::HEARTBEAT:
      spdlog::debug("session {:02} {}", slot.id(), eventName(event.which()));
      break;
  }
}

// The watchdog (docs/reference.md, "Heartbeat and watchdog"): one timer for
// all slots, one pass over them per heartbeat period, so at 1000 sessions it
// costs 1000 comparisons every few seconds, not a timer per slot.
void Supervisor::armWatchdog() {
  if (options_.heartbeatSecs == 0) return;
  const int64_t periodMs = int64_t{options_.heartbeatSecs} * 1000;
  lastWatchdogMono_ = monoMs();
  watchdogTimer_.expires_after(std::chrono::milliseconds(periodMs));
  watchdogTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shuttingDown_) return;
    checkAgentsAlive();
    armWatchdog();
  });
}

void Supervisor::checkAgentsAlive() {
  const int64_t periodMs = int64_t{options_.heartbeatSecs} * 1000;
  const int64_t boundMs = 3 * periodMs;
  int64_t now = monoMs();
  // Our own tick came late by more than a period: the supervisor was
  // stopped or stalled, and could not have read what the agents sent
  // meanwhile. That silence is ours: every agent gets a fresh bound.
  if (now - lastWatchdogMono_ > 2 * periodMs) {
    spdlog::warn("the supervisor did not run for {} ms; agents' silence meanwhile is not counted",
                 now - lastWatchdogMono_ - periodMs);
    for (auto& slot : slots_) slot->forgiveSilence(now);
    return;
  }
  for (auto& slot : slots_) {
    if (slot->state() != SlotState::Starting && slot->state() != SlotState::Running) continue;
    int64_t silentMs = now - slot->lastHeardMono();
    if (silentMs >= boundMs) agentUnresponsive(*slot, silentMs);
  }
}

// Logged, then killed; its exit takes the crash path (restart policy,
// backoff, crash-loop give-up), and its agent_crashed line says why.
void Supervisor::agentUnresponsive(Slot& slot, int64_t silentMs) {
  std::string lastEvent(slot.lastEvent());
  spdlog::error("session {:02}: agent pid {} sent nothing for {} ms (last event {}, phase {}); killing it",
                slot.id(), slot.pid(), silentMs, lastEvent.empty() ? "none" : lastEvent,
                slot.lastPhase().empty() ? "none" : slot.lastPhase());
  Json j = lineHead(wallNs(), slot.id(), slot.host(), "agent_unresponsive");
  j["detail"] = "no frame for " + std::to_string(silentMs) + " ms (bound: 3 x --heartbeat-secs " +
                std::to_string(options_.heartbeatSecs) + ")";
  j["success"] = false;
  j["pid"] = slot.pid();
  j["silent_ms"] = silentMs;
  // "after connected", not "connected": no event name is ever a field's
  // value, so grep -c '"connected"' counts connected events.
  j["last_event"] = lastEvent.empty() ? Json(nullptr) : Json("after " + lastEvent);
  j["last_phase"] = slot.lastPhase().empty() ? Json(nullptr) : Json(slot.lastPhase());
  log_.write(j);
  slot.killedBecause("killed as unresponsive");
  slot.sendKill();  // reaped on SIGCHLD, like any exit
  onAgentEnding(slot, "unresponsive");
}

void Supervisor::reapChildren() {
  for (auto& slot : slots_) {
    if (slot->tryReap()) onAgentEnding(*slot, "agent exited: " + slot->exitInfo().text());
  }
}

// The agent exited, or its event pipe ended: the slot drains, and the exit
// is recorded once both have happened.
void Supervisor::onAgentEnding(Slot& slot, std::string_view why) {
  if (jobs_) jobs_->onWorkerLeaving(slot.id());
  if (slot.state() == SlotState::Starting || slot.state() == SlotState::Running) {
    slot.transition(SlotState::Draining, why);
  }
  maybeFinished(slot);
}

// An agent is done when it has exited AND its event pipe is drained: every
// event it wrote before it died is logged before its exit is. Then the slot
// is finished (the run is ending), restarts or is given up.
void Supervisor::maybeFinished(Slot& slot) {
  if (slot.state() != SlotState::Draining || !slot.exitedAndDrained()) return;
  ExitInfo exit = slot.exitInfo();
  bool expected = shuttingDown_ && !killed_;
  std::string lastState(stateName(model_.stateBeforeExit(options_.firstSessionId + slot.id())));
  bool crashed = !expected || !exit.clean();
  Json j = lineHead(wallNs(), slot.id(), slot.host(), crashed ? "agent_crashed" : "agent_exited");
  // "killed as unresponsive: signal 9 (SIGKILL)": why we killed it, if we did.
  j["detail"] = slot.killedBecause().empty() ? exit.text() : slot.killedBecause() + ": " + exit.text();
  j["success"] = !crashed;
  j["pid"] = slot.pid();
  j["exit_code"] = exit.signaled ? Json(nullptr) : Json(exit.code);
  j["signal"] = exit.signaled ? Json(exit.signal) : Json(nullptr);
  j["signal_name"] = exit.signaled ? Json(exit.signalName()) : Json(nullptr);
  j["core_dumped"] = exit.coreDumped;
  j["uptime_ms"] = slot.uptimeMs(monoMs());
  if (crashed) j["last_state"] = lastState;
  pid_t pid = slot.pid();
  slot.detach();
  if (sampler_) sampler_->setAgent(slot.id(), 0);
  // After the exit line: the job it had in flight is retried or ended.
  auto jobsAfterExit = [&] {
    if (jobs_) jobs_->onWorkerGone(slot.id(), shuttingDown_);
  };
  if (crashed && !shuttingDown_) {
    spdlog::warn("session {:02}: agent pid {} crashed with {} (session was {})", slot.id(), pid,
                 j["detail"].get<std::string>(), lastState);
    RestartDecision d = slot.onCrash(monoMs());
    j["crashes_in_window"] = d.crashesInWindow;
    j["restart_in_ms"] = d.giveUp ? Json(nullptr) : Json(d.delayMs);
    log_.write(j);
    jobsAfterExit();
    if (d.giveUp) {
      giveUp(slot, std::to_string(d.crashesInWindow) + " crashes within " +
                       std::to_string(options_.restartWindowSecs) + " s (--restart-max " +
                       std::to_string(options_.restartMax) + ")");
      return;
    }
    spdlog::info("session {:02}: restarting its agent in {} ms", slot.id(), d.delayMs);
    slot.scheduleRestart(d.delayMs, [this, &slot] {
      if (!shuttingDown_) restart(slot);
    });
    return;
  }
  if (crashed) j["restart_in_ms"] = nullptr;  // the run is ending: no restart
  log_.write(j);
  jobsAfterExit();
  if (crashed) spdlog::warn("session {:02}: agent pid {} ended with {}", slot.id(), pid, exit.text());
  slot.transition(SlotState::Finished, exit.text());
  if (shuttingDown_ && allFinished()) io_.stop();
}

void Supervisor::restart(Slot& slot) {
  slot.countRestart();
  try {
    spawn(slot);
  } catch (const std::exception& e) {
    // The binary went away or the system refuses: retrying cannot help.
    giveUp(slot, std::string("cannot start the agent ") + agentPath_ + ": " + e.what());
  }
}

void Supervisor::giveUp(Slot& slot, const std::string& reason) {
  slot.transition(SlotState::GaveUp, reason);
  Json j = lineHead(wallNs(), slot.id(), slot.host(), "agent_gave_up");
  j["detail"] = reason + std::string(GAVE_UP_DETAIL_SUFFIX);
  j["success"] = false;
  j["crashes"] = model_.session(options_.firstSessionId + slot.id()).crashes;
  j["restarts"] = slot.restarts();
  log_.write(j);
  spdlog::error("session {:02}: given up: {}; not restarted", slot.id(), reason);
}

bool Supervisor::allFinished() const {
  return std::all_of(slots_.begin(), slots_.end(), [](const auto& slot) { return slot->ended(); });
}

void Supervisor::sendCommand(Slot& slot, bool shutdown) {
  capnp::MallocMessageBuilder message;
  auto cmd = message.initRoot<wire::Command>();
  if (shutdown) cmd.setShutdown();
  else cmd.setDropConnection();
  slot.send(message);
}

void Supervisor::beginShutdown(const std::string& why) {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  spdlog::info("stopping: {}; closing {} sessions", why, slots_.size());
  if (jobs_) jobs_->onShutdown();
  durationTimer_.cancel();
  for (auto& t : faultTimers_) t->cancel();
  checkpointTimer_.cancel();  // the summary follows
  watchdogTimer_.cancel();
  // The figures describe the run, not the closing of its sessions: the
  // last pass reads the sessions as they stand before they are told to stop
  // (CLOSE_WAIT at the end).
  finalSample();
  for (auto& slot : slots_) {
    slot->cancelRestart();
    sendCommand(*slot, true);
    switch (slot->state()) {
      case SlotState::Starting:
      case SlotState::Running: slot->transition(SlotState::Draining, "stopping: " + why); break;
      case SlotState::Restarting: slot->transition(SlotState::Finished, "the run is ending: no restart"); break;
      case SlotState::Draining:
      case SlotState::GaveUp:
      case SlotState::Finished: break;
    }
  }
  if (allFinished()) {
    io_.stop();
    return;
  }
  shutdownTimer_.expires_after(std::chrono::seconds(options_.shutdownTimeoutSecs));
  shutdownTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) killRemaining();
  });
}

void Supervisor::killRemaining() {
  killed_ = true;
  for (auto& slot : slots_) {
    if (!slot->agentRunning()) continue;
    spdlog::warn("session {:02}: agent pid {} did not stop within {} s; killing it", slot->id(), slot->pid(),
                 options_.shutdownTimeoutSecs);
    // SIGKILL only: every agent left is signalled at once and reaped on
    // SIGCHLD as it dies. Reaping each before signalling the next would let
    // a later agent finish its clean stop meanwhile and be logged as killed.
    slot->sendKill();
  }
  // A killed agent's pipe reaches EOF at once; this is only a backstop.
  shutdownTimer_.expires_after(KILLED_PIPES_BACKSTOP);
  shutdownTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) io_.stop();
  });
}

// After the loop: an agent still unrecorded (the backstop stopped the loop)
// is killed and reaped if need be, what its pipe still holds is logged, then
// its exit.
void Supervisor::recordRemaining() {
  for (auto& slot : slots_) {
    if (slot->pid() <= 0) continue;
    slot->killAgent();
    boost::system::error_code ec;
    if (auto* events = slot->events()) events->non_blocking(true, ec);
    while (auto* events = slot->events()) {
      size_t n = events->read_some(asio::buffer(slot->readBuffer()), ec);
      if (ec || n == 0) break;
      onEventBytes(*slot, n);
    }
    slot->pipeEnded();
    onAgentEnding(*slot, "the run ended");
  }
}

void Supervisor::armSignals() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGCHLD) {
      reapChildren();
      reapFaults(false);
    } else if (shuttingDown_) {
      spdlog::warn("second {}: killing the agents now", sig == SIGINT ? "SIGINT" : "SIGTERM");
      killRemaining();
    } else {
      beginShutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    armSignals();
  });
}

void Supervisor::startRelay() {
  if (options_.netFaults.empty()) return;
  // Beside the agent, as the agent is beside sshsoak.
  std::string dir = agentPath_.substr(0, agentPath_.rfind('/') + 1);
  relay_ = std::make_unique<FaultRelay>(io_, dir + "sshsoak-proxy", options_, startMono_ * 1'000'000);
  spdlog::info("fault relay sshsoak-proxy pid {}: {} fault(s), sessions connect through it", relay_->pid(),
               options_.netFaults.size());
  relay_->start([this](const Json& report) { onRelayReport(report); },
                [this](const std::string& how) {
                  relayFailure_ = "the fault relay sshsoak-proxy (pid " + std::to_string(relay_->pid()) +
                                  ") died during the run: " + how;
                  spdlog::error("{}; ending the run (its sessions cannot reach the server without it; exit 71)",
                                relayFailure_);
                  beginShutdown("the fault relay died");
                });
}

void Supervisor::onRelayReport(const Json& report) {
  Json line = netFaultLine(report, options_.netFaults, static_cast<uint32_t>(options_.slots.size()),
                           options_.firstSessionId);
  if (line.is_null()) return;
  spdlog::info("{} {} (occurrence {}): {} connection(s)", line["event"].get<std::string>(),
               line["spec"].get<std::string>(), line["occurrence"].get<uint32_t>(),
               line["connections"].get<uint64_t>());
  log_.write(line);
}

void Supervisor::startSampling() {
  SamplerConfig config;
  config.intervalMs = int64_t{options_.sampleIntervalSecs} * 1000;
  config.detailMs = int64_t{options_.detailSampleSecs} * 1000;
  config.serverPid = options_.serverPid;
  config.sessions = static_cast<uint32_t>(slots_.size());
  for (const auto& slot : options_.slots) {
    if (std::find(config.targetPorts.begin(), config.targetPorts.end(), slot.port) == config.targetPorts.end()) {
      config.targetPorts.push_back(slot.port);
    }
  }
  // The thread only posts; the pass is taken and logged here, on the loop.
  sampler_ = std::make_unique<SamplerThread>(std::move(config), startMono_, [this] {
    asio::post(io_, [this] { onSamplePasses(); });
  });
}

void Supervisor::onSamplePasses() {
  if (!sampler_) return;
  while (sampler_->take(pass_)) recordPass(pass_);
}

void Supervisor::recordPass(const SamplePass& pass) {
  // Each sampling pass (about a second): a log deleted or replaced under a
  // quiet run is found now, not at its next line.
  log_.checkFile();
  if (auto payload = resources_->addPass(pass)) {
    Json j = lineHead(wallNs(), std::nullopt, "", "resource_sample");
    j.update(*payload);
    log_.write(j);
    // With live metrics every scrape judges the verdict: the leak model's
    // fits (a few ms at 200 sessions) are redone here, once per sample line,
    // and kept (LeakModel::fill caches them), not on a scrape.
    if (metricsRenderer_) {
      VerdictInputs fitted;
      model_.leaks().fill(fitted);
    }
  }
  logPacerRate();
  if (status_line::enabled()) status_line::set(statusText());
}

void Supervisor::logPacerRate() {
  if (!pacerLine_ || !bucket_) return;
  if (auto payload = pacerLine_->next(bucket_->bucket().pacerSnapshot())) {
    Json j = lineHead(wallNs(), std::nullopt, "", "pacer_rate");
    j.update(*payload);
    log_.write(j);
  }
}

// Stops the thread (a pass under way finishes first), logs a pass it had
// not handed over yet, then one last detail pass read here.
void Supervisor::finalSample() {
  if (!sampler_ || !sampler_->running()) return;
  sampler_->stop();
  onSamplePasses();
  sampler_->finalPass(pass_);
  recordPass(pass_);
}

std::string Supervisor::statusText() const {
  RunModel::Progress p = model_.progress();
  auto mmss = [](int64_t secs) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(secs / 60), static_cast<long long>(secs % 60));
    return std::string(buf);
  };
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "[%s/%s] up %u/%zu | reconnecting %u | manual %u | reconnects %u (p95 %s) | RSS %.0f MB PSS %.1f MB | CPU %.1f %%",
                mmss((monoMs() - startMono_) / 1000).c_str(), mmss(options_.durationSecs).c_str(), p.up,
                p.sessions, p.reconnecting, p.manual, p.reconnects,
                p.reconnectP95Ms ? (std::to_string(*p.reconnectP95Ms) + " ms").c_str() : "n/a",
                static_cast<double>(resources_->lastRssKb()) / 1024.0,
                static_cast<double>(resources_->lastPssKb()) / 1024.0, resources_->lastCpuPct());
  std::string workload = model_.workloadStatus();
  return workload.empty() ? std::string(buf) : std::string(buf) + " | " + workload;
}

void Supervisor::armStdin() {
  stdin_->async_read_some(asio::buffer(stdinBuf_), [this](const boost::system::error_code& ec, size_t n) {
    // EOF on stdin (nohup, CI, systemd, </dev/null) is not a quit.
    if (ec) return;
    stdinLine_.append(stdinBuf_.data(), n);
    size_t nl;
    while ((nl = stdinLine_.find('\n')) != std::string::npos) {
      std::string line = stdinLine_.substr(0, nl);
      stdinLine_.erase(0, nl + 1);
      line.erase(0, line.find_first_not_of(" \t\r"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (line == "q" || line == "quit") beginShutdown("quit requested on stdin");
    }
    if (stdinLine_.size() > 4096) stdinLine_.clear();
    armStdin();
  });
}

void Supervisor::armDrop(size_t index, std::chrono::seconds after, asio::steady_timer* timer) {
  if (timer == nullptr) {
    faultTimers_.push_back(std::make_unique<asio::steady_timer>(io_));
    timer = faultTimers_.back().get();
  }
  timer->expires_after(after);
  timer->async_wait([this, index, timer](const boost::system::error_code& ec) {
    if (ec || shuttingDown_) return;
    const DropSpec& drop = options_.drops[index];
    spdlog::info("injecting a drop ({})", drop.text());
    for (auto& slot : slots_) {
      if (drop.appliesTo(slot->id())) sendCommand(*slot, false);
    }
    if (drop.everySecs > 0) armDrop(index, std::chrono::seconds(drop.everySecs), timer);
  });
}

void Supervisor::startFault(const FaultCommand& fault) {
  spdlog::info("running --fault-cmd at {} s: {}", fault.atSecs, fault.command);
  Json j = lineHead(wallNs(), std::nullopt, "", "fault_started");
  j["detail"] = fault.command;
  j["at_secs"] = fault.atSecs;
  log_.write(j);
  runningFaults_.push_back(std::make_unique<RunningFault>(fault));
}

// A user's fault command has ended (or the run has, and it is killed): log
// it with its exit status and the tail of its output.
void Supervisor::reapFaults(bool killAll) {
  for (auto it = runningFaults_.begin(); it != runningFaults_.end();) {
    RunningFault& f = **it;
    bool killed = false;
    if (!f.reap()) {
      if (!killAll) {
        ++it;
        continue;
      }
      f.kill();
      killed = true;
    }
    ExitInfo exit = decodeWaitStatus(f.waitStatus());
    Json j = lineHead(wallNs(), std::nullopt, "", "fault_injected");
    j["detail"] = f.fault().command;
    j["success"] = !killed && exit.clean();
    j["at_secs"] = f.fault().atSecs;
    j["exit"] = killed ? "killed at the end of the run" : exit.text();
    j["exit_code"] = exit.signaled ? Json(nullptr) : Json(exit.code);
    j["output_tail"] = f.outputTail();
    log_.write(j);
    if (killed || !exit.clean()) {
      spdlog::warn("--fault-cmd '{}' ended with {}", f.fault().command, killed ? "a kill at the end of the run" : exit.text());
    }
    it = runningFaults_.erase(it);
  }
}

std::vector<Criterion> Supervisor::criteriaNow() const {
  VerdictInputs in = model_.verdictInputs();
  in.peakTotalPssKb = resources_->peakTotalPssKb();
  in.peakTotalRssKb = resources_->peakTotalRssKb();
  in.meanTotalCpuPct = resources_->steadyTotalCpuPct();
  in.warmupSecs = resources_->warmupSecs();
  in.samplesTaken = resources_->samplesTaken();
  in.samplesMissed = resources_->samplesMissed();
  return evaluate(in, thresholdsOf(options_));
}

Json Supervisor::summaryNow() const {
  double secs = static_cast<double>(monoMs() - startMono_) / 1000.0;
  // + 1: the summary line itself, unless the log failed and it will not be written.
  Json summary = model_.summary(wallNs(), secs, log_.linesWritten() + (log_.failure() ? 0 : 1));
  summary["resources"] = resources_->summary();
  summary["resources"]["leaks"] = model_.leaksJson();
  auto criteria = criteriaNow();
  summary["memory_metric"] = "pss";
  summary["verdict"] = verdictJson(criteria);
  summary["success"] = allPassed(criteria);
  return summary;
}

void Supervisor::armCheckpoint() {
  if (options_.checkpointSecs == 0) return;
  checkpointTimer_.expires_after(std::chrono::seconds(options_.checkpointSecs));
  checkpointTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shuttingDown_) return;
    writeCheckpoint();
    armCheckpoint();
  });
}

// A run killed at any moment (SIGKILL, a reboot) keeps the figures of its
// last checkpoint: the summary's fields as they stand, from the in-memory
// models (no /proc read: 3-10 ms at 10 sessions, HTML included), and the
// HTML report.
void Supervisor::writeCheckpoint() {
  int64_t startedMs = monoMs();
  Json checkpoint = summaryNow();
  checkpoint["event"] = "checkpoint";
  checkpoint["checkpoint"] = ++checkpoints_;
  log_.write(checkpoint);
  writeCheckpointHtml();
  // Issue 17: a killed run's CI results are this checkpoint's (a failed
  // run_complete case says the run did not end); the end's write decides
  // the exit code, so a failure here is only logged.
  if (!options_.junitPath.empty() || !options_.summaryJsonPath.empty()) {
    ci::RunResult result{.runId = run_->runId(), .source = options_.logPath, .summary = checkpoint,
                         .settings = run_->runStarted() ? *run_->runStarted() : Json(nullptr), .exitCode = std::nullopt};
    for (auto error : {ci::writeJunit(options_.junitPath, {result}), ci::writeSummaryJson(options_.summaryJsonPath, result)}) {
      if (error) spdlog::error("checkpoint: {} (the run goes on)", *error);
    }
  }
  spdlog::debug("checkpoint {} in {} ms", checkpoints_, monoMs() - startedMs);
}

// From the live run's accumulator (fed every line as it was logged): no
// read-back of the log, whatever its size or rotation. The checkpoint line
// is logged first, so the report shows it.
void Supervisor::writeCheckpointHtml() {
  if (options_.htmlPath.empty()) return;
  std::string error;
  if (!report::writeFileAtomically(options_.htmlPath, report::renderRunHtml(options_.logPath, run_), &error)) {
    htmlFailed_ = true;
    spdlog::error("checkpoint: --html {}: {} (the run goes on; exit code 3 at the end)", options_.htmlPath, error);
  }
}

void Supervisor::enableMetrics(metrics::RunLabels labels, UniqueFd listening) {
  metricsRenderer_.emplace(std::move(labels));
  metricsListening_ = std::move(listening);
}

// From the live model, the sampler's newest pass, the bucket's segment and
// the verdict as it stands: what the console and the summary read.
void Supervisor::renderMetrics(std::string& out, metrics::Format format) {
  std::vector<Criterion> criteria = criteriaNow();
  metrics::Snapshot s;
  s.model = &model_;
  s.resources = resources_.get();
  if (bucket_) {
    // The rate in force: the adaptive pacer's current one, or the fixed
    // rate the bucket was made with.
    s.tokenRatePerSec = bucket_->bucket().currentRatePerSec();
    s.tokenBurst = bucket_->bucket().burst();
  }
  s.criteria = &criteria;
  s.startTimeSecs = static_cast<double>(startWallNs_) / 1e9;
  s.elapsedSecs = static_cast<double>(monoMs() - startMono_) / 1000.0;
  s.durationSecs = options_.durationSecs;
  s.stopping = shuttingDown_;
  s.server = metricsServer_ ? &metricsServer_->figures() : nullptr;
  metricsRenderer_->render(out, format, s);
}

void Supervisor::startMetrics() {
  if (!metricsRenderer_) return;
  if (metricsListening_) {
    metricsServer_ = std::make_unique<metrics::Server>(
        io_, std::move(metricsListening_),
        [this](std::string& out, metrics::Format format) { renderMetrics(out, format); });
    metricsServer_->start();
  }
  if (!options_.metricsTextfile.empty()) {
    metricsTimer_ = std::make_unique<asio::steady_timer>(io_);
    writeMetricsTextfile();
    armMetricsTextfile();
  }
}

void Supervisor::armMetricsTextfile() {
  metricsTimer_->expires_after(std::chrono::seconds(options_.sampleIntervalSecs));
  metricsTimer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    writeMetricsTextfile();
    armMetricsTextfile();
  });
}

// A failed write is named once and the run goes on: the metrics are a view
// of the run, not part of its result.
void Supervisor::writeMetricsTextfile() {
  renderMetrics(metricsText_, metrics::Format::PROMETHEUS);
  auto written = metrics::writeTextfile(options_.metricsTextfile, metricsText_);
  if (!written && !metricsTextfileFailed_) {
    metricsTextfileFailed_ = true;
    spdlog::error("{} (the run goes on; later writes are tried again without a message)", written.error());
  }
}

// At the very end: the textfile keeps the run's final figures (the verdict
// as the summary has it), and the endpoint closes.
void Supervisor::stopMetrics() {
  if (metricsTimer_) {
    metricsTimer_->cancel();
    writeMetricsTextfile();
  }
  if (metricsServer_) metricsServer_->stop();
}

void Supervisor::onLogFailure(const LogFailure& failure) {
  if (options_.onLogError == cli::OnLogError::STOP) {
    spdlog::error("the log failed: {}; --on-log-error stop: ending the run (summary and verdict follow on the "
                  "console; exit code 4)",
                  failure.text());
    // Not from inside the write that failed: the loop ends the run.
    boost::asio::post(io_, [this] { beginShutdown("the log could not be written"); });
  } else {
    spdlog::error("the log failed: {}; --on-log-error console: the run goes on with the console only (exit code 4 "
                  "at the end)",
                  failure.text());
  }
}

Json Supervisor::run() {
  startMono_ = monoMs();
  startWallNs_ = wallNs();
  model_.configureWorkload(options_, startWallNs_);
  // Segments of runs that died without cleaning up (SIGKILL) go first.
  for (const auto& stale : TokenBucketSegment::removeStale()) spdlog::info("removed stale shared memory {}", stale);
  // The pacer's floor never lies above the rate asked (a shard's share of
  // it may be below the default floor of 2/s).
  PacerLaw law;
  law.minRatePerSec = std::max(PACER_MIN_RATE_PER_SEC, std::min(law.minRatePerSec, options_.tokenRatePerSec));
  // No handshake outlives its reconnect timeout: a slot older than that is
  // one its holder can no longer release.
  law.slotStaleUs = (int64_t{options_.reconnectTimeoutSecs} + 5) * 1'000'000;
  bucket_.emplace(TokenBucketSegment::create(TokenBucketSegment::makeName(), options_.tokenRatePerSec,
                                             options_.tokenBurst, options_.reconnectPacing, law));
  if (options_.reconnectPacing == ReconnectPacing::ADAPTIVE) {
    pacerLine_.emplace(bucket_->bucket().pacerSnapshot(), options_.tokenBurst);
  }
  int64_t warmupMs = std::min(int64_t{options_.warmupSecs} * 1000, int64_t{options_.durationSecs} * 1000 / 2);
  resources_ = std::make_unique<ResourceStats>(startMono_, warmupMs, clockTicksPerSec());
  armSignals();
  // stdin is watched only where it can say something: a terminal or a pipe.
  // epoll refuses regular files and /dev/null, which then simply mean "no
  // quit command will come".
  struct stat st{};
  if (::fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || ::isatty(STDIN_FILENO))) {
    boost::system::error_code ec;
    stdin_ = std::make_unique<asio::posix::stream_descriptor>(io_);
    stdin_->assign(::dup(STDIN_FILENO), ec);
    if (!ec) armStdin();
    else stdin_.reset();
  }

  RestartConfig restart{.minDelayMs = options_.restartMinDelayMs,
                        .maxDelayMs = options_.restartMaxDelayMs,
                        .stableUptimeMs = options_.restartStableUptimeMs,
                        .maxCrashes = options_.restartMax,
                        .windowMs = int64_t{options_.restartWindowSecs} * 1000};
  for (uint32_t i = 0; i < options_.slots.size(); ++i) {
    slots_.push_back(std::make_unique<Slot>(i, options_.slots[i].text(), restart, io_));
  }
  if (options_.workload == cli::WorkloadKind::JOBS) {
    jobs_ = std::make_unique<jobs::JobDispatcher>(
        options_, io_, log_,
        jobs::DispatcherHooks{
            .send = [this](uint32_t w, capnp::MessageBuilder& m) { return w < slots_.size() && slots_[w]->send(m); },
            .workerHost = [this](uint32_t w) { return w < slots_.size() ? slots_[w]->host() : std::string(); },
            .allDone = [this](const std::string& why) { beginShutdown(why); }});
    jobs_->start();
  }
  startRelay();
  startSampling();
  for (auto& slot : slots_) spawn(*slot);
  // A shutdown during the spawns (a signal, a jobs file already done) took
  // its last sample already: no thread to start after it.
  if (!shuttingDown_) {
    resources_->samplingStarts(monoMs());
    sampler_->start();
  }
  spdlog::info("started {} session agents; running for {} s (q + Enter, SIGINT or SIGTERM stops early)",
               slots_.size(), options_.durationSecs);

  armCheckpoint();
  armWatchdog();
  startMetrics();
  durationTimer_.expires_after(std::chrono::seconds(options_.durationSecs));
  durationTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) beginShutdown("duration reached");
  });
  for (size_t i = 0; i < options_.drops.size(); ++i) armDrop(i, std::chrono::seconds(options_.drops[i].atSecs));
  for (const auto& fault : options_.faultCommands) {
    auto timer = std::make_unique<asio::steady_timer>(io_, std::chrono::seconds(fault.atSecs));
    timer->async_wait([this, &fault](const boost::system::error_code& ec) {
      if (!ec && !shuttingDown_) startFault(fault);
    });
    faultTimers_.push_back(std::move(timer));
  }
  io_.run();
  // The loop stops only after beginShutdown, which stopped the sampler; an
  // exception out of run() stops it in the destructor.
  if (sampler_) sampler_->stop();
  recordRemaining();
  // After the agents: they closed their sessions through it. Its open
  // windows end now, logged before the summary.
  if (relay_) relay_->stop();
  // The jobs' last rollups come before the summary that reads them.
  if (jobs_) jobs_->finish();
  if (stdin_) stdin_.reset();
  reapFaults(true);
  Json summary = summaryNow();
  log_.write(summary);
  stopMetrics();
  return summary;
}

}  // namespace sshsoak
