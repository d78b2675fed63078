// Clocks: CLOCK_MONOTONIC for every duration and deadline, CLOCK_REALTIME only
// for timestamps shown to people.
#pragma once

#include <cstdint>
#include <string>

namespace sshsoak {

int64_t monoNs();
inline int64_t monoMs() { return monoNs() / 1'000'000; }
int64_t wallNs();
// CPU time this process has used so far (CLOCK_PROCESS_CPUTIME_ID).
int64_t processCpuNs();
// Microseconds since startNs (monotonic), rounded up and at least 1, so that
// a phase or step that happened is never 0 (0 keeps meaning "not reached").
uint64_t usSince(int64_t startNs);

// "2026-02-07T12:00:00.123456+00:00": the predecessor's `ts` format (UTC,
// microseconds, numeric offset).
std::string isoTimestamp(int64_t wallNs);
// The inverse, for readers of the log; 0 for text that is not one.
int64_t parseIsoTimestamp(const std::string& text);

}  // namespace sshsoak
