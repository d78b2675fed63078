// A file replaced whole or not at all: written to a temporary file in the
// same directory, flushed to disk, then renamed over the old one. A reader
// (a browser open on the HTML report) sees the old or the new file, never a
// half-written one, and a SIGKILL or a reboot mid-write leaves the old one.
#pragma once

#include <string>
#include <string_view>

#include "shared/result.h"

namespace sshsoak {

// The error names the path and what failed ("--html /x/r.html: cannot
// create /x/.r.html.tmp-123: Permission denied").
Status<std::string> writeFileAtomically(const std::string& path, std::string_view content);

}  // namespace sshsoak
