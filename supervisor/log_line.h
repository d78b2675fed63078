// A line of the JSONL event log: the predecessor's format (ts, session_id,
// host, event, detail, elapsed_ms, attempt, success first; typed fields
// after). JSONL is the contract between the live run (supervisor/run/, which
// writes the lines) and the analysis (supervisor/analysis/, which reads them,
// live or from a file); docs/reference.md lists every line and field.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "events.capnp.h"
#include "shared/histogram.h"

namespace sshsoak {

using Json = nlohmann::ordered_json;

// The common head of every line; session-less lines pass a null id.
Json lineHead(int64_t wallNs, std::optional<uint32_t> sessionId, const std::string& host,
              std::string_view event);

// An agent's event as a log line.
Json eventToJson(wire::Event::Reader event, const std::string& host);

// A histogram in a log line: its count and percentiles for people and grep
// (p50, p90, p99, p999, max: HdrHistogram's figures, same unit as the
// values), and "counts", the non-zero entries of its counts array as a flat
// [index, count, index, count, ...] list, which readers merge.
// Figures with one decimal, as a number (not a string) in the JSON.
double round1(double v);

Json histogramJson(const LatencyHistogram& h);
// Adds a histogramJson's "counts" to h. False (h unchanged) if they are
// malformed: not an array of pairs of non-negative integers, or an index
// out of range.
bool addHistogramJson(const Json& j, LatencyHistogram& h);

// agent_gave_up's detail is the reason followed by this; the run model
// takes the reason back from it.
inline constexpr std::string_view GAVE_UP_DETAIL_SUFFIX = "; the slot is not restarted";

}  // namespace sshsoak
