// What spawn.cpp prepares for a child and how a failed step reads: shared
// by the two backends (spawn.cpp: the clone; spawn_uv.cpp: libuv's uv_spawn).
#pragma once

#include <sys/types.h>

#include <string>

#include "detail/invocation.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun::detail {

// Everything the child needs, prepared in the parent: the child shares our
// memory (CLONE_VM) and may only make raw system calls.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;
  int stdio[3] = {-1, -1, -1};
  int cgroup_procs = -1;
  bool new_pgrp = true;
  // SIGKILL the child when the thread that clones it ends
  // (PR_SET_PDEATHSIG); parent_pid tells whether that already happened.
  bool die_with_parent = true;
  pid_t parent_pid = 0;
  // > 0: the child starts on our fd table (CLONE_FILES) and must unshare
  // it, keeping fds below this, before touching any descriptor.
  unsigned keep_below = 0;
  // Written by the child when a step fails (visible to us through CLONE_VM).
  volatile int failed_errno = 0;
  volatile int failed_step = 0;
};

enum ChildStep {
  step_none, step_pdeathsig, step_orphaned, step_pgrp, step_cgroup, step_stdio, step_fds, step_cwd, step_exec
};

[[noreturn]] void throw_spawn(const Payload& p, Errc code, const std::string& what, int e);
/// The sentence for a failed step (`step`, errno `e`) of spawning `p`.
std::string exec_failure_text(const Payload& p, const std::string& exec_path, int step, int e,
                              const PayloadRun& run);
Errc exec_failure_code(int step, int e);
/// SpawnBackend::uv_spawn: start the child with libuv (no cgroup).
void uv_backend(SupervisorImpl& impl, Invocation& inv, const PayloadRun& run, ChildPlan& plan,
                const std::string& exec_path);

}  // namespace payloadrun::detail
