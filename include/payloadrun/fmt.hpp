// payloadrun: optional fmt (>= 9) formatters for the result types.
//
//   #include <payloadrun/fmt.hpp>
//   fmt::print("{}\n", completion);   // "fio: FAILED (exit 0, 12 metrics, 1 detail): ..."
//
// Header-only; link fmt yourself. Formats: Metric, PayloadMetrics,
// MetricCheck, AssertDetail, AssertResult, Completion. Only the empty format
// spec "{}" is accepted.
#pragma once

#include <fmt/format.h>

#include <string_view>

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun::fmt_detail {

/// Accepts only "{}".
struct EmptySpec {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') throw fmt::format_error("payloadrun formatters take no format spec");
    return it;
  }
};

/// Metrics shown by the PayloadMetrics formatter before "... N more".
inline constexpr std::size_t max_listed_metrics = 16;

}  // namespace payloadrun::fmt_detail

/// `iops=1250 iops (higher_better, json, stdout)`
template <>
struct fmt::formatter<payloadrun::Metric> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::Metric& m, FormatContext& ctx) const -> decltype(ctx.out()) {
    auto out = fmt::format_to(ctx.out(), "{}={}", m.name, payloadrun::format_value(m.value));
    if (!m.unit.empty()) out = fmt::format_to(out, " {}", m.unit);
    return fmt::format_to(out, " ({}, {}, {})", payloadrun::to_string(m.polarity),
                          payloadrun::to_string(m.source), payloadrun::to_string(m.stream));
  }
};

/// `exit 0, 3 metrics [a=1 (...), b=2 (...), ...]` plus timeout/truncation flags.
template <>
struct fmt::formatter<payloadrun::PayloadMetrics> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::PayloadMetrics& m, FormatContext& ctx) const -> decltype(ctx.out()) {
    auto out = fmt::format_to(ctx.out(), "exit {}", m.exit_code);
    if (m.timed_out) out = fmt::format_to(out, ", timed out");
    if (m.killed_by_signal) out = fmt::format_to(out, ", signal {}", *m.killed_by_signal);
    if (m.stdout_truncated) out = fmt::format_to(out, ", stdout truncated");
    if (m.stderr_truncated) out = fmt::format_to(out, ", stderr truncated");
    if (m.drain_cut_short) out = fmt::format_to(out, ", drain cut short");
    out = fmt::format_to(out, ", {} metric{} [", m.size(), m.size() == 1 ? "" : "s");
    std::size_t i = 0;
    for (const payloadrun::Metric metric : m) {
      if (i == payloadrun::fmt_detail::max_listed_metrics) {
        out = fmt::format_to(out, ", ... {} more", m.size() - i);
        break;
      }
      out = fmt::format_to(out, "{}{}", i++ ? ", " : "", metric);
    }
    return fmt::format_to(out, "]");
  }
};

/// The seed's rendering: `Min { metric: "iops", value: 100 }`.
template <>
struct fmt::formatter<payloadrun::MetricCheck> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::MetricCheck& c, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{}", c.describe());
  }
};

/// `[other] metric 'iops' = 12 below minimum 100`
template <>
struct fmt::formatter<payloadrun::AssertDetail> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::AssertDetail& d, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "[{}] {}", payloadrun::to_string(d.kind), d.message);
  }
};

/// `passed`, or `failed: [other] ...; [spawn] ...`
template <>
struct fmt::formatter<payloadrun::AssertResult> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::AssertResult& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    if (r.passed && r.details.empty()) return fmt::format_to(ctx.out(), "passed");
    auto out = fmt::format_to(ctx.out(), "{}", r.passed ? "passed" : "failed");
    for (std::size_t i = 0; i < r.details.size(); ++i) {
      out = fmt::format_to(out, "{}{}", i ? "; " : ": ", r.details[i]);
    }
    return out;
  }
};

/// `fio (pid 42): failed: [...] | exit 0, 3 metrics [...]`, then the
/// supervision error and the stderr tail (last 1 KiB) when there are.
template <>
struct fmt::formatter<payloadrun::Completion> : payloadrun::fmt_detail::EmptySpec {
  template <class FormatContext>
  auto format(const payloadrun::Completion& c, FormatContext& ctx) const -> decltype(ctx.out()) {
    auto out = fmt::format_to(ctx.out(), "{} (pid {}): {} | {}", c.payload_name, c.pid, c.result, c.metrics);
    if (c.error) out = fmt::format_to(out, " | supervision error: {}", *c.error);
    if (!c.stderr_text.empty()) {
      out = fmt::format_to(out, " | stderr tail:\n{}", payloadrun::stderr_tail(c.stderr_text));
    }
    return out;
  }
};
