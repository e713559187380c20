// payloadrun under load, on one thread (embedded in our own uv loop).
//   --mode sleep    --n N [--sleep S] [--sleep-cmd sleep]: N `sleep S`
//       payloads in flight; the supervisor's CPU (getrusage, self) over an
//       idle window while they sleep, RSS growth per payload, and the reap
//       tail. With --sleep-cmd .../sleep_stamp (which prints its
//       CLOCK_MONOTONIC end in ns) the tail is the last completion minus
//       the last real end, and each payload's exit-to-completion latency is
//       reported (exit_to_done_p50/p99_ms); else the tail is estimated as
//       last completion minus (last spawn + S). Every payload must exit 0,
//       untimed-out.
//   --mode deadline --n N --cmd ignore_term [--deadline-ms D] [--per-tick P]
//       [--tick-ms T] [--reserve-fds F]: payloads that ignore SIGTERM,
//       spawned P every T ms (SupervisorOptions::reserve_fds F if given),
//       each with a D ms deadline; lateness after the deadline of each
//       completion (p50/p99/max ms) and of each kill (kill_p50/p99/max_ms:
//       the process's death, stamped by a thread of this benchmark that
//       polls pidfds of its own, so it does not depend on when the loop
//       reaps). Every payload must report timed_out, exit_code -1, SIGKILL.
//       Also: the time from each death to its completion (death_to_done_*),
//       how long each spawn() call held the loop's thread (spawn_call_*),
//       the share of the spawning window spent inside spawn() and the
//       window itself (first to last spawn: the achieved rate).
// Prints one JSON object; any wrong result exits 1.
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "payloadrun/payloadrun.hpp"

namespace {

using namespace std::chrono_literals;

struct Timer {
  explicit Timer(uv_loop_t* loop) : h(std::make_unique<uv_timer_t>()) { uv_timer_init(loop, h.get()); }
  ~Timer() { uv_close(reinterpret_cast<uv_handle_t*>(h.release()), [](uv_handle_t* x) {
    std::unique_ptr<uv_timer_t> owned(reinterpret_cast<uv_timer_t*>(x));
  }); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  template <class F>
  void start(double delay_s, double repeat_s, F* fn) {
    h->data = fn;
    uv_timer_start(
        h.get(), [](uv_timer_t* t) { (*static_cast<F*>(t->data))(); },
        static_cast<uint64_t>(delay_s * 1000), static_cast<uint64_t>(repeat_s * 1000));
  }
  void stop() { uv_timer_stop(h.get()); }
  std::unique_ptr<uv_timer_t> h;
};

int run_sleep(const bench::Args& args, uv_loop_t* loop) {
  const bool smoke = args.has("smoke");
  const long n = args.integer("n", smoke ? 50 : 1000);
  const double sleep_s = args.num("sleep", smoke ? 1 : 3);
  bench::raise_nofile(static_cast<rlim_t>(n * 4 + 1024));
  double spawn_s = 0;
  double idle_cpu_pct = -1;
  double idle_window_s = 0;
  std::size_t rss_spawned = 0;
  long done = 0;
  bench::clock::time_point t_last_spawn;
  bench::clock::time_point t_last_done;
  const std::string sleep_cmd = args.str("sleep-cmd", "sleep");
  const bool stamped = sleep_cmd.size() >= 11 && sleep_cmd.compare(sleep_cmd.size() - 11, 11, "sleep_stamp") == 0;
  std::vector<double> exit_to_done_ms;
  long long last_end_ns = 0;
  {
    payloadrun::Supervisor sup(loop);
    auto payload = std::make_shared<payloadrun::Payload>(payloadrun::Payload::binary_payload("sleep", sleep_cmd));
    payload->default_args = {std::to_string(sleep_s)};
    std::shared_ptr<const payloadrun::Payload> cp = payload;
    const std::size_t rss0 = bench::rss_bytes();
    const auto t0 = bench::clock::now();
    for (long i = 0; i < n; ++i) {
      sup.payload(cp).spawn([&](payloadrun::Completion c) {
        if (c.error) bench::fail("supervision error: " + *c.error);
        if (c.metrics.exit_code != 0 || c.metrics.timed_out) {
          bench::fail("sleep payload exited " + std::to_string(c.metrics.exit_code) + ": " + c.stderr_text);
        }
        const auto t_done = bench::clock::now();
        if (stamped) {
          char* end = nullptr;
          const long long end_ns = std::strtoll(c.stdout_text.c_str(), &end, 10);
          if (end == c.stdout_text.c_str() || *end != '\n') bench::fail("sleep_stamp printed '" + c.stdout_text + "'");
          const double ms = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                    t_done.time_since_epoch()).count() - end_ns) / 1e6;
          if (ms < 0) bench::fail("a completion came before its payload's end stamp");
          exit_to_done_ms.push_back(ms);
          last_end_ns = std::max(last_end_ns, end_ns);
        }
        if (++done == n) t_last_done = t_done;
      });
    }
    t_last_spawn = bench::clock::now();
    const std::size_t rss_after_spawn = bench::rss_bytes();  // fallback when there is no idle window
    spawn_s = std::chrono::duration<double>(t_last_spawn - t0).count();
    const double window_start = 0.1;
    const double window_len = sleep_s - 0.1 - spawn_s - window_start;
    double cpu0 = 0;
    bench::clock::time_point w0;
    Timer start_timer(loop);
    Timer end_timer(loop);
    auto on_end = [&] {
      idle_window_s = bench::seconds_since(w0);
      idle_cpu_pct = (bench::self_cpu_seconds() - cpu0) / idle_window_s * 100.0;
    };
    auto on_start = [&] {
      cpu0 = bench::self_cpu_seconds();
      w0 = bench::clock::now();
      rss_spawned = bench::rss_bytes();
      end_timer.start(window_len, 0, &on_end);
    };
    // libuv's clock still reads the time before the spawn burst: refresh it,
    // or the window would open at once and count the loop's first pass
    // (epoll_ctl for every pipe and pidfd registered during the burst).
    uv_update_time(loop);
    if (window_len > 0.05) start_timer.start(window_start, 0, &on_start);
    uv_run(loop, UV_RUN_DEFAULT);
    if (done != n) bench::fail("only " + std::to_string(done) + " of " + std::to_string(n) + " completed");
    // Spawning outlasted the sleep (a loaded machine): there is no idle
    // window; report null rather than a made-up figure.
    const std::string idle_cpu = idle_cpu_pct < 0 ? "null" : std::to_string(idle_cpu_pct);
    if (idle_cpu_pct < 0) rss_spawned = rss_after_spawn;
    double reap_tail_ms =
        std::chrono::duration<double, std::milli>(t_last_done - t_last_spawn).count() - sleep_s * 1000;
    std::string latency;
    if (stamped) {
      reap_tail_ms = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             t_last_done.time_since_epoch()).count() - last_end_ns) / 1e6;
      latency = ",\"exit_to_done_p50_ms\":" + std::to_string(bench::percentile(exit_to_done_ms, 50)) +
                ",\"exit_to_done_p99_ms\":" + std::to_string(bench::percentile(exit_to_done_ms, 99));
    }
    std::printf(
        "{\"mode\":\"sleep\",\"n\":%ld,\"spawn_seconds\":%.4f,\"idle_cpu_pct\":%s,"
        "\"idle_window_s\":%.3f,\"rss_per_payload_kib\":%.3f,\"reap_tail_ms\":%.3f,"
        "\"wall_seconds\":%.4f%s}\n",
        n, spawn_s, idle_cpu.c_str(), idle_window_s,
        (static_cast<double>(rss_spawned) - static_cast<double>(rss0)) / 1024.0 / static_cast<double>(n),
        reap_tail_ms, std::chrono::duration<double>(t_last_done - t0).count(), latency.c_str());
  }
  return 0;
}

// Stamps the death of each watched process from a thread of its own
// (epoll on pidfds), independent of the supervisor's loop.
class DeathWatch {
 public:
  explicit DeathWatch(long n)
      : died_(static_cast<std::size_t>(n)), open_(static_cast<std::size_t>(n)), epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    for (auto& fd : open_) fd = -1;
    if (epfd_ < 0) bench::fail("epoll_create1 failed");
    thread_ = std::thread([this] { run(); });
  }
  DeathWatch(const DeathWatch&) = delete;
  DeathWatch& operator=(const DeathWatch&) = delete;
  ~DeathWatch() {
    stop_ = true;
    thread_.join();
    for (std::size_t i = 0; i < open_.size(); ++i) {
      if (open_[i] >= 0) ::close(open_[i]);
    }
    ::close(epfd_);
  }
  void watch(std::size_t i, int pid) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) bench::fail("pidfd_open failed for a payload that should be alive");
    open_[i] = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;  // fires once per death
    ev.data.u64 = i;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) bench::fail("epoll_ctl failed");
  }
  /// Waits (bounded) until `n` deaths are stamped; then they may be read.
  const std::vector<bench::clock::time_point>& deaths(long n) {
    for (int i = 0; i < 10000 && seen_.load() < n; ++i) ::usleep(1000);
    if (seen_.load() < n) bench::fail("the death watch missed a payload's death");
    return died_;
  }

 private:
  void run() {
    epoll_event evs[64];
    while (!stop_) {
      const int k = ::epoll_wait(epfd_, evs, 64, 50);
      const auto now = bench::clock::now();
      for (int j = 0; j < k; ++j) {
        const auto i = evs[j].data.u64;
        died_[i] = now;
        // Closed once stamped, so this process holds no more fds than the
        // supervisor's own: with a second thread, every doubling of the fd
        // table waits for an RCU grace period (5-30 ms here), and leaked
        // pidfds would make spawn() cross 256, 512 and 1,024 mid-run.
        ::close(open_[i].exchange(-1));
        seen_.fetch_add(1);  // publishes the stamp (seq_cst) to deaths()
      }
    }
  }
  std::vector<bench::clock::time_point> died_;
  std::vector<std::atomic<int>> open_;  // each pidfd until its death is stamped
  int epfd_;
  std::atomic<bool> stop_{false};
  std::atomic<long> seen_{0};
  std::thread thread_;
};

int run_deadline(const bench::Args& args, uv_loop_t* loop) {
  const bool smoke = args.has("smoke");
  const long n = args.integer("n", smoke ? 20 : 1000);
  const auto deadline = std::chrono::milliseconds(args.integer("deadline-ms", 100));
  const long per_tick = args.integer("per-tick", 4);
  const double tick_s = args.num("tick-ms", 2) / 1000.0;
  const std::string cmd = args.str("cmd", "");
  if (cmd.empty()) bench::fail("--cmd (the ignore_term helper) is required");
  bench::raise_nofile(static_cast<rlim_t>(n * 4 + 1024));
  std::vector<double> late_ms;
  late_ms.reserve(static_cast<std::size_t>(n));
  const auto count = static_cast<std::size_t>(n);
  std::vector<bench::clock::time_point> spawned(count);
  std::vector<bench::clock::time_point> completed(count);
  std::vector<double> spawn_call_ms;  // how long each spawn() held the loop's thread
  spawn_call_ms.reserve(count);
  DeathWatch watch(n);
  {
    payloadrun::SupervisorOptions options;  // reserve_fds: the library's default unless given
    if (args.has("reserve-fds")) options.reserve_fds = static_cast<std::size_t>(args.integer("reserve-fds", 0));
    payloadrun::Supervisor sup(loop, std::move(options));
    auto payload = std::make_shared<const payloadrun::Payload>(payloadrun::Payload::binary_payload("ignore_term", cmd));
    long launched = 0;
    Timer tick(loop);
    auto on_tick = [&] {
      for (long i = 0; i < per_tick && launched < n; ++i) {
        const auto index = static_cast<std::size_t>(launched++);
        const auto t = bench::clock::now();
        spawned[index] = t;
        payloadrun::PayloadHandle h = sup.payload(payload).timeout(deadline).spawn();
        spawn_call_ms.push_back(std::chrono::duration<double, std::milli>(bench::clock::now() - t).count());
        watch.watch(index, h.pid().value_or(0));
        h.on_exit([&, t, index](payloadrun::Completion c) {
          const auto end = bench::clock::now();
          if (c.error) bench::fail("supervision error: " + *c.error);
          if (!c.metrics.timed_out || c.metrics.exit_code != -1 || c.metrics.killed_by_signal != SIGKILL) {
            bench::fail("payload was not killed at its deadline (exit " + std::to_string(c.metrics.exit_code) + ")");
          }
          late_ms.push_back(std::chrono::duration<double, std::milli>(end - t - deadline).count());
          completed[index] = end;
        });
      }
      if (launched >= n) tick.stop();
    };
    tick.start(tick_s, tick_s, &on_tick);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  if (static_cast<long>(late_ms.size()) != n) bench::fail("not every payload completed");
  for (double l : late_ms) {
    if (l < -0.5) bench::fail("a payload completed before its deadline");
  }
  const auto& died = watch.deaths(n);
  std::vector<double> kill_ms;
  std::vector<double> death_to_done_ms;  // the process dead, its completion not yet delivered
  for (std::size_t i = 0; i < died.size(); ++i) {
    kill_ms.push_back(std::chrono::duration<double, std::milli>(died[i] - spawned[i] - deadline).count());
    if (kill_ms.back() < -0.5) bench::fail("a payload was killed before its deadline");
    death_to_done_ms.push_back(std::chrono::duration<double, std::milli>(completed[i] - died[i]).count());
  }
  const double spawn_seconds = std::chrono::duration<double>(spawned.back() - spawned.front()).count();
  double in_spawn_ms = 0;
  for (double x : spawn_call_ms) in_spawn_ms += x;
  std::printf("{\"mode\":\"deadline\",\"n\":%ld,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,"
              "\"kill_p50_ms\":%.4f,\"kill_p99_ms\":%.4f,\"kill_max_ms\":%.4f,"
              "\"death_to_done_p50_ms\":%.4f,\"death_to_done_p99_ms\":%.4f,"
              "\"spawn_call_p50_ms\":%.4f,\"spawn_call_p99_ms\":%.4f,\"in_spawn_share\":%.4f,"
              "\"spawn_seconds\":%.4f}\n",
              n, bench::percentile(late_ms, 50), bench::percentile(late_ms, 99),
              bench::percentile(late_ms, 100), bench::percentile(kill_ms, 50),
              bench::percentile(kill_ms, 99), bench::percentile(kill_ms, 100),
              bench::percentile(death_to_done_ms, 50), bench::percentile(death_to_done_ms, 99),
              bench::percentile(spawn_call_ms, 50), bench::percentile(spawn_call_ms, 99),
              spawn_seconds > 0 ? in_spawn_ms / 1000.0 / spawn_seconds : 0.0, spawn_seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::Args args(argc, argv);
    uv_loop_t loop;
    uv_loop_init(&loop);
    const std::string mode = args.str("mode", "sleep");
    int rc = 1;
    if (mode == "sleep") rc = run_sleep(args, &loop);
    else if (mode == "deadline") rc = run_deadline(args, &loop);
    else bench::fail("unknown mode " + mode);
    uv_run(&loop, UV_RUN_DEFAULT);  // let closing handles finish
    if (uv_loop_close(&loop) != 0) bench::fail("loop still has handles");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "supervise_bench: %s\n", e.what());
    return 1;
  }
}
