#include "supervisor/log_line.h"

#include <cmath>

#include "shared/clock.h"
#include "shared/wire_names.h"
#include "supervisor/cli.h"

namespace sshsoak {

namespace {

void putFailure(Json& j, wire::Failure::Reader f) {
  j["category"] = std::string(categoryName(f.getCategory()));
  j["message"] = std::string(f.getMessage());
  if (f.getLibssh2Error() != 0) j["libssh2_error"] = f.getLibssh2Error();
}

void putConnected(Json& j, wire::Connected::Reader c) {
  j["handshake_ms"] = c.getHandshakeMs();
  j["auth_ms"] = c.getAuthMs();
  j["first_exec_ms"] = c.getFirstExecMs();
  j["kex"] = std::string(c.getKex());
  j["hostkey_type"] = std::string(c.getHostKeyType());
  j["cipher"] = std::string(c.getCipher());
  j["mac"] = std::string(c.getMac());
  if (c.getHostKeyAdded()) j["hostkey_added"] = true;
  if (c.getFds() != 0) j["fds"] = c.getFds();
}

// An agent sends at most 7 (churn's measures); a list of millions of empty
// structs fits in a small frame, and each costs a histogram's worth of work
// (found by fuzzing: fuzz/regressions/frame_events/). More are counted, not read.
constexpr unsigned MAX_HISTOGRAMS_PER_EVENT = 32;
constexpr unsigned MAX_FAILURE_KINDS_PER_EVENT = 64;

void putHistograms(Json& j, capnp::List<wire::Histogram>::Reader list) {
  Json all = Json::object();
  if (list.size() > MAX_HISTOGRAMS_PER_EVENT) j["histograms_ignored"] = list.size() - MAX_HISTOGRAMS_PER_EVENT;
  unsigned n = 0;
  for (auto h : list) {
    if (n++ == MAX_HISTOGRAMS_PER_EVENT) break;
    LatencyHistogram hist;
    auto indices = h.getIndices();
    auto counts = h.getCounts();
    for (unsigned i = 0; i < indices.size() && i < counts.size(); ++i) hist.addAtIndex(indices[i], counts[i]);
    all[std::string(h.getName())] = histogramJson(hist);
  }
  j["latency_us"] = std::move(all);
}

}  // namespace

double round1(double v) { return std::round(v * 10.0) / 10.0; }

Json histogramJson(const LatencyHistogram& h) {
  Json j;
  j["n"] = h.count();
  j["p50"] = h.valueAtPercentile(50);
  j["p90"] = h.valueAtPercentile(90);
  j["p99"] = h.valueAtPercentile(99);
  j["p999"] = h.valueAtPercentile(99.9);
  j["max"] = h.max();
  Json counts = Json::array();
  h.forEachNonZero([&](size_t i, uint64_t c) {
    counts.push_back(i);
    counts.push_back(c);
  });
  j["counts"] = std::move(counts);
  return j;
}

bool addHistogramJson(const Json& j, LatencyHistogram& h) {
  if (!j.is_object()) return false;
  auto it = j.find("counts");
  if (it == j.end() || !it->is_array() || it->size() % 2 != 0) return false;
  for (const auto& v : *it) {
    if (!v.is_number_unsigned()) return false;
  }
  for (size_t i = 0; i + 1 < it->size(); i += 2) {
    if ((*it)[i].get<uint64_t>() >= LatencyHistogram::COUNTS_LENGTH) return false;
  }
  for (size_t i = 0; i + 1 < it->size(); i += 2) h.addAtIndex((*it)[i].get<size_t>(), (*it)[i + 1].get<uint64_t>());
  return true;
}

Json lineHead(int64_t ns, std::optional<uint32_t> sessionId, const std::string& host,
              std::string_view event) {
  Json j;
  j["ts"] = isoTimestamp(ns);
  j["session_id"] = sessionId ? Json(*sessionId) : Json(nullptr);
  j["host"] = host.empty() ? Json(nullptr) : Json(host);
  j["event"] = std::string(event);
  j["detail"] = nullptr;
  j["elapsed_ms"] = nullptr;
  j["attempt"] = nullptr;
  j["success"] = true;
  return j;
}

Json eventToJson(wire::Event::Reader e, const std::string& host) {
  Json j = lineHead(e.getWallNs(), e.getSessionId(), host, eventName(e.which()));
  if (e.hasDetail() && e.getDetail().size() > 0) j["detail"] = std::string(e.getDetail());
  if (e.getElapsedMs() >= 0) j["elapsed_ms"] = e.getElapsedMs();
  if (e.getAttempt() >= 0) j["attempt"] = e.getAttempt();
  j["success"] = e.getSuccess();
  if (e.getTokenGrantedNs() != 0) j["token_granted_at"] = isoTimestamp(e.getTokenGrantedNs());
  if (e.getBackoffMs() >= 0) j["backoff_ms"] = e.getBackoffMs();
  using W = wire::Event::Which;
  switch (e.which()) {
    case W::STARTED:
      j["pid"] = e.getStarted().getPid();
      j["version"] = std::string(e.getStarted().getVersion());
      break;
    case W::CONNECTED: putConnected(j, e.getConnected()); break;
    case W::RECONNECTED: putConnected(j, e.getReconnected()); break;
    case W::CONNECT_FAILED: putFailure(j, e.getConnectFailed()); break;
    case W::RECONNECT_FAILED: putFailure(j, e.getReconnectFailed()); break;
    case W::EXEC_POLL_ERROR: putFailure(j, e.getExecPollError()); break;
    case W::PTY_ERROR: putFailure(j, e.getPtyError()); break;
    case W::AUTH_FAILED: putFailure(j, e.getAuthFailed()); break;
    case W::MANUAL_RECONNECT: putFailure(j, e.getManualReconnect()); break;
    case W::DISCONNECTED: {
      auto d = e.getDisconnected();
      j["cause"] = std::string(causeName(d.getCause()));
      j["silent_ms"] = d.getSilentMs();
      j["message"] = std::string(d.getMessage());
      break;
    }
    case W::EXEC_POLL: {
      auto p = e.getExecPoll();
      j["rtt_ms"] = p.getRttMs();
      j["cpu_busy_pct"] = round1(p.getCpuBusyPct());
      j["mem_used_pct"] = round1(p.getMemUsedPct());
      j["disk_used_pct"] = round1(p.getDiskUsedPct());
      j["bytes"] = p.getBytes();
      break;
    }
    case W::PTY_CYCLE: {
      auto p = e.getPtyCycle();
      j["bytes"] = p.getBytes();
      j["lines"] = p.getLines();
      j["ms"] = p.getMs();
      j["cycle"] = p.getCycle();
      j["expected_lines"] = p.getExpectedLines();
      if (p.hasEchoUs() && p.getEchoUs().size() > 0) {
        Json echo = Json::array();
        for (uint32_t us : p.getEchoUs()) echo.push_back(us);
        j["echo_us"] = std::move(echo);
      }
      break;
    }
    case W::CHURN_STATS: {
      auto c = e.getChurnStats();
      j["interval_ms"] = c.getIntervalMs();
      j["target_per_sec"] = round1(c.getTargetPerSec());
      j["attempted"] = c.getAttempted();
      j["succeeded"] = c.getSucceeded();
      j["failed"] = c.getFailed();
      j["behind_ms"] = c.getBehindMs();
      j["cpu_ms"] = c.getCpuMs();
      putHistograms(j, c.getHistograms());
      Json failures = Json::object();
      // One entry per failure kind (a dozen); bounded like the histograms.
      auto kinds = c.getFailures();
      if (kinds.size() > MAX_FAILURE_KINDS_PER_EVENT) j["failures_ignored"] = kinds.size() - MAX_FAILURE_KINDS_PER_EVENT;
      for (unsigned i = 0; i < kinds.size() && i < MAX_FAILURE_KINDS_PER_EVENT; ++i) {
        auto f = kinds[i];
        failures[std::string(f.getKind())] = Json{{"count", f.getCount()}, {"example", std::string(f.getExample())}};
      }
      j["failures"] = std::move(failures);
      break;
    }
    case W::CHURN_CONNECTION: {
      auto c = e.getChurnConnection();
      j["lag_us"] = c.getLagUs();
      j["tcp_us"] = c.getTcpUs();
      j["kex_us"] = c.getKexUs();
      j["auth_us"] = c.getAuthUs();
      j["exec_us"] = c.getExecUs();
      j["close_us"] = c.getCloseUs();
      j["total_us"] = c.getTotalUs();
      if (c.getFailureKind().size() > 0) {
        j["failure_kind"] = std::string(c.getFailureKind());
        j["message"] = std::string(c.getMessage());
      }
      break;
    }
    case W::TRANSFER_ROUND: {
      auto t = e.getTransferRound();
      j["direction"] = std::string(directionName(t.getDirection()));
      j["round"] = t.getRound();
      j["bytes"] = t.getBytes();
      j["ms"] = t.getMs();
      j["mb_per_sec"] = round1(t.getMbPerSec());
      j["cpu_ms"] = t.getCpuMs();
      j["window_bytes"] = t.getWindowBytes();
      j["write_bytes"] = t.getWriteBytes();
      j["sha256"] = std::string(t.getSha256());
      j["stalled_ms"] = t.getStalledMs();
      break;
    }
    case W::TRANSFER_CORRUPT: {
      auto t = e.getTransferCorrupt();
      j["direction"] = std::string(directionName(t.getDirection()));
      j["round"] = t.getRound();
      j["bytes"] = t.getBytes();
      j["local_sha256"] = std::string(t.getLocalSha256());
      j["remote_sha256"] = std::string(t.getRemoteSha256());
      break;
    }
    case W::TRANSFER_STALL: {
      auto t = e.getTransferStall();
      j["direction"] = std::string(directionName(t.getDirection()));
      j["round"] = t.getRound();
      j["stalled_ms"] = t.getStalledMs();
      j["buffered_bytes"] = t.getBufferedBytes();
      break;
    }
    case W::TRANSFER_ERROR: putFailure(j, e.getTransferError()); break;
    case W::JOB_RESULT: {
      // The agent's half of a job line; the supervisor adds the job's name,
      // target, phase and queue wait (docs/reference.md, "Jobs").
      auto r = e.getJobResult();
      j["job_id"] = r.getJobId();
      j["outcome"] = std::string(jobOutcomeName(r.getOutcome()));
      j["attempt"] = r.getAttempt();
      j["reused"] = r.getReused();
      j["connect_us"] = r.getConnectUs();
      j["liveness_us"] = r.getLivenessUs();
      j["run_us"] = r.getRunUs();
      j["commands_run"] = r.getCommandsRun();
      j["commands_failed"] = r.getCommandsFailed();
      Json codes = Json::array();
      for (int32_t c : r.getExitCodes()) codes.push_back(c);
      j["exit_codes"] = std::move(codes);
      j["failure_kind"] = r.getFailureKind().size() > 0 ? Json(std::string(r.getFailureKind())) : Json(nullptr);
      j["message"] = r.getMessage().size() > 0 ? Json(std::string(r.getMessage())) : Json(nullptr);
      j["dead_replaced"] = r.getDeadReplaced();
      j["connections_opened"] = r.getConnectionsOpened();
      break;
    }
    case W::JOB_CONNECTION_CLOSED: {
      auto c = e.getJobConnectionClosed();
      j["target"] = std::string(c.getUser()) + "@" + cli::Target{std::string(c.getHost()), c.getPort()}.text();
      j["reason"] = std::string(jobCloseReasonName(c.getReason()));
      j["age_ms"] = c.getAgeMs();
      j["idle_ms"] = c.getIdleMs();
      j["jobs_served"] = c.getJobsServed();
      break;
    }
    case W::PTY_STATS: {
      auto p = e.getPtyStats();
      j["interval_ms"] = p.getIntervalMs();
      j["cycles"] = p.getCycles();
      j["short_cycles"] = p.getShortCycles();
      j["bytes"] = p.getBytes();
      j["lines"] = p.getLines();
      j["last_cycle"] = p.getLastCycle();
      putHistograms(j, p.getHistograms());
      break;
    }
    case W::EXEC_POLL_STATS: {
      auto p = e.getExecPollStats();
      j["interval_ms"] = p.getIntervalMs();
      j["polls"] = p.getPolls();
      j["bytes"] = p.getBytes();
      putHistograms(j, p.getHistograms());
      j["cpu_busy_pct_max"] = round1(p.getCpuBusyPctMax());
      j["mem_used_pct"] = round1(p.getMemUsedPctLast());
      j["disk_used_pct"] = round1(p.getDiskUsedPctLast());
      break;
    }
    case W::PTY_FLOOD: {
      auto p = e.getPtyFlood();
      j["bytes"] = p.getBytes();
      j["expected_bytes"] = p.getExpectedBytes();
      j["window_ms"] = p.getWindowMs();
      break;
    }
    case W::DISCONNECT_INJECTED:
    case W::STOPPED:
    case W::HEARTBEAT:  // not logged (Supervisor::onEventBytes); rendered bare if asked
      break;
  }
  return j;
}

}  // namespace sshsoak
