// The libFuzzer targets' bodies (docs/fuzzing.md). Each is a plain function
// so that the fuzzers (fuzz/entry.cpp, built with clang and -DSSHSOAK_FUZZ=ON)
// and the unit test that replays every file under fuzz/corpus/<target>/ and
// fuzz/regressions/<target>/ (tests/unit/fuzz_replay_test.cpp, the normal
// build) run the same code. A body returns 0; a bug is a crash, a sanitizer
// report, an exception that escapes or a hang, never a return value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sshsoak::fuzz {

using Body = int (*)(const uint8_t* data, size_t size);

// Bytes from an agent's event pipe, as Supervisor::onEventBytes reads them:
// FrameReader fed in pieces, each whole frame a wire::Event rendered by
// eventToJson and serialised as the JSONL log writes it.
int frameEvents(const uint8_t* data, size_t size);
// Bytes on an agent's command pipe, as sshsoak-agent reads them: the first
// frame an AgentConfig (AgentSettings::fromWire), the rest Commands
// (JobRequest::fromWire for a job).
int agentFrames(const uint8_t* data, size_t size);
// A JSONL log as `sshsoak report LOG --html X` reads it: report::read (run
// splitting, the run model), the Markdown table and the HTML report.
int report(const uint8_t* data, size_t size);
// sshsoak's command line: argv split on NUL or newline, cli::parse.
int cli(const uint8_t* data, size_t size);
// One --drop text (cli::parseDropSpec).
int dropSpec(const uint8_t* data, size_t size);
// One --fault-cmd text (cli::parseFaultCommand).
int faultCmd(const uint8_t* data, size_t size);
// One --fault SPEC (parseFaultSpec): when it parses, its canonical text
// must parse back to the same value.
int faultSpec(const uint8_t* data, size_t size);
// A --jobs-file (cli::readJobsFile), with and without --skip-bad-jobs.
int jobsFile(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // the directory under fuzz/corpus/ and fuzz/regressions/, and fuzz_<name>
  Body body;
};
const std::vector<Target>& targets();

}  // namespace sshsoak::fuzz
