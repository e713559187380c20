// payloadrun runner: the scenario file (what to run, how often, how judged).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <payloadrun/payload.hpp>

namespace runner {

/// One entry of "payloads": the Payload plus how each invocation is built.
struct ScenarioPayload {
  std::shared_ptr<const payloadrun::Payload> payload;
  std::optional<std::chrono::milliseconds> timeout;
  /// How a deadline (or an interrupt) stops it: PayloadRun::stop_signal and
  /// stop_grace ("stop_signal", "stop_grace_ms").
  std::optional<int> stop_signal;
  std::optional<std::chrono::milliseconds> stop_grace;
  std::optional<std::string> cgroup;
  bool own_cgroup = false;
  std::vector<std::pair<std::string, std::string>> env;
  std::size_t count = 1;
};

/// The most invocations one scenario may hold (the sum of its counts): each
/// one's result is kept in memory for the report.
inline constexpr std::size_t max_total_invocations = 10'000'000;

struct Scenario {
  std::string file;  ///< as given (for messages)
  /// "sha256:<hex>" over the canonical document (digest.hpp); the same for
  /// every copy of the file, whatever its whitespace or key order.
  std::string digest;
  std::size_t concurrency = 64;
  std::vector<ScenarioPayload> payloads;
  std::size_t total_invocations() const noexcept;
};

/// A scenario that cannot be used. what() names the file, the JSON path
/// (`payloads[2].checks[0].min.value`) and what was expected there.
class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parse `json` (read from `file`). Binaries starting with "./" or "../" are
/// resolved against `base_dir`. Throws ScenarioError.
Scenario parse_scenario(std::string_view json, const std::string& file, const std::string& base_dir);

/// Read and parse a scenario file (a regular file of at most 64 MiB:
/// files.hpp); base_dir is the file's directory unless given.
Scenario load_scenario(const std::string& file, const std::string& base_dir = {});

}  // namespace runner
