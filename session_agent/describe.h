// `sshsoak-agent --describe-workloads --pty-pause-ms N`: the remote
// commands the agent runs (the first-exec probe, the exec-poll commands, the
// PTY loop per intensity) as one JSON object, built from the functions the
// agent itself calls. The benchmark's OpenSSH reference (bench/driver) reads
// them from here, so it runs exactly what the agent runs, with no copy to
// drift.
#pragma once

#include <cstdint>
#include <string>

#include "shared/result.h"

namespace sshsoak::agent {

// {"probe": "...", "exec_poll": {"commands": [...]},
//  "pty": {"pause_ms": N, "commands": {"low": "...", "medium": "...", "high": "..."}}}
std::string describeWorkloadsJson(uint32_t ptyPauseMs);

// The arguments after --describe-workloads; the JSON, or a usage error that
// names the wrong argument.
Result<std::string, std::string> describeWorkloads(int argc, const char* const* argv);

}  // namespace sshsoak::agent
