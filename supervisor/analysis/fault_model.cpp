#include "supervisor/analysis/fault_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "shared/clock.h"
#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak {

namespace {

// The relay's line and the agents' are stamped by different processes: a
// reset's disconnected line can carry a time a little before the line that
// says the window started.
constexpr int64_t START_SLACK_NS = 250'000'000;

int64_t msOf(int64_t ns) { return ns / 1'000'000; }

Json orNull(std::optional<int64_t> v) { return v ? Json(*v) : Json(nullptr); }
Json orNull(std::optional<uint64_t> v) { return v ? Json(*v) : Json(nullptr); }

Json p50Max(std::optional<int64_t> p50, std::optional<int64_t> max) {
  Json j;
  j["p50"] = orNull(p50);
  j["max"] = orNull(max);
  return j;
}

std::optional<double> rateOf(const Json& v) {
  if (!v.is_number()) return std::nullopt;
  double d = v.get<double>();
  return std::isfinite(d) && d >= 0 ? std::optional<double>(d) : std::nullopt;
}

// run_started's keepalive, "5 s x 3", as the budget in ms.
std::optional<int64_t> keepaliveBudgetOf(const std::string& text) {
  unsigned long interval = 0, count = 0;
  if (std::sscanf(text.c_str(), "%lu s x %lu", &interval, &count) != 2) return std::nullopt;
  if (interval > 86'400 || count > 1'000'000) return std::nullopt;
  return static_cast<int64_t>(interval * count * 1000);
}

}  // namespace

bool FaultModel::Window::affects(uint32_t session) const {
  return allSessions || std::binary_search(sessions.begin(), sessions.end(), session);
}

void FaultModel::onRunStarted(const Json& line) {
  if (auto budget = keepaliveBudgetOf(textField(line, "keepalive"))) keepaliveBudgetMs_ = *budget;
}

void FaultModel::onLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session) {
  if (event == "run_started") onRunStarted(line);
  advance(ns);
  if (event == "net_fault_started") {
    start(line, ns);
  } else if (event == "net_fault_ended") {
    end(line, ns);
  } else if (session && event == "disconnected") {
    down(*session, ns);
  } else if (session && (event == "reconnected" || event == "connected")) {
    // connected: the first session of an agent restarted after a crash.
    up(*session, ns);
  }
}

bool FaultModel::inNoticePeriod(const Window& w, int64_t ns) const {
  if (ns < w.startNs - START_SLACK_NS) return false;
  return !w.endNs || ns <= *w.endNs + keepaliveBudgetMs_ * 1'000'000;
}

void FaultModel::start(const Json& line, int64_t ns) {
  if (windows_.size() >= MAX_WINDOWS) {
    ++ignored_;
    return;
  }
  Window w;
  w.faultId = static_cast<uint32_t>(countField(line, "fault_id", UINT32_MAX).value_or(0));
  w.occurrence = static_cast<uint32_t>(countField(line, "occurrence", UINT32_MAX).value_or(1));
  w.kind = textField(line, "kind");
  w.spec = textField(line, "spec");
  w.startTs = textField(line, "ts");
  w.startNs = ns;
  if (auto planned = countField(line, "planned_ms", INT64_MAX)) w.plannedMs = static_cast<int64_t>(*planned);
  w.connectionsAtStart = countField(line, "connections");
  const Json& sessions = field(line, "sessions");
  if (sessions.is_array()) {
    for (const auto& s : sessions) {
      if (s.is_number_unsigned() && s.get<uint64_t>() <= UINT32_MAX) w.sessions.push_back(s.get<uint32_t>());
    }
    std::sort(w.sessions.begin(), w.sessions.end());
    w.sessions.erase(std::unique(w.sessions.begin(), w.sessions.end()), w.sessions.end());
    w.affected = static_cast<uint32_t>(w.sessions.size());
  } else {
    w.allSessions = true;  // no list: every session of the run
  }
  // Disconnects logged before this line but stamped after the window's start.
  for (const auto& [id, seen] : seen_) {
    if (!seen.downNs || !inNoticePeriod(w, *seen.downNs) || !w.affects(id)) continue;
    Mark& m = w.marks[id];
    m.noticeNs = m.lastDownNs = *seen.downNs;
    if (seen.upNs && *seen.upNs >= *seen.downNs) m.upNs = seen.upNs;
  }
  auto key = std::make_pair(w.faultId, w.occurrence);
  windows_.push_back(std::move(w));
  live_.push_back(windows_.size() - 1);
  open_[key] = windows_.size() - 1;
}

void FaultModel::end(const Json& line, int64_t ns) {
  auto key = std::make_pair(static_cast<uint32_t>(countField(line, "fault_id", UINT32_MAX).value_or(0)),
                            static_cast<uint32_t>(countField(line, "occurrence", UINT32_MAX).value_or(1)));
  auto it = open_.find(key);
  if (it == open_.end()) return;  // a window beyond the cap, or its start rotated away
  Window& w = windows_[it->second];
  open_.erase(it);
  w.endNs = std::max(ns, w.startNs);
  auto duration = countField(line, "duration_ms", INT64_MAX);
  w.durationMs = duration ? static_cast<int64_t>(*duration) : msOf(*w.endNs - w.startNs);
  w.connectionsTouched = countField(line, "connections");
  w.bytesHeld = countField(line, "bytes_held");
  w.resets = countField(line, "resets");
}

void FaultModel::down(uint32_t session, int64_t ns) {
  seen_[session].downNs = ns;
  for (size_t idx : live_) {
    Window& w = windows_[idx];
    if (!w.noticing || !inNoticePeriod(w, ns) || !w.affects(session)) continue;
    auto [it, added] = w.marks.try_emplace(session);
    if (added) it->second.noticeNs = ns;
    // Down again after it was back (a reset window resets new connections
    // too): its recovery is from this disconnect.
    it->second.lastDownNs = ns;
    it->second.upNs.reset();
  }
}

void FaultModel::up(uint32_t session, int64_t ns) {
  seen_[session].upNs = ns;
  std::vector<size_t> settled;
  for (size_t idx : live_) {
    Window& w = windows_[idx];
    auto it = w.marks.find(session);
    if (it == w.marks.end() || it->second.upNs || ns < it->second.lastDownNs) continue;
    it->second.upNs = ns;
    if (w.noticing) continue;
    recordRecovery(w, it->second);
    w.marks.erase(it);
    if (w.marks.empty()) settled.push_back(idx);
  }
  for (size_t idx : settled) settle(idx);
}

void FaultModel::advance(int64_t ns) {
  if (ns == 0) return;  // a timestamp that could not be read moves no clock
  std::vector<size_t> due;
  for (size_t idx : live_) {
    const Window& w = windows_[idx];
    if (w.noticing && w.endNs && ns > *w.endNs + keepaliveBudgetMs_ * 1'000'000 + LATE_LINE_GRACE_NS) due.push_back(idx);
  }
  for (size_t idx : due) closeNotice(idx);
}

void FaultModel::recordRecovery(Window& w, const Mark& m) {
  ++w.recovered;
  w.recoverMs.push_back(std::max<int64_t>(0, msOf(*m.upNs - *w.endNs)));
}

// No session can notice this window any more: its notice figures are final,
// and only the sessions still down keep a mark.
void FaultModel::closeNotice(size_t idx) {
  Window& w = windows_[idx];
  w.noticing = false;
  w.noticed = static_cast<uint32_t>(w.marks.size());
  w.noticeMs.clear();
  for (const auto& [id, m] : w.marks) w.noticeMs.push_back(std::max<int64_t>(0, msOf(m.noticeNs - w.startNs)));
  w.noticeP50 = percentile(w.noticeMs, 0.50);
  w.noticeMax = percentile(w.noticeMs, 1.0);
  std::vector<int64_t>().swap(w.noticeMs);
  std::vector<uint32_t>().swap(w.sessions);
  for (auto it = w.marks.begin(); it != w.marks.end();) {
    if (it->second.upNs) {
      recordRecovery(w, it->second);
      it = w.marks.erase(it);
    } else {
      ++it;
    }
  }
  if (w.marks.empty()) settle(idx);
}

// Every session that noticed is back: a few figures from here on.
void FaultModel::settle(size_t idx) {
  Window& w = windows_[idx];
  w.recoverP50 = percentile(w.recoverMs, 0.50);
  w.recoverMax = percentile(w.recoverMs, 1.0);
  std::vector<int64_t>().swap(w.recoverMs);
  std::unordered_map<uint32_t, Mark>().swap(w.marks);
  w.settled = true;
  live_.erase(std::remove(live_.begin(), live_.end(), idx), live_.end());
}

Json FaultModel::json(int64_t endNs, int64_t runStartNs, uint32_t sessionsInRun) const {
  Json all = Json::array();
  for (const Window& w : windows_) {
    int64_t windowEnd = w.endNs ? *w.endNs : std::max(endNs, w.startNs);
    uint32_t noticed = w.noticed, recovered = w.recovered;
    std::optional<int64_t> noticeP50 = w.noticeP50, noticeMax = w.noticeMax, recoverP50 = w.recoverP50,
                           recoverMax = w.recoverMax;
    if (!w.settled) {
      std::vector<int64_t> recoverMs = w.recoverMs;
      for (const auto& [id, m] : w.marks) {
        if (m.upNs) recoverMs.push_back(std::max<int64_t>(0, msOf(*m.upNs - windowEnd)));
      }
      recovered = static_cast<uint32_t>(recoverMs.size());
      recoverP50 = percentile(recoverMs, 0.50);
      recoverMax = percentile(recoverMs, 1.0);
      if (w.noticing) {
        std::vector<int64_t> noticeMs;
        for (const auto& [id, m] : w.marks) noticeMs.push_back(std::max<int64_t>(0, msOf(m.noticeNs - w.startNs)));
        noticed = static_cast<uint32_t>(noticeMs.size());
        noticeP50 = percentile(noticeMs, 0.50);
        noticeMax = percentile(noticeMs, 1.0);
      }
    }
    Json j;
    j["fault_id"] = w.faultId;
    j["occurrence"] = w.occurrence;
    j["kind"] = w.kind;
    j["spec"] = w.spec;
    j["start_ts"] = w.startTs;
    j["start_secs"] = std::round(static_cast<double>(w.startNs - runStartNs) / 1e6) / 1e3;
    j["duration_ms"] = w.durationMs ? *w.durationMs : msOf(windowEnd - w.startNs);
    j["planned_ms"] = orNull(w.plannedMs);
    j["open_at_end"] = !w.endNs.has_value();
    j["sessions_affected"] = w.allSessions ? sessionsInRun : w.affected;
    j["noticed"] = noticed;
    j["notice_ms"] = p50Max(noticeP50, noticeMax);
    j["recovered"] = recovered;
    j["recover_ms"] = p50Max(recoverP50, recoverMax);
    j["connections_at_start"] = orNull(w.connectionsAtStart);
    j["connections_touched"] = orNull(w.connectionsTouched);
    j["bytes_held"] = orNull(w.bytesHeld);
    j["resets"] = orNull(w.resets);
    all.push_back(std::move(j));
  }
  return all;
}

void PacerModel::onRunStarted(const Json& line) {
  mode_ = textField(line, "reconnect_pacing");
  if (auto rate = rateOf(field(line, "token_rate"))) {
    initial_ = rate;
    if (!last_) min_ = max_ = rate;
  }
}

void PacerModel::onLine(const Json& line, const std::string& event) {
  if (event == "run_started") {
    onRunStarted(line);
    return;
  }
  if (event != "pacer_rate") return;
  auto rate = rateOf(field(line, "rate_per_sec"));
  if (!rate) return;
  ++lines_;
  std::optional<double> before = last_ ? last_ : initial_;
  if (before && *rate > *before) ++increases_;
  if (before && *rate < *before) {
    ++decreases_;
    std::string reason = textField(line, "reason");
    if (reason.empty()) reason = "unknown";
    if (decreaseReasons_.size() >= MAX_REASONS && !decreaseReasons_.count(reason)) reason = "other";
    ++decreaseReasons_[reason];
  }
  min_ = min_ ? std::min(*min_, *rate) : *rate;
  max_ = max_ ? std::max(*max_, *rate) : *rate;
  last_ = rate;
}

std::string PacerModel::mode() const {
  if (!mode_.empty()) return mode_;
  return lines_ > 0 ? "adaptive" : "fixed";
}

Json PacerModel::json() const {
  auto rate = [](std::optional<double> v) { return v ? Json(std::round(*v * 100.0) / 100.0) : Json(nullptr); };
  Json j;
  j["mode"] = mode();
  j["initial_rate"] = rate(initial_);
  j["min_rate"] = rate(min_);
  j["max_rate"] = rate(max_);
  j["final_rate"] = rate(last_ ? last_ : initial_);
  j["decreases"] = decreases_;
  j["increases"] = increases_;
  j["rate_lines"] = lines_;
  Json reasons = Json::object();
  for (const auto& [reason, n] : decreaseReasons_) reasons[reason] = n;
  j["decrease_reasons"] = std::move(reasons);
  return j;
}

}  // namespace sshsoak
