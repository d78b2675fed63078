// `sshsoak percentiles Q [Q...] < VALUES` (not in --help: a tool for
// bench/driver): sshsoak::percentile, the one definition the summary and
// the report use, applied to integers read one per line from stdin, so the
// benchmark's figures are computed exactly as sshsoak's own. Prints one JSON
// object, {"n": N, "p50": V, "p95": V}, with null for every percentile when
// there are no values.
#pragma once

#include <string>
#include <vector>

#include "supervisor/log_line.h"

namespace sshsoak::percentiles_cmd {

// The key of quantile q: "p50" for 0.5, "p99.9" for 0.999, "p100" for 1.
std::string key(double q);

Json toJson(const std::vector<int64_t>& values, const std::vector<double>& quantiles);

// argv[0] is "percentiles"; returns the exit code.
int main(int argc, const char* const* argv);

}  // namespace sshsoak::percentiles_cmd
