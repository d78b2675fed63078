#include "supervisor/analysis/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "shared/clock.h"
#include "supervisor/analysis/stats.h"
#include "supervisor/log_line.h"

namespace sshsoak {

namespace {

Verdict judge(std::optional<double> measured, double threshold, const std::string& cmp) {
  if (!measured) return Verdict::NA;
  bool ok = cmp == "<="   ? *measured <= threshold
            : cmp == ">=" ? *measured >= threshold
            : cmp == "==" ? *measured == threshold
                          : *measured < threshold;
  return ok ? Verdict::PASS : Verdict::FAIL;
}

// The --min-conn-rate that judges a run: the flag's when given; otherwise
// the default (100/s), lowered to 95 % of a constant target below it, so that
// a run asking for 20/s is judged on reaching 20/s, not failed by construction.
double minConnRateOf(const cli::Options& o) {
  // A target (or a ramp's top) below the flag's default would fail by
  // construction: the run is judged against 95 % of what it asked for.
  const auto& r = o.churnRate;
  double top = std::max(r.startPerSec, r.endPerSec);
  if (o.minConnRateGiven || top <= 0) return o.minConnRatePerSec;
  return std::min(o.minConnRatePerSec, std::round(top * 0.95 * 10.0) / 10.0);
}

}  // namespace

Thresholds thresholdsOf(const cli::Options& o) {
  Thresholds t{.maxAbnormalEnds = o.maxAbnormalEnds,
                    .minReconnectRatePct = o.minReconnectRatePct,
                    .maxReconnectP95Ms = o.maxReconnectP95Ms,
                    .maxMemoryMb = o.maxMemoryMb,
                    .maxCpuPct = o.maxCpuPct,
                    .judgeCpu = o.workload == cli::WorkloadKind::PTY || o.maxCpuPctGiven,
                    .minConnRatePerSec = minConnRateOf(o),
                    .maxConnFailures = o.maxConnFailures,
                    .maxConnectP99Ms = o.maxConnectP99Ms,
                    .minThroughputMbPerSec = o.minThroughputMbPerSec,
                    .maxJobFailures = o.maxJobFailures,
                    .maxJobP95Ms = o.maxJobP95Ms,
                    .maxMemorySlopeMbPerH = o.maxMemorySlopeMbPerH,
                    .maxFdGrowth = o.maxFdGrowth,
                    .maxCloseWaitSockets = o.maxCloseWaitSockets,
                    .maxUnsampledSecs = std::max(3.0 * o.sampleIntervalSecs, 5.0)};
  // Totals grow with the run's size: 200 MB and 5 % up to 10 sessions, and
  // as much again per 10 sessions above, unless the flag was given.
  size_t n = o.slots.empty() ? o.sessions : o.slots.size();
  if (n > 10) {
    double scale = static_cast<double>(n) / 10.0;
    if (!o.maxMemoryMbGiven) {
      t.maxMemoryMb = o.maxMemoryMb * scale;
      t.memoryScaled = true;
    }
    if (!o.maxCpuPctGiven) {
      t.maxCpuPct = o.maxCpuPct * scale;
      t.cpuScaled = true;
    }
    t.scaledForSessions = static_cast<uint32_t>(n);
  }
  return t;
}

Thresholds thresholdsOfVerdict(const Json& verdict) {
  Thresholds t = thresholdsOf(cli::Options{});
  if (!verdict.is_array()) return t;
  for (const auto& c : verdict) {
    if (!c.is_object() || !c.contains("threshold") || !c["threshold"].is_number() || !c.contains("criterion") ||
        !c["criterion"].is_string()) {
      continue;
    }
    double v = c["threshold"].get<double>();
    auto whole = [&] { return static_cast<uint32_t>(std::max(0.0, v)); };
    std::string name = c["criterion"].get<std::string>();
    if (name == "abnormal_ends") t.maxAbnormalEnds = whole();
    else if (name == "reconnect_rate_pct") t.minReconnectRatePct = v;
    else if (name == "reconnect_p95_ms") t.maxReconnectP95Ms = whole();
    else if (name == "memory_mb") t.maxMemoryMb = v;
    else if (name == "cpu_pct") t.maxCpuPct = v;
    else if (name == "conn_rate_per_sec") t.minConnRatePerSec = v;
    else if (name == "conn_failures") t.maxConnFailures = whole();
    else if (name == "connect_p99_ms") t.maxConnectP99Ms = whole();
    else if (name == "throughput_mbps") t.minThroughputMbPerSec = v;
    else if (name == "job_failures") t.maxJobFailures = whole();
    else if (name == "job_p95_ms") t.maxJobP95Ms = whole();
    else if (name == "memory_slope_mb_per_h") t.maxMemorySlopeMbPerH = v;
    else if (name == "fd_growth") t.maxFdGrowth = whole();
    else if (name == "close_wait_sockets") t.maxCloseWaitSockets = whole();
    else if (name == "unsampled_secs") t.maxUnsampledSecs = v;
  }
  return t;
}

std::vector<Criterion> evaluate(const VerdictInputs& in, const Thresholds& t) {
  std::vector<Criterion> out;
  auto add = [&](std::string name, std::string label, std::optional<double> measured, double threshold,
                 std::string cmp, std::string unit, std::string note) {
    Criterion c{std::move(name), std::move(label), measured, threshold, cmp, std::move(unit), Verdict::NA,
                std::move(note)};
    c.result = judge(measured, threshold, cmp);
    out.push_back(std::move(c));
  };
  add("abnormal_ends", "abnormal session ends", double(in.abnormalEnds), t.maxAbnormalEnds, "<=", "",
      "agent crashes, sessions never connected or lost without recovery");
  std::optional<double> rate = ratePct(in.reconnects, in.interrupts);
  add("reconnect_rate_pct", "reconnect success rate", rate, t.minReconnectRatePct, ">=", "%",
      in.interrupts == 0 ? "no interrupts to recover from"
                         : std::to_string(in.reconnects) + " of " + std::to_string(in.interrupts) + " interrupts");
  std::optional<double> p95;
  if (in.reconnectP95Ms) p95 = double(*in.reconnectP95Ms);
  add("reconnect_p95_ms", "reconnect time p95", p95, t.maxReconnectP95Ms, "<=", "ms",
      p95 ? "detection to first exec on the new session" : "no reconnects timed");
  std::optional<double> memMb;
  if (in.peakTotalPssKb) memMb = round1(double(*in.peakTotalPssKb) / 1024.0);
  std::string memNote = "peak PSS of supervisor + agents (shared pages counted once)";
  if (in.peakTotalRssKb) memNote += "; peak RSS " + figureText(round1(double(*in.peakTotalRssKb) / 1024.0)) + " MB";
  if (!memMb) memNote = "no resource samples (run shorter than --sample-interval-secs)";
  std::string scaled = "; threshold scaled to " + std::to_string(t.scaledForSessions) + " sessions (x N / 10; give the flag to fix it)";
  if (t.memoryScaled) memNote += scaled;
  add("memory_mb", "harness memory (PSS)", memMb, t.maxMemoryMb, "<", "MB", memNote);
  std::optional<double> cpu;
  if (in.meanTotalCpuPct) cpu = round1(*in.meanTotalCpuPct);
  add("cpu_pct", "harness CPU (mean)", cpu, t.maxCpuPct, "<", "% of one core",
      cpu ? "mean of supervisor + agents after the " + figureText(in.warmupSecs) + " s warm-up"
          : "no sample interval after the warm-up (run too short for a steady-state figure)");
  if (!t.judgeCpu) {
    // The load workloads' CPU is the load itself, not a harness cost.
    out.back().result = Verdict::NA;
    out.back().note = "not judged on a " + std::string(cli::workloadName(in.workload)) +
                      " run: its CPU is the load (--max-cpu-pct judges it)";
  } else if (t.cpuScaled) {
    out.back().note += scaled;
  }
  std::string missed = in.samplesMissed == 0 ? ""
                       : "; the sampler missed " + std::to_string(in.samplesMissed) + " of " +
                             std::to_string(in.samplesTaken + in.samplesMissed) +
                             " samples (a loaded machine): the figures have gaps";
  if (!missed.empty()) out.back().note += missed;
  // Leaks (leak_model.h): judged on anonymous memory (heap, anonymous
  // maps): RSS also grows by code pages first touched, and a process's PSS
  // falls when another process sharing its pages exits: slopes no leak made.
  add("memory_slope_mb_per_h", "memory growth (anonymous memory slope)", in.memorySlopeMbPerH, t.maxMemorySlopeMbPerH,
      "<", "MB/h",
      in.memorySlopeMbPerH ? "worst process: " + in.memorySlopeWho +
                                 "; Theil-Sen fit after warm-up, judged on anonymous memory (RSS also counts code "
                                 "pages touched the first time; PSS moves when other processes exit)" + missed
                           : "n/a: " + in.leakNa);
  std::optional<double> fd;
  if (in.fdGrowth) fd = double(*in.fdGrowth);
  add("fd_growth", "open fds growth", fd, t.maxFdGrowth, "<=", "fds",
      fd ? "worst: " + in.fdGrowthWho + " (the floor of the last tenth of the samples over the first's)"
         : "n/a: " + (in.leakNa.empty() ? std::string("no fd figures") : in.leakNa));
  std::optional<double> cw;
  if (in.closeWaitSockets) cw = double(*in.closeWaitSockets);
  add("close_wait_sockets", "CLOSE_WAIT sockets at the end", cw, t.maxCloseWaitSockets, "<=", "",
      cw ? "the harness's sockets at the last resource sample"
         : "n/a: no socket figures in the samples (a log before resource_sample v2, or no sample)");
  // A run the supervisor could not sample for a while (it was stopped, or
  // its machine stalled) must not pass on the samples it happened to take:
  // a peak or a leak may lie in the gap.
  std::optional<double> gapSecs;
  if (in.longestUnsampledMs) gapSecs = round1(double(*in.longestUnsampledMs) / 1000.0);
  std::string gapNote = "no two resource samples";
  if (gapSecs) {
    int64_t fromNs = parseIsoTimestamp(in.unsampledFrom);
    std::string to = fromNs > 0 ? isoTimestamp(fromNs + *in.longestUnsampledMs * 1'000'000) : "";
    gapNote = *gapSecs > t.maxUnsampledSecs
                  ? "not sampled for " + figureText(*gapSecs) + " s (from " + in.unsampledFrom + " to " + to +
                        "): the supervisor was stopped or stalled; memory, CPU and leak figures have a hole"
                  : "the longest time between two resource samples";
  }
  add("unsampled_secs", "longest time not sampled", gapSecs, t.maxUnsampledSecs, "<=", "s", gapNote);
  if (in.workload == cli::WorkloadKind::CHURN) {
    // No report at all is the workload not working, not nothing to judge: 0.
    add("conn_rate_per_sec", "achieved connection rate", in.connRatePerSec.value_or(0.0), t.minConnRatePerSec, ">=",
        "conn/s",
        !in.connRatePerSec     ? "no churn report in the log"
        : in.connRateFromRamp ? "ramp: the highest step rate achieved before the breaking point"
                              : "successful connections over the churn span");
    add("conn_failures", "failed connections", double(in.connFailures), t.maxConnFailures, "<=", "",
        std::to_string(in.connFailures) + " of " + std::to_string(in.connAttempted) + " attempted");
    add("connect_p99_ms", "connection time p99", in.connectP99Ms, t.maxConnectP99Ms, "<=", "ms",
        in.connectP99Ms ? "TCP to close, from each connection's intended start" : "no connection timed");
  }
  if (in.workload == cli::WorkloadKind::TRANSFER) {
    add("throughput_mbps", "aggregate throughput", in.throughputMbPerSec.value_or(0.0), t.minThroughputMbPerSec, ">=",
        "MB/s",
        in.throughputMbPerSec ? "all sessions' bytes over the transfer span (MB = 10^6 bytes)" : "no round completed");
    add("corrupt_rounds", "corrupt rounds", double(in.corruptRounds), 0, "<=", "",
        "rounds whose SHA-256 differed between the ends");
  }
  if (in.workload == cli::WorkloadKind::JOBS) {
    add("job_failures", "failed + aborted jobs", double(in.jobsFailed + in.jobsAborted), t.maxJobFailures, "<=", "",
        std::to_string(in.jobsFailed) + " failed + " + std::to_string(in.jobsAborted) + " aborted of " +
            std::to_string(in.jobsResults) + " jobs with a result");
    // Always judged: a jobs run that cannot account for its jobs has lost them.
    if (in.jobsLost) {
      add("jobs_lost", "jobs lost", double(*in.jobsLost), 0, "==", "",
          "submitted - (done + failed + aborted + cancelled + not_started): every job has exactly one result");
    } else {
      add("jobs_lost", "jobs lost", double(in.jobsUnaccounted), 0, "==", "",
          "no final job_queue line: " + std::to_string(in.jobsUnaccounted) +
              " submitted jobs without a result cannot be accounted for");
      out.back().result = Verdict::FAIL;
    }
    add("job_p95_ms", "job latency p95", in.jobP95Ms, t.maxJobP95Ms, "<", "ms",
        in.jobP95Ms ? "queue wait + connect + run, from each job's queueing (a paced job: its intended start)"
                    : "no job timed");
  }
  return out;
}

bool allPassed(const std::vector<Criterion>& criteria) {
  for (const auto& c : criteria) {
    if (c.result == Verdict::FAIL) return false;
  }
  return true;
}

const char* resultName(Verdict r) {
  switch (r) {
    case Verdict::PASS: return "pass";
    case Verdict::FAIL: return "fail";
    case Verdict::NA: return "n/a";
  }
  return "n/a";
}

Json verdictJson(const std::vector<Criterion>& criteria) {
  Json a = Json::array();
  for (const auto& c : criteria) {
    Json j;
    j["criterion"] = c.name;
    j["measured"] = c.measured ? Json(*c.measured) : Json(nullptr);
    j["threshold"] = c.threshold;
    j["comparison"] = c.comparison;
    j["unit"] = c.unit;
    j["result"] = resultName(c.result);
    j["note"] = c.note;
    a.push_back(std::move(j));
  }
  return a;
}

}  // namespace sshsoak
