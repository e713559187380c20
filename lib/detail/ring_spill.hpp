// Spill journals (docs/ring-format.md, "Spill journals"): where a producer
// puts records the ring has had no room for, and where the consumer finds
// them again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "detail/ring_layout.hpp"

namespace payloadrun::detail {

inline constexpr std::uint32_t spill_magic = 0x50535250;  // "PRSP"
inline constexpr std::uint32_t spill_version = 1;

/// The 64-byte header at offset 0 of a spill file; records follow as in the
/// ring (64-byte RecordHeader, body, padding to 64), state COMT.
struct SpillHeader {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint64_t spill_id;  // random: names this file's records in sidecars
  std::uint64_t ring_id;   // the ring it was meant for
  std::uint32_t pid;       // the producer
  std::uint32_t reserved0;
  std::uint64_t created_ns;  // CLOCK_REALTIME
  std::uint8_t reserved1[20];
  std::uint32_t header_crc;  // CRC32C of bytes [0, 60)
};
static_assert(sizeof(SpillHeader) == 64);

/// One record to spill (CRCs are computed here).
struct SpillRecord {
  RecordMeta meta;
  const char* body = nullptr;
};

/// The directory spills of `ring_name` live in (`dir`, or /dev/shm).
std::string spill_directory(const std::string& dir);

/// Write `records` to a new spill file of `ring_name` in `dir`, atomically
/// (written as NAME.spill.*.tmp, fdatasync'd, renamed). Returns an empty
/// string on success, else what went wrong (file and errno).
std::string write_spill(const std::string& dir, const std::string& ring_name, std::uint64_t ring_id,
                        const std::vector<SpillRecord>& records);

/// Spill files of `ring_name` ready for import, oldest first: every
/// finished file, and the .tmp file of a producer that died while writing
/// (a writer holds an flock on its .tmp: one that can be locked is dead).
std::vector<std::string> list_spills(const std::string& dir, const std::string& ring_name);

/// A spill file read back.
struct SpillContents {
  std::uint64_t spill_id = 0;
  struct Record {
    RecordMeta meta;
    std::string body;
    std::uint64_t offset = 0;  // of its header in the file
  };
  std::vector<Record> records;
  std::vector<std::string> problems;  // torn tail, bad checksums, unreadable file
  /// False: the file could not be read at all (open, read, size, header);
  /// it must stay where it is for a later consumer.
  bool readable = false;
  /// A finished journal with a damaged record (not a .tmp of a dead
  /// producer): keep it for a human to look at.
  bool damaged = false;
};

/// Largest spill file a consumer reads (a producer writes at most
/// spill_chunk_bytes of records per file).
inline constexpr std::uint64_t max_spill_file = std::uint64_t{1} << 30;
inline constexpr std::uint64_t spill_chunk_bytes = std::uint64_t{64} << 20;

/// Read every whole, checksummed record of a spill file (never throws for
/// its contents; what could not be read is in `problems`).
SpillContents read_spill(const std::string& path);

}  // namespace payloadrun::detail
