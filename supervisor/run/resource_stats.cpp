#include "supervisor/run/resource_stats.h"

#include <algorithm>
#include <cmath>

#include "supervisor/log_line.h"
#include "shared/clock.h"

namespace sshsoak {

namespace {

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

void OnlineSlope::add(double x, double y) {
  ++n;
  double dx = x - meanX;
  meanX += dx / static_cast<double>(n);
  meanY += (y - meanY) / static_cast<double>(n);
  m2x += dx * (x - meanX);
  cxy += dx * (y - meanY);
}

std::optional<double> OnlineSlope::slope() const {
  // Relative to the x spread: rounding leaves a tiny m2x when every x is equal.
  if (n < 2 || !(m2x > 1e-12 * (1.0 + meanX * meanX) * static_cast<double>(n))) return std::nullopt;
  return cxy / m2x;
}

void Figures::add(double runMs, int64_t warmupMs, bool steady, std::optional<double> cpuPct, uint64_t rssKb,
                  uint32_t threads) {
  ++samples;
  if (cpuPct) {
    ++cpuSamples;
    cpuSum += *cpuPct;
    if (steady) {
      ++steadySamples;
      steadyCpuSum += *cpuPct;
    }
    cpuPeak = std::max(cpuPeak, *cpuPct);
  }
  rssPeakKb = std::max(rssPeakKb, rssKb);
  threadsEnd = threads;
  if (runMs >= static_cast<double>(warmupMs)) rssGrowth.add(runMs / MS_PER_HOUR, static_cast<double>(rssKb));
}

void Figures::addDetail(double runMs, int64_t warmupMs, uint64_t pssKb, uint32_t fds) {
  pssPeakKb = std::max(pssPeakKb, pssKb);
  fdsEnd = fds;
  if (runMs >= static_cast<double>(warmupMs) && !fdsAfterWarmup) fdsAfterWarmup = fds;
}

std::optional<double> Figures::cpuMean() const {
  if (cpuSamples == 0) return std::nullopt;
  return cpuSum / cpuSamples;
}

std::optional<double> Figures::steadyCpuMean() const {
  if (steadySamples == 0) return std::nullopt;
  return steadyCpuSum / steadySamples;
}

Json Figures::toJson() const {
  Json j;
  auto mean = cpuMean();
  auto steady = steadyCpuMean();
  auto slope = rssGrowth.slope();
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

ResourceStats::ResourceStats(int64_t startMonoMs, int64_t warmupMs, long ticksPerSec, size_t maxDeadAgents)
    : startMonoMs_(startMonoMs),
      warmupMs_(warmupMs),
      ticksPerSec_(ticksPerSec > 0 ? ticksPerSec : 100),
      maxDeadAgents_(maxDeadAgents) {}

// CPU since `last`; for a process seen for the first time, over its life
// so far (starttime is on the boot clock).
double ResourceStats::cpuPct(const Last* last, const ProcFigures& r) const {
  double ticks, ms;
  if (last != nullptr && r.cpuTicks >= last->ticks) {
    ticks = static_cast<double>(r.cpuTicks - last->ticks);
    ms = static_cast<double>(r.bootMs - last->bootMs);
  } else {
    ticks = static_cast<double>(r.cpuTicks);
    ms = static_cast<double>(r.bootMs) - static_cast<double>(r.startTicks) * 1000.0 / ticksPerSec_;
  }
  if (ms <= 0) return 0.0;
  return 100.0 * (ticks * 1000.0 / ticksPerSec_) / ms;
}

// Exited agents' entries beyond the cap go, oldest first: a run that
// restarts agents for days keeps a bounded table.
void ResourceStats::retireDead(size_t live) {
  if (procs_.size() <= live + maxDeadAgents_) return;
  std::vector<std::pair<uint64_t, pid_t>> dead;
  for (const auto& [pid, p] : procs_) {
    if (p.lastSeen != passes_ && p.sessionId) dead.emplace_back(p.lastSeen, pid);
  }
  if (dead.size() <= maxDeadAgents_) return;
  std::sort(dead.begin(), dead.end());
  for (size_t i = 0; i + maxDeadAgents_ < dead.size(); ++i) {
    procs_.erase(dead[i].second);
    ++retired_;
  }
}

std::optional<Json> ResourceStats::addPass(const SamplePass& pass) {
  ++passes_;
  taken_ = pass.taken;
  missed_ = pass.missed;
  samplerCpuMs_ = pass.cpuMsTotal;
  double runMs = static_cast<double>(pass.monoMs - startMonoMs_);
  // From the run's start: a supervisor stopped before its first pass left
  // a hole too.
  int64_t previousMono = lastPassMono_.value_or(startMonoMs_);
  if (pass.monoMs - previousMono > gapMs_) {
    gapMs_ = pass.monoMs - previousMono;
    gapFromWallNs_ = wallNs() - (monoMs() - previousMono) * 1'000'000;
  }
  lastPassMono_ = pass.monoMs;
  bool steady = lastPassRunMs_ && *lastPassRunMs_ >= static_cast<double>(warmupMs_);
  lastPassRunMs_ = runMs;
  double cpuSum = 0, lineCpuSum = 0;
  uint64_t rssSum = 0, pssSum = 0;
  uint32_t fdsSum = 0, threadsSum = 0;
  size_t live = 0;
  Json procs = pass.detail ? Json::array() : Json();
  Json server;
  double serverCpu = 0;
  uint64_t serverRss = 0, serverPss = 0;
  uint32_t serverFds = 0, serverProcs = 0;
  if (pass.detail) sshdNext_.clear();
  // The newest pass by role: counts, CPU and RSS every pass (the sshd's on
  // detail passes), PSS and fds kept from the last detail pass.
  std::array<RoleFigures, 3> byRole{};
  for (size_t i = 0; i < byRole.size() && !pass.detail; ++i) {
    byRole[i].pssKb = byRole_[i].pssKb;
    byRole[i].fds = byRole_[i].fds;
  }
  for (const auto& r : pass.procs) {
    std::optional<uint32_t> session;
    if (r.role == ProcRole::AGENT) session = static_cast<uint32_t>(r.sessionId);
    double lineCpu = 0, passCpu = 0;
    if (r.role == ProcRole::SSHD) {
      // The sshd's processes: per line only (they are many and come and go).
      auto prev = sshdPrev_.find(r.pid);
      lineCpu = cpuPct(prev == sshdPrev_.end() ? nullptr : &prev->second, r);
      sshdNext_[r.pid] = Last{r.cpuTicks, r.bootMs};
      ++serverProcs;
      serverCpu += lineCpu;
      serverRss += r.rssKb;
      serverPss += r.pssKb;
      serverFds += r.fds;
    } else {
      ++live;
      auto it = procs_.find(r.pid);
      double cpu = cpuPct(it == procs_.end() ? nullptr : &it->second.pass, r);
      passCpu = cpu;
      if (it == procs_.end()) it = procs_.emplace(r.pid, PerProc{}).first;
      PerProc& p = it->second;
      if (pass.detail) {
        lineCpu = cpuPct(p.inLine ? &p.line : nullptr, r);
        p.line = Last{r.cpuTicks, r.bootMs};
        p.inLine = true;
      }
      p.sessionId = session;
      p.pass = Last{r.cpuTicks, r.bootMs};
      p.lastSeen = passes_;
      // A PID first seen in a steady pass started after warm-up (a
      // restart): its life so far is steady state too.
      p.figures.add(runMs, warmupMs_, steady, pass.last ? std::nullopt : std::optional(cpu), r.rssKb, r.threads);
      if (pass.detail) p.figures.addDetail(runMs, warmupMs_, r.pssKb, r.fds);
      cpuSum += cpu;
      lineCpuSum += lineCpu;
      rssSum += r.rssKb;
      pssSum += r.pssKb;
      fdsSum += r.fds;
      threadsSum += r.threads;
    }
    RoleFigures& role = byRole[static_cast<size_t>(r.role)];
    ++role.processes;
    role.rssKb += r.rssKb;
    role.threads += r.threads;
    if (pass.detail) {
      role.pssKb += r.pssKb;
      role.fds += r.fds;
    }
    role.cpuPct += r.role == ProcRole::SSHD ? lineCpu : passCpu;
    if (pass.detail) {
      procs.push_back(Json::array({r.pid, session ? Json(*session) : Json(nullptr), round1(lineCpu), r.rssKb, r.pssKb,
                                   r.fds, r.threads, r.cpuTicks * 1000 / static_cast<uint64_t>(ticksPerSec_),
                                   roleName(r.role), r.tcpEstablished, r.tcpCloseWait, r.anonKb}));
    }
  }
  for (size_t i = 0; i < byRole.size(); ++i) {
    // The sshd's processes are read by detail passes only; the run's last
    // pass has no CPU interval worth showing (see Figures::add).
    if (static_cast<ProcRole>(i) == ProcRole::SSHD && !(pass.detail && pass.serverKnown)) continue;
    if (pass.last) byRole[i].cpuPct = byRole_[i].cpuPct;
    byRole[i].seen = true;
    byRole_[i] = byRole[i];
  }
  total_.add(runMs, warmupMs_, steady, pass.last ? std::nullopt : std::optional(cpuSum), rssSum, threadsSum);
  if (!pass.last) lastCpuPct_ = cpuSum;
  lastRssKb_ = rssSum;
  retireDead(live);
  if (!pass.detail) return std::nullopt;
  total_.addDetail(runMs, warmupMs_, pssSum, fdsSum);
  lastPssKb_ = pssSum;
  std::swap(sshdPrev_, sshdNext_);
  Json j;
  j["total"] = {{"cpu_pct", round1(lineCpuSum)}, {"rss_kb", rssSum}, {"pss_kb", pssSum}, {"fds", fdsSum},
                {"threads", threadsSum}};
  j["procs"] = std::move(procs);
  if (pass.serverKnown) {
    j["server"] = {{"processes", serverProcs}, {"cpu_pct", round1(serverCpu)}, {"rss_kb", serverRss},
                   {"pss_kb", serverPss}, {"fds", serverFds}};
  }
  j["tcp"] = {{"established", pass.tcp.established}, {"close_wait", pass.tcp.closeWait},
              {"time_wait", pass.tcp.timeWait}};
  j["missed"] = pass.missedSinceDetail;
  if (gapMs_ > 0) {
    j["unsampled_ms"] = gapMs_;
    j["unsampled_from"] = isoTimestamp(gapFromWallNs_);
  }
  gapMs_ = 0;
  j["pass_ms"] = round1(pass.passMs);
  j["pass_cpu_ms"] = round1(pass.passCpuMs);
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
  j["samples_taken"] = taken_;
  j["samples_missed"] = missed_;
  j["sampler_cpu_ms"] = std::llround(samplerCpuMs_);
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
  j["agents_retired"] = retired_;
  return j;
}

}  // namespace sshsoak
