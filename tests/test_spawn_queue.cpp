// Spawn pacing (issue 16, SupervisorOptions::spawn_slice), with real
// children: a burst of spawn() calls leaves the loop free between slices;
// a queued invocation has no pid, never starts when killed or dropped
// first, and carries a failed start as its result; bad input and a missing
// binary still throw from spawn(); teardown with a full queue leaves no
// child, no handle and no fd; a timer that spawns and overruns its period
// does not keep exits from being handled.
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

class SpawnQueueTest : public ProcessTest {
 protected:
  // So small that every spawn after the first of a turn is queued.
  static SupervisorOptions tiny_slice() {
    SupervisorOptions o;
    o.spawn_slice = std::chrono::microseconds(1);
    return o;
  }

  std::string temp_path(const std::string& leaf) {
    return "/tmp/payloadrun-spawnq-" + std::to_string(::getpid()) + "-" + leaf;
  }

  static Payload touch_payload(const std::string& file) {
    Payload p = Payload::binary_payload("touch", "/bin/sh");
    p.default_args = {"-c", "echo ran > '" + file + "'"};
    return p;
  }

  static std::size_t queued(const std::vector<PayloadHandle>& hs) {
    std::size_t n = 0;
    for (const auto& h : hs) n += !h.pid().has_value() && !h.done();
    return n;
  }
};

TEST_F(SpawnQueueTest, ABurstIsStartedOverSeveralLoopTurnsWithTimersRunningBetween) {
  SupervisorOptions o;
  o.spawn_slice = std::chrono::microseconds(1000);
  Supervisor& s = sup(o);
  constexpr int n = 300;
  std::vector<PayloadHandle> hs;
  const Payload p = child_payload("burst", {"exit", "0"});
  for (int i = 0; i < n; ++i) hs.push_back(s.payload(p).spawn());
  const std::size_t queued_at_once = queued(hs);
  // ~1 ms of starts at once, the rest later: hundreds of clones do not fit.
  EXPECT_GT(queued_at_once, 0u);
  EXPECT_LT(queued_at_once, static_cast<std::size_t>(n));
  EXPECT_TRUE(hs.front().pid().has_value()) << "the first spawn of a turn is never queued";
  EXPECT_EQ(s.live(), static_cast<std::size_t>(n)) << "queued invocations count as live";

  // A 1 ms timer sees the queue shrink in steps: the loop ran between slices.
  struct Probe {
    std::vector<PayloadHandle>* hs;
    std::set<std::size_t> seen;
  } probe{&hs, {}};
  uv_timer_t t;
  uv_timer_init(&loop_, &t);
  t.data = &probe;
  uv_timer_start(
      &t,
      [](uv_timer_t* h) {
        auto* pr = static_cast<Probe*>(h->data);
        const std::size_t q = queued(*pr->hs);
        pr->seen.insert(q);
        if (q == 0) uv_timer_stop(h);
      },
      1, 1);
  for (int i = 0; i < 20000 && s.live() > 0; ++i) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // its close callback, before `t` goes
  std::size_t intermediate = 0;
  for (std::size_t q : probe.seen) intermediate += q > 0 && q < queued_at_once;
  EXPECT_GE(intermediate, 1u) << "no timer ran while the queue drained";

  std::set<int> pids;
  for (auto& h : hs) {
    ASSERT_TRUE(h.done());
    ASSERT_TRUE(h.pid().has_value());
    pids.insert(*h.pid());
    Completion c = h.wait();
    EXPECT_EQ(c.metrics.exit_code, 0);
    EXPECT_FALSE(c.error.has_value());
    EXPECT_TRUE(c.result.passed);
  }
  EXPECT_EQ(pids.size(), static_cast<std::size_t>(n)) << "every queued invocation ran once";
}

// A repeating timer whose callbacks outlast its period and spawn payloads
// with deadlines: exits are still handled between its runs. (spawn() used
// to update the loop's time to arm the deadline timer; libuv's timer phase
// then found the repeating timer overdue again at once and ran it back to
// back, polling nothing until it stopped: no completion while it ticked.)
TEST_F(SpawnQueueTest, ASpawningTimerThatOverrunsItsPeriodLeavesRoomForExits) {
  Supervisor& s = sup();  // unpaced: each process starts inside spawn()
  const Payload p = child_payload("quick", {"exit", "0"});
  struct State {
    Supervisor* s;
    const Payload* p;
    int ticks = 0;
    int completed = 0;
    int completed_while_ticking = 0;
    bool ticking = true;
  } st{&s, &p};
  constexpr int ticks = 60;
  uv_timer_t t;
  uv_timer_init(&loop_, &t);
  t.data = &st;
  uv_timer_start(
      &t,
      [](uv_timer_t* h) {
        auto* st = static_cast<State*>(h->data);
        const auto until = std::chrono::steady_clock::now() + 3ms;  // outlast the 1 ms period
        while (std::chrono::steady_clock::now() < until) {
        }
        st->s->payload(*st->p).timeout(30s).spawn([st](Completion c) {
          EXPECT_EQ(c.metrics.exit_code, 0);
          ++st->completed;
          if (st->ticking) ++st->completed_while_ticking;
        });
        if (++st->ticks == ticks) {
          st->ticking = false;
          uv_timer_stop(h);
        }
      },
      1, 1);
  for (int i = 0; i < 20000 && (st.ticking || s.live() > 0); ++i) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // its close callback, before `t` goes
  EXPECT_EQ(st.ticks, ticks);
  EXPECT_EQ(st.completed, ticks);
  // Each child exits within a few of the timer's ~3 ms runs.
  EXPECT_GE(st.completed_while_ticking, ticks / 2)
      << "exits waited until the spawning timer stopped";
}

// A loop turn's work shares one spawn_slice: spawn() calls that took it
// leave nothing for the idle handle in the same turn (it used to get a
// slice of its own, so a turn could hold the loop for two), and every later
// turn starts exactly one (its first start always runs, whatever the
// turn's exits took).
TEST_F(SpawnQueueTest, ATurnsSpawnCallsStartsAndExitsShareOneSlice) {
  Supervisor& s = sup(tiny_slice());
  constexpr std::size_t n = 8;
  std::vector<PayloadHandle> hs;
  for (std::size_t i = 0; i < n; ++i) hs.push_back(s.payload(child_payload("quick", {"exit", "0"})).spawn());
  ASSERT_EQ(queued(hs), n - 1);
  struct Turns {
    std::vector<PayloadHandle>* hs;
    std::vector<std::size_t> started;  // after each turn
  } tr{&hs, {}};
  uv_check_t check;  // once a turn, after its poll phase
  uv_check_init(&loop_, &check);
  check.data = &tr;
  uv_check_start(&check, [](uv_check_t* h) {
    auto* t = static_cast<Turns*>(h->data);
    t->started.push_back(t->hs->size() - queued(*t->hs));
  });
  for (int i = 0; i < 2000 && queued(hs) > 0; ++i) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // its close callback, before `check` goes
  ASSERT_EQ(queued(hs), 0u);
  ASSERT_FALSE(tr.started.empty());
  EXPECT_EQ(tr.started.front(), 1u) << "the turn whose spawn() calls took the slice started more";
  std::vector<std::size_t> steps;
  for (std::size_t i = 1; i < tr.started.size(); ++i) steps.push_back(tr.started[i] - tr.started[i - 1]);
  EXPECT_THAT(steps, ::testing::Each(1u)) << "a turn started none (the queue stalled) or more than one";
  for (auto& h : hs) {
    Completion c = h.wait();
    EXPECT_EQ(c.metrics.exit_code, 0);
    EXPECT_FALSE(c.error.has_value());
  }
}

TEST_F(SpawnQueueTest, ByDefaultEveryProcessStartsBeforeSpawnReturns) {
  Supervisor& s = sup();
  ASSERT_EQ(s.options().spawn_slice.count(), 0);
  std::vector<PayloadHandle> hs;
  for (int i = 0; i < 50; ++i) hs.push_back(s.payload(child_payload("now", {"exit", "0"})).spawn());
  EXPECT_EQ(queued(hs), 0u);
  for (auto& h : hs) EXPECT_EQ(h.wait().metrics.exit_code, 0);
}

TEST_F(SpawnQueueTest, AQueuedInvocationKilledBeforeItStartsNeverRuns) {
  Supervisor& s = sup(tiny_slice());
  const std::string ran_first = temp_path("first");
  const std::string ran_queued = temp_path("queued");
  std::remove(ran_first.c_str());
  std::remove(ran_queued.c_str());
  PayloadHandle first = s.payload(touch_payload(ran_first)).spawn();
  PayloadHandle second = s.payload(touch_payload(ran_queued)).spawn();
  ASSERT_TRUE(first.pid().has_value());
  ASSERT_FALSE(second.pid().has_value()) << "the second spawn of the turn is queued";
  Completion c = second.kill();
  EXPECT_EQ(c.metrics.exit_code, -1);
  EXPECT_EQ(c.pid, 0);
  ASSERT_TRUE(c.error.has_value());
  EXPECT_THAT(*c.error, HasSubstr("killed before its process started"));
  EXPECT_TRUE(c.metrics.killed) << "kill() stopped it, if before it ever ran";
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_FALSE(c.result.passed);
  EXPECT_EQ(first.wait().metrics.exit_code, 0);
  struct stat st {};
  EXPECT_EQ(::stat(ran_first.c_str(), &st), 0) << "the started one ran";
  EXPECT_NE(::stat(ran_queued.c_str(), &st), 0) << "the killed queued one ran anyway";
  std::remove(ran_first.c_str());
}

TEST_F(SpawnQueueTest, AFailedQueuedStartIsTheResultNotAnException) {
  Supervisor& s = sup(tiny_slice());
  PayloadHandle first = s.payload(child_payload("ok", {"exit", "0"})).spawn();
  std::optional<PayloadHandle> bad;
  ASSERT_NO_THROW(bad.emplace(s.payload(child_payload("nodir", {"exit", "0"}))
                                  .working_dir("/nonexistent-payloadrun-dir")
                                  .spawn()));
  Completion c = bad->wait();
  ASSERT_TRUE(c.error.has_value());
  EXPECT_THAT(*c.error, HasSubstr("/nonexistent-payloadrun-dir"));
  EXPECT_THAT(*c.error, HasSubstr("spawn queue"));
  EXPECT_EQ(c.metrics.exit_code, -1);
  EXPECT_FALSE(c.result.passed);
  EXPECT_EQ(first.wait().metrics.exit_code, 0);

  // Unpaced, the same start failure is thrown by spawn() itself.
  Supervisor& direct = sup(SupervisorOptions{});
  EXPECT_THROW(
      direct.payload(child_payload("nodir", {"exit", "0"})).working_dir("/nonexistent-payloadrun-dir").spawn(),
      Error);
}

TEST_F(SpawnQueueTest, InputErrorsAndAMissingBinaryStillThrowFromSpawnWhenQueued) {
  Supervisor& s = sup(tiny_slice());
  PayloadHandle first = s.payload(child_payload("ok", {"exit", "0"})).spawn();
  try {
    s.payload(Payload::binary_payload("missing", "/nonexistent/payloadrun-no-such-binary")).spawn();
    ADD_FAILURE() << "a missing binary did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found) << e.what();
  }
  EXPECT_THROW(s.payload(child_payload("nul", {"exit", "0"})).arg(std::string("a\0b", 3)).spawn(), Error);
  EXPECT_EQ(s.live(), 1u) << "a refused spawn left something queued";
  EXPECT_EQ(first.wait().metrics.exit_code, 0);
}

// A burst of queued spawns of one binary looks for it once a loop turn; one
// that vanishes within the turn fails at its execve, as its result.
TEST_F(SpawnQueueTest, ABinaryRemovedWithinATurnFailsAtExecThenThrowsOnTheNextTurn) {
  const std::string bin = temp_path("true");
  {
    std::FILE* in = std::fopen("/bin/true", "rb");
    std::FILE* out = std::fopen(bin.c_str(), "wb");
    ASSERT_NE(in, nullptr);
    ASSERT_NE(out, nullptr);
    char buf[65536];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, in)) > 0) ASSERT_EQ(std::fwrite(buf, 1, got, out), got);
    std::fclose(in);
    ASSERT_EQ(std::fclose(out), 0);
    ASSERT_EQ(::chmod(bin.c_str(), 0755), 0);
  }
  Supervisor& s = sup(tiny_slice());
  const Payload p = Payload::binary_payload("copy", bin);
  PayloadHandle first = s.payload(p).spawn();    // starts
  PayloadHandle looked = s.payload(p).spawn();   // queued: the binary was looked for
  ASSERT_FALSE(looked.pid().has_value());
  ASSERT_EQ(std::remove(bin.c_str()), 0);
  PayloadHandle cached = s.payload(p).spawn();   // queued in the same turn: not looked for again
  ASSERT_FALSE(cached.pid().has_value());
  EXPECT_EQ(first.wait().metrics.exit_code, 0);
  Completion c = cached.wait();
  EXPECT_EQ(c.metrics.exit_code, -1);
  ASSERT_TRUE(c.error.has_value());
  EXPECT_THAT(*c.error, HasSubstr("spawn queue")) << *c.error;
  EXPECT_TRUE(looked.wait().error.has_value());
  try {  // a later turn looks again: spawn() throws
    s.payload(p).spawn();
    ADD_FAILURE() << "a missing binary did not throw on a later turn";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found) << e.what();
  }
}

TEST_F(SpawnQueueTest, ShutdownCompletesQueuedCallbacksWithoutStartingThem) {
  Supervisor& s = sup(tiny_slice());
  int done = 0;
  int never_started = 0;
  for (int i = 0; i < 40; ++i) {
    s.payload(child_payload("sleeper", {"sleep", "10000"})).spawn([&](Completion c) {
      ++done;
      never_started += c.pid == 0 && c.error.has_value();
    });
  }
  s.shutdown();
  for (int i = 0; i < 2000 && done < 40; ++i) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_EQ(done, 40);
  EXPECT_EQ(never_started, 39) << "only the turn's first spawn had started";
  EXPECT_THROW(s.payload(child_payload("late", {"exit", "0"})).spawn(), Error);
}

TEST_F(SpawnQueueTest, DroppedQueuedHandlesAndADestroyedSupervisorLeaveNothing) {
  Supervisor& s = sup(tiny_slice());
  {
    std::vector<PayloadHandle> hs;
    for (int i = 0; i < 20; ++i) hs.push_back(s.payload(child_payload("sleeper", {"sleep", "10000"})).spawn());
    hs.erase(hs.begin() + 5, hs.end());  // drop 15 queued ones
    EXPECT_EQ(s.live(), 5u);
    uv_run(&loop_, UV_RUN_NOWAIT);  // the queue starts some of the rest
  }  // the rest dropped: killed (started) or forgotten (queued)
  EXPECT_EQ(s.live(), 0u);
  for (int i = 0; i < 30; ++i) s.payload(child_payload("sleeper", {"sleep", "10000"})).spawn([](Completion) {
    ADD_FAILURE() << "a callback ran after the supervisor was destroyed";
  });
  sup_.reset();  // fixture: no child, loop closes, no fd leaked
}

// The slice bounds the exits and output handled per loop turn too: with a
// 1 us slice every watch-set callback stops after its first event, and
// what it fetched but did not handle must come back on later turns.
TEST_F(SpawnQueueTest, PayloadsEndingAllAtOnceAreHandledOverManyTurnsAndNoneIsLost) {
  Supervisor& s = sup(tiny_slice());
  constexpr int n = 60;
  const std::string go = temp_path("go");
  std::remove(go.c_str());
  std::vector<PayloadHandle> hs;
  for (int i = 0; i < n; ++i) hs.push_back(s.payload(child_payload("waiter", {"wait-file", go})).spawn());
  for (int i = 0; i < 20000 && queued(hs) > 0; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  ASSERT_EQ(queued(hs), 0u);
  // Release them all and let every one end (a zombie, its pipes at EOF)
  // before the loop runs again: n exits and 2n EOFs are ready at once.
  std::FILE* f = std::fopen(go.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto zombie = [](int pid) {
    std::FILE* st = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (st == nullptr) return false;
    char buf[512] = {};
    const std::size_t got = std::fread(buf, 1, sizeof buf - 1, st);
    std::fclose(st);
    const std::string text(buf, got);
    const auto paren = text.rfind(')');
    return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
  };
  int ended = 0;
  for (int tries = 0; tries < 500 && ended < n; ++tries) {
    ended = 0;
    for (const auto& h : hs) ended += zombie(*h.pid());
    if (ended < n) ::usleep(10000);
  }
  ASSERT_EQ(ended, n) << "the payloads did not all end within 5 s";

  struct Turns {
    std::vector<PayloadHandle>* hs;
    std::size_t last = 0;
    std::size_t most = 0;
    int turns = 0;
  } tr{&hs};
  uv_check_t check;  // runs once a loop turn, after the poll phase
  uv_check_init(&loop_, &check);
  check.data = &tr;
  uv_check_start(&check, [](uv_check_t* h) {
    auto* t = static_cast<Turns*>(h->data);
    std::size_t done = 0;
    for (const auto& x : *t->hs) done += x.done();
    t->most = std::max(t->most, done - t->last);
    t->turns += done > t->last;
    t->last = done;
  });
  for (int i = 0; i < 20000 && s.live() > 0; ++i) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);
  std::remove(go.c_str());
  ASSERT_EQ(s.live(), 0u);
  EXPECT_LE(tr.most, 2u) << "one turn handled many exits: the slice did not bound it";
  EXPECT_GE(tr.turns, n / 2);
  for (auto& h : hs) {
    Completion c = h.wait();
    EXPECT_EQ(c.metrics.exit_code, 0);
    EXPECT_FALSE(c.error.has_value());
    EXPECT_FALSE(c.metrics.timed_out);
  }
}

TEST_F(SpawnQueueTest, ACallbackMayDestroyTheSupervisorWhileTheQueueDrains) {
  Supervisor& s = sup(tiny_slice());
  int calls = 0;
  for (int i = 0; i < 10; ++i) {
    s.payload(child_payload("quick", {"exit", "0"})).spawn([&](Completion) {
      ++calls;
      sup_.reset();  // from inside the completion callback
    });
  }
  for (int i = 0; i < 2000 && sup_.has_value(); ++i) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_FALSE(sup_.has_value());
  EXPECT_EQ(calls, 1);
}

}  // namespace
