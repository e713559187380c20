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
#include <functional>
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

namespace detail {
struct RingViewAccess;  // library-internal
}

/// One whole message as RingConsumer::read hands it over: the body is not
/// copied (it is in the ring's shared memory, or in the consumer's buffer
/// for a reassembled or spilled message) and is valid only during the call.
class PAYLOADRUN_API RingView {
 public:
  RecordType type = RecordType::metrics;
  std::uint32_t pid = 0;
  std::uint64_t payload_index = 0;
  std::uint64_t message_id = 0;
  std::string_view body{};
  /// As RingMessage::origin.
  std::string origin() const;
  /// As RingMessage::hold.
  RingHold hold() const;
  /// A copy that outlives the call.
  RingMessage to_message() const;

 private:
  friend struct detail::RingViewAccess;
  const RingMessage* message_ = nullptr;  // the message when it is not in the ring
  std::uint64_t ring_id_ = 0;
  std::uint64_t position_ = 0;  // of its record in the ring
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
  /// Read in place: call `fn` for each whole message available now (at
  /// most `max`), waiting at most `timeout` for the first, and return how
  /// many. It may return while a few more messages are already there (a
  /// record still being written, or a handful of small records that came
  /// in behind the ones read): call it again, or test empty(). A message's checksum is verified before `fn` sees it; its body
  /// is not copied (a body that wraps the ring's end is) and its ring space
  /// is given back (with auto_commit) only after `fn` returned, a batch at
  /// a time. Same order, origins, counts and holds as next(). Caveat: a
  /// producer that resumes writing after its reservation was skipped as
  /// abandoned may change bytes `fn` is reading (next() copies, then
  /// checks; see docs/ring-format.md). An exception from `fn` propagates;
  /// the message it was given counts as read.
  std::size_t read(std::chrono::milliseconds timeout, const std::function<void(const RingView&)>& fn,
                   std::size_t max = SIZE_MAX);
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
