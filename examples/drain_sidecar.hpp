// The sidecar file payloadrun-drain appends to: opened and locked (one drain
// per sidecar), repaired after a crash (a torn last line is cut off), read
// back for the origins of the lines it already holds, and written with every
// write checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace drain {

class Sidecar {
 public:
  /// Open `path` for appending (created 0644 if missing). Throws
  /// std::runtime_error naming the file and the errno.
  explicit Sidecar(std::string path);
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  /// A regular file (recovery and deduplication apply only to those).
  bool regular() const noexcept { return regular_; }

  /// Cut off a torn last line (a line without its newline, left by a drain
  /// killed mid-write). Returns the bytes removed.
  std::uint64_t repair();

  /// Origins ("record" fields) of the lines present whose message may be
  /// delivered again: spill origins, and ring origins of ring `ring_id` at
  /// or after `committed`.
  std::unordered_set<std::string> redeliverable(std::uint64_t ring_id, std::uint64_t committed) const;

  /// Queue one line (a newline is added).
  void append(std::string_view line);
  bool has_pending() const noexcept { return !buffer_.empty(); }
  std::size_t pending_bytes() const noexcept { return buffer_.size(); }

  /// write(2) everything queued (and fdatasync with `sync`). False on
  /// failure: error() says what; lines not written stay queued.
  bool flush(bool sync);
  const std::string& error() const noexcept { return error_; }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool regular_ = false;
  std::string buffer_;
  std::string error_;
};

/// The origins in one sidecar line (the value of its last "record" field,
/// space-separated), or empty.
std::string_view origin_of_line(std::string_view line);

}  // namespace drain
