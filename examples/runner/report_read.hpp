// payloadrun runner: reading a JSON report back (for `payloadrun merge`).
// Every byte is untrusted: anything missing, mistyped or inconsistent is a
// ReportError naming the file, the JSON path and what was expected.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "run.hpp"
#include "scenario.hpp"

namespace runner {

class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A report with nothing to read: absent, not a regular file, unreadable,
/// empty, or not JSON at all (truncated). What a slice killed while it wrote
/// leaves; `payloadrun merge` counts it as a missing shard. A report that is
/// JSON but not of the expected shape is a plain ReportError.
class UnreadableReport : public ReportError {
 public:
  using ReportError::ReportError;
};

struct LoadedReport {
  std::string path;
  /// What the report says of its scenario: file, digest, and per payload
  /// the name, count and metric hints (nothing else: no binary, no checks).
  Scenario scenario;
  std::string rule;  ///< "shard.rule": the assignment rule that sliced it
  /// Records, elapsed, interrupted, shard (index, count, source), planned.
  RunResult result;
  bool passed = false;  ///< the report's own verdict
  bool merged = false;  ///< written by `payloadrun merge`
};

/// Parse a report's text (read from `path`, for messages). Throws
/// UnreadableReport when it is not JSON, ReportError when it is not a report.
LoadedReport parse_report(std::string_view json, const std::string& path);

/// Read and parse a report file (UnreadableReport when it cannot be read).
LoadedReport load_report(const std::string& path);

}  // namespace runner
