// Sharding: the assignment rule, `--shard I/N` and the batch engines'
// environment variables (Kubernetes Indexed Jobs, Slurm job arrays, Bazel
// test sharding).
#include "shard.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "detail/errno_text.hpp"

namespace runner {
namespace {

// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
std::uint64_t fmix64(std::uint64_t k) noexcept {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// A decimal number without sign, spaces or trailing bytes.
std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t v = 0;
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

// `name` holds `text`, which must be a decimal number in [lo, hi].
std::size_t number_of(std::string_view name, std::string_view text, std::uint64_t lo, std::uint64_t hi,
                      std::string_view what) {
  const auto v = parse_number(text);
  if (!v) throw ShardError(fmt::format("{}=\"{}\": expected {}, got a non-number", name, text, what));
  if (*v < lo || *v > hi) throw ShardError(fmt::format("{}={}: expected {}", name, *v, what));
  return static_cast<std::size_t>(*v);
}

const std::string count_what = fmt::format("a shard count from 1 to {}", max_shard_count);

Shard checked(std::size_t index, std::size_t count, std::string source, std::string_view index_name,
              std::string_view count_name) {
  if (index >= count) {
    throw ShardError(fmt::format("{} gives shard index {} but {} gives {} shard(s): the index must be below the count",
                                 index_name, index, count_name, count));
  }
  return Shard{index, count, std::move(source)};
}

// A Slurm array task's slice: SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN
// of SLURM_ARRAY_TASK_COUNT. Slurm sets MIN, MAX, COUNT and STEP alike in
// every task of an array, so each task alone can refuse an array that is
// not contiguous with step 1 (--array=0-6:2, --array=1,3,7): every task
// refuses, none runs a slice of a count that does not match.
Shard slurm_shard(const char* id_text, const EnvLookup& env) {
  const std::size_t id = number_of("SLURM_ARRAY_TASK_ID", id_text, 0, UINT32_MAX, "a task id");
  const auto required = [&](const char* name) {
    const char* text = env(name);
    if (text == nullptr) {
      throw ShardError(fmt::format("SLURM_ARRAY_TASK_ID={} is set but {} is not (Slurm sets SLURM_ARRAY_TASK_MIN, "
                                   "SLURM_ARRAY_TASK_MAX and SLURM_ARRAY_TASK_COUNT in every array task)",
                                   id_text, name));
    }
    return text;
  };
  const std::size_t count =
      number_of("SLURM_ARRAY_TASK_COUNT", required("SLURM_ARRAY_TASK_COUNT"), 1, max_shard_count, count_what);
  const auto task_id = [&](const char* name) {
    return number_of(name, required(name), 0, UINT32_MAX, "a task id");
  };
  const std::size_t min = task_id("SLURM_ARRAY_TASK_MIN");
  const std::size_t max = task_id("SLURM_ARRAY_TASK_MAX");
  const char* step_text = env("SLURM_ARRAY_TASK_STEP");
  const std::size_t step =
      step_text != nullptr ? number_of("SLURM_ARRAY_TASK_STEP", step_text, 0, UINT32_MAX, "a step") : 1;
  if (max < min || max - min + 1 != count || step != 1) {
    throw ShardError(fmt::format(
        "SLURM_ARRAY_TASK_MIN={}, SLURM_ARRAY_TASK_MAX={}, SLURM_ARRAY_TASK_COUNT={}{}: the array must be "
        "contiguous with step 1 (SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1 = SLURM_ARRAY_TASK_COUNT and "
        "SLURM_ARRAY_TASK_STEP = 1), e.g. --array=0-{}, not a stepped range (0-6:2) or a list (1,3,7); every task "
        "of this array refuses to run",
        min, max, count, step_text != nullptr ? fmt::format(", SLURM_ARRAY_TASK_STEP={}", step) : "", count - 1));
  }
  if (id < min || id > max) {
    throw ShardError(fmt::format(
        "SLURM_ARRAY_TASK_ID={} is outside SLURM_ARRAY_TASK_MIN={} to SLURM_ARRAY_TASK_MAX={}", id, min, max));
  }
  return Shard{id - min, count, "SLURM_ARRAY_TASK_ID"};
}

}  // namespace

std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h) noexcept {
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::size_t shard_of(std::string_view payload_name, std::size_t invocation, std::size_t count) noexcept {
  if (count <= 1) return 0;
  std::uint64_t h = fnv1a64(payload_name);
  h = fnv1a64(std::string_view("\0", 1), h);
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, static_cast<std::uint64_t>(invocation));
  (void)ec;  // 24 bytes always hold a 64-bit number
  h = fnv1a64(std::string_view(digits, static_cast<std::size_t>(end - digits)), h);
  return static_cast<std::size_t>(fmix64(h) % count);
}

Shard parse_shard_flag(std::string_view text) {
  const auto slash = text.find('/');
  const auto bad = [&](std::string_view why) {
    return ShardError(fmt::format("--shard needs I/N (slice I of N, 0 <= I < N <= {}), got \"{}\": {}",
                                  max_shard_count, text, why));
  };
  if (slash == std::string_view::npos) throw bad("no '/'");
  const auto index = parse_number(text.substr(0, slash));
  const auto count = parse_number(text.substr(slash + 1));
  if (!index || !count) throw bad("I and N must be decimal numbers");
  if (*count == 0) throw bad("N = 0 (there must be at least one slice)");
  if (*count > max_shard_count) throw bad("N is too large");
  if (*index >= *count) throw bad("I must be below N (slices are numbered from 0)");
  return Shard{static_cast<std::size_t>(*index), static_cast<std::size_t>(*count), "--shard"};
}

Shard resolve_shard(const std::optional<std::string>& shard_flag,
                    const std::optional<std::string>& shard_count_flag, const EnvLookup& env) {
  if (shard_flag) {
    Shard s = parse_shard_flag(*shard_flag);
    if (shard_count_flag &&
        number_of("--shard-count", *shard_count_flag, 1, max_shard_count, count_what) != s.count) {
      throw ShardError(fmt::format("--shard {} and --shard-count {} disagree on the number of shards",
                                   *shard_flag, *shard_count_flag));
    }
    return s;
  }
  // The count an engine's own variable gives must agree with an explicit
  // --shard-count, if any.
  const auto agree = [&](const Shard& s, std::string_view count_name) {
    if (shard_count_flag &&
        number_of("--shard-count", *shard_count_flag, 1, max_shard_count, count_what) != s.count) {
      throw ShardError(fmt::format("--shard-count {} disagrees with {}={}", *shard_count_flag, count_name, s.count));
    }
    return s;
  };
  if (const char* k8s = env("JOB_COMPLETION_INDEX")) {
    const std::size_t index = number_of("JOB_COMPLETION_INDEX", k8s, 0, max_shard_count - 1, "a shard index");
    std::string count_name = "--shard-count";
    std::string count_text;
    if (shard_count_flag) {
      count_text = *shard_count_flag;
    } else if (const char* c = env("PAYLOADRUN_SHARD_COUNT")) {
      count_name = "PAYLOADRUN_SHARD_COUNT";
      count_text = c;
    } else {
      throw ShardError(fmt::format(
          "JOB_COMPLETION_INDEX={} is set (a Kubernetes Indexed Job) but the number of shards is not: pass "
          "--shard-count N or set PAYLOADRUN_SHARD_COUNT to the Job's .spec.completions",
          k8s));
    }
    const std::size_t count = number_of(count_name, count_text, 1, max_shard_count, count_what);
    return checked(index, count, "JOB_COMPLETION_INDEX", "JOB_COMPLETION_INDEX", count_name);
  }
  if (const char* id_text = env("SLURM_ARRAY_TASK_ID")) {
    return agree(slurm_shard(id_text, env), "SLURM_ARRAY_TASK_COUNT");
  }
  if (const char* bazel = env("TEST_SHARD_INDEX")) {
    const std::size_t index = number_of("TEST_SHARD_INDEX", bazel, 0, max_shard_count - 1, "a shard index");
    const char* count_text = env("TEST_TOTAL_SHARDS");
    if (count_text == nullptr) {
      throw ShardError(fmt::format("TEST_SHARD_INDEX={} is set but TEST_TOTAL_SHARDS is not", bazel));
    }
    const std::size_t count = number_of("TEST_TOTAL_SHARDS", count_text, 1, max_shard_count, count_what);
    return agree(checked(index, count, "TEST_SHARD_INDEX", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS"),
                 "TEST_TOTAL_SHARDS");
  }
  if (shard_count_flag) {
    throw ShardError(
        "--shard-count needs a shard index: pass --shard I/N, or run where JOB_COMPLETION_INDEX is set");
  }
  return Shard{};
}

void acknowledge_shard(const Shard& shard, const EnvLookup& env) {
  if (shard.source != "TEST_SHARD_INDEX") return;
  const char* path = env("TEST_SHARD_STATUS_FILE");
  if (path == nullptr || *path == '\0') return;
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::futimens(fd, nullptr) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw ShardError(fmt::format("cannot touch TEST_SHARD_STATUS_FILE={}: {}", path, payloadrun::detail::errno_text(err)));
  }
  ::close(fd);
}

std::string describe(const Shard& shard) {
  if (shard.source == "none") return "unsharded";
  return fmt::format("shard {} of {} (from {})", shard.index, shard.count, shard.source);
}

}  // namespace runner
