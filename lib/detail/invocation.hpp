// Private state shared by the stages of one invocation's data flow:
// spawn -> capture -> exit/deadline -> extract/evaluate/emit -> callback.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "detail/cgroup.hpp"
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

/// One captured stream: bytes kept up to the cap, the rest counted.
struct StreamCapture {
  UniqueFd fd;         // the pipe's read end, in the watch set while open
  WatchTag tag;
  std::string data;
  std::size_t discarded = 0;
  bool open = false;   // fd watched and not yet closed
  bool eof = false;    // EOF, error, or closed by us
};

struct Invocation {
  Supervisor::Impl* impl = nullptr;  // null once the supervisor is gone
  std::shared_ptr<const Payload> payload;
  std::vector<MetricCheck> checks;
  SpawnBackend backend = SpawnBackend::clone_vfork;

  pid_t pid = 0;
  bool new_pgrp = true;
  UniqueFd pidfd;
  std::optional<Cgroup> cgroup;  // only when the payload was placed in one
  bool cgroup_owned = false;     // fresh per-invocation cgroup: remove after
  UniqueFd cgroup_events;        // its cgroup.events, watched for "populated 0"
  bool cgroup_empty = true;      // nothing left alive in the owned cgroup

  // libuv handles, inline; memory is released with the Invocation, which
  // `keepalive` pins until the last close callback has run.
  uv_poll_t cgroup_poll;
  uv_process_t process;
  uv_timer_t timer;
  uv_pipe_t stdin_pipe;
  uv_write_t stdin_req;
  StreamCapture out;
  StreamCapture err;
  std::string stdin_data;
  WatchTag exit_tag;  // the pidfd in the watch set
  int watched_fds = 0;  // > 0: pinned (counts as one open handle)
  bool cgroup_poll_open = false;
  bool process_open = false;
  bool timer_open = false;
  bool stdin_open = false;
  int open_handles = 0;
  std::shared_ptr<Invocation> keepalive;

  // Progress.
  Clock::time_point start;
  std::optional<Clock::time_point> deadline;
  std::optional<DeadlineQueue::iterator> deadline_entry;  // in Impl::deadlines until acted on
  std::optional<Clock::time_point> drain_until;  // end of the drain grace
  bool leader_exited = false;  // exit observed and status collected
  int exit_code = 0;
  std::optional<int> term_signal;
  std::optional<std::string> status_error;  // the exit status could not be collected
  bool timed_out = false;
  bool killed = false;
  bool drain_cut_short = false;
  bool completed = false;  // pipeline ran, result produced
  bool consumed = false;   // a terminal call took the result
  bool abandoned = false;  // handle dropped / supervisor destroyed while live
  CompletionCallback callback;
  std::optional<Completion> result;
};

}  // namespace payloadrun::detail

namespace payloadrun {

struct Supervisor::Impl {
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

  // SIGCHLD watcher, unless SIGCHLD was plain SIG_DFL at construction
  // (SIG_IGN or SA_NOCLDWAIT make the kernel auto-reap our children and hide
  // their exit codes): it keeps a handler installed while we live.
  std::unique_ptr<uv_signal_t> sigchld;
  bool sigchld_restore = false;  // put sigchld_original back at the end
  struct sigaction sigchld_original {};

  detail::UniqueFd dev_null;
  std::unique_ptr<char[]> read_buffer;
  static constexpr std::size_t read_buffer_size = 64 * 1024;
  std::unique_ptr<char[]> child_stack;
  static constexpr std::size_t child_stack_size = 64 * 1024;
  // Flat spawn cost (spawn.cpp): the child shares our fd table (CLONE_FILES)
  // and keeps a private copy of only fds below `spawn_keep_below`, where
  // these three slots (/dev/null between spawns) carry its stdin, stdout and
  // stderr. Empty when close_range(CLOSE_RANGE_UNSHARE) is unavailable.
  std::array<detail::UniqueFd, 3> spawn_slots;
  unsigned spawn_keep_below = 0;

  std::unordered_set<detail::Invocation*> live;
  detail::DeadlineQueue deadlines;
  // Every live pidfd and output pipe in one epoll fd, one uv_poll for all
  // (detail/watch_set.cpp).
  detail::UniqueFd watch_set;
  std::unique_ptr<uv_poll_t> watch_set_poll;
  std::size_t watched_fds = 0;
  bool read_nowait = false;  // preadv2(RWF_NOWAIT) works on pipes
  // Invocations whose last watched fd went, freed at the next safe point.
  std::vector<std::shared_ptr<detail::Invocation>> released_pins;
  int dispatch_depth = 0;  // > 0 while one of our callbacks runs
  bool shut_down = false;
};

}  // namespace payloadrun

namespace payloadrun::detail {

/// Runs `body` as a libuv callback: no exception escapes, and blocking
/// calls made inside are refused.
template <class Body>
void dispatch(Supervisor::Impl* impl, const char* where, Body&& body) noexcept;

// spawn.cpp
std::shared_ptr<Invocation> spawn_invocation(Supervisor::Impl& impl, const PayloadRun& run);
/// Remove a per-invocation cgroup (after the payload is gone) and forget it.
void discard_cgroup(Invocation& inv) noexcept;
/// Prepares Impl::spawn_slots (flat spawn cost); leaves them empty where
/// the kernel lacks close_range(CLOSE_RANGE_UNSHARE). Never throws.
void init_spawn_slots(Supervisor::Impl& impl) noexcept;

// capture.cpp
void start_capture(Invocation& inv, UniqueFd out, UniqueFd err, UniqueFd stdin_write);
void close_stream(Invocation& inv, StreamCapture& s);
bool streams_done(const Invocation& inv);
/// A watched output pipe is readable (called from the watch set).
void on_stream_ready(Invocation& inv, StreamCapture& s);

// exit.cpp
void start_exit_watch(Invocation& inv);
void on_leader_exit(Invocation& inv, int exit_code, std::optional<int> signal);
void kill_invocation(Invocation& inv) noexcept;
void maybe_complete(Invocation& inv);
void abandon_invocation(Invocation& inv) noexcept;
/// SIGKILLs every live payload whose deadline has passed (as its timer
/// would): called before each spawn, so a burst of spawns that keeps the
/// loop from running timers cannot make deadlines late.
void enforce_overdue_deadlines(Supervisor::Impl& impl) noexcept;
/// The leader's pidfd became readable (called from the watch set).
void on_pidfd_ready(Invocation& inv);

// detail/watch_set.cpp
/// Opens the supervisor's watch set (throws Error); closes its handle.
void init_watch_set(Supervisor::Impl& impl);
void close_watch_set(Supervisor::Impl& impl) noexcept;
/// Adds `fd` for `tag` (throws Error naming `what`); the invocation is
/// pinned while any fd of its is watched.
void watch_fd(Invocation& inv, int fd, WatchTag& tag, const char* what);
/// Removes `fd` before it is closed (a host's fork may hold a dup); the
/// pin goes at the next safe point, never under the caller.
void unwatch_fd(Invocation& inv, int fd, WatchTag& tag) noexcept;
/// Frees the invocations whose last watched fd went (Impl::released_pins).
/// Only where nothing can still refer to them: no callback of ours running.
void release_pins(Supervisor::Impl& impl) noexcept;
/// Reads what is there without blocking: -1/EAGAIN when nothing is.
long read_nowait(const Supervisor::Impl& impl, int fd, char* buf, std::size_t size) noexcept;
/// Wait for the process behind `pidfd` to end and reap it.
bool reap_pidfd_blocking(int pidfd) noexcept;
/// Make sure exit statuses survive the host's SIGCHLD disposition (a
/// watcher where the pidfd cannot report them); at construction and spawn.
void ensure_exit_status_kept(Supervisor::Impl& impl);
void close_handle(Invocation& inv, uv_handle_t* h);
/// Close the handle `h` if `open` says it is open (and clear the flag).
template <class Handle>
void close_if_open(Invocation& inv, bool& open, Handle* h) {
  if (!open) return;
  open = false;
  close_handle(inv, reinterpret_cast<uv_handle_t*>(h));
}

// emit.cpp
Completion run_pipeline(Supervisor::Impl& impl, Invocation& inv);
void deliver(Invocation& inv);
std::uint64_t next_payload_index(const SupervisorOptions& options) noexcept;

}  // namespace payloadrun::detail

#include "detail/dispatch.hpp"
