// A network fault for the built-in relay (--fault SPEC, --fault-file; issue
// 16): what it does, when, and to which sessions. Parsing is pure, so the
// command line, the relay (sshsoak-proxy, which is sent the texts and parses
// them again) and the fuzzer share one grammar. docs/reference.md, "Network
// faults and reconnect pacing": KIND[=PARAMS][@WHEN][@SESSIONS].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"

namespace sshsoak {

enum class FaultKind { LATENCY, BANDWIDTH, BLACKHOLE, RESET, TIMEOUT, SLOW_CLOSE, LIMIT_DATA, SLICER };
std::string_view faultKindName(FaultKind kind);  // as the SPEC and the log lines spell it

// Which way a fault acts: up is agent to server, down is server to agent.
enum class FaultDirection { BOTH, UP, DOWN };

// When the fault is in force, in ms from the run's start: from startMs for
// lengthMs (none: to the end of the run), again every everyMs (0: once).
struct FaultWhen {
  int64_t startMs = 0;
  std::optional<int64_t> lengthMs;
  int64_t everyMs = 0;
  bool operator==(const FaultWhen&) const = default;
};

// One window of a FaultWhen: occurrence 1, 2, ... .
struct FaultOccurrence {
  uint32_t number = 1;
  int64_t startMs = 0;
  std::optional<int64_t> endMs;  // none: to the end of the run
  bool operator==(const FaultOccurrence&) const = default;
};

struct FaultSpec {
  FaultKind kind = FaultKind::LATENCY;
  FaultDirection direction = FaultDirection::BOTH;
  // The kind's parameters (unused ones stay 0).
  int64_t delayMs = 0;        // latency's fixed delay; slicer's pause between slices
  int64_t jitterMs = 0;       // latency's jitter (uniform, +-)
  int64_t durationMs = 0;     // timeout, slow-close
  uint64_t bytesPerSec = 0;   // bandwidth
  uint64_t bytes = 0;         // limit-data; slicer's slice size
  uint64_t bytesJitter = 0;   // slicer's +- on the slice size
  FaultWhen when;
  std::vector<uint32_t> sessions;  // ascending, each once; empty: all

  bool appliesTo(uint32_t session) const;
  bool actsUp() const { return direction != FaultDirection::DOWN; }
  bool actsDown() const { return direction != FaultDirection::UP; }
  // The SPEC in its canonical spelling: parseFaultSpec(text()) gives this
  // value back.
  std::string text() const;
  bool operator==(const FaultSpec&) const = default;
};

// Session ids a SPEC may name are below this (the command line holds them
// to --sessions afterwards).
constexpr uint32_t FAULT_MAX_SESSION_ID = 100000;

// A SPEC that does not parse: the message names the SPEC, the part that is
// wrong and gives a correct example.
Result<FaultSpec, std::string> parseFaultSpec(std::string_view text);

// The n-th window (n >= 1) of a schedule, and the window in force at t
// (startMs <= t < endMs), if any. A window of length 0 (a repeating reset
// without a length) is never "in force"; it starts and ends at once.
FaultOccurrence faultOccurrence(const FaultWhen& when, uint32_t n);
std::optional<FaultOccurrence> faultActiveAt(const FaultWhen& when, int64_t tMs);
// The number of windows that have started by t (0 before the first).
uint32_t faultStartedBy(const FaultWhen& when, int64_t tMs);

}  // namespace sshsoak
