#include "supervisor/analysis/workload_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/stats.h"
#include "supervisor/log_line.h"

namespace sshsoak {

namespace {

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

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }
// Three significant digits, for ratios and per-job figures far below 1
// (reuse on: 0.00075 connections per job).
double roundSig3(double v) {
  if (v == 0 || !std::isfinite(v)) return v;
  double digits = std::max(0.0, 3.0 - std::ceil(std::log10(std::fabs(v))));
  double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

// A percentile of a histogram in ms (0.01), none when it is empty.
std::optional<double> percentileMs(const LatencyHistogram& h, double pct) {
  if (h.empty()) return std::nullopt;
  return usToMs(pct >= 100 ? h.max() : h.valueAtPercentile(pct));
}

Json orNullJson(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

// The jobs summary's latency shape: {n, p50, p95, p99, max}, ms; the
// percentiles are null when nothing was timed (reuse on: no connect).
Json jobLatencyJson(const LatencyHistogram& h) {
  return Json{{"n", h.count()},
              {"p50", orNullJson(percentileMs(h, 50))},
              {"p95", orNullJson(percentileMs(h, 95))},
              {"p99", orNullJson(percentileMs(h, 99))},
              {"max", orNullJson(percentileMs(h, 100))}};
}

// The sum of a histogram's values, µs (each at its bucket's median: 1 %).
double sumUs(const LatencyHistogram& h) { return h.mean() * static_cast<double>(h.count()); }

std::optional<double> ratio(std::optional<double> on, std::optional<double> off) {
  if (!on || !off || *off <= 0) return std::nullopt;
  return roundSig3(*on / *off);
}

// The two phases of --compare-reuse; a line naming no (or another) phase
// belongs to the one of the line before it.
constexpr const char* REUSE_OFF = "reuse_off";
constexpr const char* REUSE_ON = "reuse_on";

bool isJobsEvent(const std::string& event) {
  return event == "job_stats" || event == "job_queue" || event == "job" || event == "job_connection_closed" ||
         event == "job_retried" || event == "job_rejected" || event == "job_phase";
}

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

Json jobLatencyFiguresJson(const LatencyHistogram& h) { return jobLatencyJson(h); }
std::optional<double> latencyPercentileMs(const LatencyHistogram& h, double pct) { return percentileMs(h, pct); }

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

// ---- jobs ----

double JobsFigures::Phase::spanSecs() const {
  if (ended && secs > 0) return secs;
  return firstStartNs && lastEndNs ? static_cast<double>(*lastEndNs - *firstStartNs) / 1e9 : 0.0;
}

std::optional<double> JobsFigures::Phase::jobsPerSec() const {
  double span = spanSecs();
  if (span <= 0) return std::nullopt;
  return static_cast<double>(results()) / span;
}

std::optional<int64_t> JobsFigures::Phase::lost() const {
  if (!ended) return std::nullopt;
  return static_cast<int64_t>(phaseSubmitted) - static_cast<int64_t>(results() + phaseNotStarted);
}

std::optional<double> JobsFigures::Phase::setupMsPerJob() const {
  if (results() == 0) return std::nullopt;
  double us = 0;
  for (const char* name : {"connect", "liveness"}) {
    if (auto it = latency.find(name); it != latency.end()) us += sumUs(it->second);
  }
  return us / 1000.0 / static_cast<double>(results());
}

uint64_t JobsFigures::sum(uint64_t Phase::*f) const {
  uint64_t n = 0;
  for (const auto& [name, p] : phases) n += p.*f;
  return n;
}

uint64_t JobsFigures::submitted() const {
  if (queue) return queue->submitted;
  uint64_t n = 0;
  for (const auto& [name, p] : phases) n += p.ended ? p.phaseSubmitted : 0;
  return n;
}

uint64_t JobsFigures::results() const {
  uint64_t n = 0;
  for (const auto& [name, p] : phases) n += p.results();
  return n;
}

double JobsFigures::spanSecs() const {
  double s = 0;
  for (const auto& [name, p] : phases) s += p.spanSecs();
  return s;
}

std::optional<int64_t> JobsFigures::lost() const {
  if (!accounted()) return std::nullopt;
  return static_cast<int64_t>(queue->submitted) - static_cast<int64_t>(results() + queue->notStarted);
}

LatencyHistogram JobsFigures::latency(const std::string& name) const {
  LatencyHistogram h;
  for (const auto& [phase, p] : phases) {
    if (auto it = p.latency.find(name); it != p.latency.end()) h.merge(it->second);
  }
  return h;
}

std::optional<double> JobsFigures::totalP95Ms() const { return percentileMs(latency("total"), 95); }

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
  } else if (isJobsEvent(event)) {
    onJobsLine(line, event, ns, session);
  } else if (event == "pty_stats") {
    const Json& hists = field(line, "latency_us");
    if (fromRollups_ && hists.is_object() && hists.contains("echo")) addHistogramJson(hists["echo"], echo_);
  } else if (event == "pty_cycle" && !fromRollups_) {
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
              : name == "jobs"     ? cli::WorkloadKind::JOBS
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
  fromRollups_ = line.contains("log_detail");
  if (kind == cli::WorkloadKind::JOBS) {
    configureJobs(textField(line, "reuse"), static_cast<uint32_t>(uintOf(line, "sessions")));
  }
}

void WorkloadModel::configureJobs(const std::string& reuse, uint32_t workers) {
  jobs_.reuse = reuse;
  jobs_.workers = workers;
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

const std::string& WorkloadModel::notePhase(const Json& line) {
  std::string name = textField(line, "phase");
  if (name == REUSE_OFF || name == REUSE_ON) {
    jobsCurrentPhase_ = name;
  } else if (jobsCurrentPhase_.empty()) {
    jobsCurrentPhase_ = jobs_.reuse == "off" ? REUSE_OFF : REUSE_ON;
  }
  return jobsCurrentPhase_;
}

void WorkloadModel::onJobsLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session) {
  if (kind_ == cli::WorkloadKind::PTY) kind_ = cli::WorkloadKind::JOBS;  // a log without run_started
  if (event == "job_stats") {
    onJobStats(line, ns, session);
  } else if (event == "job_queue") {
    JobsFigures::Queue q{uintOf(line, "submitted"), uintOf(line, "queued"),  uintOf(line, "in_flight"),
                         uintOf(line, "results"),   uintOf(line, "retried"), uintOf(line, "shed"),
                         uintOf(line, "not_started"), field(line, "final").is_boolean() && field(line, "final").get<bool>()};
    notePhase(line);
    // The run's counts so far; the final line is the run's account and
    // nothing after it replaces that.
    if (!jobs_.accounted()) jobs_.queue = q;
    lastQueue_ = q;
  } else if (event == "job") {
    ++jobs_.detailLines;
    std::string outcome = textField(line, "outcome");
    if (outcome != "done" && jobs_.firstFailures.size() < JobsFigures::FIRST_FAILURES) {
      Json ex = Json::object();
      for (const char* k : {"session_id", "job", "target", "phase", "outcome", "attempt", "failure_kind", "message",
                            "exit_codes", "commands_run", "commands_failed"}) {
        if (line.contains(k)) ex[k] = field(line, k);
      }
      jobs_.firstFailures.push_back(std::move(ex));
    }
  } else if (event == "job_connection_closed") {
    std::string reason = textField(line, "reason");
    for (const char* r : JOB_CLOSE_REASONS) {
      if (reason == r) ++jobs_.closes[reason];
    }
  } else if (event == "job_retried") {
    ++jobs_.retried;
  } else if (event == "job_rejected") {
    ++jobs_.rejected;
  } else if (event == "job_phase") {
    auto& p = jobsPhase(line);
    p.ended = true;
    p.secs = numberOf(line, "secs");
    p.phaseSubmitted = uintOf(line, "submitted");
    p.phaseNotStarted = uintOf(line, "not_started");
    const Json& pid = field(line, "server_pid");
    if (pid.is_number_integer()) p.serverPid = pid.get<int64_t>();
    if (field(line, "server_cpu_ms").is_number()) p.serverCpuMs = uintOf(line, "server_cpu_ms");
  }
}

void WorkloadModel::onJobStats(const Json& line, int64_t ns, std::optional<uint32_t> session) {
  auto& p = jobsPhase(line);
  bool off = jobsCurrentPhase_ == REUSE_OFF;
  auto intervalMs = static_cast<int64_t>(uintOf(line, "interval_ms"));
  uint64_t done = uintOf(line, "done"), failed = uintOf(line, "failed"), aborted = uintOf(line, "aborted"),
           cancelled = uintOf(line, "cancelled");
  p.done += done;
  p.failed += failed;
  p.aborted += aborted;
  p.cancelled += cancelled;
  p.reused += uintOf(line, "reused");
  p.connectionsOpened += uintOf(line, "connections_opened");
  p.deadReplaced += uintOf(line, "dead_replaced");
  p.commandsRun += uintOf(line, "commands_run");
  p.commandsFailed += uintOf(line, "commands_failed");
  int64_t from = ns - intervalMs * 1'000'000;
  p.firstStartNs = p.firstStartNs ? std::min(*p.firstStartNs, from) : from;
  p.lastEndNs = p.lastEndNs ? std::max(*p.lastEndNs, ns) : ns;
  if (session) jobs_.workersSeen.insert(*session);

  // Every interval's and worker's histogram merged exactly: percentiles of
  // the union, never an average of percentiles.
  const Json& hists = field(line, "latency_us");
  if (hists.is_object()) {
    for (const char* name : JOB_LATENCIES) {
      if (hists.contains(name)) addHistogramJson(hists[name], p.latency[name]);
    }
  }
  const Json& failures = field(line, "failures");
  if (failures.is_object()) {
    for (const auto& [kind, f] : failures.items()) {
      auto& agg = jobs_.failures[kind];
      if (agg.count == 0) agg.example = textField(f, "example");
      agg.count += uintOf(f, "count");
    }
  }

  int64_t fromMs = (from - startNs()) / 1'000'000, toMs = (ns - startNs()) / 1'000'000;
  jobs_.series.addSpread(fromMs, toMs, off ? 0 : 1, static_cast<double>(done + failed + aborted + cancelled));
  jobs_.series.addSpread(fromMs, toMs, 2, static_cast<double>(failed + aborted));

  Json total = hists.is_object() && hists.contains("total") ? hists["total"] : Json::object();
  recentJobs_.push_back({ns, static_cast<uint32_t>(intervalMs), done, std::move(total)});
  int64_t keepNs = std::max<int64_t>(10'000'000'000, 2 * intervalMs * 1'000'000);
  while (!recentJobs_.empty() && recentJobs_.front().ns < ns - keepNs) recentJobs_.pop_front();
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
    case cli::WorkloadKind::JOBS: {
      Json jobs = jobsJson();
      j.update(jobs);
      break;
    }
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
    case cli::WorkloadKind::JOBS: return jobsStatus();
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

namespace {

std::optional<double> connectionsPerJob(const JobsFigures::Phase& p) {
  if (p.results() == 0) return std::nullopt;
  return static_cast<double>(p.connectionsOpened) / static_cast<double>(p.results());
}

Json jobsPhaseJson(const JobsFigures::Phase& p) {
  Json j;
  j["secs"] = round1(p.spanSecs());
  j["submitted"] = p.ended ? Json(p.phaseSubmitted) : Json(nullptr);
  j["done"] = p.done;
  j["failed"] = p.failed;
  j["aborted"] = p.aborted;
  j["cancelled"] = p.cancelled;
  j["not_started"] = p.ended ? Json(p.phaseNotStarted) : Json(nullptr);
  j["lost"] = p.lost() ? Json(*p.lost()) : Json(nullptr);
  auto jps = p.jobsPerSec();
  j["jobs_per_sec"] = jps ? Json(round2(*jps)) : Json(nullptr);
  j["reuse_rate"] = p.results() ? Json(round3(static_cast<double>(p.reused) / static_cast<double>(p.results()))) : Json(nullptr);
  j["connections_opened"] = p.connectionsOpened;
  auto perJob = connectionsPerJob(p);
  j["connections_per_job"] = perJob ? Json(roundSig3(*perJob)) : Json(nullptr);
  j["dead_replaced"] = p.deadReplaced;
  Json lat = Json::object();
  for (const char* name : JOB_LATENCIES) {
    auto it = p.latency.find(name);
    lat[name] = jobLatencyJson(it == p.latency.end() ? LatencyHistogram() : it->second);
  }
  j["latency_ms"] = std::move(lat);
  auto setup = p.setupMsPerJob();
  j["setup_ms_per_job"] = setup ? Json(round2(*setup)) : Json(nullptr);
  j["server_pid"] = p.serverPid ? Json(*p.serverPid) : Json(nullptr);
  j["server_cpu_ms"] = p.serverCpuMs ? Json(*p.serverCpuMs) : Json(nullptr);
  j["server_cpu_ms_per_job"] =
      p.serverCpuMs && p.results() ? Json(roundSig3(static_cast<double>(*p.serverCpuMs) / static_cast<double>(p.results())))
                                   : Json(nullptr);
  return j;
}

std::optional<double> cpuPerJob(const JobsFigures::Phase& p) {
  if (!p.serverCpuMs || p.results() == 0) return std::nullopt;
  return static_cast<double>(*p.serverCpuMs) / static_cast<double>(p.results());
}

std::optional<double> p95Of(const JobsFigures::Phase& p) {
  auto it = p.latency.find("total");
  return it == p.latency.end() ? std::nullopt : percentileMs(it->second, 95);
}

}  // namespace

Json WorkloadModel::jobsJson() const {
  const JobsFigures& f = jobs_;
  Json j;
  j["reuse"] = f.reuse.empty() ? Json(nullptr) : Json(f.reuse);
  j["workers"] = f.workerCount();
  j["submitted"] = f.submitted();
  j["done"] = f.sum(&JobsFigures::Phase::done);
  j["failed"] = f.sum(&JobsFigures::Phase::failed);
  j["aborted"] = f.sum(&JobsFigures::Phase::aborted);
  j["cancelled"] = f.sum(&JobsFigures::Phase::cancelled);
  bool accounted = f.accounted();
  j["not_started"] = accounted ? Json(f.queue->notStarted) : Json(nullptr);
  j["lost"] = f.lost() ? Json(*f.lost()) : Json(nullptr);
  j["queue_final"] = accounted;
  if (!accounted) {
    j["incomplete"] = f.empty() ? "no job_queue or job_stats line: no job was accounted for"
                                : "no final job_queue line (run killed?): the counts are the last reports', "
                                  "not_started and lost are unknown";
  }
  j["retried"] = f.retried;
  j["shed"] = f.queue ? f.queue->shed : 0;
  j["rejected"] = f.rejected;
  double span = f.spanSecs();
  uint64_t results = f.results();
  j["span_secs"] = round1(span);
  j["jobs_per_sec"] = span > 0 ? Json(round2(static_cast<double>(results) / span)) : Json(nullptr);
  Json lat = Json::object();
  for (const char* name : JOB_LATENCIES) lat[name] = jobLatencyJson(f.latency(name));
  j["latency_ms"] = std::move(lat);
  uint64_t reused = f.sum(&JobsFigures::Phase::reused);
  j["reuse_rate"] = results ? Json(round3(static_cast<double>(reused) / static_cast<double>(results))) : Json(nullptr);
  uint64_t opened = f.sum(&JobsFigures::Phase::connectionsOpened);
  j["connections_opened"] = opened;
  uint32_t workers = f.workerCount();
  j["connections_per_hour_per_worker"] =
      workers && span > 0 ? Json(round2(static_cast<double>(opened) / workers / (span / 3600.0))) : Json(nullptr);
  auto closes = [&](const char* reason) {
    auto it = f.closes.find(reason);
    return it == f.closes.end() ? uint64_t{0} : it->second;
  };
  j["idle_closes"] = closes("idle");
  j["lru_closes"] = closes("lru");
  j["dead_replaced"] = f.sum(&JobsFigures::Phase::deadReplaced);
  j["dropped_closes"] = closes("dropped");
  j["tainted_closes"] = closes("tainted");

  // What reuse saved in connection setup (docs/reference.md, "The summary line").
  auto off = f.phases.find(REUSE_OFF), on = f.phases.find(REUSE_ON);
  bool compared = off != f.phases.end() && on != f.phases.end() && off->second.results() && on->second.results();
  if (compared) {
    double saved = (*off->second.setupMsPerJob() - *on->second.setupMsPerJob()) * static_cast<double>(on->second.results());
    j["setup_saved_ms"] = std::round(saved);
    j["setup_saved_method"] = "measured: (reuse_off's - reuse_on's connect + liveness ms per job) x reuse_on's jobs";
  } else if (f.reuse == "off" || (on == f.phases.end() && off != f.phases.end())) {
    j["setup_saved_ms"] = 0;
    j["setup_saved_method"] = "reuse off: the baseline, nothing reused";
  } else {
    LatencyHistogram connect = f.latency("connect");
    j["setup_saved_ms"] = connect.empty() ? Json(nullptr) : Json(std::round(static_cast<double>(reused) * connect.mean() / 1000.0));
    j["setup_saved_method"] = "estimated: jobs served by a cached connection x this run's mean connect time";
  }

  Json failures = Json::object();
  for (const auto& [kind, fl] : f.failures) failures[kind] = Json{{"count", fl.count}, {"example", fl.example}};
  j["failures"] = std::move(failures);
  j["first_failures"] = f.firstFailures;
  j["detail_lines"] = f.detailLines;

  Json phases = Json::object();
  for (const auto& [name, p] : f.phases) phases[name] = jobsPhaseJson(p);
  j["phases"] = std::move(phases);
  if (compared) {
    const auto& a = off->second;
    const auto& b = on->second;
    j["compare"] = Json{{"throughput_ratio", orNullJson(ratio(b.jobsPerSec(), a.jobsPerSec()))},
                        {"p95_ratio", orNullJson(ratio(p95Of(b), p95Of(a)))},
                        {"server_cpu_ratio", orNullJson(ratio(cpuPerJob(b), cpuPerJob(a)))},
                        {"connections_ratio", orNullJson(ratio(connectionsPerJob(b), connectionsPerJob(a)))}};
  }
  return j;
}

std::string WorkloadModel::jobsStatus() const {
  if (recentJobs_.empty() && !lastQueue_) return "jobs: no report yet";
  uint64_t done = 0;
  LatencyHistogram total;
  double rate = 0;
  if (!recentJobs_.empty()) {
    // Every worker's last report: the lines within one interval of the newest.
    const auto& last = recentJobs_.back();
    int64_t windowNs = std::max<int64_t>(1, last.intervalMs) * 1'000'000;
    for (const auto& r : recentJobs_) {
      if (r.ns <= last.ns - windowNs) continue;
      done += r.done;
      addHistogramJson(r.total, total);
    }
    rate = static_cast<double>(done) * 1e9 / static_cast<double>(windowNs);
  }
  auto p95 = percentileMs(total, 95);
  char buf[200];
  std::snprintf(buf, sizeof buf, "jobs %s done/s, queue %s, in flight %s, p95 %s, %llu failed",
                figureText(round1(rate)).c_str(), lastQueue_ ? std::to_string(lastQueue_->queued).c_str() : "n/a",
                lastQueue_ ? std::to_string(lastQueue_->inFlight).c_str() : "n/a",
                p95 ? (figureText(round1(*p95)) + " ms").c_str() : "n/a",
                static_cast<unsigned long long>(jobs_.sum(&JobsFigures::Phase::failed) +
                                                jobs_.sum(&JobsFigures::Phase::aborted)));
  return buf;
}

}  // namespace sshsoak
