#include "supervisor/analysis/jsonl_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

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
