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

/// JUnit XML: one testsuite per scenario payload, one testcase per invocation.
void write_junit_report(std::ostream& out, const Scenario& scenario, const RunResult& result);

/// The two reports as text, for writing atomically (files.hpp write_reports).
std::string json_report_text(const Scenario& scenario, const RunResult& result, const MergeInfo* merge = nullptr);
std::string junit_report_text(const Scenario& scenario, const RunResult& result);

/// One row per payload: invocations, passed, failed, timed out, p50/max
/// duration, the median of each hinted metric.
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

/// JSON string literal (quotes included) of `s`: the one writer (docs/json.md).
using payloadrun::detail::json_quote;
/// `s` escaped for XML text and attributes; characters XML 1.0 forbids
/// (control characters but tab, LF, CR) become U+FFFD.
std::string xml_escape(std::string_view s);

}  // namespace runner
