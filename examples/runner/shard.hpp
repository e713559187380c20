// payloadrun runner: sharding a scenario into N deterministic slices (see
// docs/scale-out-readme.md). Slice I of N runs exactly the invocations the
// assignment rule gives to I; the rule looks only at (payload name,
// invocation number), so it does not depend on the machine, the
// concurrency or the order in which invocations finish.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace runner {

/// Which slice a run is, and what said so.
struct Shard {
  std::size_t index = 0;
  std::size_t count = 1;
  /// "none" (unsharded), "--shard", "JOB_COMPLETION_INDEX",
  /// "SLURM_ARRAY_TASK_ID", "TEST_SHARD_INDEX" or "merge" (a merged report).
  std::string source = "none";
  friend bool operator==(const Shard&, const Shard&) = default;
};

/// The assignment rule, as recorded in every report ("shard.rule"). merge
/// refuses reports sliced by another rule.
inline constexpr std::string_view assignment_rule =
    "fnv1a64(payload name, NUL, invocation in decimal), fmix64, mod count";

/// The most slices a scenario may be cut into.
inline constexpr std::size_t max_shard_count = 1'000'000;

/// 64-bit FNV-1a of `bytes`, continuing from `h`.
std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ULL) noexcept;

/// Which of `count` slices runs invocation `invocation` (0-based, within its
/// scenario entry) of the payload named `payload_name`: FNV-1a 64 over the
/// name, a NUL byte and the invocation number in decimal ASCII, then
/// MurmurHash3's fmix64 finalizer (FNV's low bits alone are poorly mixed),
/// then modulo `count`. count 0 is treated as 1.
std::size_t shard_of(std::string_view payload_name, std::size_t invocation, std::size_t count) noexcept;

/// A `--shard`, `--shard-count` or environment value that cannot be used.
/// what() names the flag or variable, the value and what was expected.
class ShardError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses "I/N" (decimal, 0 <= I < N <= max_shard_count) given to `--shard`.
Shard parse_shard_flag(std::string_view text);

/// Looks an environment variable up (nullptr when unset). Tests pass their
/// own; the program passes std::getenv.
using EnvLookup = std::function<const char*(const char*)>;

/// The slice this run is: `--shard` if given, else the first environment
/// source that is set: JOB_COMPLETION_INDEX (count: `--shard-count`, else
/// PAYLOADRUN_SHARD_COUNT), SLURM_ARRAY_TASK_ID (index minus
/// SLURM_ARRAY_TASK_MIN, count SLURM_ARRAY_TASK_COUNT; the array must be
/// contiguous with step 1: SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1 =
/// SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_STEP, if set, 1, which every
/// task can check alone), TEST_SHARD_INDEX (count TEST_TOTAL_SHARDS). None
/// set: unsharded (0 of 1, source "none").
/// Throws ShardError naming the flag or variable at fault.
Shard resolve_shard(const std::optional<std::string>& shard_flag,
                    const std::optional<std::string>& shard_count_flag, const EnvLookup& env);

/// Bazel's test sharding protocol: when the slice came from TEST_SHARD_INDEX
/// and TEST_SHARD_STATUS_FILE is set, create that file (or update its
/// modification time) to tell Bazel the test honours sharding. Throws
/// ShardError when the file cannot be touched.
void acknowledge_shard(const Shard& shard, const EnvLookup& env);

/// "shard 2 of 4 (from SLURM_ARRAY_TASK_ID)", or "unsharded".
std::string describe(const Shard& shard);

}  // namespace runner
