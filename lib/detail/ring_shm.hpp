// A mapping of a named ring: created race-free by whichever side comes
// first (O_CREAT|O_EXCL, then initialised under RingHeader::state), opened
// by the others once its magic is published.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "detail/fd.hpp"
#include "detail/ring_layout.hpp"
#include "payloadrun/ring_producer.hpp"

namespace payloadrun::detail {

class RingMap {
 public:
  RingMap(const std::string& name, const RingOptions& options);
  ~RingMap();
  RingMap(const RingMap&) = delete;
  RingMap& operator=(const RingMap&) = delete;

  RingHeader& header() const noexcept { return *header_; }
  unsigned char* data() const noexcept { return data_; }
  std::uint64_t capacity() const noexcept { return capacity_; }
  std::uint64_t mask() const noexcept { return capacity_ - 1; }
  int fd() const noexcept { return fd_.get(); }
  const std::string& name() const noexcept { return name_; }

  RecordHeader& record_at(std::uint64_t pos) const noexcept {
    return *reinterpret_cast<RecordHeader*>(data_ + (pos & mask()));
  }
  /// Copy `n` bytes into the ring at absolute position `pos` (wrapping);
  /// returns their CRC32C, computed from `src` as it is copied (crc32c_copy).
  std::uint32_t copy_in_crc(std::uint64_t pos, const char* src, std::size_t n) const noexcept;
  /// Copy `n` bytes out of the ring at absolute position `pos` (wrapping).
  void copy_out(std::uint64_t pos, char* dst, std::size_t n) const noexcept;
  /// Replace `dst` with `n` ring bytes at `pos` (wrapping); one copy.
  void copy_out(std::uint64_t pos, std::string& dst, std::size_t n) const;

 private:
  std::string name_;
  UniqueFd fd_;
  void* base_ = nullptr;
  std::size_t map_size_ = 0;
  RingHeader* header_ = nullptr;
  unsigned char* data_ = nullptr;
  std::uint64_t capacity_ = 0;
};

/// "/NAME" for shm_open; throws Error(Errc::ring) for an unusable name.
std::string shm_path(const std::string& name);

}  // namespace payloadrun::detail
