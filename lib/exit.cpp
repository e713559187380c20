// Exit/deadline stage: watch the leader's pidfd (or libuv's process handle),
// kill the whole group when the leader ends, time out, or is killed, bound
// the drain of pipes that escaped descendants hold, and close every handle.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "detail/pidfd_exit.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {
namespace {

std::uint64_t ms_until(Clock::time_point t) {
  const auto now = Clock::now();
  if (t <= now) return 0;
  // Round up: a deadline must never fire early.
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(t - now).count() + 999) / 1000;
}

void on_handle_closed(uv_handle_t* h) {
  auto* inv = static_cast<Invocation*>(h->data);
  if (--inv->open_handles == 0) {
    // Last handle closed: the invocation's memory may go now.
    auto self = std::move(inv->keepalive);
  }
}

// Signal the leader through its pidfd: never a recycled pid.
void signal_leader(Invocation& inv, int sig) noexcept {
  if (inv.leader_exited) return;
  if (inv.pidfd) {
    if (::syscall(SYS_pidfd_send_signal, inv.pidfd.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
      logger()->warn("payload '{}': pidfd_send_signal failed: {}", inv.payload->name,
                     std::strerror(errno));
    }
  } else if (inv.process_open) {
    uv_process_kill(&inv.process, sig);
  }
}

// SIGKILL the payload's process group (and cgroup). Only while the leader is
// unreaped: its zombie keeps the pgid from being reused by another group.
void kill_group(Invocation& inv) noexcept {
  // cgroup.kill reaches descendants that left the process group; only for a
  // cgroup of the payload's own (a named cgroup may hold other payloads).
  if (inv.cgroup && inv.cgroup_owned) inv.cgroup->kill();
  if (!inv.new_pgrp || inv.pid <= 0) return;
  if (inv.backend == SpawnBackend::clone_vfork && inv.leader_exited) return;
  if (::killpg(inv.pid, SIGKILL) != 0 && errno != ESRCH) {
    logger()->warn("payload '{}': killpg({}) failed: {}", inv.payload->name, inv.pid,
                   std::strerror(errno));
  }
}

void unwatch_exit(Invocation& inv) noexcept { unwatch_fd(inv, inv.pidfd.get(), inv.exit_tag); }

void forget_deadline(Invocation& inv) noexcept {
  if (!inv.deadline_entry) return;
  if (inv.impl != nullptr) inv.impl->deadlines.erase(*inv.deadline_entry);
  inv.deadline_entry.reset();
}

// The deadline passed with the leader alive: kill the group (once).
void deadline_kill(Invocation& inv) noexcept {
  forget_deadline(inv);
  if (inv.timed_out) return;
  inv.timed_out = true;
  kill_group(inv);
  signal_leader(inv, SIGKILL);
}

void arm_timer(Invocation& inv);

void on_timer(uv_timer_t* t) {
  auto* inv = static_cast<Invocation*>(t->data);
  dispatch(inv->impl, "timer", [&] {
    const auto now = Clock::now();
    const bool deadline_passed = inv->deadline && now >= *inv->deadline;
    if (!inv->leader_exited) {
      if (!deadline_passed) {
        arm_timer(*inv);
        return;
      }
      deadline_kill(*inv);
      return;  // the exit watcher completes the invocation
    }
    // Leader gone, pipes still open past the grace period, or the deadline
    // passed during the drain. After a deadline kill (timed_out already) the
    // killed processes get the grace period to close their ends.
    // libuv's clock can run a little behind ours: never act early.
    const bool drain_over = inv->drain_until && now >= *inv->drain_until;
    const bool deadline_cut = deadline_passed && !inv->timed_out;
    if (!drain_over && !deadline_cut) {
      arm_timer(*inv);
      return;
    }
    if (deadline_passed) inv->timed_out = true;
    inv->drain_cut_short = true;
    logger()->info("payload '{}': descendants held its output open; drain cut short",
                   inv->payload->name);
    close_stream(*inv, inv->out);
    close_stream(*inv, inv->err);
    if (!inv->cgroup_empty) {
      logger()->warn("payload '{}': {} did not empty in time; leaving it", inv->payload->name,
                     inv->cgroup->path());
      inv->cgroup_empty = true;
      close_if_open(*inv, inv->cgroup_poll_open, &inv->cgroup_poll);
    }
    maybe_complete(*inv);
  });
}

// Before the leader exits: fire at the deadline. After: at the end of the
// drain grace, or the deadline if sooner and not yet acted on (after a
// deadline kill only the grace remains).
void arm_timer(Invocation& inv) {
  std::optional<Clock::time_point> at = inv.deadline;
  if (inv.leader_exited) {
    if (!inv.drain_until) inv.drain_until = Clock::now() + inv.impl->options.drain_grace;
    if (!at || inv.timed_out || *inv.drain_until < *at) at = inv.drain_until;
  }
  if (!at) return;
  uv_update_time(inv.impl->loop);  // time the timer from now, not the loop's cached now
  if (!inv.timer_open) {
    uv_timer_init(inv.impl->loop, &inv.timer);
    inv.timer.data = &inv;
    inv.timer_open = true;
    ++inv.open_handles;
  }
  uv_timer_start(&inv.timer, on_timer, ms_until(*at), 0);
}

}  // namespace

// The leader's pidfd is readable: it has exited.
void on_pidfd_ready(Invocation& inv) {
  // The leader is a zombie now: its pgid cannot be reused yet, so killing
  // the group before reaping reaches only our descendants.
  kill_group(inv);
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(inv.pidfd.get()), &info,
                  WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
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
        on_leader_exit(inv, WEXITSTATUS(*st), std::nullopt);
      } else {
        on_leader_exit(inv, -1, WIFSIGNALED(*st) ? std::optional<int>(WTERMSIG(*st)) : std::nullopt);
      }
      return;
    }
    inv.status_error = fmt::format(
        "exit status lost: waitid on the pidfd failed: {} ({}); the child was reaped by someone "
        "else (SIGCHLD set to SIG_IGN, or a waitpid(-1) in this process) and this kernel cannot "
        "report it through the pidfd (PIDFD_INFO_EXIT needs Linux 6.15)",
        std::strerror(err), strerrorname_np(err) != nullptr ? strerrorname_np(err) : "?");
    logger()->error("payload '{}': {}", inv.payload->name, *inv.status_error);
    on_leader_exit(inv, -1, std::nullopt);
    return;
  }
  if (info.si_pid == 0) return;  // spurious wake-up
  if (info.si_code == CLD_EXITED) {
    on_leader_exit(inv, info.si_status, std::nullopt);
  } else {
    on_leader_exit(inv, -1, info.si_status);
  }
}

namespace {

void refresh_cgroup_empty(Invocation& inv) {
  if (inv.cgroup_empty || !inv.cgroup) return;
  try {
    inv.cgroup_empty = !inv.cgroup->populated();
  } catch (const std::exception& e) {
    logger()->warn("payload '{}': reading {}/cgroup.events failed: {}", inv.payload->name,
                   inv.cgroup->path(), e.what());
    inv.cgroup_empty = true;  // cannot watch it: do not wait forever
  }
  if (inv.cgroup_empty && inv.cgroup_poll_open) {
    inv.cgroup_poll_open = false;
    close_handle(inv, reinterpret_cast<uv_handle_t*>(&inv.cgroup_poll));
  }
}

void on_cgroup_event(uv_poll_t* p, int status, int /*events*/) {
  auto* inv = static_cast<Invocation*>(p->data);
  dispatch(inv->impl, "cgroup.events", [&] {
    if (status < 0) {
      logger()->warn("payload '{}': watching cgroup.events failed: {}", inv->payload->name,
                     uv_strerror(status));
    }
    refresh_cgroup_empty(*inv);
    maybe_complete(*inv);
  });
}

// An owned cgroup completes only once empty: its "populated" flag flips to
// 0 (kernfs notifies pollers with POLLPRI) when the last process is gone.
void start_cgroup_watch(Invocation& inv) {
  if (!inv.cgroup || !inv.cgroup_owned) return;
  inv.cgroup_events = inv.cgroup->open_events();
  inv.cgroup_empty = false;
  const int rc = uv_poll_init(inv.impl->loop, &inv.cgroup_poll, inv.cgroup_events.get());
  if (rc != 0) {
    logger()->warn("payload '{}': cannot watch {}/cgroup.events: {}", inv.payload->name,
                   inv.cgroup->path(), uv_strerror(rc));
    inv.cgroup_empty = true;
    return;
  }
  inv.cgroup_poll.data = &inv;
  inv.cgroup_poll_open = true;
  ++inv.open_handles;
  uv_poll_start(&inv.cgroup_poll, UV_PRIORITIZED, on_cgroup_event);
}

// Blocking variant for abandon: wait (bounded) until the cgroup is empty.
void wait_cgroup_empty_blocking(Invocation& inv) noexcept {
  if (!inv.cgroup || !inv.cgroup_owned) return;
  const auto until = Clock::now() + std::chrono::seconds(5);
  try {
    while (inv.cgroup->populated() && Clock::now() < until) {
      if (inv.cgroup_events) {
        pollfd pfd{inv.cgroup_events.get(), POLLPRI, 0};
        ::poll(&pfd, 1, 10);
      } else {
        ::usleep(1000);
      }
    }
  } catch (...) {
  }
  inv.cgroup_empty = true;
}

}  // namespace

bool reap_pidfd_blocking(int pidfd) noexcept {
  // The pidfd may be O_NONBLOCK (uv_poll sets it), where waitid answers
  // EAGAIN while the child lives: wait for readability first.
  pollfd pfd{pidfd, POLLIN, 0};
  while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  return rc == 0;
}

void close_handle(Invocation& inv, uv_handle_t* h) {
  if (uv_is_closing(h) != 0) return;
  h->data = &inv;
  uv_close(h, on_handle_closed);
}

void start_exit_watch(Invocation& inv) {
  if (inv.backend == SpawnBackend::clone_vfork) {
    inv.exit_tag.kind = WatchKind::exit;
    watch_fd(inv, inv.pidfd.get(), inv.exit_tag, "pidfd");
  }
  start_cgroup_watch(inv);
  if (inv.deadline) inv.deadline_entry = inv.impl->deadlines.emplace(*inv.deadline, &inv);
  arm_timer(inv);
}

void enforce_overdue_deadlines(Supervisor::Impl& impl) noexcept {
  if (impl.deadlines.empty()) return;
  const auto now = Clock::now();
  while (!impl.deadlines.empty() && impl.deadlines.begin()->first <= now) {
    Invocation& inv = *impl.deadlines.begin()->second;
    if (inv.leader_exited) {
      forget_deadline(inv);
      continue;
    }
    deadline_kill(inv);  // its timer (or exit watcher) completes it as usual
  }
}

void on_leader_exit(Invocation& inv, int exit_code, std::optional<int> signal) {
  if (inv.leader_exited) return;
  if (inv.backend == SpawnBackend::uv_spawn) kill_group(inv);  // libuv already reaped
  inv.leader_exited = true;
  forget_deadline(inv);  // a deadline now only bounds the drain (the timer)
  inv.exit_code = exit_code;
  inv.term_signal = signal;
  unwatch_exit(inv);
  close_if_open(inv, inv.process_open, &inv.process);
  inv.pidfd.reset();
  refresh_cgroup_empty(inv);
  if (streams_done(inv) && inv.cgroup_empty) {
    maybe_complete(inv);
  } else {
    arm_timer(inv);  // bound the drain
  }
}

void kill_invocation(Invocation& inv) noexcept {
  if (inv.leader_exited || inv.completed) return;
  inv.killed = true;
  kill_group(inv);
  signal_leader(inv, SIGKILL);
}

void maybe_complete(Invocation& inv) {
  if (inv.completed || !inv.leader_exited || !streams_done(inv) || !inv.cgroup_empty) return;
  if (inv.timer_open) {
    inv.timer_open = false;
    uv_timer_stop(&inv.timer);
    close_handle(inv, reinterpret_cast<uv_handle_t*>(&inv.timer));
  }
  inv.completed = true;
  forget_deadline(inv);
  if (inv.impl != nullptr) inv.impl->live.erase(&inv);
  if (inv.abandoned || inv.impl == nullptr) {
    discard_cgroup(inv);
    return;
  }
  inv.result = run_pipeline(*inv.impl, inv);
  discard_cgroup(inv);
  deliver(inv);
}

// Synchronous kill + reap, for a handle dropped while live and for the
// supervisor's destruction: no result is produced (metrics are lost).
void abandon_invocation(Invocation& inv) noexcept {
  if (inv.completed) return;
  inv.abandoned = true;
  forget_deadline(inv);
  if (!inv.leader_exited) {
    kill_group(inv);
    signal_leader(inv, SIGKILL);
    if (inv.pidfd) {
      if (!reap_pidfd_blocking(inv.pidfd.get())) {
        logger()->error("payload '{}': reaping pid {} failed: {}", inv.payload->name, inv.pid,
                        std::strerror(errno));
      }
      inv.leader_exited = true;
    } else if (inv.pid > 0) {
      // uv_spawn backend: reap directly; libuv then finds nothing to reap.
      int status = 0;
      while (::waitpid(inv.pid, &status, 0) < 0 && errno == EINTR) {
      }
      inv.leader_exited = true;
    }
  }
  inv.leader_exited = true;
  unwatch_exit(inv);
  inv.pidfd.reset();
  close_if_open(inv, inv.process_open, &inv.process);
  close_if_open(inv, inv.stdin_open, &inv.stdin_pipe);
  close_stream(inv, inv.out);
  close_stream(inv, inv.err);
  wait_cgroup_empty_blocking(inv);
  close_if_open(inv, inv.cgroup_poll_open, &inv.cgroup_poll);
  try {
    maybe_complete(inv);
  } catch (...) {
  }
}

}  // namespace payloadrun::detail
