// One invocation's life (lib/invocation.cpp owns it) and the stages of its
// data flow: spawn -> capture -> exit/deadline -> extract/evaluate/emit ->
// delivery. HACKING.md has the state diagram.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "detail/cgroup.hpp"
#include "detail/fd.hpp"
#include "detail/supervisor_impl.hpp"
#include "detail/watch_set.hpp"

namespace payloadrun::detail {

/// Where an invocation is in its life. Only invocation.cpp changes it.
///
///   queued ──started (spawn queue)──> running
///      └──start failed / killed before it started──> draining (no process)
///   running ──kill()/deadline, with a stop signal──> stop_grace ──grace over──┐
///      │ └────kill()/deadline────────────────────────────────────> stopping <┘
///      │                                   │                          │
///      └──────leader exited────────────────┴──────────────────────────┴──> draining
///   draining ──pipes at EOF, own cgroup empty (or grace over)──> completed
///   completed ──terminal call / callback──> finished
///   queued, running, stop_grace, stopping, draining ──handle dropped / supervisor destroyed──> abandoned
enum class Phase : std::uint8_t {
  queued,      ///< spawn() returned; the process is not started yet (spawn_slice)
  running,     ///< the leader lives
  stop_grace,  ///< the leader lives; its group got the stop signal, SIGKILL at stop_until
  stopping,    ///< the leader lives; its group was sent SIGKILL (kill() or the deadline)
  draining,   ///< the leader's status is collected; pipes or the own cgroup still open
  completed,  ///< the result is ready and waits for the handle's terminal call
  finished,   ///< the result was taken (terminal call) or delivered (callback)
  abandoned,  ///< killed and reaped without a result
};

/// Who takes the result.
enum class Delivery : std::uint8_t {
  handle,    ///< a PayloadHandle's terminal call: index and emission happen there
  callback,  ///< spawn(cb) or on_exit(): index and emission at completion
};

/// A libuv handle inside an Invocation: opened once, closed once; the
/// Invocation's memory stays until every opened slot's close callback ran.
template <class Handle>
struct HandleSlot {
  Handle handle;
  bool open = false;
  uv_handle_t* raw() noexcept { return reinterpret_cast<uv_handle_t*>(&handle); }
};

/// One captured stream: bytes kept up to the cap, the rest counted.
struct StreamCapture {
  UniqueFd fd;  // the pipe's read end, in the watch set while open
  WatchTag tag;
  std::string data;
  std::size_t discarded = 0;
  bool at_eof = false;  // EOF, error, or cut off by us; fd closed
  // Still held open by another process when the group was killed after
  // the leader exited (what that process had not written is lost).
  bool open_at_group_kill = false;
};

/// Handles few invocations use (the uv_spawn backend, stdin data, a cgroup
/// watch), allocated on first use (rare_handles()) and freed with the
/// invocation, so each invocation of the common case is ~800 bytes smaller.
struct RareHandles {
  HandleSlot<uv_poll_t> cgroup_poll;
  HandleSlot<uv_process_t> process;  // SpawnBackend::uv_spawn only
  HandleSlot<uv_pipe_t> stdin_pipe;
  uv_write_t stdin_req;
  std::string stdin_data;
};

/// How the leader ended, as far as the supervisor knows.
struct ExitOutcome {
  int exit_code = 0;
  std::optional<int> term_signal;
  std::optional<std::string> status_error;  // the status could not be collected
  bool timed_out = false;                   // the deadline killed it
  bool killed = false;                      // kill()/shutdown() stopped it, the leader alive
  bool drain_cut_short = false;             // pipes cut off after the drain grace
};

struct Invocation : std::enable_shared_from_this<Invocation> {
  SupervisorImpl* impl = nullptr;  // null once the supervisor is gone
  std::shared_ptr<const Payload> payload;
  std::vector<MetricCheck> checks;
  SpawnBackend backend = SpawnBackend::clone_vfork;
  std::uint64_t index_stride = 1;  // copied: records can happen after the supervisor
  std::uint64_t index_offset = 0;

  Phase phase = Phase::running;
  Delivery delivery = Delivery::handle;

  std::string exec_path;                   // the binary, resolved at spawn()
  std::optional<PayloadRun> queued_run;    // what to start, while queued
  bool kill_before_start = false;          // kill()/shutdown() while queued
  pid_t pid = 0;
  bool new_pgrp = true;
  UniqueFd pidfd;
  WatchTag exit_tag;             // the pidfd in the watch set
  std::optional<Cgroup> cgroup;  // only when the payload was placed in one
  bool cgroup_owned = false;     // fresh per-invocation cgroup: remove after
  UniqueFd cgroup_events;        // its cgroup.events, watched for "populated 0"
  bool cgroup_empty = true;      // nothing left alive in the owned cgroup

  HandleSlot<uv_timer_t> timer;
  std::unique_ptr<RareHandles> rare;  // null until one of them is needed
  StreamCapture out;
  StreamCapture err;

  // What keeps this memory alive: open slots, plus one while any fd is in
  // the watch set (invocation.cpp counts; `keepalive` is the pin).
  int holds = 0;
  int watched_fds = 0;
  std::shared_ptr<Invocation> keepalive;

  Clock::time_point start;
  std::optional<Clock::time_point> deadline;
  std::optional<DeadlineQueue::iterator> deadline_entry;  // in impl->deadlines until acted on
  std::optional<Clock::time_point> drain_until;           // end of the drain grace
  // How it is stopped (kill(), the deadline): SIGKILL at once, or this
  // signal and SIGKILL at stop_until (PayloadRun::stop_signal).
  int stop_signal = SIGKILL;
  std::chrono::milliseconds stop_grace{0};
  std::optional<Clock::time_point> stop_until;
  ExitOutcome outcome;
  CompletionCallback callback;
  std::unique_ptr<Completion> result;  // awaiting a terminal call (handle delivery)
  bool recorded = false;  // payload_index assigned and emitted
};

// ---------------------------------------------------------------- invocation.cpp
// The state machine: the only code that changes Invocation::phase.

/// spawn() queued it (spawn_queue.cpp): queued, in impl.live.
void invocation_queued(Invocation& inv);
/// A freshly spawned child: running, in impl.live, watched.
void invocation_started(Invocation& inv);
/// A queued invocation that will never have a process (its start failed,
/// or it was killed first): completes with `why` as its error.
void unstarted_ended(Invocation& inv, std::string why);
/// The leader's status is known (from the pidfd or libuv): draining.
void leader_exited(Invocation& inv, int exit_code, std::optional<int> signal,
                   std::optional<std::string> status_error = std::nullopt);
/// kill() / kill_async() / shutdown(): stop the group (SIGKILL, or the
/// stop signal and its grace) unless the leader is gone; mark killed.
void request_kill(Invocation& inv) noexcept;
/// The deadline passed with the leader alive: stop it (cutting a kill()'s
/// grace short), mark timed out.
void deadline_passed(Invocation& inv) noexcept;
/// The stop grace is over with the leader alive: SIGKILL the group.
void stop_grace_over(Invocation& inv) noexcept;
/// The drain grace (or the deadline during the drain) is over: cut the
/// pipes and stop waiting for the own cgroup.
void drain_expired(Invocation& inv, bool deadline_too);
/// A stream reached EOF or the own cgroup emptied: complete if all is in.
void maybe_complete(Invocation& inv);
/// The result for a terminal call (wait/kill/try_wait) or a late on_exit:
/// records it (index, emission) if not yet done. Phase completed -> finished.
Completion take_result(Invocation& inv);
/// A handle dropped with its result untaken: never recorded (the seed's
/// rule). Phase completed -> finished.
void drop_result(Invocation& inv) noexcept;
/// Kill and reap synchronously (a live handle dropped, the supervisor
/// destroyed): no result. A no-op once completed.
void abandon_invocation(Invocation& inv) noexcept;
/// The supervisor goes: a completed result no terminal call took yet is
/// recorded now (nothing lost), and the invocation forgets the supervisor.
void detach_invocation(Invocation& inv) noexcept;
bool is_consumed(const Invocation& inv) noexcept;
bool is_complete(const Invocation& inv) noexcept;  // completed or finished

/// inv.rare, allocated on first use.
inline RareHandles& rare_handles(Invocation& inv) {
  if (!inv.rare) inv.rare = std::make_unique<RareHandles>();
  return *inv.rare;
}

/// Slots: open, and close-if-open (the close callback releases the hold).
template <class Handle>
void slot_opened(Invocation& inv, HandleSlot<Handle>& slot) noexcept;
void close_slot(Invocation& inv, uv_handle_t* h, bool& open) noexcept;
template <class Handle>
void close_slot(Invocation& inv, HandleSlot<Handle>& slot) noexcept {
  close_slot(inv, slot.raw(), slot.open);
}
/// Holds for watched fds (watch_set.cpp): the first pins, the last
/// releases at the next safe point.
void hold(Invocation& inv) noexcept;
void release_later(Invocation& inv) noexcept;

template <class Handle>
void slot_opened(Invocation& inv, HandleSlot<Handle>& slot) noexcept {
  slot.handle.data = &inv;
  slot.open = true;
  hold(inv);
}

// ---------------------------------------------------------------- stages

// spawn_queue.cpp: spawn() now, or queued when this loop turn's spawns
// already took SupervisorOptions::spawn_slice; the queue drains on later turns.
std::shared_ptr<Invocation> spawn_invocation(SupervisorImpl& impl, const PayloadRun& run);
/// Closes the queue's idle and prepare handles (teardown); queued
/// invocations are gone by then.
void close_spawn_queue(SupervisorImpl& impl) noexcept;
/// Adds `d` to this loop turn's share of SupervisorOptions::spawn_slice
/// (reset before the loop polls again); false when turns are not tracked
/// (torn down, or no prepare handle).
bool charge_turn(SupervisorImpl& impl, Clock::duration d) noexcept;
/// exit.cpp: the handle that refreshes the loop's time before it polls.
void close_clock_refresh(SupervisorImpl& impl) noexcept;

// spawn.cpp
/// Checks the run and makes its invocation (throws Error: bad input, a
/// missing binary, a shut-down supervisor); no process yet.
std::shared_ptr<Invocation> new_invocation(SupervisorImpl& impl, const PayloadRun& run);
/// Throws Error(not_found) when the resolved binary is not there (for a
/// spawn about to be queued: its execve comes later).
void require_binary_present(const Invocation& inv);
/// Starts the process (throws Error: cgroup, pipes, clone, exec): running.
void start_invocation(SupervisorImpl& impl, const std::shared_ptr<Invocation>& inv,
                      const PayloadRun& run);
/// Remove a per-invocation cgroup (after the payload is gone) and forget it.
void discard_cgroup(Invocation& inv) noexcept;
/// Prepares SupervisorImpl::spawn_slots (flat spawn cost); leaves them
/// empty where the kernel lacks close_range(CLOSE_RANGE_UNSHARE).
void init_spawn_slots(SupervisorImpl& impl) noexcept;
/// Make sure exit statuses survive the host's SIGCHLD disposition (a
/// watcher where the pidfd cannot report them); at construction and spawn.
void ensure_exit_status_kept(SupervisorImpl& impl);

// capture.cpp
void start_capture(Invocation& inv, UniqueFd out, UniqueFd err, UniqueFd stdin_write);
/// Stop reading `s` (EOF, error, cut off): its fd leaves the watch set.
void close_stream(Invocation& inv, StreamCapture& s) noexcept;
/// The leader has exited and its group is about to be killed: read what
/// the pipes hold and flag a stream another process still holds open.
void note_open_streams(Invocation& inv) noexcept;
/// A failed result gets one detail per stream flagged above (why output
/// may be missing).
void explain_lost_output(const Invocation& inv, Completion& c);
bool streams_done(const Invocation& inv) noexcept;
/// A watched output pipe is readable (called from the watch set).
void on_stream_ready(Invocation& inv, StreamCapture& s);

// exit.cpp
void start_exit_watch(Invocation& inv);
/// The leader's pidfd became readable (called from the watch set).
void on_pidfd_ready(Invocation& inv);
/// Stop watching the leader (its status is collected, or it is abandoned).
void stop_exit_watch(Invocation& inv) noexcept;
/// SIGKILL the group (and own cgroup) and, if `leader_too`, the leader
/// through its pidfd (never a recycled pid), while unreaped. `leader_too`
/// false: the leader has exited (ktstr's rule: what outlived it goes now);
/// streams another process still holds are noted first.
void kill_group(Invocation& inv, bool leader_too = true) noexcept;
/// Send `sig` to the group (the leader alone without a group of its own).
void signal_group(Invocation& inv, int sig) noexcept;
/// Block until the leader is gone and reap it (abandonment).
void reap_leader_blocking(Invocation& inv) noexcept;
/// (Re)arm the invocation's one timer for its deadline, stop grace or
/// drain grace.
void arm_timer(Invocation& inv);
void stop_timer(Invocation& inv) noexcept;
void forget_deadline(Invocation& inv) noexcept;
/// SIGKILLs every live payload whose deadline has passed (as its timer
/// would): called before each spawn, so a burst of spawns that keeps the
/// loop from running timers cannot make deadlines late.
void enforce_overdue_deadlines(SupervisorImpl& impl) noexcept;
/// The deadline timer fired (called from the watch set): act on what is
/// due, arm it for the next.
void on_deadline_timer(SupervisorImpl& impl) noexcept;
/// Wait for the process behind `pidfd` to end and reap it.
bool reap_pidfd_blocking(int pidfd) noexcept;

// detail/cgroup_watch.cpp
/// An own cgroup completes only once empty: watch its cgroup.events.
void start_cgroup_watch(Invocation& inv);
/// Re-read "populated"; stop watching once empty.
void refresh_cgroup_empty(Invocation& inv) noexcept;
/// Stop waiting for the cgroup (left populated after the grace).
void give_up_cgroup(Invocation& inv) noexcept;
/// Bounded blocking wait until the own cgroup is empty (abandonment).
void wait_cgroup_empty_blocking(Invocation& inv) noexcept;

// detail/watch_set.cpp
/// Opens the supervisor's watch set (throws Error); closes its handle.
void init_watch_set(SupervisorImpl& impl);
void close_watch_set(SupervisorImpl& impl) noexcept;
/// Takes the deadline timer out of the set and closes it (it failed).
void close_deadline_timer(SupervisorImpl& impl) noexcept;
/// Adds `fd` for `tag` (throws Error naming `what`); the invocation is
/// pinned while any fd of its is watched.
void watch_fd(Invocation& inv, int fd, WatchTag& tag, const char* what);
/// Removes `fd` before it is closed (a host's fork may hold a dup); the
/// pin goes at the next safe point, never under the caller.
void unwatch_fd(Invocation& inv, int fd, WatchTag& tag) noexcept;
/// Frees the invocations whose last watched fd went (released_pins).
/// Only where nothing can still refer to them: no callback of ours running.
void release_pins(SupervisorImpl& impl) noexcept;
/// Reads what is there without blocking: -1/EAGAIN when nothing is.
long read_nowait(const SupervisorImpl& impl, int fd, char* buf, std::size_t size) noexcept;

// emit.cpp
/// Extract, hints, checks: the result without index or emission.
Completion evaluate_invocation(SupervisorImpl& impl, Invocation& inv);
/// Assign payload_index and emit (once): at completion for callbacks, at
/// the terminal call for handles. `emitter` may be null.
void record_invocation(Invocation& inv, Emitter* emitter, Completion& c) noexcept;
/// Run the callback with the result (exceptions logged, not propagated).
void deliver(Invocation& inv, Completion c) noexcept;
std::uint64_t next_payload_index(std::uint64_t stride, std::uint64_t offset) noexcept;

}  // namespace payloadrun::detail
