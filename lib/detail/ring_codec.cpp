// JSON bodies of ring records: encoding (producer) and decoding of
// untrusted bytes with simdjson (consumer).
#include <simdjson.h>

#include <fmt/format.h>

#include "detail/json_fields.hpp"
#include "detail/ring_json.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/ring.hpp"

namespace payloadrun {
namespace detail {

void json_details(std::string& out, const AssertResult& result) {
  out += "[";
  bool first = true;
  for (const auto& d : result.details) {
    if (!first) out += ",";
    first = false;
    out += "{\"kind\":";
    json_string(out, to_string(d.kind));
    out += ",\"message\":";
    json_string(out, d.message);
    out += "}";
  }
  out += "]";
}

void json_metrics(std::string& out, const PayloadMetrics& metrics) {
  out += "[";
  bool first = true;
  for (const Metric m : metrics) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    json_string(out, m.name);
    out += ",\"value\":";
    json_double(out, m.value);
    out += ",\"polarity\":";
    json_string(out, to_string(m.polarity));
    out += ",\"unit\":";
    json_string(out, m.unit);
    out += ",\"source\":";
    json_string(out, to_string(m.source));
    out += ",\"stream\":";
    json_string(out, to_string(m.stream));
    out += "}";
  }
  out += "]";
}

}  // namespace detail

namespace {

using detail::json_double;
using detail::json_string;
namespace dom = simdjson::dom;

const char* check_kind_name(MetricCheck::Kind k) {
  switch (k) {
    case MetricCheck::Kind::min: return "min";
    case MetricCheck::Kind::max: return "max";
    case MetricCheck::Kind::range: return "range";
    case MetricCheck::Kind::exists: return "exists";
    case MetricCheck::Kind::exit_code_eq: return "exit_code_eq";
  }
  return "?";
}

// Field accessors over untrusted input through the one field reader
// (json_fields.hpp): every failure throws Error(ring) naming the field,
// "ring record body is malformed: FIELD: expected WHAT, got TYPE".
const detail::JsonReader& reader() {
  static const detail::JsonReader r([](const std::string& place, const std::string& what) {
    throw Error(Errc::ring, fmt::format("ring record body is malformed: {}: {}", place, what));
  });
  return r;
}
[[noreturn]] void bad(std::string_view field, const std::string& what) { reader().fail(std::string(field), what); }

dom::element field(dom::object o, std::string_view k, const char* what) {
  return reader().required(o, "", k, what);
}
std::string_view get_str(dom::object o, std::string_view k) {
  return reader().as_string(field(o, k, "a string"), std::string(k));
}
std::optional<std::string> get_opt_str(dom::object o, std::string_view k) {
  dom::element e;
  if (!detail::JsonReader::optional(o, k, e) || e.is_null()) return std::nullopt;
  return std::string(reader().as_string(e, std::string(k), "a string or null"));
}
bool get_bool(dom::object o, std::string_view k) {
  return reader().as_bool(field(o, k, "true or false"), std::string(k));
}
std::int64_t get_int(dom::object o, std::string_view k, std::int64_t lo, std::int64_t hi) {
  return reader().as_integer(field(o, k, "an integer"), std::string(k), lo, hi);
}
std::uint64_t get_u64(dom::object o, std::string_view k) {
  return reader().as_unsigned(field(o, k, "a non-negative integer"), std::string(k));
}
double get_double(dom::object o, std::string_view k) {
  return reader().as_double(field(o, k, "a number"), std::string(k));
}
std::optional<double> get_opt_double(dom::object o, std::string_view k) {
  dom::element e;
  if (!detail::JsonReader::optional(o, k, e) || e.is_null()) return std::nullopt;
  return reader().as_double(e, std::string(k));
}
dom::array get_array(dom::object o, std::string_view k) {
  return reader().as_array(field(o, k, "an array"), std::string(k));
}
dom::object as_object(dom::element e, std::string_view what) { return reader().as_object(e, std::string(what)); }

template <class T>
T parse_enum(std::string_view s, std::string_view k, std::initializer_list<T> values) {
  for (T v : values) {
    if (s == to_string(v)) return v;
  }
  bad(k, fmt::format("unknown value \"{}\"", s));
}

dom::object parse_root(dom::parser& parser, std::string_view body) {
  dom::element root;
  if (parser.parse(body.data(), body.size(), true).get(root) != simdjson::SUCCESS) {
    throw Error(Errc::ring, "ring record body is not valid JSON");
  }
  return as_object(root, "the body");
}

}  // namespace

std::string encode_metrics(const Completion& c, bool deferred) {
  const PayloadMetrics& m = c.metrics;
  std::string out;
  out.reserve(256 + m.size() * 96);
  out += "{\"payload\":";
  json_string(out, c.payload_name);
  fmt::format_to(std::back_inserter(out),
                 ",\"payload_index\":{},\"pid\":{},\"exit_code\":{},\"timed_out\":{},"
                 "\"killed_by_signal\":",
                 m.payload_index, c.pid, m.exit_code, m.timed_out);
  if (m.killed_by_signal) {
    fmt::format_to(std::back_inserter(out), "{}", *m.killed_by_signal);
  } else {
    out += "null";
  }
  fmt::format_to(std::back_inserter(out),
                 ",\"stdout_truncated\":{},\"stderr_truncated\":{},\"drain_cut_short\":{},"
                 "\"duration_ns\":{},\"deferred\":{},\"passed\":{},\"details\":",
                 m.stdout_truncated, m.stderr_truncated, m.drain_cut_short, m.duration.count(),
                 deferred, c.result.passed);
  detail::json_details(out, c.result);
  out += ",\"metrics\":";
  detail::json_metrics(out, m);
  out += ",\"error\":";
  detail::json_string_or_null(out, c.error);
  out += "}";
  return out;
}

std::string encode_raw(const RawPayloadOutput& r) {
  std::string out;
  out.reserve(512 + r.stdout_text.size() + r.stderr_text.size());
  fmt::format_to(std::back_inserter(out), "{{\"payload_index\":{},\"payload\":", r.payload_index);
  json_string(out, r.payload_name);
  out += ",\"stdout\":";
  json_string(out, r.stdout_text);
  out += ",\"stderr\":";
  json_string(out, r.stderr_text);
  out += ",\"hint\":";
  detail::json_string_or_null(out, r.hint);
  out += ",\"metric_hints\":[";
  for (std::size_t i = 0; i < r.metric_hints.size(); ++i) {
    if (i != 0) out += ",";
    out += "{\"name\":";
    json_string(out, r.metric_hints[i].name);
    out += ",\"polarity\":";
    json_string(out, to_string(r.metric_hints[i].polarity));
    out += ",\"unit\":";
    json_string(out, r.metric_hints[i].unit);
    out += "}";
  }
  out += "],\"metric_bounds\":";
  if (r.metric_bounds) {
    fmt::format_to(std::back_inserter(out), "{{\"min_count\":{},\"value_min\":",
                   r.metric_bounds->min_count);
    if (r.metric_bounds->value_min) json_double(out, *r.metric_bounds->value_min); else out += "null";
    out += ",\"value_max\":";
    if (r.metric_bounds->value_max) json_double(out, *r.metric_bounds->value_max); else out += "null";
    out += "}";
  } else {
    out += "null";
  }
  fmt::format_to(std::back_inserter(out), ",\"exit_code\":{},\"timed_out\":{},\"checks\":[",
                 r.exit_code, r.timed_out);
  for (std::size_t i = 0; i < r.checks.size(); ++i) {
    const MetricCheck& c = r.checks[i];
    if (i != 0) out += ",";
    out += "{\"kind\":";
    json_string(out, check_kind_name(c.kind()));
    out += ",\"metric\":";
    json_string(out, c.metric());
    out += ",\"lo\":";
    json_double(out, c.lo());
    out += ",\"hi\":";
    json_double(out, c.hi());
    fmt::format_to(std::back_inserter(out), ",\"code\":{}}}", c.exit_code());
  }
  out += "]}";
  return out;
}

MetricsRecord decode_metrics(std::string_view body) {
  dom::parser parser;
  dom::object o = parse_root(parser, body);
  MetricsRecord r;
  r.payload_name = std::string(get_str(o, "payload"));
  r.payload_index = get_u64(o, "payload_index");
  r.exit_code = static_cast<int>(get_int(o, "exit_code", INT32_MIN, INT32_MAX));
  r.timed_out = get_bool(o, "timed_out");
  dom::element sig;
  if (o["killed_by_signal"].get(sig) == simdjson::SUCCESS && !sig.is_null()) {
    r.killed_by_signal = static_cast<int>(get_int(o, "killed_by_signal", 0, 1024));
  }
  r.deferred = get_bool(o, "deferred");
  r.result.passed = get_bool(o, "passed");
  for (dom::element e : get_array(o, "details")) {
    dom::object d = as_object(e, "details[]");
    const std::string_view kind = get_str(d, "kind");
    AssertDetail detail;
    detail.kind = parse_enum(kind, "kind",
                             {DetailKind::other, DetailKind::spawn, DetailKind::extraction,
                              DetailKind::pairing, DetailKind::bounds, DetailKind::lost});
    detail.message = std::string(get_str(d, "message"));
    r.result.details.push_back(std::move(detail));
  }
  for (dom::element e : get_array(o, "metrics")) {
    dom::object m = as_object(e, "metrics[]");
    const std::size_t i = r.metrics.size();
    r.metrics.add(get_str(m, "name"), get_double(m, "value"),
                  parse_enum(get_str(m, "source"), "source", {MetricSource::json, MetricSource::deferred}),
                  parse_enum(get_str(m, "stream"), "stream",
                             {MetricStream::stdout_stream, MetricStream::stderr_stream}));
    r.metrics.set_hint(i,
                       parse_enum(get_str(m, "polarity"), "polarity",
                                  {Polarity::unknown, Polarity::higher_better, Polarity::lower_better}),
                       get_str(m, "unit"));
  }
  r.metrics.payload_index = r.payload_index;
  r.metrics.exit_code = r.exit_code;
  r.metrics.timed_out = r.timed_out;
  r.metrics.killed_by_signal = r.killed_by_signal;
  r.error = get_opt_str(o, "error");
  return r;
}

RawPayloadOutput decode_raw(std::string_view body) {
  dom::parser parser;
  dom::object o = parse_root(parser, body);
  RawPayloadOutput r;
  r.payload_index = get_u64(o, "payload_index");
  r.payload_name = std::string(get_str(o, "payload"));
  r.stdout_text = std::string(get_str(o, "stdout"));
  r.stderr_text = std::string(get_str(o, "stderr"));
  r.hint = get_opt_str(o, "hint");
  for (dom::element e : get_array(o, "metric_hints")) {
    dom::object h = as_object(e, "metric_hints[]");
    r.metric_hints.push_back(MetricHint{
        std::string(get_str(h, "name")),
        parse_enum(get_str(h, "polarity"), "polarity",
                   {Polarity::unknown, Polarity::higher_better, Polarity::lower_better}),
        std::string(get_str(h, "unit"))});
  }
  dom::element b;
  if (o["metric_bounds"].get(b) == simdjson::SUCCESS && !b.is_null()) {
    dom::object bo = as_object(b, "metric_bounds");
    MetricBounds mb;
    mb.min_count = static_cast<std::size_t>(get_u64(bo, "min_count"));
    mb.value_min = get_opt_double(bo, "value_min");
    mb.value_max = get_opt_double(bo, "value_max");
    r.metric_bounds = mb;
  }
  r.exit_code = static_cast<int>(get_int(o, "exit_code", INT32_MIN, INT32_MAX));
  r.timed_out = get_bool(o, "timed_out");
  for (dom::element e : get_array(o, "checks")) {
    dom::object c = as_object(e, "checks[]");
    const std::string_view kind = get_str(c, "kind");
    std::string metric(get_str(c, "metric"));
    const double lo = get_double(c, "lo");
    const double hi = get_double(c, "hi");
    try {
      if (kind == "min") r.checks.push_back(MetricCheck::min(std::move(metric), lo));
      else if (kind == "max") r.checks.push_back(MetricCheck::max(std::move(metric), hi));
      else if (kind == "range") r.checks.push_back(MetricCheck::range(std::move(metric), lo, hi));
      else if (kind == "exists") r.checks.push_back(MetricCheck::exists(std::move(metric)));
      else if (kind == "exit_code_eq") {
        r.checks.push_back(MetricCheck::exit_code_eq(
            static_cast<int>(get_int(c, "code", INT32_MIN, INT32_MAX))));
      } else {
        bad("kind", fmt::format("unknown check kind \"{}\"", kind));
      }
    } catch (const Error& e) {
      if (e.code() == Errc::ring) throw;
      bad("checks[]", fmt::format("invalid check: {}", e.what()));
    }
  }
  return r;
}

}  // namespace payloadrun
