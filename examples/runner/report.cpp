// Reports: the JSON document, JUnit XML and the terminal table.
#include "report.hpp"

#include <algorithm>
#include <cmath>
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

std::string failure_summary(const InvocationRecord& r) {
  std::string s;
  for (const auto& d : report_details(r)) {
    if (!s.empty()) s += "; ";
    s += fmt::format("[{}] {}", d.kind, d.message.substr(0, d.message.find('\n')));
  }
  if (s.empty()) s = r.timed_out ? "timed out" : "failed";
  return s;
}

}  // namespace

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
        << ", \"duration_ms\": " << json_number(r.duration_ms) << "}";
  }
  out << "\n]}\n";
}

void write_junit_report(std::ostream& out, const Scenario& scenario, const RunResult& result) {
  std::vector<std::vector<const InvocationRecord*>> by_payload(scenario.payloads.size());
  for (const auto& r : result.records) by_payload.at(r.scenario_index).push_back(&r);
  std::size_t failures = 0;
  for (const auto& r : result.records) failures += !r.passed;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << fmt::format("<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3f}\">\n",
                     xml_escape(scenario.file), result.records.size(), failures,
                     std::chrono::duration<double>(result.elapsed).count());
  for (std::size_t i = 0; i < scenario.payloads.size(); ++i) {
    const auto& records = by_payload[i];
    const std::string& name = scenario.payloads[i].payload->name;
    std::size_t suite_failures = 0;
    double suite_ms = 0;
    for (const auto* r : records) {
      suite_failures += !r->passed;
      suite_ms += r->duration_ms;
    }
    out << fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3f}\">\n",
                       xml_escape(name), records.size(), suite_failures, suite_ms / 1000);
    for (const auto* r : records) {
      out << fmt::format("    <testcase classname=\"payloadrun.{}\" name=\"{}#{}\" time=\"{:.3f}\"",
                         xml_escape(name), xml_escape(name), r->invocation, r->duration_ms / 1000);
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
      out << fmt::format("      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                         xml_escape(failure_summary(*r)), xml_escape(kinds.empty() ? "failure" : kinds),
                         xml_escape(body));
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
    std::map<std::string, std::vector<double>> metric_values;
  };
  std::vector<Row> rows(scenario.payloads.size());
  for (const auto& r : result.records) {
    Row& row = rows.at(r.scenario_index);
    ++row.invocations;
    r.passed ? ++row.passed : ++row.failed;
    row.timed_out += r.timed_out;
    if (r.spawned) row.durations.push_back(r.duration_ms);
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
        metrics += fmt::format("{}={:.6g}{}{}", hint.name, median(it->second),
                               hint.unit.empty() ? "" : " ", hint.unit);
      }
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
