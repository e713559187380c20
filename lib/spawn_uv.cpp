// SpawnBackend::uv_spawn: libuv starts the child (fork + exec); kept for
// comparison in bench/. Its exit arrives through libuv's process handle.
#include <uv.h>

#include "detail/spawn_plan.hpp"

extern char** environ;

namespace payloadrun::detail {
namespace {

void on_uv_process_exit(uv_process_t* proc, int64_t exit_status, int term_signal) {
  auto* inv = static_cast<Invocation*>(proc->data);
  dispatch(inv->impl, "process exit", [&] {
    kill_group(*inv, false);  // libuv has reaped the leader: its descendants go now
    if (term_signal != 0) {
      leader_exited(*inv, -1, term_signal);
    } else {
      leader_exited(*inv, static_cast<int>(exit_status), std::nullopt);
    }
  });
}

}  // namespace

void uv_backend(SupervisorImpl& impl, Invocation& inv, const PayloadRun& run,
                ChildPlan& plan, const std::string& exec_path) {
  const Payload& p = *inv.payload;
  if (plan.cgroup_procs >= 0) {
    throw_spawn(p, Errc::invalid_argument,
                "the uv_spawn backend cannot place a payload in a cgroup; use the clone_vfork "
                "backend",
                0);
  }
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = plan.stdio[i];
  }
  uv_process_options_t opts{};
  opts.exit_cb = on_uv_process_exit;
  opts.file = exec_path.c_str();
  opts.args = const_cast<char**>(plan.argv);
  opts.env = plan.envp == environ ? nullptr : const_cast<char**>(plan.envp);
  opts.cwd = plan.cwd;
  opts.flags = plan.new_pgrp ? UV_PROCESS_DETACHED : 0;
  opts.stdio_count = 3;
  opts.stdio = stdio;
  const int rc = ::uv_spawn(impl.loop, &rare_handles(inv).process.handle, &opts);
  // uv_spawn initialises the handle even on failure; it must be closed.
  slot_opened(inv, inv.rare->process);
  if (rc != 0) {
    const int e = -rc;
    close_slot(inv, inv.rare->process);
    throw_spawn(p, exec_failure_code(step_exec, e), exec_failure_text(p, exec_path, step_exec, e, run),
                e);
  }
  inv.pid = inv.rare->process.handle.pid;
}

}  // namespace payloadrun::detail
