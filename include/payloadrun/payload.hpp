// payloadrun: the description of a payload (what to run and how to judge it).
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun {

/// Polarity and unit for the metric called `name`.
struct MetricHint {
  std::string name;
  Polarity polarity = Polarity::unknown;
  std::string unit;
  friend bool operator==(const MetricHint&, const MetricHint&) = default;
};

/// Plausibility bounds the ring consumer applies to deferred metrics.
struct MetricBounds {
  std::size_t min_count = 0;
  std::optional<double> value_min;
  std::optional<double> value_max;
  friend bool operator==(const MetricBounds&, const MetricBounds&) = default;
};

/// How metrics are obtained from the payload's output.
namespace output {
/// No metrics: only the exit code matters.
struct ExitCode {
  friend bool operator==(const ExitCode&, const ExitCode&) = default;
};
/// A JSON document on stdout (or, when stdout yields no metric, stderr).
struct Json {
  friend bool operator==(const Json&, const Json&) = default;
};
/// Raw output is shipped through the ring for consumer-side extraction
/// (ktstr's LlmExtract). `hint` is passed to the extractor.
struct Deferred {
  std::optional<std::string> hint;
  friend bool operator==(const Deferred&, const Deferred&) = default;
};
}  // namespace output
using OutputFormat = std::variant<output::ExitCode, output::Json, output::Deferred>;

/// A payload either names a binary to run, or is a scheduler (launched by
/// the test framework, never by run/spawn: those refuse it).
enum class PayloadKind { binary, scheduler };

/// What to run and how to judge it. Copyable plain data.
struct PAYLOADRUN_API Payload {
  std::string name;
  PayloadKind kind = PayloadKind::binary;
  /// Path, or a name resolved on the parent's PATH (no shell is involved).
  /// For a scheduler-kind payload: the scheduler's name.
  std::string binary;
  OutputFormat output = output::ExitCode{};
  std::vector<std::string> default_args;
  std::vector<MetricCheck> default_checks;
  std::vector<MetricHint> metrics;
  std::optional<MetricBounds> metric_bounds;
  /// Stay in the supervisor's process group (tty-dependent binaries). The
  /// payload then owns the cleanup of its own descendants.
  bool uses_parent_pgrp = false;
  /// Keep running when the supervisor dies. Default (false): a payload
  /// dies with its supervisor. Its leader gets SIGKILL when the thread that
  /// spawned it ends (PR_SET_PDEATHSIG; the Supervisor's loop thread, which
  /// spawns every payload: a thread that exits while its payloads run kills
  /// them, even if the process lives on), and a payload that would start
  /// after the supervisor already died exits with 127 before running any of
  /// its code. The kernel clears this for an exec of a set-user-ID,
  /// set-group-ID or file-capability binary and on any later change of the
  /// payload's credentials (setuid, setgid and the like), and the payload
  /// may clear it itself: such a leader outlives its supervisor. Descendants
  /// of the leader are not signalled; with PayloadRun::own_cgroup() the next
  /// Supervisor finds and kills them (see SupervisorOptions::cgroup_parent).
  /// Not available with SpawnBackend::uv_spawn, whose payloads always
  /// outlive their supervisor.
  /// True: none of this, and its own cgroup is never killed by another
  /// supervisor (only removed once empty).
  bool survives_supervisor = false;

  /// A binary payload with ExitCode output and nothing else set.
  static Payload binary_payload(std::string name, std::string binary);
  /// A scheduler-kind payload (for completeness; run/spawn refuse it).
  static Payload scheduler_payload(std::string name, std::string scheduler);
};

}  // namespace payloadrun
