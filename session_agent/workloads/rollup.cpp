#include "session_agent/workloads/rollup.h"

#include <algorithm>
#include <string>

namespace sshsoak::agent {

void fillHistogram(wire::Histogram::Builder out, const char* name, const LatencyHistogram& h) {
  size_t nonZero = 0;
  h.forEachNonZero([&](size_t, uint64_t) { ++nonZero; });
  out.setName(name);
  auto indices = out.initIndices(static_cast<unsigned>(nonZero));
  auto counts = out.initCounts(static_cast<unsigned>(nonZero));
  unsigned k = 0;
  h.forEachNonZero([&](size_t i, uint64_t count) {
    indices.set(k, static_cast<uint32_t>(i));
    counts.set(k, count);
    ++k;
  });
}

uint32_t RollupPeriod::elapsedMs(int64_t nowMs) const {
  return static_cast<uint32_t>(std::clamp<int64_t>(nowMs - startMs_, 0, UINT32_MAX));
}

void PtyRollup::add(const PtyCycleResult& cycle, uint32_t expectedLines) {
  ++cycles_;
  if (cycle.lines < expectedLines) ++shortCycles_;
  bytes_ += cycle.bytes;
  lines_ += cycle.lines;
  lastCycle_ = cycle.cycle;
  cycleUs_.record(cycle.us);
  for (uint32_t us : cycle.echoUs) echoUs_.record(us);
}

void PtyRollup::reportAndReset(wire::Event::Builder event, uint32_t intervalMs) {
  auto p = event.initPtyStats();
  p.setIntervalMs(intervalMs);
  p.setCycles(cycles_);
  p.setShortCycles(shortCycles_);
  p.setBytes(bytes_);
  p.setLines(lines_);
  p.setLastCycle(lastCycle_);
  auto list = p.initHistograms(2);
  fillHistogram(list[0], "cycle", cycleUs_);
  fillHistogram(list[1], "echo", echoUs_);
  event.setSuccess(shortCycles_ == 0);
  cycles_ = shortCycles_ = lastCycle_ = 0;
  bytes_ = lines_ = 0;
  cycleUs_.reset();  // in place: a rollup allocates nothing per interval
  echoUs_.reset();
}

void ExecPollRollup::add(uint64_t rttUs, uint64_t bytes, double cpuBusyPct, double memUsedPct, double diskUsedPct) {
  ++polls_;
  bytes_ += bytes;
  rttUs_.record(rttUs);
  cpuBusyPctMax_ = std::max(cpuBusyPctMax_, static_cast<float>(cpuBusyPct));
  memUsedPctLast_ = static_cast<float>(memUsedPct);
  diskUsedPctLast_ = static_cast<float>(diskUsedPct);
}

void ExecPollRollup::reportAndReset(wire::Event::Builder event, uint32_t intervalMs) {
  auto p = event.initExecPollStats();
  p.setIntervalMs(intervalMs);
  p.setPolls(polls_);
  p.setBytes(bytes_);
  fillHistogram(p.initHistograms(1)[0], "rtt", rttUs_);
  p.setCpuBusyPctMax(cpuBusyPctMax_);
  p.setMemUsedPctLast(memUsedPctLast_);
  p.setDiskUsedPctLast(diskUsedPctLast_);
  event.setSuccess(true);
  polls_ = 0;
  bytes_ = 0;
  rttUs_.reset();
  cpuBusyPctMax_ = memUsedPctLast_ = diskUsedPctLast_ = 0;
}

}  // namespace sshsoak::agent
