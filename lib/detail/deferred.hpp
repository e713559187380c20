// Consumer-side evaluation of a Deferred invocation (the extractor, hints,
// universal checks, bounds, default checks), used by Drain. Not exported.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun {
class Supervisor;
struct Payload;
}  // namespace payloadrun

namespace payloadrun::detail {

/// What one extractor run gave.
struct ExtractorRun {
  bool ok = false;
  std::string output;  // its stdout
  std::string error;   // why it failed (when !ok)
};

/// Evaluates Deferred raw outputs with DrainOptions' extractor, run through
/// a Supervisor of its own (own loop; made on first use): own process group,
/// capped capture, the deadline kills the whole group. Not thread-safe.
class DeferredEvaluator {
 public:
  explicit DeferredEvaluator(const DrainOptions& options);
  ~DeferredEvaluator();
  DeferredEvaluator(const DeferredEvaluator&) = delete;
  DeferredEvaluator& operator=(const DeferredEvaluator&) = delete;

  /// Extract `raw`'s metrics into `out` and judge them. Never throws for
  /// anything the extractor does (a failure is a detail of the result).
  AssertResult evaluate(const RawPayloadOutput& raw, PayloadMetrics& out);
  /// Run the extractor once with `input` on its stdin.
  ExtractorRun run_extractor(std::string_view input);

 private:
  std::vector<std::string> argv_;
  std::chrono::milliseconds timeout_;
  std::size_t output_limit_;
  std::shared_ptr<const Payload> extractor_;
  std::unique_ptr<Supervisor> supervisor_;
};

}  // namespace payloadrun::detail
