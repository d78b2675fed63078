#include "supervisor/analysis/jsonl_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace sshsoak {

std::string ReadError::text() const { return path + ": cannot open: " + std::strerror(errnum); }

Result<JsonlFile, ReadError> readJsonl(const std::string& path, std::streamoff offset) {
  std::ifstream in(path);
  if (!in) return fail(ReadError{path, errno});
  if (offset > 0) in.seekg(offset);
  JsonlFile file;
  std::string text;
  size_t lineNo = 0;
  while (std::getline(in, text)) {
    ++lineNo;
    if (text.empty()) continue;
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("event")) {
      file.damagedLine = lineNo;
      break;
    }
    file.lines.push_back(std::move(j));
  }
  return file;
}

const Json& field(const Json& j, const char* key) {
  static const Json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::string textField(const Json& j, const char* key) {
  const Json& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

}  // namespace sshsoak
