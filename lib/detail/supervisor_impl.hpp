// The state a Supervisor shares with its invocations, and the barrier every
// libuv callback runs through.
#pragma once

#include <signal.h>
#include <uv.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "detail/block_pool.hpp"
#include "detail/fd.hpp"
#include "detail/watch_set.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/supervisor.hpp"

namespace payloadrun::detail {

using Clock = std::chrono::steady_clock;

struct Invocation;
/// Deadlines of live invocations, soonest first (exit.cpp): lets a spawn
/// burst kill payloads whose deadline passed while the loop was busy.
using DeadlineQueue = std::multimap<Clock::time_point, Invocation*>;

/// Pinned (shared_ptr) by every entry from libuv for the length of the
/// callback and by every blocking call for the length of its uv_run, so a
/// callback may destroy the Supervisor: the state goes with the last pin.
struct SupervisorImpl : std::enable_shared_from_this<SupervisorImpl> {
  SupervisorImpl() = default;
  SupervisorImpl(const SupervisorImpl&) = delete;
  SupervisorImpl& operator=(const SupervisorImpl&) = delete;
  /// Closes the own loop, if any (after every handle finished closing).
  ~SupervisorImpl();

  uv_loop_t* loop = nullptr;
  std::unique_ptr<uv_loop_t> own_loop;
  SupervisorOptions options;
  std::shared_ptr<Emitter> emitter;
  Extractor extractor;
  std::string cgroup_parent;  // resolved absolute path, or empty
  // Directories already searched for dead supervisors' own cgroups
  // (sweep_stale_cgroups): cgroup_parent at construction, others at their
  // first own cgroup.
  std::unordered_set<std::string> swept_cgroup_bases;

  // SIGCHLD watcher, only where the pidfd cannot report exit statuses and
  // SIGCHLD was not plain SIG_DFL at a spawn (SIG_IGN or SA_NOCLDWAIT make
  // the kernel auto-reap our children and hide their exit codes).
  std::unique_ptr<uv_signal_t> sigchld;
  bool sigchld_restore = false;  // put sigchld_original back at the end
  struct sigaction sigchld_original {};

  UniqueFd dev_null;
  std::unique_ptr<char[]> read_buffer;
  static constexpr std::size_t read_buffer_size = 64 * 1024;
  std::unique_ptr<char[]> child_stack;
  static constexpr std::size_t child_stack_size = 64 * 1024;
  // Flat spawn cost (spawn.cpp): the child shares our fd table (CLONE_FILES)
  // and keeps a private copy of only fds below `spawn_keep_below`, where
  // these three slots (/dev/null between spawns) carry its stdin, stdout and
  // stderr. Empty when close_range(CLOSE_RANGE_UNSHARE) is unavailable.
  std::array<UniqueFd, 3> spawn_slots;
  unsigned spawn_keep_below = 0;

  std::unordered_set<Invocation*> live;  // spawned, not yet complete
  // Complete with a result no terminal call took yet (handle delivery).
  std::unordered_set<Invocation*> awaiting_take;
  DeadlineQueue deadlines;
  // One timerfd in the watch set for the earliest entry of `deadlines`
  // (exit.cpp): deadlines to the microsecond, where libuv's timers round to
  // the millisecond. Armed for `deadline_armed` (max: disarmed); closed
  // (deadlines fall back to the invocations' own timers) if it cannot work.
  UniqueFd deadline_timer;
  WatchTag deadline_tag;
  Clock::time_point deadline_armed = Clock::time_point::max();
  // Every live pidfd and output pipe in one epoll fd, one uv_poll for all
  // (detail/watch_set.cpp).
  UniqueFd watch_set;
  std::unique_ptr<uv_poll_t> watch_set_poll;
  std::size_t watched_fds = 0;
  bool read_nowait = false;  // preadv2(RWF_NOWAIT) works on pipes
  // Invocations whose last watched fd went, freed at the next safe point.
  std::vector<std::shared_ptr<Invocation>> released_pins;

  // Spawn pacing (spawn_queue.cpp): the time this loop turn's work took
  // (starts, and output and exit handling) and whether it started a
  // process, both reset by `turn_end` before the loop polls; what one start
  // costs lately (a moving average); the invocations waiting for a later
  // turn, and the idle handle that starts them.
  Clock::duration turn_spent{};
  bool turn_started = false;
  std::unique_ptr<uv_prepare_t> turn_end;
  Clock::duration spawn_cost{};
  // The binary a queued spawn last found present, and in which loop turn
  // (uv_now): a burst of queued spawns of one binary looks once a turn.
  std::string present_binary;
  std::uint64_t present_turn = ~std::uint64_t{0};
  std::deque<std::shared_ptr<Invocation>> spawn_queue;
  std::unique_ptr<uv_idle_t> spawn_idle;
  // Where Invocations live (detail/block_pool.hpp): prefaulted chunks.
  std::shared_ptr<BlockPool> invocation_pool = std::make_shared<BlockPool>();
  // Refreshes the loop's time before it polls, in a turn that armed a
  // timer (exit.cpp): created on first use, unreferenced.
  std::unique_ptr<uv_prepare_t> clock_refresh;

  int dispatch_depth = 0;  // > 0 while one of our callbacks runs
  int drive_depth = 0;     // > 0 while a blocking call of ours runs uv_run
  bool shut_down = false;  // shutdown() or the destructor: no more spawns
  bool destroyed = false;  // the Supervisor object is gone
  bool loop_busy = false;  // the last pin went inside a uv_run not ours
};

/// Whether a blocking call must be refused: inside one of our callbacks,
/// or inside any callback run while one of our blocking calls drives the
/// loop (uv_run is not reentrant).
inline bool in_loop_callback(const SupervisorImpl& impl) noexcept {
  return impl.dispatch_depth > 0 || impl.drive_depth > 0;
}

/// After shutdown(), once no payload is live: close our handles so the
/// loop can end (supervisor.cpp).
void finish_shutdown_if_idle(SupervisorImpl& impl) noexcept;
void close_sigchld(SupervisorImpl& impl) noexcept;

/// Runs `body` as a libuv callback: no exception escapes, blocking calls
/// made inside are refused, and `impl` (may be null) stays alive until
/// the body returned, whatever it destroyed.
template <class Body>
void dispatch(SupervisorImpl* impl, const char* where, Body&& body) noexcept;

}  // namespace payloadrun::detail

#include "detail/dispatch.hpp"
