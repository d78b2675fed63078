// Live metrics (issue 17; docs/reference.md, "Live metrics"): the run's
// figures as Prometheus text (exposition format 0.0.4) or OpenMetrics 1.0
// text, served at /metrics (--metrics-listen, metrics_server.h) and written
// to a file for node_exporter's textfile collector (--metrics-textfile).
//
// Every figure is read from what the console and the summary already read:
// the run model (sessions by state, connects, reconnects, failures, the
// reconnect histogram), the resource stats (the sampler's newest pass by
// role), the token bucket's segment and the verdict's criteria. Nothing is
// counted twice. A rendering walks the sessions once (their states) and
// appends to a caller's buffer: once that buffer has grown to the text's
// size, a scrape allocates nothing per session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/result.h"
#include "shared/fd.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/run/resource_stats.h"

namespace sshsoak::metrics {

enum class Format { PROMETHEUS, OPENMETRICS };

// OpenMetrics when the scraper asks for it (an Accept header naming
// application/openmetrics-text, as Prometheus sends), else Prometheus text.
Format formatFor(std::string_view accept);
std::string_view contentType(Format format);

// The labels every sample carries: run_id, and shard with --shard.
struct RunLabels {
  std::string runId;
  std::optional<uint32_t> shard;
};

// The metrics endpoint's own figures (metrics_server.h keeps them).
struct ServerFigures {
  uint64_t scrapesPrometheus = 0;   // answered in Prometheus text
  uint64_t scrapesOpenMetrics = 0;  // answered in OpenMetrics text
  uint64_t refusedBusy = 0;      // over the connection limit: closed at once
  uint64_t refusedTooLarge = 0;  // a request head over the size limit: 431
  uint64_t timedOut = 0;         // a request or response not done within the deadline
  uint64_t badRequests = 0;      // not HTTP, not GET/HEAD: 400, 405
  uint64_t notFound = 0;         // another path: 404
  double lastRenderSecs = 0;
};

// What one rendering reads. All of it is owned by the run and read on its
// loop; pointers may be null where the run has none (no sampling pass yet,
// no token bucket, no endpoint).
struct Snapshot {
  const RunModel* model = nullptr;
  const ResourceStats* resources = nullptr;
  // The token bucket's rate as the segment holds it (TokenBucket::ratePerSec()).
  std::optional<double> tokenRatePerSec;
  std::optional<uint32_t> tokenBurst;
  const std::vector<Criterion>* criteria = nullptr;
  double startTimeSecs = 0;  // Unix time of the run's start
  double elapsedSecs = 0;
  double durationSecs = 0;   // --duration-secs
  bool stopping = false;
  const ServerFigures* server = nullptr;
};

class Renderer {
 public:
  explicit Renderer(RunLabels labels);
  // Appends the whole exposition to out (cleared first; its capacity kept).
  void render(std::string& out, Format format, const Snapshot& snapshot) const;

 private:
  std::string labels_;  // `run_id="...",shard="0"`, escaped once
};

// The label value escaped as the text formats want it (\\, \", \n).
std::string escapeLabelValue(std::string_view value);

// --metrics-listen ADDR:PORT: `127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:0`,
// `localhost:9464`. Checked on the command line (exit 2 when malformed).
struct ListenAddress {
  std::string host;  // without brackets
  uint16_t port = 0;
};
Result<ListenAddress, std::string> parseListenAddress(std::string_view text);

// A listening TCP socket (non-blocking, close-on-exec) bound at start, so
// that a port in use is a start-up error (exit 3) before any agent starts.
struct Listener {
  UniqueFd fd;
  std::string bound;  // the address it got: `127.0.0.1:41234` (port 0 picks one)
};
// The error names the address, the reason and the fix.
Result<Listener, std::string> bindListener(const ListenAddress& address);

// --metrics-textfile: text written to FILE.tmp beside FILE, then renamed
// over it, so that node_exporter's textfile collector never reads half a
// file. An error names the file, the step and errno's words.
Result<Ok, std::string> writeTextfile(const std::string& path, std::string_view text);

}  // namespace sshsoak::metrics
