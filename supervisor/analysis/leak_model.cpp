#include "supervisor/analysis/leak_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak {

namespace {

double median(std::vector<double>& v) {
  size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lo + hi) / 2;
}

double round2(double v) { return std::round(v * 100.0) / 100.0; }

// The slope that ranks a process: its RSS slope, or below every slope when unfitted.
// The memory the verdict judges: anonymous memory (heap and anonymous maps,
// what a leak grows), or RSS in a log without it. RSS also grows by code
// pages touched the first time (a reconnect's first kex after warm-up) and
// PSS moves when other processes exit: neither is a leak.
const std::optional<LineFit>& judgedFit(const ProcessLeak& p) { return p.anon ? p.anon : p.rss; }

double rankOf(const ProcessLeak& p) {
  return judgedFit(p) ? judgedFit(p)->slope : -std::numeric_limits<double>::infinity();
}

// The slope the verdict judges: a fitted rise below the noise floor over the
// process's span counts as flat.
std::optional<double> judgedSlope(const ProcessLeak& p) {
  const auto& fit = judgedFit(p);
  if (!fit) return std::nullopt;
  double spanH = (p.lastSecs - p.firstSecs) / 3600.0;
  if (std::abs(fit->slope * spanH) < LeakModel::NOISE_FLOOR_MB) return 0.0;
  return fit->slope;
}

std::optional<int64_t> intOf(const Json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_float()) return static_cast<int64_t>(v.get<double>());
  return std::nullopt;
}

}  // namespace

std::optional<LineFit> theilSen(const std::vector<std::pair<double, double>>& pts) {
  std::vector<double> slopes;
  slopes.reserve(pts.size() * (pts.size() - (pts.empty() ? 0 : 1)) / 2);
  for (size_t i = 0; i < pts.size(); ++i) {
    for (size_t j = i + 1; j < pts.size(); ++j) {
      double dx = pts[j].first - pts[i].first;
      if (dx != 0) slopes.push_back((pts[j].second - pts[i].second) / dx);
    }
  }
  if (slopes.empty()) return std::nullopt;
  LineFit f;
  f.slope = median(slopes);
  std::vector<double> icepts;
  icepts.reserve(pts.size());
  for (const auto& [x, y] : pts) icepts.push_back(y - f.slope * x);
  f.intercept = median(icepts);
  return f;
}

LeakPoint Downsampler::merge(const LeakPoint& a, const LeakPoint& b) {
  LeakPoint m;
  m.n = a.n + b.n;
  double wa = static_cast<double>(a.n) / m.n, wb = static_cast<double>(b.n) / m.n;
  m.t = a.t * wa + b.t * wb;
  m.rssMb = a.rssMb * wa + b.rssMb * wb;
  m.anonMb = a.anonMb < 0 || b.anonMb < 0 ? -1 : a.anonMb * wa + b.anonMb * wb;
  m.pssMb = a.pssMb * wa + b.pssMb * wb;
  m.fds = std::min(a.fds, b.fds);
  m.threads = std::min(a.threads, b.threads);
  return m;
}

void Downsampler::add(const LeakPoint& in) {
  ++samples_;
  LeakPoint p = in;
  p.n = 1;
  pending_ = pending_ ? merge(*pending_, p) : p;
  if (pending_->n < perPoint_) return;
  points_.push_back(*pending_);
  pending_.reset();
  if (points_.size() < cap_) return;
  // Full: each pair of neighbours becomes one point of twice the samples.
  std::vector<LeakPoint> halved;
  halved.reserve(cap_);
  for (size_t i = 0; i + 1 < points_.size(); i += 2) halved.push_back(merge(points_[i], points_[i + 1]));
  if (points_.size() % 2 == 1) pending_ = points_.back();
  points_ = std::move(halved);
  perPoint_ *= 2;
}

std::vector<LeakPoint> Downsampler::points() const {
  std::vector<LeakPoint> all = points_;
  if (pending_) all.push_back(*pending_);
  return all;
}

std::string ProcessLeak::who() const {
  std::string s = role;
  if (session) s += " " + std::to_string(*session);
  return s + " (pid " + std::to_string(pid) + ")";
}

void LeakModel::configure(double warmupSecs, double minFitSecs, int64_t startNs) {
  warmupSecs_ = std::max(0.0, warmupSecs);
  minFitSecs_ = std::max(0.0, minFitSecs);
  startNs_ = startNs;
  ++fitsVersion_;
}

void LeakModel::onLine(const Json& line, const std::string& event, int64_t ns) {
  if (event == "run_started") {
    if (configured()) return;  // the live run configured it from its options
    double duration = field(line, "duration_secs").is_number() ? field(line, "duration_secs").get<double>() : 0;
    // Logs before warmup_secs was written: the flag's default, capped at half the run as the run caps it.
    double warmup = field(line, "warmup_secs").is_number() ? field(line, "warmup_secs").get<double>()
                                                           : (duration > 0 ? std::min(60.0, duration / 2) : 60.0);
    double minFit = field(line, "leak_min_fit_secs").is_number() ? field(line, "leak_min_fit_secs").get<double>() : 600;
    configure(warmup, minFit, ns);
    return;
  }
  auto session = intOf(field(line, "session_id"));
  if (event == "agent_started" && session) {
    agentFds_[static_cast<uint32_t>(*session)] = AgentFds{intOf(field(line, "pid")).value_or(0), {}, {}};
    return;
  }
  if ((event == "connected" || event == "reconnected") && session) {
    auto fds = intOf(field(line, "fds"));
    if (!fds) return;  // logs before the fds field
    AgentFds& a = agentFds_[static_cast<uint32_t>(*session)];
    if (event == "connected" && !a.first) a.first = fds;
    if (event == "reconnected" && a.first) {
      a.maxReconnected = std::max(a.maxReconnected.value_or(*fds), *fds);
      int64_t growth = *a.maxReconnected - *a.first;
      auto& worst = reconnectFdWorst_[static_cast<uint32_t>(*session)];
      if (growth > worst.first || worst.second.empty()) {
        worst = {growth, "agent " + std::to_string(*session) + (a.pid ? " (pid " + std::to_string(a.pid) + ")" : "")};
      }
    }
    return;
  }
  if (event != "resource_sample") return;
  ++fitsVersion_;
  if (!configured()) configure(warmupSecs_, minFitSecs_, ns);  // a log without its start: from the first sample
  ++samplesTaken_;
  if (auto missed = intOf(field(line, "missed")); missed && *missed > 0) samplesMissed_ += static_cast<uint64_t>(*missed);
  if (auto gap = intOf(field(line, "unsampled_ms")); gap && *gap > unsampledMs_) {
    unsampledMs_ = *gap;
    unsampledFrom_ = field(line, "unsampled_from").is_string() ? field(line, "unsampled_from").get<std::string>() : "";
  }
  auto tcpCloseWait = intOf(field(field(line, "tcp"), "close_wait"));
  if (tcpCloseWait) closeWait_ = *tcpCloseWait;
  double t = static_cast<double>(ns - *startNs_) / 1e9;
  const Json& procs = field(line, "procs");
  if (!procs.is_array()) return;
  std::vector<int64_t> seen;
  seen.reserve(procs.size());
  std::optional<int64_t> procsCloseWait;  // without a tcp object: the sum of the processes' column
  for (const auto& p : procs) {
    if (!p.is_array() || p.size() < 7) continue;
    auto pid = intOf(p[0]);
    if (!pid) continue;
    seen.push_back(*pid);
    if (auto cw = p.size() > 10 ? intOf(p[10]) : std::nullopt) procsCloseWait = procsCloseWait.value_or(0) + *cw;
    auto [it, added] = live_.try_emplace(*pid);
    Tracked& tr = it->second;
    if (added) {
      tr.pid = *pid;
      tr.bornAfterWarmup = t >= warmupSecs_ && samplesTaken_ > 1;
      if (auto s = intOf(p[1])) tr.session = static_cast<uint32_t>(*s);
      // v2 names the role; the eight columns before it: agents have a session.
      tr.role = p.size() > 8 && p[8].is_string() ? p[8].get<std::string>() : tr.session ? "agent" : "supervisor";
    }
    tr.absent = 0;
    if (t < warmupSecs_) continue;
    auto rss = intOf(p[3]), pss = intOf(p[4]), fds = intOf(p[5]), threads = intOf(p[6]);
    if (!rss) continue;
    if (tr.bornAfterWarmup && !tr.firstSkipped) {
      tr.firstSkipped = true;  // a process sampled as it starts: its fds are not yet its own
      continue;
    }
    auto anon = p.size() > 11 ? intOf(p[11]) : std::nullopt;
    tr.series.add(LeakPoint{t, static_cast<double>(*rss) / 1024.0, anon ? static_cast<double>(*anon) / 1024.0 : -1.0,
                            static_cast<double>(pss.value_or(0)) / 1024.0,
                            fds.value_or(0), threads.value_or(0), 1});
  }
  if (!tcpCloseWait && procsCloseWait) closeWait_ = *procsCloseWait;
  std::sort(seen.begin(), seen.end());
  for (auto it = live_.begin(); it != live_.end();) {
    if (std::binary_search(seen.begin(), seen.end(), it->first) || ++it->second.absent < ABSENT_SAMPLES_GONE) {
      ++it;
      continue;
    }
    retire(std::move(it->second));
    it = live_.erase(it);
  }
}

ProcessLeak LeakModel::fitOf(const Tracked& t) const {
  ProcessLeak p;
  p.pid = t.pid;
  p.role = t.role;
  p.session = t.session;
  p.samples = t.series.samples();
  p.series = t.series.points();
  if (p.series.empty()) {
    p.na = "no samples after the " + figureText(warmupSecs_) + " s warm-up";
    return p;
  }
  p.firstSecs = p.series.front().t;
  p.lastSecs = p.series.back().t;
  double span = p.lastSecs - p.firstSecs;
  if (p.samples < 10 || span < minFitSecs_) {
    p.na = std::to_string(p.samples) + " samples over " + figureText(std::round(span)) + " s after the " +
           figureText(warmupSecs_) + " s warm-up; a fit needs 10 over " + figureText(minFitSecs_) +
           " s (--leak-min-fit-secs)";
    return p;
  }
  std::vector<std::pair<double, double>> rss, pss, anon;
  bool hasAnon = true;
  for (const auto& pt : p.series) {
    hasAnon = hasAnon && pt.anonMb >= 0;
    if (hasAnon) anon.emplace_back(pt.t / 3600.0, pt.anonMb);
    rss.emplace_back(pt.t / 3600.0, pt.rssMb);
    pss.emplace_back(pt.t / 3600.0, pt.pssMb);
  }
  p.rss = theilSen(rss);
  if (hasAnon) p.anon = theilSen(anon);
  p.pss = theilSen(pss);
  // Growth: the floor at the end over the floor at the start, so that a
  // transient (a reconnect's sockets) counts only if it stays.
  size_t k = std::max<size_t>(1, p.series.size() / 10);
  auto floorOf = [&](size_t from, int64_t LeakPoint::*f) {
    int64_t m = p.series[from].*f;
    for (size_t i = from; i < from + k; ++i) m = std::min(m, p.series[i].*f);
    return m;
  };
  p.fdGrowth = floorOf(p.series.size() - k, &LeakPoint::fds) - floorOf(0, &LeakPoint::fds);
  p.threadGrowth = floorOf(p.series.size() - k, &LeakPoint::threads) - floorOf(0, &LeakPoint::threads);
  return p;
}

void LeakModel::retire(Tracked&& t) {
  ProcessLeak p = fitOf(t);
  if (!p.rss) {
    ++goneUnfitted_;  // nothing to judge or plot: a count, not an entry (thousands per hour)
    return;
  }
  p.gone = true;
  gone_.push_back(std::move(p));
  // Bounded: the series of the SERIES_KEPT worst gone processes, the figures of GONE_KEPT.
  size_t withSeries = 0;
  for (const auto& g : gone_) withSeries += g.series.empty() ? 0 : 1;
  if (withSeries > SERIES_KEPT) {
    ProcessLeak* mildest = nullptr;
    for (auto& g : gone_) {
      if (!g.series.empty() && (mildest == nullptr || rankOf(g) < rankOf(*mildest))) mildest = &g;
    }
    mildest->series.clear();
    mildest->series.shrink_to_fit();
  }
  if (gone_.size() > GONE_KEPT) {
    auto mildest = std::min_element(gone_.begin(), gone_.end(),
                                    [](const ProcessLeak& a, const ProcessLeak& b) { return rankOf(a) < rankOf(b); });
    gone_.erase(mildest);
    ++goneDropped_;
  }
}

std::vector<ProcessLeak> LeakModel::processes() const {
  std::vector<ProcessLeak> all;
  all.reserve(live_.size() + gone_.size());
  for (const auto& [pid, t] : live_) all.push_back(fitOf(t));
  all.insert(all.end(), gone_.begin(), gone_.end());
  return all;
}

// The fits change only with a resource_sample line (or the configuration):
// the live metrics judge the verdict at every scrape, and refitting every
// process's series (Theil-Sen, thousands of pairs each) each time would cost
// tens of ms at 200 sessions. The cache keeps the figures, not the series.
void LeakModel::fill(VerdictInputs& in) const {
  if (fitsCacheVersion_ != fitsVersion_) {
    fitsCache_ = processes();
    for (auto& p : fitsCache_) {
      p.series.clear();
      p.series.shrink_to_fit();
    }
    fitsCacheVersion_ = fitsVersion_;
  }
  fillFrom(fitsCache_, in);
}

void LeakModel::fillFrom(const std::vector<ProcessLeak>& all, VerdictInputs& in) const {
  in.samplesTaken = samplesTaken_;
  in.samplesMissed = samplesMissed_;
  if (unsampledMs_ > 0) {
    in.longestUnsampledMs = unsampledMs_;
    in.unsampledFrom = unsampledFrom_;
  }
  in.closeWaitSockets = closeWait_ ? std::optional<uint32_t>(static_cast<uint32_t>(std::max<int64_t>(0, *closeWait_)))
                                   : std::nullopt;
  const ProcessLeak* worstRss = nullptr;
  std::string fdWho;
  std::optional<int64_t> fd;
  std::string na;
  std::optional<double> worstSlope;
  for (const auto& p : all) {
    if (!p.rss) {
      // The reason from a process that was there to the end (a gone one
      // never fitted is only counted).
      if (na.empty() || (!p.gone && p.role != "sshd")) na = p.who() + ": " + p.na;
      continue;
    }
    auto judged = judgedSlope(p);
    if (worstRss == nullptr || *judged > *worstSlope) {
      worstRss = &p;
      worstSlope = judged;
    }
    if (p.fdGrowth && (!fd || *p.fdGrowth > *fd)) {
      fd = p.fdGrowth;
      fdWho = p.who() + ", after warm-up";
    }
  }
  for (const auto& [session, w] : reconnectFdWorst_) {
    if (!fd || w.first > *fd) {
      fd = w.first;
      fdWho = w.second + ", after a reconnect beyond its first connect";
    }
  }
  in.fdGrowth = fd;
  in.fdGrowthWho = fdWho;
  if (worstRss != nullptr) {
    in.memorySlopeMbPerH = round2(*worstSlope);
    in.memorySlopeWho = worstRss->who() + (worstRss->anon ? "; its RSS slope " + figureText(round2(worstRss->rss->slope)) + " MB/h" : "") +
                        "; its PSS slope " + figureText(round2(worstRss->pss->slope)) + " MB/h";
    if (*worstSlope == 0.0 && judgedFit(*worstRss)->slope != 0.0) {
      in.memorySlopeWho += "; every fitted rise was under " + figureText(NOISE_FLOOR_MB) +
                           " MB over its span (noise, judged flat)";
    }
    in.leakNa.clear();
  } else {
    in.leakNa = samplesTaken_ == 0 ? "no resource samples in the run" : "too short to fit: " + na;
  }
}

Json LeakModel::json() const {
  auto all = processes();
  // Live processes first, then the steepest; stable, so equal ranks keep
  // the live order (supervisor, agents by pid, sshd).
  std::stable_sort(all.begin(), all.end(), [](const ProcessLeak& a, const ProcessLeak& b) {
    if (a.gone != b.gone) return !a.gone;
    return rankOf(a) > rankOf(b);
  });
  Json j;
  j["warmup_secs"] = warmupSecs_;
  j["min_fit_secs"] = minFitSecs_;
  j["samples_taken"] = samplesTaken_;
  j["samples_missed"] = samplesMissed_;
  j["processes_total"] = all.size() + goneDropped_ + goneUnfitted_;
  j["processes_gone_unfitted"] = goneUnfitted_;
  Json procs = Json::array();
  std::map<std::string, std::vector<double>> slopesByRole;
  for (const auto& p : all) {
    if (judgedFit(p)) slopesByRole[p.role].push_back(judgedFit(p)->slope);
    if (procs.size() >= SERIES_KEPT) continue;
    Json e;
    e["role"] = p.role;
    e["pid"] = p.pid;
    e["session"] = p.session ? Json(*p.session) : Json(nullptr);
    e["samples"] = p.samples;
    e["span_secs"] = std::round(p.lastSecs - p.firstSecs);
    e["anon_slope_mb_per_h"] = p.anon ? Json(round2(p.anon->slope)) : Json(nullptr);
    e["rss_slope_mb_per_h"] = p.rss ? Json(round2(p.rss->slope)) : Json(nullptr);
    e["rss_intercept_mb"] = p.rss ? Json(round2(p.rss->intercept)) : Json(nullptr);
    e["pss_slope_mb_per_h"] = p.pss ? Json(round2(p.pss->slope)) : Json(nullptr);
    e["pss_intercept_mb"] = p.pss ? Json(round2(p.pss->intercept)) : Json(nullptr);
    e["fd_growth"] = p.fdGrowth ? Json(*p.fdGrowth) : Json(nullptr);
    e["thread_growth"] = p.threadGrowth ? Json(*p.threadGrowth) : Json(nullptr);
    e["gone"] = p.gone;
    if (!p.na.empty()) e["na"] = p.na;
    procs.push_back(std::move(e));
  }
  j["processes"] = procs;
  Json dist = Json::object();
  for (auto& [role, v] : slopesByRole) {
    std::sort(v.begin(), v.end());
    dist[role] = {{"fitted", v.size()},
                  {"min", round2(v.front())},
                  {"median", round2(v[v.size() / 2])},
                  {"max", round2(v.back())}};
  }
  j["rss_slope_by_role"] = dist;
  VerdictInputs in;
  fillFrom(all, in);
  j["worst_rss_slope"] = in.memorySlopeMbPerH
                             ? Json{{"mb_per_h", *in.memorySlopeMbPerH}, {"who", in.memorySlopeWho}}
                             : Json(nullptr);
  j["worst_fd_growth"] = in.fdGrowth ? Json{{"fds", *in.fdGrowth}, {"who", in.fdGrowthWho}} : Json(nullptr);
  j["close_wait_sockets"] = in.closeWaitSockets ? Json(*in.closeWaitSockets) : Json(nullptr);
  j["na"] = in.leakNa.empty() ? Json(nullptr) : Json(in.leakNa);
  return j;
}

}  // namespace sshsoak
