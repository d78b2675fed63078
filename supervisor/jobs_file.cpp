// --jobs-file: one job a JSON line (the format is in cli.h and
// docs/reference.md, "Jobs"). Read whole at start, so that a bad line is
// named before anything runs, not half an hour in.
#include <fstream>
#include <nlohmann/json.hpp>

#include "supervisor/cli.h"
#include "supervisor/exit_codes.h"

namespace sshsoak::cli {

namespace {

constexpr size_t MAX_COMMANDS_PER_JOB = 1000;
constexpr uint32_t MAX_TIMEOUT_SECS = 86400;

struct LineError {
  std::string field;
  std::string message;
};

// "[user@]host[:port]".
Result<std::pair<std::string, Target>, LineError> parseJobTarget(const std::string& text) {
  std::string user;
  std::string rest = text;
  if (auto at = text.find('@'); at != std::string::npos) {
    user = text.substr(0, at);
    rest = text.substr(at + 1);
    if (user.empty()) return fail(LineError{"target", "'" + text + "': no user before '@'"});
  }
  auto t = parseTarget(rest);
  if (!t) {
    return fail(LineError{"target", "'" + text + "': expected [user@]host[:port], e.g. admin@10.0.0.5:22"});
  }
  return std::make_pair(user, *t);
}

Result<JobSpec, LineError> parseJobLine(const std::string& text, uint32_t lineNo) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(LineError{"", "not a JSON object (one job a line: {\"commands\": [\"uptime\"]})"});
  }
  JobSpec job;
  job.line = lineNo;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "commands") {
      if (!v.is_array() || v.empty()) return fail(LineError{key, "must be a non-empty array of command strings"});
      if (v.size() > MAX_COMMANDS_PER_JOB) {
        return fail(LineError{key, "has " + std::to_string(v.size()) + " commands; at most " +
                                       std::to_string(MAX_COMMANDS_PER_JOB)});
      }
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string() || v[i].get<std::string>().find_first_not_of(" \t") == std::string::npos) {
          return fail(LineError{key + "[" + std::to_string(i) + "]", "must be a non-empty string"});
        }
        job.commands.push_back(v[i].get<std::string>());
      }
    } else if (key == "target") {
      if (!v.is_string()) return fail(LineError{key, "must be a string \"[user@]host[:port]\""});
      auto t = parseJobTarget(v.get<std::string>());
      if (!t) return fail(std::move(t.error()));
      job.user = t->first;
      job.target = t->second;
    } else if (key == "id") {
      if (v.is_string()) job.name = v.get<std::string>();
      else if (v.is_number_integer()) job.name = v.dump();
      else return fail(LineError{key, "must be a string or an integer"});
    } else if (key == "timeout_secs") {
      if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > MAX_TIMEOUT_SECS) {
        return fail(LineError{key, "must be a whole number of seconds from 1 to " + std::to_string(MAX_TIMEOUT_SECS)});
      }
      job.commandTimeoutMs = static_cast<uint32_t>(v.get<uint64_t>() * 1000);
    } else {
      return fail(LineError{key, "unknown field (known: commands, target, id, timeout_secs)"});
    }
  }
  if (job.commands.empty()) return fail(LineError{"commands", "missing (the job's commands, e.g. [\"uptime\"])"});
  return job;
}

}  // namespace

Result<JobsFileContents, UsageError> readJobsFile(const std::string& path, bool skipBad) {
  std::ifstream in(path);
  if (!in) return fail(UsageError{exit_code::BAD_INPUT, "sshsoak: --jobs-file " + path + ": cannot be read"});
  JobsFileContents out;
  std::string text;
  uint32_t lineNo = 0;
  while (std::getline(in, text)) {
    ++lineNo;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto job = parseJobLine(text, lineNo);
    if (job) {
      out.jobs.push_back(std::move(*job));
      continue;
    }
    const LineError& e = job.error();
    if (!skipBad) {
      return fail(UsageError{exit_code::BAD_INPUT,
                             "sshsoak: --jobs-file " + path + " line " + std::to_string(lineNo) +
                                 (e.field.empty() ? "" : ", field \"" + e.field + "\"") + ": " + e.message +
                                 "\n(fix the line, or pass --skip-bad-jobs to run the others and log the bad ones)"});
    }
    out.rejected.push_back(RejectedJob{lineNo, e.field, e.message});
  }
  if (in.bad()) return fail(UsageError{exit_code::BAD_INPUT, "sshsoak: --jobs-file " + path + ": read error"});
  return out;
}

}  // namespace sshsoak::cli
