// payloadrun runner: reports (JSON, JUnit XML, the end-of-run table).
#pragma once

#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "detail/json_write.hpp"
#include "run.hpp"
#include "scenario.hpp"

namespace runner {

/// One input slice of a merged report.
struct MergedSlice {
  std::string file;
  Shard shard;
  std::size_t planned = 0;    ///< invocations the slice was to run
  std::size_t completed = 0;  ///< invocations it reported
  bool passed = false;
  bool interrupted = false;
  double elapsed_ms = 0;
};

/// What only a merged report has (its "merged" field).
struct MergeInfo {
  std::size_t shard_count = 1;
  std::vector<MergedSlice> slices;           ///< by shard index
  std::vector<std::size_t> missing_shards;   ///< indices no input had
  std::size_t missing_invocations = 0;       ///< planned but absent (missing shards, interrupted slices)
};

/// {"passed", "interrupted", "elapsed_ms", "scenario", "shard", ["merged",]
/// "invocations": [...]}; see README "Reports" and "Scale-out". `scenario`
/// gives the digest and the payloads' names, counts and metric hints.
void write_json_report(std::ostream& out, const Scenario& scenario, const RunResult& result,
                       const MergeInfo* merge = nullptr);

/// JUnit XML (Ant/Jenkins style, tests/data/junit-jenkins.xsd): one testsuite
/// per scenario payload (time: its wall-clock span; timestamp; hostname: this
/// host), one testcase per invocation; a failed one has a <failure>, or an
/// <error> when it could not run to a verdict (not started, interrupted), its
/// message the details' useful lines (detail_line), its body every detail in
/// full, then its output tails in <system-out>/<system-err>.
void write_junit_report(std::ostream& out, const Scenario& scenario, const RunResult& result);

/// The two reports as text, for writing atomically (files.hpp write_reports).
std::string json_report_text(const Scenario& scenario, const RunResult& result, const MergeInfo* merge = nullptr);
std::string junit_report_text(const Scenario& scenario, const RunResult& result);

/// One row per payload: invocations, passed, failed, timed out, p50/max
/// duration, the median of each hinted metric (format_metric_value), or,
/// for a payload without hints, how many metrics its invocations yielded.
void print_table(std::FILE* out, const Scenario& scenario, const RunResult& result);

/// The details of up to `limit` failed invocations (then a count of the rest).
void print_failures(std::FILE* out, const RunResult& result, std::size_t limit = 20);

/// One detail as the reports show it: the checks' details (kind from
/// payloadrun::to_string), then the runner's own "interrupted" detail.
struct ReportDetail {
  std::string_view kind;
  std::string_view message;
};
inline constexpr std::string_view interrupted_kind = "interrupted";
std::vector<ReportDetail> report_details(const InvocationRecord& r);

/// Bytes of each stream a failed invocation keeps for the reports.
inline constexpr std::size_t output_tail_bytes = 4096;
/// The last `max` bytes of `text` (from a line start when one is near, at a
/// UTF-8 boundary), after "...\n" when cut.
std::string output_tail(std::string_view text, std::size_t max = output_tail_bytes);
/// Keep the tails of a failed invocation's output in its record.
void keep_output_tails(InvocationRecord& record, std::string_view stdout_text, std::string_view stderr_text);
/// Milliseconds since the Unix epoch, now.
double wall_clock_ms();
/// `unix_ms` as ISO 8601 in UTC, to the second: "2026-12-03T09:15:02Z".
std::string iso8601_utc(double unix_ms);

/// One detail on one line, for the JUnit message and the progress display:
/// its text without the quoted stderr (other newlines become " | "), then
/// "; stderr: " and the stderr's last non-empty line.
std::string detail_line(std::string_view message);
/// `s` cut to `max` bytes at a UTF-8 boundary, "..." appended when cut.
std::string cut_utf8(std::string s, std::size_t max);

/// A metric value for the table: integers in full (2572288, not
/// 2.57229e+06), others with six significant digits but every digit of the
/// integer part; scientific only beyond 1e15 or below 1e-4.
std::string format_metric_value(double v);

/// JSON string literal (quotes included) of `s`: the one writer (docs/json.md).
using payloadrun::detail::json_quote;
/// `s` escaped for XML text and attributes; characters XML 1.0 forbids
/// (control characters but tab, LF, CR) become U+FFFD.
std::string xml_escape(std::string_view s);
/// As xml_escape, but newlines and tabs stay as they are (element text).
std::string xml_text(std::string_view s);

}  // namespace runner
