// Running a scenario: one Supervisor embedded in our loop, a lazily walked
// schedule (payloads interleaved round-robin), refilled from completions.
#include "run.hpp"

#include <uv.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <optional>

#include <payloadrun/supervisor.hpp>

namespace runner {
namespace {

struct Slot {
  std::size_t scenario_index;
  std::size_t invocation;
};

class ScenarioRun {
 public:
  ScenarioRun(const Scenario& scenario, const RunOptions& options, const RunObserver& observer,
              payloadrun::Supervisor& supervisor)
      : scenario_(scenario), observer_(observer), supervisor_(supervisor),
        concurrency_(std::max<std::size_t>(1, options.concurrency)) {
    for (auto [i, r] : shard_schedule(scenario, options.shard)) schedule_.push_back({i, r});
    records_.resize(schedule_.size());
    filled_.resize(schedule_.size(), false);
    start_ = std::chrono::steady_clock::now();
  }

  void start_more() {
    if (in_start_) return;  // a completion delivered during a spawn refills on return
    in_start_ = true;
    while (!stopped_ && running_ < concurrency_ && next_ < schedule_.size()) launch(next_++);
    in_start_ = false;
  }

  void stop() { stopped_ = true; }

  RunCounters counters() const {
    return {schedule_.size(), done_, running_, failed_, std::chrono::steady_clock::now() - start_};
  }

  RunResult take_result(bool interrupted, const Shard& shard) {
    RunResult result;
    result.shard = shard;
    result.planned = schedule_.size();
    result.elapsed = std::chrono::steady_clock::now() - start_;
    result.interrupted = interrupted;
    for (std::size_t i = 0; i < records_.size(); ++i) {
      if (filled_[i]) result.records.push_back(std::move(records_[i]));
    }
    std::stable_sort(result.records.begin(), result.records.end(), [](const auto& a, const auto& b) {
      return a.scenario_index < b.scenario_index ||
             (a.scenario_index == b.scenario_index && a.invocation < b.invocation);
    });
    return result;
  }

 private:
  void launch(std::size_t slot) {
    const Slot s = schedule_[slot];
    const ScenarioPayload& sp = scenario_.payloads[s.scenario_index];
    ++running_;
    try {
      payloadrun::PayloadRun run = supervisor_.payload(sp.payload);
      if (sp.timeout) run.timeout(*sp.timeout);
      if (sp.cgroup) run.in_cgroup(*sp.cgroup);
      if (sp.own_cgroup) run.own_cgroup();
      for (const auto& [k, v] : sp.env) run.env(k, v);
      run.spawn([this, slot](payloadrun::Completion c) { complete(slot, std::move(c)); });
    } catch (const payloadrun::Error& e) {
      --running_;
      InvocationRecord rec = base_record(slot);
      rec.exit_code = -1;
      rec.details.push_back({payloadrun::DetailKind::spawn, e.what()});
      finish(slot, std::move(rec));
    }
  }

  InvocationRecord base_record(std::size_t slot) const {
    const Slot s = schedule_[slot];
    InvocationRecord rec;
    rec.scenario_index = s.scenario_index;
    rec.invocation = s.invocation;
    rec.payload = scenario_.payloads[s.scenario_index].payload->name;
    return rec;
  }

  void complete(std::size_t slot, payloadrun::Completion c) {
    --running_;
    InvocationRecord rec = base_record(slot);
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
    rec.metrics = c.metrics.to_vector();
    rec.stdout_truncated = c.metrics.stdout_truncated;
    rec.stderr_truncated = c.metrics.stderr_truncated;
    rec.duration_ms = std::chrono::duration<double, std::milli>(c.metrics.duration).count();
    finish(slot, std::move(rec));
    start_more();
  }

  void finish(std::size_t slot, InvocationRecord rec) {
    ++done_;
    if (!rec.passed) ++failed_;
    records_[slot] = std::move(rec);
    filled_[slot] = true;
    if (observer_.on_done) observer_.on_done(records_[slot], counters());
  }

  const Scenario& scenario_;
  const RunObserver& observer_;
  payloadrun::Supervisor& supervisor_;
  std::size_t concurrency_;
  std::vector<Slot> schedule_;
  std::vector<InvocationRecord> records_;
  std::vector<bool> filled_;
  std::size_t next_ = 0;
  std::size_t running_ = 0;
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  bool in_start_ = false;
  bool stopped_ = false;
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
  payloadrun::Supervisor* supervisor = nullptr;
  const RunObserver* observer = nullptr;
  bool interrupted = false;
};

}  // namespace

bool RunResult::all_passed() const noexcept {
  return std::all_of(records.begin(), records.end(), [](const auto& r) { return r.passed; });
}

bool RunResult::passed() const noexcept { return all_passed() && !interrupted && records.size() >= planned; }

std::vector<std::pair<std::size_t, std::size_t>> shard_schedule(const Scenario& scenario, const Shard& shard) {
  std::vector<std::pair<std::size_t, std::size_t>> schedule;
  std::size_t rounds = 0;
  for (const auto& p : scenario.payloads) rounds = std::max(rounds, p.count);
  for (std::size_t r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < scenario.payloads.size(); ++i) {
      if (r >= scenario.payloads[i].count) continue;
      if (shard_of(scenario.payloads[i].payload->name, r, shard.count) == shard.index) schedule.emplace_back(i, r);
    }
  }
  return schedule;
}

RunResult run_scenario(const Scenario& scenario, const RunOptions& options, const RunObserver& observer) {
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    throw payloadrun::Error(payloadrun::Errc::io, std::string("uv_loop_init failed: ") + uv_strerror(rc));
  }
  Context ctx;
  LoopHandle<uv_timer_t> timer;
  LoopHandle<uv_signal_t> sigint, sigterm;
  std::optional<RunResult> result;
  std::optional<payloadrun::Error> setup_error;
  {
    payloadrun::SupervisorOptions so;
    so.ring = options.ring;
    so.cgroup_parent = options.cgroup_parent;
    so.create_cgroups = options.create_cgroups;
    so.index_stride = std::max<std::size_t>(1, options.shard.count);
    so.index_offset = options.shard.index;
    std::optional<payloadrun::Supervisor> supervisor;
    try {
      supervisor.emplace(&loop, std::move(so));
    } catch (const payloadrun::Error& e) {
      setup_error = e;
    }
    if (supervisor) {
      ScenarioRun run(scenario, options, observer, *supervisor);
      ctx = {&run, &*supervisor, &observer, false};
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
      // Ctrl-C / SIGTERM: stop scheduling and kill what runs (payloads
      // live in their own process groups and would otherwise survive us).
      auto on_signal = [](uv_signal_t* s, int) {
        auto* c = static_cast<Context*>(s->loop->data);
        c->interrupted = true;
        c->run->stop();
        c->supervisor->shutdown();
      };
      for (auto [h, signum] : {std::pair{&sigint, SIGINT}, std::pair{&sigterm, SIGTERM}}) {
        uv_signal_init(&loop, &h->handle);
        h->open = true;
        uv_signal_start(&h->handle, on_signal, signum);
        uv_unref(reinterpret_cast<uv_handle_t*>(&h->handle));
      }
      run.start_more();
      uv_run(&loop, UV_RUN_DEFAULT);
      if (observer.on_tick) observer.on_tick(run.counters());
      result = run.take_result(ctx.interrupted, options.shard);
      timer.close();
      sigint.close();
      sigterm.close();
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // let every handle finish closing
  uv_loop_close(&loop);
  if (setup_error) throw *setup_error;
  return std::move(*result);
}

}  // namespace runner
