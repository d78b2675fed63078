#include "supervisor/analysis/run_accumulator.h"

#include <algorithm>
#include <cmath>

#include "shared/clock.h"
#include "supervisor/analysis/jsonl_reader.h"

namespace sshsoak {

BinnedSeries::Bin BinnedSeries::merge(const Bin& a, const Bin& b) {
  Bin m;
  m.n = a.n + b.n;
  double wa = static_cast<double>(a.n) / m.n, wb = static_cast<double>(b.n) / m.n;
  m.t = a.t * wa + b.t * wb;
  m.mean = a.mean * wa + b.mean * wb;
  m.min = std::min(a.min, b.min);
  m.max = std::max(a.max, b.max);
  return m;
}

void BinnedSeries::add(double t, double v) {
  Bin b{t, v, v, v, 1};
  pending_ = pending_ ? merge(*pending_, b) : b;
  if (pending_->n < perBin_) return;
  bins_.push_back(*pending_);
  pending_.reset();
  if (bins_.size() < cap_) return;
  std::vector<Bin> halved;
  halved.reserve(cap_);
  for (size_t i = 0; i + 1 < bins_.size(); i += 2) halved.push_back(merge(bins_[i], bins_[i + 1]));
  if (bins_.size() % 2 == 1) pending_ = bins_.back();
  bins_ = std::move(halved);
  perBin_ *= 2;
}

std::vector<BinnedSeries::Bin> BinnedSeries::bins() const {
  std::vector<Bin> all = bins_;
  if (pending_) all.push_back(*pending_);
  return all;
}

RunAccumulator::RunAccumulator(const std::vector<std::string>& hosts, uint32_t firstId) : model_(hosts, firstId) {}

void RunAccumulator::noteRunStarted(const Json& line) {
  runId_ = textField(line, "run_id");
  runStarted_ = line;
  model_.noteRunStarted(line);
  int64_t ns = parseIsoTimestamp(textField(line, "ts"));
  if (!firstNs_) firstNs_ = ns;
  lastNs_ = std::max(lastNs_, ns);
}

void RunAccumulator::onLine(const Json& line) {
  ++lines_;
  model_.onLine(line);
  std::string event = textField(line, "event");
  int64_t ns = parseIsoTimestamp(textField(line, "ts"));
  if (!firstNs_) firstNs_ = ns;
  lastNs_ = ns;
  double t = static_cast<double>(ns - *firstNs_) / 1e9;
  if (event == "run_started" && runId_.empty()) runId_ = textField(line, "run_id");
  if (event == "checkpoint") checkpoint_ = line;
  if (event == "run_started" && !runStarted_) runStarted_ = line;
  if (event == "log_continued" && !runStarted_ && field(line, "run_started").is_object()) {
    runStarted_ = field(line, "run_started");
  }
  // Issue 17: a shard's lines say which shard it is (the first line that says).
  if (!shard_) {
    auto index = countField(line, "shard", UINT32_MAX), count = countField(line, "shards", UINT32_MAX);
    if (index && count) shard_ = Shard{static_cast<uint32_t>(*index), static_cast<uint32_t>(*count)};
  }
  if (event == "disconnect_injected" || event == "fault_started") {
    if (markers_.size() < MAX_MARKERS && (markers_.empty() || t - markers_.back().t > 0.5)) {
      markers_.push_back({t, event == "fault_started" ? "fault: " + textField(line, "detail") : "injected drop"});
    }
  }
  if (event == "pacer_rate" && field(line, "rate_per_sec").is_number()) {
    double rate = field(line, "rate_per_sec").get<double>();
    if (std::isfinite(rate) && rate >= 0) pacerRate_.add(t, rate);
  }
  if (event == "resource_sample") {
    const Json& tot = field(line, "total");
    if (field(tot, "pss_kb").is_number()) pssMb_.add(t, field(tot, "pss_kb").get<double>() / 1024);
    if (field(tot, "rss_kb").is_number()) rssMb_.add(t, field(tot, "rss_kb").get<double>() / 1024);
    if (field(tot, "cpu_pct").is_number()) cpuPct_.add(t, field(tot, "cpu_pct").get<double>());
  }
  // Each session's state after the line, as the run model (and so the
  // summary) has it; only its changes are kept.
  const Json& sessionId = field(line, "session_id");
  if (!sessionId.is_number_unsigned() || sessionId.get<uint64_t>() > UINT32_MAX) return;
  auto id = sessionId.get<uint32_t>();
  SessionState next = model_.session(id).state;
  auto it = open_.find(id);
  if (it != open_.end() && it->second.state == next) return;
  if (it != open_.end()) {
    auto& list = segs_[id];
    if (list.size() >= MAX_SEGMENTS_PER_SESSION) halve(list);
    list.push_back({it->second.from, t, it->second.state});
  }
  open_[id] = Segment{t, t, next};
}

// Bounded at any run length: neighbours merge pairwise (the row keeps its
// span), and a merged pair takes the state that is not "connected", so an
// interruption stays visible however many there were; a pixel could not
// show them apart anyway.
void RunAccumulator::halve(std::vector<Segment>& list) {
  size_t out = 0;
  for (size_t i = 0; i < list.size(); i += 2) {
    Segment merged = list[i];
    if (i + 1 < list.size()) {
      merged.to = list[i + 1].to;
      if (merged.state == SessionState::CONNECTED) merged.state = list[i + 1].state;
    }
    list[out++] = merged;
  }
  list.resize(out);
}

std::map<uint32_t, std::vector<RunAccumulator::Segment>> RunAccumulator::segments(double until) const {
  auto all = segs_;
  for (const auto& [id, o] : open_) all[id].push_back({o.from, std::max(o.from, until), o.state});
  return all;
}

}  // namespace sshsoak
