// A self-contained HTML report of one or more runs: inline SVG, no scripts,
// no network fetches. Per run: a timeline per session (states and fault
// markers), harness memory and CPU over time with the thresholds, a
// histogram of reconnect times with p50/p95, and the verdict table.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "supervisor/analysis/report.h"

namespace sshsoak::report {

std::string renderHtml(const std::vector<Run>& runs);
// The live run's report now (at a checkpoint, or at the end), from the
// accumulator it owns (Supervisor::accumulator()), without reading the log:
//   report::writeFileAtomically(path, report::renderRunHtml(logPath, supervisor.accumulator()), &error)
// Without a summary yet, the figures are the last checkpoint line's.
std::string renderRunHtml(const std::string& source, std::shared_ptr<const RunAccumulator> run);

}  // namespace sshsoak::report
