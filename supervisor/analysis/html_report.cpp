#include "supervisor/analysis/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "shared/clock.h"
#include "supervisor/analysis/run_accumulator.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak::report {

namespace {

constexpr double WIDTH = 960, LEFT = 70, RIGHT = 20;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v, int decimals = 1) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

using Segment = RunAccumulator::Segment;

const char* colorOf(SessionState state) {
  switch (state) {
    case SessionState::STARTING: return "#dfe4ea";
    case SessionState::CONNECTING: return "#b0b7c3";
    case SessionState::CONNECTED: return "#2e9e5b";
    case SessionState::CONNECT_FAILED: return "#e17055";
    case SessionState::DISCONNECTED: return "#f0a030";
    case SessionState::AUTH_FAILED: return "#7b1d1d";
    case SessionState::MANUAL_RECONNECT_REQUIRED: return "#8e44ad";
    case SessionState::CRASHED: return "#d63031";
    case SessionState::RESTARTING: return "#fdcb6e";
    case SessionState::GAVE_UP: return "#4b0f0f";
  }
  return "#999";
}

// Each session's state changes as a row. At many sessions: the sessions
// with trouble after their first connect first (up to MAX_ROWS), then one
// row for those up from their connect to the end.
constexpr size_t MAX_ROWS = 50;

// Each fault window (the run's `faults`) as a shaded band from `top` to
// `bottom` on an x axis of the run's span; with labels, its spec above it
// where the previous label leaves room (every band has its tooltip).
std::string faultBands(const Json& faults, double span, double top, double bottom, std::optional<double> labelY) {
  if (!faults.is_array()) return "";
  auto x = [&](double t) { return LEFT + (WIDTH - LEFT - RIGHT) * std::clamp(t / span, 0.0, 1.0); };
  std::string s;
  double labelEnd = -1;
  for (const auto& w : faults) {
    FaultRow r = faultRow(w);
    double from = field(w, "start_secs").is_number() ? field(w, "start_secs").get<double>() : 0;
    double to = from + (field(w, "duration_ms").is_number() ? field(w, "duration_ms").get<double>() / 1000.0 : 0);
    double x0 = x(from), width = std::max(2.0, x(to) - x0);
    // Over the rows, translucent, edged: the states under it stay readable.
    s += "<rect class='fault-band' x='" + num(x0) + "' y='" + num(top) + "' width='" + num(width) + "' height='" +
         num(bottom - top) + "' fill='#d63031' fill-opacity='0.18' stroke='#d63031' stroke-opacity='0.6' "
         "stroke-dasharray='3,2'><title>" +
         esc("fault " + r.fault + ": " + r.window + "; " + r.affected + " affected, " + r.noticed + " noticed (" +
             r.notice + "), " + r.recovered + " recovered (" + r.recover + ")") +
         "</title></rect>";
    if (!labelY) continue;
    std::string label = r.fault.substr(0, 48);
    double labelWidth = 6.0 * static_cast<double>(label.size());
    double labelX = std::min(x0 + 2, WIDTH - 2 - labelWidth);  // a window near the end: its label ends at the edge
    if (labelX <= labelEnd) continue;
    s += "<text class='fault-label' x='" + num(labelX) + "' y='" + num(*labelY) + "' font-size='10' fill='#a52a2a'>" +
         esc(label) + "</text>";
    labelEnd = labelX + labelWidth;
  }
  return s;
}

std::string timeline(const Run& run, double span) {
  auto all = run.acc->segments(span);
  auto x = [&](double t) { return LEFT + (WIDTH - LEFT - RIGHT) * t / span; };
  const auto& markers = run.acc->markers();
  std::map<uint32_t, std::vector<Segment>> segs;
  std::vector<std::pair<std::string, std::vector<Segment>>> extraRows;
  if (all.size() <= MAX_ROWS) {
    segs = std::move(all);
  } else {
    auto steady = [](const std::vector<Segment>& list) {
      bool connected = false;
      for (const auto& seg : list) {
        if (seg.state == SessionState::CONNECTED) connected = true;
        else if (connected) return false;
      }
      return connected;
    };
    size_t up = 0, notDrawn = 0;
    double latestConnect = 0;
    for (auto& [id, list] : all) {
      if (steady(list)) {
        ++up;
        for (const auto& seg : list) {
          if (seg.state == SessionState::CONNECTED) {
            latestConnect = std::max(latestConnect, seg.from);
            break;
          }
        }
      } else if (segs.size() < MAX_ROWS) {
        segs.emplace(id, std::move(list));
      } else {
        ++notDrawn;
      }
    }
    if (up > 0) {
      extraRows.emplace_back(std::to_string(up) + " up",
                             std::vector<Segment>{{0, latestConnect, SessionState::CONNECTING},
                                                  {latestConnect, span, SessionState::CONNECTED}});
    }
    if (notDrawn > 0) extraRows.emplace_back("+" + std::to_string(notDrawn) + " not drawn", std::vector<Segment>{});
  }
  // Fault windows: a row of their labels above the sessions, their bands behind them.
  bool faults = run.faults.is_array() && !run.faults.empty();
  double rowsTop = faults ? 34 : 20;
  double rowH = 14, height = rowsTop + 10 + rowH * static_cast<double>(segs.size() + extraRows.size()) + 24;
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(height, 0) +
                  "' role='img' aria-label='session timeline'>";
  double y = rowsTop;
  for (const auto& [id, list] : segs) {
    s += "<text x='4' y='" + num(y + 11, 0) + "' font-size='11'>session " + std::to_string(id) + "</text>";
    for (const auto& seg : list) {
      double w = std::max(1.0, x(seg.to) - x(seg.from));
      s += "<rect x='" + num(x(seg.from)) + "' y='" + num(y) + "' width='" + num(w) + "' height='" + num(rowH - 3) +
           "' fill='" + colorOf(seg.state) + "'><title>session " + std::to_string(id) + ": " +
           std::string(stateName(seg.state)) + " " + num(seg.from) + "-" + num(seg.to) + " s</title></rect>";
    }
    y += rowH;
  }
  for (const auto& [label, list] : extraRows) {
    s += "<text x='4' y='" + num(y + 11, 0) + "' font-size='11'>" + esc(label) + "</text>";
    for (const auto& seg : list) {
      double w = std::max(1.0, x(seg.to) - x(seg.from));
      s += "<rect x='" + num(x(seg.from)) + "' y='" + num(y) + "' width='" + num(w) + "' height='" + num(rowH - 3) +
           "' fill='" + colorOf(seg.state) + "' opacity='0.6'><title>" + esc(label) +
           (seg.state == SessionState::CONNECTED ? ": every one connected from here to the end"
                                                 : ": connecting (the last of them connected here)") +
           "</title></rect>";
    }
    y += rowH;
  }
  if (!extraRows.empty()) {
    s += "<text x='4' y='" + num(y + 11, 0) + "' font-size='10' fill='#555'>" +
         esc("rows: sessions interrupted after their first connect (up to " + std::to_string(MAX_ROWS) +
             "); \"up\": the sessions up from their connect to the end") +
         "</text>";
    y += rowH;
  }
  if (faults) s += faultBands(run.faults, span, rowsTop - 4, rowsTop + rowH * static_cast<double>(segs.size() + extraRows.size()), 26.0);
  for (const auto& [t, what] : markers) {
    s += "<line x1='" + num(x(t)) + "' x2='" + num(x(t)) + "' y1='12' y2='" + num(y) +
         "' stroke='#c0392b' stroke-dasharray='4,3'/><text x='" + num(x(t) + 3) + "' y='11' font-size='10' fill='#c0392b'>" +
         esc(what.substr(0, 40)) + "</text>";
  }
  for (int i = 0; i <= 4; ++i) {
    double t = span * i / 4;
    s += "<text x='" + num(x(t)) + "' y='" + num(y + 14) + "' font-size='10' text-anchor='middle'>" + num(t, 0) + " s</text>";
  }
  s += "</svg><p class='legend'>";
  for (SessionState state : ALL_SESSION_STATES) {
    s += "<span><i style='background:" + std::string(colorOf(state)) + "'></i>" + std::string(stateName(state)) +
         "</span> ";
  }
  return s + "</p>";
}

// A line chart of (t, value) series with an optional threshold line.
std::string chart(const std::string& title, const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series,
                  double span, std::optional<double> threshold, const std::string& unit, const Json& faults = Json()) {
  double maxV = threshold ? *threshold * 1.1 : 0;
  for (const auto& [name, pts] : series) {
    for (const auto& p : pts) maxV = std::max(maxV, p.second * 1.1);
  }
  if (maxV <= 0) maxV = 1;
  double h = 200, top = 20, bottom = 180;
  auto x = [&](double t) { return LEFT + (WIDTH - LEFT - RIGHT) * t / span; };
  auto y = [&](double v) { return bottom - (bottom - top) * v / maxV; };
  static const char* palette[] = {"#2d6cdf", "#2e9e5b", "#e67e22", "#8e44ad", "#16a085", "#7f8c8d"};
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(h, 0) +
                  "' role='img' aria-label='" + esc(title) + "'>";
  s += faultBands(faults, span, top, bottom, std::nullopt);
  s += "<line x1='" + num(LEFT) + "' x2='" + num(LEFT) + "' y1='" + num(top) + "' y2='" + num(bottom) + "' stroke='#555'/>";
  s += "<line x1='" + num(LEFT) + "' x2='" + num(WIDTH - RIGHT) + "' y1='" + num(bottom) + "' y2='" + num(bottom) +
       "' stroke='#555'/>";
  for (int i = 0; i <= 4; ++i) {
    double v = maxV * i / 4;
    s += "<text x='" + num(LEFT - 4) + "' y='" + num(y(v) + 3) + "' font-size='10' text-anchor='end'>" + num(v) + "</text>";
  }
  if (threshold) {
    s += "<line x1='" + num(LEFT) + "' x2='" + num(WIDTH - RIGHT) + "' y1='" + num(y(*threshold)) + "' y2='" +
         num(y(*threshold)) + "' stroke='#d63031' stroke-dasharray='6,4'/><text x='" + num(WIDTH - RIGHT) + "' y='" +
         num(y(*threshold) - 3) + "' font-size='10' text-anchor='end' fill='#d63031'>threshold " + num(*threshold) + " " +
         esc(unit) + "</text>";
  }
  size_t k = 0;
  for (const auto& [name, pts] : series) {
    std::string d;
    for (const auto& p : pts) d += (d.empty() ? "M" : " L") + num(x(p.first)) + "," + num(y(p.second));
    std::string color = palette[k % 6];
    if (!d.empty()) s += "<path d='" + d + "' fill='none' stroke='" + color + "' stroke-width='1.5'/>";
    s += "<text x='" + num(LEFT + 8 + 150.0 * static_cast<double>(k)) + "' y='14' font-size='11' fill='" + color + "'>" +
         esc(name) + "</text>";
    ++k;
  }
  s += "<text x='" + num(WIDTH - RIGHT) + "' y='196' font-size='10' text-anchor='end'>" + num(span, 0) + " s</text>";
  return s + "</svg>";
}

std::string histogram(const std::vector<int64_t>& ms) {
  if (ms.empty()) return "<p>No reconnects in this run.</p>";
  int64_t maxMs = *std::max_element(ms.begin(), ms.end());
  int buckets = 20;
  double width = std::max<double>(1.0, static_cast<double>(maxMs) / buckets);
  std::vector<int> counts(static_cast<size_t>(buckets) + 1, 0);
  for (auto v : ms) counts[static_cast<size_t>(std::min<double>(buckets, std::floor(static_cast<double>(v) / width)))]++;
  int maxC = *std::max_element(counts.begin(), counts.end());
  double h = 180, bottom = 150, top = 20;
  double bw = (WIDTH - LEFT - RIGHT) / (buckets + 1);
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(h, 0) +
                  "' role='img' aria-label='reconnect time histogram'>";
  for (size_t i = 0; i < counts.size(); ++i) {
    double bh = (bottom - top) * counts[i] / std::max(1, maxC);
    s += "<rect x='" + num(LEFT + bw * static_cast<double>(i)) + "' y='" + num(bottom - bh) + "' width='" + num(bw - 2) +
         "' height='" + num(bh) + "' fill='#2d6cdf'><title>" + num(width * static_cast<double>(i) / 1000, 2) + "-" +
         num(width * static_cast<double>(i + 1) / 1000, 2) + " s: " + std::to_string(counts[i]) + "</title></rect>";
  }
  // The y axis: counts per bucket.
  s += "<line x1='" + num(LEFT - 2) + "' x2='" + num(LEFT - 2) + "' y1='" + num(top) + "' y2='" + num(bottom) +
       "' stroke='#555'/>";
  for (int i = 0; i <= 4; ++i) {
    double c = static_cast<double>(maxC) * i / 4;
    if (i > 0 && i < 4 && maxC < 4) continue;  // no fractional counts
    double yv = bottom - (bottom - top) * c / std::max(1, maxC);
    s += "<text x='" + num(LEFT - 6) + "' y='" + num(yv + 3) + "' font-size='10' text-anchor='end'>" + figureText(std::round(c)) +
         "</text>";
  }
  s += "<text x='12' y='" + num((top + bottom) / 2) + "' font-size='10' transform='rotate(-90 12 " + num((top + bottom) / 2) +
       ")' text-anchor='middle'>reconnects</text>";
  auto mark = [&](const char* label, int64_t v, const char* color) {
    double xv = LEFT + bw * (static_cast<double>(v) / width);
    s += "<line x1='" + num(xv) + "' x2='" + num(xv) + "' y1='" + num(top - 8) + "' y2='" + num(bottom) + "' stroke='" +
         color + "' stroke-width='2'/><text x='" + num(xv + 3) + "' y='" + num(top - 2) + "' font-size='11' fill='" +
         color + "'>" + label + " " + num(static_cast<double>(v) / 1000, 2) + " s</text>";
  };
  mark("p50", *percentile(ms, 0.5), "#2e9e5b");
  mark("p95", *percentile(ms, 0.95), "#d63031");
  s += "<text x='" + num(LEFT) + "' y='168' font-size='10'>0 s</text><text x='" + num(WIDTH - RIGHT) +
       "' y='168' font-size='10' text-anchor='end'>" + num(static_cast<double>(maxMs) / 1000, 2) + " s</text>";
  return s + "</svg>";
}

std::optional<double> thresholdOf(const Run& run, const std::string& criterion) {
  if (!run.verdict.is_array()) return std::nullopt;
  for (const auto& c : run.verdict) {
    if (c.value("criterion", "") == criterion && field(c, "threshold").is_number()) return field(c, "threshold").get<double>();
  }
  return std::nullopt;
}

// Latency histograms on a log-scale time axis, one line per histogram: the
// share of its values in each of 10 bins per decade, from 10 µs up.
std::string logHistogram(const std::string& title, const std::vector<std::pair<std::string, const LatencyHistogram*>>& hists) {
  constexpr int BINS_PER_DECADE = 10;
  uint64_t maxUs = 10;
  for (const auto& [name, h] : hists) maxUs = std::max(maxUs, h->max());
  double lo = 1.0;  // log10(10 µs)
  double hi = std::max(lo + 1, std::ceil(std::log10(static_cast<double>(maxUs))));
  auto bins = static_cast<size_t>((hi - lo) * BINS_PER_DECADE);
  auto binOf = [&](uint64_t us) {
    double l = std::log10(std::max<double>(1.0, static_cast<double>(us)));
    double b = std::floor((l - lo) * BINS_PER_DECADE);
    return static_cast<size_t>(std::clamp(b, 0.0, static_cast<double>(bins - 1)));
  };
  std::vector<std::vector<double>> shares;
  double maxShare = 0;
  for (const auto& [name, h] : hists) {
    std::vector<double> v(bins, 0.0);
    h->forEachNonZero([&](size_t i, uint64_t c) { v[binOf(LatencyHistogram::highestEquivalent(i))] += static_cast<double>(c); });
    for (auto& x : v) {
      x = h->count() ? 100.0 * x / static_cast<double>(h->count()) : 0;
      maxShare = std::max(maxShare, x);
    }
    shares.push_back(std::move(v));
  }
  double h = 220, top = 24, bottom = 190;
  auto x = [&](double b) { return LEFT + (WIDTH - LEFT - RIGHT) * b / static_cast<double>(bins); };
  auto y = [&](double v) { return bottom - (bottom - top) * v / std::max(1.0, maxShare * 1.1); };
  static const char* palette[] = {"#2d6cdf", "#2e9e5b", "#e67e22", "#8e44ad", "#16a085", "#d63031", "#7f8c8d"};
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(h, 0) +
                  "' role='img' aria-label='" + esc(title) + "'>";
  s += "<line x1='" + num(LEFT) + "' x2='" + num(WIDTH - RIGHT) + "' y1='" + num(bottom) + "' y2='" + num(bottom) +
       "' stroke='#555'/><line x1='" + num(LEFT) + "' x2='" + num(LEFT) + "' y1='" + num(top) + "' y2='" + num(bottom) +
       "' stroke='#555'/>";
  for (double d = lo; d <= hi + 1e-9; d += 1) {
    double xv = x((d - lo) * BINS_PER_DECADE);
    double ms = std::pow(10.0, d) / 1000.0;
    s += "<line x1='" + num(xv) + "' x2='" + num(xv) + "' y1='" + num(top) + "' y2='" + num(bottom) +
         "' stroke='#eee'/><text x='" + num(xv) + "' y='" + num(bottom + 14) + "' font-size='10' text-anchor='middle'>" +
         (ms < 1 ? num(ms, ms < 0.1 ? 2 : 1) : num(ms, 0)) + " ms</text>";
  }
  s += "<text x='" + num(LEFT - 4) + "' y='" + num(top + 4) + "' font-size='10' text-anchor='end'>" +
       num(maxShare * 1.1, 0) + " %</text><text x='" + num(LEFT - 4) + "' y='" + num(bottom) +
       "' font-size='10' text-anchor='end'>0</text>";
  double legendX = LEFT + 8;
  for (size_t k = 0; k < hists.size(); ++k) {
    std::string d;
    for (size_t b = 0; b < bins; ++b) {
      d += (d.empty() ? "M" : " L") + num(x(static_cast<double>(b))) + "," + num(y(shares[k][b])) + " L" +
           num(x(static_cast<double>(b + 1))) + "," + num(y(shares[k][b]));
    }
    std::string color = palette[k % 7];
    std::string label = hists[k].first + " p99 " + num(static_cast<double>(hists[k].second->valueAtPercentile(99)) / 1000, 2) + " ms";
    s += "<path d='" + d + "' fill='none' stroke='" + color + "' stroke-width='1.5'><title>" + esc(hists[k].first) +
         "</title></path><text x='" + num(legendX) + "' y='14' font-size='11' fill='" + color + "'>" + esc(label) + "</text>";
    // Each label as wide as its text (about 6 px a character at 11 px), so long names do not overlap.
    legendX += std::max(125.0, 6.2 * static_cast<double>(label.size()) + 14);
  }
  return s + "</svg>";
}

// One bar per session: its MB/s over its own rounds' span.
std::string sessionBars(const TransferFigures& t) {
  std::vector<std::pair<uint32_t, double>> rows;
  double maxV = 1;
  for (const auto& [id, se] : t.sessions) {
    if (se.lastEndNs <= se.firstStartNs) continue;
    double v = static_cast<double>(se.bytes) / 1e6 / (static_cast<double>(se.lastEndNs - se.firstStartNs) / 1e9);
    rows.emplace_back(id, v);
    maxV = std::max(maxV, v);
  }
  if (rows.empty()) return "<p>No completed rounds.</p>";
  double rowH = 16, h = 10 + rowH * static_cast<double>(rows.size());
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(h, 0) +
                  "' role='img' aria-label='MB/s per session'>";
  double y = 4;
  for (const auto& [id, v] : rows) {
    double w = (WIDTH - LEFT - RIGHT - 80) * v / maxV;
    s += "<text x='4' y='" + num(y + 11, 0) + "' font-size='11'>session " + std::to_string(id) + "</text><rect x='" +
         num(LEFT) + "' y='" + num(y) + "' width='" + num(std::max(1.0, w)) + "' height='" + num(rowH - 4) +
         "' fill='#2d6cdf'/><text x='" + num(LEFT + w + 4) + "' y='" + num(y + 11, 0) + "' font-size='11'>" + num(v) +
         " MB/s</text>";
    y += rowH;
  }
  return s + "</svg>";
}

std::string fig(const Json& v) { return v.is_number() ? preciseText(v.get<double>()) : std::string("n/a"); }

std::string tableRow(const std::vector<std::string>& cells, const char* tag = "td") {
  std::string s = "<tr>";
  for (const auto& c : cells) s += std::string("<") + tag + ">" + esc(c) + "</" + tag + ">";
  return s + "</tr>";
}

// --workload jobs: counts, the A/B of --compare-reuse, latencies, reuse and
// pool closes, jobs per second over time, failures.
std::string jobsSection(const Run& run, const JobsFigures& f, double span) {
  Json w = run.workload;  // operator[] reads a missing field as null
  std::string s = "<h3>Jobs (reuse " + esc(w["reuse"].is_string() ? w["reuse"].get<std::string>() : "?") + ", " +
                  fig(w["workers"]) + (w["workers"] == 1 ? " worker" : " workers") + ")</h3><table>" +
                  tableRow({"submitted", "done", "failed", "aborted", "cancelled", "not started", "lost", "retried", "shed",
                            "rejected", "jobs/s"},
                           "th") +
                  tableRow({fig(w["submitted"]), fig(w["done"]), fig(w["failed"]), fig(w["aborted"]), fig(w["cancelled"]),
                            fig(w["not_started"]), fig(w["lost"]), fig(w["retried"]), fig(w["shed"]), fig(w["rejected"]),
                            fig(w["jobs_per_sec"])}) +
                  "</table>";
  if (w["incomplete"].is_string()) s += "<p><b>Incomplete:</b> " + esc(w["incomplete"].get<std::string>()) + "</p>";

  Json& phases = w["phases"];
  if (phases.size() >= 2) {
    Json& off = phases["reuse_off"];
    Json& on = phases["reuse_on"];
    Json& c = w["compare"];
    auto perJob = [](Json& total, Json& per) { return fig(total) + (per.is_number() ? " (" + fig(per) + "/job)" : ""); };
    s += "<h3>Jobs: reuse off vs on (--compare-reuse)</h3><table>" +
         tableRow({"", "reuse off", "reuse on", "on / off"}, "th") +
         tableRow({"jobs/s", fig(off["jobs_per_sec"]), fig(on["jobs_per_sec"]), fig(c["throughput_ratio"])}) +
         tableRow({"p95 job latency ms", fig(off["latency_ms"]["total"]["p95"]), fig(on["latency_ms"]["total"]["p95"]),
                   fig(c["p95_ratio"])}) +
         tableRow({"sshd CPU ms", perJob(off["server_cpu_ms"], off["server_cpu_ms_per_job"]),
                   perJob(on["server_cpu_ms"], on["server_cpu_ms_per_job"]), fig(c["server_cpu_ratio"]) + " per job"}) +
         tableRow({"connections opened", perJob(off["connections_opened"], off["connections_per_job"]),
                   perJob(on["connections_opened"], on["connections_per_job"]),
                   fig(c["connections_ratio"]) + " per job"}) +
         tableRow({"done / failed", fig(off["done"]) + " / " + fig(off["failed"]),
                   fig(on["done"]) + " / " + fig(on["failed"]), ""}) +
         "</table>";
  }

  s += "<h3>Jobs: latency (ms)</h3><table>" + tableRow({"", "n", "p50", "p95", "p99", "max"}, "th");
  for (const char* name : JOB_LATENCIES) {
    Json& h = w["latency_ms"][name];
    s += tableRow({name, fig(h["n"]), fig(h["p50"]), fig(h["p95"]), fig(h["p99"]), fig(h["max"])});
  }
  s += "</table>";
  // Total per phase (the A/B), and the parts of the run as a whole.
  std::vector<std::pair<std::string, const LatencyHistogram*>> hists;
  for (const auto& [name, p] : f.phases) {
    if (auto it = p.latency.find("total"); it != p.latency.end() && !it->second.empty()) {
      hists.emplace_back(name == "reuse_off" ? "total, reuse off" : "total, reuse on", &it->second);
    }
  }
  std::vector<std::pair<std::string, LatencyHistogram>> parts;
  for (const char* name : {"queue_wait", "connect", "run"}) {
    LatencyHistogram h = f.latency(name);
    // A closed loop's queue wait is all below the axis' 10 µs: one bar that
    // would flatten every other line and says nothing the table does not.
    if (!h.empty() && h.valueAtPercentile(99) >= 10) parts.emplace_back(name, std::move(h));
  }
  for (const auto& [name, h] : parts) hists.emplace_back(name, &h);
  if (!hists.empty()) s += "<h3>Jobs: latency (log scale)</h3>" + logHistogram("job latency", hists);

  s += "<h3>Jobs: connection reuse</h3><table>" +
       tableRow({"reuse rate", "connections opened", "per hour per worker", "setup saved ms", "idle closes", "lru closes",
                 "dead replaced", "dropped closes", "tainted closes"},
                "th") +
       tableRow({fig(w["reuse_rate"]), fig(w["connections_opened"]), fig(w["connections_per_hour_per_worker"]),
                 fig(w["setup_saved_ms"]), fig(w["idle_closes"]), fig(w["lru_closes"]), fig(w["dead_replaced"]),
                 fig(w["dropped_closes"]), fig(w["tainted_closes"])}) +
       "</table>";
  if (w["setup_saved_method"].is_string()) s += "<p>Setup saved: " + esc(w["setup_saved_method"].get<std::string>()) + "</p>";

  std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>> series;
  if (f.phases.count("reuse_off")) series.emplace_back("reuse off jobs/s", f.series.ratePoints(0));
  if (f.phases.count("reuse_on")) series.emplace_back("reuse on jobs/s", f.series.ratePoints(1));
  series.emplace_back("failed + aborted /s", f.series.ratePoints(2));
  s += "<h3>Jobs per second over time</h3>" + chart("jobs rate", series, span, std::nullopt, "jobs/s");

  s += "<h3>Jobs: failures by kind</h3>";
  if (f.failures.empty()) {
    s += "<p>No failed jobs.</p>";
  } else {
    s += "<table>" + tableRow({"kind", "count", "first example"}, "th");
    for (const auto& [kind, fl] : f.failures) s += tableRow({kind, std::to_string(fl.count), fl.example});
    s += "</table>";
  }
  if (!f.firstFailures.empty()) {
    s += "<p>First jobs that did not end done (failed, aborted, cancelled):</p><table>" +
         tableRow({"worker", "job", "target", "phase", "outcome", "kind", "exit codes", "message"}, "th");
    for (const auto& j : f.firstFailures) {
      auto text = [&](const char* k) {
        const Json& v = field(j, k);
        return v.is_string() ? v.get<std::string>() : v.is_null() ? std::string() : v.dump();
      };
      s += tableRow({text("session_id"), text("job"), text("target"), text("phase"), text("outcome"), text("failure_kind"),
                     text("exit_codes"), text("message")});
    }
    s += "</table>";
  }
  return s;
}

std::string workloadSection(const Run& run, double span) {
  const WorkloadModel& wm = run.acc->model().workload();
  std::string s;
  switch (wm.kind()) {
    case cli::WorkloadKind::JOBS: return jobsSection(run, wm.jobs(), span);
    case cli::WorkloadKind::PTY:
      if (wm.echo().empty()) return "";
      return "<h3>Keystroke echo latency</h3>" + logHistogram("echo latency", {{"echo", &wm.echo()}});
    case cli::WorkloadKind::CHURN: {
      const ChurnFigures& c = wm.churn();
      Json w = run.workload;
      s += "<h3>Churn: connections per second</h3><p>" + std::to_string(c.attempted) + " attempted, " +
           std::to_string(c.succeeded) + " succeeded, " + std::to_string(c.failed) + " failed; achieved " +
           (w["achieved_per_sec"].is_number() ? num(w["achieved_per_sec"].get<double>()) : "n/a") +
           " conn/s; client CPU " + (w["cpu_ms_per_conn"].is_number() ? num(w["cpu_ms_per_conn"].get<double>(), 2) : "n/a") +
           " ms per connection</p>";
      s += chart("churn rate",
                 {{"achieved conn/s", c.series.ratePoints(0)}, {"target conn/s", c.series.valuePoints(2)},
                  {"failed /s", c.series.ratePoints(1)}},
                 span, thresholdOf(run, "conn_rate_per_sec"), "conn/s");
      std::vector<std::pair<std::string, const LatencyHistogram*>> phases;
      for (const char* p : CHURN_PHASES) {
        if (auto it = c.phases.find(p); it != c.phases.end() && !it->second.empty()) phases.emplace_back(p, &it->second);
      }
      if (!phases.empty()) s += "<h3>Churn: phase latency (log scale)</h3>" + logHistogram("phase latency", phases);
      s += "<h3>Churn: failures by category</h3>";
      if (c.failures.empty()) {
        s += "<p>No failed connections.</p>";
      } else {
        s += "<table><tr><th>category</th><th>count</th><th>first example</th></tr>";
        for (const auto& [kind, f] : c.failures) {
          s += "<tr><td>" + esc(kind) + "</td><td>" + std::to_string(f.count) + "</td><td>" + esc(f.example) + "</td></tr>";
        }
        s += "</table>";
      }
      if (w.contains("ramp")) {
        s += "<h3>Churn: ramp</h3><table><tr><th>step</th><th>target conn/s</th><th>achieved conn/s</th><th>failed</th>"
             "<th>p99 total ms</th></tr>";
        for (auto& st : w["ramp"]["steps"]) {
          auto f = [](const Json& v) { return v.is_number() ? figureText(v.get<double>()) : std::string("n/a"); };
          s += "<tr><td>" + f(st["step"]) + "</td><td>" + f(st["target_per_sec"]) + "</td><td>" +
               f(st["achieved_per_sec"]) + "</td><td>" + f(st["failed"]) + "</td><td>" + f(st["p99_total_ms"]) + "</td></tr>";
        }
        Json& bp = w["ramp"]["breaking_point"];
        s += "</table><p>Breaking point: <b>" +
             (bp.is_object() ? "step " + std::to_string(bp["step"].get<int>()) + " (target " +
                                   figureText(bp["target_per_sec"].get<double>()) + " conn/s): " + esc(bp.value("reason", ""))
                             : std::string("not reached")) +
             "</b></p>";
      }
      return s;
    }
    case cli::WorkloadKind::TRANSFER: {
      const TransferFigures& t = wm.transfer();
      Json w = run.workload;
      s += "<h3>Transfer: MB/s over time</h3><p>aggregate " +
           (w["aggregate_mb_per_sec"].is_number() ? num(w["aggregate_mb_per_sec"].get<double>()) : "n/a") + " MB/s; " +
           std::to_string(t.corruptRounds) + " corrupt rounds; " + std::to_string(t.stalls) + " stalls; " +
           std::to_string(t.errors) + " errors</p>";
      std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>> series;
      if (t.directions.count("up")) series.emplace_back("up MB/s", t.series.ratePoints(0, 1e-6));
      if (t.directions.count("down")) series.emplace_back("down MB/s", t.series.ratePoints(1, 1e-6));
      s += chart("transfer rate", series, span, thresholdOf(run, "throughput_mbps"), "MB/s");
      s += "<h3>Transfer: MB/s per session</h3>" + sessionBars(t);
      if (t.firstCorrupt) {
        Json c = *t.firstCorrupt;
        auto text = [&](const char* k) { return c[k].is_string() ? c[k].get<std::string>() : c[k].dump(); };
        s += "<p><b>First corrupt round:</b> session " + esc(text("session_id")) + ", " + esc(text("direction")) +
             " round " + esc(text("round")) + " (" + esc(text("bytes")) +
             " bytes): SHA-256 here <code style='word-break:break-all'>" + esc(text("local_sha256")) +
             "</code>, at the server <code style='word-break:break-all'>" + esc(text("remote_sha256")) + "</code></p>";
      }
      if (t.errors) s += "<p><b>First error:</b> " + esc(t.firstError) + "</p>";
      return s;
    }
  }
  return s;
}

// Per role, each process's RSS (or PSS) after warm-up: the TOP_K steepest as
// lines with their Theil-Sen fit dashed, the rest as a min / median / max
// band, so that 1000 agents are one band and five lines, not 1000 lines.
constexpr size_t TOP_K = 5;

std::string leakPlot(const std::string& role, std::vector<const ProcessLeak*> procs, bool pss, double span) {
  auto slopeOf = [&](const ProcessLeak* p) {
    const auto& f = pss ? p->pss : p->rss;
    return f ? f->slope : -1e300;
  };
  std::sort(procs.begin(), procs.end(), [&](const ProcessLeak* a, const ProcessLeak* b) { return slopeOf(a) > slopeOf(b); });
  auto value = [&](const LeakPoint& pt) { return pss ? pt.pssMb : pt.rssMb; };
  double lo = 1e300, hi = -1e300;
  for (const auto* p : procs) {
    for (const auto& pt : p->series) {
      lo = std::min(lo, value(pt));
      hi = std::max(hi, value(pt));
    }
  }
  if (lo > hi) return "";
  double pad = std::max(0.5, (hi - lo) * 0.1);
  lo = std::max(0.0, lo - pad);
  hi += pad;
  double h = 220, top = 24, bottom = 190;
  auto x = [&](double t) { return LEFT + (WIDTH - LEFT - RIGHT) * std::clamp(t / span, 0.0, 1.0); };
  auto y = [&](double v) { return bottom - (bottom - top) * (v - lo) / (hi - lo); };
  static const char* palette[] = {"#d63031", "#e67e22", "#8e44ad", "#2d6cdf", "#16a085"};
  std::string title = role + (pss ? " PSS" : " RSS");
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(WIDTH, 0) + "' height='" + num(h, 0) +
                  "' role='img' aria-label='" + esc(title) + "'>";
  s += "<line x1='" + num(LEFT) + "' x2='" + num(LEFT) + "' y1='" + num(top) + "' y2='" + num(bottom) +
       "' stroke='#555'/><line x1='" + num(LEFT) + "' x2='" + num(WIDTH - RIGHT) + "' y1='" + num(bottom) + "' y2='" +
       num(bottom) + "' stroke='#555'/>";
  for (int i = 0; i <= 4; ++i) {
    double v = lo + (hi - lo) * i / 4;
    s += "<text x='" + num(LEFT - 4) + "' y='" + num(y(v) + 3) + "' font-size='10' text-anchor='end'>" + num(v) + " MB</text>";
  }
  size_t k = std::min(TOP_K, procs.size());
  if (procs.size() > k) {
    // The band of the rest, on a grid of GRID bins of the run.
    constexpr size_t GRID = 80;
    std::vector<std::vector<double>> cells(GRID);
    for (size_t i = k; i < procs.size(); ++i) {
      for (const auto& pt : procs[i]->series) {
        auto c = static_cast<size_t>(std::clamp(pt.t / span * GRID, 0.0, GRID - 1.0));
        cells[c].push_back(value(pt));
      }
    }
    std::string upper, lower, mid;
    for (size_t c = 0; c < GRID; ++c) {
      auto& v = cells[c];
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      double t = (static_cast<double>(c) + 0.5) * span / GRID;
      upper += (upper.empty() ? "M" : " L") + num(x(t)) + "," + num(y(v.back()));
      lower = " L" + num(x(t)) + "," + num(y(v.front())) + lower;
      mid += (mid.empty() ? "M" : " L") + num(x(t)) + "," + num(y(v[v.size() / 2]));
    }
    if (!upper.empty()) {
      s += "<path d='" + upper + lower + " Z' fill='#b2bec3' opacity='0.5'><title>min-max of the other " +
           std::to_string(procs.size() - k) + " processes</title></path><path d='" + mid +
           "' fill='none' stroke='#636e72' stroke-width='1'/>";
    }
    s += "<text x='" + num(WIDTH - RIGHT) + "' y='14' font-size='11' text-anchor='end' fill='#636e72'>band: the other " +
         std::to_string(procs.size() - k) + " (min / median / max)</text>";
  }
  double legendX = LEFT + 8;
  for (size_t i = 0; i < k; ++i) {
    const ProcessLeak& p = *procs[i];
    std::string d;
    for (const auto& pt : p.series) d += (d.empty() ? "M" : " L") + num(x(pt.t)) + "," + num(y(value(pt)));
    std::string color = palette[i % 5];
    s += "<path d='" + d + "' fill='none' stroke='" + color + "' stroke-width='1.5'><title>" + esc(p.who()) +
         "</title></path>";
    const auto& f = pss ? p.pss : p.rss;
    std::string label = p.who();
    if (f) {
      auto fy = [&](double t) { return f->intercept + f->slope * t / 3600.0; };
      s += "<line x1='" + num(x(p.firstSecs)) + "' x2='" + num(x(p.lastSecs)) + "' y1='" + num(y(fy(p.firstSecs))) +
           "' y2='" + num(y(fy(p.lastSecs))) + "' stroke='" + color + "' stroke-width='1' stroke-dasharray='5,4'/>";
      label += " " + preciseText(std::round(f->slope * 100) / 100 + 0.0) + " MB/h";  // + 0.0: no "-0"
    }
    // Each label as wide as its text; the ones that do not fit keep their line and its tooltip.
    double w = 6.2 * static_cast<double>(label.size()) + 14;
    if (legendX + w > WIDTH - (procs.size() > k ? 260 : RIGHT)) continue;
    s += "<text x='" + num(legendX) + "' y='14' font-size='11' fill='" + color + "'>" + esc(label) + "</text>";
    legendX += w;
  }
  s += "<text x='" + num(WIDTH - RIGHT) + "' y='206' font-size='10' text-anchor='end'>" + num(span, 0) + " s</text>";
  return s + "</svg>";
}

std::string leakSection(const Run& run, double span) {
  const LeakModel& leaks = run.acc->model().leaks();
  auto procs = leaks.processes();
  std::map<std::string, std::vector<const ProcessLeak*>> byRole;
  for (const auto& p : procs) {
    if (!p.series.empty()) byRole[p.role].push_back(&p);
  }
  if (byRole.empty()) return "";
  std::string s = "<h3>Leaks: memory per process after the " + figureText(leaks.warmupSecs()) +
                  " s warm-up</h3><p>Solid: each process's RSS; dashed: its Theil-Sen fit (the slope in the legend). "
                  "The verdict judges RSS: a process's PSS falls when others sharing its pages exit.</p>";
  for (const auto& [role, list] : byRole) {
    s += "<h4>" + esc(role) + " RSS (MB)</h4>" + leakPlot(role, list, false, span);
  }
  for (const auto& [role, list] : byRole) {
    s += "<h4>" + esc(role) + " PSS (MB)</h4>" + leakPlot(role, list, true, span);
  }
  return s;
}

std::vector<std::pair<double, double>> pointsOf(const BinnedSeries& b, bool peak) {
  std::vector<std::pair<double, double>> pts;
  for (const auto& bin : b.bins()) pts.emplace_back(bin.t, peak ? bin.max : bin.mean);
  return pts;
}

// The per-window table under the timeline: what each fault did.
constexpr size_t HTML_FAULT_ROWS = 200;

std::string faultTable(const Run& run) {
  if (!run.faults.is_array() || run.faults.empty()) return "";
  std::string s = "<h3>Fault windows</h3><p>Shaded on the timeline above. Noticed: affected sessions that logged "
                  "<code>disconnected</code> from the window's start to its end plus the keepalive budget; time to "
                  "notice from the start; time to recover from the window's end to <code>reconnected</code> (0: back "
                  "before the end).</p><table class='faults'>" +
                  tableRow({"fault", "kind", "window", "affected", "noticed", "time to notice p50 / max", "recovered",
                            "time to recover p50 / max", "connections", "bytes held", "resets"},
                           "th");
  size_t shown = 0;
  for (const auto& w : run.faults) {
    if (shown++ == HTML_FAULT_ROWS) break;
    FaultRow r = faultRow(w);
    s += tableRow({r.fault, textField(w, "kind"), r.window, r.affected, r.noticed, r.notice, r.recovered, r.recover,
                   fig(field(w, "connections_at_start")), fig(field(w, "bytes_held")), fig(field(w, "resets"))});
  }
  s += "</table>";
  uint64_t more = (run.faults.size() > HTML_FAULT_ROWS ? run.faults.size() - HTML_FAULT_ROWS : 0) + run.faultsIgnored;
  if (more > 0) s += "<p>" + std::to_string(more) + " more fault windows not shown.</p>";
  return s;
}

// The adaptive pacer's rate as steps (each pacer_rate line holds until the
// next), from its initial rate at the start to the run's end.
std::string pacerSection(const Run& run, double span) {
  const BinnedSeries& rate = run.acc->pacerRate();
  std::string text = pacerText(run.pacer);
  if (rate.empty() && text.empty()) return "";
  std::vector<std::pair<double, double>> pts;
  const Json& initial = field(run.pacer, "initial_rate");
  if (initial.is_number()) pts.emplace_back(0.0, initial.get<double>());
  for (const auto& bin : rate.bins()) {
    if (!pts.empty()) pts.emplace_back(bin.t, pts.back().second);
    pts.emplace_back(bin.t, bin.mean);
  }
  if (!pts.empty()) pts.emplace_back(span, pts.back().second);
  return "<h3>Reconnect pacer: rate (connects/s)</h3><p>" + esc(text) + "</p>" +
         chart("pacer rate", {{"pacer rate/s", pts}}, span, std::nullopt, "/s", run.faults);
}

std::string runSection(const Run& run) {
  double span = std::max(1.0, run.acc->spanSecs());
  std::string s = "<section><h2>Run " + esc(run.runId) + "</h2><p>" + esc(run.source) + " &middot; topology " +
                  run.topology + " &middot; " + std::to_string(run.sessions) + " sessions &middot; " +
                  esc(formatDuration(run.durationSecs)) + " &middot; interrupts: " + esc(run.interruptType) +
                  " &middot; reconnected " + std::to_string(run.recovered) + "/" + std::to_string(run.interrupts) +
                  (run.complete ? "" : " &middot; <b>incomplete log</b>") + "</p>";
  if (!run.complete && !run.notes.empty()) s += "<p><b>" + esc(run.notes) + "</b></p>";
  s += "<h3>Sessions over time</h3>" + timeline(run, span);
  s += faultTable(run);
  s += pacerSection(run, span);

  const RunAccumulator& acc = *run.acc;
  if (!acc.totalPssMb().empty()) {
    s += "<h3>Harness memory (MB)</h3>" +
         chart("memory", {{"total PSS", pointsOf(acc.totalPssMb(), true)}, {"total RSS", pointsOf(acc.totalRssMb(), true)}},
               span, thresholdOf(run, "memory_mb"), "MB");
    s += "<h3>Harness CPU (% of one core)</h3>" +
         chart("cpu", {{"total CPU", pointsOf(acc.totalCpuPct(), false)}}, span, thresholdOf(run, "cpu_pct"), "%");
    s += leakSection(run, span);
  } else {
    s += "<p>No resource samples in this log.</p>";
  }
  s += workloadSection(run, span);
  s += "<h3>Reconnect time (detection to usable)</h3>" + histogram(run.reconnectMs);
  s += "<h3>Verdict</h3>";
  if (run.verdict.is_array()) {
    s += "<table><tr><th>criterion</th><th>measured</th><th>threshold</th><th>result</th><th>note</th></tr>";
    for (const auto& c : run.verdict) {
      std::string res = c.value("result", "?");
      std::string unit = c.value("unit", "");
      s += "<tr class='" + esc(res) + "'><td>" + esc(c.value("criterion", "?")) + "</td><td>" +
           (field(c, "measured").is_number() ? preciseText(field(c, "measured").get<double>()) + " " + esc(unit) : "n/a") +
           "</td><td>" + esc(c.value("comparison", "")) + " " +
           (field(c, "threshold").is_number() ? preciseText(field(c, "threshold").get<double>()) : "?") +
           " " + esc(unit) + "</td><td>" + esc(res) + "</td><td class='note'>" + esc(textField(c, "note")) + "</td></tr>";
    }
    s += "</table>";
  } else {
    s += "<p>No verdict in this log" + std::string(run.complete ? "" : " (incomplete run)") + ".</p>";
  }
  return s + "</section>";
}

}  // namespace

std::string renderRunHtml(const std::string& source, std::shared_ptr<const RunAccumulator> run) {
  return renderHtml({runOf(source, std::move(run))});
}

std::string renderHtml(const std::vector<Run>& runs) {
  std::string s =
      "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>sshsoak report</title><style>"
      "body{font-family:system-ui,sans-serif;margin:24px;color:#222}h2{border-bottom:1px solid #ccc}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
      "tr.pass td:nth-child(4){color:#2e9e5b;font-weight:bold}tr.fail td:nth-child(4){color:#d63031;font-weight:bold}"
      "td.note{font-size:12px;color:#555}table.faults td,table.faults th{font-size:13px;padding:3px 6px}"
      ".legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:12px;height:12px;"
      "margin-right:4px;vertical-align:middle}</style></head><body><h1>sshsoak report</h1>";
  for (const auto& r : runs) s += runSection(r);
  return s + "</body></html>\n";
}

}  // namespace sshsoak::report
