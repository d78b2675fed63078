// A self-contained HTML report of one or more runs: inline SVG, no scripts,
// no network fetches. Per run: a timeline per session (states and fault
// markers), harness memory and CPU over time with the thresholds, a
// histogram of reconnect times with p50/p95, and the verdict table.
#pragma once

#include <string>
#include <vector>

#include "supervisor/analysis/report.h"

namespace sshsoak::report {

std::string renderHtml(const std::vector<Run>& runs);

}  // namespace sshsoak::report
