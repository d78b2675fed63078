// The two pipes between sshsoak and each sshsoak-agent, at fixed fd numbers
// in the agent (docs/design.md, "Processes"): the supervisor maps them there
// between fork and exec, the agent finds them there.
#pragma once

namespace sshsoak {

inline constexpr int AGENT_EVENT_FD = 3;    // agent -> supervisor: Cap'n Proto events
inline constexpr int AGENT_COMMAND_FD = 4;  // supervisor -> agent: AgentConfig, then Commands

}  // namespace sshsoak
