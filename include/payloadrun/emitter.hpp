// payloadrun: where completed invocations are sent (the ring, or your own sink).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"

namespace payloadrun {

/// Everything a terminal call yields for one invocation.
struct Completion {
  std::string payload_name;
  AssertResult result;
  PayloadMetrics metrics;
  /// Captured output (capped; invalid UTF-8 replaced with U+FFFD).
  std::string stdout_text;
  std::string stderr_text;
  /// The pid the payload ran as (0 if it never started).
  int pid = 0;
  /// Set only when supervision itself failed after spawn() returned: the
  /// exit status was lost (someone else reaped the child on a kernel whose
  /// pidfds cannot report it), or an invocation paced into the spawn queue
  /// (SupervisorOptions::spawn_slice) failed to start or was killed before
  /// it started. Then exit_code is -1, killed_by_signal is empty and
  /// `result` fails with this text. The other fields hold what was gathered.
  std::optional<std::string> error;
};

/// The raw output of a Deferred payload, shipped for consumer-side
/// extraction. Shares payload_index with the (empty) metrics record.
struct RawPayloadOutput {
  std::uint64_t payload_index = 0;
  std::string payload_name;
  std::string stdout_text;
  std::string stderr_text;
  std::optional<std::string> hint;
  std::vector<MetricHint> metric_hints;
  std::optional<MetricBounds> metric_bounds;
  int exit_code = 0;
  bool timed_out = false;
  /// The payload's checks; the consumer evaluates the metric-level ones.
  std::vector<MetricCheck> checks;
};

/// Receives every completed invocation when its result is recorded (at
/// completion for spawn(callback) and on_exit(), at the terminal call for a
/// PayloadHandle: see supervisor.hpp), on the loop thread. For a Deferred payload emit_raw() comes first, then
/// emit_metrics() with an empty metric set and the same payload_index.
/// Implementations must not block and must not throw (a throw is caught and
/// logged; the record is then reported lost).
class PAYLOADRUN_API Emitter {
 public:
  virtual ~Emitter();
  virtual void emit_metrics(const Completion& completion) = 0;
  virtual void emit_raw(const RawPayloadOutput& raw) = 0;
};

}  // namespace payloadrun
