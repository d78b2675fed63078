// The HTML report of a real run, opened in a real headless browser
// (Debian's chromium): it renders to a PNG without console errors and
// fetches nothing from the network.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

TEST_F(SshdTest, HtmlReportRendersInHeadlessChromiumWithoutConsoleErrors) {
  ASSERT_EQ(::access("/usr/bin/chromium", X_OK), 0)
      << "this test needs Debian's chromium to render the report: scripts/setup.sh installs it";
  std::string html = workDir_ + "/report.html";
  auto r = runSoak(soakArgs({"--sessions", "3", "--duration-secs", "8", "--drop", "3", "--html", html,
                             "--sample-interval-secs", "1"}));
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  EXPECT_NE(r.out.find("HTML report: " + html), std::string::npos) << r.out;
  std::ifstream in(html);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string page = ss.str();
  ASSERT_FALSE(page.empty());
  EXPECT_NE(page.find("session 2"), std::string::npos);
  EXPECT_NE(page.find("injected drop"), std::string::npos);
  EXPECT_NE(page.find("Harness memory"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos) << "self-contained: nothing to fetch";

  std::string png = workDir_ + "/report.png", log = workDir_ + "/chromium.log";
  std::string cmd = "timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                    "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=" +
                    workDir_ + "/chromium-profile --enable-logging=stderr --v=0 --window-size=1000,1800 --screenshot=" +
                    png + " file://" + html + " >" + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream logIn(log);
  std::stringstream logText;
  logText << logIn.rdbuf();
  ASSERT_EQ(rc, 0) << logText.str();
  struct stat st{};
  ASSERT_EQ(::stat(png.c_str(), &st), 0) << logText.str();
  EXPECT_GT(st.st_size, 10'000) << "the screenshot is suspiciously small";
  // Console messages are logged as CONSOLE(...); the dbus noise of a
  // machine without a session bus is not the page's.
  EXPECT_EQ(logText.str().find("CONSOLE"), std::string::npos) << logText.str();
  EXPECT_EQ(logText.str().find("Uncaught"), std::string::npos) << logText.str();
}
