// Ring producer side: RingProducer (reserve under a robust process-shared
// lock, copy straight into the slot and commit outside it, in-process queue
// only when full) and
// RingEmitter (a RingProducer driven by a retry timer on a libuv loop).
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <span>
#include <thread>

#include <fmt/format.h>

#include "detail/log.hpp"
#include "detail/ring_shm.hpp"
#include "detail/ring_spill.hpp"
#include "detail/ring_test_hooks.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/ring_producer.hpp"

namespace payloadrun {

using detail::RecordHeader;
using detail::RingHeader;

namespace {

// Message ids are unique per process across every producer (they group a
// message's fragments): a producer takes a block of 2^32 ids at a time
// from this counter (one atomic step per block, not per message), and
// numbers its messages within it, in order.
std::atomic<std::uint64_t> message_id_blocks{1};

// One record to write. Trivial on purpose (no default member values): the
// direct path keeps a few on the stack without initialising them first.
struct Fragment {
  const char* data;             // this fragment's bytes (owned by the caller or its Batch)
  std::uint32_t total_length;   // of the whole message
  std::uint32_t length;
  RecordType type;
  std::uint64_t payload_index;
  std::uint64_t message_id;
  std::uint32_t frag_index;
  std::uint32_t frag_count;
};

// Fragments reserved in one step: a consumer sees all of them or none. A
// queued batch owns copies of its messages' bodies (`bodies`); fragments
// point into them.
struct Batch {
  std::vector<Fragment> fragments;
  std::vector<std::shared_ptr<const std::string>> bodies;
  std::uint64_t slots = 0;  // ring bytes they take
  std::size_t bytes = 0;    // body bytes
};

}  // namespace

bool remove_ring(const std::string& name) noexcept {
  try {
    return ::shm_unlink(detail::shm_path(name).c_str()) == 0;
  } catch (...) {
    return false;
  }
}

struct __attribute__((visibility("hidden"))) RingProducer::Impl {
  detail::RingMap map;
  RingOptions options;
  std::deque<Batch> queue;
  std::size_t queued_records = 0;
  std::size_t queued_bytes = 0;
  std::uint64_t written = 0;
  std::uint64_t spilled = 0;
  std::uint64_t undelivered = 0;
  std::string last_spill_error;
  std::function<void()> after_reserve;

  // tail as this producer last read it: it only grows, so the free space
  // it shows is never more than the truth (re-read only when short).
  std::uint64_t cached_tail = 0;

  std::uint64_t next_message_id = 0, message_id_end = 0;  // this producer's block of ids
  std::uint64_t take_message_id() noexcept {
    if (next_message_id == message_id_end) {
      next_message_id = message_id_blocks.fetch_add(1, std::memory_order_relaxed) << 32;
      message_id_end = next_message_id + (std::uint64_t{1} << 32);
    }
    return next_message_id++;
  }

  Impl(const std::string& name, const RingOptions& o) : map(name, o), options(o) {}
  ~Impl() {
    try {
      if (!queue.empty()) spill(true);
    } catch (...) {
    }
  }

  std::size_t max_fragment() const noexcept {
    const std::uint64_t quarter = map.capacity() / 4;
    return static_cast<std::size_t>(
        std::min<std::uint64_t>(quarter - detail::record_header_size, 0x7fffffffu));
  }

  enum class Lock { acquired, busy };
  Lock lock(bool blocking) noexcept {
    pthread_mutex_t* m = &map.header().reserve_lock;
    int rc = blocking ? pthread_mutex_lock(m) : EBUSY;
    if (!blocking) {
      for (int spin = 0; spin < 64 && rc == EBUSY; ++spin) rc = pthread_mutex_trylock(m);
    }
    if (rc == EOWNERDEAD) {
      // A producer died inside the reservation step. head is stored last
      // there, so the ring is consistent: mark the lock usable again.
      pthread_mutex_consistent(m);
      rc = 0;
    }
    return rc == 0 ? Lock::acquired : Lock::busy;
  }

  /// A fragment's record header as its eight words (detail::header_words),
  /// stored a word at a time and never read back: built field by field on
  /// the stack, the wide loads of its copy and of its checksum each waited
  /// for the narrow stores before them to reach the cache (a failed store
  /// forward), ~18% of a 256-byte record's producer time.
  static detail::HeaderWords header_words(const Fragment& f, std::uint32_t pid, std::uint64_t now,
                                          std::uint32_t state) noexcept {
    return detail::header_words(state, f.type, pid, f.payload_index, f.length, now, f.message_id, f.frag_index,
                                f.frag_count, f.total_length);
  }
  void store_header(std::uint64_t pos, const detail::HeaderWords& h) const noexcept {
    auto* out = reinterpret_cast<unsigned char*>(&map.record_at(pos));
    for (int k = 0; k < 8; ++k) std::memcpy(out + 8 * k, &h.w[k], 8);  // one store each
  }

  /// Reserve every fragment of `frags` (`slots` ring bytes) in one step,
  /// then copy each body straight into its slot and commit it. False when
  /// the ring has no room (or the lock is busy and !blocking).
  bool try_write(const Fragment* frags, std::size_t n, std::uint64_t slots, bool blocking) {
    RingHeader& h = map.header();
    const std::uint32_t pid = detail::self_pid();  // cached, refreshed in a forked child
    const std::uint64_t now = detail::coarse_ns();  // compared with coarse_ns by the consumer
    if (lock(blocking) != Lock::acquired) return false;
    const std::uint64_t start = h.head.load(std::memory_order_relaxed);
    if (start - cached_tail + slots > map.capacity()) {
      cached_tail = h.tail.load(std::memory_order_acquire);
      if (start - cached_tail + slots > map.capacity()) {
        pthread_mutex_unlock(&h.reserve_lock);
        return false;
      }
    }
    // Headers are stored a word at a time and never read back from the
    // ring, whose lines the consumer may hold.
    std::uint64_t pos = start;
    for (std::size_t i = 0; i < n; ++i) {
      store_header(pos, header_words(frags[i], pid, now, detail::slot_reserved));
      pos += detail::slot_size(frags[i].length);
    }
    h.head.store(pos, std::memory_order_release);
    pthread_mutex_unlock(&h.reserve_lock);

    if (after_reserve) after_reserve();
    pos = start;
    for (std::size_t i = 0; i < n; ++i) {
      const Fragment& f = frags[i];
      RecordHeader& r = map.record_at(pos);
      detail::HeaderWords hw = header_words(f, pid, now, detail::slot_reserved);  // to checksum locally
      // The body is checksummed from the caller's bytes as it is copied.
      const std::uint32_t body_crc = map.copy_in_crc(pos + detail::record_header_size, f.data, f.length);
      hw.w[3] |= std::uint64_t{body_crc} << 32;
      r.body_crc = body_crc;
      r.header_crc = detail::header_crc(hw);
      r.state.store(detail::slot_committed, std::memory_order_release);
      pos += detail::slot_size(f.length);
      ++written;
    }
    // Wake the consumer only when it sleeps (or is about to): it raises
    // waiters, then re-reads the slot before FUTEX_WAIT; the fence orders
    // our COMT store before our waiters load (Dekker), so one of us sees
    // the other's store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (h.waiters.load(std::memory_order_relaxed) != 0) {
      h.commit_seq.fetch_add(1, std::memory_order_seq_cst);
      detail::futex_wake_all(h.commit_seq);
    }
    return true;
  }
  bool try_write(const Batch& b, bool blocking) {
    return try_write(b.fragments.data(), b.fragments.size(), b.slots, blocking);
  }

  void pop_front() {
    queued_records -= queue.front().fragments.size();
    queued_bytes -= queue.front().bytes;
    queue.pop_front();
  }

  std::size_t flush(bool blocking) {
    while (!queue.empty()) {
      if (!try_write(queue.front(), blocking)) break;
      pop_front();
    }
    return queued_records;
  }

  static std::size_t messages_in(const std::deque<Batch>& q) {
    std::size_t n = 0;
    for (const Batch& b : q) {
      for (const Fragment& f : b.fragments) n += f.frag_index == 0 && f.type == RecordType::metrics ? 1 : 0;
    }
    return n;
  }

  /// Move every queued record to a spill journal. `final`: this is the last
  /// chance (the producer goes away): what cannot be spilled is undelivered.
  // Queued batches to one journal, from the front: whole batches, at most
  // spill_chunk_bytes of records (at least one batch). Returns the count
  // of batches written, or sets `err`.
  std::size_t spill_chunk(std::string& err) {
    std::vector<detail::SpillRecord> records;
    const auto pid = static_cast<std::uint32_t>(::getpid());
    const std::uint64_t now = detail::monotonic_ns();
    std::uint64_t bytes = 0;
    std::size_t batches = 0;
    for (const Batch& b : queue) {
      if (batches != 0 && bytes + b.slots > detail::spill_chunk_bytes) break;
      for (const Fragment& f : b.fragments) {
        detail::RecordMeta m;
        m.type = static_cast<std::uint16_t>(f.type);
        m.pid = pid;
        m.payload_index = f.payload_index;
        m.length = f.length;
        m.reserve_ns = now;
        m.message_id = f.message_id;
        m.frag_index = f.frag_index;
        m.frag_count = f.frag_count;
        m.total_length = f.total_length;
        records.push_back({m, f.data});
      }
      bytes += b.slots;
      ++batches;
    }
    err = detail::write_spill(options.spill_dir, map.name(), map.header().ring_id, records);
    return err.empty() ? batches : 0;
  }

  /// Move every queued record to spill journals. `final`: this is the last
  /// chance (the producer goes away): what cannot be spilled is undelivered.
  bool spill(bool final) {
    const std::size_t records_before = queued_records;
    const std::size_t bytes_before = queued_bytes;
    std::string err;
    while (!queue.empty()) {
      const std::size_t n = spill_chunk(err);
      if (n == 0) break;
      for (std::size_t i = 0; i < n; ++i) {
        spilled += queue.front().fragments.size();
        pop_front();
      }
    }
    if (records_before != queued_records) {
      detail::logger()->warn("ring '{}': no room for {} records ({} bytes); spilled them to {} for "
                             "the next consumer",
                             map.name(), records_before - queued_records, bytes_before - queued_bytes,
                             detail::spill_directory(options.spill_dir));
    }
    if (queue.empty()) return true;
    last_spill_error = err;
    if (final) {
      const std::size_t messages = messages_in(queue);
      detail::logger()->error("ring '{}': {} results ({} records, {} bytes) could not be delivered: "
                              "the ring is full and {}",
                              map.name(), messages, queued_records, queued_bytes, err);
      undelivered += messages;
      queue.clear();
      queued_records = 0;
      queued_bytes = 0;
    } else {
      detail::logger()->error("ring '{}': {} records wait in process: the ring is full and {}; "
                              "retrying",
                              map.name(), queued_records, err);
    }
    return false;
  }

  // A message's fragments, as one batch.
  Batch fragments_of(const RingRecord& m) {
    if (m.body.size() > 0xffffffffu) {
      throw Error(Errc::ring, fmt::format("ring '{}': a record of {} bytes exceeds the 4 GiB "
                                          "message limit; cap the payload's output",
                                          map.name(), m.body.size()));
    }
    auto shared = std::make_shared<const std::string>(m.body);
    const std::size_t max = max_fragment();
    const std::size_t count = m.body.empty() ? 1 : (m.body.size() + max - 1) / max;
    const std::uint64_t id = take_message_id();
    Batch b;
    b.fragments.reserve(count);
    b.bodies.push_back(shared);
    for (std::size_t i = 0; i < count; ++i) {
      Fragment f;
      f.data = shared->data() + i * max;
      f.total_length = static_cast<std::uint32_t>(m.body.size());
      f.length = static_cast<std::uint32_t>(std::min(max, m.body.size() - i * max));
      f.type = m.type;
      f.payload_index = m.payload_index;
      f.message_id = id;
      f.frag_index = static_cast<std::uint32_t>(i);
      f.frag_count = static_cast<std::uint32_t>(count);
      b.slots += detail::slot_size(f.length);
      b.bytes += f.length;
      b.fragments.push_back(f);
    }
    return b;
  }

  void enqueue(Batch b) {
    queued_records += b.fragments.size();
    queued_bytes += b.bytes;
    queue.push_back(std::move(b));
  }

  // All messages in one batch when they fit in the ring at once; else one
  // batch per message; a message larger than the ring, one per fragment.
  // With nothing queued, up to 8 messages that fit unfragmented are
  // reserved in one step and copied from the caller's bytes straight into
  // their slots (no queue entry, no copy of the body). True when written.
  bool write_direct(std::span<const RingRecord> messages) {
    constexpr std::size_t direct_max = 8;
    if (!queue.empty() || messages.empty() || messages.size() > direct_max) return false;
    const std::size_t max = max_fragment();
    Fragment frags[direct_max];  // (trivial: not initialised; each used one is set whole)
    std::uint64_t slots = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const RingRecord& m = messages[i];
      if (m.body.size() > max) return false;
      Fragment& f = frags[i];
      f.data = m.body.data();
      f.total_length = static_cast<std::uint32_t>(m.body.size());
      f.length = f.total_length;
      f.type = m.type;
      f.payload_index = m.payload_index;
      f.message_id = 0;
      f.frag_index = 0;
      f.frag_count = 1;
      slots += detail::slot_size(f.length);
    }
    if (slots > map.capacity()) return false;
    // Ids are taken only once the write is certain to be tried, in order.
    for (std::size_t i = 0; i < messages.size(); ++i) {
      frags[i].message_id = take_message_id();
    }
    if (try_write(frags, messages.size(), slots, false)) return true;
    // No room now: queue copies (with the ids just taken; unique, in order).
    Batch all;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      Fragment f = frags[i];
      all.bodies.push_back(std::make_shared<const std::string>(messages[i].body));
      f.data = all.bodies.back()->data();
      all.slots += detail::slot_size(f.length);
      all.bytes += f.length;
      all.fragments.push_back(f);
    }
    enqueue(std::move(all));
    return true;
  }

  void write(std::span<const RingRecord> messages) {
    if (write_direct(messages)) return;
    std::vector<Batch> batches;
    std::uint64_t slots = 0;
    bool each_fits = true;
    for (const RingRecord& m : messages) {
      batches.push_back(fragments_of(m));
      slots += batches.back().slots;
      each_fits = each_fits && batches.back().slots <= map.capacity();
    }
    if (each_fits && slots <= map.capacity() && batches.size() > 1) {
      Batch all;
      for (Batch& b : batches) {
        all.slots += b.slots;
        all.bytes += b.bytes;
        all.fragments.insert(all.fragments.end(), b.fragments.begin(), b.fragments.end());
        all.bodies.insert(all.bodies.end(), b.bodies.begin(), b.bodies.end());
      }
      enqueue(std::move(all));
    } else {
      for (Batch& b : batches) {
        if (b.slots <= map.capacity()) {
          enqueue(std::move(b));
          continue;
        }
        for (const Fragment& f : b.fragments) {
          Batch one;
          one.slots = detail::slot_size(f.length);
          one.bytes = f.length;
          one.fragments.push_back(f);
          one.bodies = b.bodies;  // every fragment keeps the message's body alive
          enqueue(std::move(one));
        }
      }
    }
    flush(false);
  }
};

RingProducer::RingProducer(const std::string& name, RingOptions options)
    : impl_(std::make_unique<Impl>(name, options)) {}
RingProducer::~RingProducer() = default;
RingProducer::RingProducer(RingProducer&&) noexcept = default;
RingProducer& RingProducer::operator=(RingProducer&&) noexcept = default;

void RingProducer::write(RecordType type, std::uint64_t payload_index, std::string_view body) {
  const RingRecord one{type, payload_index, body};
  impl_->write(std::span<const RingRecord>(&one, 1));
}

void RingProducer::write(std::span<const RingRecord> messages) { impl_->write(messages); }

std::size_t RingProducer::flush() { return impl_->flush(false); }

bool RingProducer::flush_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->flush(true) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool RingProducer::spill() { return impl_->spill(false); }
std::uint64_t RingProducer::close() {
  impl_->flush(false);
  impl_->spill(true);
  return impl_->undelivered;
}
std::size_t RingProducer::queue_depth() const noexcept { return impl_->queued_records; }
std::size_t RingProducer::queued_bytes() const noexcept { return impl_->queued_bytes; }
std::uint64_t RingProducer::records_written() const noexcept { return impl_->written; }
std::uint64_t RingProducer::records_spilled() const noexcept { return impl_->spilled; }
std::uint64_t RingProducer::undelivered() const noexcept { return impl_->undelivered; }
std::size_t RingProducer::capacity() const noexcept { return impl_->map.capacity(); }
std::size_t RingProducer::max_fragment() const noexcept { return impl_->max_fragment(); }
const std::string& RingProducer::name() const noexcept { return impl_->map.name(); }
void detail::RingProducerAccess::set_after_reserve_hook(RingProducer& producer,
                                                        std::function<void()> hook) {
  producer.impl_->after_reserve = std::move(hook);
}

// ---------------------------------------------------------------- RingEmitter

struct __attribute__((visibility("hidden"))) RingEmitter::Impl {
  uv_loop_t* loop;
  RingProducer producer;
  RingOptions options;
  uv_timer_t* timer = nullptr;  // open only while records wait
  std::uint64_t last_progress_ns = 0;
  std::size_t last_depth = 0;
  // A Deferred payload's raw output waits here for its metrics record: the
  // two are written together, so a consumer never sees one without the other.
  std::optional<std::pair<std::uint64_t, std::string>> pending_raw;
  bool closed = false;

  Impl(uv_loop_t* l, const std::string& name, const RingOptions& o)
      : loop(l), producer(name, o), options(o) {}

  static void on_timer_closed(uv_handle_t* h) {
    std::unique_ptr<uv_timer_t> owned(reinterpret_cast<uv_timer_t*>(h));
  }

  void close_timer() noexcept {
    if (timer == nullptr) return;
    uv_timer_stop(timer);
    timer->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer), on_timer_closed);
    timer = nullptr;
  }

  static void on_timer(uv_timer_t* t) {
    auto* self = static_cast<Impl*>(t->data);
    if (self == nullptr) return;
    try {
      self->retry();
    } catch (const std::exception& e) {
      try {
        detail::logger()->error("ring '{}': retry failed: {}", self->producer.name(), e.what());
      } catch (...) {
      }
    } catch (...) {
    }
  }

  void retry() {
    const std::size_t depth = producer.flush();
    const std::uint64_t now = detail::monotonic_ns();
    if (depth < last_depth) last_progress_ns = now;
    last_depth = depth;
    if (depth == 0) {
      close_timer();
      return;
    }
    const auto stall = static_cast<std::uint64_t>(options.stall_timeout.count()) * 1'000'000u;
    if (now - last_progress_ns > stall) {
      // No consumer is making room: the records go to a spill journal for
      // the next consumer (or, if that fails, wait for the next emission).
      producer.spill();
      close_timer();
    }
  }

  void after_write() {
    const std::size_t depth = producer.queue_depth();
    if (depth == 0 || timer != nullptr) return;
    auto t = std::make_unique<uv_timer_t>();
    if (uv_timer_init(loop, t.get()) != 0) {
      detail::logger()->error("ring '{}': cannot start its retry timer; {} records wait until "
                              "the next emission",
                              producer.name(), depth);
      return;
    }
    t->data = this;
    timer = t.release();
    last_progress_ns = detail::monotonic_ns();
    last_depth = depth;
    uv_timer_start(timer, on_timer, 1, 1);
  }

  void write_pending_raw() {
    if (!pending_raw) return;
    auto raw = std::move(*pending_raw);
    pending_raw.reset();
    producer.write(RecordType::raw_output, raw.first, raw.second);
  }

  std::uint64_t close() {
    if (!closed) {
      closed = true;
      write_pending_raw();
      close_timer();
    }
    return producer.close();
  }
};

RingEmitter::RingEmitter(uv_loop_s* loop, const std::string& name, RingOptions options) {
  if (loop == nullptr) throw Error(Errc::ring, "RingEmitter: the loop is null");
  impl_ = std::make_shared<Impl>(loop, name, options);
}

RingEmitter::~RingEmitter() {
  try {
    impl_->close();
  } catch (...) {
  }
}

std::uint64_t RingEmitter::close() { return impl_->close(); }

void RingEmitter::emit_metrics(const Completion& completion) {
  const std::uint64_t index = completion.metrics.payload_index;
  const bool deferred = impl_->pending_raw && impl_->pending_raw->first == index;
  if (impl_->pending_raw && !deferred) impl_->write_pending_raw();
  const std::string body = encode_metrics(completion, deferred);
  if (deferred) {
    const RingRecord pair[2] = {{RecordType::raw_output, index, impl_->pending_raw->second},
                                {RecordType::metrics, index, body}};
    impl_->producer.write(std::span<const RingRecord>(pair, 2));
    impl_->pending_raw.reset();
  } else {
    impl_->producer.write(RecordType::metrics, index, body);
  }
  impl_->after_write();
}

void RingEmitter::emit_raw(const RawPayloadOutput& raw) {
  impl_->write_pending_raw();  // a raw output whose metrics never came
  impl_->pending_raw.emplace(raw.payload_index, encode_raw(raw));
  impl_->after_write();
}

std::size_t RingEmitter::queue_depth() const noexcept { return impl_->producer.queue_depth(); }
std::uint64_t RingEmitter::undelivered() const noexcept { return impl_->producer.undelivered(); }
RingProducer& RingEmitter::producer() noexcept { return impl_->producer; }

}  // namespace payloadrun
