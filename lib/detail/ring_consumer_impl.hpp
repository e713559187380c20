// RingConsumer::Impl, the consumer side of the ring (docs/ring-format.md):
// reads records in reservation order, verifies checksums, skips abandoned
// reservations, reassembles fragments, imports spill journals, waits on the
// shared futex. Included by lib/ring_consumer.cpp only (the public
// wrappers and RingConsumer::read live there).
#pragma once

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "detail/log.hpp"
#include "detail/ring_json.hpp"
#include "detail/ring_shm.hpp"
#include "detail/ring_spill.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/ring_consumer.hpp"

namespace payloadrun {

using detail::RecordHeader;
using detail::RingHeader;

namespace detail::consumer {
struct Partial {
  RecordType type;
  std::uint64_t payload_index;
  std::uint32_t frag_count;
  std::uint32_t next_frag = 0;
  std::uint32_t total_length;
  std::string body;
  std::string origin;  // of its first fragment
  RingHold hold;       // what its fragments read so far need kept
  bool atomic = false;  // reserved in one step: all of it lies before head
};

// A spill journal being imported.
struct SpillFile {
  std::string path;
  std::uint64_t id = 0;
  std::size_t waiting = 0;  // its messages not yet returned by next()
  bool keep = false;        // damaged: not removed after import
};

// "K:ID:POS": ID in 16 hex digits, POS in decimal (written by hand: this
// runs once per message).
inline std::string origin_of(char kind, std::uint64_t id, std::uint64_t pos) {
  char buf[2 + 16 + 1 + 20];
  buf[0] = kind;
  buf[1] = ':';
  for (int i = 0; i < 16; ++i) buf[2 + i] = "0123456789abcdef"[(id >> (60 - 4 * i)) & 0xfu];
  buf[18] = ':';
  const auto r = std::to_chars(buf + 19, buf + sizeof buf, pos);
  return std::string(buf, static_cast<std::size_t>(r.ptr - buf));
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long next() polls an empty ring (or a reservation being written)
// before it sleeps on the futex: a producer that writes again within this
// time costs the consumer no system call and itself no FUTEX_WAKE.
inline constexpr std::uint64_t spin_ns = 50'000;
// Having read to the end, the consumer pauses this long before it looks
// again (busy, without touching shared lines), then polls with sched_yield
// between polls. Each look at head (or at a slot being written) takes the
// line from the producer's cache, and the producer's next store to it
// waits for the line to come back, under its reservation lock: polling
// every record halved a streaming producer's rate on this 2-vCPU VM (4.9
// M/s, rounds down to 1.6, against 7.6 M/s with this pause, measured
// interleaved), and the pause costs a lone record at most 8 us. Only
// after small records (below settle_below bytes): for large ones the
// per-record cost is in the copy, and the pause would only add to it
// (64 KiB records: 91-96 K/s with it against 113 K/s without).
inline constexpr std::uint64_t settle_ns = 8'000;
inline constexpr std::uint32_t settle_below = 4096;
// Reaching the last head it read, a consumer that finds fewer than this
// many new bytes of small records (and has not just paused) pauses
// settle_ns before it reads them: reading right behind a streaming
// producer pulls each line from it as it is written, and the producer's
// next stores wait for lines the consumer's prefetches took. 1,000,000
// records of 256 B across processes, four runs of five rounds each,
// interleaved, median M/s: 4.1, 8.3, 7.6, 8.5 without it, 10.0, 9.8, 9.0,
// 9.2 with it; 4 KiB and 64 KiB were within the noise of 16 KiB.
inline constexpr std::uint64_t min_batch_bytes = 16384;

// Busy-waits `ns` without touching shared memory.
inline void pause_for(std::uint64_t ns) noexcept {
  const std::uint64_t from = detail::monotonic_ns();
  do {
    for (int i = 0; i < 32; ++i) cpu_relax();
  } while (detail::monotonic_ns() - from < ns);
}
}  // namespace detail::consumer

using detail::consumer::Partial;
using detail::consumer::SpillFile;
using detail::consumer::origin_of;
using detail::consumer::cpu_relax;
using detail::consumer::spin_ns;
using detail::consumer::settle_ns;
using detail::consumer::settle_below;
using detail::consumer::min_batch_bytes;
using detail::consumer::pause_for;

struct detail::RingViewAccess {
  static void set_message(RingView& v, const RingMessage& m) {
    v.type = m.type;
    v.pid = m.pid;
    v.payload_index = m.payload_index;
    v.message_id = m.message_id;
    v.body = m.body;
    v.message_ = &m;
  }
  static void set_ring(RingView& v, std::uint64_t ring_id, std::uint64_t position) {
    v.message_ = nullptr;
    v.ring_id_ = ring_id;
    v.position_ = position;
  }
};

struct __attribute__((visibility("hidden"))) RingConsumer::Impl {
  detail::RingMap map;
  RingOptions options;
  RingStats stats;
  std::vector<std::string> reports;
  std::map<std::pair<std::uint32_t, std::uint64_t>, Partial> partials;  // (pid, message_id)
  // Messages already counted incomplete whose later fragments may still
  // come: those are skipped without counting the message again.
  std::set<std::pair<std::uint32_t, std::uint64_t>> counted;
  std::uint64_t read_pos = 0;  // next record to read; the shared tail is what was committed
  std::uint64_t committed = 0;  // the shared tail as this (only) consumer last stored it
  std::uint64_t seen_head = 0;  // head as last read: records before it are reserved (re-read when reached)
  std::uint64_t ring_id = 0;
  std::vector<SpillFile> spills;              // imported, not yet removed
  std::set<std::string> imported;             // their paths
  std::deque<std::pair<RingMessage, std::size_t>> spilled;  // (message, index into spills)
  std::uint64_t last_spill_scan_ns = 0;
  bool more_spills = true;  // journals may wait to be imported

  Impl(const std::string& name, const RingOptions& o) : map(name, o), options(o) {
    // One consumer at a time: claim consumer_pid; a dead holder's claim is
    // taken over. (Not a file lock: a forked child would inherit that.)
    const auto me = static_cast<std::uint32_t>(::getpid());
    std::atomic<std::uint32_t>& owner = map.header().consumer_pid;
    for (;;) {
      std::uint32_t cur = owner.load();
      if (cur != 0 && (cur == me || detail::pid_alive(cur))) {
        throw Error(Errc::ring, fmt::format("ring '{}' already has a consumer (pid {}); stop it "
                                            "first",
                                            name, cur));
      }
      if (owner.compare_exchange_strong(cur, me)) break;
    }
    read_pos = map.header().tail.load(std::memory_order_acquire);
    committed = read_pos;
    seen_head = read_pos;
    ring_id = map.header().ring_id;
    import_spill();
  }
  ~Impl() {
    auto me = static_cast<std::uint32_t>(::getpid());
    map.header().consumer_pid.compare_exchange_strong(me, 0);
  }

  void report(std::string s) {
    try {
      detail::logger()->warn("{}", s);
    } catch (...) {
    }
    reports.push_back(std::move(s));
  }

  void store_tail(std::uint64_t to) {
    committed = to;
    map.header().tail.store(to, std::memory_order_release);
  }

  bool defer_commit = false;  // read(): the space of a message read in place goes back after its callback

  void advance(std::uint64_t to) {
    read_pos = to;
    if (options.auto_commit && !defer_commit) store_tail(to);
  }

  // ------------------------------------------------------------- spills

  // The oldest journal not yet imported, into `spilled` (ring_consumer.cpp).
  bool import_spill();

  std::vector<std::uint64_t> held_spills(const RingHold& keep) const {
    std::vector<std::uint64_t> ids = keep.spills;
    for (const auto& [key, p] : partials) ids.insert(ids.end(), p.hold.spills.begin(), p.hold.spills.end());
    return ids;
  }

  void remove_spills(const RingHold& keep);  // ring_consumer.cpp: committed journals go

  void commit(const RingHold& keep) {
    std::uint64_t to = std::min(read_pos, keep.ring_position);
    for (const auto& [key, p] : partials) to = std::min(to, p.hold.ring_position);
    if (to > committed && to <= read_pos) store_tail(to);
    remove_spills(keep);
  }

  // Fragments of atomically reserved messages all lie before head: once the
  // consumer has read up to head, a partial one can never complete.
  void drop_stuck_partials() {
    for (auto it = partials.begin(); it != partials.end();) {
      auto next_it = std::next(it);
      if (it->second.atomic && it->second.hold.spills.empty()) {
        drop_partial(it->first.first, it->first.second, "its other fragments were lost");
      }
      it = next_it;
    }
  }

  // A header that cannot be trusted at `pos`: scan forward for the next
  // committed record whose header checksum holds, else skip to head.
  // Offsets from pos (head - pos <= capacity here): positions near the end
  // of the u64 range (an untrusted header page) cannot make this loop wrap.
  void resync(std::uint64_t pos, std::uint64_t head, const char* why) {
    const std::uint64_t span = head - pos;
    std::uint64_t off = detail::record_align;
    for (; off < span; off += detail::record_align) {
      const std::uint64_t p = pos + off;
      const RecordHeader& r = map.record_at(p);
      if (r.magic != detail::record_magic) continue;
      const std::uint32_t st = r.state.load(std::memory_order_acquire);
      if (st == detail::slot_committed && r.header_crc == detail::header_crc(r) &&
          detail::slot_size(r.length) <= head - p) {
        break;
      }
      if (st == detail::slot_reserved && r.version == detail::record_version &&
          detail::slot_size(r.length) <= head - p) {
        break;
      }
    }
    off = std::min(off, span);  // nothing found: skip to head (which may be unaligned)
    ++stats.corrupt;
    map.header().corrupt.fetch_add(1);
    report(fmt::format("ring '{}': corrupt record header at offset {} ({}); skipped {} bytes",
                       map.name(), pos, why, off));
    advance(pos + off);
  }

  enum class Step { message, progressed, blocked, empty, short_batch };

  // The reservation the read position waits on, and since when (monotonic
  // ns): its producer is checked for death and timeout only once it has
  // held the consumer for spin_ns (it is usually being written right now;
  // the check is a system call).
  std::uint64_t blocked_pos = ~std::uint64_t{0};
  std::uint64_t blocked_since_ns = 0;
  std::uint32_t last_length = 0;  // body bytes of the last good ring record (see settle_ns)

  // Process the record at the read position. `out` is filled when a whole
  // message is ready.
  // `take_short`: read what there is, however little (else Step::short_batch).
  Step step(std::optional<RingMessage>& out, RingView* in_place = nullptr, bool take_short = true) {
    RingHeader& h = map.header();
    const std::uint64_t tail = read_pos;
    if (tail == seen_head) {
      const std::uint64_t now_head = h.head.load(std::memory_order_acquire);
      if (now_head == tail) return Step::empty;
      if (!take_short && last_length < settle_below && now_head - tail < min_batch_bytes &&
          now_head - tail < map.capacity() / 4) {
        return Step::short_batch;
      }
      seen_head = now_head;
    }
    const std::uint64_t head = seen_head;
    if (head < tail || head - committed > map.capacity() || tail < committed ||
        (tail % detail::record_align) != 0 || head - tail < detail::record_header_size) {
      ++stats.corrupt;
      report(fmt::format("ring '{}': head {} and tail {} are inconsistent; skipping to head",
                         map.name(), head, tail));
      advance(head);
      return Step::progressed;
    }
    const RecordHeader& r = map.record_at(tail);
    const std::uint32_t st = r.state.load(std::memory_order_acquire);
    if (r.magic != detail::record_magic) {
      resync(tail, head, "bad magic");
      return Step::progressed;
    }
    if (st == detail::slot_reserved) {
      const std::uint64_t slot = detail::slot_size(r.length);
      if (slot > head - tail) {
        resync(tail, head, "reserved length out of bounds");
        return Step::progressed;
      }
      const std::uint64_t now = detail::monotonic_ns();
      if (blocked_pos != tail) {
        blocked_pos = tail;
        blocked_since_ns = now;
      }
      if (now - blocked_since_ns < spin_ns) return Step::blocked;
      // (A reservation time ahead of now, e.g. garbage, wraps to a huge age.)
      const std::uint64_t age = detail::coarse_ns() - r.reserve_ns;
      const auto limit = static_cast<std::uint64_t>(options.abandon_timeout.count()) * 1'000'000u;
      const bool dead = !detail::pid_alive(r.pid);
      if (!dead && age < limit) return Step::blocked;
      ++stats.abandoned;
      h.abandoned.fetch_add(1);
      report(fmt::format("ring '{}': skipped a reservation of {} bytes by pid {} ({}), payload "
                         "index {}",
                         map.name(), r.length, r.pid, dead ? "the producer is gone" : "timed out",
                         r.payload_index));
      const detail::RecordMeta m = detail::meta_of(r);
      advance(tail + slot);
      if (m.frag_count > 1) lose_message(m, "a fragment was abandoned");
      return Step::progressed;
    }
    if (st != detail::slot_committed) {
      resync(tail, head, "unknown state");
      return Step::progressed;
    }
    // Copy the header out before trusting anything in it.
    RecordHeader hdr;
    std::memcpy(static_cast<void*>(&hdr), &r, sizeof hdr);
    const std::uint64_t slot = detail::slot_size(hdr.length);
    if (hdr.header_crc != detail::header_crc(hdr) || slot > head - tail ||
        hdr.version != detail::record_version) {
      resync(tail, head, "header checksum mismatch");
      return Step::progressed;
    }
    const detail::RecordMeta m = detail::meta_of(hdr);
    const std::uint64_t body_off = (tail + detail::record_header_size) & map.mask();
    const auto type = static_cast<RecordType>(m.type);
    if (in_place != nullptr && m.frag_count <= 1 && m.frag_index == 0 && m.total_length == m.length &&
        (type == RecordType::metrics || type == RecordType::raw_output) && body_off + m.length <= map.capacity()) {
      // In place: one checksum pass over the ring's bytes, no copy.
      const auto* p = reinterpret_cast<const char*>(map.data() + body_off);
      const bool ok = detail::crc32c(p, m.length) == hdr.body_crc;
      advance(tail + slot);
      if (!ok) {
        body_corrupt(hdr, m);
        return Step::progressed;
      }
      ++stats.records;
      last_length = m.length;
      in_place->type = type;
      in_place->pid = m.pid;
      in_place->payload_index = m.payload_index;
      in_place->message_id = m.message_id;
      in_place->body = std::string_view(p, m.length);
      detail::RingViewAccess::set_ring(*in_place, ring_id, tail);
      return Step::message;
    }
    // One copy out of the ring, one checksum pass over the copy (the bytes
    // delivered are the bytes checked).
    std::string body;
    map.copy_out(tail + detail::record_header_size, body, hdr.length);
    const bool body_ok = detail::crc32c(body.data(), body.size()) == hdr.body_crc;
    advance(tail + slot);
    if (!body_ok) {
      body_corrupt(hdr, m);
      return Step::progressed;
    }
    ++stats.records;
    last_length = m.length;
    RingHold hold;
    hold.ring_position = tail;
    return deliver(m, std::move(body), origin_of('r', ring_id, tail), hold, atomic_message(m), out);
  }

  void body_corrupt(const RecordHeader& hdr, const detail::RecordMeta& m) {
    {
      ++stats.corrupt;
      map.header().corrupt.fetch_add(1);
      report(fmt::format("ring '{}': record of pid {} payload index {} failed its checksum "
                         "(torn or corrupt); dropped",
                         map.name(), hdr.pid, hdr.payload_index));
      if (hdr.frag_count > 1) lose_message(m, "a fragment was corrupt");
    }
  }

  // Whether the producer reserved the record's message in one step: its
  // slots fit in the ring (the producer's rule, ring.cpp). Then holding its
  // first fragments can never keep its last ones out.
  bool atomic_message(const detail::RecordMeta& m) const noexcept {
    if (m.frag_count <= 1) return true;
    const std::uint64_t max = std::min<std::uint64_t>(map.capacity() / 4 - detail::record_header_size, 0x7fffffffu);
    const std::uint64_t full = std::uint64_t{m.frag_count} - 1;
    if (full * max > m.total_length) return false;  // inconsistent: do not hold
    const std::uint64_t slots = full * detail::slot_size(max) + detail::slot_size(m.total_length - full * max);
    return slots <= map.capacity();
  }

  // One good record (from the ring or a spill journal).
  Step deliver(const detail::RecordMeta& m, std::string body, std::string origin, const RingHold& hold,
               bool atomic, std::optional<RingMessage>& out) {
    const auto type = static_cast<RecordType>(m.type);
    if (type != RecordType::metrics && type != RecordType::raw_output) {
      ++stats.corrupt;
      report(fmt::format("ring '{}': record of unknown type {} from pid {}; skipped", map.name(),
                         m.type, m.pid));
      return Step::progressed;
    }
    if (m.frag_count <= 1 && m.frag_index == 0) {
      if (m.total_length != m.length) {
        ++stats.corrupt;
        report(fmt::format("ring '{}': record lengths disagree; skipped", map.name()));
        return Step::progressed;
      }
      out = RingMessage{type, m.pid, m.payload_index, m.message_id, std::move(body), std::move(origin), hold};
      return Step::message;
    }
    return fragment(m, type, std::move(body), std::move(origin), hold, atomic, out);
  }

  void drop_partial(std::uint32_t pid, std::uint64_t id, const char* why) {
    auto it = partials.find({pid, id});
    const std::uint64_t index = it != partials.end() ? it->second.payload_index : 0;
    if (it != partials.end()) partials.erase(it);
    ++stats.incomplete;
    report(fmt::format("ring '{}': fragmented message {} of pid {} (payload index {}) is "
                       "incomplete: {}",
                       map.name(), id, pid, index, why));
  }

  // A fragment of the message is lost or out of sequence: count the message
  // incomplete once, whichever of its fragments follow.
  void lose_message(const detail::RecordMeta& m, const char* why) {
    const auto key = std::make_pair(m.pid, m.message_id);
    if (partials.count(key) != 0 || counted.count(key) == 0) drop_partial(m.pid, m.message_id, why);
    if (std::uint64_t{m.frag_index} + 1 >= m.frag_count) {
      counted.erase(key);  // its last fragment: none follow
    } else {
      if (counted.size() >= 4096) counted.clear();  // bounded (at worst a message counts twice)
      counted.insert(key);
    }
  }

  // A fragment of a message: reassembled with its others (ring_consumer.cpp).
  Step fragment(const detail::RecordMeta& m, RecordType type, std::string body, std::string origin,
                const RingHold& hold, bool atomic, std::optional<RingMessage>& out);

  std::optional<RingMessage> take_spilled() {
    if (spilled.empty()) return std::nullopt;
    auto [m, file] = std::move(spilled.front());
    spilled.pop_front();
    --spills[file].waiting;
    ++stats.spilled;
    return std::move(m);
  }

  // After raising waiters: whether step() could make progress now (then
  // the consumer must not sleep). Pairs with the producer's fence between
  // its COMT store and its waiters load.
  bool can_step() const noexcept {
    const RingHeader& h = map.header();
    if (!spilled.empty()) return true;
    if (h.head.load(std::memory_order_seq_cst) == read_pos) return false;
    return map.record_at(read_pos).state.load(std::memory_order_seq_cst) != detail::slot_reserved;
  }

  // The next message: in `out`, or (in_place given) in `*in_place` when it
  // can be read in place. False on timeout.
  // `streaming`: a later call of one read(): return (false) at a short
  // batch rather than pausing for it.
  bool next(std::chrono::milliseconds timeout, std::optional<RingMessage>& out, RingView* in_place,
            bool streaming = false) {
    const auto timeout_ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, timeout.count())) * 1'000'000u;
    RingHeader& h = map.header();
    if (options.auto_commit && !spills.empty()) remove_spills({});
    std::uint64_t start = 0;  // when this call first found nothing to read (read lazily)
    bool take_short = timeout_ns == 0 && !streaming;  // a plain poll takes what there is
    for (;;) {
      if (spilled.empty() && more_spills) import_spill();  // the next journal, before the ring
      if ((out = take_spilled())) {
        ++stats.messages;
        stats.bytes += out->body.size();
        return true;
      }
      const Step s = step(out, in_place, take_short);
      if (s == Step::message) {
        ++stats.messages;
        stats.bytes += out ? out->body.size() : in_place->body.size();
        return true;
      }
      if (s == Step::progressed) continue;
      if (s == Step::short_batch) {
        if (streaming) return false;
        pause_for(settle_ns);
        take_short = true;
        continue;
      }
      const std::uint64_t now = detail::monotonic_ns();
      if (start == 0) start = now;
      if (s == Step::empty) {
        drop_stuck_partials();
        // Read to the end: look for journals producers spilled meanwhile.
        if (now - last_spill_scan_ns >= 200'000'000u) {
          import_spill();
          if (!spilled.empty()) continue;
        }
      }
      const std::uint64_t waited = now - start;
      if (waited >= timeout_ns) return false;
      if (waited < spin_ns) {
        // Poll first: the next record usually comes within microseconds.
        // The first wait lets a streaming producer write a batch (above);
        // after it, yield between polls, so a producer sharing this CPU (a
        // busy machine) runs instead of the poll.
        if (waited == 0) {
          if (last_length < settle_below) pause_for(settle_ns);
          take_short = true;
        } else {
          ::sched_yield();
        }
        continue;
      }
      // Sleep until a commit (or, while a live producer holds the record at
      // the read position, at most 5 ms before re-checking it for
      // abandonment; or, at most 200 ms, before looking for spill journals
      // again). Producers wake the futex only while waiters != 0.
      std::uint64_t wait = std::min<std::uint64_t>(timeout_ns - waited, 200'000'000u);
      if (s == Step::blocked) wait = std::min<std::uint64_t>(wait, 5'000'000u);
      h.waiters.fetch_add(1, std::memory_order_seq_cst);
      const std::uint32_t seq = h.commit_seq.load(std::memory_order_seq_cst);
      if (!can_step()) detail::futex_wait(h.commit_seq, seq, wait);
      h.waiters.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
};


}  // namespace payloadrun
