#include "supervisor/run/jsonl_log.h"

#include <fcntl.h>

namespace sshsoak {

JsonlLog::JsonlLog(const std::string& path)
    : path_(path),
      fd_(sysCall(("open " + path).c_str(),
                  [&] { return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644); })) {}

void JsonlLog::write(const Json& line) {
  // Invalid UTF-8 from a remote host is replaced, never a reason to throw.
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  text += '\n';
  writeAll(fd_.get(), text.data(), text.size());
  ++lines_;
  if (listener_) listener_(line);
}

}  // namespace sshsoak
