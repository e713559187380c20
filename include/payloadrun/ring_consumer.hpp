// payloadrun: the consumer side of the shared-memory result ring (format:
// docs/ring-format.md): RingConsumer reads whole messages from a ring and
// its spill journals; decode_metrics/decode_raw turn their bodies back into
// values. Drain (payloadrun/drain.hpp) builds sidecar lines from them.
//
// One consumer per ring at a time. Messages come in reservation order;
// fragmented messages are reassembled; a reservation whose producer died
// (or that is older than RingOptions::abandon_timeout) is skipped and
// counted; a record whose checksum fails is counted and never decoded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/ring_producer.hpp"  // RingOptions, RecordType

namespace payloadrun {

/// What RingConsumer::commit must not give back yet: ring records from
/// `ring_position` on, and the spill journals in `spills`.
struct RingHold {
  std::uint64_t ring_position = UINT64_MAX;  ///< UINT64_MAX: none
  std::vector<std::uint64_t> spills{};       ///< spill journal ids
  /// Add `other`'s holds to this one.
  PAYLOADRUN_API void add(const RingHold& other);
};

/// One whole (reassembled) message read from a ring or a spill journal.
struct RingMessage {
  RecordType type = RecordType::metrics;
  std::uint32_t pid = 0;
  std::uint64_t payload_index = 0;
  std::uint64_t message_id = 0;
  std::string body;
  /// Where it was stored: "r:RINGID:POSITION" or "s:SPILLID:OFFSET" (hex
  /// ids). Unique per message, and the same when a message is delivered
  /// again to a consumer that follows one that did not commit it.
  std::string origin{};
  /// What keeps this message's records uncommitted (for a consumer that
  /// holds the message past a commit, e.g. waiting for its pair).
  RingHold hold{};
};

/// What a consumer has seen so far.
struct RingStats {
  std::uint64_t records = 0;     ///< good records (fragments) read
  std::uint64_t messages = 0;    ///< whole messages delivered
  std::uint64_t bytes = 0;       ///< body bytes of the delivered messages
  std::uint64_t corrupt = 0;     ///< records failing a checksum or bounds check
  std::uint64_t abandoned = 0;   ///< reservations skipped (producer died / timed out)
  std::uint64_t incomplete = 0;  ///< fragmented messages that lost a fragment
  std::uint64_t spilled = 0;     ///< messages imported from spill journals
};

/// Drains a ring (one consumer per ring at a time).
class PAYLOADRUN_API RingConsumer {
 public:
  /// Open (or create) the ring and take the consumer lock. Throws
  /// Error(Errc::ring) if another consumer holds it.
  explicit RingConsumer(const std::string& name, RingOptions options = {});
  ~RingConsumer();
  RingConsumer(RingConsumer&&) noexcept;
  RingConsumer& operator=(RingConsumer&&) noexcept;

  /// The next whole message, waiting at most `timeout` (futex wait, no
  /// polling). nullopt on timeout. Never throws for any ring contents.
  /// Spill journals of this ring are imported first (at construction, and
  /// whenever the ring has been read to its end).
  std::optional<RingMessage> next(std::chrono::milliseconds timeout);
  /// Give back to producers the space of every message next() returned,
  /// except what `keep` holds and what partly read fragmented messages
  /// need; remove spill journals whose messages were all returned and are
  /// not held. With auto_commit this happens as next() reads.
  void commit(const RingHold& keep = {});
  /// True when everything reserved has been read (and no spilled message
  /// waits to be returned).
  bool empty() const noexcept;
  /// The ring's creation id (part of every origin).
  std::uint64_t ring_id() const noexcept;
  /// The committed position (the ring's tail): messages whose ring origin
  /// lies before it are never delivered again.
  std::uint64_t committed_position() const noexcept;
  /// True while a fragmented message is partly read.
  bool has_partial() const noexcept;
  /// Count fragmented messages still partly read as incomplete (at exit).
  /// Without auto_commit, those reserved in one step stay held (commit()
  /// keeps them for the next consumer); only larger ones are given up.
  void abandon_partials();
  const RingStats& stats() const noexcept;
  /// Human-readable reports of problems (corrupt, abandoned, incomplete)
  /// found since the last call.
  std::vector<std::string> take_reports();
  std::size_t capacity() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------ record bodies

/// A decoded metrics record.
struct MetricsRecord {
  std::string payload_name;
  std::uint64_t payload_index = 0;
  int exit_code = 0;
  bool timed_out = false;
  std::optional<int> killed_by_signal;
  bool deferred = false;  ///< the payload is Deferred (its raw output ships separately)
  AssertResult result;
  PayloadMetrics metrics;
  std::optional<std::string> error;
};

/// Decode an untrusted metrics record body. Throws Error(Errc::ring)
/// naming what is wrong.
PAYLOADRUN_API MetricsRecord decode_metrics(std::string_view body);
/// Decode an untrusted raw-output record body. Throws Error(Errc::ring)
/// naming what is wrong.
PAYLOADRUN_API RawPayloadOutput decode_raw(std::string_view body);

}  // namespace payloadrun
