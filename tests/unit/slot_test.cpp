#include "supervisor/run/slot.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

using namespace sshsoak;
namespace asio = boost::asio;

namespace {

const RestartConfig RESTART{.minDelayMs = 200, .maxDelayMs = 30000, .stableUptimeMs = 30000, .maxCrashes = 5,
                            .windowMs = 60000};

// A child process standing in for an agent: it waits to be killed, or exits
// with `code` at once.
pid_t forkChild(std::optional<int> code = std::nullopt) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (code) ::_exit(*code);
    for (;;) ::pause();
  }
  return pid;
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

class SlotTest : public ::testing::Test {
 protected:
  // Gives the slot a child as its agent, with a real pipe for events.
  pid_t attach(Slot& slot, std::optional<int> exitCode = std::nullopt) {
    Pipe events = makePipe();
    Pipe commands = makePipe();
    writeEnds_.push_back(std::move(events.writeEnd));
    pid_t pid = forkChild(exitCode);
    slot.attach(pid, std::move(commands.writeEnd),
                std::make_unique<asio::posix::stream_descriptor>(io_, events.readEnd.release()));
    return pid;
  }

  // The agent dies and the slot starts another one, as the Supervisor does.
  void crashAndRestart(Slot& slot) {
    slot.transition(SlotState::Draining, "agent exited");
    slot.killAgent();
    slot.pipeEnded();
    slot.detach();
    slot.transition(SlotState::Restarting, "restart");
    slot.countRestart();
    attach(slot);
  }

  asio::io_context io_;
  std::vector<UniqueFd> writeEnds_;
};

}  // namespace

TEST_F(SlotTest, ALifeOfCrashRestartAndStop) {
  Slot slot(3, "h:22", RESTART, io_);
  EXPECT_EQ(slot.state(), SlotState::Starting);
  pid_t first = attach(slot);
  slot.transition(SlotState::Running, "first event");
  slot.transition(SlotState::Draining, "agent exited");
  slot.killAgent();
  slot.pipeEnded();
  EXPECT_TRUE(slot.exitedAndDrained());
  slot.detach();
  EXPECT_TRUE(gone(first));
  bool restarted = false;
  slot.scheduleRestart(1, [&] { restarted = true; });
  EXPECT_EQ(slot.state(), SlotState::Restarting);
  io_.run();
  EXPECT_TRUE(restarted);
  slot.countRestart();
  attach(slot);
  EXPECT_EQ(slot.state(), SlotState::Starting);
  EXPECT_EQ(slot.restarts(), 1u);
  slot.transition(SlotState::Draining, "stopping");
  slot.killAgent();
  slot.pipeEnded();
  slot.detach();
  slot.transition(SlotState::Finished, "exit 0");
  EXPECT_TRUE(slot.ended());
}

TEST_F(SlotTest, ATransitionNotInTheTableIsABug) {
  Slot slot(0, "h:22", RESTART, io_);
  EXPECT_THROW(slot.transition(SlotState::Restarting, "no agent yet"), std::logic_error);
  EXPECT_THROW(slot.transition(SlotState::Finished, "no agent yet"), std::logic_error);
  slot.transition(SlotState::Running, "first event");
  EXPECT_THROW(slot.transition(SlotState::Starting, "again"), std::logic_error);
  slot.transition(SlotState::Draining, "exited");
  slot.transition(SlotState::GaveUp, "too many crashes");
  try {
    slot.transition(SlotState::Starting, "restart");
    FAIL() << "GaveUp is final";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("gave up -> starting"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slot.state(), SlotState::GaveUp);
}

TEST_F(SlotTest, ASecondAgentCannotBeAttachedOverARunningOne) {
  Slot slot(0, "h:22", RESTART, io_);
  attach(slot);
  Pipe events = makePipe();
  EXPECT_THROW(slot.attach(4242, UniqueFd(),
                           std::make_unique<asio::posix::stream_descriptor>(io_, events.readEnd.release())),
               std::logic_error);
}

TEST_F(SlotTest, KillAgentKillsAndReaps) {
  Slot slot(0, "h:22", RESTART, io_);
  pid_t pid = attach(slot);
  EXPECT_TRUE(slot.agentRunning());
  slot.killAgent();
  EXPECT_FALSE(slot.agentRunning());
  EXPECT_TRUE(gone(pid));  // reaped, not a zombie
  EXPECT_EQ(slot.exitInfo().signalName(), "SIGKILL");
  slot.killAgent();  // nothing left to kill
}

TEST_F(SlotTest, TryReapSeesAnExitOnce) {
  Slot slot(0, "h:22", RESTART, io_);
  attach(slot, 3);
  bool reaped = false;
  for (int i = 0; i < 500 && !reaped; ++i) {
    reaped = slot.tryReap();
    if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(reaped);
  EXPECT_EQ(slot.exitInfo().code, 3);
  EXPECT_FALSE(slot.tryReap());
  EXPECT_FALSE(slot.exitedAndDrained());  // the pipe has not ended yet
  slot.pipeEnded();
  EXPECT_TRUE(slot.exitedAndDrained());
}

TEST_F(SlotTest, DestroyingASlotKillsItsAgent) {
  pid_t pid;
  {
    Slot slot(0, "h:22", RESTART, io_);
    pid = attach(slot);
  }
  EXPECT_TRUE(gone(pid));
}

TEST_F(SlotTest, ARestartedAgentsStartAndFirstConnectAreMarked) {
  using W = wire::Event::Which;
  Slot slot(0, "h:22", RESTART, io_);
  attach(slot);
  EXPECT_EQ(slot.restartMark(W::STARTED), std::nullopt);
  EXPECT_EQ(slot.restartMark(W::CONNECTED), std::nullopt);
  crashAndRestart(slot);
  EXPECT_EQ(slot.restartMark(W::STARTED), 1u);
  EXPECT_EQ(slot.restartMark(W::CONNECTED), 1u);
  EXPECT_EQ(slot.restartMark(W::RECONNECTED), std::nullopt);
  EXPECT_EQ(slot.restartMark(W::CONNECTED), std::nullopt);  // this agent connected already
  crashAndRestart(slot);
  EXPECT_EQ(slot.restartMark(W::CONNECTED), 2u);
}

TEST(SlotState, Names) {
  EXPECT_EQ(slotStateName(SlotState::Starting), "starting");
  EXPECT_EQ(slotStateName(SlotState::Running), "running");
  EXPECT_EQ(slotStateName(SlotState::Draining), "draining");
  EXPECT_EQ(slotStateName(SlotState::Restarting), "restarting");
  EXPECT_EQ(slotStateName(SlotState::GaveUp), "gave up");
  EXPECT_EQ(slotStateName(SlotState::Finished), "finished");
}
