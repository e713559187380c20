// payloadrun runner: running a scenario on one loop with bounded concurrency.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <payloadrun/check.hpp>
#include <payloadrun/metrics.hpp>

#include "scenario.hpp"
#include "shard.hpp"

namespace runner {

/// What the reports need of one invocation (the output text is not kept).
struct InvocationRecord {
  std::size_t scenario_index = 0;  ///< which entry of "payloads"
  std::size_t invocation = 0;      ///< 0..count-1 within that entry
  std::string payload;
  std::uint64_t payload_index = 0;  ///< the library's payload_index (meaningful when spawned)
  bool spawned = false;
  int pid = 0;
  int exit_code = 0;
  bool timed_out = false;
  bool passed = false;
  std::vector<payloadrun::AssertDetail> details;
  std::vector<payloadrun::PayloadMetrics::OwnedMetric> metrics;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  double duration_ms = 0;
  /// When it started: milliseconds since the Unix epoch (0: not known, as in
  /// reports written before this field).
  double started_unix_ms = 0;
  /// A failed invocation's last output (report.hpp output_tail; empty when
  /// it passed), for the reports (JUnit <system-out>/<system-err>).
  std::string stdout_tail;
  std::string stderr_tail;
  /// Non-empty when an interrupt (SIGINT/SIGTERM) cut the invocation short:
  /// the message of its "interrupted" detail. Such an invocation never passes.
  std::string interrupted;
};

struct RunOptions {
  std::size_t concurrency = 64;
  std::string ring;
  std::string cgroup_parent;
  bool create_cgroups = false;
  /// Run only this slice (shard.hpp); its payload indices are
  /// k * shard.count + shard.index, so slices never collide.
  Shard shard;
};

/// Counters the progress display shows.
struct RunCounters {
  std::size_t total = 0;
  std::size_t done = 0;
  std::size_t running = 0;
  std::size_t failed = 0;
  std::chrono::steady_clock::duration elapsed{};
};

/// Hooks called on the loop thread: on every completion, and periodically
/// (every `tick`) while the scenario runs.
struct RunObserver {
  std::function<void(const InvocationRecord&, const RunCounters&)> on_done;
  std::function<void(const RunCounters&)> on_tick;
  std::chrono::milliseconds tick{100};
};

struct RunResult {
  std::vector<InvocationRecord> records;  ///< ordered by (scenario_index, invocation)
  std::chrono::steady_clock::duration elapsed{};
  bool interrupted = false;
  int interrupt_signal = 0;  ///< SIGINT or SIGTERM when interrupted (0: not known)
  Shard shard;              ///< the slice that ran (0 of 1, "none": all of it)
  std::size_t planned = 0;  ///< invocations the slice was to run
  /// Results that reached neither the --ring nor a spill journal (disk full).
  std::uint64_t undelivered_results = 0;
  /// Every record passed (records may be fewer than planned).
  bool all_passed() const noexcept;
  /// The verdict: every planned invocation ran and passed, not interrupted.
  bool passed() const noexcept;
  /// Records that ran to their end, records an interrupt cut short, and
  /// planned invocations never started.
  std::size_t completed() const noexcept;
  std::size_t interrupted_invocations() const noexcept;
  std::size_t never_started() const noexcept;
};

/// Walks the invocations of one slice in schedule order (payloads
/// interleaved round-robin) without storing them: a scenario of millions of
/// invocations costs no memory to schedule.
class ScheduleCursor {
 public:
  ScheduleCursor(const Scenario& scenario, const Shard& shard);
  /// The next (scenario_index, invocation), or false at the end.
  bool next(std::size_t& scenario_index, std::size_t& invocation);

 private:
  const Scenario& scenario_;
  Shard shard_;
  std::size_t rounds_ = 0;
  std::size_t round_ = 0;
  std::size_t payload_ = 0;
};

/// How many invocations slice `shard` runs (walks the schedule).
std::size_t shard_invocations(const Scenario& scenario, const Shard& shard);

/// The invocations of `scenario` that slice `shard` runs, in schedule order,
/// as (scenario_index, invocation) (ScheduleCursor, stored).
std::vector<std::pair<std::size_t, std::size_t>> shard_schedule(const Scenario& scenario, const Shard& shard);

/// Run every invocation of `scenario`, at most options.concurrency in
/// flight, refilled from the completion callback. SIGINT/SIGTERM (blocked
/// by prepare_process, watched through a signalfd) stop scheduling and kill
/// what runs; a signal pending when the last payload is reaped still marks
/// the run interrupted. Throws payloadrun::Error when the supervisor itself
/// cannot be set up (a bad cgroup parent).
RunResult run_scenario(const Scenario& scenario, const RunOptions& options,
                       const RunObserver& observer = {});

}  // namespace runner
