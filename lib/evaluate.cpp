// Applying metric hints and evaluating checks, with ktstr's messages.
#include "payloadrun/evaluate.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/closest_names.hpp"
#include "detail/metrics_access.hpp"
#include "payloadrun/extract.hpp"

namespace payloadrun {
namespace {

// Up to this many metric-level checks are answered by a linear find() each:
// a constant bound keeps evaluation O(N + M) without building a hash map of
// every metric name for the common one-or-two-check case.
constexpr std::size_t linear_lookup_max_checks = 4;

bool is_continuation(unsigned char b) noexcept { return (b & 0xC0) == 0x80; }

// Rust's str::is_char_boundary on a byte string: not a continuation byte.
bool is_char_boundary(std::string_view s, std::size_t i) noexcept {
  if (i == 0 || i >= s.size()) return true;
  return !is_continuation(static_cast<unsigned char>(s[i]));
}

// Length of the Unicode White_Space character (char::is_whitespace) that
// ends `s`, or 0 when `s` does not end with one.
std::size_t trailing_whitespace_len(std::string_view s) noexcept {
  if (s.empty()) return 0;
  const auto at = [&](std::size_t from_end) {
    return static_cast<unsigned char>(s[s.size() - from_end]);
  };
  const unsigned char last = at(1);
  if (last == 0x20 || (last >= 0x09 && last <= 0x0D)) return 1;
  if (s.size() >= 2 && at(2) == 0xC2 && (last == 0x85 || last == 0xA0)) return 2;  // NEL, NBSP
  if (s.size() >= 3) {
    const unsigned char b0 = at(3);
    const unsigned char b1 = at(2);
    if (b0 == 0xE1 && b1 == 0x9A && last == 0x80) return 3;  // U+1680
    if (b0 == 0xE2 && b1 == 0x80 &&
        ((last >= 0x80 && last <= 0x8A) || last == 0xA8 || last == 0xA9 || last == 0xAF)) {
      return 3;  // U+2000..U+200A, U+2028, U+2029, U+202F
    }
    if (b0 == 0xE2 && b1 == 0x81 && last == 0x9F) return 3;  // U+205F
    if (b0 == 0xE3 && b1 == 0x80 && last == 0x80) return 3;  // U+3000
  }
  return 0;
}

// Rust's str::trim_end.
std::string_view trim_end(std::string_view s) noexcept {
  while (std::size_t n = trailing_whitespace_len(s)) s.remove_suffix(n);
  return s;
}

AssertDetail other_detail(std::string message) {
  return AssertDetail{DetailKind::other, std::move(message)};
}

AssertDetail nan_metric(std::string_view metric) {
  return other_detail(fmt::format("metric '{}' value is NaN", metric));
}

AssertDetail missing_metric(std::string_view metric) {
  return other_detail(fmt::format("metric '{}' not found in payload output", metric));
}

// Up to `max` bytes of `s` on one line (control characters as spaces), cut
// at a UTF-8 boundary, quoted.
std::string short_quote(std::string_view s, std::size_t max = 60) {
  std::string out = "\"";
  std::size_t n = std::min(s.size(), max);
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  for (char c : s.substr(0, n)) out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
  if (n < s.size()) out += "...";
  return out + "\"";
}

// What one stream held, when it yielded no metric.
std::string describe_stream(std::string_view name, std::string_view text) {
  const DocumentSearch found = search_document(text);
  switch (found.outcome) {
    case DocumentSearch::Outcome::empty:
      return fmt::format("{} is empty", name);
    case DocumentSearch::Outcome::no_opener:
      return fmt::format("{} has no JSON document ({} bytes, no '{{' or '[')", name, text.size());
    case DocumentSearch::Outcome::unbalanced:
      return fmt::format("{} has no JSON document (the '{}' at offset {} is never closed)", name,
                         text[found.offset], found.offset);
    case DocumentSearch::Outcome::not_json:
      return fmt::format("{}'s first balanced region, at offset {}, is not JSON: {} (only that region is read)",
                         name, found.offset, short_quote(text.substr(found.offset, found.length)));
    case DocumentSearch::Outcome::document:
      break;
  }
  return fmt::format("{}'s JSON document, at offset {}, has no number", name, found.offset);
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The detail of a missing metric: ktstr's message, then, when the output is
// known, why (the streams' description is the same for every metric: kept).
class MissingMetric {
 public:
  MissingMetric(const PayloadMetrics& metrics, const CapturedOutput* output) : metrics_(metrics), output_(output) {}
  AssertDetail operator()(std::string_view metric) const {
    AssertDetail d = missing_metric(metric);
    if (output_ == nullptr) return d;
    if (!metrics_.empty()) {
      // Each search scans every name: a bounded number per evaluation.
      if (searched_ == max_searched) {
        d.message += fmt::format(": the document on {} has {} metrics (closest names are given for the first {} "
                                 "missing)",
                                 metrics_[0].stream == MetricStream::stderr_stream ? "stderr" : "stdout",
                                 metrics_.size(), max_searched);
        return d;
      }
      ++searched_;
      d.message += ": " + missing_metric_reason(metric, metrics_, output_);
      return d;
    }
    if (streams_.empty()) streams_ = missing_metric_reason(metric, metrics_, output_);
    d.message += ": " + streams_;
    return d;
  }

 private:
  const PayloadMetrics& metrics_;
  const CapturedOutput* output_;
  mutable std::string streams_;
  static constexpr std::size_t max_searched = 8;
  mutable std::size_t searched_ = 0;
};

std::string format_exit_mismatch(int actual, int expected, std::string_view stderr_text) {
  const std::string_view trimmed = trim_end(stderr_text);
  if (trimmed.empty()) {
    return fmt::format("payload exited with code {}, expected {}", actual, expected);
  }
  return fmt::format("payload exited with code {}, expected {}; stderr:\n{}", actual, expected,
                     stderr_tail(trimmed, stderr_tail_bytes));
}

// The detail of one metric-level check given the looked-up value.
std::optional<AssertDetail> judge(const MetricCheck& check, std::optional<double> actual,
                                  const MissingMetric& missing) {
  const std::string& m = check.metric();
  if (!actual) return missing(m);
  const double v = *actual;
  switch (check.kind()) {
    case MetricCheck::Kind::exists:
      return std::nullopt;
    case MetricCheck::Kind::min:
      if (std::isnan(v)) return nan_metric(m);
      if (v < check.lo()) {
        return other_detail(fmt::format("metric '{}' = {} below minimum {}", m, format_value(v),
                                        format_value(check.lo())));
      }
      return std::nullopt;
    case MetricCheck::Kind::max:
      if (std::isnan(v)) return nan_metric(m);
      if (v > check.lo()) {
        return other_detail(fmt::format("metric '{}' = {} exceeds maximum {}", m, format_value(v),
                                        format_value(check.lo())));
      }
      return std::nullopt;
    case MetricCheck::Kind::range:
      if (std::isnan(v)) return nan_metric(m);
      if (v < check.lo() || v > check.hi()) {
        return other_detail(fmt::format("metric '{}' = {} outside [{}, {}]", m, format_value(v),
                                        format_value(check.lo()), format_value(check.hi())));
      }
      return std::nullopt;
    case MetricCheck::Kind::exit_code_eq:
      break;  // evaluated in the pre-pass
  }
  return std::nullopt;
}

// Length of the valid UTF-8 sequence at s[i], or, when it is invalid, the
// negated length of its maximal invalid subpart (always >= 1 byte). Mirrors
// the state machine of Rust's core::str::lossy::Utf8Chunks.
int utf8_sequence_at(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) -> int {
    return k < s.size() ? static_cast<unsigned char>(s[k]) : -1;
  };
  const int first = byte(i);
  if (first < 0x80) return 1;
  const auto cont = [&](std::size_t k) {
    const int b = byte(k);
    return b >= 0x80 && b <= 0xBF;
  };
  if (first >= 0xC2 && first <= 0xDF) return cont(i + 1) ? 2 : -1;
  if (first >= 0xE0 && first <= 0xEF) {
    const int b1 = byte(i + 1);
    const bool ok1 = (first == 0xE0 && b1 >= 0xA0 && b1 <= 0xBF) ||
                     (first >= 0xE1 && first <= 0xEC && b1 >= 0x80 && b1 <= 0xBF) ||
                     (first == 0xED && b1 >= 0x80 && b1 <= 0x9F) ||
                     (first >= 0xEE && first <= 0xEF && b1 >= 0x80 && b1 <= 0xBF);
    if (!ok1) return -1;
    return cont(i + 2) ? 3 : -2;
  }
  if (first >= 0xF0 && first <= 0xF4) {
    const int b1 = byte(i + 1);
    const bool ok1 = (first == 0xF0 && b1 >= 0x90 && b1 <= 0xBF) ||
                     (first >= 0xF1 && first <= 0xF3 && b1 >= 0x80 && b1 <= 0xBF) ||
                     (first == 0xF4 && b1 >= 0x80 && b1 <= 0x8F);
    if (!ok1) return -1;
    if (!cont(i + 2)) return -2;
    return cont(i + 3) ? 4 : -3;
  }
  return -1;  // continuation byte, C0/C1 (overlong), F5..FF
}

// Index of the first byte not part of valid UTF-8, or s.size().
std::size_t valid_utf8_prefix(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path: eight bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = utf8_sequence_at(s, i);
    if (n < 0) return i;
    i += static_cast<std::size_t>(n);
  }
  return s.size();
}

// Shortest round-trip digits of finite a >= 0 in scientific form
// "d.ddde[+-]XX": the digits (no point) and the decimal exponent.
std::string shortest_digits(double a, int& exp10) {
  std::array<char, 32> buf{};
  const auto res =
      std::to_chars(buf.data(), buf.data() + buf.size(), a, std::chars_format::scientific);
  const std::string_view sci(buf.data(), static_cast<std::size_t>(res.ptr - buf.data()));
  const std::size_t e = sci.find('e');
  std::string digits;
  for (std::size_t k = 0; k < e; ++k) {
    if (sci[k] != '.') digits += sci[k];
  }
  exp10 = 0;
  const char* exp_begin = sci.data() + e + 1;
  if (*exp_begin == '+') ++exp_begin;
  std::from_chars(exp_begin, sci.data() + sci.size(), exp10);
  return digits;
}

// True when a (> 0) is exactly digits·5 x 10^(exp10 - n): the midpoint
// between `digits` and the next n-digit decimal. Decided in integers: a
// double's odd part is below 2^53, which bounds the powers of five.
bool is_exact_midpoint(double a, const std::string& digits, int exp10) {
  if (digits.size() > 17) return false;
  std::uint64_t d = 0;
  for (char c : digits) d = d * 10 + static_cast<std::uint64_t>(c - '0');
  const std::uint64_t mid = d * 10 + 5;  // < 10^18
  const int k = exp10 - static_cast<int>(digits.size());
  if (k >= 0) {
    if (k > 22) return false;
    __extension__ typedef unsigned __int128 u128;
    u128 p = mid;
    for (int i = 0; i < k; ++i) p *= 5;
    const auto pd = static_cast<double>(p);
    if (static_cast<u128>(pd) != p) return false;
    return std::ldexp(pd, k) == a;
  }
  const int j = -k;
  if (j > 25) return false;
  std::uint64_t p5 = 1;
  for (int i = 0; i < j; ++i) p5 *= 5;
  if (mid % p5 != 0) return false;
  const std::uint64_t q = mid / p5;
  const auto qd = static_cast<double>(q);
  if (static_cast<std::uint64_t>(qd) != q) return false;
  return std::ldexp(qd, -j) == a;
}

// Rust's shortest digits. Among equally short candidates both pick the
// closest, but on an exact tie Rust (flt2dec) rounds up where to_chars
// rounds to even: bump the last digit when the value is the midpoint.
std::string rust_shortest_digits(double a, int& exp10) {
  std::string digits = shortest_digits(a, exp10);
  if (a == 0 || !is_exact_midpoint(a, digits, exp10)) return digits;
  std::string up = digits;
  int up_exp = exp10;
  std::size_t i = up.size();
  while (i > 0 && up[i - 1] == '9') up[--i] = '0';
  if (i == 0) {
    up.insert(up.begin(), '1');
    ++up_exp;
  } else {
    ++up[i - 1];
  }
  while (up.size() > 1 && up.back() == '0') up.pop_back();
  // Only if the rounded-up candidate still reads back as `a`.
  const std::string text = up + "e" + std::to_string(up_exp - static_cast<int>(up.size()) + 1);
  double back = 0;
  std::from_chars(text.data(), text.data() + text.size(), back);
  if (back != a) return digits;
  exp10 = up_exp;
  return up;
}

}  // namespace

void apply_hints(PayloadMetrics& metrics, std::span<const MetricHint> hints) {
  if (hints.empty() || metrics.empty()) return;
  // Last duplicate wins, as a Rust HashMap collect() does.
  std::unordered_map<std::string_view, std::size_t> by_name;
  by_name.reserve(hints.size());
  for (std::size_t h = 0; h < hints.size(); ++h) by_name[hints[h].name] = h;

  // The first metric a hint reaches interns its unit through set_hint; the
  // others copy that record's unit index, so the pass stays O(N + M).
  constexpr std::size_t unapplied = static_cast<std::size_t>(-1);
  std::vector<std::size_t> first_applied(hints.size(), unapplied);
  const std::string_view arena(detail::MetricsAccess::name_arena(metrics));
  auto& records = detail::MetricsAccess::records(metrics);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto name = arena.substr(records[i].name_offset, records[i].name_length);
    const auto it = by_name.find(name);
    if (it == by_name.end()) continue;
    const std::size_t h = it->second;
    if (first_applied[h] == unapplied) {
      metrics.set_hint(i, hints[h].polarity, hints[h].unit);
      first_applied[h] = i;
    } else {
      records[i].polarity = hints[h].polarity;
      records[i].unit = records[first_applied[h]].unit;
    }
  }
}

std::optional<AssertDetail> exit_code_mismatch_detail(std::span<const MetricCheck> checks,
                                                      int exit_code, std::string_view stderr_text) {
  for (const MetricCheck& c : checks) {
    if (c.kind() == MetricCheck::Kind::exit_code_eq && c.exit_code() != exit_code) {
      return other_detail(format_exit_mismatch(exit_code, c.exit_code(), stderr_text));
    }
  }
  return std::nullopt;
}

namespace {

AssertResult evaluate(std::span<const MetricCheck> checks, const PayloadMetrics& metrics,
                      std::string_view stderr_text, const CapturedOutput* output) {
  AssertResult result = AssertResult::pass();
  if (auto detail = exit_code_mismatch_detail(checks, metrics.exit_code, stderr_text)) {
    result.merge(AssertResult::fail(std::move(*detail)));
    return result;
  }

  std::size_t metric_checks = 0;
  for (const MetricCheck& c : checks) metric_checks += c.is_metric_level() ? 1 : 0;
  if (metric_checks == 0) return result;

  // name -> value of the first metric with that name (PayloadMetrics::get).
  std::unordered_map<std::string_view, std::size_t> first_index;
  const bool use_map = metric_checks > linear_lookup_max_checks && !metrics.empty();
  if (use_map) {
    first_index.reserve(metrics.size());
    for (std::size_t i = 0; i < metrics.size(); ++i) first_index.emplace(metrics[i].name, i);
  }
  const auto lookup = [&](const std::string& name) -> std::optional<double> {
    if (!use_map) return metrics.get(name);
    const auto it = first_index.find(name);
    if (it == first_index.end()) return std::nullopt;
    return detail::MetricsAccess::records(metrics)[it->second].value;
  };

  const MissingMetric missing(metrics, output);
  for (const MetricCheck& c : checks) {
    if (!c.is_metric_level()) continue;  // already evaluated in the pre-pass
    if (auto detail = judge(c, lookup(c.metric()), missing)) {
      result.merge(AssertResult::fail(std::move(*detail)));
    }
  }
  return result;
}

}  // namespace

AssertResult evaluate_checks(std::span<const MetricCheck> checks, const PayloadMetrics& metrics,
                             std::string_view stderr_text) {
  return evaluate(checks, metrics, stderr_text, nullptr);
}

AssertResult evaluate_checks(std::span<const MetricCheck> checks, const PayloadMetrics& metrics,
                             const CapturedOutput& output) {
  return evaluate(checks, metrics, output.stderr_text, &output);
}

std::string missing_metric_reason(std::string_view metric, const PayloadMetrics& metrics,
                                  const CapturedOutput* output) {
  if (metrics.empty()) {
    if (output == nullptr) return "no metrics were extracted";
    std::string why = describe_stream("stdout", output->stdout_text);
    if (!trim_end(output->stderr_text).empty()) why += "; " + describe_stream("stderr", output->stderr_text);
    return why;
  }
  const char* stream = metrics[0].stream == MetricStream::stderr_stream ? "stderr" : "stdout";
  const detail::ClosestNames close = detail::closest_names(metric, metrics);
  const std::string counted = fmt::format("the document on {} has {} metric{}", stream, metrics.size(),
                                          metrics.size() == 1 ? "" : "s");
  if (close.names.empty()) {
    std::vector<std::string> first;
    for (std::size_t i = 0; i < metrics.size() && first.size() < 3; ++i) first.emplace_back(metrics[i].name);
    return fmt::format("{}, none with a close name (first: {})", counted, join_names(first));
  }
  std::string why = fmt::format("{}; closest: {}", counted, join_names(close.names));
  if (close.more_containing > 0) {
    why += fmt::format(" (and {} more containing '{}')", close.more_containing, metric);
  }
  return why;
}

std::string stderr_tail(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t start = text.size() - max_bytes;
  while (start < text.size() && !is_char_boundary(text, start)) ++start;
  std::string out;
  out.reserve(3 + text.size() - start);
  out += "...";
  out += text.substr(start);
  return out;
}

std::string utf8_lossy(std::string_view bytes) {
  std::size_t valid = valid_utf8_prefix(bytes);
  if (valid == bytes.size()) return std::string(bytes);

  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size() + 8);
  std::size_t i = 0;
  while (i < bytes.size()) {
    out.append(bytes.substr(i, valid - i));
    i = valid;
    if (i >= bytes.size()) break;
    const int n = utf8_sequence_at(bytes, i);  // negative: invalid subpart
    out.append(replacement);
    i += static_cast<std::size_t>(-n);
    valid = i + valid_utf8_prefix(bytes.substr(i));
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";

  int exp10 = 0;
  const std::string digits = rust_shortest_digits(std::fabs(v), exp10);
  // The decimal point sits `point` digits from the left of `digits`.
  const long point = static_cast<long>(exp10) + 1;
  const auto n = static_cast<long>(digits.size());
  std::string out;
  if (std::signbit(v)) out += '-';
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-point), '0');
    out += digits;
  } else if (point >= n) {
    out += digits;
    out.append(static_cast<std::size_t>(point - n), '0');
  } else {
    out.append(digits, 0, static_cast<std::size_t>(point));
    out += '.';
    out.append(digits, static_cast<std::size_t>(point), std::string::npos);
  }
  return out;
}

}  // namespace payloadrun
