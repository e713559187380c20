// Spawn stage: resolve the binary, build argv/envp, create the pipes and
// start the child, either with a vfork-style clone (default: the cost does
// not grow with the parent's heap) or with libuv's uv_spawn (for bench/).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "detail/errno_text.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "detail/spawn_plan.hpp"
#include "payloadrun/error.hpp"

extern char** environ;

namespace payloadrun::detail {
namespace {

#ifndef CLONE_PIDFD
constexpr int clone_pidfd_flag = 0x00001000;
#else
constexpr int clone_pidfd_flag = CLONE_PIDFD;
#endif
constexpr unsigned close_range_unshare = 1U << 1;  // CLOSE_RANGE_UNSHARE (Linux 5.9)

std::string not_found_text(const std::string& binary, bool searched_path) {
  return fmt::format(
      "spawn '{}': binary not found{}. Remediation: install it or give its absolute path. If "
      "'{}' is a script, execve(2) also returns ENOENT when its `#!` line names an interpreter "
      "that is missing (the error names the script but the missing file is the interpreter): "
      "install the interpreter",
      binary, searched_path ? " on PATH" : "", binary);
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// PATH lookup in the parent (as posix_spawnp and Go's LookPath do), so the
// child only ever calls execve and no shell is involved.
std::string resolve_binary(const Payload& p) {
  const std::string& bin = p.binary;
  if (bin.empty()) {
    throw_spawn(p, Errc::invalid_argument, "the payload names no binary; set Payload::binary", 0);
  }
  if (bin.find('\0') != std::string::npos) {
    throw_spawn(p, Errc::invalid_argument, "the binary name contains a NUL byte", 0);
  }
  if (bin.find('/') != std::string::npos) return bin;  // execve says if it is not there
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  bool saw_eacces = false;
  while (true) {
    const auto colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    std::string candidate = dir.empty() ? bin : fmt::format("{}/{}", dir, bin);
    if (is_executable_file(candidate)) return candidate;
    if (::access(candidate.c_str(), F_OK) == 0) saw_eacces = true;
    if (colon == std::string_view::npos) break;
    path = path.substr(colon + 1);
  }
  if (saw_eacces) {
    throw_spawn(p, Errc::spawn_failed,
                fmt::format("spawn '{}': found on PATH but not executable (EACCES); chmod +x it", bin),
                EACCES);
  }
  throw_spawn(p, Errc::not_found, not_found_text(bin, true), ENOENT);
}

const char* step_text(int step) {
  switch (step) {
    case step_pdeathsig: return "prctl(PR_SET_PDEATHSIG)";
    case step_orphaned: return "starting (the supervisor died first)";
    case step_pgrp: return "setpgid";
    case step_cgroup: return "joining the cgroup (write to cgroup.procs)";
    case step_stdio: return "setting up stdin/stdout/stderr";
    case step_fds: return "closing inherited file descriptors";
    case step_cwd: return "changing to the working directory";
    case step_exec: return "execve";
    default: return "?";
  }
}

// The child shares the parent's memory until execve, so it makes system
// calls directly: a libc wrapper may be replaced by a sanitizer's interceptor
// that updates the runtime's state in that shared memory (TSan's sigaction
// interceptor records SIG_DFL in its handler table, and the parent's own
// SIGTERM handler then never runs again; its _exit runs the runtime's
// finaliser in the parent's memory). syscall(2) itself is not intercepted.
inline long sys(long number, long a = 0, long b = 0, long c = 0, long d = 0) {
  return ::syscall(number, a, b, c, d);
}

[[noreturn]] void child_fail(ChildPlan* plan, int step) {
  plan->failed_errno = errno;
  plan->failed_step = step;
  sys(SYS_exit_group, 127);
  __builtin_unreachable();
}

// Sets every catchable signal to SIG_DFL in the child only (its handler table
// is its own: no CLONE_SIGHAND). An all-zero kernel sigaction is SIG_DFL with
// no flags and an empty mask, whatever the architecture's field order.
void child_default_signals() {
  const unsigned long dfl[4] = {0, 0, 0, 0};
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sys(SYS_rt_sigaction, sig, reinterpret_cast<long>(dfl), 0, NSIG / 8);  // EINVAL for some: fine
  }
}

// Runs in the child on its own stack, sharing the parent's memory until
// execve. Raw system calls only (see sys()); not instrumented by sanitizers
// (their runtimes are not safe on a foreign stack in a vfork child).
__attribute__((no_sanitize("address", "undefined", "thread"))) int child_main(void* arg) {
  auto* plan = static_cast<ChildPlan*>(arg);
  if (plan->die_with_parent) {
    if (sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(plan, step_pdeathsig);
    // A parent that died before the prctl never sends it: we were
    // re-parented (to a subreaper or init), so stop before running anything.
    if (sys(SYS_getppid) != plan->parent_pid) {
      errno = ESRCH;
      child_fail(plan, step_orphaned);
    }
  }
  // Default dispositions for every signal (a handler of the parent's must
  // never run here; ignored signals must not stay ignored in the payload).
  child_default_signals();
  if (plan->new_pgrp && sys(SYS_setpgid, 0, 0) != 0) child_fail(plan, step_pgrp);
  if (plan->cgroup_procs >= 0) {
    // "0" names the writing process: we join before running any payload code.
    if (sys(SYS_write, plan->cgroup_procs, reinterpret_cast<long>("0"), 1) != 1) child_fail(plan, step_cgroup);
  }
  if (plan->keep_below > 0) {
    // Still on the parent's fd table: take a private copy of only the fds
    // below keep_below (our stdio slots among them). The kernel copies just
    // those, so this costs the same with 10 or 100,000 fds open in the parent,
    // where a plain clone copies and then closes every one of them.
    if (::syscall(SYS_close_range, plan->keep_below, ~0U, close_range_unshare) != 0) {
      child_fail(plan, step_fds);
    }
  }
  // Move sources out of 0..2 first so dup2 cannot clobber one with another.
  int src[3];
  for (int i = 0; i < 3; ++i) {
    src[i] = plan->stdio[i];
    if (src[i] < 3) {
      src[i] = static_cast<int>(sys(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 3));
      if (src[i] < 0) child_fail(plan, step_stdio);
    }
  }
  for (int i = 0; i < 3; ++i) {
    // dup3 (src[i] >= 3 != i here): dup2 has no system call on every architecture.
    if (sys(SYS_dup3, src[i], i, 0) < 0) child_fail(plan, step_stdio);
  }
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
    if (errno != ENOSYS) child_fail(plan, step_fds);
    // Pre-5.9 kernels: mark everything close-on-exec the slow way.
    const long max = ::sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < max; ++fd) sys(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
  }
  if (plan->cwd != nullptr && sys(SYS_chdir, reinterpret_cast<long>(plan->cwd)) != 0) child_fail(plan, step_cwd);
  const unsigned long empty_mask[NSIG / 8 / sizeof(unsigned long)] = {};
  sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(empty_mask), 0, NSIG / 8);
  sys(SYS_execve, reinterpret_cast<long>(plan->path), reinterpret_cast<long>(plan->argv),
      reinterpret_cast<long>(plan->envp));
  child_fail(plan, step_exec);
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe(const Payload& p, const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    const int e = errno;
    throw_spawn(p, Errc::spawn_failed,
                fmt::format("pipe2 for {} failed: {}{}", what, errno_text(e),
                            e == EMFILE || e == ENFILE
                                ? "; raise RLIMIT_NOFILE (ulimit -n) or spawn fewer payloads at once"
                                : ""),
                e);
  }
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Child environment: the supervisor's, edited in call order. Returns empty
// when unchanged (the caller then passes `environ` itself).
bool build_env(const PayloadRun& run, std::vector<std::string>& out) {
  if (!run.clears_env() && run.env_changes().empty()) return false;
  if (!run.clears_env()) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) out.emplace_back(*e);
  }
  for (const auto& [key, value] : run.env_changes()) {
    const std::string prefix = key + "=";
    std::erase_if(out, [&](const std::string& kv) { return kv.compare(0, prefix.size(), prefix) == 0; });
    if (value) out.push_back(prefix + *value);
  }
  return true;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void validate_run(const PayloadRun& run) {
  const Payload& p = run.payload();
  for (const auto& a : run.effective_args()) {
    if (a.find('\0') != std::string::npos) {
      throw_spawn(p, Errc::invalid_argument, fmt::format("argument '{}' contains a NUL byte", a), 0);
    }
  }
  for (const auto& [key, value] : run.env_changes()) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos) {
      throw_spawn(p, Errc::invalid_argument,
                  fmt::format("environment variable name '{}' is empty or contains '=' or NUL", key),
                  0);
    }
    if (value && value->find('\0') != std::string::npos) {
      throw_spawn(p, Errc::invalid_argument,
                  fmt::format("environment variable '{}' has a value containing a NUL byte", key), 0);
    }
  }
}

// For one clone, puts the child's stdin/stdout/stderr into the supervisor's
// low slots (so the child's private fd table need only reach them), and
// puts /dev/null back afterwards, so our copies of a pipe's write end never
// outlive the spawn (EOF depends on it). Without slots: a no-op.
class StdioSlots {
 public:
  StdioSlots(SupervisorImpl& impl, ChildPlan& plan) : impl_(impl), plan_(plan) {
    for (std::size_t i = 0; i < 3; ++i) original_[i] = plan.stdio[i];
    if (impl.spawn_keep_below == 0) return;
    for (std::size_t i = 0; i < 3; ++i) {
      const int slot = impl.spawn_slots[i].get();
      used_[i] = plan.stdio[i] != impl.dev_null.get();  // /dev/null is there already
      if (used_[i] && ::dup3(plan.stdio[i], slot, O_CLOEXEC) < 0) {
        const int e = errno;
        used_[i] = false;
        restore();
        throw Error(Errc::spawn_failed,
                    fmt::format("spawn: dup3 into stdio slot {} failed: {}", slot, errno_text(e)), e);
      }
      plan.stdio[i] = slot;
    }
    plan.keep_below = impl.spawn_keep_below;
  }
  StdioSlots(const StdioSlots&) = delete;
  StdioSlots& operator=(const StdioSlots&) = delete;
  ~StdioSlots() { restore(); }

  // Puts /dev/null back into the slots and the plan's own fds back into it.
  void restore() noexcept {
    for (std::size_t i = 0; i < 3; ++i) plan_.stdio[i] = original_[i];
    plan_.keep_below = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      if (!std::exchange(used_[i], false)) continue;
      if (::dup3(impl_.dev_null.get(), impl_.spawn_slots[i].get(), O_CLOEXEC) < 0) {
        // Never keep a pipe end alive in a slot: close it, and spawn the
        // slow way from now on.
        const int e = errno;  // before the logger, which may change it
        logger()->warn("spawn: cannot reset stdio slot {} ({}); falling back to copying the fd table",
                       impl_.spawn_slots[i].get(), errno_text(e));
        impl_.spawn_slots[i].reset();
        impl_.spawn_keep_below = 0;
      }
    }
  }

 private:
  SupervisorImpl& impl_;
  ChildPlan& plan_;
  int original_[3] = {-1, -1, -1};
  bool used_[3] = {false, false, false};
};

// Starts the child with clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD): we resume
// once it has called execve (or failed), so failures are synchronous.
void clone_vfork(SupervisorImpl& impl, Invocation& inv, const PayloadRun& run,
                 ChildPlan& plan, const std::string& exec_path) {
  const Payload& p = *inv.payload;
  while (true) {
    StdioSlots slots(impl, plan);
    const bool shared_table = plan.keep_below > 0;
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    char* stack_top = impl.child_stack.get() + SupervisorImpl::child_stack_size;
    const int flags = CLONE_VM | CLONE_VFORK | clone_pidfd_flag | SIGCHLD | (shared_table ? CLONE_FILES : 0);
    plan.failed_step = step_none;
    plan.failed_errno = 0;
    const pid_t pid = ::clone(child_main, stack_top, flags, &plan, &pidfd, nullptr, nullptr);
    const int clone_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    slots.restore();  // the child has its own table (or is gone): /dev/null again
    if (pid < 0) {
      throw_spawn(p, Errc::spawn_failed,
                  fmt::format("clone failed: {}{}", errno_text(clone_errno),
                              clone_errno == EAGAIN ? "; the user's process limit (RLIMIT_NPROC, ulimit -u) or the "
                                                      "system's pid_max is reached: raise it or spawn "
                                                      "fewer payloads at once"
                              : clone_errno == EMFILE || clone_errno == ENFILE
                                  ? "; no descriptor left for the child's pidfd: raise RLIMIT_NOFILE "
                                    "(ulimit -n) or spawn fewer payloads at once"
                                  : ""),
                  clone_errno);
    }
    UniqueFd pidfd_owner(pidfd);
    if (plan.failed_step != step_none) {
      reap_pidfd_blocking(pidfd);
      const int e = plan.failed_errno;
      if (shared_table && plan.failed_step == step_fds && impl.spawn_keep_below > 0) {
        // close_range exists but refuses CLOSE_RANGE_UNSHARE (a seccomp
        // filter, an emulation): copy the fd table from now on, and retry.
        logger()->warn("spawn: close_range(CLOSE_RANGE_UNSHARE) failed in the child ({}); "
                       "spawning without the stdio slots from now on",
                       errno_text(e));
        impl.spawn_keep_below = 0;
        continue;
      }
      throw_spawn(p, exec_failure_code(plan.failed_step, e),
                  exec_failure_text(p, exec_path, plan.failed_step, e, run), e);
    }
    inv.pid = pid;
    inv.pidfd = std::move(pidfd_owner);
    return;
  }
}

// Resolve where the payload runs: a named cgroup under the supervisor's
// parent, or a fresh one of its own. Validation happened in the builder.
void prepare_cgroup(SupervisorImpl& impl, Invocation& inv, const PayloadRun& run) {
  const Payload& p = *inv.payload;
  if (!run.cgroup() && !run.wants_own_cgroup()) return;
  if (impl.cgroup_parent.empty()) {
    throw_spawn(p, Errc::cgroup,
                "a cgroup was requested but the supervisor has no cgroup parent; set "
                "SupervisorOptions::cgroup_parent (absolute, or relative to the cgroup2 mount)",
                0);
  }
  try {
    if (run.wants_own_cgroup()) {
      const std::string base = run.cgroup() ? fmt::format("{}/{}", impl.cgroup_parent, *run.cgroup())
                                            : impl.cgroup_parent;
      if (run.cgroup()) Cgroup::open(base, impl.options.create_cgroups);
      if (impl.swept_cgroup_bases.insert(base).second) sweep_stale_cgroups(base);
      inv.cgroup.emplace(Cgroup::create_unique(
          base, p.survives_supervisor ? survivor_cgroup_prefix : own_cgroup_prefix));
      inv.cgroup_owned = true;
    } else {
      inv.cgroup.emplace(Cgroup::open(fmt::format("{}/{}", impl.cgroup_parent, *run.cgroup()),
                                      impl.options.create_cgroups));
    }
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("spawn payload '{}': {}", p.name, e.what()), e.sys_errno());
  }
}

}  // namespace

[[noreturn]] void throw_spawn(const Payload& p, Errc code, const std::string& what, int e) {
  throw Error(code, fmt::format("spawn payload '{}': {}", p.name, what), e);
}

std::string exec_failure_text(const Payload& p, const std::string& exec_path, int step, int e,
                              const PayloadRun& run) {
  if (step == step_exec && e == ENOENT) return not_found_text(p.binary, false);
  if (step == step_exec && e == ENOEXEC) {
    return fmt::format("spawn '{}': {} is not an executable format (ENOEXEC): give it a `#!` "
                       "line or run it through its interpreter explicitly",
                       p.binary, exec_path);
  }
  if (step == step_cwd) {
    return fmt::format("spawn '{}': cannot change to working directory '{}': {}", p.binary,
                       run.working_directory().value_or(""), errno_text(e));
  }
  return fmt::format("spawn '{}': {} failed: {}", p.binary, step_text(step), errno_text(e));
}

Errc exec_failure_code(int step, int e) {
  if (step == step_exec && e == ENOENT) return Errc::not_found;
  if (step == step_cgroup) return Errc::cgroup;
  return Errc::spawn_failed;
}

void require_binary_present(const Invocation& inv) {
  // A queued spawn's execve runs after spawn() returned: look now, so a
  // binary that is not there still throws from spawn(). (A PATH lookup
  // already looked.) Once a loop turn per binary: a burst of a thousand
  // spawns of one binary looks once (one that vanishes within the turn
  // fails at its execve, in Completion::error).
  SupervisorImpl& impl = *inv.impl;
  const std::uint64_t turn = uv_now(impl.loop);
  if (impl.present_turn == turn && impl.present_binary == inv.exec_path) return;
  if (::access(inv.exec_path.c_str(), F_OK) != 0 && errno == ENOENT) {
    throw_spawn(*inv.payload, Errc::not_found, not_found_text(inv.payload->binary, false), ENOENT);
  }
  impl.present_turn = turn;
  impl.present_binary = inv.exec_path;
}

void init_spawn_slots(SupervisorImpl& impl) noexcept {
  // close_range(~0U, ~0U, 0) closes nothing: 0 where the call exists.
  if (::syscall(SYS_close_range, ~0U, ~0U, 0U) != 0) {
    const int e = errno;  // before the logger, which may change it
    logger()->debug("close_range unavailable ({}): spawns copy the fd table", errno_text(e));
    return;
  }
  int highest = 0;
  for (auto& slot : impl.spawn_slots) {
    slot = UniqueFd(::fcntl(impl.dev_null.get(), F_DUPFD_CLOEXEC, 3));
    if (!slot) {
      const int e = errno;
      logger()->debug("no fd for a stdio slot ({}): spawns copy the fd table", errno_text(e));
      for (auto& s : impl.spawn_slots) s.reset();
      return;
    }
    highest = std::max(highest, slot.get());
  }
  impl.spawn_keep_below = static_cast<unsigned>(highest) + 1;
}

void discard_cgroup(Invocation& inv) noexcept {
  if (inv.cgroup && inv.cgroup_owned) inv.cgroup->remove();
  inv.cgroup.reset();
}

std::shared_ptr<Invocation> new_invocation(SupervisorImpl& impl, const PayloadRun& run) {
  const Payload& p = run.payload();
  validate_run(run);
  if (impl.shut_down) {
    throw Error(Errc::shut_down,
                fmt::format("spawn payload '{}': the supervisor has been shut down", p.name));
  }
  auto inv = std::allocate_shared<Invocation>(PoolAllocator<Invocation>(impl.invocation_pool));
  inv->impl = &impl;
  inv->payload = run.payload_ptr();
  inv->checks = run.effective_checks();
  inv->backend = impl.options.backend;
  inv->new_pgrp = !p.uses_parent_pgrp;
  inv->index_stride = impl.options.index_stride;
  inv->index_offset = impl.options.index_offset;
  inv->stop_signal = run.effective_stop_signal();
  inv->stop_grace = run.effective_stop_grace();
  inv->exec_path = resolve_binary(p);  // PATH lookup: a binary not on PATH throws here
  return inv;
}

void start_invocation(SupervisorImpl& impl, const std::shared_ptr<Invocation>& inv_ptr,
                      const PayloadRun& run) {
  Invocation* inv = inv_ptr.get();
  const Payload& p = run.payload();
  const std::string exec_path = inv->exec_path;
  std::vector<std::string> arg_strings;
  arg_strings.reserve(run.effective_args().size() + 1);
  arg_strings.push_back(p.binary);
  for (const auto& a : run.effective_args()) arg_strings.push_back(a);
  std::vector<char*> argv = c_strings(arg_strings);
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  const bool custom_env = build_env(run, env_strings);
  if (custom_env) envp = c_strings(env_strings);

  prepare_cgroup(impl, *inv, run);

  Pipe out = make_pipe(p, "stdout");
  Pipe err = make_pipe(p, "stderr");
  Pipe in;
  const bool feed_stdin = run.stdin_data().has_value();
  if (feed_stdin) in = make_pipe(p, "stdin");

  ChildPlan plan;
  plan.path = exec_path.c_str();
  plan.argv = argv.data();
  plan.envp = custom_env ? envp.data() : environ;
  plan.cwd = run.working_directory() ? run.working_directory()->c_str() : nullptr;
  plan.stdio[0] = feed_stdin ? in.read.get() : impl.dev_null.get();
  plan.stdio[1] = out.write.get();
  plan.stdio[2] = err.write.get();
  UniqueFd procs;
  if (inv->cgroup) {
    procs = inv->cgroup->open_procs();
    plan.cgroup_procs = procs.get();
  }
  plan.new_pgrp = inv->new_pgrp;
  plan.die_with_parent = !p.survives_supervisor;
  plan.parent_pid = ::getpid();

  // A burst of spawns keeps the loop from running timers: act on deadlines
  // that passed meanwhile before blocking in another clone.
  enforce_overdue_deadlines(impl);
  if (impl.dispatch_depth == 0) release_pins(impl);  // not inside one of our callbacks
  inv->start = Clock::now();
  if (run.deadline()) inv->deadline = inv->start + *run.deadline();
  inv->keepalive = inv_ptr;  // libuv handles pin the invocation until closed
  try {
    if (inv->backend == SpawnBackend::uv_spawn) {
      uv_backend(impl, *inv, run, plan, exec_path);
    } else {
      ensure_exit_status_kept(impl);
      clone_vfork(impl, *inv, run, plan, exec_path);
    }
  } catch (...) {
    if (inv->holds == 0) inv->keepalive.reset();  // else the close callback frees it
    discard_cgroup(*inv);
    throw;
  }
  invocation_started(*inv);

  // Our copies of the child's ends close now; only the child holds them.
  out.write.reset();
  err.write.reset();
  in.read.reset();
  procs.reset();
  if (feed_stdin) rare_handles(*inv).stdin_data = *run.stdin_data();
  try {
    start_capture(*inv, std::move(out.read), std::move(err.read), std::move(in.write));
    start_exit_watch(*inv);
  } catch (...) {
    // The child runs but cannot be supervised: kill and reap it now.
    abandon_invocation(*inv);
    if (inv->holds == 0) inv->keepalive.reset();  // nothing was watched yet
    throw;
  }
}

}  // namespace payloadrun::detail
