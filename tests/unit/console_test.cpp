#include "supervisor/analysis/console.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/cli.h"

using namespace sshsoak;

namespace {

std::string printed(const Json& summary) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&buf, &size);
  printSummary(out, summary, "run.jsonl");
  std::fclose(out);
  std::string text(buf, size);
  std::free(buf);
  return text;
}

}  // namespace

TEST(ConsoleSummary, FiguresAbnormalEndsVerdictAndResult) {
  RunModel model({"a:22", "b:22"});
  Json lost = lineHead(0, 1, "b:22", "disconnected");
  lost["cause"] = "reset";
  lost["message"] = "peer reset";
  for (uint32_t i = 0; i < 2; ++i) model.onLine(lineHead(0, i, i ? "b:22" : "a:22", "connected"));
  model.onLine(lost);
  Json s = model.summary(0, 12.34, 7);
  VerdictInputs in = model.verdictInputs();
  auto criteria = evaluate(in, thresholdsOf(cli::Options{}));
  s["verdict"] = verdictJson(criteria);
  s["success"] = allPassed(criteria);

  std::string text = printed(s);
  EXPECT_NE(text.find("\n== sshsoak summary ==\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sessions              2 (1 up at end, 0 in manual reconnect)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("duration              12.3 s\n"), std::string::npos) << text;
  EXPECT_NE(text.find("abnormal ends         1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("reconnects            0 of 1 interrupts (rate 0.0 %, p50 n/a ms, p95 n/a ms)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  session 01 b:22: session lost without recovery (reset: peer reset)\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("harness resources"), std::string::npos) << "no resources in this summary";
  EXPECT_NE(text.find("abnormal_ends                   1  <= 0                   fail   "), std::string::npos) << text;
  EXPECT_NE(text.find("reconnect_rate_pct            0 %  >= 90 %                fail   0 of 1 interrupts\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nresult                FAIL\n"), std::string::npos) << text;
  EXPECT_NE(text.find("event log             run.jsonl (7 lines)\n"), std::string::npos) << text;
}
