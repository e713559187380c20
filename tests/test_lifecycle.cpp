// One invocation's life (issue 15), with real children: any callback of ours
// may destroy the Supervisor, drop handles or spawn (run under ASan by CI);
// shutdown() and the destructor do what supervisor.hpp says, sentence by
// sentence; blocking calls from callbacks are refused; handle results are
// recorded at the terminal call, callback results at completion; the
// non-throwing spawn carries the throwing form's error.
#include <signal.h>
#include <sys/wait.h>
#include <uv.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cgroup_util.hpp"
#include "detail/block_pool.hpp"
#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

// Invocation memory (lib/detail/block_pool.hpp): blocks of the first size
// asked for come from prefaulted chunks and are reused once freed; other
// sizes come from the heap; every block is whole, aligned and distinct.
TEST(BlockPool, ServesOneSizeFromChunksReusesFreedBlocksAndLeavesOtherSizesToTheHeap) {
  detail::BlockPool pool;
  constexpr std::size_t size = 1000;
  constexpr std::size_t align = 16;
  void* first = pool.allocate(size, align);
  EXPECT_EQ(pool.chunks(), 1u);
  pool.deallocate(first, size, align);
  EXPECT_EQ(pool.allocate(size, align), first) << "a freed block was not reused";
  void* other = pool.allocate(24, 8);
  EXPECT_EQ(pool.chunks(), 1u) << "a block of another size came from a chunk";
  pool.deallocate(other, 24, 8);
  std::vector<void*> blocks{first};
  for (int i = 0; i < 150; ++i) blocks.push_back(pool.allocate(size, align));
  EXPECT_GE(pool.chunks(), 2u);  // 64 KiB chunks: ~64 blocks of 1000 bytes each
  std::vector<std::uintptr_t> at;
  for (void* b : blocks) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % align, 0u);
    std::memset(b, 0xab, size);  // whole (ASan: not poisoned)
    at.push_back(reinterpret_cast<std::uintptr_t>(b));
  }
  std::sort(at.begin(), at.end());
  for (std::size_t i = 1; i < at.size(); ++i) EXPECT_GE(at[i] - at[i - 1], size) << "blocks overlap";
  const std::size_t chunks = pool.chunks();
  for (void* b : blocks) pool.deallocate(b, size, align);
  for (int i = 0; i < 151; ++i) blocks[static_cast<std::size_t>(i)] = pool.allocate(size, align);
  EXPECT_EQ(pool.chunks(), chunks) << "freed blocks were not reused";
  for (void* b : blocks) pool.deallocate(b, size, align);
}

// How the invocation whose callback acts reaches completion: through which
// libuv entry the callback runs.
enum class Via {
  exit_clone,   // pidfd / stream EOF in the watch set
  exit_uv,      // libuv's process exit callback (uv_spawn backend)
  deadline,     // the deadline timer kills it; the pidfd completes it
  drain_cut,    // the drain-grace timer cuts pipes an escapee holds
  own_cgroup,   // the own cgroup's cgroup.events poll
  on_exit,      // a handle's on_exit() callback
};

// What the callback does.
enum class Act { destroy_supervisor, drop_handle, spawn_more };

std::string via_name(Via v) {
  switch (v) {
    case Via::exit_clone: return "ExitClone";
    case Via::exit_uv: return "ExitUvSpawn";
    case Via::deadline: return "Deadline";
    case Via::drain_cut: return "DrainCut";
    case Via::own_cgroup: return "OwnCgroup";
    case Via::on_exit: return "OnExit";
  }
  return "?";
}

std::string act_name(Act a) {
  switch (a) {
    case Act::destroy_supervisor: return "DestroysSupervisor";
    case Act::drop_handle: return "DropsHandle";
    case Act::spawn_more: return "Spawns";
  }
  return "?";
}

class FromEachCallback : public ProcessTest,
                         public ::testing::WithParamInterface<std::tuple<Via, Act>> {
 protected:
  void TearDown() override {
    ProcessTest::TearDown();
    if (!cgroup_.path.empty()) remove_cgroup_tree(cgroup_.path);
  }
  TestCgroupParent cgroup_;
};

TEST_P(FromEachCallback, IsSafe) {
  const auto [via, act] = GetParam();
  SupervisorOptions o;
  o.drain_grace = 100ms;
  o.backend = via == Via::exit_uv ? SpawnBackend::uv_spawn : SpawnBackend::clone_vfork;
  if (via == Via::own_cgroup) {
    cgroup_ = make_test_cgroup_parent("payloadrun-lifecycle");
    if (cgroup_.path.empty()) PAYLOADRUN_CGROUP_UNAVAILABLE(cgroup_.why);
    o.cgroup_parent = cgroup_.path;
  }
  Supervisor& s = sup(o, 60s);

  // Bystanders the action affects: a live handle and a live callback spawn.
  std::optional<PayloadHandle> bystander = s.payload(child_payload("bystander", {"sleep", "60000"})).spawn();
  int bystander_cb_calls = 0;
  s.payload(child_payload("bystander-cb", {"sleep", "60000"})).spawn([&](Completion) { ++bystander_cb_calls; });

  int acted = 0;
  int spawned_done = -1;
  auto action = [&](Completion c) {
    ++acted;
    EXPECT_EQ(c.payload_name, "actor");
    switch (act) {
      case Act::destroy_supervisor:
        sup_.reset();  // from inside its own callback
        break;
      case Act::drop_handle:
        bystander.reset();  // killed and reaped synchronously
        sup_->shutdown();   // the callback bystander ends too
        break;
      case Act::spawn_more:
        sup_->payload(child_payload("more", {"exit", "3"})).spawn([&](Completion m) {
          spawned_done = m.metrics.exit_code;
          sup_->shutdown();
        });
        break;
    }
  };

  PayloadRun actor = s.payload(child_payload("actor", {"exit", "0"}));
  switch (via) {
    case Via::exit_clone:
    case Via::exit_uv: break;
    case Via::deadline: actor = s.payload(child_payload("actor", {"sleep", "60000"})).timeout(100ms); break;
    case Via::drain_cut: actor = s.payload(child_payload("actor", {"setsid-hold", "400"})); break;
    case Via::own_cgroup: actor = s.payload(child_payload("actor", {"fork-hold", "60000"})).own_cgroup(); break;
    case Via::on_exit: break;
  }
  std::optional<PayloadHandle> actor_handle;
  if (via == Via::on_exit) {
    actor_handle.emplace(actor.spawn());
    actor_handle->on_exit(action);
  } else {
    actor.spawn(action);
  }

  // The host drives its loop; it ends once nothing of ours is active.
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(acted, 1);
  EXPECT_EQ(bystander_cb_calls, act == Act::destroy_supervisor ? 0 : 1)
      << "the destructor never delivers; shutdown() does";
  switch (act) {
    case Act::destroy_supervisor: {
      EXPECT_FALSE(sup_.has_value());
      try {
        bystander->wait();
        ADD_FAILURE() << "wait() after the destruction returned";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Errc::shut_down) << e.what();
      }
      break;
    }
    case Act::drop_handle: EXPECT_FALSE(bystander.has_value()); break;
    case Act::spawn_more: {
      EXPECT_EQ(spawned_done, 3);
      const Completion b = bystander->wait();  // killed by shutdown(), result delivered
      EXPECT_EQ(b.metrics.killed_by_signal, std::optional<int>(SIGKILL));
      break;
    }
  }
  bystander.reset();
  actor_handle.reset();
  // TearDown: loop closes with 0, no child left, no fd leaked.
}

INSTANTIATE_TEST_SUITE_P(
    Lifecycle, FromEachCallback,
    ::testing::Combine(::testing::Values(Via::exit_clone, Via::exit_uv, Via::deadline, Via::drain_cut,
                                         Via::own_cgroup, Via::on_exit),
                       ::testing::Values(Act::destroy_supervisor, Act::drop_handle, Act::spawn_more)),
    [](const auto& info) {
      return via_name(std::get<0>(info.param)) + act_name(std::get<1>(info.param));
    });

// An Emitter is one of our callbacks too.
TEST(EmitterCallback, MayDestroyTheSupervisorThatCallsIt) {
  struct Destroyer : Emitter {
    std::unique_ptr<Supervisor>* owner = nullptr;
    int seen = 0;
    void emit_metrics(const Completion&) override {
      ++seen;
      owner->reset();
    }
    void emit_raw(const RawPayloadOutput&) override {}
  };
  auto emitter = std::make_shared<Destroyer>();
  SupervisorOptions o;
  o.emitter = emitter;
  auto s = std::make_unique<Supervisor>(o);  // its own loop
  emitter->owner = &s;
  int delivered = 0;
  s->payload(child_payload("e", {"exit", "0"})).spawn([&](Completion) { ++delivered; });
  PayloadHandle live = s->payload(child_payload("live", {"sleep", "60000"})).spawn();
  s->run();  // returns once the Supervisor is gone
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(emitter->seen, 1);
  EXPECT_EQ(delivered, 1) << "a completion already recorded still reaches its callback";
  EXPECT_THROW(live.wait(), Error);
  EXPECT_TRUE(no_children());
}

// Own loop: a callback run by wait() destroys the Supervisor; the loop is
// closed once wait() is out of uv_run (LeakSanitizer would see it leak).
TEST(OwnLoop, DestroyedInsideACallbackThatWaitDrives) {
  auto s = std::make_unique<Supervisor>();
  PayloadHandle waited = s->payload(child_payload("waited", {"sleep", "60000"})).spawn();
  s->payload(child_payload("quick", {"exit", "0"})).spawn([&](Completion) { s.reset(); });
  try {
    waited.wait();
    ADD_FAILURE() << "wait() returned for a payload the destruction killed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::shut_down);
    EXPECT_THAT(e.what(), HasSubstr("'waited'"));
  }
  EXPECT_EQ(s, nullptr);
  EXPECT_TRUE(no_children());
}

class Teardown : public ProcessTest {};

// "shutdown() refuses further spawns, sends SIGKILL to every live payload's
// group and returns at once; their completions still arrive; once none is
// live the Supervisor closes its own handles, so the loop can end."
TEST_F(Teardown, ShutdownKillsDeliversAndLetsTheLoopEnd) {
  Supervisor& s = sup();
  std::vector<Completion> got;
  for (int i = 0; i < 5; ++i) {
    s.payload(child_payload("long", {"sleep", "60000"})).spawn([&](Completion c) { got.push_back(std::move(c)); });
  }
  PayloadHandle h = s.payload(child_payload("handle", {"sleep", "60000"})).spawn();
  const auto t0 = std::chrono::steady_clock::now();
  s.shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "shutdown() must not block";
  EXPECT_EQ(got.size(), 0u) << "completions arrive as the loop runs, not inside shutdown()";
  try {
    s.payload(child_payload("late", {"exit", "0"})).spawn([](Completion) {});
    ADD_FAILURE() << "spawn after shutdown() was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::shut_down);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);  // returns: nothing of ours is left active
  ASSERT_EQ(got.size(), 5u);
  for (const auto& c : got) {
    EXPECT_EQ(c.metrics.exit_code, -1);
    EXPECT_EQ(c.metrics.killed_by_signal, std::optional<int>(SIGKILL));
  }
  const Completion hc = h.wait();
  EXPECT_EQ(hc.metrics.killed_by_signal, std::optional<int>(SIGKILL));
  EXPECT_EQ(s.live(), 0u);
  s.shutdown();  // idempotent
  // The Supervisor still exists, yet its handles are closed: the loop closes.
  for (int i = 0; i < 10; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(uv_loop_alive(&loop_), 0);
}

// "The destructor kills and reaps every live payload synchronously without
// delivering its completion, logs one warning each, records results still
// waiting for a terminal call, and closes its handles."
TEST_F(Teardown, DestructorKillsWithoutDeliveringAndRecordsWaitingResults) {
  LogCapture log;
  auto emitter = std::make_shared<RecordingEmitter>();
  SupervisorOptions o;
  o.emitter = emitter;
  Supervisor& s = sup(o);
  int delivered = 0;
  s.payload(child_payload("cb", {"sleep", "60000"})).spawn([&](Completion) { ++delivered; });
  PayloadHandle live = s.payload(child_payload("live", {"sleep", "60000"})).spawn();
  PayloadHandle finished = s.payload(child_payload("finished", {"exit", "5"})).spawn();
  const int live_pid = *live.pid();
  while (!finished.done()) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_TRUE(emitter->metrics.empty()) << "a handle's result is recorded at its terminal call";
  sup_.reset();
  EXPECT_EQ(::kill(live_pid, 0), -1) << "killed and reaped before the destructor returned";
  EXPECT_EQ(delivered, 0);
  EXPECT_TRUE(log.contains("Supervisor destroyed while payload 'live' ran"));
  EXPECT_TRUE(log.contains("Supervisor destroyed while payload 'cb' ran"));
  ASSERT_EQ(emitter->metrics.size(), 1u) << "the waiting result is recorded, not lost";
  EXPECT_EQ(emitter->metrics[0].second, "finished");
  const Completion c = finished.wait();
  EXPECT_EQ(c.metrics.exit_code, 5);
  EXPECT_EQ(c.metrics.payload_index, emitter->metrics[0].first);
  EXPECT_THROW(live.wait(), Error);
  // TearDown runs the loop once more and asserts uv_loop_close() == 0.
}

class Recording : public ProcessTest {};

// The seed's rule: a handle's payload_index and emission at its terminal
// call, in the order of those calls; a callback's at completion.
TEST_F(Recording, HandlesRecordAtTheTerminalCallCallbacksAtCompletion) {
  auto emitter = std::make_shared<RecordingEmitter>();
  SupervisorOptions o;
  o.emitter = emitter;
  Supervisor& s = sup(o);
  PayloadHandle a = s.payload(child_payload("a", {"exit", "0"})).spawn();
  PayloadHandle b = s.payload(child_payload("b", {"exit", "0"})).spawn();
  bool cb_done = false;
  s.payload(child_payload("cb", {"exit", "0"})).spawn([&](Completion) { cb_done = true; });
  while (!a.done() || !b.done() || !cb_done) uv_run(&loop_, UV_RUN_ONCE);
  ASSERT_EQ(emitter->metrics.size(), 1u);
  EXPECT_EQ(emitter->metrics[0].second, "cb");
  const Completion cb_ = b.wait();
  const auto ca = a.try_wait();
  ASSERT_TRUE(ca.has_value());
  ASSERT_EQ(emitter->metrics.size(), 3u);
  EXPECT_EQ(emitter->metrics[1].second, "b");
  EXPECT_EQ(emitter->metrics[2].second, "a");
  EXPECT_LT(emitter->metrics[0].first, cb_.metrics.payload_index);
  EXPECT_LT(cb_.metrics.payload_index, ca->metrics.payload_index);
  EXPECT_EQ(cb_.metrics.payload_index, emitter->metrics[1].first);
}

TEST_F(Recording, AHandleDroppedAfterExitRecordsNothingAndWarns) {
  LogCapture log;
  auto emitter = std::make_shared<RecordingEmitter>();
  SupervisorOptions o;
  o.emitter = emitter;
  Supervisor& s = sup(o);
  {
    PayloadHandle h = s.payload(child_payload("ended", {"exit", "0"})).spawn();
    while (!h.done()) uv_run(&loop_, UV_RUN_ONCE);
  }
  EXPECT_TRUE(emitter->metrics.empty());
  EXPECT_TRUE(log.contains("PayloadHandle for 'ended' dropped after its payload ended but before "
                           "wait/kill/try_wait; metrics not recorded."));
}

class Blocking : public ProcessTest {};

// A host's own timer on the embedded loop fires while our wait() drives it:
// a blocking call there would re-enter uv_run and is refused.
TEST_F(Blocking, RefusedInAHostCallbackRunByOurBlockingCall) {
  Supervisor& s = sup();
  struct Host {
    Supervisor* s = nullptr;
    std::optional<Errc> refused;
    std::string what;
  } host{&s, std::nullopt, {}};
  uv_timer_t timer;
  uv_timer_init(&loop_, &timer);
  timer.data = &host;
  uv_timer_start(&timer, [](uv_timer_t* t) {
    auto* h = static_cast<Host*>(t->data);
    try {
      h->s->payload(child_payload("inner", {"exit", "0"})).run();
    } catch (const Error& e) {
      h->refused = e.code();
      h->what = e.what();
    }
    try {
      h->s->run();
    } catch (const Error& e) {
      if (e.code() != Errc::in_callback) h->refused.reset();
    }
  }, 50, 0);
  const Completion c = s.payload(child_payload("outer", {"sleep", "300"})).run();
  EXPECT_EQ(c.metrics.exit_code, 0);
  ASSERT_TRUE(host.refused.has_value()) << "the blocking call inside the host's callback was not refused";
  EXPECT_EQ(*host.refused, Errc::in_callback);
  EXPECT_THAT(host.what, HasSubstr("uv_run is not reentrant"));
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
}

TEST_F(Blocking, TryWaitInsideACallbackOnlyLooks) {
  Supervisor& s = sup();
  PayloadHandle slow = s.payload(child_payload("slow", {"sleep", "200"})).spawn();
  bool looked = false;
  s.payload(child_payload("quick", {"exit", "0"})).spawn([&](Completion) {
    EXPECT_FALSE(slow.try_wait().has_value());
    looked = true;
  });
  const Completion c = slow.wait();
  EXPECT_TRUE(looked);
  EXPECT_EQ(c.metrics.exit_code, 0);
}

class NonThrowing : public ProcessTest {};

TEST_F(NonThrowing, SpawnGivesTheThrowingFormsErrorAsData) {
  Supervisor& s = sup();
  Payload missing = Payload::binary_payload("missing", "/nonexistent/payloadrun-no-such-binary");
  std::string thrown;
  try {
    s.payload(missing).spawn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
    thrown = e.what();
  }
  ASSERT_FALSE(thrown.empty());
  std::error_code ec;
  std::string message;
  std::optional<PayloadHandle> h = s.payload(missing).spawn(ec, &message);
  EXPECT_FALSE(h.has_value());
  EXPECT_EQ(ec, Errc::not_found);
  EXPECT_EQ(&ec.category(), &error_category());
  EXPECT_EQ(ec.message(), "not_found");
  EXPECT_EQ(message, thrown);

  int done = -1;
  ec = make_error_code(Errc::io);
  EXPECT_TRUE(s.payload(child_payload("ok", {"exit", "4"})).spawn([&](Completion c) { done = c.metrics.exit_code; }, ec));
  EXPECT_FALSE(ec) << "success clears the code";
  EXPECT_FALSE(s.payload(missing).spawn([](Completion) { ADD_FAILURE() << "called"; }, ec));
  EXPECT_EQ(ec, Errc::not_found);
  h = s.payload(child_payload("ok2", {"exit", "2"})).spawn(ec);
  ASSERT_TRUE(h.has_value());
  EXPECT_FALSE(ec);
  EXPECT_EQ(h->wait().metrics.exit_code, 2);
  s.run();
  EXPECT_EQ(done, 4);
}

}  // namespace
