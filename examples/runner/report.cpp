// Reports: the JSON document, JUnit XML and the terminal table.
#include "report.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <payloadrun/evaluate.hpp>

#include "detail/json_write.hpp"
#include "say.hpp"

namespace runner {
namespace {

using payloadrun::detail::json_number;

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, idx == 0 ? 0 : idx - 1)];
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The JUnit message: every detail's useful line, capped.
std::string failure_summary(const InvocationRecord& r) {
  std::string s;
  for (const auto& d : report_details(r)) {
    if (!s.empty()) s += "; ";
    s += fmt::format("[{}] {}", d.kind, detail_line(d.message));
  }
  if (s.empty()) s = r.timed_out ? "timed out" : "failed";
  return cut_utf8(std::move(s), 1000);
}

// Whether an invocation is a JUnit error (it could not run to a verdict:
// not started, or cut short by an interrupt) rather than a failure.
bool is_error(const InvocationRecord& r) {
  if (!r.interrupted.empty()) return true;
  return std::any_of(r.details.begin(), r.details.end(),
                     [](const auto& d) { return d.kind == payloadrun::DetailKind::spawn; });
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// What one testsuite (or the whole run) reports of its records.
struct SuiteFigures {
  std::size_t tests = 0, failures = 0, errors = 0;
  double first_start_ms = 0;  // 0: no record knows its start
  double span_s = 0;          // wall clock from the first start to the last end
};

SuiteFigures suite_figures(const std::vector<const InvocationRecord*>& records) {
  SuiteFigures f;
  double first = std::numeric_limits<double>::infinity(), last = -first, longest = 0;
  for (const auto* r : records) {
    ++f.tests;
    if (!r->passed) is_error(*r) ? ++f.errors : ++f.failures;
    const double d = std::isfinite(r->duration_ms) ? std::max(0.0, r->duration_ms) : 0.0;
    longest = std::max(longest, d);
    if (r->started_unix_ms > 0 && std::isfinite(r->started_unix_ms)) {
      first = std::min(first, r->started_unix_ms);
      last = std::max(last, r->started_unix_ms + d);
    }
  }
  if (std::isfinite(first)) {
    f.first_start_ms = first;
    f.span_s = (last - first) / 1000;
  } else {
    f.span_s = longest / 1000;  // reports without start times: at least the longest case
  }
  return f;
}

std::string seconds(double s) { return fmt::format("{:.3f}", std::isfinite(s) && s > 0 ? s : 0.0); }

}  // namespace

double wall_clock_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string cut_utf8(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s + "...";
}

std::string output_tail(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t start = text.size() - max;
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  const std::size_t line = text.find('\n', start);
  if (line != std::string_view::npos && line + 1 < text.size() && line - start < max / 4) start = line + 1;
  return "...\n" + std::string(text.substr(start));
}

void keep_output_tails(InvocationRecord& r, std::string_view stdout_text, std::string_view stderr_text) {
  r.stdout_tail = output_tail(stdout_text);
  r.stderr_tail = output_tail(stderr_text);
}

std::string detail_line(std::string_view message) {
  constexpr std::string_view stderr_marker = "; stderr:\n";
  std::string_view head = message, tail;
  if (const std::size_t at = message.find(stderr_marker); at != std::string_view::npos) {
    head = message.substr(0, at);
    tail = message.substr(at + stderr_marker.size());
  }
  std::string line;
  for (char c : head) {
    if (c == '\n') line += " | ";
    else if (c != '\r') line += c;
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '|')) line.pop_back();
  // The stderr's last non-empty line: trailing blank lines and spaces off,
  // then what follows the last newline.
  const std::size_t end = tail.find_last_not_of(" \t\r\n");
  if (end != std::string_view::npos) {
    tail = tail.substr(0, end + 1);
    const std::size_t nl = tail.rfind('\n');
    line += fmt::format("; stderr: {}", nl == std::string_view::npos ? tail : tail.substr(nl + 1));
  }
  return line;
}

std::string iso8601_utc(double unix_ms) {
  if (!std::isfinite(unix_ms) || std::fabs(unix_ms) > 1e17) unix_ms = 0;
  const auto t = static_cast<std::time_t>(std::floor(unix_ms / 1000));
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return "1970-01-01T00:00:00Z";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  if (v == std::trunc(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<long long>(v));
  const double a = std::fabs(v);
  if (a >= 1e15 || a < 1e-4) return fmt::format("{:.6g}", v);
  // Six significant digits, but every digit of the integer part and at
  // least one decimal; trailing zeros dropped.
  const int magnitude = static_cast<int>(std::floor(std::log10(a)));  // 2572288.5: 6; 0.0012: -3
  const int decimals = magnitude >= 0 ? std::max(1, 5 - magnitude) : 5 - magnitude;
  std::string s = fmt::format("{:.{}f}", v, std::min(decimals, 10));
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::vector<ReportDetail> report_details(const InvocationRecord& r) {
  std::vector<ReportDetail> v;
  for (const auto& d : r.details) v.push_back({payloadrun::to_string(d.kind), d.message});
  if (!r.interrupted.empty()) v.push_back({interrupted_kind, r.interrupted});
  return v;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\n': out += "&#10;"; break;  // kept inside attributes too
      case '\r': out += "&#13;"; break;
      case '\t': out += "&#9;"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += "\xEF\xBF\xBD";
        else out += ch;
    }
  }
  return out;
}

std::string xml_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    if (ch == '\n' || ch == '\t') {
      out += ch;
    } else {
      out += xml_escape(std::string_view(&ch, 1));
    }
  }
  return out;
}

namespace {

void write_scenario_fields(std::ostream& out, const Scenario& scenario, const RunResult& result) {
  out << ", \"scenario\": {\"file\": " << json_quote(scenario.file) << ", \"digest\": " << json_quote(scenario.digest)
      << ", \"invocations\": " << scenario.total_invocations() << ", \"payloads\": [";
  for (std::size_t i = 0; i < scenario.payloads.size(); ++i) {
    const auto& p = scenario.payloads[i];
    out << (i ? ", " : "") << "{\"name\": " << json_quote(p.payload->name) << ", \"count\": " << p.count
        << ", \"metrics\": [";
    for (std::size_t j = 0; j < p.payload->metrics.size(); ++j) {
      const auto& h = p.payload->metrics[j];
      out << (j ? ", " : "") << "{\"name\": " << json_quote(h.name)
          << ", \"polarity\": " << json_quote(payloadrun::to_string(h.polarity))
          << ", \"unit\": " << json_quote(h.unit) << "}";
    }
    out << "]}";
  }
  out << "]}, \"shard\": {\"index\": " << result.shard.index << ", \"count\": " << result.shard.count
      << ", \"source\": " << json_quote(result.shard.source) << ", \"rule\": " << json_quote(assignment_rule)
      << ", \"invocations\": " << result.planned << "}";
}

void write_merge_fields(std::ostream& out, const MergeInfo& merge) {
  out << ", \"merged\": {\"count\": " << merge.shard_count << ", \"slices\": [";
  for (std::size_t i = 0; i < merge.slices.size(); ++i) {
    const auto& s = merge.slices[i];
    out << (i ? ", " : "") << "\n    {\"file\": " << json_quote(s.file) << ", \"index\": " << s.shard.index
        << ", \"source\": " << json_quote(s.shard.source) << ", \"invocations\": " << s.planned
        << ", \"completed\": " << s.completed << ", \"passed\": " << (s.passed ? "true" : "false")
        << ", \"interrupted\": " << (s.interrupted ? "true" : "false")
        << ", \"elapsed_ms\": " << json_number(s.elapsed_ms) << "}";
  }
  out << "], \"missing_shards\": [";
  for (std::size_t i = 0; i < merge.missing_shards.size(); ++i) out << (i ? ", " : "") << merge.missing_shards[i];
  out << "], \"missing_invocations\": " << merge.missing_invocations << "}";
}

}  // namespace

void write_json_report(std::ostream& out, const Scenario& scenario, const RunResult& result, const MergeInfo* merge) {
  out << "{\"passed\": " << (result.passed() ? "true" : "false")
      << ", \"interrupted\": " << (result.interrupted ? "true" : "false")
      << ", \"elapsed_ms\": "
      << json_number(std::chrono::duration<double, std::milli>(result.elapsed).count());
  write_scenario_fields(out, scenario, result);
  if (merge) write_merge_fields(out, *merge);
  out << ", \"invocations\": [";
  bool first = true;
  for (const auto& r : result.records) {
    out << (first ? "\n" : ",\n");
    first = false;
    out << "  {\"payload\": " << json_quote(r.payload) << ", \"payload_index\": "
        << (r.spawned ? std::to_string(r.payload_index) : std::string("null"))
        << ", \"scenario_index\": " << r.scenario_index << ", \"invocation\": " << r.invocation
        << ", \"pid\": " << r.pid << ", \"exit_code\": " << r.exit_code
        << ", \"timed_out\": " << (r.timed_out ? "true" : "false")
        << ", \"passed\": " << (r.passed ? "true" : "false") << ", \"details\": [";
    const auto details = report_details(r);
    for (std::size_t i = 0; i < details.size(); ++i) {
      out << (i ? ", " : "") << "{\"kind\": " << json_quote(details[i].kind)
          << ", \"message\": " << json_quote(details[i].message) << "}";
    }
    out << "], \"metrics\": [";
    for (std::size_t i = 0; i < r.metrics.size(); ++i) {
      const auto& m = r.metrics[i];
      out << (i ? ", " : "") << "{\"name\": " << json_quote(m.name) << ", \"value\": " << json_number(m.value)
          << ", \"polarity\": " << json_quote(payloadrun::to_string(m.polarity))
          << ", \"unit\": " << json_quote(m.unit)
          << ", \"source\": " << json_quote(payloadrun::to_string(m.source))
          << ", \"stream\": " << json_quote(payloadrun::to_string(m.stream)) << "}";
    }
    out << "], \"stdout_truncated\": " << (r.stdout_truncated ? "true" : "false")
        << ", \"stderr_truncated\": " << (r.stderr_truncated ? "true" : "false")
        << ", \"duration_ms\": " << json_number(r.duration_ms)
        << ", \"started_unix_ms\": " << json_number(r.started_unix_ms)
        << ", \"stdout_tail\": " << json_quote(r.stdout_tail) << ", \"stderr_tail\": " << json_quote(r.stderr_tail)
        << "}";
  }
  out << "\n]}\n";
}

void write_junit_report(std::ostream& out, const Scenario& scenario, const RunResult& result) {
  std::vector<std::vector<const InvocationRecord*>> by_payload(scenario.payloads.size());
  std::vector<const InvocationRecord*> all;
  for (const auto& r : result.records) {
    by_payload.at(r.scenario_index).push_back(&r);
    all.push_back(&r);
  }
  const SuiteFigures total = suite_figures(all);
  // A suite without a record that knows its start: the run's start.
  const double run_start = total.first_start_ms > 0
                               ? total.first_start_ms
                               : wall_clock_ms() - std::chrono::duration<double, std::milli>(result.elapsed).count();
  const std::string host = xml_escape(host_name());
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << fmt::format("<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">\n",
                     xml_escape(scenario.file), total.tests, total.failures, total.errors,
                     seconds(std::chrono::duration<double>(result.elapsed).count()));
  for (std::size_t i = 0; i < scenario.payloads.size(); ++i) {
    const auto& records = by_payload[i];
    const std::string& name = scenario.payloads[i].payload->name;
    const SuiteFigures f = suite_figures(records);
    out << fmt::format(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{}\" "
        "timestamp=\"{}\" hostname=\"{}\">\n",
        xml_escape(name), f.tests, f.failures, f.errors, seconds(f.span_s),
        iso8601_utc(f.first_start_ms > 0 ? f.first_start_ms : run_start), host);
    for (const auto* r : records) {
      out << fmt::format("    <testcase classname=\"payloadrun.{}\" name=\"{}#{}\" time=\"{}\"",
                         xml_escape(name), xml_escape(name), r->invocation, seconds(r->duration_ms / 1000));
      if (r->passed) {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      std::string kinds, body;
      for (const auto& d : report_details(*r)) {
        if (!kinds.empty()) kinds += ",";
        kinds += d.kind;
        body += fmt::format("[{}] {}\n", d.kind, d.message);
      }
      if (r->timed_out) body += "timed out (killed at the deadline)\n";
      body += fmt::format("pid {}, exit code {}, {:.1f} ms\n", r->pid, r->exit_code, r->duration_ms);
      const char* element = is_error(*r) ? "error" : "failure";
      out << fmt::format("      <{} message=\"{}\" type=\"{}\">{}</{}>\n", element, xml_escape(failure_summary(*r)),
                         xml_escape(kinds.empty() ? "failure" : kinds), xml_text(body), element);
      if (!r->stdout_tail.empty()) out << "      <system-out>" << xml_text(r->stdout_tail) << "</system-out>\n";
      if (!r->stderr_tail.empty()) out << "      <system-err>" << xml_text(r->stderr_tail) << "</system-err>\n";
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
}

std::string json_report_text(const Scenario& scenario, const RunResult& result, const MergeInfo* merge) {
  std::ostringstream text;
  write_json_report(text, scenario, result, merge);
  return std::move(text).str();
}

std::string junit_report_text(const Scenario& scenario, const RunResult& result) {
  std::ostringstream text;
  write_junit_report(text, scenario, result);
  return std::move(text).str();
}

void print_table(std::FILE* out, const Scenario& scenario, const RunResult& result) {
  struct Row {
    std::size_t invocations = 0, passed = 0, failed = 0, timed_out = 0;
    std::vector<double> durations;
    std::vector<std::size_t> metric_counts;
    std::map<std::string, std::vector<double>> metric_values;
  };
  std::vector<Row> rows(scenario.payloads.size());
  for (const auto& r : result.records) {
    Row& row = rows.at(r.scenario_index);
    ++row.invocations;
    r.passed ? ++row.passed : ++row.failed;
    row.timed_out += r.timed_out;
    if (r.spawned) {
      row.durations.push_back(r.duration_ms);
      row.metric_counts.push_back(r.metrics.size());
    }
    for (const auto& hint : scenario.payloads[r.scenario_index].payload->metrics) {
      auto it = std::find_if(r.metrics.begin(), r.metrics.end(), [&](const auto& m) { return m.name == hint.name; });
      if (it != r.metrics.end()) row.metric_values[hint.name].push_back(it->value);
    }
  }
  std::size_t name_w = 7;
  for (const auto& p : scenario.payloads) name_w = std::max(name_w, p.payload->name.size());
  say(out, "{:<{}}  {:>6} {:>6} {:>6} {:>8} {:>9} {:>9}  {}\n", "payload", name_w, "runs", "passed",
             "failed", "timeout", "p50 ms", "max ms", "metric medians");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const auto& payload = *scenario.payloads[i].payload;
    std::string metrics;
    for (const auto& hint : payload.metrics) {
      auto it = row.metric_values.find(hint.name);
      if (!metrics.empty()) metrics += "  ";
      if (it == row.metric_values.end()) {
        metrics += fmt::format("{}=n/a", hint.name);
      } else {
        metrics += fmt::format("{}={}{}{}", hint.name, format_metric_value(median(it->second)),
                               hint.unit.empty() ? "" : " ", hint.unit);
      }
    }
    if (payload.metrics.empty() && !row.metric_counts.empty()) {
      const auto [lo, hi] = std::minmax_element(row.metric_counts.begin(), row.metric_counts.end());
      metrics = *hi == 0 ? std::string("no metrics")
                : *lo == *hi ? fmt::format("{} metric{} (no hints)", *hi, *hi == 1 ? "" : "s")
                             : fmt::format("{}-{} metrics (no hints)", *lo, *hi);
    }
    const double p50 = percentile(row.durations, 0.5);
    const double max = row.durations.empty() ? 0 : *std::max_element(row.durations.begin(), row.durations.end());
    say(out, "{:<{}}  {:>6} {:>6} {:>6} {:>8} {:>9.1f} {:>9.1f}  {}\n", payload.name, name_w,
               row.invocations, row.passed, row.failed, row.timed_out, p50, max, metrics);
  }
}

void print_failures(std::FILE* out, const RunResult& result, std::size_t limit) {
  std::size_t shown = 0, failed = 0;
  for (const auto& r : result.records) {
    if (r.passed || !r.interrupted.empty()) continue;  // the interrupted are counted in the summary
    ++failed;
    if (shown == limit) continue;
    ++shown;
    say(out, "\nFAILED {}#{} (pid {}, exit code {}{}, {:.1f} ms)\n", r.payload, r.invocation, r.pid,
        r.exit_code, r.timed_out ? ", timed out" : "", r.duration_ms);
    for (const auto& d : report_details(r)) {
      std::string indented;
      for (char c : d.message) {
        indented += c;
        if (c == '\n') indented += "      ";
      }
      say(out, "  [{}] {}\n", d.kind, indented);
    }
    if (r.details.empty()) say(out, "  (no detail)\n");
  }
  if (failed > shown) say(out, "\n... and {} more failed invocations (see --json/--junit)\n", failed - shown);
}

}  // namespace runner
