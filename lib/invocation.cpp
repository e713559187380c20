// One invocation's life, in one place: its phases (detail/invocation.hpp has
// the diagram), the holds that keep its memory alive until libuv is done
// with its handles, and the one decision that it is complete.
#include <cerrno>
#include <cstring>

#include "detail/invocation.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {
namespace {

bool leader_alive(const Invocation& inv) noexcept {
  return inv.phase == Phase::running || inv.phase == Phase::stop_grace ||
         inv.phase == Phase::stopping;
}

// SIGKILL the group: stopping.
void stop_now(Invocation& inv) noexcept {
  inv.phase = Phase::stopping;
  kill_group(inv);
}

// From running: SIGKILL at once, or the stop signal and its grace (the
// invocation's timer ends it: stop_grace_over; or the supervisor's deadline
// timer cuts a kill()'s grace: deadline_passed).
void begin_stop(Invocation& inv) noexcept {
  if (inv.stop_signal == SIGKILL) {
    stop_now(inv);
    return;
  }
  inv.phase = Phase::stop_grace;
  inv.stop_until = Clock::now() + inv.stop_grace;
  signal_group(inv, inv.stop_signal);
  arm_timer(inv);  // throws nothing: libuv's timer calls cannot fail
}

void on_slot_closed(uv_handle_t* h) {
  auto* inv = static_cast<Invocation*>(h->data);
  if (--inv->holds == 0) {
    // Last hold gone: libuv is done with every handle; the memory may go.
    auto self = std::move(inv->keepalive);
  }
}

// Leaves the supervisor's books: no longer live, no deadline.
void leave_live(Invocation& inv) noexcept {
  forget_deadline(inv);
  if (inv.impl == nullptr) return;
  inv.impl->live.erase(&inv);
  finish_shutdown_if_idle(*inv.impl);
}

}  // namespace

// ---------------------------------------------------------------- holds

void hold(Invocation& inv) noexcept { ++inv.holds; }

void release_later(Invocation& inv) noexcept {
  if (--inv.holds != 0) return;
  if (inv.impl != nullptr) {
    inv.impl->released_pins.push_back(std::move(inv.keepalive));  // freed at a safe point
  } else {
    // Only the supervisor's teardown unwatches without an impl; it holds
    // the invocation itself (abandon / detach run on a pinned one).
    auto self = std::move(inv.keepalive);
  }
}

void close_slot(Invocation& inv, uv_handle_t* h, bool& open) noexcept {
  if (!open) return;
  open = false;
  if (uv_is_closing(h) != 0) return;
  h->data = &inv;
  uv_close(h, on_slot_closed);
}

// ---------------------------------------------------------------- phases

bool is_complete(const Invocation& inv) noexcept {
  return inv.phase == Phase::completed || inv.phase == Phase::finished;
}

bool is_consumed(const Invocation& inv) noexcept {
  return inv.phase == Phase::finished || inv.delivery == Delivery::callback;
}

void invocation_queued(Invocation& inv) {
  inv.phase = Phase::queued;
  inv.impl->live.insert(&inv);
}

void invocation_started(Invocation& inv) {
  inv.queued_run.reset();
  inv.phase = Phase::running;
  inv.impl->live.insert(&inv);
}

void unstarted_ended(Invocation& inv, std::string why) {
  if (inv.phase != Phase::queued) return;
  inv.queued_run.reset();
  inv.start = Clock::now();  // it never ran: duration 0
  inv.outcome.exit_code = -1;
  inv.outcome.status_error = std::move(why);
  inv.out.at_eof = true;  // no pipes, no cgroup: nothing to wait for
  inv.err.at_eof = true;
  inv.cgroup_empty = true;
  inv.phase = Phase::draining;
  maybe_complete(inv);
}

void request_kill(Invocation& inv) noexcept {
  if (inv.phase == Phase::queued) {
    inv.kill_before_start = true;  // the queue completes it on its next turn, never starts it
    inv.outcome.killed = true;
    return;
  }
  if (!leader_alive(inv)) return;  // nothing left to kill: the result is on its way
  inv.outcome.killed = true;
  if (inv.phase == Phase::stop_grace) return;  // a stop is under way: its grace bounds it
  if (inv.phase == Phase::running) {
    begin_stop(inv);
  } else {
    stop_now(inv);
  }
}

void deadline_passed(Invocation& inv) noexcept {
  forget_deadline(inv);
  if (!leader_alive(inv) || inv.outcome.timed_out) return;
  inv.outcome.timed_out = true;
  if (inv.phase == Phase::running) {
    begin_stop(inv);
  } else {
    stop_now(inv);  // the deadline bounds a kill()'s grace too
  }
}

void stop_grace_over(Invocation& inv) noexcept {
  if (inv.phase != Phase::stop_grace) return;
  logger()->info("payload '{}': still running {} ms after signal {}; SIGKILL", inv.payload->name,
                 inv.stop_grace.count(), inv.stop_signal);
  stop_now(inv);
}

void leader_exited(Invocation& inv, int exit_code, std::optional<int> signal,
                   std::optional<std::string> status_error) {
  if (!leader_alive(inv)) return;
  inv.outcome.exit_code = exit_code;
  inv.outcome.term_signal = signal;
  inv.outcome.status_error = std::move(status_error);
  inv.phase = Phase::draining;
  forget_deadline(inv);  // a deadline now only bounds the drain (the timer)
  stop_exit_watch(inv);
  refresh_cgroup_empty(inv);
  if (streams_done(inv) && inv.cgroup_empty) {
    maybe_complete(inv);
  } else {
    arm_timer(inv);  // bound the drain
  }
}

void drain_expired(Invocation& inv, bool deadline_too) {
  if (inv.phase != Phase::draining) return;
  if (deadline_too) inv.outcome.timed_out = true;
  inv.outcome.drain_cut_short = true;
  logger()->info("payload '{}': descendants held its output open; drain cut short",
                 inv.payload->name);
  close_stream(inv, inv.out);
  close_stream(inv, inv.err);
  give_up_cgroup(inv);
  maybe_complete(inv);
}

// The one place that decides an invocation is complete.
void maybe_complete(Invocation& inv) {
  if (inv.phase != Phase::draining || !streams_done(inv) || !inv.cgroup_empty) return;
  stop_timer(inv);
  leave_live(inv);
  inv.phase = Phase::completed;
  SupervisorImpl* impl = inv.impl;
  if (impl == nullptr) {  // cannot happen: detached invocations are never draining
    discard_cgroup(inv);
    return;
  }
  Completion c = evaluate_invocation(*impl, inv);
  discard_cgroup(inv);
  if (inv.delivery == Delivery::callback) {
    record_invocation(inv, impl->emitter.get(), c);
    inv.phase = Phase::finished;
    deliver(inv, std::move(c));  // may destroy the supervisor: `impl` is pinned by dispatch
  } else {
    inv.result = std::make_unique<Completion>(std::move(c));  // recorded at the terminal call
    impl->awaiting_take.insert(&inv);
  }
}

Completion take_result(Invocation& inv) {
  Completion c = std::move(*inv.result);
  inv.result.reset();
  inv.phase = Phase::finished;
  if (inv.impl != nullptr) {
    inv.impl->awaiting_take.erase(&inv);
    record_invocation(inv, inv.impl->emitter.get(), c);
  }
  return c;
}

void drop_result(Invocation& inv) noexcept {
  if (inv.phase != Phase::completed) return;
  if (inv.impl != nullptr) inv.impl->awaiting_take.erase(&inv);
  inv.result.reset();
  inv.phase = Phase::finished;
}

void abandon_invocation(Invocation& inv) noexcept {
  if (inv.phase == Phase::queued) {  // no process yet: the queue skips it
    leave_live(inv);
    inv.phase = Phase::abandoned;
    inv.queued_run.reset();
    inv.callback = nullptr;
    return;
  }
  if (!leader_alive(inv) && inv.phase != Phase::draining) return;
  std::shared_ptr<Invocation> pin = inv.keepalive;  // closing below may drop the last hold
  leave_live(inv);
  if (leader_alive(inv)) {
    kill_group(inv);
    reap_leader_blocking(inv);
  }
  inv.phase = Phase::abandoned;
  stop_exit_watch(inv);
  stop_timer(inv);
  if (inv.rare) close_slot(inv, inv.rare->stdin_pipe);
  close_stream(inv, inv.out);
  close_stream(inv, inv.err);
  wait_cgroup_empty_blocking(inv);
  give_up_cgroup(inv);
  discard_cgroup(inv);
  inv.callback = nullptr;
}

void detach_invocation(Invocation& inv) noexcept {
  if (inv.phase == Phase::completed && inv.result && inv.impl != nullptr) {
    // No terminal call took it before the supervisor went: record it now,
    // while the emitter exists; a later wait() still returns it.
    record_invocation(inv, inv.impl->emitter.get(), *inv.result);
  }
  inv.impl = nullptr;
}

}  // namespace payloadrun::detail
