#include "supervisor/analysis/jsonl_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <regex>

using namespace sshsoak;

namespace {

class JsonlReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("sshsoak-reader-" + std::to_string(::getpid()))).string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write(const std::string& text) { std::ofstream(path_) << text; }
  std::string path_;
};

}  // namespace

TEST_F(JsonlReaderTest, ReadsEveryEventLineSkippingEmptyOnes) {
  write("{\"event\":\"a\"}\n\n{\"event\":\"b\",\"n\":1}\n");
  auto file = readJsonl(path_);
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(file->lines.size(), 2u);
  EXPECT_EQ(file->lines[1]["n"], 1);
  EXPECT_FALSE(file->damagedLine.has_value());
}

TEST_F(JsonlReaderTest, StopsAtTheFirstDamagedLineAndNamesIt) {
  // Line 3 is cut (a run killed mid-write); line 2 parses but is no event.
  write("{\"event\":\"a\"}\n{\"event\":\"b\"}\n{\"event\":\"c\",\"det\n{\"event\":\"d\"}\n");
  auto file = readJsonl(path_);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->lines.size(), 2u);
  EXPECT_EQ(*file->damagedLine, 3u);
  write("{\"event\":\"a\"}\n[1,2]\n");
  EXPECT_EQ(*readJsonl(path_)->damagedLine, 2u);
  write("{\"event\":\"a\"}\n{\"no_event\":1}\n");
  EXPECT_EQ(*readJsonl(path_)->damagedLine, 2u);
}

TEST_F(JsonlReaderTest, ReadsFromAnOffset) {
  std::string first = "{\"event\":\"earlier run\"}\n";
  write(first + "{\"event\":\"this run\"}\n");
  auto file = readJsonl(path_, static_cast<std::streamoff>(first.size()));
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(file->lines.size(), 1u);
  EXPECT_EQ(file->lines[0]["event"], "this run");
}

TEST_F(JsonlReaderTest, AFileThatCannotBeOpenedIsAnErrorValue) {
  auto file = readJsonl(path_ + ".nope");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().errnum, ENOENT);
  EXPECT_NE(file.error().text().find(".nope: cannot open: "), std::string::npos) << file.error().text();
}

TEST(Field, MissingFieldsAndNonObjectsReadAsNull) {
  Json j = {{"a", 1}, {"s", "x"}};
  EXPECT_EQ(field(j, "a"), 1);
  EXPECT_TRUE(field(j, "b").is_null());
  EXPECT_TRUE(field(Json::array(), "a").is_null());
  EXPECT_EQ(textField(j, "s"), "x");
  EXPECT_EQ(textField(j, "a"), "");
}

// Issue 15: what `report` cannot use is named (field, value as in the log).
TEST(LineProblem, NamesTheFieldAndTheValueAsTheLogHasIt) {
  auto problem = [](const std::string& text) { return lineProblem(Json::parse(text)).value_or(""); };
  std::string head = R"("ts":"2026-01-01T00:00:00.000000+00:00",)";
  EXPECT_EQ(problem("{" + head + R"("event":"connected","session_id":3,"success":true})"), "");
  EXPECT_EQ(problem("{" + head + R"("event":"connected","session_id":-5})"), "field session_id: -5 is not a session number");
  EXPECT_EQ(problem("{" + head + R"("event":"connected","session_id":4294967296})"),
            "field session_id: 4294967296 is not a session number");
  EXPECT_EQ(problem("{" + head + R"("event":"connected","session_id":1.5})"), "field session_id: 1.5 is not a session number");
  EXPECT_EQ(problem("{" + head + R"("event":"bogus"})"), "field event: \"bogus\" is not an event sshsoak writes");
  EXPECT_EQ(problem("{" + head + R"("event":5})"), "field event: 5 is not a string");
  EXPECT_EQ(problem(R"({"ts":1,"event":"summary"})"), "field ts: 1 is not a timestamp string");
  EXPECT_EQ(problem("{" + head + R"("event":"summary","abnormal_ends":-5})"), "field abnormal_ends: -5 is not a count");
  EXPECT_EQ(problem("{" + head + R"("event":"summary","verdict":{"a":1}})"),
            "field verdict: {\"a\":1} is not a list of criteria");
  EXPECT_EQ(problem("{" + head + R"("event":"summary","verdict":[{"criterion":"x","measured":"high"}]})"),
            "field verdict: [{\"criterion\":\"x\",\"measured\":\"high\"}] has a measured that is not a number");
  EXPECT_EQ(problem("{" + head + R"("event":"connected","success":"yes"})"), "field success: \"yes\" is not true or false");
  EXPECT_EQ(problem("[1]"), "not a JSON object");
  EXPECT_EQ(problem(R"({"ts":"x"})"), "field event: missing");
}

TEST(CountField, NeverWrapsANegativeOrOverflowingNumber) {
  Json j = Json::parse(R"({"neg":-5,"big":1e30,"frac":2.5,"ok":7,"str":"7","huge":18446744073709551615})");
  EXPECT_FALSE(countField(j, "neg"));
  EXPECT_FALSE(countField(j, "big"));
  EXPECT_FALSE(countField(j, "frac"));
  EXPECT_FALSE(countField(j, "str"));
  EXPECT_FALSE(countField(j, "missing"));
  EXPECT_EQ(countField(j, "ok"), 7u);
  EXPECT_EQ(countField(j, "huge"), UINT64_MAX);
  EXPECT_FALSE(countField(j, "huge", UINT32_MAX));
}

// Every line the supervisor writes is one `report` reads: an event name
// missing from knownEvents() would have its lines skipped as unknown. The
// names are taken from the supervisor's own sources (each run-level line is
// made by lineHead(..., "NAME")), so a new line cannot be forgotten.
TEST(KnownEvents, EveryLineTheSupervisorWritesIsKnownToTheReport) {
  namespace fs = std::filesystem;
  // lineHead(..., "NAME") (or a choice of names) and j["event"] = "NAME".
  const std::regex made(R"re(lineHead\(([^;]*)\);|\["event"\] = ("[a-z_]+"))re");
  const std::regex name(R"re("([a-z_]+)")re");
  int found = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(SSHSOAK_SOURCE_DIR) / "supervisor")) {
    if (entry.path().extension() != ".cpp") continue;
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::sregex_iterator it(text.begin(), text.end(), made), end; it != end; ++it) {
      std::string args = (*it)[1].matched ? (*it)[1].str() : (*it)[2].str();
      for (std::sregex_iterator n(args.begin(), args.end(), name); n != end; ++n) {
        ++found;
        EXPECT_TRUE(sshsoak::isKnownEvent((*n)[1].str())) << (*n)[1].str() << " (" << entry.path() << ")";
      }
    }
  }
  EXPECT_GT(found, 15) << "no lineHead(..., \"NAME\") found: has the pattern changed?";
}
