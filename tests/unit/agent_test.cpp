// The session state machine's table: the paths the runbook describes are
// allowed, nothing else is.
#include "session_agent/agent.h"

#include <gtest/gtest.h>

using namespace sshsoak::agent;
using S = SessionState;

TEST(SessionState, TheDocumentedPathsAreAllowed) {
  EXPECT_TRUE(transitionAllowed(S::CONNECTING, S::READY));        // connected
  EXPECT_TRUE(transitionAllowed(S::CONNECTING, S::BACKING_OFF));  // attempt failed, retries left
  EXPECT_TRUE(transitionAllowed(S::CONNECTING, S::MANUAL));       // auth, host key, attempts used up
  EXPECT_TRUE(transitionAllowed(S::BACKING_OFF, S::CONNECTING));
  EXPECT_TRUE(transitionAllowed(S::READY, S::LOST));
  EXPECT_TRUE(transitionAllowed(S::LOST, S::BACKING_OFF));  // every reconnect starts with jitter
  EXPECT_TRUE(transitionAllowed(S::LOST, S::MANUAL));       // --max-reconnect-attempts 0
  for (S from : {S::CONNECTING, S::READY, S::LOST, S::BACKING_OFF, S::MANUAL}) {
    EXPECT_TRUE(transitionAllowed(from, S::CLOSING)) << stateName(from);
  }
}

TEST(SessionState, NoShortcuts) {
  EXPECT_FALSE(transitionAllowed(S::LOST, S::CONNECTING));  // no reconnect without backoff
  EXPECT_FALSE(transitionAllowed(S::READY, S::CONNECTING));
  EXPECT_FALSE(transitionAllowed(S::MANUAL, S::BACKING_OFF));  // manual needs a user
  EXPECT_FALSE(transitionAllowed(S::BACKING_OFF, S::READY));
  for (S to : {S::CONNECTING, S::READY, S::LOST, S::BACKING_OFF, S::MANUAL, S::CLOSING}) {
    EXPECT_FALSE(transitionAllowed(S::CLOSING, to)) << stateName(to);
  }
}
