// Ring producer side: RingProducer (reserve under a robust process-shared
// lock, copy and commit outside it, in-process queue when full) and
// RingEmitter (a RingProducer driven by a retry timer on a libuv loop).
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include <fmt/format.h>

#include "detail/log.hpp"
#include "detail/ring_shm.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/ring.hpp"

namespace payloadrun {

using detail::RecordHeader;
using detail::RingHeader;

namespace {

// Unique per process across every producer: groups a message's fragments.
std::atomic<std::uint64_t> message_counter{1};

struct Fragment {
  std::shared_ptr<const std::string> body;  // the whole message
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  RecordType type = RecordType::metrics;
  std::uint64_t payload_index = 0;
  std::uint64_t message_id = 0;
  std::uint32_t frag_index = 0;
  std::uint32_t frag_count = 1;
};

}  // namespace

bool remove_ring(const std::string& name) noexcept {
  try {
    return ::shm_unlink(detail::shm_path(name).c_str()) == 0;
  } catch (...) {
    return false;
  }
}

struct RingProducer::Impl {
  detail::RingMap map;
  std::deque<Fragment> queue;
  std::size_t queued_bytes = 0;
  std::uint64_t written = 0;
  std::function<void()> after_reserve;

  Impl(const std::string& name, const RingOptions& o) : map(name, o) {}
  ~Impl() {
    if (queue.empty()) return;
    try {
      detail::logger()->error("ring '{}': producer destroyed with {} records ({} bytes) still "
                              "waiting for space; they are lost (flush_for() first)",
                              map.name(), queue.size(), queued_bytes);
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

  /// Reserve and commit one fragment. False when the ring has no room (or
  /// the lock is busy and !blocking).
  bool try_write(const Fragment& f, bool blocking) {
    RingHeader& h = map.header();
    const std::uint64_t need = detail::slot_size(f.length);
    if (lock(blocking) != Lock::acquired) return false;
    const std::uint64_t pos = h.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = h.tail.load(std::memory_order_acquire);
    if (pos - tail + need > map.capacity()) {
      pthread_mutex_unlock(&h.reserve_lock);
      return false;
    }
    RecordHeader& r = map.record_at(pos);
    r.magic = detail::record_magic;
    r.version = detail::ring_version;
    r.type = static_cast<std::uint16_t>(f.type);
    r.pid = static_cast<std::uint32_t>(::getpid());  // not cached: a fork changes it
    r.payload_index = f.payload_index;
    r.length = f.length;
    r.body_crc = 0;
    r.reserve_ns = detail::monotonic_ns();
    r.message_id = f.message_id;
    r.frag_index = f.frag_index;
    r.frag_count = f.frag_count;
    r.total_length = static_cast<std::uint32_t>(f.body->size());
    r.header_crc = 0;
    r.state.store(detail::slot_reserved, std::memory_order_relaxed);
    h.head.store(pos + need, std::memory_order_release);
    pthread_mutex_unlock(&h.reserve_lock);

    if (after_reserve) after_reserve();
    const char* src = f.body->data() + f.offset;
    map.copy_in(pos + detail::record_header_size, src, f.length);
    r.body_crc = detail::crc32c(src, f.length);
    r.header_crc = detail::header_crc(r);
    r.state.store(detail::slot_committed, std::memory_order_release);
    h.commit_seq.fetch_add(1, std::memory_order_seq_cst);
    if (h.waiters.load(std::memory_order_seq_cst) != 0) detail::futex_wake_all(h.commit_seq);
    ++written;
    return true;
  }

  std::size_t flush(bool blocking) {
    while (!queue.empty()) {
      if (!try_write(queue.front(), blocking)) break;
      queued_bytes -= queue.front().length;
      queue.pop_front();
    }
    return queue.size();
  }
};

RingProducer::RingProducer(const std::string& name, RingOptions options)
    : impl_(std::make_unique<Impl>(name, options)) {}
RingProducer::~RingProducer() = default;
RingProducer::RingProducer(RingProducer&&) noexcept = default;
RingProducer& RingProducer::operator=(RingProducer&&) noexcept = default;

void RingProducer::write(RecordType type, std::uint64_t payload_index, std::string_view body) {
  if (body.size() > 0xffffffffu) {
    throw Error(Errc::ring, fmt::format("ring '{}': a record of {} bytes exceeds the 4 GiB "
                                        "message limit; cap the payload's output",
                                        impl_->map.name(), body.size()));
  }
  auto shared = std::make_shared<const std::string>(body);
  const std::size_t max = impl_->max_fragment();
  const std::size_t count = body.empty() ? 1 : (body.size() + max - 1) / max;
  const std::uint64_t id = message_counter.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    Fragment f;
    f.body = shared;
    f.offset = static_cast<std::uint32_t>(i * max);
    f.length = static_cast<std::uint32_t>(std::min(max, body.size() - i * max));
    f.type = type;
    f.payload_index = payload_index;
    f.message_id = id;
    f.frag_index = static_cast<std::uint32_t>(i);
    f.frag_count = static_cast<std::uint32_t>(count);
    impl_->queued_bytes += f.length;
    impl_->queue.push_back(std::move(f));
  }
  impl_->flush(false);
}

std::size_t RingProducer::flush() { return impl_->flush(false); }

bool RingProducer::flush_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->flush(true) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::size_t RingProducer::queue_depth() const noexcept { return impl_->queue.size(); }
std::size_t RingProducer::queued_bytes() const noexcept { return impl_->queued_bytes; }
std::uint64_t RingProducer::records_written() const noexcept { return impl_->written; }
std::size_t RingProducer::capacity() const noexcept { return impl_->map.capacity(); }
std::size_t RingProducer::max_fragment() const noexcept { return impl_->max_fragment(); }
const std::string& RingProducer::name() const noexcept { return impl_->map.name(); }
void RingProducer::set_after_reserve_hook(std::function<void()> hook) {
  impl_->after_reserve = std::move(hook);
}

// ---------------------------------------------------------------- RingEmitter

struct RingEmitter::Impl {
  uv_loop_t* loop;
  RingProducer producer;
  RingOptions options;
  uv_timer_t* timer = nullptr;  // open only while records wait
  std::uint64_t last_progress_ns = 0;
  std::size_t last_depth = 0;
  std::optional<std::uint64_t> last_raw_index;
  bool stalled_warned = false;

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
      stalled_warned = false;
      return;
    }
    const auto stall = static_cast<std::uint64_t>(options.stall_timeout.count()) * 1'000'000u;
    if (now - last_progress_ns > stall) {
      // No consumer is making room: stop keeping the loop alive.
      detail::logger()->warn("ring '{}': no space for {} ms, {} records wait in process (is a "
                             "consumer running?); retrying at the next emission",
                             producer.name(), options.stall_timeout.count(), depth);
      stalled_warned = true;
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
};

RingEmitter::RingEmitter(uv_loop_s* loop, const std::string& name, RingOptions options) {
  if (loop == nullptr) throw Error(Errc::ring, "RingEmitter: the loop is null");
  impl_ = std::make_shared<Impl>(loop, name, options);
}

RingEmitter::~RingEmitter() {
  try {
    const std::size_t left = impl_->producer.flush();
    impl_->close_timer();
    if (left != 0) {
      detail::logger()->error("ring '{}': emitter destroyed with {} records ({} bytes) still "
                              "waiting for space; they are lost",
                              impl_->producer.name(), left, impl_->producer.queued_bytes());
    }
  } catch (...) {
  }
}

void RingEmitter::emit_metrics(const Completion& completion) {
  const bool deferred = impl_->last_raw_index == completion.metrics.payload_index;
  impl_->last_raw_index.reset();
  impl_->producer.write(RecordType::metrics, completion.metrics.payload_index,
                        encode_metrics(completion, deferred));
  impl_->after_write();
}

void RingEmitter::emit_raw(const RawPayloadOutput& raw) {
  impl_->last_raw_index = raw.payload_index;
  impl_->producer.write(RecordType::raw_output, raw.payload_index, encode_raw(raw));
  impl_->after_write();
}

std::size_t RingEmitter::queue_depth() const noexcept { return impl_->producer.queue_depth(); }
RingProducer& RingEmitter::producer() noexcept { return impl_->producer; }

}  // namespace payloadrun
