// Spawn throughput: N spawns of a command (default /bin/true) with stdout
// piped and drained, K in flight, optionally with the parent holding a big
// touched heap. Modes (several may be given, comma-separated, and are then
// interleaved A B A B ... for --rounds rounds inside this one process, so
// the heap is built once):
//   payloadrun     payloadrun::Supervisor, SpawnBackend::clone_vfork
//   payloadrun_uv  payloadrun::Supervisor, SpawnBackend::uv_spawn
//   posix_spawn    a C loop of posix_spawn + poll + waitpid (practical limit)
//   uv_raw         a bare libuv uv_spawn + uv_pipe_t loop
//   posix_spawn_guarded  a C loop doing what payloadrun guarantees, nothing
//                  more: posix_spawn into its own process group, stdout and
//                  stderr piped, a pidfd, one epoll set (each fd added and
//                  removed), waitid on the pidfd, the group killed after the
//                  exit (the floor of payloadrun's work per spawn)
// Every spawn is checked: exit code 0, no signal, stdout exactly as expected
// (empty for /bin/true). Any mismatch exits 1.
// --extra-fds F: each mode opens F more descriptors (pipes) after its own
// setup and holds them while it spawns, like a host with F sockets or a
// supervisor with F/3 live payloads (spawn cost vs the parent's fd table).
// Output: one JSON object per line: {"mode","round","spawns","seconds","rate"}.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <array>
#include <functional>
#include <memory>
#include <sstream>

#include "common.hpp"
#include "payloadrun/payloadrun.hpp"

extern char** environ;

namespace {

struct Config {
  long n = 1000;
  long k = 8;
  double max_seconds = 1e9;  // stop launching after this; the rate counts what completed
  std::string cmd = "/bin/true";
  std::string expect_stdout;
  long extra_fds = 0;
};

// F descriptors held open (F/2 pipes), closed on destruction.
class ExtraFds {
 public:
  explicit ExtraFds(long count) {
    for (long i = 0; i + 1 < count; i += 2) {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) bench::fail("--extra-fds: pipe2 failed (raise RLIMIT_NOFILE)");
      fds_.push_back(p[0]);
      fds_.push_back(p[1]);
    }
  }
  ExtraFds(const ExtraFds&) = delete;
  ExtraFds& operator=(const ExtraFds&) = delete;
  ~ExtraFds() {
    for (int fd : fds_) ::close(fd);
  }

 private:
  std::vector<int> fds_;
};

struct Result {
  long spawns = 0;
  double seconds = 0;
};

void check_one(const Config& cfg, int exit_code, int signal, const std::string& out) {
  if (exit_code != 0 || signal != 0) {
    bench::fail("spawn of " + cfg.cmd + " ended with exit code " + std::to_string(exit_code) +
                ", signal " + std::to_string(signal));
  }
  if (out != cfg.expect_stdout) bench::fail("unexpected stdout '" + out + "' from " + cfg.cmd);
}

// --- payloadrun --------------------------------------------------------------

Result run_payloadrun(const Config& cfg, payloadrun::SpawnBackend backend) {
  payloadrun::SupervisorOptions opts;
  opts.backend = backend;
  payloadrun::Supervisor sup(opts);
  const ExtraFds extra(cfg.extra_fds);  // opened after the supervisor, like live payloads' fds
  auto payload = std::make_shared<const payloadrun::Payload>(
      payloadrun::Payload::binary_payload("spawn_bench", cfg.cmd));
  long launched = 0;
  long done = 0;
  const auto t0 = bench::clock::now();
  std::function<void()> launch;
  payloadrun::CompletionCallback on_done = [&](payloadrun::Completion c) {
    if (c.error) bench::fail("supervision error: " + *c.error);
    check_one(cfg, c.metrics.exit_code, c.metrics.killed_by_signal.value_or(0), c.stdout_text);
    ++done;
    if (launched < cfg.n && bench::seconds_since(t0) < cfg.max_seconds) launch();
  };
  launch = [&] {
    ++launched;
    sup.payload(payload).spawn(on_done);
  };
  while (launched < std::min(cfg.k, cfg.n)) launch();
  sup.run();
  const double secs = bench::seconds_since(t0);
  if (done != launched) bench::fail("payloadrun completed " + std::to_string(done) + " of " +
                                    std::to_string(launched));
  return {done, secs};
}

// --- posix_spawn + poll + waitpid --------------------------------------------

Result run_posix_spawn(const Config& cfg) {
  const ExtraFds extra(cfg.extra_fds);
  std::vector<pollfd> pfds;
  std::vector<pid_t> pids;
  std::vector<std::string> outs;
  long launched = 0;
  long done = 0;
  std::array<char, 65536> buf{};
  std::vector<char*> argv{const_cast<char*>(cfg.cmd.c_str()), nullptr};
  const auto t0 = bench::clock::now();
  auto launch = [&] {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) bench::fail("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, cfg.cmd.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) bench::fail("posix_spawn failed: " + std::string(std::strerror(rc)));
    pfds.push_back({p[0], POLLIN, 0});
    pids.push_back(pid);
    outs.emplace_back();
    ++launched;
  };
  while (launched < std::min(cfg.k, cfg.n)) launch();
  while (!pfds.empty()) {
    if (::poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      bench::fail("poll failed");
    }
    for (std::size_t i = 0; i < pfds.size();) {
      if (pfds[i].revents == 0) {
        ++i;
        continue;
      }
      const ssize_t r = ::read(pfds[i].fd, buf.data(), buf.size());
      if (r > 0) {
        outs[i].append(buf.data(), static_cast<std::size_t>(r));
        pfds[i].revents = 0;
        ++i;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      ::close(pfds[i].fd);
      int status = 0;
      while (::waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
      }
      check_one(cfg, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                WIFSIGNALED(status) ? WTERMSIG(status) : 0, outs[i]);
      ++done;
      pfds[i] = pfds.back();
      pfds.pop_back();
      pids[i] = pids.back();
      pids.pop_back();
      outs[i] = std::move(outs.back());
      outs.pop_back();
      if (launched < cfg.n && bench::seconds_since(t0) < cfg.max_seconds) launch();
      // the new child went to the back with revents 0; index i now holds
      // the former last entry, which is examined next.
    }
  }
  return {done, bench::seconds_since(t0)};
}

// --- posix_spawn with payloadrun's guarantees --------------------------------

struct GuardedChild {
  pid_t pid = -1;
  int pidfd = -1;
  int out = -1;  // read ends, -1 once at EOF and closed
  int err = -1;
  bool exited = false;
  std::string text;
};

// One epoll registration per fd: data.u64 = slot index * 4 + which (0 pidfd, 1 out, 2 err).
Result run_posix_spawn_guarded(const Config& cfg) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) bench::fail("epoll_create1 failed");
  const ExtraFds extra(cfg.extra_fds);
  std::vector<GuardedChild> slots(static_cast<std::size_t>(std::max<long>(cfg.k, 1)));
  std::vector<std::size_t> free_slots;
  for (std::size_t i = slots.size(); i-- > 0;) free_slots.push_back(i);
  long launched = 0;
  long done = 0;
  std::array<char, 65536> buf{};
  std::vector<char*> argv{const_cast<char*>(cfg.cmd.c_str()), nullptr};
  auto watch = [&](int fd, std::size_t slot, int which) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = slot * 4 + static_cast<unsigned>(which);
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) bench::fail("epoll_ctl ADD failed");
  };
  auto unwatch_close = [&](int& fd) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    fd = -1;
  };
  const auto t0 = bench::clock::now();
  auto launch = [&] {
    const std::size_t slot = free_slots.back();
    free_slots.pop_back();
    GuardedChild& c = slots[slot];
    int o[2];
    int e[2];
    if (::pipe2(o, O_CLOEXEC) != 0 || ::pipe2(e, O_CLOEXEC) != 0) bench::fail("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    const int rc = ::posix_spawn(&c.pid, cfg.cmd.c_str(), &fa, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    ::close(o[1]);
    ::close(e[1]);
    if (rc != 0) bench::fail("posix_spawn failed: " + std::string(std::strerror(rc)));
    c.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0));
    if (c.pidfd < 0) bench::fail("pidfd_open failed");
    c.out = o[0];
    c.err = e[0];
    c.exited = false;
    c.text.clear();
    watch(c.pidfd, slot, 0);
    watch(c.out, slot, 1);
    watch(c.err, slot, 2);
    ++launched;
  };
  while (launched < std::min(cfg.k, cfg.n)) launch();
  epoll_event evs[64];
  while (free_slots.size() < slots.size()) {
    const int n = ::epoll_wait(ep, evs, 64, -1);
    long to_launch = 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      bench::fail("epoll_wait failed");
    }
    for (int i = 0; i < n; ++i) {
      const std::size_t slot = evs[i].data.u64 / 4;
      const int which = static_cast<int>(evs[i].data.u64 % 4);
      GuardedChild& c = slots[slot];
      if (which == 0) {
        if (c.pidfd < 0 || c.exited) continue;
        c.exited = true;
      } else {
        int& fd = which == 1 ? c.out : c.err;
        if (fd < 0) continue;  // closed earlier in this batch
        const ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r > 0) {
          if (which == 1) c.text.append(buf.data(), static_cast<std::size_t>(r));
          continue;
        }
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        unwatch_close(fd);
      }
      if (!c.exited || c.out >= 0 || c.err >= 0) continue;
      siginfo_t info{};
      if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(c.pidfd), &info, WEXITED | WNOHANG) != 0 ||
          info.si_pid == 0) {
        bench::fail("waitid on a readable pidfd found no exit");
      }
      ::kill(-c.pid, SIGKILL);  // whatever the payload left in its group
      unwatch_close(c.pidfd);
      check_one(cfg, info.si_code == CLD_EXITED ? info.si_status : -1,
                info.si_code == CLD_EXITED ? 0 : info.si_status, c.text);
      ++done;
      free_slots.push_back(slot);
      ++to_launch;
    }
    // Relaunched after the batch: a slot reused inside it could be handed a
    // later event of its former child's fds.
    for (; to_launch > 0; --to_launch) {
      if (launched < cfg.n && bench::seconds_since(t0) < cfg.max_seconds) launch();
    }
  }
  ::close(ep);
  return {done, bench::seconds_since(t0)};
}

// --- bare libuv ----------------------------------------------------------------

struct UvCtx;
struct UvSlot {
  uv_process_t proc{};
  uv_pipe_t pipe{};
  UvCtx* ctx = nullptr;
  int closes_pending = 0;
  bool exited = false;
  bool eof = false;
  int64_t exit_status = 0;
  int term_signal = 0;
  std::string out;
};

struct UvCtx {
  const Config* cfg = nullptr;
  uv_loop_t* loop = nullptr;
  std::vector<std::unique_ptr<UvSlot>> slots;
  std::array<char, 65536> buf{};
  long launched = 0;
  long done = 0;
  bench::clock::time_point t0;
};

void uv_launch(UvSlot& s);

void uv_on_closed(uv_handle_t* h) {
  auto* s = static_cast<UvSlot*>(h->data);
  if (--s->closes_pending != 0) return;
  UvCtx& ctx = *s->ctx;
  check_one(*ctx.cfg, static_cast<int>(s->exit_status), s->term_signal, s->out);
  ++ctx.done;
  if (ctx.launched < ctx.cfg->n && bench::seconds_since(ctx.t0) < ctx.cfg->max_seconds) uv_launch(*s);
}

void uv_maybe_finish(UvSlot& s) {
  if (!s.exited || !s.eof) return;
  s.closes_pending = 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&s.proc), uv_on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&s.pipe), uv_on_closed);
}

void uv_launch(UvSlot& s) {
  UvCtx& ctx = *s.ctx;
  s.exited = s.eof = false;
  s.exit_status = 0;
  s.term_signal = 0;
  s.out.clear();
  uv_pipe_init(ctx.loop, &s.pipe, 0);
  s.pipe.data = &s;
  s.proc.data = &s;
  std::array<uv_stdio_container_t, 3> stdio{};
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&s.pipe);
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  std::vector<char*> argv{const_cast<char*>(ctx.cfg->cmd.c_str()), nullptr};
  uv_process_options_t o{};
  o.file = ctx.cfg->cmd.c_str();
  o.args = argv.data();
  o.stdio = stdio.data();
  o.stdio_count = 3;
  o.exit_cb = [](uv_process_t* p, int64_t status, int sig) {
    auto* slot = static_cast<UvSlot*>(p->data);
    slot->exited = true;
    slot->exit_status = status;
    slot->term_signal = sig;
    uv_maybe_finish(*slot);
  };
  const int rc = uv_spawn(ctx.loop, &s.proc, &o);
  if (rc != 0) bench::fail(std::string("uv_spawn failed: ") + uv_strerror(rc));
  ++ctx.launched;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&s.pipe),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* slot = static_cast<UvSlot*>(h->data);
        *b = uv_buf_init(slot->ctx->buf.data(), static_cast<unsigned>(slot->ctx->buf.size()));
      },
      [](uv_stream_t* st, ssize_t nread, const uv_buf_t* b) {
        auto* slot = static_cast<UvSlot*>(st->data);
        if (nread > 0) {
          slot->out.append(b->base, static_cast<std::size_t>(nread));
        } else if (nread < 0) {
          uv_read_stop(st);
          slot->eof = true;
          uv_maybe_finish(*slot);
        }
      });
}

Result run_uv_raw(const Config& cfg) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  const ExtraFds extra(cfg.extra_fds);
  UvCtx ctx;
  ctx.cfg = &cfg;
  ctx.loop = &loop;
  ctx.t0 = bench::clock::now();
  for (long i = 0; i < std::min(cfg.k, cfg.n); ++i) {
    ctx.slots.push_back(std::make_unique<UvSlot>());
    ctx.slots.back()->ctx = &ctx;
    uv_launch(*ctx.slots.back());
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  const double secs = bench::seconds_since(ctx.t0);
  if (uv_loop_close(&loop) != 0) bench::fail("uv loop still has handles");
  if (ctx.done != ctx.launched) bench::fail("uv_raw completed fewer than launched");
  return {ctx.done, secs};
}

Result run_mode(const std::string& mode, const Config& cfg) {
  if (mode == "payloadrun") return run_payloadrun(cfg, payloadrun::SpawnBackend::clone_vfork);
  if (mode == "payloadrun_uv") return run_payloadrun(cfg, payloadrun::SpawnBackend::uv_spawn);
  if (mode == "posix_spawn") return run_posix_spawn(cfg);
  if (mode == "uv_raw") return run_uv_raw(cfg);
  if (mode == "posix_spawn_guarded") return run_posix_spawn_guarded(cfg);
  bench::fail("unknown mode " + mode);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::Args args(argc, argv);
    Config cfg;
    const bool smoke = args.has("smoke");
    cfg.n = args.integer("n", smoke ? 40 : 2000);
    cfg.k = args.integer("k", 8);
    cfg.max_seconds = args.num("max-seconds", 1e9);
    cfg.cmd = args.str("cmd", "/bin/true");
    cfg.expect_stdout = args.str("expect-stdout", "");
    const long rounds = args.integer("rounds", 1);
    const long heap_mib = args.integer("heap-mib", smoke ? 16 : 0);
    cfg.extra_fds = args.integer("extra-fds", 0);
    std::vector<std::string> modes;
    std::stringstream ss(args.str("mode", "payloadrun,payloadrun_uv,posix_spawn,posix_spawn_guarded,uv_raw"));
    for (std::string m; std::getline(ss, m, ',');) modes.push_back(m);
    bench::raise_nofile(static_cast<rlim_t>(cfg.k * 4 + cfg.extra_fds + 256));

    const bench::TouchedHeap heap(static_cast<std::size_t>(heap_mib) << 20);
    for (long r = 0; r < rounds; ++r) {
      for (const auto& m : modes) {
        const double cpu0 = bench::self_cpu_seconds();
        const Result res = run_mode(m, cfg);
        if (res.spawns <= 0) bench::fail("no spawn completed");
        const double self_cpu_us = (bench::self_cpu_seconds() - cpu0) * 1e6 / static_cast<double>(res.spawns);
        std::printf(
            "{\"mode\":\"%s\",\"round\":%ld,\"k\":%ld,\"heap_mib\":%ld,\"extra_fds\":%ld,"
            "\"spawns\":%ld,\"seconds\":%.6f,\"rate\":%.3f,\"self_cpu_us_per_spawn\":%.2f}\n",
            m.c_str(), r, cfg.k, heap_mib, cfg.extra_fds, res.spawns, res.seconds,
            static_cast<double>(res.spawns) / res.seconds, self_cpu_us);
        std::fflush(stdout);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spawn_bench: %s\n", e.what());
    return 1;
  }
}
