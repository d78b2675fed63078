// sshsoak's command line and the texts inside it: --drop, --fault-cmd and
// the --jobs-file. Wrong input must be a UsageError naming it, never a crash,
// an exception, a hang or an allocation the size of the input squared.
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"
#include "fuzz/sandbox.h"
#include "supervisor/cli.h"

namespace sshsoak::fuzz {

namespace {

std::optional<std::string> fuzzEnv(const std::string& name) {
  if (name == "SSHSOAK_FUZZ_PASSPHRASE") return std::string("fuzz");
  return std::nullopt;
}

// A path the input names outside the sandbox is moved into it: a parse
// creates the --log-path file and checks others, and the fuzzer runs as root.
std::string confined(std::string arg) {
  for (size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '/' && (i == 0 || arg[i - 1] == '=')) {
      arg.insert(i, sandboxDir());
      i += sandboxDir().size();
    }
  }
  return arg;
}

}  // namespace

int cli(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"sshsoak"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n') {
      args.push_back(confined(std::move(current)));
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) args.push_back(confined(std::move(current)));
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  {
    InSandbox here;
    auto parsed = cli::parse(static_cast<int>(args.size()), argv.data(), fuzzEnv);
    (void)parsed;
  }
  clearSandbox();
  return 0;
}

int dropSpec(const uint8_t* data, size_t size) {
  auto d = cli::parseDropSpec(std::string(reinterpret_cast<const char*>(data), size));
  if (d) (void)d->text();
  return 0;
}

int faultCmd(const uint8_t* data, size_t size) {
  auto f = cli::parseFaultCommand(std::string(reinterpret_cast<const char*>(data), size));
  (void)f;
  return 0;
}

int faultSpec(const uint8_t* data, size_t size) {
  auto spec = parseFaultSpec(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!spec) return 0;
  auto again = parseFaultSpec(spec->text());
  // The round trip is the parser's promise: a break is a bug, so a crash.
  if (!again || !(*again == *spec)) __builtin_trap();
  (void)faultActiveAt(spec->when, 123456);
  return 0;
}

int jobsFile(const uint8_t* data, size_t size) {
  std::string path = asFile(data, size);
  for (bool skipBad : {false, true}) {
    auto jobs = cli::readJobsFile(path, skipBad);
    (void)jobs;
  }
  return 0;
}

}  // namespace sshsoak::fuzz
