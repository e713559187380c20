// Loop lag while spawning (issue 16): a 1 ms repeating uv_timer runs on the
// loop; 50 ms in, one timer callback starts N `/bin/true` payloads at once
// (stdout and stderr piped) and the run ends when all N were reaped. The
// figure is the timer's worst lateness (and p99) from the burst to the last
// reap: how long the loop's thread was kept from running anything else.
//   --mode payloadrun           spawn pacing on (spawn_slice --slice-us, 1000)
//   --mode payloadrun_unpaced   spawn_slice 0, the default: every clone
//                               inside spawn() (the in-loop clone)
//   --mode forkserver           a prototype spawn helper process: a forked
//       helper receives each request (the pipes' write ends by SCM_RIGHTS)
//       over a SOCK_SEQPACKET socket, clone3(CLONE_PIDFD|CLONE_PARENT)s the
//       payload (so it is our child) and hands back its pidfd; the loop
//       watches pidfds and reaps with waitid(P_PIDFD). No cgroup, no
//       pdeathsig, no error path: the cheapest a helper design can be.
//       --window W: at most W requests unanswered (0: as many as the
//       socket takes, all sent from the spawning callback).
//   --mode external   the floor of any off-thread design: a separate
//       process (forked at the burst) posix_spawns the N payloads and reaps
//       them; this process only runs the timer, so its lateness is what
//       the machine's CPUs, saturated by N execs, leave a thread that
//       spawns nothing.
//   --n N (1000), --smoke (N = 40)
// Prints one JSON object per run; a payload that does not exit 0 fails.
#include <fcntl.h>
#include <spawn.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <memory>
#include <vector>

#include "common.hpp"
#include "payloadrun/payloadrun.hpp"

namespace {

using clock_type = bench::clock;

struct LagProbe {
  clock_type::time_point last;
  bool armed = false;  // from the burst to the last reap
  std::vector<double> gaps_ms;
  void tick() {
    const auto now = clock_type::now();
    if (armed) gaps_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count() - 1.0);
    last = now;
  }
};

// ---------------------------------------------------------------- forkserver

struct Request {
  char tag = 'S';
};

// One Request with `n` fds (SCM_RIGHTS): sendmsg's result.
ssize_t send_fds(int sock, const int* fds, int n) {
  Request req;
  char cbuf[CMSG_SPACE(2 * sizeof(int))] = {};
  iovec iov{&req, sizeof req};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = CMSG_SPACE(static_cast<unsigned>(n) * sizeof(int));
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(static_cast<unsigned>(n) * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds, static_cast<std::size_t>(n) * sizeof(int));
  return ::sendmsg(sock, &m, 0);
}

// One Request and up to `n` fds: how many fds came (-1: nothing read).
int recv_fds(int sock, int* fds, int n, int flags) {
  Request req;
  char cbuf[CMSG_SPACE(2 * sizeof(int))];
  iovec iov{&req, sizeof req};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = sizeof cbuf;
  if (::recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC) <= 0) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  if (c == nullptr) return 0;
  const int got = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
  std::memcpy(fds, CMSG_DATA(c), static_cast<std::size_t>(std::min(got, n)) * sizeof(int));
  return got;
}

[[noreturn]] void helper_main(int sock) {
  // Tiny loop: one request in (two fds: stdout, stderr write ends), one pidfd out.
  for (;;) {
    int fds[2] = {-1, -1};
    const int got = recv_fds(sock, fds, 2, 0);
    if (got < 0) ::_exit(0);  // the supervisor closed the socket
    if (got != 2) ::_exit(3);
    int pidfd = -1;
    clone_args args{};
    args.flags = CLONE_PIDFD | CLONE_PARENT;
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    const long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      ::setpgid(0, 0);
      ::dup2(fds[0], 1);
      ::dup2(fds[1], 2);
      char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
      ::execve("/bin/true", argv, environ);
      ::_exit(127);
    }
    ::close(fds[0]);
    ::close(fds[1]);
    if (pid < 0) ::_exit(4);
    if (send_fds(sock, &pidfd, 1) < 0) ::_exit(5);
    ::close(pidfd);
  }
}

struct ForkServer {
  uv_loop_t* loop;
  long n;
  long done = 0;
  long sent = 0;
  int sock = -1;
  pid_t helper = -1;
  uv_poll_t sock_poll{};
  struct Child {
    ForkServer* fs;
    int pidfd;
    int out_read;
    int err_read;
    uv_poll_t poll;
  };
  std::vector<std::unique_ptr<Child>> children;

  void start_helper() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) bench::fail("socketpair");
    helper = ::fork();
    if (helper == 0) {
      ::close(sv[0]);
      helper_main(sv[1]);
    }
    ::close(sv[1]);
    sock = sv[0];
    uv_poll_init(loop, &sock_poll, sock);
    sock_poll.data = this;
    watch(false);
  }

  void watch(bool writable) {
    uv_poll_start(&sock_poll, UV_READABLE | (writable ? UV_WRITABLE : 0), [](uv_poll_t* p, int, int ev) {
      auto* self = static_cast<ForkServer*>(p->data);
      if ((ev & UV_WRITABLE) != 0) self->pump();
      if ((ev & UV_READABLE) != 0) self->receive();
    });
  }

  long wanted = 0;  // requests asked for, sent or not
  void request() {
    ++wanted;
    pump();
  }

  // Sends what the socket takes (libuv made it non-blocking); the rest
  // waits for it to be writable.
  long window = 0;    // > 0: at most this many requests the helper has not answered
  long received = 0;
  void pump() {
    while (sent < wanted && (window == 0 || sent - received < window)) {
      if (!send_one()) {
        watch(true);
        return;
      }
    }
    watch(false);
  }

  bool send_one() {  // one spawn: pipes here, the clone in the helper
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) bench::fail("pipe2");
    const int fds[2] = {out[1], err[1]};
    if (send_fds(sock, fds, 2) < 0) {
      const int e = errno;
      for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
      if (e == EAGAIN) return false;
      bench::fail(std::string("sendmsg to the helper: ") + std::strerror(e));
    }
    pending_reads.push_back({out[0], err[0]});
    ::close(out[1]);
    ::close(err[1]);
    ++sent;
    return true;
  }
  std::vector<std::pair<int, int>> pending_reads;
  std::size_t next_read = 0;

  void receive() {
    for (;;) {
      int pidfd = -1;
      const int got = recv_fds(sock, &pidfd, 1, MSG_DONTWAIT);
      if (got < 0) return;
      if (got != 1) bench::fail("the helper sent no pidfd");
      auto ch = std::make_unique<Child>();
      ch->fs = this;
      ch->pidfd = pidfd;
      ch->out_read = pending_reads[next_read].first;
      ch->err_read = pending_reads[next_read].second;
      ++next_read;
      ++received;
      uv_poll_init(loop, &ch->poll, pidfd);
      ch->poll.data = ch.get();
      uv_poll_start(&ch->poll, UV_READABLE, [](uv_poll_t* p, int, int) {
        auto* k = static_cast<Child*>(p->data);
        siginfo_t si{};
        if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(k->pidfd), &si, WEXITED) != 0) {
          bench::fail("waitid(P_PIDFD) failed");
        }
        if (si.si_code != CLD_EXITED || si.si_status != 0) bench::fail("a payload did not exit 0");
        uv_poll_stop(p);
        uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
        ::close(k->pidfd);
        ::close(k->out_read);
        ::close(k->err_read);
        if (++k->fs->done == k->fs->n) k->fs->finish();
      });
      children.push_back(std::move(ch));
      if (window > 0) pump();
    }
  }
  std::function<void()> on_finish;
  void finish() {
    uv_poll_stop(&sock_poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&sock_poll), nullptr);
    ::close(sock);  // the helper sees EOF and exits
    int st = 0;
    ::waitpid(helper, &st, 0);
    if (on_finish) on_finish();
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  const std::string mode = args.str("mode", "payloadrun");
  const long n = args.integer("n", args.has("smoke") ? 40 : 1000);
  const long slice_us = args.integer("slice-us", 1000);
  if (slice_us <= 0) bench::fail("--slice-us must be > 0 (payloadrun_unpaced is the unpaced mode)");
  bench::raise_nofile(static_cast<rlim_t>(n * 8 + 1024));
  uv_loop_t loop;
  uv_loop_init(&loop);
  LagProbe probe;
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  tick.data = &probe;
  long done = 0;
  clock_type::time_point t_burst, t_end;
  double burst_call_ms = 0;  // the callback making the N spawn calls, on its own
  auto end_burst = [&] {
    t_end = clock_type::now();
    probe.armed = false;
    uv_timer_stop(&tick);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  };

  std::optional<payloadrun::Supervisor> sup;
  std::optional<ForkServer> fs;
  std::shared_ptr<const payloadrun::Payload> payload;
  if (mode == "payloadrun" || mode == "payloadrun_unpaced") {
    payloadrun::SupervisorOptions o;
    o.spawn_slice = std::chrono::microseconds(mode == "payloadrun_unpaced" ? 0 : slice_us);
    sup.emplace(&loop, o);
    payload = std::make_shared<payloadrun::Payload>(payloadrun::Payload::binary_payload("true", "/bin/true"));
  } else if (mode == "forkserver") {
    fs.emplace();
    fs->loop = &loop;
    fs->n = n;
    fs->window = args.integer("window", 0);
    fs->on_finish = end_burst;
    fs->start_helper();
  } else if (mode != "external") {
    bench::fail("unknown --mode " + mode);
  }
  uv_poll_t spawner_poll;  // --mode external: the spawning process's pidfd
  int spawner_pidfd = -1;

  struct Burst {
    std::function<void()> fn;
  } burst;
  burst.fn = [&] {
    t_burst = clock_type::now();
    probe.last = t_burst;
    for (long i = 0; i < n; ++i) {
      if (mode == "external") {
        const pid_t spawner = ::fork();
        if (spawner < 0) bench::fail("fork");
        if (spawner == 0) {
          char* const child_argv[] = {const_cast<char*>("/bin/true"), nullptr};
          std::vector<pid_t> pids;
          for (long k = 0; k < n; ++k) {
            pid_t pid = 0;
            if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, child_argv, environ) != 0) ::_exit(3);
            pids.push_back(pid);
          }
          for (pid_t pid : pids) {
            int st = 0;
            if (::waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ::_exit(4);
          }
          ::_exit(0);
        }
        spawner_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, spawner, 0));
        if (spawner_pidfd < 0) bench::fail("pidfd_open");
        uv_poll_init(&loop, &spawner_poll, spawner_pidfd);
        spawner_poll.data = &end_burst;
        uv_poll_start(&spawner_poll, UV_READABLE, [](uv_poll_t* p, int, int) {
          siginfo_t si{};
          if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(p->io_watcher.fd), &si, WEXITED) != 0 ||
              si.si_code != CLD_EXITED || si.si_status != 0) {
            bench::fail("the spawning process failed");
          }
          uv_poll_stop(p);
          uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
          (*static_cast<decltype(end_burst)*>(p->data))();
        });
        done = n;
        break;
      }
      if (sup) {
        sup->payload(payload).spawn([&](payloadrun::Completion c) {
          if (c.error || c.metrics.exit_code != 0) bench::fail("a payload did not exit 0");
          if (++done == n) end_burst();
        });
      } else {
        fs->request();
      }
    }
    burst_call_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t_burst).count();
    probe.armed = true;  // the first tick after the burst call counts its whole length
  };
  uv_timer_t start;
  uv_timer_init(&loop, &start);
  start.data = &burst;
  uv_timer_start(&start, [](uv_timer_t* t) {
    static_cast<Burst*>(t->data)->fn();
    uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
  }, 50, 0);
  uv_timer_start(&tick, [](uv_timer_t* t) { static_cast<LagProbe*>(t->data)->tick(); }, 1, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  const long completed = fs ? fs->done : done;
  if (spawner_pidfd >= 0) ::close(spawner_pidfd);
  if (completed != n) bench::fail("only " + std::to_string(completed) + " of " + std::to_string(n) + " reaped");
  sup.reset();
  fs.reset();
  uv_run(&loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop) != 0) bench::fail("handles left on the loop");
  double worst = 0;
  for (double g : probe.gaps_ms) worst = std::max(worst, g);
  std::printf("{\"mode\":\"%s\",\"n\":%ld,\"lag_max_ms\":%.3f,\"lag_p99_ms\":%.3f,\"ticks\":%zu,"
              "\"burst_seconds\":%.4f,\"burst_call_ms\":%.3f}\n",
              mode.c_str(), n, worst, probe.gaps_ms.empty() ? 0.0 : bench::percentile(probe.gaps_ms, 99),
              probe.gaps_ms.size(), std::chrono::duration<double>(t_end - t_burst).count(), burst_call_ms);
  return 0;
}
