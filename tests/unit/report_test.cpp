#include "supervisor/analysis/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/run_accumulator.h"

using namespace sshsoak;
using namespace sshsoak::report;

namespace {

std::string line(const std::string& ts, const std::string& event, int session = -1, const std::string& host = "",
                 const std::string& extra = "") {
  std::string s = "{\"ts\":\"2026-11-23T10:" + ts + "+00:00\",\"session_id\":" +
                  (session < 0 ? "null" : std::to_string(session)) + ",\"host\":" +
                  (host.empty() ? "null" : "\"" + host + "\"") + ",\"event\":\"" + event +
                  "\",\"detail\":null,\"elapsed_ms\":null,\"attempt\":null,\"success\":true" + extra + "}\n";
  return s;
}

std::string withElapsed(std::string l, int ms) {
  std::string from = "\"elapsed_ms\":null";
  return l.replace(l.find(from), from.size(), "\"elapsed_ms\":" + std::to_string(ms));
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sshsoak-report-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::filesystem::path dir_;
};

// A run: two sessions on two hosts (topology A), one injected drop each,
// reconnects of 1000 and 3000 ms, a summary with resources and a verdict.
std::string runA(const std::string& id) {
  return line("00:00.000000", "run_started", -1, "", ",\"run_id\":\"" + id + "\",\"sessions\":2") +
         line("00:00.100000", "agent_started", 0, "h1:22") + line("00:00.100000", "agent_started", 1, "h2:22") +
         line("00:00.300000", "connected", 0, "h1:22") + line("00:00.300000", "connected", 1, "h2:22") +
         line("00:10.000000", "disconnect_injected", 0, "h1:22") + line("00:10.000000", "disconnected", 0, "h1:22", ",\"cause\":\"injected\"") +
         line("00:10.000000", "disconnect_injected", 1, "h2:22") + line("00:10.000000", "disconnected", 1, "h2:22", ",\"cause\":\"injected\"") +
         withElapsed(line("00:11.000000", "reconnected", 0, "h1:22"), 1000) +
         withElapsed(line("00:13.000000", "reconnected", 1, "h2:22"), 3000) +
         line("00:14.000000", "resource_sample", -1, "",
              ",\"total\":{\"cpu_pct\":1.5,\"rss_kb\":90000,\"pss_kb\":18000},\"procs\":[[1,null,0.5,9000,3000,10,1],[2,0,0.5,8000,2000,10,1]]") +
         line("01:00.000000", "summary", -1, "",
              ",\"duration_secs\":60.0,\"abnormal_ends\":0,\"resources\":{\"total\":{\"cpu_mean_pct\":1.2,\"pss_peak_kb\":18432}},"
              "\"verdict\":[{\"criterion\":\"abnormal_ends\",\"measured\":0,\"threshold\":0,\"comparison\":\"<=\",\"unit\":\"\",\"result\":\"pass\"},"
              "{\"criterion\":\"cpu_pct\",\"measured\":7.5,\"threshold\":5,\"comparison\":\"<\",\"unit\":\"%\",\"result\":\"fail\"}]");
}

}  // namespace

TEST_F(ReportTest, OneRowPerRunWithTheTestPlansColumns) {
  auto path = write("a.jsonl", runA("run-a"));
  Input in = read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  const report::Run& r = in.runs[0];
  EXPECT_EQ(r.runId, "run-a");
  EXPECT_EQ(r.topology, "A");
  EXPECT_EQ(r.sessions, 2u);
  EXPECT_EQ(r.recovered, 2u);
  EXPECT_EQ(r.interrupts, 2u);
  EXPECT_NE(r.interruptType.find("Injected drop"), std::string::npos);
  EXPECT_DOUBLE_EQ(*r.cpuMeanPct, 1.2);
  EXPECT_DOUBLE_EQ(*r.memPeakMb, 18.0);
  EXPECT_EQ(r.notes, "cpu_pct failed");
  std::string md = markdown(in);
  EXPECT_NE(md.find("| Run ID | Topology (A/B) | Sessions | Duration | Interrupt Type | Reconnect Success (x/y) | "
                    "Reconnect Time p50/p95 (s) | Abnormal Ends | CPU | Mem | Notes |"),
            std::string::npos)
      << md;
  // p50 = sorted[n/2] = 3000, p95 = 3000 (the predecessor's one-liner)
  EXPECT_NE(md.find("| run-a | A | 2 | 1m | Injected drop x1 (2 session drops) | 2/2 | 3.00 / 3.00 | 0 | 1.2 % | 18 MB PSS | cpu_pct failed |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| cpu_pct | 7.5 % | < 5 % | fail |"), std::string::npos) << md;
}

TEST_F(ReportTest, SeveralRunsAndFilesMakeSeveralRowsAndACombinedLine) {
  auto a = write("a.jsonl", runA("run-a") + runA("run-b"));
  std::string oneHost = line("00:00.000000", "agent_started", 0, "h:22") + line("00:00.000000", "agent_started", 1, "h:22") +
                        line("00:01.000000", "connected", 0, "h:22") + line("00:01.000000", "connected", 1, "h:22") +
                        line("00:30.000000", "summary", -1, "", ",\"duration_secs\":30.0,\"abnormal_ends\":0");
  auto b = write("b.jsonl", oneHost);
  Input in = read({a, b});
  ASSERT_EQ(in.runs.size(), 3u);
  EXPECT_EQ(in.runs[2].topology, "B");
  EXPECT_EQ(in.runs[2].interruptType, "None");
  std::string md = markdown(in);
  EXPECT_NE(md.find("**all 3 runs**"), std::string::npos) << md;
  EXPECT_NE(md.find("4/4"), std::string::npos) << md;
}

TEST_F(ReportTest, TruncatedLogIsReadPastTheDamageWithAWarningNamingTheLine) {
  std::string text = runA("run-a");
  // Cut the summary line in half: a run killed mid-write.
  text = text.substr(0, text.size() - 120);
  auto path = write("cut.jsonl", text);
  Input in = read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  ASSERT_EQ(in.warnings.size(), 1u);
  EXPECT_NE(in.warnings[0].find("cut.jsonl line 13"), std::string::npos) << in.warnings[0];
  EXPECT_FALSE(in.runs[0].complete);
  EXPECT_EQ(in.runs[0].recovered, 2u);  // what was written is still counted
  EXPECT_NE(in.runs[0].notes.find("incomplete"), std::string::npos);
}

TEST_F(ReportTest, MissingFileIsAnError) {
  Input in = read({(dir_ / "nope.jsonl").string()});
  EXPECT_TRUE(in.runs.empty());
  ASSERT_EQ(in.errors.size(), 1u);
  EXPECT_NE(in.errors[0].find("nope.jsonl"), std::string::npos);
}

TEST_F(ReportTest, HtmlIsSelfContained) {
  auto path = write("a.jsonl", runA("run-<a>"));
  std::string html = renderHtml(read({path}).runs);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("run-&lt;a&gt;"), std::string::npos) << "names are escaped";
  EXPECT_EQ(html.find("run-<a>"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("p95"), std::string::npos);
  EXPECT_NE(html.find("injected drop"), std::string::npos);
  EXPECT_NE(html.find("threshold 5"), std::string::npos);
}

TEST_F(ReportTest, HtmlTimelineShowsTheSummarysStateNames) {
  auto path = write("a.jsonl", runA("run-a"));
  std::string html = renderHtml(read({path}).runs);
  EXPECT_NE(html.find("session 0: connecting"), std::string::npos) << html;
  EXPECT_NE(html.find("session 0: down"), std::string::npos) << html;
  EXPECT_NE(html.find("session 1: up"), std::string::npos) << html;
  EXPECT_NE(html.find("needs_manual_reconnect</span>"), std::string::npos) << "the legend lists every state";
  EXPECT_EQ(html.find("reconnecting"), std::string::npos) << "the old timeline-only name";
}

TEST_F(ReportTest, ARunKilledAfterACheckpointIsReadFromIt) {
  std::string cut = runA("run-k");
  cut = cut.substr(0, cut.find("{\"ts\":\"2026-11-23T10:01:00.000000+00:00\""));  // the summary is gone
  cut += line("00:30.000000", "checkpoint", -1, "",
              ",\"checkpoint\":2,\"duration_secs\":30.0,\"abnormal_ends\":0,\"resources\":{\"total\":{\"cpu_mean_pct\":2.5,"
              "\"pss_peak_kb\":20480}},\"verdict\":[{\"criterion\":\"abnormal_ends\",\"measured\":0,\"threshold\":0,"
              "\"comparison\":\"<=\",\"unit\":\"\",\"result\":\"pass\"}]");
  cut += line("00:31.000000", "resource_sample", -1, "", ",\"total\":{\"cpu_pct\":1.5,\"rss_kb\":90000,\"pss_kb\":18000}");
  auto path = write("k.jsonl", cut + "{\"ts\":\"2026-11-23T10:00:32");  // killed mid-write
  Input in = read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  const report::Run& r = in.runs[0];
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.checkpoint, 2u);
  ASSERT_TRUE(r.memPeakMb);
  EXPECT_DOUBLE_EQ(*r.memPeakMb, 20.0);
  EXPECT_DOUBLE_EQ(*r.cpuMeanPct, 2.5);
  EXPECT_DOUBLE_EQ(r.durationSecs, 30.0);
  EXPECT_NE(r.notes.find("incomplete: figures from checkpoint 2 at 10:00:30 (run killed?)"), std::string::npos) << r.notes;
  std::string md = markdown(in);
  EXPECT_NE(md.find("| 20 MB PSS | incomplete: figures from checkpoint 2 at 10:00:30"), std::string::npos) << md;
  EXPECT_NE(md.find("| abnormal_ends | 0 |"), std::string::npos) << "the checkpoint's verdict: " << md;
  EXPECT_EQ(in.warnings.size(), 1u);
  std::string html = renderHtml(in.runs);
  EXPECT_NE(html.find("figures from checkpoint 2"), std::string::npos);
}

TEST_F(ReportTest, ARotatedLogIsReadAsOneRunOldestPartFirst) {
  std::string all = runA("run-r");
  size_t cut1 = all.find("{\"ts\":\"2026-11-23T10:00:10.000000");
  size_t cut2 = all.find("{\"ts\":\"2026-11-23T10:00:13.000000");
  std::string started = all.substr(0, all.find('\n'));
  auto continued = [&](int part, const std::string& ts) {
    return "{\"ts\":\"2026-11-23T10:" + ts + "+00:00\",\"session_id\":null,\"event\":\"log_continued\",\"part\":" +
           std::to_string(part) + ",\"run_id\":\"run-r\",\"run_started\":" + started + "}\n";
  };
  write("r.jsonl.2", all.substr(0, cut1));
  write("r.jsonl.1", continued(2, "00:10.000000") + all.substr(cut1, cut2 - cut1));
  auto path = write("r.jsonl", continued(3, "00:13.000000") + all.substr(cut2));
  Input in = read({path});
  ASSERT_EQ(in.runs.size(), 1u) << "one run across three files";
  EXPECT_EQ(in.runs[0].runId, "run-r");
  EXPECT_TRUE(in.runs[0].complete);
  EXPECT_EQ(in.runs[0].recovered, 2u);
  EXPECT_EQ(in.runs[0].interrupts, 2u);
  EXPECT_EQ(in.runs[0].notes, "cpu_pct failed") << "as the unrotated log says";

  // The oldest part deleted (--log-keep): the run's start is missing, said so.
  std::filesystem::remove(dir_ / "r.jsonl.2");
  in = read({path});
  ASSERT_EQ(in.runs.size(), 1u);
  EXPECT_EQ(in.runs[0].runId, "run-r");
  EXPECT_EQ(in.runs[0].sessions, 2u) << "from log_continued's copy of run_started";
  EXPECT_NE(in.runs[0].notes.find("start is missing"), std::string::npos) << in.runs[0].notes;
}

TEST_F(ReportTest, TheVerdictTablePrintsCountsAsCounts) {
  auto path = write("a.jsonl", runA("run-a"));
  std::string html = renderHtml(read({path}).runs);
  EXPECT_NE(html.find("<td>abnormal_ends</td><td>0 </td><td>&lt;= 0 </td>"), std::string::npos) << html;
  EXPECT_EQ(html.find("<td>0.0 "), std::string::npos);
}

TEST_F(ReportTest, ATimelineOfManySessionsIsCapped) {
  std::string log = line("00:00.000000", "run_started", -1, "", ",\"run_id\":\"big\",\"sessions\":300");
  for (int s = 0; s < 300; ++s) {
    log += line("00:00.100000", "agent_started", s, "h:22") + line("00:01.000000", "connected", s, "h:22");
  }
  for (int s = 0; s < 60; ++s) {
    log += line("00:10.000000", "disconnected", s * 5, "h:22", ",\"cause\":\"reset\"") +
           withElapsed(line("00:12.000000", "reconnected", s * 5, "h:22"), 2000);
  }
  log += line("01:00.000000", "resource_sample", -1, "", ",\"total\":{\"cpu_pct\":1.5,\"rss_kb\":90000,\"pss_kb\":18000}");
  auto path = write("big.jsonl", log);
  std::string html = renderHtml(read({path}).runs);
  EXPECT_NE(html.find(">240 up<"), std::string::npos) << "the sessions never interrupted: one row";
  EXPECT_NE(html.find(">+10 not drawn<"), std::string::npos);
  EXPECT_NE(html.find("session 0: down"), std::string::npos);
  EXPECT_EQ(html.find("session 1: up"), std::string::npos) << "an uninterrupted session has no row of its own";
}

// A session's timeline is bounded at any run length: full, neighbours merge
// pairwise, the row keeps its span and every interruption stays visible.
TEST(RunAccumulatorTimeline, HalvingKeepsTheSpanAndTheInterruptions) {
  using Seg = RunAccumulator::Segment;
  std::vector<Seg> list;
  for (int i = 0; i < 8; ++i) {
    list.push_back({i * 10.0, i * 10.0 + 9, SessionState::CONNECTED});
    list.push_back({i * 10.0 + 9, i * 10.0 + 10, i == 5 ? SessionState::DISCONNECTED : SessionState::CONNECTED});
  }
  RunAccumulator::halve(list);
  ASSERT_EQ(list.size(), 8u);
  EXPECT_EQ(list.front().from, 0.0);
  EXPECT_EQ(list.back().to, 80.0);
  EXPECT_EQ(list[5].state, SessionState::DISCONNECTED);
  EXPECT_EQ(std::count_if(list.begin(), list.end(), [](const Seg& s) { return s.state != SessionState::CONNECTED; }), 1);
}
