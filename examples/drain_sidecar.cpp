#include "drain_sidecar.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "detail/errno_text.hpp"

namespace drain {
namespace {

using payloadrun::detail::errno_text;

}  // namespace

std::string_view origin_of_line(std::string_view line) {
  constexpr std::string_view key = "\"record\":\"";
  const auto at = line.rfind(key);
  if (at == std::string_view::npos) return {};
  const auto start = at + key.size();
  const auto end = line.find('"', start);
  if (end == std::string_view::npos) return {};
  return line.substr(start, end - start);
}

Sidecar::Sidecar(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {} for appending: {}", path_, errno_text(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error(fmt::format("cannot stat {}: {}", path_, errno_text(err)));
  }
  regular_ = S_ISREG(st.st_mode);
  if (regular_ && ::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error(
        err == EWOULDBLOCK
            ? fmt::format("{} is being written by another payloadrun-drain; give each drain its own sidecar", path_)
            : fmt::format("cannot lock {}: {}", path_, errno_text(err)));
  }
}

Sidecar::~Sidecar() {
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t Sidecar::repair() {
  if (!regular_) return 0;
  const int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path_, errno_text(errno)));
  struct stat st {};
  ::fstat(rfd, &st);
  off_t end = st.st_size;
  off_t keep = 0;
  // Walk back a block at a time to the last newline.
  char block[65536];
  bool found = false;
  bool last_is_newline = false;
  for (off_t pos = end; pos > 0 && !found;) {
    const off_t start = pos > static_cast<off_t>(sizeof block) ? pos - static_cast<off_t>(sizeof block) : 0;
    const ssize_t n = ::pread(rfd, block, static_cast<std::size_t>(pos - start), start);
    if (n <= 0) break;
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (block[i] == '\n') {
        keep = start + i + 1;
        found = true;
        if (keep == end) last_is_newline = true;
        break;
      }
    }
    pos = start;
  }
  ::close(rfd);
  if (end == 0 || last_is_newline) return 0;
  if (::ftruncate(fd_, keep) != 0) {
    throw std::runtime_error(fmt::format("cannot cut the torn last line off {}: {}", path_, errno_text(errno)));
  }
  return static_cast<std::uint64_t>(end - keep);
}

std::unordered_set<std::string> Sidecar::redeliverable(std::uint64_t ring_id, std::uint64_t committed) const {
  std::unordered_set<std::string> out;
  if (!regular_) return out;
  const int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path_, errno_text(errno)));
  const std::string ring_prefix = fmt::format("r:{:016x}:", ring_id);
  std::string carry;
  char block[1 << 16];
  const auto take_one = [&](std::string_view o) {
    if (o.starts_with("s:")) {
      out.emplace(o);
    } else if (o.starts_with(ring_prefix) && ring_id != 0) {  // (0: a ring without an id)
      std::uint64_t pos = 0;
      const std::string_view digits = o.substr(ring_prefix.size());
      std::from_chars(digits.data(), digits.data() + digits.size(), pos);
      if (pos >= committed) out.emplace(o);
    }
  };
  const auto take = [&](std::string_view line) {
    std::string_view origins = origin_of_line(line);  // space-separated
    while (!origins.empty()) {
      const auto sp = origins.find(' ');
      take_one(origins.substr(0, sp));
      if (sp == std::string_view::npos) break;
      origins.remove_prefix(sp + 1);
    }
  };
  for (;;) {
    const ssize_t n = ::read(rfd, block, sizeof block);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::string_view chunk(block, static_cast<std::size_t>(n));
    for (;;) {
      const auto nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        carry.append(chunk);
        break;
      }
      if (carry.empty()) {
        take(chunk.substr(0, nl));
      } else {
        carry.append(chunk.substr(0, nl));
        take(carry);
        carry.clear();
      }
      chunk.remove_prefix(nl + 1);
    }
  }
  ::close(rfd);
  return out;
}

void Sidecar::append(std::string_view line) {
  buffer_.append(line);
  buffer_.push_back('\n');
}

bool Sidecar::flush(bool sync) {
  std::size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t w = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      buffer_.erase(0, done);
      error_ = fmt::format("writing {} failed: {}", path_, errno_text(err));
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  buffer_.clear();
  if (sync && regular_ && ::fdatasync(fd_) != 0) {
    error_ = fmt::format("syncing {} failed: {}", path_, errno_text(errno));
    return false;
  }
  return true;
}

}  // namespace drain
