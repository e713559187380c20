// RAII owner of a file descriptor.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <utility>

namespace payloadrun::detail {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Give up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

/// Grow this process's fd table now (the kernel never shrinks it) so that
/// it holds at least `fds` descriptors, capped at RLIMIT_NOFILE; `source_fd`
/// is any open fd to duplicate (and close again). Failures are logged at
/// debug and otherwise ignored: the table then grows as fds are made.
void reserve_fd_table(int source_fd, std::size_t fds) noexcept;

}  // namespace payloadrun::detail
