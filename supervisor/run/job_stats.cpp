#include "supervisor/run/job_stats.h"

#include <algorithm>

namespace sshsoak::jobs {

void JobStats::add(const JobSample& s) {
  if (!h_) h_ = std::make_unique<Histograms>();
  ++results_;
  switch (s.outcome) {
    case wire::JobOutcome::DONE: ++done_; break;
    case wire::JobOutcome::FAILED: ++failed_; break;
    case wire::JobOutcome::ABORTED: ++aborted_; break;
    case wire::JobOutcome::CANCELLED: ++cancelled_; break;
  }
  if (s.reused) ++reused_;
  connectionsOpened_ += s.connectionsOpened;
  deadReplaced_ += s.deadReplaced;
  commandsRun_ += s.commandsRun;
  commandsFailed_ += s.commandsFailed;
  h_->queueWait.record(s.queueWaitUs);
  if (s.connectionsOpened > 0 || s.connectUs > 0) h_->connect.record(s.connectUs);
  if (s.livenessUs > 0) h_->liveness.record(s.livenessUs);
  h_->run.record(s.runUs);
  h_->total.record(s.totalUs);
  if (s.failureKind.empty()) return;
  // MAX_FAILURE_KINDS - 1 kinds by name; the last place is "other".
  auto find = [&](std::string_view kind) {
    return std::find_if(failures_.begin(), failures_.end(), [&](const FailureKind& f) { return f.kind == kind; });
  };
  std::string_view kind = s.failureKind;
  auto it = find(kind);
  if (it == failures_.end() && failures_.size() >= MAX_FAILURE_KINDS - 1) {
    kind = "other";
    it = find(kind);
  }
  if (it == failures_.end()) {
    it = failures_.insert(failures_.end(),
                          FailureKind{std::string(kind), 0, std::string(s.message.substr(0, MAX_EXAMPLE_CHARS))});
  }
  ++it->count;
}

Json JobStats::takeLine(int64_t wallNs, uint32_t worker, const std::string& host, int64_t intervalMs, Phase phase) {
  if (!h_) h_ = std::make_unique<Histograms>();
  Json j = lineHead(wallNs, worker, host, "job_stats");
  j["interval_ms"] = intervalMs;
  j["phase"] = std::string(phaseName(phase));
  j["done"] = done_;
  j["failed"] = failed_;
  j["aborted"] = aborted_;
  j["cancelled"] = cancelled_;
  j["reused"] = reused_;
  j["connections_opened"] = connectionsOpened_;
  j["dead_replaced"] = deadReplaced_;
  j["commands_run"] = commandsRun_;
  j["commands_failed"] = commandsFailed_;
  Json latency;
  latency["queue_wait"] = histogramJson(h_->queueWait);
  latency["connect"] = histogramJson(h_->connect);
  latency["liveness"] = histogramJson(h_->liveness);
  latency["run"] = histogramJson(h_->run);
  latency["total"] = histogramJson(h_->total);
  j["latency_us"] = std::move(latency);
  Json failures = Json::object();
  for (const auto& f : failures_) failures[f.kind] = Json{{"count", f.count}, {"example", f.example}};
  j["failures"] = std::move(failures);
  reset();
  return j;
}

void JobStats::reset() {
  if (h_) {
    h_->queueWait.reset();
    h_->connect.reset();
    h_->liveness.reset();
    h_->run.reset();
    h_->total.reset();
  }
  results_ = done_ = failed_ = aborted_ = cancelled_ = 0;
  reused_ = connectionsOpened_ = deadReplaced_ = commandsRun_ = commandsFailed_ = 0;
  failures_.clear();
}

}  // namespace sshsoak::jobs
