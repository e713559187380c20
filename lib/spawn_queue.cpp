// Spawn pacing: a burst of spawn() calls never holds the loop's thread for
// much longer than SupervisorOptions::spawn_slice. Each clone suspends the
// thread until the child has exec'd; once this loop turn's work took the
// slice, further invocations wait in a queue that an idle handle drains on
// the following turns, so timers, signals and exits are served in between.
//
// A turn is one loop iteration, from one poll to the next: its output and
// exit handling (the watch set, first after the poll), the callbacks that
// follow, and the idle handle's starts share one slice, reset by a
// prepare handle just before the loop polls again. (A slice each for
// starts and for exits let a turn hold the loop for two: measured on a
// 1,000-spawn burst, timer ticks late by 1-2 ms throughout.) Every turn
// starts at least one process, so the queue always moves.
#include <fmt/format.h>

#include "detail/invocation.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {
namespace {

void on_turn_end(uv_prepare_t* h) {
  auto* impl = static_cast<SupervisorImpl*>(h->data);
  impl->turn_spent = Clock::duration::zero();
  impl->turn_started = false;
  uv_prepare_stop(h);
}

// Whether another start would overrun this turn's slice: the time spent
// plus what a start costs lately. The first start of a turn always runs.
bool slice_used(const SupervisorImpl& impl) noexcept {
  return impl.turn_started && impl.turn_spent + impl.spawn_cost > impl.options.spawn_slice;
}

void charge_start(SupervisorImpl& impl, Clock::duration d) noexcept {
  if (charge_turn(impl, d)) impl.turn_started = true;
  // A moving average over the last ~8 starts (the first sets it).
  impl.spawn_cost = impl.spawn_cost.count() == 0 ? d : (impl.spawn_cost * 7 + d) / 8;
}

// Starts `inv`, charging the time to this turn's slice.
void timed_start(SupervisorImpl& impl, const std::shared_ptr<Invocation>& inv,
                 const PayloadRun& run) {
  const Clock::time_point t0 = Clock::now();
  try {
    start_invocation(impl, inv, run);
  } catch (...) {
    charge_start(impl, Clock::now() - t0);
    throw;
  }
  charge_start(impl, Clock::now() - t0);
}

void stop_idle(SupervisorImpl& impl) noexcept {
  if (impl.spawn_idle) uv_idle_stop(impl.spawn_idle.get());
}

// Starts (or completes without a process) one queued invocation. Its
// failure is its result: spawn() returned long ago.
void start_queued(SupervisorImpl& impl, const std::shared_ptr<Invocation>& inv) {
  if (inv->phase != Phase::queued) return;  // dropped or abandoned meanwhile
  if (inv->kill_before_start) {
    unstarted_ended(*inv, fmt::format("payload '{}' was killed before its process started (it "
                                      "waited in the spawn queue: SupervisorOptions::spawn_slice)",
                                      inv->payload->name));
    return;
  }
  const PayloadRun run = std::move(*inv->queued_run);
  try {
    timed_start(impl, inv, run);
  } catch (const Error& e) {
    logger()->warn("{}", e.what());
    unstarted_ended(*inv, fmt::format("{} (started from the spawn queue, so this is the "
                                      "result and not an exception of spawn())",
                                      e.what()));
  } catch (const std::exception& e) {
    unstarted_ended(*inv, fmt::format("spawn payload '{}' from the spawn queue failed: {}",
                                      inv->payload->name, e.what()));
  }
}

void on_idle(uv_idle_t* h) {
  auto* impl = static_cast<SupervisorImpl*>(h->data);
  dispatch(impl, "spawn queue", [&] {  // pins *impl: a callback may destroy the Supervisor
    if (impl->spawn_queue.empty()) {
      stop_idle(*impl);
      return;
    }
    // What this turn left of the slice (the first start of a turn always
    // runs; a turn whose spawn() calls took the slice starts nothing more).
    while (!impl->spawn_queue.empty() && !impl->destroyed && !slice_used(*impl)) {
      std::shared_ptr<Invocation> inv = std::move(impl->spawn_queue.front());
      impl->spawn_queue.pop_front();
      start_queued(*impl, inv);  // may deliver a result: any callback of ours may run here
    }
    if (impl->spawn_queue.empty() && !impl->destroyed) stop_idle(*impl);
    release_pins(*impl);
  });
}

void queue_invocation(SupervisorImpl& impl, const std::shared_ptr<Invocation>& inv,
                      const PayloadRun& run) {
  if (!impl.spawn_idle) {
    auto idle = std::make_unique<uv_idle_t>();
    const int rc = uv_idle_init(impl.loop, idle.get());
    if (rc != 0) {
      throw Error(Errc::io,
                  fmt::format("spawn payload '{}': uv_idle_init for the spawn queue failed: {}",
                              inv->payload->name, uv_strerror(rc)),
                  -rc);
    }
    idle->data = &impl;
    impl.spawn_idle = std::move(idle);
  }
  inv->queued_run.emplace(run);
  impl.spawn_queue.push_back(inv);
  invocation_queued(*inv);
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(impl.spawn_idle.get())) == 0) {
    uv_idle_start(impl.spawn_idle.get(), on_idle);
  }
}

}  // namespace

std::shared_ptr<Invocation> spawn_invocation(SupervisorImpl& impl, const PayloadRun& run) {
  std::shared_ptr<Invocation> inv = new_invocation(impl, run);
  if (impl.options.spawn_slice.count() == 0) {  // unpaced: nothing to time
    start_invocation(impl, inv, run);
    return inv;
  }
  // In order: once anything waits, later spawns wait behind it.
  if (!impl.spawn_queue.empty() || slice_used(impl)) {
    require_binary_present(*inv);
    queue_invocation(impl, inv, run);
    return inv;
  }
  timed_start(impl, inv, run);
  return inv;
}

bool charge_turn(SupervisorImpl& impl, Clock::duration d) noexcept {
  // Shut down with nothing live: the handles are closed (or about to be).
  if (impl.destroyed || (impl.shut_down && impl.live.empty())) return false;
  if (!impl.turn_end) {
    auto h = std::make_unique<uv_prepare_t>();
    // Never fails on Linux; without it nothing would end a turn: unpaced.
    if (uv_prepare_init(impl.loop, h.get()) != 0) return false;
    h->data = &impl;
    uv_unref(reinterpret_cast<uv_handle_t*>(h.get()));
    impl.turn_end = std::move(h);
  }
  impl.turn_spent += d;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(impl.turn_end.get())) == 0) {
    uv_prepare_start(impl.turn_end.get(), on_turn_end);
  }
  return true;
}

void close_spawn_queue(SupervisorImpl& impl) noexcept {
  impl.spawn_queue.clear();
  if (impl.turn_end) {
    uv_prepare_stop(impl.turn_end.get());
    // Freed in its close callback (libuv's lifetime rule).
    uv_close(reinterpret_cast<uv_handle_t*>(impl.turn_end.release()), [](uv_handle_t* h) {
      std::unique_ptr<uv_prepare_t> owned(reinterpret_cast<uv_prepare_t*>(h));
    });
  }
  if (!impl.spawn_idle) return;
  uv_idle_stop(impl.spawn_idle.get());
  // Freed in its close callback (libuv's lifetime rule).
  uv_close(reinterpret_cast<uv_handle_t*>(impl.spawn_idle.release()), [](uv_handle_t* h) {
    std::unique_ptr<uv_idle_t> owned(reinterpret_cast<uv_idle_t*>(h));
  });
}

}  // namespace payloadrun::detail
