#include "session_agent/describe.h"

#include <charconv>
#include <cstring>
#include <optional>
#include <nlohmann/json.hpp>

#include "session_agent/agent.h"
#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/pty_stream.h"
#include "shared/wire_names.h"

namespace sshsoak::agent {

std::string describeWorkloadsJson(uint32_t ptyPauseMs) {
  // ordered_json: the keys in the documented order, for a human reading it.
  nlohmann::ordered_json ptyCommands = nlohmann::ordered_json::object();
  for (auto intensity : {wire::Intensity::LOW, wire::Intensity::MEDIUM, wire::Intensity::HIGH}) {
    ptyCommands[std::string(intensityName(intensity))] = ptyCommand(intensity, ptyPauseMs);
  }
  nlohmann::ordered_json j;
  j["probe"] = PROBE_COMMAND;
  j["exec_poll"]["commands"] = pollCommands();
  j["pty"]["pause_ms"] = ptyPauseMs;
  j["pty"]["commands"] = std::move(ptyCommands);
  return j.dump();
}

Result<std::string, std::string> describeWorkloads(int argc, const char* const* argv) {
  // The agent has no defaults of its own (sshsoak's options are the one
  // source), so the pause is given: sshsoak's --pty-interval-secs in ms.
  std::optional<uint32_t> pauseMs;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pty-pause-ms") != 0) {
      return fail(std::string("--describe-workloads: unknown argument '") + argv[i] +
                  "' (the only option is --pty-pause-ms N)");
    }
    if (i + 1 >= argc) return fail(std::string("--pty-pause-ms: needs a number of milliseconds"));
    const char* text = argv[++i];
    const char* end = text + std::strlen(text);
    uint32_t ms = 0;
    auto [ptr, ec] = std::from_chars(text, end, ms);
    if (ec != std::errc() || ptr != end || ptr == text) {
      return fail(std::string("--pty-pause-ms ") + text + ": not a number of milliseconds (0 to 4294967295)");
    }
    pauseMs = ms;
  }
  if (!pauseMs) return fail(std::string("--describe-workloads needs --pty-pause-ms N (sshsoak's --pty-interval-secs in ms)"));
  return describeWorkloadsJson(*pauseMs);
}

}  // namespace sshsoak::agent
