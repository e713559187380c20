// MetricCheck construction and rendering; AssertResult; Payload factories.
#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "payloadrun/check.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/payload.hpp"

namespace payloadrun {
namespace {

void require_metric_name(const std::string& metric, const char* kind) {
  if (metric.empty()) {
    throw Error(Errc::invalid_argument,
                fmt::format("MetricCheck::{}: the metric name is empty; name the metric to check "
                            "(e.g. \"jobs.0.read.iops\")",
                            kind));
  }
}

void require_not_nan(double v, const std::string& metric, const char* kind, const char* what) {
  if (std::isnan(v)) {
    throw Error(Errc::invalid_argument,
                fmt::format("MetricCheck::{}('{}'): {} is NaN, which no value can be compared "
                            "against; give a number",
                            kind, metric, what));
  }
}

// Rust's `{:?}` of a str, as the seed renders metric names: quoted, with
// `"` and `\` escaped, \t \r \n \0 by name, and other control characters
// (ASCII and C1) as \u{hex}. Other non-ASCII text is kept as is.
std::string debug_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\t': out += "\\t"; continue;
      case '\r': out += "\\r"; continue;
      case '\n': out += "\\n"; continue;
      case '\0': out += "\\0"; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{{{:x}}}", c);
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      out += fmt::format("\\u{{{:x}}}", static_cast<unsigned char>(s[i + 1]));  // C1 control
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace

MetricCheck MetricCheck::min(std::string metric, double value) {
  require_metric_name(metric, "min");
  require_not_nan(value, metric, "min", "the threshold");
  return MetricCheck(Kind::min, std::move(metric), value, value, 0);
}

MetricCheck MetricCheck::max(std::string metric, double value) {
  require_metric_name(metric, "max");
  require_not_nan(value, metric, "max", "the threshold");
  return MetricCheck(Kind::max, std::move(metric), value, value, 0);
}

MetricCheck MetricCheck::range(std::string metric, double lo, double hi) {
  require_metric_name(metric, "range");
  require_not_nan(lo, metric, "range", "lo");
  require_not_nan(hi, metric, "range", "hi");
  if (lo > hi) {
    throw Error(Errc::invalid_argument,
                fmt::format("MetricCheck::range('{}'): lo must be <= hi (got lo={}, hi={}); "
                            "swap the bounds",
                            metric, format_value(lo), format_value(hi)));
  }
  return MetricCheck(Kind::range, std::move(metric), lo, hi, 0);
}

MetricCheck MetricCheck::exists(std::string metric) {
  require_metric_name(metric, "exists");
  return MetricCheck(Kind::exists, std::move(metric), 0, 0, 0);
}

MetricCheck MetricCheck::exit_code_eq(int code) {
  return MetricCheck(Kind::exit_code_eq, std::string(), 0, 0, code);
}

std::string MetricCheck::describe() const {
  switch (kind_) {
    case Kind::min:
      return fmt::format("Min {{ metric: {}, value: {} }}", debug_quote(metric_),
                         format_value(lo_));
    case Kind::max:
      return fmt::format("Max {{ metric: {}, value: {} }}", debug_quote(metric_),
                         format_value(lo_));
    case Kind::range:
      return fmt::format("Range {{ metric: {}, lo: {}, hi: {} }}", debug_quote(metric_),
                         format_value(lo_), format_value(hi_));
    case Kind::exists:
      return fmt::format("Exists({})", debug_quote(metric_));
    case Kind::exit_code_eq:
      return fmt::format("ExitCodeEq({})", code_);
  }
  return "?";
}

const char* to_string(DetailKind k) noexcept {
  switch (k) {
    case DetailKind::other: return "other";
    case DetailKind::spawn: return "spawn";
    case DetailKind::extraction: return "extraction";
    case DetailKind::pairing: return "pairing";
    case DetailKind::bounds: return "bounds";
    case DetailKind::lost: return "lost";
  }
  return "other";
}

void AssertResult::merge(AssertResult other) {
  passed = passed && other.passed;
  for (auto& d : other.details) details.push_back(std::move(d));
}

Payload Payload::binary_payload(std::string name, std::string binary) {
  Payload p;
  p.name = std::move(name);
  p.binary = std::move(binary);
  return p;
}

Payload Payload::scheduler_payload(std::string name, std::string scheduler) {
  Payload p;
  p.name = std::move(name);
  p.kind = PayloadKind::scheduler;
  p.binary = std::move(scheduler);
  return p;
}

}  // namespace payloadrun
