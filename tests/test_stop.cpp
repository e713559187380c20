// The graceful stop (PayloadRun::stop_signal/stop_grace, issue 18) with real
// children: a payload that prints its results on SIGINT, one that ignores
// it, kill() with a grace, the whole group signalled, teardown during the
// grace; and output lost to a process that outlives the leader.
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

using Clock = std::chrono::steady_clock;

class StopTest : public ProcessTest, public ::testing::WithParamInterface<SpawnBackend> {
 protected:
  void SetUp() override {
    ProcessTest::SetUp();
    char tmpl[] = "/tmp/payloadrun-stop-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ProcessTest::TearDown();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SupervisorOptions opts() {
    SupervisorOptions o;
    o.backend = GetParam();
    return o;
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  // Runs the loop until `path` exists (the child is set up), at most 20 s.
  bool await_file(const std::string& path) {
    for (int i = 0; i < 4000; ++i) {
      if (::access(path.c_str(), F_OK) == 0) return true;
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  std::string dir_;
};

std::string details_text(const Completion& c) {
  std::string all;
  for (const auto& d : c.result.details) all += d.message + "\n";
  return all;
}

pid_t read_pid(const std::string& path) {
  std::ifstream f(path);
  pid_t pid = 0;
  f >> pid;
  return pid;
}

TEST(StopBuilder, DefaultsAndRefusals) {
  Supervisor s;
  const Payload p = Payload::binary_payload("fio", "true");
  EXPECT_EQ(s.payload(p).effective_stop_signal(), SIGKILL) << "the seed's immediate SIGKILL";
  EXPECT_EQ(s.payload(p).effective_stop_grace(), 0ms);
  EXPECT_EQ(s.payload(p).stop_signal(SIGINT).effective_stop_grace(), PayloadRun::default_stop_grace);
  EXPECT_EQ(s.payload(p).stop_grace(300ms).effective_stop_signal(), SIGTERM);
  EXPECT_EQ(s.payload(p).stop_signal(SIGINT).stop_grace(0ms).effective_stop_grace(), 0ms);
  EXPECT_EQ(s.payload(p).stop_signal(SIGKILL).stop_grace(5s).effective_stop_grace(), 0ms);
  for (int bad : {0, -1, SIGSTOP, SIGRTMAX + 1}) {
    try {
      s.payload(p).stop_signal(bad);
      ADD_FAILURE() << "stop_signal(" << bad << ") accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr("payload 'fio'"));
    }
  }
  try {
    s.payload(p).stop_grace(-1ms);
    ADD_FAILURE() << "a negative grace accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("payload 'fio': stop grace of -1 ms is negative"));
  }
}

TEST_P(StopTest, AtTheDeadlineAPayloadPrintingOnSigintIsExtractedAndChecked) {
  const Payload p = child_payload("fio", {"stop-json", std::to_string(SIGINT), R"({"iops": 1234})"},
                                  output::Json{});
  auto c = sup(opts())
               .payload(p)
               .check(MetricCheck::min("iops", 1000))
               .timeout(1000ms)  // time for the child to install its handler
               .stop_signal(SIGINT)
               .stop_grace(10s)
               .run();
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_FALSE(c.metrics.killed);
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_FALSE(c.metrics.killed_by_signal.has_value());
  EXPECT_EQ(c.metrics.get("iops"), 1234);
  EXPECT_TRUE(c.result.passed) << details_text(c);
  EXPECT_LT(c.metrics.duration, 5s) << "the leader's exit ends the grace";
}

TEST_P(StopTest, APayloadIgnoringTheStopSignalIsKilledAfterTheGrace) {
  const Payload p = child_payload("stubborn", {"ignore-stop", std::to_string(SIGINT)}, output::Json{});
  const auto t0 = Clock::now();
  auto c = sup(opts()).payload(p).timeout(1000ms).stop_signal(SIGINT).stop_grace(600ms).run();
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
  EXPECT_EQ(c.metrics.exit_code, -1);
  EXPECT_GE(took, 1600ms) << "SIGKILL came before the grace was over";
  EXPECT_LT(took, 4s);
}

TEST_P(StopTest, KillWithAGraceKeepsTheResultsAndSaysKilled) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready");
  const Payload p =
      child_payload("fio", {"stop-json", std::to_string(SIGINT), R"({"iops": 77})", ready}, output::Json{});
  PayloadHandle h = s.payload(p).stop_signal(SIGINT).stop_grace(10s).spawn();
  ASSERT_TRUE(await_file(ready));
  const auto t0 = Clock::now();
  auto c = h.kill();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(c.metrics.killed);
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_EQ(c.metrics.get("iops"), 77);
}

TEST_P(StopTest, KillWithoutAStopSignalStaysTheSeedsSigkill) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready");
  // It would print on SIGINT: with the default stop it never gets one.
  const Payload p =
      child_payload("fio", {"stop-json", std::to_string(SIGINT), R"({"iops": 77})", ready}, output::Json{});
  PayloadHandle h = s.payload(p).spawn();
  ASSERT_TRUE(await_file(ready));
  auto c = h.kill();
  EXPECT_TRUE(c.metrics.killed);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
  EXPECT_EQ(c.metrics.size(), 0u);
}

TEST_P(StopTest, TheWholeGroupGetsTheStopSignal) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready");
  const Payload p = child_payload("group", {"stop-group", std::to_string(SIGTERM), ready}, output::Json{});
  PayloadHandle h = s.payload(p).stop_grace(10s).spawn();  // SIGTERM, implied by the grace
  ASSERT_TRUE(await_file(ready));
  auto c = h.kill();
  EXPECT_EQ(c.metrics.get("child_exit"), 42) << "the leader's child did not get SIGTERM: " << c.stdout_text;
  EXPECT_EQ(c.metrics.exit_code, 0);
}

TEST_P(StopTest, TheDeadlineCutsAKillsGraceShort) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready");
  const Payload p = child_payload("stubborn", {"ignore-stop", std::to_string(SIGINT), ready});
  const auto t0 = Clock::now();
  PayloadHandle h = s.payload(p).timeout(1500ms).stop_signal(SIGINT).stop_grace(30s).spawn();
  ASSERT_TRUE(await_file(ready));
  h.kill_async();
  auto c = h.wait();
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(c.metrics.killed);
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 6s);
}

// Destruction (of the Supervisor or of a live handle) during the grace
// kills at once and reaps: the leader and its child are gone.
void expect_gone(pid_t pid) {
  // Not our child (PID 1 reaps it, up to ~2 s late): gone or a zombie.
  char state = process_state(pid);
  for (int i = 0; i < 400 && state != 'X' && state != 'Z'; ++i) {
    std::this_thread::sleep_for(5ms);
    state = process_state(pid);
  }
  EXPECT_TRUE(state == 'X' || state == 'Z') << "pid " << pid << " still runs (state " << state << ")";
}

TEST_P(StopTest, DestroyingTheSupervisorDuringTheGraceLeavesNothingRunning) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready"), pidfile = file("child.pid");
  const Payload p = child_payload("stubborn", {"ignore-stop", std::to_string(SIGINT), ready, pidfile});
  PayloadHandle h = s.payload(p).stop_signal(SIGINT).stop_grace(30s).spawn();
  ASSERT_TRUE(await_file(ready));
  const pid_t leader = *h.pid();
  const pid_t child = read_pid(pidfile);
  ASSERT_GT(child, 0);
  h.kill_async();
  for (int i = 0; i < 20; ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(h.done()) << "it must still be in its grace";
  const auto t0 = Clock::now();
  sup_.reset();
  EXPECT_LT(Clock::now() - t0, 5s) << "destruction waited for the grace";
  EXPECT_EQ(process_state(leader), 'X') << "the leader was reaped";
  expect_gone(child);
  EXPECT_THROW(h.wait(), Error);
  // TearDown: no child of ours left, loop closes, no fd leaked.
}

TEST_P(StopTest, DroppingTheHandleDuringTheGraceKillsAtOnce) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready"), pidfile = file("child.pid");
  const Payload p = child_payload("stubborn", {"ignore-stop", std::to_string(SIGINT), ready, pidfile});
  std::optional<PayloadHandle> h;
  h.emplace(s.payload(p).timeout(100ms).stop_signal(SIGINT).stop_grace(30s).spawn());
  ASSERT_TRUE(await_file(ready));
  const pid_t leader = *h->pid();
  for (int i = 0; i < 40; ++i) {  // the deadline passes: the grace begins
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(h->done());
  const auto t0 = Clock::now();
  h.reset();
  EXPECT_LT(Clock::now() - t0, 5s) << "the drop waited for the grace";
  EXPECT_EQ(s.live(), 0u);
  EXPECT_EQ(process_state(leader), 'X');
  expect_gone(read_pid(pidfile));
}

TEST_P(StopTest, ShutdownStopsGracefullyToo) {
  Supervisor& s = sup(opts());
  const std::string ready = file("ready");
  const Payload p =
      child_payload("fio", {"stop-json", std::to_string(SIGUSR1), R"({"iops": 5})", ready}, output::Json{});
  std::optional<Completion> got;
  s.payload(p).stop_signal(SIGUSR1).stop_grace(10s).spawn([&](Completion c) { got = std::move(c); });
  ASSERT_TRUE(await_file(ready));
  s.shutdown();
  s.run();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->metrics.killed);
  EXPECT_EQ(got->metrics.get("iops"), 5);
}

INSTANTIATE_TEST_SUITE_P(Backends, StopTest, both_backends(), backend_name);

// A leader that exits while its background child still holds stdout:
// ktstr's rule kills the group then, so what the child had not written is
// lost; the result says why its metric is missing.
class LostOutput : public StopTest {};

TEST_P(LostOutput, AHelperOutlivingTheLeaderIsNamedInTheDetail) {
  const Payload p = child_payload("tee-like", {"late-writer", "3000"}, output::Json{});
  const auto t0 = Clock::now();
  auto c = sup(opts()).payload(p).check(MetricCheck::exists("late")).run();
  EXPECT_LT(Clock::now() - t0, 2500ms) << "the group is killed when the leader exits";
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_FALSE(c.result.passed);
  EXPECT_THAT(details_text(c), HasSubstr("metric 'late' not found"));
  EXPECT_THAT(details_text(c),
              HasSubstr("stdout was still open when the process group was killed after the leader exited: "
                        "a process outliving the leader held it; output it had not written is lost"));
  EXPECT_EQ(c.stderr_text, "leader done\n") << "what the leader wrote is kept";
}

TEST_P(LostOutput, NoSuchDetailWhenNothingOutlivedTheLeader) {
  const Payload p = child_payload("plain", {"json", R"({"a": 1})", "some stderr"}, output::Json{});
  auto c = sup(opts()).payload(p).check(MetricCheck::exists("late")).run();
  EXPECT_FALSE(c.result.passed);
  ASSERT_EQ(c.result.details.size(), 1u) << details_text(c);
  EXPECT_THAT(details_text(c), HasSubstr("metric 'late' not found"));
}

TEST_P(LostOutput, APassingResultGetsNoDetail) {
  // fork-hold: the child holds the pipes for 60 s; nothing checked is missing.
  const Payload p = child_payload("forker", {"fork-hold", "60000"}, output::Json{});
  auto c = sup(opts()).payload(p).check(MetricCheck::exists("leader")).run();
  EXPECT_TRUE(c.result.passed);
  EXPECT_TRUE(c.result.details.empty()) << details_text(c);
}

INSTANTIATE_TEST_SUITE_P(Backends, LostOutput, both_backends(), backend_name);

}  // namespace
