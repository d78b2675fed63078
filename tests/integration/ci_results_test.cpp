// Issue 17: --junit and --summary-json on a real run against the fixture's
// sshd and on `sshsoak report`, read back by a real JUnit reader
// (junitparser, Debian's python3-junitparser: read_junit.py beside this file)
// and checked against tests/data/junit.xsd by xmllint.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

// A run id with every character XML must escape, and a quote of each kind.
const std::string HOSTILE_ID = "ci<&>\"'run";

struct Command {
  int status = -1;
  std::string out;
};

Command capture(const std::string& command) {
  Command c;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return c;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
  c.status = ::pclose(p);
  return c;
}

std::string shellQuoted(const std::string& s) { return "'" + s + "'"; }

// What a CI server's JUnit reader makes of the file, plus the schema check.
Json readJunit(const std::string& path) {
  Command schema = capture("xmllint --noout --schema " + shellQuoted(std::string(SSHSOAK_SOURCE_DIR) + "/tests/data/junit.xsd") +
                           " " + shellQuoted(path));
  EXPECT_EQ(schema.status, 0) << schema.out;
  Command read = capture("/usr/bin/python3 " + shellQuoted(std::string(SSHSOAK_SOURCE_DIR) + "/tests/integration/read_junit.py") +
                         " " + shellQuoted(path));
  EXPECT_EQ(read.status, 0) << read.out;
  try {
    return Json::parse(read.out);
  } catch (const std::exception&) {
    ADD_FAILURE() << "read_junit.py printed no JSON: " << read.out;
    return Json::object();
  }
}

Json caseNamed(const Json& suite, const std::string& name) {
  for (const auto& c : suite["cases"]) {
    if (c["name"] == name) return c;
  }
  return Json(nullptr);
}

}  // namespace

// A failing criterion (memory under 1 MB cannot pass) shows as a failure
// with measured vs threshold; the live run's file and report's agree; the
// summary document carries the same verdict and the exit code.
TEST_F(SshdTest, JunitAndSummaryJsonAreReadByAJunitReaderWithTheFailedCriterion) {
  std::string junit = workDir_ + "/junit.xml", summaryJson = workDir_ + "/summary.json";
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "3", "--max-memory-mb", "1", "--run-id", HOSTILE_ID,
                             "--junit", junit, "--summary-json", summaryJson}),
                   60);
  ASSERT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.err;
  auto summaries = linesOf(r.lines, "summary");
  ASSERT_EQ(summaries.size(), 1u);
  const Json& summary = summaries[0];

  Json x = readJunit(junit);
  ASSERT_EQ(x["suites"].size(), 1u) << x.dump();
  const Json& suite = x["suites"][0];
  EXPECT_EQ(suite["name"], HOSTILE_ID);  // escaped on writing, the same string on reading
  EXPECT_EQ(suite["tests"].get<size_t>(), summary["verdict"].size());
  EXPECT_EQ(suite["properties"]["sessions"], "2");
  EXPECT_EQ(suite["properties"]["exit_code"], "1");
  EXPECT_EQ(suite["properties"]["run_id"], HOSTILE_ID);
  int failed = 0, skipped = 0;
  for (const auto& c : summary["verdict"]) {
    Json tc = caseNamed(suite, c["criterion"]);
    ASSERT_TRUE(tc.is_object()) << c["criterion"] << " has no testcase: " << x.dump();
    std::string expected = c["result"] == "fail" ? "failure" : c["result"] == "pass" ? "passed" : "skipped";
    EXPECT_EQ(tc["result"], expected) << tc.dump();
    failed += c["result"] == "fail";
    skipped += c["result"] == "n/a";
  }
  EXPECT_EQ(suite["failures"], failed);
  EXPECT_EQ(suite["skipped"], skipped);
  Json memory = caseNamed(suite, "memory_mb");
  ASSERT_EQ(memory["result"], "failure") << memory.dump();
  std::string message = memory["message"];
  EXPECT_EQ(message.rfind("memory_mb: measured ", 0), 0u) << message;
  EXPECT_NE(message.find(" MB, threshold < 1 MB"), std::string::npos) << message;

  std::ifstream in(summaryJson);
  Json doc = Json::parse(in);
  EXPECT_EQ(doc["format"], "sshsoak-summary/1");
  EXPECT_EQ(doc["run_id"], HOSTILE_ID);
  EXPECT_EQ(doc["state"], "complete");
  EXPECT_EQ(doc["exit_code"], exit_code::CRITERIA_FAILED);
  EXPECT_EQ(doc["success"], false);
  EXPECT_EQ(doc["verdict"], summary["verdict"]);
  EXPECT_EQ(doc["settings"]["sessions"], 2);
  EXPECT_NE(std::find(doc["failed_criteria"].begin(), doc["failed_criteria"].end(), "memory_mb"),
            doc["failed_criteria"].end());

  // `sshsoak report` on the log: the same verdict, the same cases.
  std::string junit2 = workDir_ + "/report-junit.xml", summary2 = workDir_ + "/report-summary.json";
  Command rep = capture(std::string(SSHSOAK_BIN) + " report " + shellQuoted(logPath_) + " --junit " + shellQuoted(junit2) +
                        " --summary-json " + shellQuoted(summary2));
  ASSERT_EQ(rep.status, 0) << rep.out;
  Json y = readJunit(junit2);
  ASSERT_EQ(y["suites"].size(), 1u);
  EXPECT_EQ(y["suites"][0]["cases"], suite["cases"]);
  std::ifstream in2(summary2);
  Json doc2 = Json::parse(in2);
  EXPECT_EQ(doc2["verdict"], doc["verdict"]);
  EXPECT_EQ(doc2["exit_code"], exit_code::CRITERIA_FAILED);
}

// A file that cannot be written is exit 3 naming it; the run's figures are
// still on the console, and the other file is still written.
TEST_F(SshdTest, AJunitFileThatCannotBeWrittenIsExit3NamingThePath) {
  std::string dirAsFile = workDir_ + "/a-directory";
  std::filesystem::create_directory(dirAsFile);
  std::string summaryJson = workDir_ + "/summary.json";
  auto r = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2", "--junit", dirAsFile, "--summary-json",
                             summaryJson}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::BAD_INPUT) << r.err;
  EXPECT_NE(r.err.find("--junit " + dirAsFile), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("== verdict =="), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(summaryJson));

  // At start: a directory that does not exist is exit 3 before anything runs.
  auto early = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2", "--summary-json",
                                 workDir_ + "/no-such-dir/s.json"}),
                       30);
  EXPECT_EQ(early.exitCode, exit_code::BAD_INPUT) << early.err;
  EXPECT_NE(early.err.find("--summary-json " + workDir_ + "/no-such-dir/s.json"), std::string::npos) << early.err;

  // report: the same, and --summary-json over several runs is a usage error.
  Command rep = capture(std::string(SSHSOAK_BIN) + " report " + shellQuoted(logPath_) + " --junit " + shellQuoted(dirAsFile));
  EXPECT_EQ(WEXITSTATUS(rep.status), exit_code::BAD_INPUT) << rep.out;
  EXPECT_NE(rep.out.find("--junit " + dirAsFile), std::string::npos) << rep.out;
}

// A run killed at any moment keeps its last checkpoint's CI results, and
// they say it did not end: a failed run_complete case, state "checkpoint".
TEST_F(SshdTest, AKilledRunKeepsItsCheckpointsJunitWithAFailedRunComplete) {
  std::string junit = workDir_ + "/junit.xml", summaryJson = workDir_ + "/summary.json";
  SoakProcess soak(soakArgs({"--sessions", "1", "--duration-secs", "60", "--checkpoint-secs", "1", "--junit", junit,
                             "--summary-json", summaryJson}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "checkpoint").empty(); }, 30)) << soak.err();
  // The files follow the checkpoint line; the next checkpoint comes in 1 s.
  for (int i = 0; i < 50 && !std::filesystem::exists(summaryJson); ++i) ::usleep(100'000);
  ::kill(soak.pid(), SIGKILL);
  soak.wait(10);
  // A SIGKILLed supervisor cannot remove its token-bucket segment (the next
  // run would: supervision_test checks that); the teardown counts it.
  for (const auto& name : listDevShm()) {
    if (name.rfind("sshsoak-" + std::to_string(soak.pid()) + "-", 0) == 0) std::filesystem::remove("/dev/shm/" + name);
  }
  Json x = readJunit(junit);
  ASSERT_EQ(x["suites"].size(), 1u) << x.dump();
  Json rc = caseNamed(x["suites"][0], "run_complete");
  ASSERT_EQ(rc["result"], "failure") << x.dump();
  EXPECT_EQ(rc["message"].get<std::string>().rfind("the run has not ended: figures from checkpoint ", 0), 0u)
      << rc.dump();
  std::ifstream in(summaryJson);
  Json doc = Json::parse(in);
  EXPECT_EQ(doc["state"], "checkpoint");
  EXPECT_TRUE(doc["exit_code"].is_null());
  EXPECT_EQ(doc["success"], false);
}

// A run that aborts after run_started (here: --pid-file names a directory,
// exit 3) still gives CI a failed result saying why, and scripts its code.
TEST_F(SshdTest, ARunAbortedAfterItStartedStillGivesCiAFailedResult) {
  std::string junit = workDir_ + "/junit.xml", summaryJson = workDir_ + "/summary.json";
  std::string dirAsPidFile = workDir_ + "/pid-dir";
  std::filesystem::create_directory(dirAsPidFile);
  auto r = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2", "--pid-file", dirAsPidFile, "--junit", junit,
                             "--summary-json", summaryJson}),
                   30);
  ASSERT_EQ(r.exitCode, exit_code::BAD_INPUT) << r.err;
  ASSERT_EQ(linesOf(r.lines, "run_aborted").size(), 1u);
  Json x = readJunit(junit);
  Json rc = caseNamed(x["suites"][0], "run_complete");
  ASSERT_EQ(rc["result"], "failure") << x.dump();
  EXPECT_NE(rc["message"].get<std::string>().find("--pid-file " + dirAsPidFile), std::string::npos) << rc.dump();
  std::ifstream in(summaryJson);
  Json doc = Json::parse(in);
  EXPECT_EQ(doc["state"], "aborted");
  EXPECT_EQ(doc["exit_code"], exit_code::BAD_INPUT);
}
