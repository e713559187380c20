// Scenario parsing with simdjson's DOM API. Every error names the file, the
// JSON path of the offending value and what was expected there.
#include "scenario.hpp"

#include <signal.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <payloadrun/error.hpp>

#include "digest.hpp"
#include "files.hpp"
#include "json_path.hpp"

namespace runner {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// The one field reader (lib/detail/json_fields.hpp); failures name the file.
class Reader : public payloadrun::detail::JsonReader {
 public:
  explicit Reader(const std::string& file)
      : JsonReader([&file](const std::string& place, const std::string& what) {
          throw ScenarioError(fmt::format("{}: {}: {}", file, place, what));
        }) {}

  // Every string of a scenario: a NUL byte (JSON's \u0000) would be cut by
  // exec and by C-string messages, so it is refused where it is.
  std::string as_string(element e, const std::string& path, std::string_view what = "a string") const {
    const std::string_view s = JsonReader::as_string(e, path, what);
    if (const std::string nul = nul_byte_problem(s); !nul.empty()) fail(path, nul);
    return std::string(s);
  }
  std::string as_nonempty_string(element e, const std::string& path) const {
    std::string s = as_string(e, path, "a non-empty string");
    if (s.empty()) fail(path, "expected a non-empty string, got \"\"");
    return s;
  }
  static std::string join(const std::string& path, std::string_view key) { return json_path_join(path, key); }
  static std::string index(const std::string& path, std::size_t i) { return json_path_index(path, i); }
};

payloadrun::OutputFormat parse_output(const Reader& r, element e, const std::string& path) {
  constexpr const char* what = R"("json", "exit_code" or {"deferred": "hint"})";
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) {
    if (s == "json") return payloadrun::output::Json{};
    if (s == "exit_code") return payloadrun::output::ExitCode{};
    r.fail(path, fmt::format("expected {}, got \"{}\"", what, s));
  }
  object o;
  if (e.get(o) != simdjson::SUCCESS) r.expected(path, what, e);
  r.only_keys(o, path, {"deferred"});
  element hint = r.required(o, path, "deferred", "a hint string or null");
  payloadrun::output::Deferred d;
  if (!hint.is_null()) d.hint = r.as_string(hint, Reader::join(path, "deferred"), "a hint string or null");
  return d;
}

payloadrun::MetricHint parse_hint(const Reader& r, element e, const std::string& path) {
  object o = r.as_object(e, path, R"(an object {"name", "polarity", "unit"})");
  r.only_keys(o, path, {"name", "polarity", "unit"});
  payloadrun::MetricHint h;
  h.name = r.as_nonempty_string(r.required(o, path, "name", "a metric name"), Reader::join(path, "name"));
  element pol;
  if (o["polarity"].get(pol) == simdjson::SUCCESS) {
    const std::string p_path = Reader::join(path, "polarity");
    const std::string p = r.as_string(pol, p_path, R"("higher_better" or "lower_better")");
    if (p == "higher_better") h.polarity = payloadrun::Polarity::higher_better;
    else if (p == "lower_better") h.polarity = payloadrun::Polarity::lower_better;
    else if (p == "unknown") h.polarity = payloadrun::Polarity::unknown;
    else r.fail(p_path, fmt::format(R"(expected "higher_better" or "lower_better", got "{}")", p));
  }
  element unit;
  if (o["unit"].get(unit) == simdjson::SUCCESS) h.unit = r.as_string(unit, Reader::join(path, "unit"));
  return h;
}

payloadrun::MetricCheck parse_check(const Reader& r, element e, const std::string& path) {
  constexpr const char* what = R"(an object with one key: "min", "max", "range", "exists" or "exit_code")";
  object o = r.as_object(e, path, what);
  if (o.size() != 1) r.fail(path, fmt::format("expected {}, got {} keys", what, o.size()));
  auto field = *o.begin();
  const std::string key(field.key);
  const std::string kpath = Reader::join(path, key);
  try {
    if (key == "min" || key == "max") {
      object b = r.as_object(field.value, kpath, R"(an object {"metric", "value"})");
      r.only_keys(b, kpath, {"metric", "value"});
      std::string m = r.as_nonempty_string(r.required(b, kpath, "metric", "a metric name"),
                                           Reader::join(kpath, "metric"));
      double v = r.as_number(r.required(b, kpath, "value", "a number"), Reader::join(kpath, "value"));
      return key == "min" ? payloadrun::MetricCheck::min(std::move(m), v)
                          : payloadrun::MetricCheck::max(std::move(m), v);
    }
    if (key == "range") {
      object b = r.as_object(field.value, kpath, R"(an object {"metric", "lo", "hi"})");
      r.only_keys(b, kpath, {"metric", "lo", "hi"});
      std::string m = r.as_nonempty_string(r.required(b, kpath, "metric", "a metric name"),
                                           Reader::join(kpath, "metric"));
      double lo = r.as_number(r.required(b, kpath, "lo", "a number"), Reader::join(kpath, "lo"));
      double hi = r.as_number(r.required(b, kpath, "hi", "a number"), Reader::join(kpath, "hi"));
      if (lo > hi) {
        r.fail(kpath, fmt::format("expected lo <= hi, got lo = {} > hi = {}", lo, hi));
      }
      return payloadrun::MetricCheck::range(std::move(m), lo, hi);
    }
    if (key == "exists") {
      return payloadrun::MetricCheck::exists(r.as_nonempty_string(field.value, kpath));
    }
    if (key == "exit_code") {
      return payloadrun::MetricCheck::exit_code_eq(static_cast<int>(
          r.as_integer(field.value, kpath, -1, 255, "an exit code (an integer from -1 to 255)")));
    }
  } catch (const payloadrun::Error& err) {
    r.fail(kpath, err.what());
  }
  r.fail(kpath, fmt::format("unknown check; expected {}", what));
}

// "stop_signal": a name or a number (PayloadRun::stop_signal). Errors name
// the payload as well as the path.
int parse_stop_signal(const Reader& r, element e, const std::string& path, const std::string& payload) {
  static constexpr std::pair<std::string_view, int> names[] = {
      {"SIGINT", SIGINT},   {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
      {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGQUIT", SIGQUIT}};
  constexpr const char* what =
      R"("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT" or a signal number)";
  std::string_view s;
  if (e.get(s) == simdjson::SUCCESS) {
    for (const auto& [name, number] : names) {
      if (s == name) return number;
    }
    r.fail(path, fmt::format("payload \"{}\": unknown stop signal \"{}\"; expected {}", payload, s, what));
  }
  std::int64_t n = 0;
  if (e.type() == simdjson::dom::element_type::DOUBLE || e.get(n) != simdjson::SUCCESS) {
    r.fail(path, fmt::format("payload \"{}\": {}", payload, payloadrun::detail::json_expected(what, e)));
  }
  if (n < 1 || n > SIGRTMAX || n == SIGSTOP) {
    r.fail(path, fmt::format("payload \"{}\": stop signal {} is not a signal to stop with; expected 1 to {}, "
                             "not SIGSTOP ({})",
                             payload, n, SIGRTMAX, SIGSTOP));
  }
  return static_cast<int>(n);
}

constexpr const char* limit_text = "an invocation count of at most 10000000 (the limit per scenario)";
static_assert(max_total_invocations == 10'000'000, "limit_text names the limit");

ScenarioPayload parse_payload(const Reader& r, element e, const std::string& path,
                              const std::string& base_dir) {
  object o = r.as_object(e, path, "a payload object");
  r.only_keys(o, path,
              {"name", "binary", "args", "output", "metrics", "checks", "timeout_ms", "stop_signal",
               "stop_grace_ms", "cgroup", "own_cgroup", "uses_parent_pgrp", "env", "count"});
  auto p = std::make_shared<payloadrun::Payload>();
  p->name = r.as_nonempty_string(r.required(o, path, "name", "a payload name"), Reader::join(path, "name"));
  p->binary = r.as_nonempty_string(r.required(o, path, "binary", "a binary path or name"),
                                   Reader::join(path, "binary"));
  if (p->binary.starts_with("./")) {
    p->binary = base_dir + p->binary.substr(1);
  } else if (p->binary.starts_with("../")) {
    p->binary = base_dir + "/" + p->binary;
  }
  if (struct stat st {}; p->binary.find('/') != std::string::npos && ::stat(p->binary.c_str(), &st) == 0 &&
                         S_ISDIR(st.st_mode)) {
    r.fail(Reader::join(path, "binary"), fmt::format("'{}' is a directory; expected an executable file", p->binary));
  }
  ScenarioPayload sp;
  element v;
  if (o["args"].get(v) == simdjson::SUCCESS) {
    const std::string apath = Reader::join(path, "args");
    std::size_t i = 0;
    for (element a : r.as_array(v, apath, "an array of strings")) {
      p->default_args.push_back(r.as_string(a, Reader::index(apath, i++)));
    }
  }
  if (o["output"].get(v) == simdjson::SUCCESS) p->output = parse_output(r, v, Reader::join(path, "output"));
  if (o["metrics"].get(v) == simdjson::SUCCESS) {
    const std::string mpath = Reader::join(path, "metrics");
    std::size_t i = 0;
    for (element m : r.as_array(v, mpath, "an array of metric hints")) {
      p->metrics.push_back(parse_hint(r, m, Reader::index(mpath, i++)));
    }
  }
  if (o["checks"].get(v) == simdjson::SUCCESS) {
    const std::string cpath = Reader::join(path, "checks");
    std::size_t i = 0;
    for (element c : r.as_array(v, cpath, "an array of checks")) {
      p->default_checks.push_back(parse_check(r, c, Reader::index(cpath, i++)));
    }
  }
  if (o["timeout_ms"].get(v) == simdjson::SUCCESS) {
    sp.timeout = std::chrono::milliseconds(r.as_integer(
        v, Reader::join(path, "timeout_ms"), 1, 365LL * 24 * 3600 * 1000, "a positive integer (milliseconds)"));
  }
  if (o["stop_signal"].get(v) == simdjson::SUCCESS) {
    sp.stop_signal = parse_stop_signal(r, v, Reader::join(path, "stop_signal"), p->name);
  }
  if (o["stop_grace_ms"].get(v) == simdjson::SUCCESS) {
    sp.stop_grace = std::chrono::milliseconds(r.as_integer(v, Reader::join(path, "stop_grace_ms"), 0,
                                                           24LL * 3600 * 1000,
                                                           "a non-negative integer (milliseconds, at most a day)"));
  }
  if (o["cgroup"].get(v) == simdjson::SUCCESS) {
    sp.cgroup = r.as_nonempty_string(v, Reader::join(path, "cgroup"));
  }
  if (o["own_cgroup"].get(v) == simdjson::SUCCESS) sp.own_cgroup = r.as_bool(v, Reader::join(path, "own_cgroup"));
  if (o["uses_parent_pgrp"].get(v) == simdjson::SUCCESS) {
    p->uses_parent_pgrp = r.as_bool(v, Reader::join(path, "uses_parent_pgrp"));
  }
  if (o["env"].get(v) == simdjson::SUCCESS) {
    const std::string epath = Reader::join(path, "env");
    for (auto field : r.as_object(v, epath, R"(an object {"NAME": "value"})")) {
      const std::string kpath = Reader::join(epath, field.key);
      if (field.key.empty() || field.key.find('=') != std::string_view::npos) {
        r.fail(kpath, "expected an environment variable name (non-empty, no '=')");
      }
      sp.env.emplace_back(std::string(field.key), r.as_string(field.value, kpath));
    }
  }
  if (o["count"].get(v) == simdjson::SUCCESS) {
    sp.count = static_cast<std::size_t>(
        r.as_integer(v, Reader::join(path, "count"), 0, static_cast<std::int64_t>(max_total_invocations),
                     v.is_int64() && v.get_int64().value() > 0 ? limit_text : "a non-negative integer"));
  }
  sp.payload = std::move(p);
  return sp;
}

}  // namespace

std::size_t Scenario::total_invocations() const noexcept {
  std::size_t n = 0;
  for (const auto& p : payloads) n += p.count;
  return n;
}

Scenario parse_scenario(std::string_view json, const std::string& file, const std::string& base_dir) {
  Reader r(file);
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  element root;
  if (auto err = parser.parse(padded).get(root); err != simdjson::SUCCESS) {
    throw ScenarioError(fmt::format("{}: not valid JSON: {}", file, simdjson::error_message(err)));
  }
  if (const std::string dup = find_duplicate_key(root); !dup.empty()) {
    throw ScenarioError(fmt::format("{}: {}", file, dup));
  }
  object top = r.as_object(root, "", R"(an object {"concurrency", "payloads"})");
  r.only_keys(top, "", {"concurrency", "payloads"});
  Scenario s;
  s.file = file;
  s.digest = scenario_digest(root);
  element v;
  if (top["concurrency"].get(v) == simdjson::SUCCESS) {
    s.concurrency = static_cast<std::size_t>(
        r.as_integer(v, "concurrency", 1, 1'000'000, "a positive integer"));
  }
  auto payloads = r.as_array(r.required(top, "", "payloads", "an array of payloads"), "payloads",
                             "an array of payloads");
  std::size_t i = 0;
  std::map<std::string, std::size_t, std::less<>> names;
  for (element p : payloads) {
    const std::string ppath = Reader::index("payloads", i);
    s.payloads.push_back(parse_payload(r, p, ppath, base_dir));
    const std::string& name = s.payloads.back().payload->name;
    if (auto [it, fresh] = names.emplace(name, i); !fresh) {
      r.fail(Reader::join(ppath, "name"),
             fmt::format("\"{}\" is already the name of payloads[{}]; payload names must be unique (reports, "
                         "shards and merges key on them)",
                         name, it->second));
    }
    ++i;
  }
  if (s.payloads.empty()) r.fail("payloads", "expected at least one payload, got an empty array");
  const std::size_t total = s.total_invocations();
  if (total == 0) r.fail("payloads", "every payload's count is 0: nothing to run");
  if (total > max_total_invocations) {
    r.fail("payloads", fmt::format("the counts add up to {} invocations, more than the limit of {} per scenario "
                                   "(every invocation's result is kept for the report); split the scenario",
                                   total, max_total_invocations));
  }
  return s;
}

Scenario load_scenario(const std::string& file, const std::string& base_dir) {
  std::string text;
  try {
    text = read_input_file(file, "scenario file");
  } catch (const InputError& e) {
    throw ScenarioError(e.what());
  }
  const auto slash = file.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : file.substr(0, slash));
  return parse_scenario(text, file, base_dir.empty() ? dir : base_dir);
}

}  // namespace runner
