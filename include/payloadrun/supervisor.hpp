// payloadrun: the supervisor, the PayloadRun builder and PayloadHandle.
//
// A Supervisor runs payload processes concurrently on one libuv loop (its
// own, or one you already run). Everything happens on that loop's thread:
// spawning, capturing stdout/stderr, watching exits and deadlines, and the
// completion pipeline (extract, stdout first with stderr as fallback ->
// hints -> checks -> payload_index -> emit -> your callback).
//
// When a result is recorded (payload_index assigned, emitted to the
// Emitter or ring): for spawn(callback) and on_exit(), at completion; for
// a PayloadHandle, at its terminal call (wait(), kill(), or the try_wait()
// that returns it), as ktstr does. A handle dropped after its payload
// ended but before any terminal call records nothing and logs a warning.
// A result still waiting for its terminal call when the Supervisor is
// destroyed is recorded then (and the handle can still return it).
//
// Error model: the call that caused a synchronous failure throws
// payloadrun::Error (bad input, spawn failure, a second consume of a handle,
// a blocking call from inside a loop callback); spawn has non-throwing
// forms taking a std::error_code. A payload's exit code, timeout and
// failed checks are data in its Completion; so is a supervision failure
// (Completion::error).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"

struct uv_loop_s;  // libuv's uv_loop_t

namespace payloadrun {

/// How payload processes are created.
enum class SpawnBackend {
  /// vfork-style clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD): cost independent
  /// of the parent's heap size and, on Linux >= 5.9, of how many fds the
  /// process has open (the supervisor keeps three low fds, /dev/null
  /// between spawns, through which a child gets its stdio; construct the
  /// Supervisor before opening thousands of fds so they stay low). The
  /// default.
  clone_vfork,
  /// libuv's uv_spawn (fork on Linux; slower with a large heap). Kept for
  /// comparison in bench/. No cgroups, and its payloads do not die with
  /// the supervisor (libuv runs no code of ours between fork and exec, so
  /// Payload::survives_supervisor is as if always true).
  uv_spawn,
};

struct SupervisorOptions {
  /// Bytes kept per stream; the rest is read and discarded, and the
  /// invocation is flagged truncated.
  std::size_t capture_limit = 16u * 1024u * 1024u;
  /// After the payload ended and its process group was killed, how long to
  /// keep reading pipes that escaped descendants hold open.
  std::chrono::milliseconds drain_grace{1000};
  SpawnBackend backend = SpawnBackend::clone_vfork;
  /// Spawn pacing: how long spawn() calls may hold the loop's thread per
  /// loop turn. Starting a process suspends the calling thread until the
  /// child has exec'd (0.1-0.5 ms on a small VM), so a burst of a thousand
  /// spawn() calls would stall timers, signals and exits for that long.
  /// A loop turn (one iteration of the loop, from one poll to the next) has
  /// one spawn_slice for the Supervisor's work in it: handling output and
  /// exits, and starting processes. Once the turn's work has taken it,
  /// further spawn() calls queue their invocation and return at once; the
  /// Supervisor starts queued invocations in call order on the following
  /// loop turns, in what is left of each turn's slice (another start is not
  /// begun when what starts cost lately would overrun it) and at least one
  /// a turn, so the queue always moves. The first start of a turn is never
  /// queued, so a turn holds the loop for about spawn_slice plus one start
  /// (one start: 0.1-0.5 ms on a small VM, longer while the CPUs are busy
  /// with the payloads just started). A queued invocation:
  /// - counts in live() and is driven by run(), wait() and friends;
  /// - has no pid yet (PayloadHandle::pid() is nullopt);
  /// - has its timeout counted from its start, not from spawn();
  /// - if killed (kill(), kill_async(), shutdown()) before it started,
  ///   never starts and completes with exit_code -1, metrics.killed and
  ///   Completion::error;
  /// - if its start fails (cgroup, pipes, clone, exec: what spawn() would
  ///   have thrown), completes with that sentence as Completion::error
  ///   (exit_code -1, a failed result) instead of spawn() throwing.
  /// Bad input, a missing binary and a shut-down supervisor still throw
  /// from spawn() itself, queued or not. Zero (the default): every spawn()
  /// starts its process before it returns, so pid() is always known and
  /// every start failure is thrown. Programs that start hundreds of
  /// payloads from one callback set it (500-1000 us are good values).
  /// Output and exits beyond the turn's slice are handled on the next
  /// turns (at least one event a turn), so thousands of payloads ending at
  /// once do not stall timers either.
  std::chrono::microseconds spawn_slice{0};
  /// File descriptors this process's fd table is made to hold when the
  /// Supervisor is constructed, capped at RLIMIT_NOFILE's soft limit. The
  /// kernel grows the table as fds are opened and never shrinks it; in a
  /// process with more than one thread (Node.js, any program with a thread
  /// pool) each growth stalls the call that needs it for milliseconds, and
  /// that call is often a spawn(), holding the loop. Reserving up front
  /// moves that cost to the constructor, once per process (later
  /// Supervisors find the table grown; a single-threaded process pays
  /// nearly nothing either way). A live payload holds three to five fds
  /// (pidfd, stdout, stderr; stdin and an own cgroup's events file when
  /// used): the default fits ~200-300 at once. For more, raise
  /// RLIMIT_NOFILE and set ~5 x the most you run at once plus what the
  /// program holds itself. 0: no reservation. Never an error: a table that
  /// cannot be grown grows on demand.
  std::size_t reserve_fds = 1024;
  /// Parent cgroup for PayloadRun::in_cgroup names: absolute, or relative
  /// to the cgroup2 mount. Empty: in_cgroup() fails at spawn.
  ///
  /// Cgroups left by a dead supervisor: an own cgroup (PayloadRun::own_cgroup)
  /// is named "payload-<pid>-<start>-<pidns>-<n>" after the supervisor
  /// process that made it: its pid, its start time (field 22 of
  /// /proc/<pid>/stat) and the inode of its pid namespace. It is stale when
  /// that namespace is ours and no process has that pid, or the one that
  /// has it started at another time (the pid was reused); a creator in
  /// another pid namespace, or one that cannot be checked, is never judged
  /// dead. The constructor looks for stale cgroups directly under
  /// cgroup_parent (and spawn() under a named cgroup the first time it
  /// makes an own cgroup there): each gets "1" in its cgroup.kill, is
  /// waited for until empty (at most 5 s for all, so the constructor may
  /// block that long) and is removed with its child cgroups, with one info
  /// log line each; one that stays populated is left for a later
  /// supervisor. Own cgroups of Payload::survives_supervisor payloads
  /// ("survivor-...") are never killed, only removed once empty. Named
  /// cgroups and other directories are never touched.
  std::string cgroup_parent;
  /// Create a named cgroup under cgroup_parent when it does not exist
  /// (logged at info). Off: a missing cgroup is a spawn error.
  bool create_cgroups = false;
  /// Receives every completed invocation. Null: no emission (unless a ring
  /// is configured).
  std::shared_ptr<Emitter> emitter;
  /// Shared-memory ring to emit to (name under /dev/shm). Empty: the
  /// PAYLOADRUN_RING environment variable, if set; else none.
  std::string ring;
  /// Payload-index space, for runs split over several processes or
  /// machines: this supervisor's invocations get the indices
  /// k * index_stride + index_offset, where k is the process-wide sequence
  /// (0, 1, 2, ...). Slice I of N runs with stride N and offset I, so the
  /// slices' indices never collide. Requires index_offset < index_stride;
  /// otherwise the constructor throws Error(invalid_argument).
  std::uint64_t index_stride = 1;
  std::uint64_t index_offset = 0;
};

class Supervisor;
class PayloadHandle;

using CompletionCallback = std::function<void(Completion)>;

/// Builder for one invocation of a Payload. Obtained from
/// Supervisor::payload(); args and checks start as the payload's defaults.
class PAYLOADRUN_API PayloadRun {
 public:
  PayloadRun(Supervisor& supervisor, std::shared_ptr<const Payload> payload);

  /// Append one argument.
  PayloadRun& arg(std::string a);
  /// Append several arguments.
  PayloadRun& args(std::vector<std::string> as);
  /// Drop every argument (the defaults and earlier ones).
  PayloadRun& clear_args();
  /// Append a check. For a Deferred payload a metric-level check throws
  /// Error(forbidden_check): declare it in Payload::default_checks.
  PayloadRun& check(MetricCheck c);
  /// Drop every check (the defaults and earlier ones).
  PayloadRun& clear_checks();
  /// Place the payload in the cgroup `name` under the supervisor's
  /// cgroup_parent. `name` is a relative path, normalised here as paths
  /// join: leading and trailing '/' are stripped, runs of '/' count as one
  /// and "." components are dropped ("/w/", "a//b", "./w" name "w", "a/b"
  /// and "w"). Error(invalid_argument), naming the payload and the name,
  /// for a name that is empty after that, has a ".." component or
  /// contains a NUL byte.
  PayloadRun& in_cgroup(std::string name);
  /// Place this invocation in a fresh cgroup of its own (created under
  /// cgroup_parent, removed after completion), so kill reaches descendants
  /// that left the process group. If the supervisor dies first, the next
  /// Supervisor with the same cgroup_parent kills what is left in it and
  /// removes it (SupervisorOptions::cgroup_parent).
  PayloadRun& own_cgroup(bool on = true);
  /// Deadline for the whole invocation, pipe EOF included. At expiry the
  /// payload is stopped (by default: its process group and own cgroup are
  /// SIGKILLed at once, see stop_signal()), partial output kept, exit_code
  /// = -1 and timed_out = true. Not an error. The killed processes then get
  /// SupervisorOptions::drain_grace to close the pipes; an escaped
  /// descendant holding them longer is cut off (drain_cut_short).
  PayloadRun& timeout(std::chrono::milliseconds d);
  /// A graceful stop, for payloads that print their results when told to
  /// stop (fio, schbench, stress-ng on SIGINT or SIGTERM). At the deadline,
  /// on kill()/kill_async() and on Supervisor::shutdown() the process group
  /// (the leader alone with Payload::uses_parent_pgrp) gets `signal`, then
  /// SIGKILL (group and own cgroup) once stop_grace() has passed with the
  /// leader still alive. Output written meanwhile is captured, extracted
  /// and checked as usual; the result still says timed_out (deadline) or
  /// killed (kill, shutdown), whatever the exit code. When the leader exits
  /// during the grace, the rest of its group is SIGKILLed at once, as after
  /// any leader's exit. The deadline bounds a kill()'s grace too: when it
  /// passes during one, SIGKILL follows at once. Destroying the Supervisor
  /// or a live handle during the grace kills at once. Descendants that left
  /// the group do not get `signal` (an own cgroup still kills them at the
  /// end). Default: no stop signal, SIGKILL at once (ktstr's rule); SIGKILL
  /// here means the same. Error(invalid_argument), naming the payload, for
  /// a number that is not a signal (1 to SIGRTMAX) or is SIGSTOP.
  PayloadRun& stop_signal(int signal);
  /// How long the stop signal has before SIGKILL follows (default 1 s once
  /// a stop signal is set; 0: SIGKILL follows on the next loop turn). Set
  /// alone, the stop signal is SIGTERM. Error(invalid_argument), naming the
  /// payload, for a negative duration.
  PayloadRun& stop_grace(std::chrono::milliseconds grace);
  /// Set an environment variable for the child (the child inherits the
  /// supervisor's environment by default).
  PayloadRun& env(std::string key, std::string value);
  /// Remove an inherited environment variable.
  PayloadRun& env_remove(std::string key);
  /// Start the child from an empty environment (then add with env()).
  PayloadRun& clear_env();
  /// Working directory of the child (default: the supervisor's).
  PayloadRun& working_dir(std::string dir);
  /// Bytes written to the child's stdin, which is then closed. Default:
  /// stdin is /dev/null.
  PayloadRun& stdin_bytes(std::string bytes);

  const std::vector<std::string>& effective_args() const noexcept { return args_; }
  const std::vector<MetricCheck>& effective_checks() const noexcept { return checks_; }
  const std::optional<std::string>& cgroup() const noexcept { return cgroup_; }
  std::optional<std::chrono::milliseconds> deadline() const noexcept { return timeout_; }
  /// The signal a stop sends first: SIGKILL unless stop_signal() or
  /// stop_grace() was called.
  int effective_stop_signal() const noexcept;
  /// The grace before SIGKILL: 0 when the stop signal is SIGKILL.
  std::chrono::milliseconds effective_stop_grace() const noexcept;
  /// The grace when a stop signal is set without stop_grace().
  static constexpr std::chrono::milliseconds default_stop_grace{1000};
  const Payload& payload() const noexcept { return *payload_; }
  const std::shared_ptr<const Payload>& payload_ptr() const noexcept { return payload_; }
  bool wants_own_cgroup() const noexcept { return own_cgroup_; }
  /// Environment edits in call order: a value sets, nullopt removes.
  const std::vector<std::pair<std::string, std::optional<std::string>>>& env_changes()
      const noexcept {
    return env_;
  }
  bool clears_env() const noexcept { return clear_env_; }
  const std::optional<std::string>& working_directory() const noexcept { return working_dir_; }
  const std::optional<std::string>& stdin_data() const noexcept { return stdin_; }

  /// Spawn and drive the loop until this invocation completes. Throws
  /// Error(in_callback) when called from inside a loop callback (see
  /// Supervisor for what is detected).
  Completion run();
  /// Spawn; `on_done` runs on the loop thread when the invocation
  /// completes (never if the Supervisor is destroyed first). Throws Error
  /// when the spawn fails; then `on_done` is never called. A spawn queued
  /// by spawn pacing (SupervisorOptions::spawn_slice) throws only for bad
  /// input, a missing binary or a shut-down supervisor; its start
  /// failures arrive in its Completion::error.
  void spawn(CompletionCallback on_done);
  /// Spawn and return a handle. Throws Error when the spawn fails (see
  /// spawn(on_done) for a queued spawn).
  PayloadHandle spawn();
  /// Non-throwing forms, for callers that spawn thousands: on failure they
  /// return nullopt / false and set `ec` to the Errc the throwing form
  /// would throw (`ec == Errc::not_found`; category payloadrun::
  /// error_category()), and `*message`, if given, to the same sentence as
  /// its Error::what(); on success `ec` is cleared. Out of memory gives
  /// std::errc::not_enough_memory.
  std::optional<PayloadHandle> spawn(std::error_code& ec, std::string* message = nullptr) noexcept;
  bool spawn(CompletionCallback on_done, std::error_code& ec,
             std::string* message = nullptr) noexcept;

 private:
  friend class Supervisor;
  Supervisor* supervisor_;
  std::shared_ptr<const Payload> payload_;
  std::vector<std::string> args_;
  std::vector<MetricCheck> checks_;
  std::optional<std::string> cgroup_;
  bool own_cgroup_ = false;
  std::optional<std::chrono::milliseconds> timeout_;
  std::optional<int> stop_signal_;
  std::optional<std::chrono::milliseconds> stop_grace_;
  std::vector<std::pair<std::string, std::optional<std::string>>> env_;
  bool clear_env_ = false;
  std::optional<std::string> working_dir_;
  std::optional<std::string> stdin_;
};

namespace detail {
struct Invocation;
}

/// A running (or finished, not yet consumed) invocation. Exactly one
/// terminal result per handle: wait(), kill(), a try_wait() that returns a
/// value, or on_exit(). A second consume throws Error(already_consumed)
/// naming the payload. Destroying a live handle kills the process group
/// (and the payload's own cgroup), reaps it and logs a warning that its
/// metrics were lost; destroying one whose payload ended but whose result
/// no terminal call took records nothing and warns the same way. After
/// the Supervisor is destroyed, wait()/kill()/try_wait() return a result
/// that was complete by then and throw Error(shut_down) for a payload it
/// killed.
class PAYLOADRUN_API PayloadHandle {
 public:
  PayloadHandle(PayloadHandle&&) noexcept;
  PayloadHandle& operator=(PayloadHandle&&) noexcept;
  PayloadHandle(const PayloadHandle&) = delete;
  PayloadHandle& operator=(const PayloadHandle&) = delete;
  ~PayloadHandle();

  const std::string& payload_name() const noexcept;
  /// The payload's pid until the handle is consumed; then nullopt. Also
  /// nullopt while the invocation waits in the spawn queue
  /// (SupervisorOptions::spawn_slice).
  std::optional<int> pid() const noexcept;
  /// True once the invocation has completed (result ready).
  bool done() const noexcept;

  /// Drive the loop until the invocation completes; return its result.
  /// Throws Error(in_callback) from inside a loop callback.
  Completion wait();
  /// Stop the payload (SIGKILL to its process group, or the graceful stop
  /// of PayloadRun::stop_signal()), then as wait().
  Completion kill();
  /// Run the loop once without blocking (not inside a loop callback: there
  /// it only looks); the result if complete.
  std::optional<Completion> try_wait();
  /// Deliver the result to `cb` on the loop thread when complete (at once,
  /// if already complete). Consumes the handle.
  void on_exit(CompletionCallback cb);
  /// kill() without waiting (the result arrives through wait/on_exit).
  void kill_async();

 private:
  friend class PayloadRun;
  PAYLOADRUN_INTERNAL explicit PayloadHandle(std::shared_ptr<detail::Invocation> inv);
  std::shared_ptr<detail::Invocation> inv_;
};

namespace detail {
struct SupervisorImpl;
}

/// Supervises payloads on one libuv loop. Not thread-safe: use it from the
/// loop's thread. Payloads die with that thread (Payload::survives_supervisor):
/// keep it running for as long as payloads do.
///
/// Callbacks: any callback of ours (spawn(cb), on_exit, an Emitter) may
/// spawn, drop handles, call shutdown() or destroy the Supervisor itself.
///
/// Blocking calls (run(), PayloadRun::run(), wait(), kill()) drive the
/// loop with uv_run, which must not be re-entered. They throw
/// Error(in_callback) when called from one of our callbacks, or from any
/// callback (a host's too) that runs while one of these calls drives the
/// loop. What cannot be detected: a host's own callback on an embedded
/// loop that the host runs itself (libuv does not say whether a loop is
/// running); there, use spawn(cb) or on_exit() instead.
///
/// Teardown. shutdown() refuses further spawns (Error(shut_down)), stops
/// every live payload as kill() does (SIGKILL to its group, or its
/// PayloadRun::stop_signal() and grace) and returns at once; their
/// completions still arrive as the loop runs (killed; after a SIGKILL
/// exit_code -1, killed by signal 9); once none is live the Supervisor
/// closes its own handles, so the loop can end. The destructor refuses further spawns too, kills and
/// reaps every live payload synchronously without delivering its
/// completion (its callback is destroyed uncalled; a handle's wait()
/// throws Error(shut_down)), logs one warning each, records results still
/// waiting for a terminal call, and closes its handles: an own loop is
/// then run until they closed and closed; an embedded loop needs the host
/// to run it once more (UV_RUN_NOWAIT) before uv_loop_close().
class PAYLOADRUN_API Supervisor {
 public:
  /// Own a private loop (driven by run(), wait() and friends only).
  explicit Supervisor(SupervisorOptions options = {});
  /// Embed in `loop`, which the caller runs.
  explicit Supervisor(uv_loop_s* loop, SupervisorOptions options = {});
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  PayloadRun payload(const Payload& p);
  PayloadRun payload(std::shared_ptr<const Payload> p);

  uv_loop_s* loop() const noexcept;
  const SupervisorOptions& options() const noexcept;

  /// Payloads spawned and not yet completed.
  std::size_t live() const noexcept;
  /// Drive the loop until no payload is live. Throws Error(in_callback)
  /// inside a loop callback.
  void run();
  /// See "Teardown" above. Idempotent; callable from any callback.
  void shutdown();

 private:
  friend class PayloadRun;
  friend class PayloadHandle;
  std::shared_ptr<detail::SupervisorImpl> impl_;
};

}  // namespace payloadrun
