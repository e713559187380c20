// The shared-memory ring's binary layout (docs/ring-format.md) and the
// primitives both sides use: CRC32C, futex, monotonic clock, pid liveness.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "payloadrun/ring_producer.hpp"  // RecordType

namespace payloadrun::detail {

inline constexpr std::uint32_t ring_magic = 0x474e5252;    // "RRNG" little-endian
// Version 2: producers bump commit_seq and FUTEX_WAKE only while waiters
// != 0 (the consumer re-reads the slot after raising waiters). Records
// (here and in spill journals) keep their version-1 layout.
inline constexpr std::uint32_t ring_version = 2;
inline constexpr std::uint16_t record_version = 1;
inline constexpr std::uint32_t record_magic = 0x43525250;  // "PRRC"
inline constexpr std::uint32_t slot_reserved = 0x56534552;  // "RESV"
inline constexpr std::uint32_t slot_committed = 0x544d4f43;  // "COMT"
inline constexpr std::size_t ring_header_size = 4096;
inline constexpr std::size_t record_header_size = 64;
inline constexpr std::size_t record_align = 64;
inline constexpr std::size_t min_ring_capacity = 4096;
inline constexpr std::size_t max_ring_capacity = std::size_t{1} << 40;

enum class RingState : std::uint32_t { uninitialised = 0, initialising = 1, ready = 2 };

/// The 4096-byte header page at offset 0 of the shm object.
struct RingHeader {
  std::atomic<std::uint32_t> magic;    // ring_magic, stored (release) last at creation
  std::uint32_t version;               // ring_version
  std::atomic<std::uint32_t> state;    // RingState
  std::uint32_t header_size;           // ring_header_size
  std::uint64_t capacity;              // bytes of the data area (a power of two)
  alignas(64) pthread_mutex_t reserve_lock;  // robust, process-shared
  alignas(64) std::atomic<std::uint64_t> head;  // next reservation position
  alignas(64) std::atomic<std::uint64_t> tail;  // consumer's read position
  std::atomic<std::uint64_t> abandoned;          // reservations skipped (cumulative)
  std::atomic<std::uint64_t> corrupt;            // records failing their checksum
  alignas(64) std::atomic<std::uint32_t> commit_seq;  // futex word: +1 per commit that found waiters
  std::atomic<std::uint32_t> waiters;                 // consumers sleeping on commit_seq
  std::atomic<std::uint32_t> consumer_pid;            // informational
  std::uint64_t ring_id;  // random at creation: names this ring's records in sidecars
};
static_assert(sizeof(RingHeader) <= ring_header_size);
// Documented offsets (docs/ring-format.md): the format, not an accident.
static_assert(offsetof(RingHeader, reserve_lock) == 64 && offsetof(RingHeader, head) == 128 &&
              offsetof(RingHeader, tail) == 192 && offsetof(RingHeader, commit_seq) == 256 &&
              offsetof(RingHeader, consumer_pid) == 264 && offsetof(RingHeader, ring_id) == 272);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

/// The 64-byte header before every record body in the data area.
struct RecordHeader {
  std::atomic<std::uint32_t> state;  // 0 / slot_reserved / slot_committed
  std::uint32_t magic;               // record_magic
  std::uint16_t version;             // record_version
  std::uint16_t type;                // RecordType
  std::uint32_t pid;                 // producer pid
  std::uint64_t payload_index;
  std::uint32_t length;              // body bytes in this record (fragment)
  std::uint32_t body_crc;            // CRC32C of the body bytes
  std::uint64_t reserve_ns;          // CLOCK_MONOTONIC at reservation
  std::uint64_t message_id;          // unique per producer process
  std::uint32_t frag_index;
  std::uint32_t frag_count;
  std::uint32_t total_length;        // bytes of the whole message
  std::uint32_t header_crc;          // CRC32C of bytes [4, 60)
};
static_assert(sizeof(RecordHeader) == record_header_size);
static_assert(offsetof(RecordHeader, payload_index) == 16 && offsetof(RecordHeader, reserve_ns) == 32 &&
              offsetof(RecordHeader, header_crc) == 60);

/// A record header's fields as a plain value (RecordHeader holds an atomic).
struct RecordMeta {
  std::uint16_t type = 0;
  std::uint32_t pid = 0;
  std::uint64_t payload_index = 0;
  std::uint32_t length = 0;
  std::uint64_t reserve_ns = 0;
  std::uint64_t message_id = 0;
  std::uint32_t frag_index = 0;
  std::uint32_t frag_count = 1;
  std::uint32_t total_length = 0;
};

inline RecordMeta meta_of(const RecordHeader& h) noexcept {
  return {h.type,       h.pid,        h.payload_index, h.length,      h.reserve_ns,
          h.message_id, h.frag_index, h.frag_count,    h.total_length};
}

/// Slot bytes a record of `length` body bytes occupies.
constexpr std::uint64_t slot_size(std::uint64_t length) noexcept {
  return (record_header_size + length + record_align - 1) / record_align * record_align;
}

/// CRC-32C of `n` bytes, continuing from `crc` (a previous result).
/// Intel ISA-L's crc32_iscsi from 256 bytes on where the build has it
/// (PAYLOADRUN_HAVE_ISAL), else crc32c_builtin.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;
/// Copies `n` bytes from `src` to `dst` and returns their CRC32C (as crc32c).
std::uint32_t crc32c_copy(void* dst, const void* src, std::size_t n, std::uint32_t crc = 0) noexcept;
/// The library's own code behind both when ISA-L is not used: the SSE4.2
/// crc32 instruction (three interleaved chains for long buffers; the copy
/// in the same pass), a table without it. Tested against crc32c.
std::uint32_t crc32c_builtin(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;
std::uint32_t crc32c_copy_builtin(void* dst, const void* src, std::size_t n, std::uint32_t crc = 0) noexcept;
std::uint32_t header_crc(const RecordHeader& h) noexcept;
/// A record header as its eight little-endian 64-bit words (state and magic,
/// version type and pid, payload_index, length and body_crc, reserve_ns,
/// message_id, frag_index and frag_count, total_length and header_crc).
struct HeaderWords {
  std::uint64_t w[8];
};
static_assert(sizeof(HeaderWords) == record_header_size);
/// The words of a header with these fields, body_crc and header_crc 0
/// (the producer sets them at commit): built in registers, so a producer
/// can store them a word at a time and checksum them without reading back.
constexpr HeaderWords header_words(std::uint32_t state, RecordType type, std::uint32_t pid,
                                   std::uint64_t payload_index, std::uint32_t length,
                                   std::uint64_t reserve_ns, std::uint64_t message_id,
                                   std::uint32_t frag_index, std::uint32_t frag_count,
                                   std::uint32_t total_length) noexcept {
  HeaderWords h{};
  h.w[0] = state | std::uint64_t{record_magic} << 32;
  h.w[1] = record_version | std::uint64_t{static_cast<std::uint16_t>(type)} << 16 | std::uint64_t{pid} << 32;
  h.w[2] = payload_index;
  h.w[3] = length;  // body_crc: bits 32-63
  h.w[4] = reserve_ns;
  h.w[5] = message_id;
  h.w[6] = frag_index | std::uint64_t{frag_count} << 32;
  h.w[7] = total_length;  // header_crc: bits 32-63
  return h;
}
/// header_crc of the header these words hold, from the words themselves.
std::uint32_t header_crc(const HeaderWords& h) noexcept;

std::uint64_t monotonic_ns() noexcept;
/// CLOCK_MONOTONIC_COARSE (a few ms resolution, never ahead of
/// monotonic_ns): record reservation times, compared only with it.
std::uint64_t coarse_ns() noexcept;
/// A random non-zero 64-bit value (getrandom; a clock mix if that fails).
std::uint64_t random_u64() noexcept;
/// This process's pid, cached (getpid is a system call); a child made by
/// fork() refreshes it (pthread_atfork).
std::uint32_t self_pid() noexcept;
/// False only when `pid` certainly does not exist (ESRCH).
bool pid_alive(std::uint32_t pid) noexcept;

/// Shared (not FUTEX_PRIVATE) futex on a word of the mapping.
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;
/// Sleep while `word == expected`, at most `timeout_ns`.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::uint64_t timeout_ns) noexcept;

}  // namespace payloadrun::detail
