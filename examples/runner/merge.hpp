// payloadrun runner: `payloadrun merge`, joining the reports (and sidecars)
// that the slices of one scenario wrote into the report of the whole.
#pragma once

#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "report.hpp"
#include "report_read.hpp"
#include "run.hpp"
#include "scenario.hpp"

namespace runner {

/// Inputs that cannot be merged (different scenarios or rules, shard
/// counts that disagree, a shard given twice, an invocation outside its
/// slice, conflicting sidecar lines). what() names the files.
class MergeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The whole scenario, as far as the slices cover it.
struct MergedRun {
  Scenario scenario;  ///< the skeleton the reports carry (names, counts, hints)
  RunResult result;   ///< every slice's records, ordered; shard 0 of 1 "merge"
  MergeInfo info;     ///< slices, missing shards and invocations
};

/// Merge slice reports. Throws MergeError when they are not slices of one
/// scenario cut one way; missing shards are not an error (MergeInfo says).
MergedRun merge_reports(std::vector<LoadedReport> reports);

/// Sidecars merged: their lines, ordered by payload_index.
struct SidecarMerge {
  std::vector<std::string> lines;      ///< without the newline
  std::size_t duplicates_dropped = 0;  ///< byte-identical repeats of a payload_index
  std::vector<std::string> notes;      ///< for stderr
};

/// Merge JSON-lines sidecars (payloadrun-drain's output). A line that is
/// not a JSON object with an unsigned "payload_index" is a MergeError naming
/// file:line; two different lines with one payload_index are a MergeError;
/// an identical repeat (a drain restarted after SIGKILL) is dropped with a
/// note. `run` (optional) cross-checks the indices against the merged
/// report, as notes.
SidecarMerge merge_sidecars(const std::vector<std::string>& inputs, const MergedRun* run = nullptr);

/// `payloadrun merge OUT.json IN.json... [--junit OUT.xml]
/// [--sidecar OUT.jsonl IN.jsonl...] [--quiet]` (parsed by cli.hpp).
/// An input with nothing to read (UnreadableReport: absent, empty,
/// truncated) is left out with a message: its shard shows up as missing.
/// Returns the exit status: 0 the whole scenario passed, 1 an invocation
/// failed, shards/invocations are missing or an input could not be read,
/// 2 usage or inputs that cannot be merged, none readable included (nothing
/// written), 130 a slice was interrupted.
int merge_command(const MergeArgs& args, std::FILE* out, std::FILE* err);

}  // namespace runner
