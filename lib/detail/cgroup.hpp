// cgroup v2 support: name validation, cgroup2 mount discovery, and an RAII
// handle on one cgroup directory (placement, populated state, kill, stats).
//
// Everything here is synchronous and uses plain POSIX/Linux calls; the
// supervisor drives it from its loop thread. Failures are thrown as
// payloadrun::Error with an actionable message, except where a function is
// marked noexcept (those log through detail::logger() instead).
//
// Not exported from the shared library (hidden visibility): tests that
// use it link the library's objects (tests/meson.build: internal_dep).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "detail/fd.hpp"

namespace payloadrun::detail {

/// Validate a cgroup name given to PayloadRun::in_cgroup and return it
/// normalised, relative to the supervisor's cgroup parent.
///
/// The name joins the parent as a path does (the reference joins it with
/// Path::join): empty components (leading, trailing or repeated '/') and
/// "." components are dropped, so "/w/", "a//b" and "./w" give "w", "a/b"
/// and "w". Rejected with Error(Errc::invalid_argument):
///  - a NUL byte;
///  - a name with no component left (it would target the parent itself);
///  - any ".." component (it could escape the parent);
///  - a newline (the kernel refuses it in cgroup names, since it would
///    corrupt /proc/<pid>/cgroup);
///  - a component longer than 255 bytes (NAME_MAX).
std::string validate_cgroup_name(std::string_view name);

/// Mount point of the first cgroup2 filesystem listed in a mountinfo file
/// (the fstype field after the " - " separator is "cgroup2"); octal escapes
/// such as "\040" in the mount point are decoded. nullopt when the file
/// lists no cgroup2 mount or cannot be read.
std::optional<std::string> find_cgroup2_mount(
    const std::string& mountinfo_path = "/proc/self/mountinfo");

/// Resolve a supervisor's cgroup_parent to a canonical absolute directory.
/// An absolute path must lie inside the cgroup2 mount (or be the mount); a
/// relative one is taken relative to the mount. The directory must exist.
/// Throws Error(Errc::cgroup): empty parent, no cgroup2 mount, missing,
/// not a directory, or not inside the cgroup2 filesystem.
std::string resolve_cgroup_parent(std::string_view parent);

/// The process that created a cgroup with Cgroup::create_unique, as its
/// name records it: pid, start time (field 22 of /proc/<pid>/stat, clock
/// ticks after boot; 0 when unreadable) and the inode of its pid namespace.
struct CgroupCreator {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  std::uint64_t pid_ns = 0;
  friend bool operator==(const CgroupCreator&, const CgroupCreator&) = default;
};

/// The calling process as a CgroupCreator (read afresh: a fork is another
/// creator). Never throws.
CgroupCreator this_creator() noexcept;

/// Split a name made by Cgroup::create_unique,
/// "<prefix>-<pid>-<start_time>-<pid_ns>-<n>", into its prefix and creator.
/// nullopt for any other name (no prefix, a field that is not a decimal
/// number, a pid of 0).
std::optional<std::pair<std::string, CgroupCreator>> parse_unique_name(
    std::string_view name);

/// Whether `creator` may still be running: false only when it is certainly
/// gone (no process with its pid, or one with another start time); true
/// when it lives, cannot be checked, or belongs to another pid namespace.
bool creator_alive(const CgroupCreator& creator) noexcept;

/// create_unique prefixes of per-invocation cgroups (PayloadRun::own_cgroup):
/// killed by sweep_stale_cgroups once their creator is gone ...
inline constexpr std::string_view own_cgroup_prefix = "payload";
/// ... or, for payloads that survive their supervisor, only removed once
/// empty.
inline constexpr std::string_view survivor_cgroup_prefix = "survivor";

/// Clean up after dead supervisors: every direct child of the cgroup2
/// directory `parent` named by create_unique with own_cgroup_prefix whose
/// creator is gone (creator_alive false) gets "1" in cgroup.kill; once all
/// are empty (waiting at most `wait` in all) each is removed with its child
/// cgroups, logging one info line per cgroup. Those with
/// survivor_cgroup_prefix are removed only if empty, never killed. Others
/// are left alone. Returns how many were removed. Never throws; logs.
std::size_t sweep_stale_cgroups(
    const std::string& parent, std::chrono::milliseconds wait = std::chrono::seconds(5)) noexcept;

/// Resource figures of a cgroup; each is set only where its interface file
/// exists (memory.peak: memory controller on v2, Linux >= 5.19; cpu.stat's
/// usage_usec: always on v2; pids.peak: pids controller, Linux >= 6.1).
struct CgroupStats {
  std::optional<std::uint64_t> memory_peak_bytes;
  std::optional<std::uint64_t> cpu_usage_usec;
  std::optional<std::uint64_t> pids_peak;
};

/// An open cgroup v2 directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC). Movable,
/// not copyable. The destructor closes the descriptor only: it never
/// removes the directory (call remove() once the cgroup is empty).
class Cgroup {
 public:
  Cgroup() = default;
  Cgroup(Cgroup&& o) noexcept
      : path_(std::move(o.path_)), dir_(std::move(o.dir_)), owns_(std::exchange(o.owns_, false)) {}
  Cgroup& operator=(Cgroup&& o) noexcept {
    if (this != &o) {
      path_ = std::move(o.path_);
      dir_ = std::move(o.dir_);
      owns_ = std::exchange(o.owns_, false);
    }
    return *this;
  }
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup() = default;

  /// Open the cgroup at absolute `path`. With create=true, missing
  /// directories are created (logged at info) -- only ever inside an
  /// existing cgroup2 directory. The result does not own the directory
  /// (owns_directory() is false even if it was created here: a named
  /// cgroup may be shared by several invocations).
  /// Then checks that a process can be placed in it: it is on cgroup2, its
  /// cgroup.type is not "domain invalid" (EOPNOTSUPP), a "domain" cgroup
  /// has no controllers in cgroup.subtree_control (the no-internal-process
  /// rule, EBUSY; the root cgroup is exempt), and cgroup.procs opens for
  /// writing. Throws Error(Errc::cgroup) naming the path, with the errno.
  static Cgroup open(const std::string& path, bool create);

  /// mkdir a fresh child "<prefix>-<pid>-<start_time>-<pid_ns>-<n>" (the
  /// caller as this_creator(); n from a per-process counter; a leftover name
  /// is skipped) under the cgroup2 directory `parent` and open it;
  /// owns_directory() is true. `prefix` must be a non-empty
  /// single path component (else Error(invalid_argument)); other failures
  /// throw Error(Errc::cgroup).
  static Cgroup create_unique(const std::string& parent, std::string_view prefix);

  /// Open the existing cgroup2 directory `path` as owned (remove() rmdirs
  /// it), with none of open()'s placement checks: for cleaning up a cgroup
  /// someone else created. Throws Error(Errc::cgroup).
  static Cgroup adopt(const std::string& path);

  const std::string& path() const noexcept { return path_; }
  int dir_fd() const noexcept { return dir_.get(); }
  bool owns_directory() const noexcept { return owns_; }
  explicit operator bool() const noexcept { return static_cast<bool>(dir_); }

  /// cgroup.procs opened O_WRONLY|O_CLOEXEC. A forked child writes "0" to
  /// it before exec so the payload starts inside the cgroup.
  UniqueFd open_procs() const;
  /// cgroup.events opened O_RDONLY|O_CLOEXEC (POLLPRI / inotify IN_MODIFY
  /// report changes).
  UniqueFd open_events() const;
  /// The "populated" field of cgroup.events: true while any process lives
  /// in this cgroup or a descendant. Throws Error(Errc::cgroup).
  bool populated() const;

  /// Kill every process in the cgroup and its descendants: "1" into
  /// cgroup.kill where present (Linux >= 5.14), else kill_with_signals().
  /// Does not wait for the cgroup to empty. Never throws; logs failures.
  void kill() noexcept;
  /// The fallback of kill(), usable on its own: up to a bounded number of
  /// rounds, read cgroup.procs (cgroup.threads in a threaded cgroup) of
  /// this cgroup and every descendant and SIGKILL each pid not yet
  /// signalled (never the caller itself); stops when a round finds no new
  /// pid. Refuses (logs an error) on the root cgroup. Never throws.
  void kill_with_signals() noexcept;

  /// rmdir the directory if owns_directory() (true when not owned: nothing
  /// to do). On failure (EBUSY while still populated or with children)
  /// returns false and logs a warning; ownership is kept so it can be
  /// retried. Never throws.
  bool remove() noexcept;

  /// memory.peak, cpu.stat usage_usec, pids.peak, each where present and
  /// parseable. Never throws.
  CgroupStats stats() const noexcept;

 private:
  Cgroup(std::string path, UniqueFd dir, bool owns) noexcept
      : path_(std::move(path)), dir_(std::move(dir)), owns_(owns) {}

  std::string path_;
  UniqueFd dir_;
  bool owns_ = false;
};

}  // namespace payloadrun::detail
