// payloadrun runner: reports (JSON, JUnit XML, the end-of-run table).
#pragma once

#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>

#include "run.hpp"
#include "scenario.hpp"

namespace runner {

/// {"passed", "invocations": [...]}; see README "Reports".
void write_json_report(std::ostream& out, const RunResult& result);

/// JUnit XML: one testsuite per scenario payload, one testcase per invocation.
void write_junit_report(std::ostream& out, const Scenario& scenario, const RunResult& result);

/// One row per payload: invocations, passed, failed, timed out, p50/max
/// duration, the median of each hinted metric.
void print_table(std::FILE* out, const Scenario& scenario, const RunResult& result);

/// The details of up to `limit` failed invocations (then a count of the rest).
void print_failures(std::FILE* out, const RunResult& result, std::size_t limit = 20);

/// JSON string literal (quotes included) of `s`.
std::string json_quote(std::string_view s);
/// `s` escaped for XML text and attributes; characters XML 1.0 forbids
/// (control characters but tab, LF, CR) become U+FFFD.
std::string xml_escape(std::string_view s);

}  // namespace runner
