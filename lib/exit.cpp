// Exit/deadline stage: collect the leader's status from its pidfd, signal
// and kill the whole group, the supervisor's deadline timer (a timerfd for
// the earliest deadline of its live payloads) and the one timer per
// invocation that ends the stop grace and bounds the drain (and enforces
// the deadline, should the timerfd fail). Phase changes are invocation.cpp's.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "detail/errno_text.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "detail/pidfd_exit.hpp"

namespace payloadrun::detail {
namespace {

// libuv's loop time counts CLOCK_MONOTONIC_COARSE when that clock is
// precise to 1 ms, else CLOCK_MONOTONIC (uv__hrtime(UV_CLOCK_FAST)). Were
// we to pick the other one, a timer would fire up to a millisecond off:
// on_timer never acts early, it arms again.
std::uint64_t loop_clock_ms() noexcept {
  static const clockid_t id = [] {
    timespec res{};
    return ::clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 &&
                   res.tv_nsec <= 1'000'000
               ? CLOCK_MONOTONIC_COARSE
               : CLOCK_MONOTONIC;
  }();
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
}

// The uv_timer_start delay that fires at `t`: what the loop's time would be
// if it were updated now, minus its cached value (which uv_timer_start
// counts from), plus what is left until `t`, rounded up. The loop's time
// itself is not updated: inside a timer callback that spawns,
// uv_update_time made libuv's timer phase find an overdue repeating timer
// due again at once and run it back to back, handling no exit until the
// spawning stopped (deadline completions 0.3-0.7 s late at 2,000
// spawns/s; test SpawnQueueTest.ASpawningTimerThatOverrunsItsPeriodLeavesRoomForExits).
std::uint64_t timer_delay_ms(uv_loop_t* loop, Clock::time_point t) {
  const std::uint64_t cached = uv_now(loop);
  const std::uint64_t fresh = std::max(cached, loop_clock_ms());
  const auto now = Clock::now();
  const std::uint64_t left =
      t <= now ? 0
               : static_cast<std::uint64_t>(
                     std::chrono::duration_cast<std::chrono::microseconds>(t - now).count() + 999) /
                     1000;
  return fresh - cached + left;
}

// Before the loop polls, in a turn that armed a timer: refresh the loop's
// time, so the poll's timeout counts from now and not from the turn's start
// (a callback that spawned for a while would otherwise oversleep the
// deadlines it armed). Here, after the timer phase, never inside it (see
// timer_delay_ms).
void on_clock_refresh(uv_prepare_t* h) {
  uv_update_time(h->loop);
  uv_prepare_stop(h);
}

void request_clock_refresh(SupervisorImpl& impl) {
  if (!impl.clock_refresh) {
    auto h = std::make_unique<uv_prepare_t>();
    if (uv_prepare_init(impl.loop, h.get()) != 0) return;  // precision only
    uv_unref(reinterpret_cast<uv_handle_t*>(h.get()));
    impl.clock_refresh = std::move(h);
  }
  uv_prepare_start(impl.clock_refresh.get(), on_clock_refresh);
}

bool leader_alive(const Invocation& inv) noexcept {
  return inv.phase == Phase::running || inv.phase == Phase::stop_grace ||
         inv.phase == Phase::stopping;
}

// The supervisor's deadline timer (a timerfd in the watch set, absolute
// CLOCK_MONOTONIC, which steady_clock is) enforces every entry of
// impl.deadlines: to the microsecond, where a libuv timer fires on the
// millisecond after (measured at 250 spawns/s: kill lateness p50 0.77 ms
// through the per-invocation timers, the rounding half of it). It is set
// only when a sooner deadline comes (one system call a payload when all
// share a timeout: each fire arms it for the next); one left armed for a
// deadline forgotten since fires once, finding nothing due.
bool deadline_timer_on(const SupervisorImpl& impl) noexcept { return static_cast<bool>(impl.deadline_timer); }

void arm_timer_no_throw(Invocation& inv) noexcept {
  try {
    arm_timer(inv);
  } catch (...) {
  }
}

void arm_deadline_timer(SupervisorImpl& impl, Clock::time_point at) noexcept {
  if (!deadline_timer_on(impl) || at >= impl.deadline_armed) return;
  const auto ns = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count());
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (::timerfd_settime(impl.deadline_timer.get(), TFD_TIMER_ABSTIME, &spec, nullptr) == 0) {
    impl.deadline_armed = at;
    return;
  }
  const int e = errno;
  try {
    logger()->warn("Supervisor: arming the deadline timer failed ({}); deadlines are enforced to "
                   "the millisecond from now on",
                   errno_text(e));
  } catch (...) {
  }
  // Every pending deadline moves to its invocation's own timer.
  close_deadline_timer(impl);
  impl.deadline_armed = Clock::time_point::max();
  for (auto& [when, inv] : impl.deadlines) arm_timer_no_throw(*inv);
}

// Signal the leader through its pidfd: never a recycled pid.
void signal_leader(Invocation& inv, int sig) noexcept {
  if (inv.pidfd) {
    if (::syscall(SYS_pidfd_send_signal, inv.pidfd.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
      const int e = errno;
      logger()->warn("payload '{}': pidfd_send_signal failed: {}", inv.payload->name,
                     errno_text(e));
    }
  } else if (inv.rare && inv.rare->process.open) {
    uv_process_kill(&inv.rare->process.handle, sig);
  }
}

void on_timer(uv_timer_t* t) {
  auto* inv = static_cast<Invocation*>(t->data);
  dispatch(inv->impl, "timer", [&] {
    const auto now = Clock::now();
    // libuv's clock can run a little behind ours: never act early.
    const bool deadline_over = inv->deadline && now >= *inv->deadline;
    if (leader_alive(*inv)) {
      if (deadline_over && !inv->outcome.timed_out) {
        deadline_passed(*inv);  // the exit watch moves it on
      } else if (inv->phase == Phase::stop_grace) {
        if (now >= *inv->stop_until) {
          stop_grace_over(*inv);
        } else {
          arm_timer(*inv);
        }
      } else if (!deadline_over) {
        arm_timer(*inv);  // early: libuv's clock
      }
      return;
    }
    // Draining: the grace is over, or the deadline passed during the drain
    // (after a deadline kill only the grace remains).
    const bool drain_over = inv->drain_until && now >= *inv->drain_until;
    const bool deadline_cut = deadline_over && !inv->outcome.timed_out;
    if (!drain_over && !deadline_cut) {
      arm_timer(*inv);
      return;
    }
    drain_expired(*inv, deadline_over);
  });
}

}  // namespace

void kill_group(Invocation& inv, bool leader_too) noexcept {
  // After the leader's own exit (not our stop): what a survivor holds is lost.
  if (!leader_too && (inv.phase == Phase::running || inv.phase == Phase::stop_grace) &&
      (inv.new_pgrp || (inv.cgroup && inv.cgroup_owned))) {
    note_open_streams(inv);
  }
  // cgroup.kill reaches descendants that left the process group; only for a
  // cgroup of the payload's own (a named cgroup may hold other payloads).
  if (inv.cgroup && inv.cgroup_owned) inv.cgroup->kill();
  // The group only while the leader is unreaped: its zombie keeps the pgid
  // from being reused by another group (libuv reaps on its own: its exit
  // callback kills the group first thing).
  if (inv.new_pgrp && inv.pid > 0 && (leader_alive(inv) || inv.backend == SpawnBackend::uv_spawn)) {
    if (::killpg(inv.pid, SIGKILL) != 0 && errno != ESRCH) {
      const int e = errno;
      logger()->warn("payload '{}': killpg({}) failed: {}", inv.payload->name, inv.pid,
                     errno_text(e));
    }
  }
  if (leader_too && leader_alive(inv)) signal_leader(inv, SIGKILL);
}

void signal_group(Invocation& inv, int sig) noexcept {
  // The group only while the leader is unreaped (its pgid cannot be reused);
  // the group includes the leader, which must get the signal once (a second
  // SIGINT makes some tools quit without their report).
  if (inv.new_pgrp && inv.pid > 0 && leader_alive(inv)) {
    if (::killpg(inv.pid, sig) != 0 && errno != ESRCH) {
      const int e = errno;
      logger()->warn("payload '{}': killpg({}, {}) failed: {}", inv.payload->name, inv.pid, sig,
                     errno_text(e));
    }
    return;
  }
  if (leader_alive(inv)) signal_leader(inv, sig);
}

// The leader's pidfd is readable: it has exited.
void on_pidfd_ready(Invocation& inv) {
  // The leader is a zombie now: its pgid cannot be reused yet, so killing
  // the group before reaping reaches only our descendants.
  kill_group(inv, false);
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(inv.pidfd.get()), &info,
                  WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    if (info.si_pid == 0) return;  // spurious wake-up
    if (info.si_code == CLD_EXITED) {
      leader_exited(inv, info.si_status, std::nullopt);
    } else {
      leader_exited(inv, -1, info.si_status);
    }
    return;
  }
  // ECHILD: the kernel or someone else reaped our child (SIGCHLD set to
  // SIG_IGN after we started, a host calling waitpid(-1)). Linux >= 6.15
  // still reports the status through the pidfd.
  const int err = errno;
  // The kernel stores the status at release, which may trail the pidfd's
  // wake-up by a moment: a few short retries (only on this rare path).
  std::optional<int> st = pidfd_exit_status(inv.pidfd.get());
  for (int i = 0; !st && err == ECHILD && pidfd_exit_info_supported() && i < 50; ++i) {
    ::usleep(100);
    st = pidfd_exit_status(inv.pidfd.get());
  }
  if (st) {
    if (WIFEXITED(*st)) {
      leader_exited(inv, WEXITSTATUS(*st), std::nullopt);
    } else {
      leader_exited(inv, -1, WIFSIGNALED(*st) ? std::optional<int>(WTERMSIG(*st)) : std::nullopt);
    }
    return;
  }
  std::string why = fmt::format(
      "exit status lost: waitid on the pidfd failed: {}; the child was reaped by someone "
      "else (SIGCHLD set to SIG_IGN, or a waitpid(-1) in this process) and this kernel cannot "
      "report it through the pidfd (PIDFD_INFO_EXIT needs Linux 6.15)",
      errno_text(err));
  logger()->error("payload '{}': {}", inv.payload->name, why);
  leader_exited(inv, -1, std::nullopt, std::move(why));
}

void stop_exit_watch(Invocation& inv) noexcept {
  unwatch_fd(inv, inv.pidfd.get(), inv.exit_tag);
  inv.pidfd.reset();
  if (inv.rare) close_slot(inv, inv.rare->process);
}

bool reap_pidfd_blocking(int pidfd) noexcept {
  // The pidfd may be O_NONBLOCK (uv_poll sets it), where waitid answers
  // EAGAIN while the child lives: wait for readability first.
  pollfd pfd{pidfd, POLLIN, 0};
  while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
  // Readable means it exited; but a traced leader (a debugger, strace, a
  // sanitizer's leak checker) is waitable by us only once its tracer let go
  // (killed with the group): until then waitid finds nothing (si_pid 0).
  // Retry, bounded, so no zombie is left behind.
  for (int i = 0; i < 5000; ++i) {
    siginfo_t info{};
    const int rc =
        ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
    if (rc == 0 && info.si_pid != 0) return true;
    if (rc != 0 && errno == ECHILD) return true;  // reaped by the kernel (SIGCHLD ignored)
    if (rc != 0 && errno != EINTR && errno != EAGAIN) return false;
    ::usleep(1000);
  }
  errno = ETIMEDOUT;
  return false;
}

void reap_leader_blocking(Invocation& inv) noexcept {
  if (inv.pidfd) {
    if (!reap_pidfd_blocking(inv.pidfd.get())) {
      const int e = errno;
      logger()->error("payload '{}': reaping pid {} failed: {}", inv.payload->name, inv.pid,
                      errno_text(e));
    }
  } else if (inv.pid > 0) {
    // uv_spawn backend: reap directly; libuv then finds nothing to reap.
    int status = 0;
    while (::waitpid(inv.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void start_exit_watch(Invocation& inv) {
  if (inv.backend == SpawnBackend::clone_vfork) {
    inv.exit_tag.kind = WatchKind::exit;
    watch_fd(inv, inv.pidfd.get(), inv.exit_tag, "pidfd");
  }
  start_cgroup_watch(inv);
  if (inv.deadline) {
    inv.deadline_entry = inv.impl->deadlines.emplace(*inv.deadline, &inv);
    arm_deadline_timer(*inv.impl, *inv.deadline);
  }
  arm_timer(inv);
}

void on_deadline_timer(SupervisorImpl& impl) noexcept {
  std::uint64_t expirations = 0;
  while (::read(impl.deadline_timer.get(), &expirations, sizeof expirations) < 0 && errno == EINTR) {
  }
  impl.deadline_armed = Clock::time_point::max();
  enforce_overdue_deadlines(impl);
  if (!impl.deadlines.empty()) arm_deadline_timer(impl, impl.deadlines.begin()->first);
}

// Before the leader exits: fire at the deadline, or during a stop grace at
// its end (or the deadline if sooner and not yet acted on). After: at the
// end of the drain grace, or the deadline if sooner and not yet acted on.
void arm_timer(Invocation& inv) {
  // A deadline still in impl->deadlines is the deadline timer's.
  std::optional<Clock::time_point> at = inv.deadline;
  if (inv.deadline_entry && deadline_timer_on(*inv.impl)) at.reset();
  if (inv.phase == Phase::stop_grace) {
    if (!at || inv.outcome.timed_out || *inv.stop_until < *at) at = inv.stop_until;
  } else if (!leader_alive(inv)) {
    if (!inv.drain_until) inv.drain_until = Clock::now() + inv.impl->options.drain_grace;
    if (!at || inv.outcome.timed_out || *inv.drain_until < *at) at = inv.drain_until;
  }
  if (!at) return;
  if (!inv.timer.open) {
    uv_timer_init(inv.impl->loop, &inv.timer.handle);
    slot_opened(inv, inv.timer);
  }
  uv_timer_start(&inv.timer.handle, on_timer, timer_delay_ms(inv.impl->loop, *at), 0);
  request_clock_refresh(*inv.impl);
}

void close_clock_refresh(SupervisorImpl& impl) noexcept {
  if (!impl.clock_refresh) return;
  uv_prepare_stop(impl.clock_refresh.get());
  // Freed in its close callback (libuv's lifetime rule).
  uv_close(reinterpret_cast<uv_handle_t*>(impl.clock_refresh.release()), [](uv_handle_t* h) {
    std::unique_ptr<uv_prepare_t> owned(reinterpret_cast<uv_prepare_t*>(h));
  });
}

void stop_timer(Invocation& inv) noexcept {
  if (inv.timer.open) uv_timer_stop(&inv.timer.handle);
  close_slot(inv, inv.timer);
}

void forget_deadline(Invocation& inv) noexcept {
  if (!inv.deadline_entry) return;
  if (inv.impl != nullptr) inv.impl->deadlines.erase(*inv.deadline_entry);
  inv.deadline_entry.reset();
}

// Whether the leader has already exited though its exit is not handled yet
// (its pidfd is readable; uv_spawn backend: it is a zombie, looked at
// without reaping it): then it ended on its own, before the deadline was
// acted on, and is not timed out, whichever event is handled first.
bool exit_pending(const Invocation& inv) noexcept {
  if (inv.pidfd) {
    pollfd p{inv.pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
  }
  if (inv.pid <= 0) return false;
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(inv.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == inv.pid;
}

void enforce_overdue_deadlines(SupervisorImpl& impl) noexcept {
  const auto now = Clock::now();
  while (!impl.deadlines.empty() && impl.deadlines.begin()->first <= now) {
    Invocation& inv = *impl.deadlines.begin()->second;
    if (!leader_alive(inv) || exit_pending(inv)) {
      forget_deadline(inv);  // (its exit, handled next, completes it)
      continue;
    }
    deadline_passed(inv);  // forgets the deadline; its exit watch completes it as usual
  }
}

}  // namespace payloadrun::detail
