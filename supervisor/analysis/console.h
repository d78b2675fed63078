// The end-of-run summary on the console: the summary line (the run model's
// figures, resources and the verdict) for people.
#pragma once

#include <cstdio>
#include <string>

#include "supervisor/log_line.h"

namespace sshsoak {

void printSummary(std::FILE* out, Json summary, const std::string& logPath);

}  // namespace sshsoak
