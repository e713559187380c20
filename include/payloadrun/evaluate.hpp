// payloadrun: applying metric hints and evaluating checks (ktstr's rules).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "payloadrun/check.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"

namespace payloadrun {

/// Bytes of stderr quoted in an exit-code mismatch.
inline constexpr std::size_t stderr_tail_bytes = 1024;

/// Give each metric the polarity and unit of the hint with its name, in
/// O(N + M). Duplicate hint names: the last wins. Every metric with a hinted
/// name gets the hint (duplicates included); others are left unchanged.
PAYLOADRUN_API void apply_hints(PayloadMetrics& metrics, std::span<const MetricHint> hints);

/// Evaluate `checks`: first the exit_code_eq pre-pass (on a mismatch that is
/// the only detail), then every other check, every failure reported.
/// O(N + M) in metrics and checks.
PAYLOADRUN_API AssertResult evaluate_checks(std::span<const MetricCheck> checks,
                                            const PayloadMetrics& metrics,
                                            std::string_view stderr_text);

/// The captured output metrics were extracted from (stdout first, stderr
/// when stdout yields none), for explaining a missing metric.
struct CapturedOutput {
  std::string_view stdout_text;
  std::string_view stderr_text;
};

/// evaluate_checks as above, where a missing metric's detail ("metric 'X'
/// not found in payload output: ...") also says why: with no metrics, what
/// each stream held (empty; no JSON document; an opener never closed; the
/// first balanced region, at offset N, not JSON, with a short quote: ktstr's
/// rule reads only that region; a document without numbers); with metrics,
/// how many the document on which stream has and up to three closest names
/// (name suffix, substring, then edit distance), or a few of its names when
/// none is close; names are searched for the first 8 missing metrics of one
/// evaluation, the others get the count only.
PAYLOADRUN_API AssertResult evaluate_checks(std::span<const MetricCheck> checks,
                                            const PayloadMetrics& metrics,
                                            const CapturedOutput& output);

/// Why `metric` is missing from `metrics`, in the words evaluate_checks with
/// a CapturedOutput appends to the detail; `output` null: from the metrics
/// alone.
PAYLOADRUN_API std::string missing_metric_reason(std::string_view metric, const PayloadMetrics& metrics,
                                                 const CapturedOutput* output);

/// The detail of the first exit_code_eq check that `exit_code` fails, if any.
PAYLOADRUN_API std::optional<AssertDetail> exit_code_mismatch_detail(
    std::span<const MetricCheck> checks, int exit_code, std::string_view stderr_text);

/// The last `max_bytes` of `text`, cut forward to a UTF-8 boundary, with a
/// "..." prefix when cut.
PAYLOADRUN_API std::string stderr_tail(std::string_view text,
                                       std::size_t max_bytes = stderr_tail_bytes);

/// Replace invalid UTF-8 sequences with U+FFFD (as Rust's from_utf8_lossy).
PAYLOADRUN_API std::string utf8_lossy(std::string_view bytes);

/// Render a double the way the seed's messages do (shortest round-trip).
PAYLOADRUN_API std::string format_value(double v);

}  // namespace payloadrun
