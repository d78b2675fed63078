// `sshsoak report LOG --html FILE` on a log of any content: the logs it reads
// come from other versions, killed runs, full disks and people's editors.
#include "fuzz/fuzz_targets.h"
#include "fuzz/sandbox.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/report.h"

namespace sshsoak::fuzz {

int report(const uint8_t* data, size_t size) {
  std::string path = asFile(data, size);
  // The same calls as report::main, without the printing and the file write.
  report::Input input = report::read({path});
  std::string table = report::markdown(input);
  if (!input.runs.empty()) {
    std::string html = report::renderHtml(input.runs);
    (void)html;
  }
  (void)table;
  return 0;
}

}  // namespace sshsoak::fuzz
