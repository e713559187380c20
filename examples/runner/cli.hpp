// payloadrun runner: the command line (CLI11), `payloadrun run ...` and
// `payloadrun merge ...` parsed in one place; usage errors exit 2.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace runner {

/// `payloadrun run [SCENARIO.json] [options]`.
struct RunArgs {
  std::optional<std::string> scenario;
  std::optional<std::size_t> concurrency;
  std::optional<std::string> json_path;
  std::optional<std::string> junit_path;
  std::string ring;
  std::string cgroup_parent;
  bool create_cgroups = false;
  bool quiet = false;
  std::optional<std::string> shard;
  std::optional<std::string> shard_count;
};

/// `payloadrun merge OUT.json IN.json... [options]`.
struct MergeArgs {
  std::string out_json;
  std::vector<std::string> inputs;
  std::optional<std::string> junit;
  std::optional<std::string> sidecar_out;
  std::vector<std::string> sidecar_inputs;
  bool quiet = false;
};

struct CommandLine {
  enum class Command { run, merge, done } command = Command::done;
  RunArgs run;
  MergeArgs merge;
  int status = 0;  ///< for Command::done: 0 after --help, 2 after a usage error (printed)
};

/// Parse argv; --help goes to `out`, usage errors ("payloadrun: WHAT" and the
/// command's usage lines) to `err`.
CommandLine parse_command_line(int argc, const char* const* argv, std::FILE* out, std::FILE* err);

/// The usage lines of `payloadrun run` and `payloadrun merge`.
extern const char* const run_usage;
extern const char* const merge_usage;

}  // namespace runner
