#include "supervisor/analysis/run_model.h"
#include "supervisor/run/jsonl_log.h"

#include <capnp/message.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/run/exit_status.h"

using namespace sshsoak;

namespace {

// An agent's event as the supervisor logs it: built as a Cap'n Proto event
// and turned into its line by the same eventToJson.
Json eventLine(uint32_t session, const std::string& host, auto fill) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  e.setSuccess(true);
  fill(e);
  return eventToJson(e.asReader(), host);
}

void feed(RunModel& model, uint32_t session, auto fill) {
  model.onLine(eventLine(session, model.session(session).host, fill));
}

// The supervisor's line for an agent's end, as Supervisor::maybeFinished
// writes it.
Json exitLine(uint32_t session, const std::string& host, const ExitInfo& exit, bool crashed) {
  Json j = lineHead(0, session, host, crashed ? "agent_crashed" : "agent_exited");
  j["detail"] = exit.text();
  j["success"] = !crashed;
  j["pid"] = 1234;
  j["exit_code"] = exit.signaled ? Json(nullptr) : Json(exit.code);
  j["signal"] = exit.signaled ? Json(exit.signal) : Json(nullptr);
  j["signal_name"] = exit.signaled ? Json(exit.signalName()) : Json(nullptr);
  j["core_dumped"] = exit.coreDumped;
  j["uptime_ms"] = 10;
  return j;
}

void agentExit(RunModel& model, uint32_t session, const ExitInfo& exit, bool crashed) {
  model.onLine(exitLine(session, model.session(session).host, exit, crashed));
}

ExitInfo killedBy(int sig) {
  ExitInfo e;
  e.signaled = true;
  e.signal = sig;
  return e;
}

}  // namespace

TEST(RunModel, CleanRunHasNoAbnormalEnds) {
  RunModel model({"h:22", "h:22"});
  for (uint32_t i = 0; i < 2; ++i) {
    feed(model, i, [](auto e) { e.initConnected(); });
    agentExit(model, i, ExitInfo{}, false);
  }
  EXPECT_EQ(model.abnormalEnds(), 0u);
  Json s = model.summary(0, 10.0, 5);
  EXPECT_EQ(s["event"], "summary");
  EXPECT_EQ(s["abnormal_ends"], 0);
  EXPECT_EQ(s["global_reconnect_rate_pct"], nullptr);
  EXPECT_EQ(s["success"], true);
  EXPECT_EQ(s["per_session"][0]["state"], "up");
  EXPECT_EQ(s["per_session"][0]["agent_exit"], "exit 0");
}

TEST(RunModel, EachKindOfAbnormalEndCounts) {
  RunModel model({"a:22", "b:22", "c:22", "d:22"});
  feed(model, 0, [](auto e) { e.initConnectFailed().setCategory(wire::FailureCategory::AUTH); });
  feed(model, 1, [](auto e) { e.initConnected(); });
  feed(model, 1, [](auto e) { e.initDisconnected().setCause(wire::DisconnectCause::RESET); });
  feed(model, 2, [](auto e) { e.initConnected(); });
  EXPECT_EQ(stateName(model.stateBeforeExit(2)), "up");
  agentExit(model, 2, killedBy(SIGKILL), true);
  feed(model, 3, [](auto e) { e.initConnected(); });
  EXPECT_EQ(model.abnormalEnds(), 3u);
  EXPECT_NE(model.session(0).abnormalReason().find("never connected"), std::string::npos);
  EXPECT_NE(model.session(0).abnormalReason().find("auth: "), std::string::npos);
  EXPECT_NE(model.session(1).abnormalReason().find("without recovery"), std::string::npos);
  EXPECT_NE(model.session(1).abnormalReason().find("reset: "), std::string::npos);
  EXPECT_NE(model.session(2).abnormalReason().find("SIGKILL"), std::string::npos);
  EXPECT_EQ(model.session(3).abnormalReason(), "");
  Json s = model.summary(0, 1, 1);
  EXPECT_EQ(s["success"], false);
  EXPECT_EQ(s["per_session"][0]["state"], "connect_failing");
  EXPECT_EQ(s["per_session"][1]["state"], "down");
  EXPECT_EQ(s["per_session"][2]["state"], "crashed");
  EXPECT_EQ(s["per_session"][2]["up_at_end"], false);
}

TEST(RunModel, ReconnectFiguresFromReconnectedEvents) {
  RunModel model({"h:22"});
  feed(model, 0, [](auto e) { e.initConnected(); });
  for (int64_t ms : {1000, 3000, 2000}) {
    feed(model, 0, [](auto e) { e.initDisconnected(); });
    feed(model, 0, [ms](auto e) {
      e.initReconnected();
      e.setElapsedMs(ms);
    });
  }
  feed(model, 0, [](auto e) { e.initDisconnected(); });
  Json s = model.summary(0, 1, 1);
  EXPECT_EQ(s["interrupts"], 4);
  EXPECT_EQ(s["reconnects"], 3);
  EXPECT_DOUBLE_EQ(s["global_reconnect_rate_pct"].get<double>(), 75.0);
  EXPECT_EQ(s["global_reconnect_p50_ms"], 2000);
  EXPECT_EQ(s["global_reconnect_p95_ms"], 3000);
  EXPECT_EQ(s["global_reconnect_max_ms"], 3000);
  RunModel::Progress p = model.progress();
  EXPECT_EQ(p.up, 0u);
  EXPECT_EQ(p.reconnecting, 1u);
  EXPECT_EQ(p.reconnects, 3u);
  EXPECT_EQ(*p.reconnectP95Ms, 3000);
}

// The supervisor logs no line when it restarts a slot: the restart shows
// as the next line of the crashed slot.
TEST(RunModel, ARestartIsTheNextAgentsFirstLine) {
  RunModel model({"h:22"});
  feed(model, 0, [](auto e) { e.initStarted(); });
  feed(model, 0, [](auto e) { e.initConnected(); });
  agentExit(model, 0, killedBy(SIGSEGV), true);
  EXPECT_EQ(model.session(0).state, SessionState::CRASHED);
  EXPECT_EQ(model.session(0).restarts, 0u);
  feed(model, 0, [](auto e) { e.initStarted(); });
  EXPECT_EQ(model.session(0).restarts, 1u);
  EXPECT_EQ(model.session(0).state, SessionState::CONNECTING);
  feed(model, 0, [](auto e) { e.initConnected(); });
  agentExit(model, 0, ExitInfo{}, false);
  Json s = model.summary(0, 1, 1);
  EXPECT_EQ(s["agent_crashes"], 1);
  EXPECT_EQ(s["agent_restarts"], 1);
  EXPECT_EQ(s["abnormal_ends"], 1);
  EXPECT_EQ(s["per_session"][0]["abnormal_end"], "1 agent crash(es), restarted and recovered");
}

TEST(RunModel, AnAgentThatCrashesBeforeSpeakingWasRestarting) {
  RunModel model({"h:22"});
  EXPECT_EQ(stateName(model.stateBeforeExit(0)), "starting");
  agentExit(model, 0, killedBy(SIGABRT), true);
  // The restarted agent ends before its first event.
  EXPECT_EQ(stateName(model.stateBeforeExit(0)), "restarting");
  agentExit(model, 0, killedBy(SIGABRT), true);
  EXPECT_EQ(model.session(0).crashes, 2u);
  EXPECT_EQ(model.session(0).restarts, 1u);
  Json gaveUp = lineHead(0, 0, "h:22", "agent_gave_up");
  gaveUp["detail"] = "2 crashes within 60 s (--restart-max 2)" + std::string(GAVE_UP_DETAIL_SUFFIX);
  gaveUp["success"] = false;
  gaveUp["crashes"] = 2;
  gaveUp["restarts"] = 1;
  model.onLine(gaveUp);
  Json s = model.summary(0, 1, 1);
  EXPECT_EQ(s["sessions_gave_up"], 1);
  EXPECT_EQ(s["agent_restarts"], 1);
  EXPECT_EQ(s["abnormal_ends"], 2);
  EXPECT_EQ(s["per_session"][0]["state"], "gave_up");
  EXPECT_EQ(s["per_session"][0]["abnormal_end"], "given up after 2 agent crashes (2 crashes within 60 s (--restart-max 2))");
}

TEST(RunModel, ARestartThatCannotStartIsCountedFromTheGaveUpLine) {
  RunModel model({"h:22"});
  agentExit(model, 0, killedBy(SIGKILL), true);
  Json gaveUp = lineHead(0, 0, "h:22", "agent_gave_up");
  gaveUp["detail"] = "cannot start the agent /x: gone" + std::string(GAVE_UP_DETAIL_SUFFIX);
  gaveUp["crashes"] = 1;
  gaveUp["restarts"] = 1;
  model.onLine(gaveUp);
  EXPECT_EQ(model.session(0).restarts, 1u);
  EXPECT_EQ(model.session(0).gaveUpReason, "cannot start the agent /x: gone");
}

// The same lines give the same model whether it is fed live (the log's
// listener) or from the file afterwards.
TEST(RunModel, FedLiveOrFromTheFileGivesTheSameSummary) {
  std::string path = (std::filesystem::temp_directory_path() / ("sshsoak-model-" + std::to_string(::getpid()))).string();
  std::filesystem::remove(path);
  RunModel live({"a:22", "b:22"});
  {
    JsonlLog log(path);
    log.setListener([&live](const Json& line) { live.onLine(line); });
    Json started = lineHead(0, std::nullopt, "", "run_started");
    started["sessions"] = 2;
    log.write(started);
    for (uint32_t i = 0; i < 2; ++i) {
      log.write(eventLine(i, i ? "b:22" : "a:22", [](auto e) { e.initStarted(); }));
      log.write(eventLine(i, i ? "b:22" : "a:22", [](auto e) { e.initConnected(); }));
      log.write(eventLine(i, i ? "b:22" : "a:22", [](auto e) {
        e.initDisconnected().setCause(wire::DisconnectCause::SILENCE);
      }));
    }
    log.write(eventLine(0, "a:22", [](auto e) {
      e.initReconnected();
      e.setElapsedMs(1500);
    }));
    log.write(exitLine(1, "b:22", killedBy(SIGKILL), true));
    log.write(exitLine(0, "a:22", ExitInfo{}, false));
  }
  auto file = readJsonl(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(file.ok());
  RunModel offline({"a:22", "b:22"});
  for (const auto& l : file->lines) offline.onLine(l);
  EXPECT_EQ(live.summary(0, 5, 9).dump(), offline.summary(0, 5, 9).dump());
  EXPECT_EQ(offline.interrupts(), 2u);
  EXPECT_EQ(offline.sessionsInRun(), 2u);
  EXPECT_EQ(offline.topology(), "A");
  EXPECT_EQ(offline.interruptions().causes.at("silence"), 2u);
}
