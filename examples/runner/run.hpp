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
  Shard shard;              ///< the slice that ran (0 of 1, "none": all of it)
  std::size_t planned = 0;  ///< invocations the slice was to run
  /// Every record passed (records may be fewer than planned).
  bool all_passed() const noexcept;
  /// The verdict: every planned invocation ran and passed, not interrupted.
  bool passed() const noexcept;
};

/// The invocations of `scenario` that slice `shard` runs, in schedule order
/// (payloads interleaved round-robin), as (scenario_index, invocation).
std::vector<std::pair<std::size_t, std::size_t>> shard_schedule(const Scenario& scenario, const Shard& shard);

/// Run every invocation of `scenario`, at most options.concurrency in
/// flight, refilled from the completion callback. Throws payloadrun::Error
/// when the supervisor itself cannot be set up (a bad cgroup parent).
RunResult run_scenario(const Scenario& scenario, const RunOptions& options,
                       const RunObserver& observer = {});

}  // namespace runner
