// payloadrun: Drain, which turns the messages a RingConsumer reads into
// sidecar JSON lines (one per invocation), pairing each Deferred payload's
// raw output with its metrics record and extracting its metrics on the
// consumer side. examples/drain.cpp (payloadrun-drain) is a complete consumer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "payloadrun/export.hpp"
#include "payloadrun/ring_consumer.hpp"

namespace payloadrun {

/// How a Drain works.
struct DrainOptions {
  /// The extractor run per Deferred record: program (a path, or a name
  /// looked up on PATH) and its arguments, passed as they are (no shell, no
  /// splitting). It gets the raw stdout on its stdin (then, if that yields
  /// no metric, the raw stderr) and its stdout is parsed for metrics. It
  /// runs in a process group of its own and dies with the thread that runs
  /// the Drain. A failure (not started, non-zero exit, killed, timed out,
  /// too much output) is an extraction detail of the invocation's line.
  /// Empty: the raw text itself is parsed.
  std::vector<std::string> extractor{};
  /// Bound on one extractor run: then its whole process group is killed
  /// (what its descendants still hold open is read for at most 1 s more).
  std::chrono::milliseconds extractor_timeout{60000};
  /// Bytes of the extractor's stdout (and of its stderr) kept; an extractor
  /// that writes more fails.
  std::size_t extractor_output_limit = 16u * 1024u * 1024u;
  /// A half of a Deferred pair whose other half has not come after this
  /// long gets a pairing-failure line from expire() (longer than a
  /// producer's stall_timeout, after which a missing record would have
  /// been spilled).
  std::chrono::milliseconds pairing_timeout{60000};
  /// Origins (RingMessage::origin) of lines the sidecar already holds: a
  /// message delivered again is then consumed without a second line.
  std::unordered_set<std::string> already_written{};
};

/// What a Drain has done so far.
struct DrainSummary {
  std::uint64_t invocations = 0;       ///< sidecar lines written
  std::uint64_t pairing_failures = 0;  ///< unpaired raw outputs / metric-less records
  std::uint64_t decode_failures = 0;   ///< messages whose body did not decode
  std::uint64_t duplicates = 0;        ///< messages skipped: already_written
};

/// Turns ring messages into sidecar JSON lines, one per invocation:
/// {"payload","payload_index","pid","exit_code","timed_out","passed",
///  "details":[{"kind","message"}],"metrics":[{"name","value","polarity",
///  "unit","source","stream"}],"record"}, where "record" is the origin of
/// the message the line was made from (for deduplication after a crash).
/// Deferred raw output is paired with its metrics record by (producer pid,
/// payload_index) and extracted here, whichever of the two comes first; a
/// line made from both carries both origins in "record" (space-separated).
/// A half waiting for its pair is held: commit with hold() so its records
/// stay in the ring until then.
class PAYLOADRUN_API Drain {
 public:
  using LineSink = std::function<void(std::string_view line)>;
  Drain(LineSink sink, DrainOptions options = {});
  ~Drain();
  Drain(Drain&&) noexcept;
  Drain& operator=(Drain&&) noexcept;
  /// Process one message (never throws for bad bodies: they are counted).
  void consume(const RingMessage& message);
  /// Emit a pairing failure line for every half of a Deferred pair still
  /// unpaired (a consumer that stops for good; one that will be restarted
  /// commits with hold() instead and leaves them for its successor).
  void finish();
  /// The same for those unpaired for longer than pairing_timeout.
  void expire();
  /// What the halves of Deferred pairs waiting for each other keep
  /// uncommitted.
  RingHold hold() const;
  /// Raw outputs and Deferred metrics records waiting for their pair.
  std::size_t pending() const noexcept;
  const DrainSummary& summary() const noexcept;
  /// Decode failures and similar problems since the last call.
  std::vector<std::string> take_reports();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace payloadrun
