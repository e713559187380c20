// payloadrun: the producer side of the shared-memory result ring (format:
// docs/ring-format.md): RingProducer appends records, RingEmitter sends a
// Supervisor's completed invocations to a ring from its libuv loop.
//
// A ring is a named POSIX shared-memory object (/dev/shm/NAME) holding a
// fixed-capacity byte ring of checksummed records. Any number of producers
// (supervisors, in any number of processes) append records; one consumer
// (payloadrun/ring_consumer.hpp) drains them in reservation order. Whichever
// side starts first creates the ring; the other opens it.
//
// Lossless: a producer never blocks and never drops. When the ring is full
// its records wait in an in-process queue and are written as space frees;
// when no space comes for `stall_timeout`, or the producer goes away with
// records queued, they go to a spill journal (a file beside the ring, or
// in `spill_dir`) that the next consumer imports before it reads the ring.
// Only a record that cannot be spilled either (disk full) is undelivered,
// and counted. A record larger than a quarter of the ring is split into
// fragments that the consumer reassembles. A producer that dies between
// reserving and committing a record cannot wedge the ring: the consumer
// skips the reservation and counts it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "payloadrun/emitter.hpp"
#include "payloadrun/export.hpp"

struct uv_loop_s;  // libuv's uv_loop_t

namespace payloadrun {

namespace detail {
struct RingProducerAccess;  // library-internal
}

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

 private:
  friend struct detail::RingProducerAccess;
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

/// JSON body of a metrics record (what RingEmitter writes for a
/// Completion). `deferred`: the payload is Deferred.
PAYLOADRUN_API std::string encode_metrics(const Completion& completion, bool deferred);
/// JSON body of a raw-output record (a Deferred payload's output).
PAYLOADRUN_API std::string encode_raw(const RawPayloadOutput& raw);

}  // namespace payloadrun
