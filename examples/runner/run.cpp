// Running a scenario: one Supervisor embedded in our loop, a lazily walked
// schedule (payloads interleaved round-robin), refilled from completions.
#include "run.hpp"

#include <uv.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <payloadrun/ring.hpp>
#include <payloadrun/supervisor.hpp>

#include "interrupt.hpp"
#include "report.hpp"

namespace runner {
namespace {

class ScenarioRun {
 public:
  ScenarioRun(const Scenario& scenario, const RunOptions& options, const RunObserver& observer,
              payloadrun::Supervisor& supervisor, InterruptWatch& interrupts)
      : scenario_(scenario), observer_(observer), supervisor_(supervisor), interrupts_(interrupts),
        cursor_(scenario, options.shard), planned_(shard_invocations(scenario, options.shard)),
        concurrency_(std::max<std::size_t>(1, options.concurrency)) {
    start_ = std::chrono::steady_clock::now();
  }

  // Starts payloads up to the concurrency, for about 1 ms at a time: each
  // spawn holds the loop's thread until its child has exec'd, so a burst of
  // thousands would keep signals, the progress line and deadlines waiting for
  // seconds. What is left starts on the next loop turns (`continuation`, a
  // uv_idle handle that keeps the loop polling meanwhile).
  void start_more() {
    if (in_start_) return;  // a completion delivered during a spawn refills on return
    in_start_ = true;
    const auto until = std::chrono::steady_clock::now() + spawn_slice;
    std::size_t scenario_index = 0, invocation = 0;
    bool more = false;
    while (!interrupt_ && running_ < concurrency_) {
      if (std::chrono::steady_clock::now() >= until) {
        more = true;
        break;
      }
      if (!cursor_.next(scenario_index, invocation)) break;
      launch(scenario_index, invocation);
    }
    in_start_ = false;
    if (continuation_ != nullptr) {
      if (more) {
        uv_idle_start(continuation_, [](uv_idle_t* h) {
          auto* self = static_cast<ScenarioRun*>(h->data);
          uv_idle_stop(h);
          self->poll_interrupt();
          self->start_more();
        });
      } else {
        uv_idle_stop(continuation_);
      }
    }
  }
  // The idle handle start_more() uses to go on in the next loop turn.
  void set_continuation(uv_idle_t* idle) {
    continuation_ = idle;
    idle->data = this;
  }

  // Stop scheduling and kill what runs (payloads live in their own process
  // groups and would otherwise survive us).
  void interrupt(int signum) {
    if (interrupt_ != 0 || signum == 0) return;
    interrupt_ = signum;
    if (continuation_ != nullptr) uv_idle_stop(continuation_);
    supervisor_.shutdown();
    release_held();
  }
  // The timer that bounds how long a payload ended by SIGTERM/SIGINT is held
  // back waiting for payloadrun's own interrupt (see complete()).
  void set_grace_timer(uv_timer_t* timer) {
    grace_ = timer;
    timer->data = this;
  }
  // An interrupt taken off the signalfd, if one is pending.
  void poll_interrupt() { interrupt(interrupts_.take()); }
  int interrupt_signal() const { return interrupt_; }

  RunCounters counters() const {
    return {planned_, done_, running_, failed_, std::chrono::steady_clock::now() - start_};
  }

  RunResult take_result(const Shard& shard) {
    poll_interrupt();
    release_held();
    RunResult result;
    result.shard = shard;
    result.planned = planned_;
    result.elapsed = std::chrono::steady_clock::now() - start_;
    result.interrupted = interrupt_ != 0;
    result.interrupt_signal = interrupt_;
    result.records = std::move(records_);
    std::sort(result.records.begin(), result.records.end(), [](const auto& a, const auto& b) {
      return std::pair(a.scenario_index, a.invocation) < std::pair(b.scenario_index, b.invocation);
    });
    return result;
  }

 private:
  void launch(std::size_t scenario_index, std::size_t invocation) {
    const ScenarioPayload& sp = scenario_.payloads[scenario_index];
    ++running_;
    try {
      payloadrun::PayloadRun run = supervisor_.payload(sp.payload);
      if (sp.timeout) run.timeout(*sp.timeout);
      if (sp.stop_signal) run.stop_signal(*sp.stop_signal);
      if (sp.stop_grace) run.stop_grace(*sp.stop_grace);
      if (sp.cgroup) run.in_cgroup(*sp.cgroup);
      if (sp.own_cgroup) run.own_cgroup();
      for (const auto& [k, v] : sp.env) run.env(k, v);
      run.spawn([this, scenario_index, invocation](payloadrun::Completion c) {
        complete(scenario_index, invocation, std::move(c));
      });
    } catch (const payloadrun::Error& e) {
      --running_;
      InvocationRecord rec = base_record(scenario_index, invocation);
      rec.exit_code = -1;
      rec.started_unix_ms = wall_clock_ms();
      rec.details.push_back({payloadrun::DetailKind::spawn, e.what()});
      finish(std::move(rec));
    }
  }

  InvocationRecord base_record(std::size_t scenario_index, std::size_t invocation) const {
    InvocationRecord rec;
    rec.scenario_index = scenario_index;
    rec.invocation = invocation;
    rec.payload = scenario_.payloads[scenario_index].payload->name;
    return rec;
  }

  void complete(std::size_t scenario_index, std::size_t invocation, payloadrun::Completion c) {
    --running_;
    // A payload reaped while an interrupt is pending was killed by it (or
    // by the same scancel): look before judging it.
    poll_interrupt();
    InvocationRecord rec = base_record(scenario_index, invocation);
    rec.spawned = true;
    rec.pid = c.pid;
    rec.payload_index = c.metrics.payload_index;
    rec.exit_code = c.metrics.exit_code;
    rec.timed_out = c.metrics.timed_out;
    rec.passed = c.result.passed;
    rec.details = std::move(c.result.details);
    if (c.error) {
      rec.passed = false;
      rec.details.push_back({payloadrun::DetailKind::other, "supervision error: " + *c.error});
    }
    const std::string how = c.metrics.killed_by_signal
                                ? fmt::format("ended by signal {}", *c.metrics.killed_by_signal)
                                : fmt::format("exited with code {}", c.metrics.exit_code);
    if (interrupt_ != 0) mark_interrupted(rec, how);
    rec.metrics = c.metrics.to_vector();
    rec.stdout_truncated = c.metrics.stdout_truncated;
    rec.stderr_truncated = c.metrics.stderr_truncated;
    rec.duration_ms = std::chrono::duration<double, std::milli>(c.metrics.duration).count();
    rec.started_unix_ms = wall_clock_ms() - rec.duration_ms;
    if (!rec.passed) keep_output_tails(rec, c.stdout_text, c.stderr_text);
    // Ended by SIGTERM/SIGINT from outside while payloadrun has none: a
    // batch system signalling every process of the job one by one (scancel;
    // nothing says in which order) whose signal to us is a moment behind. Judged once it came, or after
    // signal_grace (the timer keeps the loop, and so the report, waiting).
    const bool by_interrupt_signal =
        c.metrics.killed_by_signal && (*c.metrics.killed_by_signal == SIGTERM || *c.metrics.killed_by_signal == SIGINT);
    if (interrupt_ == 0 && !rec.timed_out && by_interrupt_signal && grace_ != nullptr) {
      held_.push_back({std::move(rec), how});
      if (!uv_is_active(reinterpret_cast<uv_handle_t*>(grace_))) {
        uv_timer_start(
            grace_,
            [](uv_timer_t* t) {
              auto* self = static_cast<ScenarioRun*>(t->data);
              self->poll_interrupt();
              self->release_held();
            },
            signal_grace.count(), 0);
      }
    } else {
      finish(std::move(rec));
    }
    start_more();
  }

  void mark_interrupted(InvocationRecord& rec, const std::string& how) const {
    rec.passed = false;
    rec.interrupted = fmt::format("still running when payloadrun got {}; {}", interrupt_name(interrupt_), how);
  }

  // Judge the held records: interrupted if an interrupt came meanwhile.
  void release_held() {
    if (grace_ != nullptr) uv_timer_stop(grace_);
    std::vector<Held> held = std::move(held_);
    held_.clear();
    for (auto& h : held) {
      if (interrupt_ != 0) mark_interrupted(h.rec, h.how);
      finish(std::move(h.rec));
    }
  }

  void finish(InvocationRecord rec) {
    ++done_;
    if (!rec.passed) ++failed_;
    records_.push_back(std::move(rec));
    if (observer_.on_done) observer_.on_done(records_.back(), counters());
  }

  const Scenario& scenario_;
  const RunObserver& observer_;
  payloadrun::Supervisor& supervisor_;
  InterruptWatch& interrupts_;
  ScheduleCursor cursor_;
  std::size_t planned_;
  std::size_t concurrency_;
  std::vector<InvocationRecord> records_;  // in completion order
  std::size_t running_ = 0;
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  static constexpr std::chrono::microseconds spawn_slice{1000};
  uv_idle_t* continuation_ = nullptr;
  struct Held {
    InvocationRecord rec;
    std::string how;  // "ended by signal 15"
  };
  std::vector<Held> held_;  // ended by SIGTERM/SIGINT, waiting for our own interrupt
  uv_timer_t* grace_ = nullptr;
  static constexpr std::chrono::milliseconds signal_grace{250};
  bool in_start_ = false;
  int interrupt_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// A libuv handle owned by us and closed before the loop is.
template <class Handle>
struct LoopHandle {
  Handle handle{};
  bool open = false;
  void close() {
    if (open) uv_close(reinterpret_cast<uv_handle_t*>(&handle), nullptr);
    open = false;
  }
};

struct Context {
  ScenarioRun* run = nullptr;
  const RunObserver* observer = nullptr;
};

}  // namespace

bool RunResult::all_passed() const noexcept {
  return std::all_of(records.begin(), records.end(), [](const auto& r) { return r.passed; });
}

bool RunResult::passed() const noexcept { return all_passed() && !interrupted && records.size() >= planned; }

std::size_t RunResult::interrupted_invocations() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(records.begin(), records.end(), [](const auto& r) { return !r.interrupted.empty(); }));
}

std::size_t RunResult::completed() const noexcept { return records.size() - interrupted_invocations(); }

std::size_t RunResult::never_started() const noexcept {
  return planned > records.size() ? planned - records.size() : 0;
}

ScheduleCursor::ScheduleCursor(const Scenario& scenario, const Shard& shard) : scenario_(scenario), shard_(shard) {
  for (const auto& p : scenario.payloads) rounds_ = std::max(rounds_, p.count);
}

bool ScheduleCursor::next(std::size_t& scenario_index, std::size_t& invocation) {
  const auto& payloads = scenario_.payloads;
  for (; round_ < rounds_; ++round_, payload_ = 0) {
    while (payload_ < payloads.size()) {
      const std::size_t i = payload_++;
      if (round_ >= payloads[i].count) continue;
      if (shard_of(payloads[i].payload->name, round_, shard_.count) != shard_.index) continue;
      scenario_index = i;
      invocation = round_;
      return true;
    }
  }
  return false;
}

std::size_t shard_invocations(const Scenario& scenario, const Shard& shard) {
  if (shard.count <= 1) return scenario.total_invocations();
  ScheduleCursor cursor(scenario, shard);
  std::size_t n = 0, i = 0, r = 0;
  while (cursor.next(i, r)) ++n;
  return n;
}

std::vector<std::pair<std::size_t, std::size_t>> shard_schedule(const Scenario& scenario, const Shard& shard) {
  std::vector<std::pair<std::size_t, std::size_t>> schedule;
  ScheduleCursor cursor(scenario, shard);
  std::size_t i = 0, r = 0;
  while (cursor.next(i, r)) schedule.emplace_back(i, r);
  return schedule;
}

RunResult run_scenario(const Scenario& scenario, const RunOptions& options, const RunObserver& observer) {
  InterruptWatch interrupts;
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    throw payloadrun::Error(payloadrun::Errc::io, std::string("uv_loop_init failed: ") + uv_strerror(rc));
  }
  Context ctx;
  LoopHandle<uv_timer_t> timer;
  LoopHandle<uv_poll_t> interrupt_poll;
  LoopHandle<uv_idle_t> continuation;
  LoopHandle<uv_timer_t> grace;
  std::optional<RunResult> result;
  std::optional<payloadrun::Error> setup_error;
  // Our own emitter (not the Supervisor's) so that it can be closed after
  // the run: what reached neither the ring nor a spill journal is counted.
  std::shared_ptr<payloadrun::RingEmitter> emitter;
  {
    const char* env = std::getenv("PAYLOADRUN_RING");
    const std::string ring = !options.ring.empty() ? options.ring : env != nullptr ? env : "";
    payloadrun::SupervisorOptions so;
    so.cgroup_parent = options.cgroup_parent;
    so.create_cgroups = options.create_cgroups;
    so.index_stride = std::max<std::size_t>(1, options.shard.count);
    so.index_offset = options.shard.index;
    std::optional<payloadrun::Supervisor> supervisor;
    try {
      if (!ring.empty()) {
        // A run's end should not wait 30 s for a consumer that may never
        // come: after 5 s without room the records go to a spill journal
        // (nothing is lost; the next drain imports it).
        payloadrun::RingOptions ro;
        ro.stall_timeout = std::chrono::seconds(5);
        emitter = std::make_shared<payloadrun::RingEmitter>(&loop, ring, ro);
      }
      so.emitter = emitter;
      supervisor.emplace(&loop, std::move(so));
    } catch (const payloadrun::Error& e) {
      setup_error = e;
    }
    if (supervisor) {
      ScenarioRun run(scenario, options, observer, *supervisor, interrupts);
      ctx = {&run, &observer};
      loop.data = &ctx;
      // Periodic progress: unreferenced, so it never keeps the loop alive.
      uv_timer_init(&loop, &timer.handle);
      timer.open = true;
      uv_unref(reinterpret_cast<uv_handle_t*>(&timer.handle));
      if (observer.on_tick) {
        const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(10, observer.tick.count()));
        uv_timer_start(
            &timer.handle,
            [](uv_timer_t* t) {
              auto* c = static_cast<Context*>(t->loop->data);
              c->observer->on_tick(c->run->counters());
            },
            ms, ms);
      }
      // Ctrl-C / SIGTERM while payloads run. Unreferenced: the loop ends
      // with the last payload; a signal still pending then is taken below.
      if (uv_poll_init(&loop, &interrupt_poll.handle, interrupts.fd()) == 0) {
        interrupt_poll.open = true;
        uv_poll_start(&interrupt_poll.handle, UV_READABLE, [](uv_poll_t* h, int, int) {
          static_cast<Context*>(h->loop->data)->run->poll_interrupt();
        });
        uv_unref(reinterpret_cast<uv_handle_t*>(&interrupt_poll.handle));
      }
      uv_idle_init(&loop, &continuation.handle);
      continuation.open = true;
      run.set_continuation(&continuation.handle);
      uv_timer_init(&loop, &grace.handle);
      grace.open = true;
      run.set_grace_timer(&grace.handle);
      run.poll_interrupt();  // one that came before the run: nothing starts
      run.start_more();
      uv_run(&loop, UV_RUN_DEFAULT);
      run.poll_interrupt();  // raced the last reap
      if (observer.on_tick) observer.on_tick(run.counters());
      result = run.take_result(options.shard);
      timer.close();
      interrupt_poll.close();
      continuation.close();
      grace.close();
    }
  }
  if (emitter) {
    const std::uint64_t lost = emitter->close();  // spills what the ring has no room for
    if (result) result->undelivered_results = lost;
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // let every handle finish closing
  emitter.reset();
  uv_loop_close(&loop);
  if (setup_error) throw *setup_error;
  return std::move(*result);
}

}  // namespace runner
