// Reading a JSON report back with simdjson's DOM API: the exact shape
// write_json_report produces, every field checked.
#include "report_read.hpp"

#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include <fmt/format.h>
#include <payloadrun/check.hpp>
#include <payloadrun/metrics.hpp>

#include "detail/json_fields.hpp"
#include "files.hpp"
#include "json_path.hpp"
#include "report.hpp"

namespace runner {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::string join(const std::string& path, std::string_view key) { return json_path_join(path, key); }
std::string index(const std::string& path, std::size_t i) { return json_path_index(path, i); }

// Field access on one object through the one field reader
// (lib/detail/json_fields.hpp), every failure naming the file and path.
class Fields {
 public:
  Fields(const std::string& file, element e, std::string path)
      : reader_([&file](const std::string& place, const std::string& what) {
          throw ReportError(fmt::format("{}: {}: {}", file, place, what));
        }),
        path_(std::move(path)),
        o_(reader_.as_object(e, path_)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const { reader_.fail(path, what); }
  const std::string& path() const { return path_; }

  element get(std::string_view key, std::string_view what) const { return reader_.required(o_, path_, key, what); }
  bool has(std::string_view key) const {
    element e;
    return payloadrun::detail::JsonReader::optional(o_, key, e);
  }
  std::string str(std::string_view key) const {
    return std::string(reader_.as_string(get(key, "a string"), join(path_, key)));
  }
  bool boolean(std::string_view key) const { return reader_.as_bool(get(key, "true or false"), join(path_, key)); }
  std::int64_t integer(std::string_view key, std::int64_t lo, std::int64_t hi) const {
    const std::string what = fmt::format("an integer from {} to {}", lo, hi);
    return reader_.as_integer(get(key, what), join(path_, key), lo, hi, what);
  }
  std::uint64_t unsigned_integer(std::string_view key) const {
    return reader_.as_unsigned(get(key, "a non-negative integer"), join(path_, key));
  }
  // A number as the one writer spells it (docs/json.md), or null (NaN) as
  // reports written before it had for non-finite values.
  double number_or_null(std::string_view key) const {
    return reader_.as_double(get(key, "a number or null"), join(path_, key), true);
  }
  simdjson::dom::array array(std::string_view key, std::string_view what) const {
    return reader_.as_array(get(key, what), join(path_, key), what);
  }
  // One of the names `to_string` gives the values first..last of an enum.
  template <class Enum>
  Enum enumerated(std::string_view key, std::initializer_list<Enum> values) const {
    const std::string s = str(key);
    std::string names;
    for (Enum v : values) {
      if (s == payloadrun::to_string(v)) return v;
      names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", payloadrun::to_string(v));
    }
    fail(join(path_, key), fmt::format("expected one of {}, got \"{}\"", names, s));
  }

 private:
  payloadrun::detail::JsonReader reader_;
  std::string path_;
  object o_;
};

using payloadrun::DetailKind;
using payloadrun::MetricSource;
using payloadrun::MetricStream;
using payloadrun::Polarity;
constexpr auto polarities = {Polarity::unknown, Polarity::higher_better, Polarity::lower_better};

void read_scenario(const std::string& file, element e, LoadedReport& r) {
  const Fields f(file, e, "scenario");
  r.scenario.file = f.str("file");
  r.scenario.digest = f.str("digest");
  const std::string& d = r.scenario.digest;
  const bool hex = d.size() == 7 + 64 && d.starts_with("sha256:") &&
                   d.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
  if (!hex) f.fail("scenario.digest", fmt::format("expected \"sha256:\" and 64 hex digits, got \"{}\"", d));
  const std::uint64_t total = f.unsigned_integer("invocations");
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (element pe : f.array("payloads", "an array of payloads")) {
    const Fields p(file, pe, index("scenario.payloads", i++));
    auto payload = std::make_shared<payloadrun::Payload>();
    payload->name = p.str("name");
    if (payload->name.empty()) p.fail(join(p.path(), "name"), "expected a non-empty payload name");
    ScenarioPayload sp;
    sp.count = static_cast<std::size_t>(p.integer("count", 0, static_cast<std::int64_t>(max_total_invocations)));
    sum += sp.count;
    std::size_t j = 0;
    for (element he : p.array("metrics", "an array of metric hints")) {
      const Fields h(file, he, index(join(p.path(), "metrics"), j++));
      payload->metrics.push_back({h.str("name"), h.enumerated<Polarity>("polarity", polarities), h.str("unit")});
    }
    sp.payload = std::move(payload);
    r.scenario.payloads.push_back(std::move(sp));
  }
  if (r.scenario.payloads.empty()) f.fail("scenario.payloads", "expected at least one payload, got none");
  if (sum != total) {
    f.fail("scenario.invocations", fmt::format("expected the sum of the payloads' counts ({}), got {}", sum, total));
  }
}

void read_shard(const std::string& file, element e, LoadedReport& r) {
  const Fields f(file, e, "shard");
  Shard& s = r.result.shard;
  s.count = static_cast<std::size_t>(f.integer("count", 1, static_cast<std::int64_t>(max_shard_count)));
  s.index = static_cast<std::size_t>(f.integer("index", 0, static_cast<std::int64_t>(s.count) - 1));
  s.source = f.str("source");
  r.rule = f.str("rule");
  r.result.planned = static_cast<std::size_t>(
      f.integer("invocations", 0, static_cast<std::int64_t>(r.scenario.total_invocations())));
}

InvocationRecord read_invocation(const std::string& file, element e, std::size_t i, const Scenario& scenario) {
  const Fields f(file, e, index("invocations", i));
  InvocationRecord rec;
  rec.payload = f.str("payload");
  rec.scenario_index = static_cast<std::size_t>(
      f.integer("scenario_index", 0, static_cast<std::int64_t>(scenario.payloads.size()) - 1));
  const ScenarioPayload& sp = scenario.payloads[rec.scenario_index];
  if (rec.payload != sp.payload->name) {
    f.fail(join(f.path(), "payload"), fmt::format("expected \"{}\" (scenario.payloads[{}].name), got \"{}\"",
                                                  sp.payload->name, rec.scenario_index, rec.payload));
  }
  if (sp.count == 0) f.fail(join(f.path(), "scenario_index"), "names a payload whose count is 0");
  rec.invocation = static_cast<std::size_t>(f.integer("invocation", 0, static_cast<std::int64_t>(sp.count) - 1));
  element index_e = f.get("payload_index", "a non-negative integer or null");
  rec.spawned = !index_e.is_null();
  if (rec.spawned) rec.payload_index = f.unsigned_integer("payload_index");
  rec.pid = static_cast<int>(f.integer("pid", 0, std::numeric_limits<int>::max()));
  rec.exit_code = static_cast<int>(f.integer("exit_code", -1, 255));
  rec.timed_out = f.boolean("timed_out");
  rec.passed = f.boolean("passed");
  std::size_t j = 0;
  for (element de : f.array("details", "an array of details")) {
    const Fields d(file, de, index(join(f.path(), "details"), j++));
    if (d.str("kind") == interrupted_kind) {  // the runner's own detail (report.hpp)
      rec.interrupted = d.str("message");
      continue;
    }
    rec.details.push_back({d.enumerated<DetailKind>("kind", {DetailKind::other, DetailKind::spawn,
                                                             DetailKind::extraction, DetailKind::pairing,
                                                             DetailKind::bounds, DetailKind::lost}),
                           d.str("message")});
  }
  j = 0;
  for (element me : f.array("metrics", "an array of metrics")) {
    const Fields m(file, me, index(join(f.path(), "metrics"), j++));
    rec.metrics.push_back({m.str("name"), m.number_or_null("value"), m.enumerated<Polarity>("polarity", polarities),
                           m.str("unit"),
                           m.enumerated<MetricSource>("source", {MetricSource::json, MetricSource::deferred}),
                           m.enumerated<MetricStream>("stream", {MetricStream::stdout_stream,
                                                                 MetricStream::stderr_stream})});
  }
  rec.stdout_truncated = f.boolean("stdout_truncated");
  rec.stderr_truncated = f.boolean("stderr_truncated");
  rec.duration_ms = f.number_or_null("duration_ms");
  // Written since issue 18; reports from before have none.
  if (f.has("started_unix_ms")) rec.started_unix_ms = f.number_or_null("started_unix_ms");
  if (f.has("stdout_tail")) rec.stdout_tail = f.str("stdout_tail");
  if (f.has("stderr_tail")) rec.stderr_tail = f.str("stderr_tail");
  return rec;
}

}  // namespace

LoadedReport parse_report(std::string_view json, const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  element root;
  if (auto err = parser.parse(padded).get(root); err != simdjson::SUCCESS) {
    throw UnreadableReport(fmt::format("{}: not a payloadrun JSON report: not valid JSON: {}", path,
                                       json.empty() ? "the file is empty" : simdjson::error_message(err)));
  }
  if (const std::string dup = find_duplicate_key(root); !dup.empty()) {
    throw ReportError(fmt::format("{}: {}", path, dup));
  }
  const Fields top(path, root, "");
  if (!top.has("scenario") || !top.has("shard")) {
    throw ReportError(fmt::format(
        "{}: not a payloadrun report with a scenario digest (no \"scenario\"/\"shard\"); was it written by "
        "`payloadrun run --json` from before sharding?",
        path));
  }
  LoadedReport r;
  r.path = path;
  r.passed = top.boolean("passed");
  r.result.interrupted = top.boolean("interrupted");
  const double elapsed = top.number_or_null("elapsed_ms");
  if (std::isfinite(elapsed) && elapsed >= 0 && elapsed < 1e15) {
    r.result.elapsed = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double, std::milli>(elapsed));
  }
  read_scenario(path, top.get("scenario", "an object"), r);
  read_shard(path, top.get("shard", "an object"), r);
  r.merged = top.has("merged");
  std::size_t i = 0;
  for (element e : top.array("invocations", "an array of invocations")) {
    r.result.records.push_back(read_invocation(path, e, i++, r.scenario));
  }
  if (r.result.records.size() > r.result.planned) {
    top.fail("invocations", fmt::format("expected at most shard.invocations = {} entries, got {}",
                                        r.result.planned, r.result.records.size()));
  }
  return r;
}

LoadedReport load_report(const std::string& path) {
  try {
    return parse_report(read_input_file(path, "report"), path);
  } catch (const InputError& e) {
    throw UnreadableReport(e.what());
  }
}

}  // namespace runner
