// payloadrun: checks on a payload's metrics and exit code, and their verdict.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/export.hpp"

namespace payloadrun {

/// One assertion on a payload invocation.
///
/// `min`, `max`, `range` and `exists` look a metric up by name; a missing
/// metric fails ("not found in payload output") and a NaN value fails with
/// its own message. `exit_code_eq` is evaluated first and, when it fails,
/// is the only detail reported (with the last 1 KiB of stderr).
class PAYLOADRUN_API MetricCheck {
 public:
  enum class Kind { min, max, range, exists, exit_code_eq };

  /// metric >= value. Throws Error(invalid_argument) for an empty name or NaN value.
  static MetricCheck min(std::string metric, double value);
  /// metric <= value. Throws Error(invalid_argument) for an empty name or NaN value.
  static MetricCheck max(std::string metric, double value);
  /// lo <= metric <= hi. Throws Error(invalid_argument) when lo > hi or a bound is NaN.
  static MetricCheck range(std::string metric, double lo, double hi);
  /// The metric is present (any value, zero and negative included).
  static MetricCheck exists(std::string metric);
  /// The payload exited with `code` (-1 matches death by signal).
  static MetricCheck exit_code_eq(int code);

  Kind kind() const noexcept { return kind_; }
  /// Metric name; empty for exit_code_eq.
  const std::string& metric() const noexcept { return metric_; }
  /// Threshold of min/max; lower bound of range.
  double lo() const noexcept { return lo_; }
  /// Upper bound of range (equal to lo() for min/max).
  double hi() const noexcept { return hi_; }
  /// Expected code of exit_code_eq.
  int exit_code() const noexcept { return code_; }
  /// True for every kind but exit_code_eq.
  bool is_metric_level() const noexcept { return kind_ != Kind::exit_code_eq; }

  /// Seed-style rendering: `Min { metric: "iops", value: 100 }`, `Exists("lat")`, ...
  std::string describe() const;

  friend bool operator==(const MetricCheck&, const MetricCheck&) = default;

 private:
  MetricCheck(Kind k, std::string metric, double lo, double hi, int code)
      : kind_(k), metric_(std::move(metric)), lo_(lo), hi_(hi), code_(code) {}
  Kind kind_;
  std::string metric_;
  double lo_;
  double hi_;
  int code_;
};

/// Category of a failure detail.
enum class DetailKind {
  other,       ///< a check failed (the seed's kind for every check failure)
  spawn,       ///< the invocation could not be started (runner)
  extraction,  ///< deferred extraction failed (consumer)
  pairing,     ///< raw output and metrics record could not be paired (consumer)
  bounds,      ///< a deferred metric fell outside the shipped bounds (consumer)
  lost,        ///< a record was lost or corrupt (consumer)
};
PAYLOADRUN_API const char* to_string(DetailKind k) noexcept;

struct AssertDetail {
  DetailKind kind = DetailKind::other;
  std::string message;
  friend bool operator==(const AssertDetail&, const AssertDetail&) = default;
};

/// Verdict: passed, plus one detail per failure.
struct PAYLOADRUN_API AssertResult {
  bool passed = true;
  std::vector<AssertDetail> details;

  static AssertResult pass() { return {}; }
  static AssertResult fail(AssertDetail d) {
    AssertResult r;
    r.passed = false;
    r.details.push_back(std::move(d));
    return r;
  }
  /// Fold `other` in: passed becomes false if either failed; details append.
  void merge(AssertResult other);
};

}  // namespace payloadrun
