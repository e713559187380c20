// Spill journals: writing (producer side) and finding and reading them back
// (consumer side). Format: docs/ring-format.md, "Spill journals".
#include "detail/ring_spill.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "detail/fd.hpp"
#include "detail/errno_text.hpp"

namespace payloadrun::detail {
namespace {

std::atomic<std::uint32_t> spill_sequence{0};

std::string plain_name(const std::string& ring_name) {
  return !ring_name.empty() && ring_name[0] == '/' ? ring_name.substr(1) : ring_name;
}

std::uint32_t spill_header_crc(const SpillHeader& h) {
  return crc32c(&h, offsetof(SpillHeader, header_crc));
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// "<20 digits>.<digits>.<digits>" with an optional ".tmp": a journal's
// name after "NAME.spill." (so ring "a" never takes ring "a.spill.x"'s).
bool well_formed(std::string_view rest) {
  if (rest.ends_with(".tmp")) rest.remove_suffix(4);
  int fields = 0;
  std::size_t digits = 0;
  for (char ch : rest) {
    if (ch == '.') {
      if (digits == 0) return false;
      ++fields;
      digits = 0;
    } else if (ch >= '0' && ch <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  return fields == 2 && digits != 0 && rest.find('.') == 20;
}

// A .tmp whose writer is gone: its flock can be taken.
bool abandoned_tmp(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  return fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
}

}  // namespace

std::string spill_directory(const std::string& dir) { return dir.empty() ? std::string("/dev/shm") : dir; }

std::string write_spill(const std::string& dir, const std::string& ring_name, std::uint64_t ring_id,
                        const std::vector<SpillRecord>& records) {
  const std::string d = spill_directory(dir);
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  const std::uint64_t now =
      static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
  const std::string final_path =
      fmt::format("{}/{}.spill.{:020}.{}.{}", d, plain_name(ring_name), now, ::getpid(),
                  spill_sequence.fetch_add(1, std::memory_order_relaxed));
  const std::string tmp_path = final_path + ".tmp";
  UniqueFd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return fmt::format("cannot create spill file {}: {}", tmp_path, errno_text(errno));
  ::flock(fd.get(), LOCK_EX);  // "being written": a consumer leaves a locked .tmp alone
  const auto failed = [&](const char* what) {
    const int err = errno;
    ::unlink(tmp_path.c_str());
    return fmt::format("cannot {} spill file {}: {}", what, tmp_path, errno_text(err));
  };
  // Reserve the space first: a full disk fails here, before anything moves.
  std::uint64_t total = sizeof(SpillHeader);
  for (const auto& r : records) total += slot_size(r.meta.length);
  if (const int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(total)); err != 0) {
    errno = err;
    return failed("reserve space for");
  }
  SpillHeader h{};
  h.magic = spill_magic;
  h.version = spill_version;
  h.spill_id = random_u64();
  h.ring_id = ring_id;
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.created_ns = now;
  h.header_crc = spill_header_crc(h);
  std::string buf(reinterpret_cast<const char*>(&h), sizeof h);
  const auto flush = [&] {
    const bool ok = write_all(fd.get(), buf.data(), buf.size());
    buf.clear();
    return ok;
  };
  for (const auto& r : records) {
    // The header as the ring's producer composes it (header_words), committed.
    HeaderWords hw = header_words(slot_committed, static_cast<RecordType>(r.meta.type), r.meta.pid,
                                  r.meta.payload_index, r.meta.length, r.meta.reserve_ns, r.meta.message_id,
                                  r.meta.frag_index, r.meta.frag_count, r.meta.total_length);
    hw.w[3] |= std::uint64_t{crc32c(r.body, r.meta.length)} << 32;  // body_crc
    hw.w[7] |= std::uint64_t{header_crc(hw)} << 32;                 // header_crc
    buf.append(reinterpret_cast<const char*>(hw.w), sizeof hw.w);
    buf.append(r.body, r.meta.length);
    buf.append(static_cast<std::size_t>(slot_size(r.meta.length) - record_header_size - r.meta.length), '\0');
    if (buf.size() >= (1u << 20) && !flush()) return failed("write");
  }
  if (!flush()) return failed("write");
  if (::fdatasync(fd.get()) != 0) return failed("sync");
  if (::close(fd.release()) != 0) return failed("close");
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) return failed("rename");
  return {};
}

std::vector<std::string> list_spills(const std::string& dir, const std::string& ring_name) {
  const std::string d = spill_directory(dir);
  const std::string prefix = plain_name(ring_name) + ".spill.";
  std::vector<std::string> names;
  DIR* dp = ::opendir(d.c_str());
  if (dp == nullptr) return names;
  while (const dirent* e = ::readdir(dp)) {
    std::string_view n = e->d_name;
    if (!n.starts_with(prefix)) continue;
    const std::string_view rest = n.substr(prefix.size());
    if (!well_formed(rest)) continue;
    // A .tmp is still being written, unless its producer is gone (then its
    // whole records are imported; a torn one at its end is reported).
    if (rest.ends_with(".tmp") && !abandoned_tmp(d + "/" + std::string(n))) continue;
    names.emplace_back(n);
  }
  ::closedir(dp);
  // Zero-padded creation time first: name order is creation order.
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  paths.reserve(names.size());
  for (auto& n : names) paths.push_back(d + "/" + n);
  return paths;
}

SpillContents read_spill(const std::string& path) {
  SpillContents out;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    out.problems.push_back(fmt::format("spill file {} cannot be read ({}); left in place", path,
                                       fd ? "not a regular file" : errno_text(errno)));
    return out;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_spill_file) {
    out.problems.push_back(fmt::format("spill file {} is {} bytes, more than a journal can be ({}); "
                                       "left in place",
                                       path, st.st_size, max_spill_file));
    return out;
  }
  std::string data;
  data.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t r = ::read(fd.get(), data.data() + got, data.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      out.problems.push_back(fmt::format("spill file {} cannot be read ({}); left in place", path,
                                         errno_text(errno)));
      return out;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  data.resize(got);
  SpillHeader h{};
  if (data.size() < sizeof h) {
    out.problems.push_back(fmt::format("spill file {} is shorter than its header ({} bytes)", path, data.size()));
    return out;
  }
  std::memcpy(&h, data.data(), sizeof h);
  if (h.magic != spill_magic || h.version != spill_version || h.header_crc != spill_header_crc(h)) {
    out.problems.push_back(fmt::format("spill file {} has no valid header (magic {:#x}, version {}); "
                                       "left in place",
                                       path, h.magic, h.version));
    return out;
  }
  out.spill_id = h.spill_id;
  out.readable = true;
  const bool tmp = path.ends_with(".tmp");
  std::size_t off = sizeof h;
  while (off + record_header_size <= data.size()) {
    RecordHeader rh;
    std::memcpy(static_cast<void*>(&rh), data.data() + off, sizeof rh);
    if (rh.magic == 0 && rh.header_crc == 0) break;  // reserved, never written (fallocate'd tail)
    const std::uint64_t slot = slot_size(rh.length);
    if (rh.magic != record_magic || rh.header_crc != header_crc(rh) || rh.version != record_version ||
        off + record_header_size + rh.length > data.size()) {
      out.problems.push_back(fmt::format("spill file {}: record at offset {} is torn or corrupt; "
                                         "{} bytes after it are not imported",
                                         path, off, data.size() - off));
      out.damaged = !tmp;  // a dead writer's torn end is expected; a finished file's is not
      break;
    }
    std::string body(data.data() + off + record_header_size, rh.length);
    if (crc32c(body.data(), body.size()) != rh.body_crc) {
      out.problems.push_back(fmt::format("spill file {}: record at offset {} (pid {}, payload index "
                                         "{}) failed its body checksum; dropped",
                                         path, off, rh.pid, rh.payload_index));
      out.damaged = true;
    } else {
      out.records.push_back({meta_of(rh), std::move(body), off});
    }
    off += slot;
  }
  return out;
}

}  // namespace payloadrun::detail
