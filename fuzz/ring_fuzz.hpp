// The input format of fuzz_ring_decode, shared by the target and its seed
// generator (ring_seeds.cpp). Integers are little-endian; a short input
// reads as zeros. The low two bits of the first byte pick the mode:
//
//  0 body:    the rest is a record body, decoded as both a metrics and a
//             raw-output body and fed to a Drain.
//  1 image:   u64 tail, u64 head, then the data area's bytes (capacity,
//             zero-filled). With flag fix_crcs (bit 4 of the first byte),
//             every 64-byte slot holding the record magic gets correct
//             CRCs first, so the fuzzer gets past the checksums.
//  2 records: u64 start position (aligned down to 64), then records laid
//             out as a producer does, while they fit:
//             u8 flags, u8 type, u32 pid, u64 payload_index, u64 message_id,
//             u32 frag_index, u32 frag_count, u32 total_length,
//             u32 length, then `length` body bytes.
//  3 header:  u8 size (the shm object is 4096 + capacity - 64 * (size & 127)
//             bytes), the 4096-byte header page, then data-area bytes: a
//             second ring whose header is untrusted too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ring_fuzz {

enum Mode : std::uint8_t { body_mode = 0, image_mode = 1, records_mode = 2, header_mode = 3 };
inline constexpr std::uint8_t fix_crcs = 0x10;

/// Data-area bytes of the rings the target uses.
inline constexpr std::size_t capacity = 8192;

/// Record flags in records mode.
inline constexpr std::uint8_t reserved_only = 0x01;   // left RESV, never committed
inline constexpr std::uint8_t bad_header_crc = 0x02;
inline constexpr std::uint8_t bad_body_crc = 0x04;
inline constexpr std::uint8_t bad_magic = 0x08;
inline constexpr std::uint8_t own_pid = 0x10;         // the pid field is replaced by ours (alive)

struct RecordSpec {
  std::uint8_t flags = 0;
  std::uint8_t type = 1;
  std::uint32_t pid = 0;
  std::uint64_t payload_index = 0;
  std::uint64_t message_id = 0;
  std::uint32_t frag_index = 0;
  std::uint32_t frag_count = 1;
  std::uint32_t total_length = 0;
  std::string body;
};

inline void put(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

/// A records-mode input.
inline std::string encode_records(std::uint64_t start, const std::vector<RecordSpec>& records) {
  std::string out(1, static_cast<char>(records_mode));
  put(out, start, 8);
  for (const RecordSpec& r : records) {
    put(out, r.flags, 1);
    put(out, r.type, 1);
    put(out, r.pid, 4);
    put(out, r.payload_index, 8);
    put(out, r.message_id, 8);
    put(out, r.frag_index, 4);
    put(out, r.frag_count, 4);
    put(out, r.total_length, 4);
    put(out, r.body.size(), 4);
    out += r.body;
  }
  return out;
}

/// Write the seed corpus (every mode, from the real encoder and producer)
/// into `dir`. Run by fuzz_ring_decode when PAYLOADRUN_FUZZ_WRITE_SEEDS is set.
void write_ring_seeds(const std::string& dir);

}  // namespace ring_fuzz
