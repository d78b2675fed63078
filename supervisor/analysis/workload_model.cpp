#include "supervisor/analysis/workload_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak {

namespace {

double round1(double v) { return std::round(v * 10.0) / 10.0; }
double round2(double v) { return std::round(v * 100.0) / 100.0; }
double usToMs(uint64_t us) { return round2(static_cast<double>(us) / 1000.0); }

uint64_t uintOf(const Json& line, const char* key) {
  const Json& v = field(line, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  if (v.is_number_float() && v.get<double>() >= 0) return static_cast<uint64_t>(v.get<double>());
  return 0;
}

double numberOf(const Json& line, const char* key) {
  const Json& v = field(line, key);
  return v.is_number() ? v.get<double>() : 0.0;
}

// MB/s per round are kept in a LatencyHistogram in hundredths (1 % precision).
constexpr double RATE_UNITS_PER_MB = 100.0;

// At least 90 % of the step's target is "reached" (docs/reference.md, "Ramp").
constexpr double RAMP_REACHED_FRACTION = 0.9;

}  // namespace

// ---- BoundedSeries ----

double& BoundedSeries::slot(int64_t tMs, size_t ch) {
  if (isMax_.size() != channels_) isMax_.assign(channels_, 0);
  if (tMs < 0) tMs = 0;
  endMs_ = std::max(endMs_, tMs + 1);
  auto bucket = static_cast<size_t>(tMs / widthMs_);
  while (bucket >= MAX_POINTS) {
    // Coarsen: neighbours merge, the width doubles.
    size_t n = size();
    std::vector<double> merged(((n + 1) / 2) * channels_, 0.0);
    for (size_t b = 0; b < n; ++b) {
      for (size_t c = 0; c < channels_; ++c) {
        double& dst = merged[(b / 2) * channels_ + c];
        double v = buckets_[b * channels_ + c];
        dst = isMax_[c] ? std::max(dst, v) : dst + v;
      }
    }
    buckets_ = std::move(merged);
    widthMs_ *= 2;
    bucket = static_cast<size_t>(tMs / widthMs_);
  }
  if (bucket >= size()) buckets_.resize((bucket + 1) * channels_, 0.0);
  return buckets_[bucket * channels_ + ch];
}

void BoundedSeries::add(int64_t tMs, size_t ch, double v) { slot(tMs, ch) += v; }

void BoundedSeries::max(int64_t tMs, size_t ch, double v) {
  double& s = slot(tMs, ch);
  isMax_[ch] = 1;
  s = std::max(s, v);
}

void BoundedSeries::addSpread(int64_t fromMs, int64_t toMs, size_t ch, double v) {
  if (fromMs < 0) fromMs = 0;
  if (toMs <= fromMs) {
    add(toMs, ch, v);
    return;
  }
  slot(toMs - 1, ch);  // coarsen first, so the width below is final
  double perMs = v / static_cast<double>(toMs - fromMs);
  for (int64_t t = fromMs; t < toMs;) {
    int64_t end = std::min(toMs, (t / widthMs_ + 1) * widthMs_);
    slot(t, ch) += perMs * static_cast<double>(end - t);
    t = end;
  }
}

std::vector<std::pair<double, double>> BoundedSeries::ratePoints(size_t ch, double scale) const {
  std::vector<std::pair<double, double>> pts;
  double w = static_cast<double>(widthMs_) / 1000.0;
  for (size_t b = 0; b < size(); ++b) {
    // The last bucket is only partly over: its rate is over the part covered.
    double covered = b + 1 == size() ? std::min(w, static_cast<double>(endMs_) / 1000.0 - static_cast<double>(b) * w) : w;
    // A sliver (reports that end a little after a bucket starts) is no rate.
    if (b > 0 && b + 1 == size() && covered < w / 2) break;
    if (covered <= 0) covered = w;
    pts.emplace_back((static_cast<double>(b) + 0.5) * w, at(b, ch) * scale / covered);
  }
  return pts;
}

std::vector<std::pair<double, double>> BoundedSeries::valuePoints(size_t ch) const {
  std::vector<std::pair<double, double>> pts;
  double w = static_cast<double>(widthMs_) / 1000.0;
  for (size_t b = 0; b < size(); ++b) pts.emplace_back((static_cast<double>(b) + 0.5) * w, at(b, ch));
  return pts;
}

// ---- figures ----

PhaseFigures figuresOf(const LatencyHistogram& h) {
  return PhaseFigures{h.count(), usToMs(h.valueAtPercentile(50)), usToMs(h.valueAtPercentile(90)),
                      usToMs(h.valueAtPercentile(99)), usToMs(h.valueAtPercentile(99.9)), usToMs(h.max())};
}

Json figuresJson(const LatencyHistogram& h) {
  PhaseFigures f = figuresOf(h);
  return Json{{"n", f.n},          {"p50_ms", f.p50Ms},   {"p90_ms", f.p90Ms},
              {"p99_ms", f.p99Ms}, {"p999_ms", f.p999Ms}, {"max_ms", f.maxMs}};
}

double ChurnFigures::Step::achievedPerSec() const {
  return toMs > fromMs ? static_cast<double>(succeeded) * 1000.0 / static_cast<double>(toMs - fromMs) : 0.0;
}

std::optional<double> ChurnFigures::Step::p99TotalMs() const {
  if (totalCounts.empty()) return std::nullopt;
  LatencyHistogram h;
  for (const auto& [i, c] : totalCounts) h.addAtIndex(i, c);
  return usToMs(h.valueAtPercentile(99));
}

double ChurnFigures::spanSecs() const {
  return firstStartNs && lastEndNs ? static_cast<double>(*lastEndNs - *firstStartNs) / 1e9 : 0.0;
}

std::optional<double> ChurnFigures::achievedPerSec() const {
  double s = spanSecs();
  if (s <= 0) return std::nullopt;
  return static_cast<double>(succeeded) / s;
}

uint64_t TransferFigures::bytes() const {
  uint64_t n = 0;
  for (const auto& [name, d] : directions) n += d.bytes;
  return n;
}

double TransferFigures::spanSecs() const {
  return firstStartNs && lastEndNs ? static_cast<double>(*lastEndNs - *firstStartNs) / 1e9 : 0.0;
}

std::optional<double> TransferFigures::aggregateMbPerSec() const {
  double s = spanSecs();
  if (s <= 0) return std::nullopt;
  return static_cast<double>(bytes()) / 1e6 / s;
}

std::vector<double> TransferFigures::sessionMbPerSec() const {
  std::vector<double> out;
  for (const auto& [id, s] : sessions) {
    if (s.lastEndNs > s.firstStartNs) {
      out.push_back(static_cast<double>(s.bytes) / 1e6 / (static_cast<double>(s.lastEndNs - s.firstStartNs) / 1e9));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- WorkloadModel ----

void WorkloadModel::onLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session) {
  if (!startNs_) startNs_ = ns;
  if (event == "run_started") {
    onRunStarted(line, ns);
  } else if (event == "churn_stats") {
    onChurnStats(line, ns);
  } else if (event == "churn_connection") {
    ++churn_.connectionLines;
  } else if (event == "transfer_round") {
    onTransferRound(line, ns, session);
  } else if (event == "transfer_corrupt") {
    if (transfer_.corruptRounds++ == 0) {
      Json ex = Json::object();
      for (const char* k : {"session_id", "direction", "round", "bytes", "local_sha256", "remote_sha256"}) {
        if (line.contains(k)) ex[k] = field(line, k);
      }
      transfer_.firstCorrupt = std::move(ex);
    }
  } else if (event == "transfer_stall") {
    uint64_t ms = uintOf(line, "stalled_ms");
    ++transfer_.stalls;
    transfer_.stalledMs += ms;
    transfer_.maxStallMs = std::max(transfer_.maxStallMs, ms);
  } else if (event == "transfer_error") {
    if (transfer_.errors++ == 0) {
      transfer_.firstError = textField(line, "category") + ": " + textField(line, "message");
    }
  } else if (event == "pty_cycle") {
    const Json& echo = field(line, "echo_us");
    if (echo.is_array()) {
      for (const auto& v : echo) {
        if (v.is_number_unsigned()) echo_.record(v.get<uint64_t>());
      }
    }
  }
}

void WorkloadModel::onRunStarted(const Json& line, int64_t ns) {
  std::string name = textField(line, "workload");
  auto kind = name == "churn"      ? cli::WorkloadKind::CHURN
              : name == "transfer" ? cli::WorkloadKind::TRANSFER
                                   : cli::WorkloadKind::PTY;  // absent: a log from before workloads
  std::optional<cli::ChurnRate> rate;
  if (auto r = cli::parseChurnRate(textField(line, "churn_rate"))) rate = *r;
  cli::Options defaults;
  auto steps = line.contains("churn_ramp_steps") ? static_cast<uint32_t>(uintOf(line, "churn_ramp_steps"))
                                                 : defaults.churnRampSteps;
  auto failures = line.contains("max_conn_failures") ? static_cast<uint32_t>(uintOf(line, "max_conn_failures"))
                                                     : defaults.maxConnFailures;
  auto p99 = line.contains("max_connect_p99_ms") ? static_cast<uint32_t>(uintOf(line, "max_connect_p99_ms"))
                                                 : defaults.maxConnectP99Ms;
  configure(kind, rate, steps, failures, p99, ns);
}

void WorkloadModel::configure(cli::WorkloadKind kind, std::optional<cli::ChurnRate> rate, uint32_t rampSteps,
                              uint32_t maxConnFailures, uint32_t maxConnectP99Ms, int64_t startNs) {
  kind_ = kind;
  startNs_ = startNs;
  if (kind_ != cli::WorkloadKind::CHURN) return;
  churnRate_ = rate;
  rampSteps_ = std::max<uint32_t>(1, rampSteps);
  maxConnFailures_ = maxConnFailures;
  maxConnectP99Ms_ = maxConnectP99Ms;
  churn_.steps.clear();
  if (churnRate_ && churnRate_->ramp()) {
    churn_.steps.resize(rampSteps_);
    double stepMs = static_cast<double>(churnRate_->rampSecs) * 1000.0 / rampSteps_;
    for (uint32_t k = 0; k < rampSteps_; ++k) {
      churn_.steps[k].targetPerSec = churnRate_->targetAt(static_cast<int64_t>(std::ceil(stepMs * k)), rampSteps_);
    }
  }
}

void WorkloadModel::onChurnStats(const Json& line, int64_t ns) {
  if (kind_ == cli::WorkloadKind::PTY) kind_ = cli::WorkloadKind::CHURN;  // a log without run_started
  auto intervalMs = static_cast<int64_t>(uintOf(line, "interval_ms"));
  uint64_t attempted = uintOf(line, "attempted"), succeeded = uintOf(line, "succeeded"), failed = uintOf(line, "failed");
  churn_.attempted += attempted;
  churn_.succeeded += succeeded;
  churn_.failed += failed;
  churn_.cpuMs += uintOf(line, "cpu_ms");
  churn_.maxBehindMs = std::max(churn_.maxBehindMs, static_cast<uint32_t>(uintOf(line, "behind_ms")));
  int64_t from = ns - intervalMs * 1'000'000;
  churn_.firstStartNs = churn_.firstStartNs ? std::min(*churn_.firstStartNs, from) : from;
  churn_.lastEndNs = churn_.lastEndNs ? std::max(*churn_.lastEndNs, ns) : ns;

  const Json& hists = field(line, "latency_us");
  if (hists.is_object()) {
    for (const auto& [name, h] : hists.items()) addHistogramJson(h, churn_.phases[name]);
  }
  const Json& failures = field(line, "failures");
  if (failures.is_object()) {
    for (const auto& [kind, f] : failures.items()) {
      auto& agg = churn_.failures[kind];
      if (agg.count == 0) agg.example = textField(f, "example");
      agg.count += uintOf(f, "count");
    }
  }

  int64_t fromMs = (from - startNs()) / 1'000'000, toMs = (ns - startNs()) / 1'000'000;
  churn_.series.addSpread(fromMs, toMs, 0, static_cast<double>(succeeded));
  churn_.series.addSpread(fromMs, toMs, 1, static_cast<double>(failed));
  double target = numberOf(line, "target_per_sec");
  churn_.series.max(toMs - 1, 2, target);

  if (!churn_.steps.empty()) {
    // The report's interval belongs to the step its midpoint falls in.
    double stepMs = static_cast<double>(churnRate_->rampSecs) * 1000.0 / rampSteps_;
    auto k = static_cast<size_t>(std::max<double>(0.0, static_cast<double>(fromMs + toMs) / 2.0 / stepMs));
    k = std::min(k, churn_.steps.size() - 1);
    auto& step = churn_.steps[k];
    auto stepFrom = static_cast<int64_t>(stepMs * static_cast<double>(k));
    // The last step holds on after the ramp: its end is where reports end.
    auto stepTo = k + 1 == churn_.steps.size() ? INT64_MAX : static_cast<int64_t>(stepMs * static_cast<double>(k + 1));
    int64_t a = std::max(stepFrom, fromMs), b = std::min(stepTo, toMs);
    step.fromMs = step.seen ? std::min(step.fromMs, a) : a;
    step.toMs = step.seen ? std::max(step.toMs, b) : b;
    step.seen = true;
    step.attempted += attempted;
    step.succeeded += succeeded;
    step.failed += failed;
    if (hists.is_object() && hists.contains("total")) {
      LatencyHistogram h;
      if (addHistogramJson(hists["total"], h)) h.forEachNonZero([&](size_t i, uint64_t c) { step.totalCounts[i] += c; });
    }
  }

  // The status line's window: the reports of the last few seconds.
  Json counts = hists.is_object() && hists.contains("total") ? hists["total"] : Json::object();
  recentChurn_.push_back({ns, static_cast<uint32_t>(intervalMs), succeeded, target, std::move(counts)});
  while (!recentChurn_.empty() && recentChurn_.front().ns < ns - 10'000'000'000) recentChurn_.pop_front();
}

void WorkloadModel::onTransferRound(const Json& line, int64_t ns, std::optional<uint32_t> session) {
  if (kind_ == cli::WorkloadKind::PTY) kind_ = cli::WorkloadKind::TRANSFER;
  std::string dir = textField(line, "direction");
  if (dir != "up" && dir != "down") return;
  auto& d = transfer_.directions[dir];
  uint64_t bytes = uintOf(line, "bytes");
  uint64_t ms = uintOf(line, "ms");
  double rate = numberOf(line, "mb_per_sec");
  d.rounds += 1;
  d.bytes += bytes;
  d.ms += ms;
  d.cpuMs += uintOf(line, "cpu_ms");
  d.roundRate.record(static_cast<uint64_t>(std::llround(rate * RATE_UNITS_PER_MB)));
  d.minMbPerSec = d.rounds == 1 ? rate : std::min(d.minMbPerSec, rate);
  d.maxMbPerSec = d.rounds == 1 ? rate : std::max(d.maxMbPerSec, rate);
  d.windowBytes = static_cast<uint32_t>(uintOf(line, "window_bytes"));
  d.writeBytes = static_cast<uint32_t>(uintOf(line, "write_bytes"));
  int64_t from = ns - static_cast<int64_t>(ms) * 1'000'000;
  d.firstStartNs = d.firstStartNs ? std::min(*d.firstStartNs, from) : from;
  d.lastEndNs = d.lastEndNs ? std::max(*d.lastEndNs, ns) : ns;
  transfer_.firstStartNs = transfer_.firstStartNs ? std::min(*transfer_.firstStartNs, from) : from;
  transfer_.lastEndNs = transfer_.lastEndNs ? std::max(*transfer_.lastEndNs, ns) : ns;
  if (session) {
    auto [it, added] = transfer_.sessions.try_emplace(*session);
    auto& s = it->second;
    if (added || from < s.firstStartNs) s.firstStartNs = from;
    s.lastEndNs = std::max(s.lastEndNs, ns);
    s.bytes += bytes;
  }
  transfer_.series.addSpread((from - startNs()) / 1'000'000, (ns - startNs()) / 1'000'000, dir == "up" ? 0 : 1,
                             static_cast<double>(bytes));
  recentRounds_.push_back({from, ns, bytes});
  while (!recentRounds_.empty() && recentRounds_.front().endNs < ns - 5'000'000'000) recentRounds_.pop_front();
}

std::optional<BreakingPoint> WorkloadModel::breakingPoint() const {
  for (size_t k = 0; k < churn_.steps.size(); ++k) {
    const auto& s = churn_.steps[k];
    if (!s.seen) continue;
    char buf[160];
    if (s.failed > maxConnFailures_) {
      std::snprintf(buf, sizeof buf, "%llu failed connections > %u allowed", static_cast<unsigned long long>(s.failed),
                    maxConnFailures_);
      return BreakingPoint{k, s.targetPerSec, buf};
    }
    if (auto p99 = s.p99TotalMs(); p99 && *p99 > maxConnectP99Ms_) {
      std::snprintf(buf, sizeof buf, "p99 connect %s ms > %u ms", figureText(*p99).c_str(), maxConnectP99Ms_);
      return BreakingPoint{k, s.targetPerSec, buf};
    }
    double achieved = s.achievedPerSec();
    // A step the run's end cut to less than a second says nothing about its rate.
    if (s.toMs - s.fromMs >= 1000 && achieved < RAMP_REACHED_FRACTION * s.targetPerSec) {
      std::snprintf(buf, sizeof buf, "achieved %s conn/s < 90 %% of the %s target", figureText(round1(achieved)).c_str(),
                    figureText(s.targetPerSec).c_str());
      return BreakingPoint{k, s.targetPerSec, buf};
    }
  }
  return std::nullopt;
}

std::optional<double> WorkloadModel::connRatePerSec() const {
  if (churn_.steps.empty()) {
    auto r = churn_.achievedPerSec();
    return r ? std::optional<double>(round1(*r)) : std::nullopt;
  }
  auto bp = breakingPoint();
  size_t end = bp ? bp->step : churn_.steps.size();
  std::optional<double> best;
  for (size_t k = 0; k < end; ++k) {
    const auto& s = churn_.steps[k];
    if (!s.seen || s.toMs - s.fromMs < 1000) continue;
    best = std::max(best.value_or(0.0), round1(s.achievedPerSec()));
  }
  if (!best && churn_.attempted > 0) best = 0.0;  // broke at its first step
  return best;
}

Json WorkloadModel::json() const {
  Json j;
  j["name"] = std::string(cli::workloadName(kind_));
  auto orNull = [](std::optional<double> v) { return v ? Json(round1(*v)) : Json(nullptr); };
  switch (kind_) {
    case cli::WorkloadKind::JOBS: break;  // issue 13: the jobs figures are being built
    case cli::WorkloadKind::PTY:
      j["echo"] = echo_.empty() ? Json(nullptr) : figuresJson(echo_);
      break;
    case cli::WorkloadKind::CHURN: {
      const auto& c = churn_;
      j["target"] = churnRate_ ? Json(churnRate_->text()) : Json(nullptr);
      j["attempted"] = c.attempted;
      j["succeeded"] = c.succeeded;
      j["failed"] = c.failed;
      j["span_secs"] = round1(c.spanSecs());
      j["achieved_per_sec"] = orNull(c.achievedPerSec());
      j["cpu_ms_per_conn"] =
          c.attempted == 0 ? Json(nullptr) : Json(round2(static_cast<double>(c.cpuMs) / static_cast<double>(c.attempted)));
      j["max_behind_ms"] = c.maxBehindMs;
      Json phases = Json::object();
      for (const char* p : CHURN_PHASES) {
        if (auto it = c.phases.find(p); it != c.phases.end()) phases[p] = figuresJson(it->second);
      }
      for (const auto& [name, h] : c.phases) {
        if (!phases.contains(name)) phases[name] = figuresJson(h);
      }
      j["phases"] = std::move(phases);
      Json failures = Json::object();
      for (const auto& [kind, f] : c.failures) failures[kind] = Json{{"count", f.count}, {"example", f.example}};
      j["failures"] = std::move(failures);
      if (!c.steps.empty()) {
        Json steps = Json::array();
        for (size_t k = 0; k < c.steps.size(); ++k) {
          const auto& s = c.steps[k];
          steps.push_back(Json{{"step", k + 1},
                               {"target_per_sec", round1(s.targetPerSec)},
                               {"achieved_per_sec", s.seen ? Json(round1(s.achievedPerSec())) : Json(nullptr)},
                               {"attempted", s.attempted},
                               {"failed", s.failed},
                               {"p99_total_ms", s.p99TotalMs() ? Json(*s.p99TotalMs()) : Json(nullptr)}});
        }
        Json ramp;
        ramp["steps"] = std::move(steps);
        if (auto bp = breakingPoint()) {
          ramp["breaking_point"] =
              Json{{"step", bp->step + 1}, {"target_per_sec", round1(bp->targetPerSec)}, {"reason", bp->reason}};
        } else {
          ramp["breaking_point"] = "not reached";
        }
        ramp["best_rate_before_break_per_sec"] = orNull(connRatePerSec());
        j["ramp"] = std::move(ramp);
      }
      break;
    }
    case cli::WorkloadKind::TRANSFER: {
      const auto& t = transfer_;
      uint64_t rounds = 0;
      Json dirs = Json::object();
      for (const auto& [name, d] : t.directions) {
        rounds += d.rounds;
        double span = d.firstStartNs ? static_cast<double>(*d.lastEndNs - *d.firstStartNs) / 1e9 : 0;
        dirs[name] = Json{
            {"rounds", d.rounds},
            {"bytes", d.bytes},
            {"mb_per_sec_p50", round1(static_cast<double>(d.roundRate.valueAtPercentile(50)) / RATE_UNITS_PER_MB)},
            {"mb_per_sec_min", round1(d.minMbPerSec)},
            {"mb_per_sec_max", round1(d.maxMbPerSec)},
            {"aggregate_mb_per_sec", span > 0 ? Json(round1(static_cast<double>(d.bytes) / 1e6 / span)) : Json(nullptr)},
            {"cpu_secs_per_gb", d.bytes == 0 ? Json(nullptr)
                                             : Json(round2(static_cast<double>(d.cpuMs) / 1000.0 /
                                                           (static_cast<double>(d.bytes) / 1e9)))},
            {"window_bytes", d.windowBytes},
            {"write_bytes", d.writeBytes}};
      }
      j["rounds"] = rounds;
      j["bytes"] = t.bytes();
      j["span_secs"] = round1(t.spanSecs());
      j["aggregate_mb_per_sec"] = orNull(t.aggregateMbPerSec());
      j["directions"] = std::move(dirs);
      auto per = t.sessionMbPerSec();
      j["per_session_mb_per_sec"] =
          per.empty() ? Json(nullptr)
                      : Json{{"sessions", per.size()},
                             {"min", round1(per.front())},
                             {"median", round1(per[per.size() / 2])},
                             {"max", round1(per.back())}};
      j["corrupt_rounds"] = t.corruptRounds;
      j["first_corrupt"] = t.firstCorrupt ? *t.firstCorrupt : Json(nullptr);
      j["stalls"] = Json{{"count", t.stalls}, {"total_ms", t.stalledMs}, {"max_ms", t.maxStallMs}};
      j["errors"] = Json{{"count", t.errors}, {"first", t.errors ? Json(t.firstError) : Json(nullptr)}};
      break;
    }
  }
  return j;
}

std::string WorkloadModel::statusText() const {
  char buf[160];
  switch (kind_) {
    case cli::WorkloadKind::JOBS: return "";  // issue 13: being built
    case cli::WorkloadKind::CHURN: {
      if (recentChurn_.empty()) return "churn: no report yet";
      // Every agent's last report: the lines within one interval of the newest.
      const auto& last = recentChurn_.back();
      int64_t windowNs = std::max<int64_t>(1, last.intervalMs) * 1'000'000;
      uint64_t succeeded = 0;
      LatencyHistogram total;
      for (const auto& r : recentChurn_) {
        if (r.ns <= last.ns - windowNs) continue;
        succeeded += r.succeeded;
        addHistogramJson(r.counts, total);
      }
      double rate = static_cast<double>(succeeded) * 1e9 / static_cast<double>(windowNs);
      std::string p99 = total.empty() ? "n/a" : figureText(round1(usToMs(total.valueAtPercentile(99)))) + " ms";
      std::snprintf(buf, sizeof buf, "churn %s/%s conn/s, p99 %s, %llu failed", figureText(std::round(rate)).c_str(),
                    last.target > 0 ? figureText(last.target).c_str() : "max", p99.c_str(),
                    static_cast<unsigned long long>(churn_.failed));
      return buf;
    }
    case cli::WorkloadKind::TRANSFER: {
      if (recentRounds_.empty()) return "transfer: no round yet";
      int64_t from = recentRounds_.front().startNs, to = recentRounds_.back().endNs;
      uint64_t bytes = 0;
      for (const auto& r : recentRounds_) {
        bytes += r.bytes;
        from = std::min(from, r.startNs);
      }
      double mbps = to > from ? static_cast<double>(bytes) / 1e6 / (static_cast<double>(to - from) / 1e9) : 0;
      std::snprintf(buf, sizeof buf, "transfer %s MB/s, %llu corrupt", figureText(std::round(mbps)).c_str(),
                    static_cast<unsigned long long>(transfer_.corruptRounds));
      return buf;
    }
    case cli::WorkloadKind::PTY:
      if (echo_.empty()) return "";
      std::snprintf(buf, sizeof buf, "echo p99 %s ms", figureText(usToMs(echo_.valueAtPercentile(99))).c_str());
      return buf;
  }
  return "";
}

}  // namespace sshsoak
