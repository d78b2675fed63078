// Every seed and every kept crash input of every fuzz target, replayed through
// the target's body in the normal build (and so under ASan + UBSan in CI's
// sanitizer pass): a bug the fuzzer found stays fixed. docs/fuzzing.md says
// how to add one: copy the input under fuzz/regressions/<target>/.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"

namespace fs = std::filesystem;
using sshsoak::fuzz::Target;

namespace {

std::vector<fs::path> inputsOf(const std::string& target, const char* kind) {
  std::vector<fs::path> out;
  fs::path dir = fs::path(FUZZ_DIR) / kind / target;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().filename() != ".gitkeep") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class FuzzReplay : public testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, EveryCorpusAndRegressionInputRunsClean) {
  const Target& t = GetParam();
  auto corpus = inputsOf(t.name, "corpus");
  // A target without seeds would replay nothing and prove nothing.
  ASSERT_FALSE(corpus.empty()) << "no seeds in " << FUZZ_DIR << "/corpus/" << t.name;
  auto regressions = inputsOf(t.name, "regressions");
  for (const auto* set : {&corpus, &regressions}) {
    for (const auto& path : *set) {
      SCOPED_TRACE(path.string());
      std::string bytes = contents(path);
      EXPECT_NO_THROW(t.body(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, testing::ValuesIn(sshsoak::fuzz::targets()),
                         [](const testing::TestParamInfo<Target>& p) { return std::string(p.param.name); });

}  // namespace
