// The CI results (supervisor/analysis/ci_results.cpp): JUnit XML and the
// --summary-json document as functions of a summary. A real JUnit reader
// parses them in the integration test (ci_results_test there).
#include "supervisor/analysis/ci_results.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "supervisor/exit_codes.h"

using namespace sshsoak;

namespace {

Json criterion(const std::string& name, Json measured, double threshold, const std::string& cmp,
               const std::string& unit, const std::string& result, const std::string& note = "") {
  return {{"criterion", name}, {"measured", measured}, {"threshold", threshold}, {"comparison", cmp},
          {"unit", unit},      {"result", result},     {"note", note}};
}

ci::RunResult sample() {
  ci::RunResult r;
  r.runId = "run-1";
  r.source = "/tmp/run.jsonl";
  r.summary = {{"ts", "2026-11-26T08:00:30.000Z"},
               {"event", "summary"},
               {"run_id", "run-1"},
               {"detail", "3 sessions, 2 up at end"},
               {"duration_secs", 30.0},
               {"success", false},
               {"verdict",
                {criterion("abnormal_ends", 1, 0, "<=", "sessions", "fail"),
                 criterion("reconnect_rate_pct", nullptr, 99, ">=", "%", "n/a", "no interrupts"),
                 criterion("memory_mb", 21.5, 200, "<", "MB", "pass")}}};
  r.settings = {{"ts", "2026-11-26T08:00:00.000Z"}, {"event", "run_started"}, {"run_id", "run-1"},
                {"targets", {"10.0.0.1:22", "10.0.0.2:22"}}, {"sessions", 3}};
  r.exitCode = 1;
  return r;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(CiResults, JunitHasOneTestcasePerCriterionWithFailureMessageMeasuredVsThreshold) {
  std::string xml = ci::junitXml({sample()});
  EXPECT_EQ(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", 0), 0u) << xml;
  EXPECT_EQ(count(xml, "<testcase "), 3u) << xml;
  EXPECT_NE(xml.find("<testsuite name=\"run-1\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"30.000\" "
                     "timestamp=\"2026-11-26T08:00:00.000Z\">"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("message=\"abnormal_ends: measured 1 sessions, threshold &lt;= 0 sessions\""), std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<skipped message=\"n/a: no interrupts\"/>"), std::string::npos) << xml;
  EXPECT_EQ(count(xml, "<failure "), 1u);
  // The settings as properties; a list joined.
  EXPECT_NE(xml.find("<property name=\"targets\" value=\"10.0.0.1:22, 10.0.0.2:22\"/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<property name=\"exit_code\" value=\"1\"/>"), std::string::npos) << xml;
  EXPECT_EQ(xml.find("name=\"event\""), std::string::npos);
}

TEST(CiResults, XmlEscapeCoversMarkupQuotesControlCharactersAndBadUtf8) {
  EXPECT_EQ(ci::xmlEscape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
  EXPECT_EQ(ci::xmlEscape("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
  // XML 1.0 cannot hold NUL or ESC, even as references: replaced.
  EXPECT_EQ(ci::xmlEscape(std::string("x\0y\x1bz", 5)), "x\xEF\xBF\xBDy\xEF\xBF\xBDz");
  EXPECT_EQ(ci::xmlEscape("\xC3\xA9t\xC3\xA9 \xE2\x9C\x93"), "\xC3\xA9t\xC3\xA9 \xE2\x9C\x93");  // UTF-8 kept
  EXPECT_EQ(ci::xmlEscape("bad \xC3 \xFF \xF5\x80\x80\x80 end"),
            "bad \xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_EQ(ci::xmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a UTF-16 surrogate
  EXPECT_EQ(ci::xmlEscape("\xEF\xBF\xBF"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFF
}

TEST(CiResults, HostileRunIdTargetAndNoteStayInsideTheirAttributes) {
  ci::RunResult r = sample();
  r.runId = "x\"/><testcase name=\"injected";
  r.settings["targets"] = Json::array({"<evil>&host:22"});
  r.summary["verdict"][0]["note"] = "]]></failure><failure message=\"y\">";
  std::string xml = ci::junitXml({r});
  EXPECT_EQ(count(xml, "<testcase "), 3u) << xml;
  EXPECT_EQ(count(xml, "<failure "), 1u) << xml;
  EXPECT_NE(xml.find("name=\"x&quot;/&gt;&lt;testcase name=&quot;injected\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("value=\"&lt;evil&gt;&amp;host:22\""), std::string::npos) << xml;
}

TEST(CiResults, ACheckpointIsAnUnfinishedRunAndFailsRunComplete) {
  ci::RunResult r = sample();
  r.summary["event"] = "checkpoint";
  r.summary["checkpoint"] = 2;
  r.summary["success"] = true;
  r.summary["verdict"][0]["result"] = "pass";
  r.exitCode = ci::exitCodeOf(r.summary);
  EXPECT_FALSE(r.exitCode.has_value());
  std::string xml = ci::junitXml({r});
  EXPECT_NE(xml.find("<testcase name=\"run_complete\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("the run has not ended: figures from checkpoint 2 at 2026-11-26T08:00:30.000Z"),
            std::string::npos)
      << xml;
  Json doc = ci::summaryDocument(r);
  EXPECT_EQ(doc["state"], "checkpoint");
  EXPECT_EQ(doc["success"], false);
  EXPECT_TRUE(doc["exit_code"].is_null());
}

TEST(CiResults, NoSummaryIsOneFailedCaseAndAFailedSummaryWithoutCriterionSaysWhy) {
  ci::RunResult none;
  none.runId = "killed";
  std::string xml = ci::junitXml({none});
  EXPECT_NE(xml.find("tests=\"1\" failures=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("killed before its first checkpoint"), std::string::npos) << xml;

  // A merge that misses a shard fails without a failed criterion: CI sees it.
  ci::RunResult merged = sample();
  merged.summary["verdict"][0]["result"] = "pass";
  merged.summary["detail"] = "shard 2 of 4 missing";
  xml = ci::junitXml({merged});
  EXPECT_NE(xml.find("message=\"the run failed: shard 2 of 4 missing\""), std::string::npos) << xml;
}

// A run that aborted after run_started (exit 3, 70, 71): CI sees why.
TEST(CiResults, AnAbortedRunIsAFailedRunCompleteWithItsDetailAndExitCode) {
  ci::RunResult r = sample();
  r.summary = {{"ts", "2026-11-26T08:00:01.000Z"}, {"event", "run_aborted"}, {"run_id", "run-1"},
               {"detail", "cannot start an agent (/x): No such file"}, {"success", false}, {"exit_code", 71}};
  r.exitCode = ci::exitCodeOf(r.summary);
  EXPECT_EQ(r.exitCode, exit_code::SYSTEM);
  std::string xml = ci::junitXml({r});
  EXPECT_NE(xml.find("tests=\"1\" failures=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("message=\"the run failed: cannot start an agent (/x): No such file\""), std::string::npos) << xml;
  Json doc = ci::summaryDocument(r);
  EXPECT_EQ(doc["state"], "aborted");
  EXPECT_EQ(doc["exit_code"], 71);
  EXPECT_EQ(doc["success"], false);
}

TEST(CiResults, AnExitCodeBeyondTheVerdictFailsTheRunEvenWithEveryCriterionPassed) {
  // The relay died (71) or the log failed (4) in a run whose criteria passed:
  // CI must not show it green.
  ci::RunResult r = sample();
  r.summary["success"] = true;
  r.summary["verdict"] = Json::array({criterion("memory_mb", 21.5, 200, "<", "MB", "pass")});
  for (int code : {exit_code::SYSTEM, exit_code::LOG_FAILED}) {
    r.exitCode = code;
    std::string xml = ci::junitXml({r});
    EXPECT_NE(xml.find("name=\"run_complete\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("exit code " + std::to_string(code)), std::string::npos) << xml;
    EXPECT_EQ(ci::summaryDocument(r)["success"], false);
  }
  r.exitCode = 0;
  EXPECT_EQ(ci::junitXml({r}).find("run_complete"), std::string::npos);
  EXPECT_EQ(ci::summaryDocument(r)["success"], true);
}

TEST(CiResults, SummaryDocumentHasTheVerdictExitCodeSettingsAndK6Thresholds) {
  Json doc = ci::summaryDocument(sample());
  EXPECT_EQ(doc["format"], "sshsoak-summary/1");
  EXPECT_EQ(doc["run_id"], "run-1");
  EXPECT_EQ(doc["state"], "complete");
  EXPECT_EQ(doc["success"], false);
  EXPECT_EQ(doc["exit_code"], 1);
  EXPECT_EQ(doc["settings"]["sessions"], 3);
  EXPECT_FALSE(doc["settings"].contains("event"));
  EXPECT_EQ(doc["verdict"].size(), 3u);
  EXPECT_EQ(doc["failed_criteria"], Json::array({"abnormal_ends"}));
  EXPECT_EQ(doc["thresholds"]["abnormal_ends <= 0"]["ok"], false);
  EXPECT_EQ(doc["thresholds"]["memory_mb < 200"]["ok"], true);
  EXPECT_TRUE(doc["thresholds"]["reconnect_rate_pct >= 99"]["ok"].is_null());
  EXPECT_EQ(doc["summary"]["detail"], "3 sessions, 2 up at end");
}

TEST(CiResults, ExitCodeOfFollowsASingleRunsRules) {
  EXPECT_EQ(ci::exitCodeOf(Json{{"event", "summary"}, {"success", true}}), exit_code::PASSED);
  EXPECT_EQ(ci::exitCodeOf(Json{{"event", "summary"}, {"success", false}}), exit_code::CRITERIA_FAILED);
  EXPECT_EQ(ci::exitCodeOf(Json{{"event", "run_aborted"}, {"exit_code", 71}, {"success", false}}), exit_code::SYSTEM);
  EXPECT_FALSE(ci::exitCodeOf(Json(nullptr)).has_value());
}

TEST(CiResults, WritesAtomicallyAndNamesTheFlagAndPathOnFailure) {
  auto dir = std::filesystem::temp_directory_path() / ("ci_results_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "junit.xml").string();
  EXPECT_FALSE(ci::writeJunit(path, {sample()}).has_value());
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  EXPECT_EQ(text.str(), ci::junitXml({sample()}));
  EXPECT_FALSE(std::filesystem::exists(dir / ".junit.xml.tmp"));
  EXPECT_FALSE(ci::writeSummaryJson("", sample()).has_value());  // not asked for

  auto error = ci::writeSummaryJson((dir / "no-such-dir" / "s.json").string(), sample());
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("--summary-json " + (dir / "no-such-dir" / "s.json").string()), std::string::npos) << *error;
  std::filesystem::remove_all(dir);
}
