// One status line that updates in place while a run is watched on a
// terminal. Log messages go above it: the console sink erases the line,
// prints the message and draws the line again. Nothing of the kind happens
// when stdout or stderr is not a terminal, so logs stay clean in CI.
#pragma once

#include <spdlog/sinks/sink.h>

#include <memory>
#include <string>

namespace sshsoak::status_line {

bool enabled();                 // both stdout and stderr are terminals
void set(const std::string& text);
void clear();                   // erase it for good (before the summary)
// The console sink for spdlog that keeps the status line below messages.
std::shared_ptr<spdlog::sinks::sink> makeConsoleSink();

}  // namespace sshsoak::status_line
