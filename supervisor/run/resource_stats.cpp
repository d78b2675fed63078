#include "supervisor/run/resource_stats.h"

#include <cmath>

namespace sshsoak {

namespace {

double round1(double v) { return std::round(v * 10.0) / 10.0; }
constexpr double MS_PER_HOUR = 3600.0 * 1000.0;

}  // namespace

std::optional<double> leastSquaresSlope(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return std::nullopt;
  double n = static_cast<double>(points.size()), mx = 0, my = 0;
  for (const auto& [x, y] : points) {
    mx += x;
    my += y;
  }
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0;
  for (const auto& [x, y] : points) {
    sxx += (x - mx) * (x - mx);
    sxy += (x - mx) * (y - my);
  }
  if (sxx <= 0) return std::nullopt;
  return sxy / sxx;
}

void Figures::add(double runMs, int64_t warmupMs, bool steady, double cpuPct, uint64_t rssKb, uint64_t pssKb,
                  uint32_t fds, uint32_t threads) {
  ++samples;
  cpuSum += cpuPct;
  if (steady) {
    ++steadySamples;
    steadyCpuSum += cpuPct;
  }
  cpuPeak = std::max(cpuPeak, cpuPct);
  rssPeakKb = std::max(rssPeakKb, rssKb);
  pssPeakKb = std::max(pssPeakKb, pssKb);
  fdsEnd = fds;
  threadsEnd = threads;
  if (runMs >= static_cast<double>(warmupMs)) {
    if (!fdsAfterWarmup) fdsAfterWarmup = fds;
    rssAfterWarmup.emplace_back(runMs / MS_PER_HOUR, static_cast<double>(rssKb));
  }
}

std::optional<double> Figures::cpuMean() const {
  if (samples == 0) return std::nullopt;
  return cpuSum / samples;
}

std::optional<double> Figures::steadyCpuMean() const {
  if (steadySamples == 0) return std::nullopt;
  return steadyCpuSum / steadySamples;
}

Json Figures::toJson() const {
  Json j;
  auto mean = cpuMean();
  auto steady = steadyCpuMean();
  auto slope = leastSquaresSlope(rssAfterWarmup);
  j["samples"] = samples;
  j["cpu_mean_pct"] = mean ? Json(round1(*mean)) : Json(nullptr);
  j["cpu_mean_after_warmup_pct"] = steady ? Json(round1(*steady)) : Json(nullptr);
  j["cpu_peak_pct"] = round1(cpuPeak);
  j["rss_peak_kb"] = rssPeakKb;
  j["pss_peak_kb"] = pssPeakKb;
  j["fds_after_warmup"] = fdsAfterWarmup ? Json(*fdsAfterWarmup) : Json(nullptr);
  j["fds_end"] = fdsEnd;
  j["threads_end"] = threadsEnd;
  j["rss_growth_kb_per_hour"] = slope ? Json(round1(*slope)) : Json(nullptr);
  return j;
}

ResourceStats::ResourceStats(int64_t startMonoMs, int64_t warmupMs, long ticksPerSec)
    : startMonoMs_(startMonoMs), warmupMs_(warmupMs), ticksPerSec_(ticksPerSec > 0 ? ticksPerSec : 100) {}

// CPU over the interval since this PID's last reading; for a PID seen for
// the first time, over its life so far (starttime is on the boot clock).
double ResourceStats::cpuPct(PerProc* known, const ProcReading& r) const {
  double ticks, ms;
  if (known != nullptr && r.stat.cpuTicks >= known->lastTicks) {
    ticks = static_cast<double>(r.stat.cpuTicks - known->lastTicks);
    ms = static_cast<double>(r.bootMs - known->lastBootMs);
  } else {
    ticks = static_cast<double>(r.stat.cpuTicks);
    ms = static_cast<double>(r.bootMs) - static_cast<double>(r.stat.startTicks) * 1000.0 / ticksPerSec_;
  }
  if (ms <= 0) return 0.0;
  return 100.0 * (ticks * 1000.0 / ticksPerSec_) / ms;
}

Json ResourceStats::addTick(int64_t monoMs, const std::vector<TaggedReading>& readings) {
  double runMs = static_cast<double>(monoMs - startMonoMs_);
  bool steady = lastTickRunMs_ && *lastTickRunMs_ >= static_cast<double>(warmupMs_);
  lastTickRunMs_ = runMs;
  double cpuSum = 0;
  uint64_t rssSum = 0, pssSum = 0;
  uint32_t fdsSum = 0, threadsSum = 0;
  Json procs = Json::array();
  for (const auto& t : readings) {
    const ProcReading& r = t.reading;
    auto it = procs_.find(r.pid);
    double cpu = cpuPct(it == procs_.end() ? nullptr : &it->second, r);
    if (it == procs_.end()) it = procs_.emplace(r.pid, PerProc{}).first;
    PerProc& p = it->second;
    p.sessionId = t.sessionId;
    p.lastTicks = r.stat.cpuTicks;
    p.lastBootMs = r.bootMs;
    // A PID first seen in a steady tick started after warm-up (a restart):
    // its life so far is steady state too.
    p.figures.add(runMs, warmupMs_, steady, cpu, r.rssKb, r.pssKb, r.fds, r.stat.threads);
    cpuSum += cpu;
    rssSum += r.rssKb;
    pssSum += r.pssKb;
    fdsSum += r.fds;
    threadsSum += r.stat.threads;
    procs.push_back(Json::array({r.pid, t.sessionId ? Json(*t.sessionId) : Json(nullptr), round1(cpu), r.rssKb,
                                 r.pssKb, r.fds, r.stat.threads,
                                 r.stat.cpuTicks * 1000 / static_cast<uint64_t>(ticksPerSec_)}));
  }
  total_.add(runMs, warmupMs_, steady, cpuSum, rssSum, pssSum, fdsSum, threadsSum);
  Json j;
  j["total"] = {{"cpu_pct", round1(cpuSum)}, {"rss_kb", rssSum}, {"pss_kb", pssSum}, {"fds", fdsSum},
                {"threads", threadsSum}};
  j["procs"] = std::move(procs);
  return j;
}

std::optional<uint64_t> ResourceStats::peakTotalPssKb() const {
  if (total_.samples == 0) return std::nullopt;
  return total_.pssPeakKb;
}

std::optional<uint64_t> ResourceStats::peakTotalRssKb() const {
  if (total_.samples == 0) return std::nullopt;
  return total_.rssPeakKb;
}

Json ResourceStats::summary() const {
  Json j;
  j["ticks"] = total_.samples;
  j["warmup_secs"] = round1(static_cast<double>(warmupMs_) / 1000.0);
  j["total"] = total_.toJson();
  Json agents = Json::array();
  for (const auto& [pid, p] : procs_) {
    Json f = p.figures.toJson();
    if (!p.sessionId) {
      j["supervisor"] = f;
      j["supervisor"]["pid"] = pid;
      continue;
    }
    Json a;
    a["pid"] = pid;
    a["session_id"] = *p.sessionId;
    a.update(f);
    agents.push_back(std::move(a));
  }
  j["agents"] = std::move(agents);
  return j;
}

}  // namespace sshsoak
