// The supervisor's exit codes, documented in README.md and docs/reference.md
// ("Exit codes"). Scripts and CI branch on them, so they never change meaning.
#pragma once

namespace sshsoak::exit_code {

constexpr int PASSED = 0;           // the run completed and every criterion passed
constexpr int CRITERIA_FAILED = 1;  // the run completed; one or more criteria failed
constexpr int USAGE = 2;            // a flag or its value is wrong (nothing was started)
constexpr int BAD_INPUT = 3;        // a file named by a flag is missing, unreadable or unwritable
constexpr int LOG_FAILED = 4;       // the log could not be written during the run (named on the console with
                                    // its errno; the summary and verdict are on the console)
constexpr int INTERNAL = 70;        // a bug in sshsoak
constexpr int SYSTEM = 71;          // the system refused: cannot start sshd or an agent, out of fds, ...

}  // namespace sshsoak::exit_code
