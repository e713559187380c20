// payloadrun: the shared-memory result ring (format: docs/ring-format.md).
//
// A ring is a named POSIX shared-memory object (/dev/shm/NAME) holding a
// fixed-capacity byte ring of checksummed records. Any number of producers
// (supervisors, in any number of processes) append records; one consumer
// drains them in reservation order. Whichever side starts first creates the
// ring; the other opens it.
//
// Lossless: a producer never blocks and never drops. When the ring is full
// its records wait in an in-process queue and are written as space frees;
// when no space comes for `stall_timeout`, or the producer goes away with
// records queued, they go to a spill journal (a file beside the ring, or
// in `spill_dir`) that the next consumer imports before it reads the ring.
// Only a record that cannot be spilled either (disk full) is undelivered,
// and counted. A record larger than a quarter of the ring is split into
// fragments that the consumer reassembles. A producer that dies between reserving and
// committing a record cannot wedge the ring: the consumer skips the
// reservation (its pid is gone, or it is older than abandon_timeout) and
// counts it. A record whose checksum fails is counted and never decoded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"

struct uv_loop_s;  // libuv's uv_loop_t

namespace payloadrun {

struct RingOptions {
  /// Data-area bytes when this call creates the ring (rounded up to a power
  /// of two, at least 4096). An existing ring keeps its capacity.
  std::size_t capacity = 4u * 1024u * 1024u;
  /// Permission bits of a newly created ring.
  unsigned mode = 0600;
  /// How long to wait for another process to finish initialising the ring.
  std::chrono::milliseconds open_timeout{2000};
  /// Consumer: a reservation whose producer is alive but has not committed
  /// within this time is skipped as abandoned.
  std::chrono::milliseconds abandon_timeout{10000};
  /// Emitter: while records wait for space the emitter keeps the loop
  /// alive; after this long without progress it moves them to a spill
  /// journal and stops doing so.
  std::chrono::milliseconds stall_timeout{30000};
  /// Where spill journals live (both sides must agree). Empty: /dev/shm,
  /// beside the ring. Name a directory on disk to keep them across reboots.
  std::string spill_dir{};
  /// Consumer: true, a record's space goes back to producers as soon as
  /// next() has read it. False, only commit() gives it back (read, write it
  /// somewhere durable, then commit: a consumer killed in between leaves
  /// the uncommitted messages for the next consumer).
  bool auto_commit = true;
};

/// What a ring record carries.
enum class RecordType : std::uint16_t {
  metrics = 1,     ///< a completed invocation (Completion), JSON
  raw_output = 2,  ///< a Deferred payload's raw output (RawPayloadOutput), JSON
};

/// Remove the ring's name from /dev/shm. True when it existed.
PAYLOADRUN_API bool remove_ring(const std::string& name) noexcept;

/// One message for RingProducer::write.
struct RingRecord {
  RecordType type = RecordType::metrics;
  std::uint64_t payload_index = 0;
  std::string_view body;
};

/// Appends records to a ring. Not thread-safe; one per thread (several per
/// process and per ring are fine).
class PAYLOADRUN_API RingProducer {
 public:
  /// Open the ring `name`, creating it with `options` if it does not exist.
  /// Throws Error(Errc::ring) when it cannot be created, opened or mapped,
  /// or is not a ring of a supported version.
  explicit RingProducer(const std::string& name, RingOptions options = {});
  ~RingProducer();
  RingProducer(RingProducer&&) noexcept;
  RingProducer& operator=(RingProducer&&) noexcept;

  /// Append one message: written now if it fits, else queued in process
  /// (never blocks, never drops). Bodies over the fragment limit are split.
  void write(RecordType type, std::uint64_t payload_index, std::string_view body);
  /// Append messages that belong together: when they fit in the ring at
  /// once they are reserved in one step, so a consumer (or a spill) sees
  /// all of them or none. Larger ones are written in order.
  void write(std::span<const RingRecord> messages);
  /// Write queued records that now fit, without blocking. Returns the
  /// number of records (fragments) still queued.
  std::size_t flush();
  /// Block until the queue is empty or `timeout` passes (retrying every
  /// millisecond). True when the queue is empty.
  bool flush_for(std::chrono::milliseconds timeout);
  /// Move every queued record to a new spill journal now. False when it
  /// could not be written (disk full: the error is logged; the records stay
  /// queued).
  bool spill();
  /// Write what fits, spill the rest; what cannot be spilled either is
  /// dropped and counted. Returns undelivered(). The destructor does this.
  std::uint64_t close();
  /// Records (fragments) waiting in process for ring space.
  std::size_t queue_depth() const noexcept;
  /// Body bytes waiting in process for ring space.
  std::size_t queued_bytes() const noexcept;
  /// Records (fragments) committed to the ring so far.
  std::uint64_t records_written() const noexcept;
  /// Records (fragments) moved to spill journals so far.
  std::uint64_t records_spilled() const noexcept;
  /// Results (metrics messages, one per invocation) that reached neither
  /// the ring nor a spill journal.
  std::uint64_t undelivered() const noexcept;
  /// Capacity of the data area in bytes.
  std::size_t capacity() const noexcept;
  /// Largest body of one record; longer messages are fragmented.
  std::size_t max_fragment() const noexcept;
  const std::string& name() const noexcept;

  /// Fault injection for tests: called between a record's reservation and
  /// its commit (a test may stop or kill the process there).
  void set_after_reserve_hook(std::function<void()> hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// An Emitter writing to a ring from a libuv loop. When the ring is full,
/// records wait in process and a 1 ms timer on the loop retries; the timer
/// exists only while records wait (so an idle emitter holds no handle);
/// after `stall_timeout` without room they are spilled. A Deferred
/// payload's raw output and metrics record are written together.
/// Create and use it on the loop's thread.
class PAYLOADRUN_API RingEmitter : public Emitter {
 public:
  /// Throws Error(Errc::ring) as RingProducer does.
  RingEmitter(uv_loop_s* loop, const std::string& name, RingOptions options = {});
  /// close(). Run the loop afterwards if the retry timer was active.
  ~RingEmitter() override;
  /// Write what fits, spill the rest, stop the retry timer. Returns the
  /// number of results (invocations) that reached neither the ring nor a
  /// spill journal (disk full); non-zero means results were lost.
  std::uint64_t close();
  /// Results lost so far (see close()).
  std::uint64_t undelivered() const noexcept;

  void emit_metrics(const Completion& completion) override;
  void emit_raw(const RawPayloadOutput& raw) override;

  /// Records (fragments) waiting for ring space.
  std::size_t queue_depth() const noexcept;
  RingProducer& producer() noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

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

/// JSON body of a metrics record. `deferred`: the payload is Deferred.
PAYLOADRUN_API std::string encode_metrics(const Completion& completion, bool deferred);
/// JSON body of a raw-output record.
PAYLOADRUN_API std::string encode_raw(const RawPayloadOutput& raw);
/// Decode untrusted bytes. Throws Error(Errc::ring) naming what is wrong.
PAYLOADRUN_API MetricsRecord decode_metrics(std::string_view body);
PAYLOADRUN_API RawPayloadOutput decode_raw(std::string_view body);

// ------------------------------------------------------------- the drain

struct DrainOptions {
  /// Command run per Deferred record (argv split on spaces, no shell): raw
  /// stdout on its stdin, its stdout parsed for metrics. Empty: the raw
  /// text itself is parsed.
  std::string extractor;
  /// Bound on one extractor run; it is killed after this.
  std::chrono::milliseconds extractor_timeout{60000};
  /// A half of a Deferred pair whose other half has not come after this
  /// long gets a pairing-failure line from expire() (longer than a
  /// producer's stall_timeout, after which a missing record would have
  /// been spilled).
  std::chrono::milliseconds pairing_timeout{60000};
  /// Origins (RingMessage::origin) of lines the sidecar already holds: a
  /// message delivered again is then consumed without a second line.
  std::unordered_set<std::string> already_written{};
};

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

/// The consumer-side evaluation of a Deferred invocation (extraction,
/// hints, universal checks, bounds, default checks). Exposed for tests.
PAYLOADRUN_API AssertResult evaluate_deferred(const RawPayloadOutput& raw,
                                              const DrainOptions& options, PayloadMetrics& out);

}  // namespace payloadrun
