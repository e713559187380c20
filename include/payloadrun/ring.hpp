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
// a record larger than a quarter of the ring is split into fragments that
// the consumer reassembles. A producer that dies between reserving and
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
#include <string>
#include <string_view>
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
  /// alive; after this long without progress it stops doing so (it retries
  /// at the next emission and when destroyed) and logs a warning.
  std::chrono::milliseconds stall_timeout{30000};
};

/// What a ring record carries.
enum class RecordType : std::uint16_t {
  metrics = 1,     ///< a completed invocation (Completion), JSON
  raw_output = 2,  ///< a Deferred payload's raw output (RawPayloadOutput), JSON
};

/// Remove the ring's name from /dev/shm. True when it existed.
PAYLOADRUN_API bool remove_ring(const std::string& name) noexcept;

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
  /// Write queued records that now fit, without blocking. Returns the
  /// number of records (fragments) still queued.
  std::size_t flush();
  /// Block until the queue is empty or `timeout` passes (retrying every
  /// millisecond). True when the queue is empty.
  bool flush_for(std::chrono::milliseconds timeout);
  /// Records (fragments) waiting in process for ring space.
  std::size_t queue_depth() const noexcept;
  /// Body bytes waiting in process for ring space.
  std::size_t queued_bytes() const noexcept;
  /// Records (fragments) committed to the ring so far.
  std::uint64_t records_written() const noexcept;
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
/// exists only while records wait (so an idle emitter holds no handle).
/// Create and use it on the loop's thread.
class PAYLOADRUN_API RingEmitter : public Emitter {
 public:
  /// Throws Error(Errc::ring) as RingProducer does.
  RingEmitter(uv_loop_s* loop, const std::string& name, RingOptions options = {});
  /// Makes a last non-blocking attempt to write queued records and logs any
  /// left as lost. Run the loop afterwards if the retry timer was active.
  ~RingEmitter() override;

  void emit_metrics(const Completion& completion) override;
  void emit_raw(const RawPayloadOutput& raw) override;

  /// Records (fragments) waiting for ring space.
  std::size_t queue_depth() const noexcept;
  RingProducer& producer() noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// One whole (reassembled) message read from a ring.
struct RingMessage {
  RecordType type = RecordType::metrics;
  std::uint32_t pid = 0;
  std::uint64_t payload_index = 0;
  std::uint64_t message_id = 0;
  std::string body;
};

/// What a consumer has seen so far.
struct RingStats {
  std::uint64_t records = 0;     ///< good records (fragments) read
  std::uint64_t messages = 0;    ///< whole messages delivered
  std::uint64_t bytes = 0;       ///< body bytes of the delivered messages
  std::uint64_t corrupt = 0;     ///< records failing a checksum or bounds check
  std::uint64_t abandoned = 0;   ///< reservations skipped (producer died / timed out)
  std::uint64_t incomplete = 0;  ///< fragmented messages that lost a fragment
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
  std::optional<RingMessage> next(std::chrono::milliseconds timeout);
  /// True when every reserved record has been consumed (head == tail).
  bool empty() const noexcept;
  /// True while a fragmented message is partly read.
  bool has_partial() const noexcept;
  /// Count fragmented messages still partly read as incomplete (at exit).
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
};

struct DrainSummary {
  std::uint64_t invocations = 0;       ///< sidecar lines written
  std::uint64_t pairing_failures = 0;  ///< unpaired raw outputs / metric-less records
  std::uint64_t decode_failures = 0;   ///< messages whose body did not decode
};

/// Turns ring messages into sidecar JSON lines, one per invocation:
/// {"payload","payload_index","pid","exit_code","timed_out","passed",
///  "details":[{"kind","message"}],"metrics":[{"name","value","polarity",
///  "unit","source","stream"}]}. Deferred raw output is paired with its
/// metrics record by (producer pid, payload_index) and extracted here.
class PAYLOADRUN_API Drain {
 public:
  using LineSink = std::function<void(std::string_view line)>;
  Drain(LineSink sink, DrainOptions options = {});
  ~Drain();
  Drain(Drain&&) noexcept;
  Drain& operator=(Drain&&) noexcept;
  /// Process one message (never throws for bad bodies: they are counted).
  void consume(const RingMessage& message);
  /// Emit a pairing failure line for every raw output still unpaired.
  void finish();
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
