// Ring mapping (create/open), CRC32C, futex and clock helpers.
#include "detail/ring_shm.hpp"
#include "detail/errno_text.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

#include <fmt/format.h>
#if PAYLOADRUN_HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "payloadrun/error.hpp"

namespace payloadrun::detail {
namespace {

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto crc_table = make_crc_table();

std::uint64_t round_capacity(std::size_t want) {
  std::uint64_t c = min_ring_capacity;
  while (c < want && c < max_ring_capacity) c <<= 1;
  return c;
}

[[noreturn]] void fail(const std::string& name, const std::string& what, int err) {
  throw Error(Errc::ring, fmt::format("ring '{}': {}: {}", name, what, errno_text(err)), err);
}

}  // namespace

std::uint64_t random_u64() noexcept {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v) || v == 0) {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    v = (static_cast<std::uint64_t>(ts.tv_sec) << 30) ^ static_cast<std::uint64_t>(ts.tv_nsec) ^
        (static_cast<std::uint64_t>(::getpid()) << 44) ^ monotonic_ns();
  }
  return v == 0 ? 1 : v;
}

namespace {

std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t crc) noexcept {
  for (std::size_t i = 0; i < n; ++i) crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes the same CRC-32C, 8 bytes a step.
// Copy: each word is also stored at `out` (advanced), in the same pass.
template <bool Copy = false>
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                              std::uint32_t crc,
                                                              unsigned char* out = nullptr) noexcept {
  std::uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (Copy) {
      std::memcpy(out, &v, 8);
      out += 8;
    }
    c = __builtin_ia32_crc32di(c, v);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; --n, ++p) {
    if constexpr (Copy) *out++ = *p;
    c32 = __builtin_ia32_crc32qi(c32, *p);
  }
  return c32;
}
const bool have_sse42 = __builtin_cpu_supports("sse4.2");

// Long buffers: three interleaved crc32 chains (the instruction's latency is
// three times its issue interval), joined by shifting the earlier chains'
// registers over the later blocks' lengths (CRC is linear over GF(2)).
constexpr std::size_t crc_block = 1024;  // bytes per chain per step

// reg(zeros(n), x): the raw register after n zero bytes from x.
__attribute__((target("sse4.2"))) std::uint32_t crc_zeros(std::uint32_t x, std::size_t n) noexcept {
  std::uint64_t c = x;
  for (std::size_t i = 0; i < n; i += 8) c = __builtin_ia32_crc32di(c, 0);
  return static_cast<std::uint32_t>(c);
}

// The linear map x -> reg(zeros(n), x) as four byte tables.
struct CrcShift {
  std::uint32_t t[4][256];
  explicit CrcShift(std::size_t n) noexcept {
    std::uint32_t basis[32];
    for (int i = 0; i < 32; ++i) basis[i] = crc_zeros(std::uint32_t{1} << i, n);
    for (int k = 0; k < 4; ++k) {
      for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t v = 0;
        for (int i = 0; i < 8; ++i) {
          if ((b >> i) & 1u) v ^= basis[8 * k + i];
        }
        t[k][b] = v;
      }
    }
  }
  std::uint32_t operator()(std::uint32_t x) const noexcept {
    return t[0][x & 0xffu] ^ t[1][(x >> 8) & 0xffu] ^ t[2][(x >> 16) & 0xffu] ^ t[3][x >> 24];
  }
};

// Whole steps of three `block`-byte chains, joined by the two shifts.
template <std::size_t block, bool Copy>
__attribute__((target("sse4.2"))) std::uint32_t crc_3way_steps(const unsigned char*& p, std::size_t& n,
                                                                std::uint32_t crc, const CrcShift& shift1,
                                                                const CrcShift& shift2,
                                                                unsigned char*& out) noexcept {
  while (n >= 3 * block) {
    std::uint64_t a = crc, b = 0, c = 0;
    for (std::size_t i = 0; i < block; i += 8) {
      std::uint64_t va, vb, vc;
      std::memcpy(&va, p + i, 8);
      std::memcpy(&vb, p + block + i, 8);
      std::memcpy(&vc, p + 2 * block + i, 8);
      if constexpr (Copy) {
        std::memcpy(out + i, &va, 8);
        std::memcpy(out + block + i, &vb, 8);
        std::memcpy(out + 2 * block + i, &vc, 8);
      }
      a = __builtin_ia32_crc32di(a, va);
      b = __builtin_ia32_crc32di(b, vb);
      c = __builtin_ia32_crc32di(c, vc);
    }
    crc = shift2(static_cast<std::uint32_t>(a)) ^ shift1(static_cast<std::uint32_t>(b)) ^
          static_cast<std::uint32_t>(c);
    p += 3 * block;
    n -= 3 * block;
    if constexpr (Copy) out += 3 * block;
  }
  return crc;
}

constexpr std::size_t crc_small_block = 64;  // records of a few hundred bytes

// Built on first use (with the instruction; never on a CPU without it).
struct CrcShifts {
  CrcShift shift1{crc_block}, shift2{2 * crc_block}, small1{crc_small_block}, small2{2 * crc_small_block};
};
const CrcShifts& crc_shifts() noexcept {
  static const CrcShifts t;
  return t;
}

template <bool Copy = false>
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42_3way(const unsigned char* p, std::size_t n,
                                                                   std::uint32_t crc,
                                                                   unsigned char* out = nullptr) noexcept {
  const CrcShifts& t = crc_shifts();
  crc = crc_3way_steps<crc_block, Copy>(p, n, crc, t.shift1, t.shift2, out);
  crc = crc_3way_steps<crc_small_block, Copy>(p, n, crc, t.small1, t.small2, out);
  return crc32c_sse42<Copy>(p, n, crc, out);
}
#endif

}  // namespace

std::uint32_t crc32c_builtin(const void* data, std::size_t n, std::uint32_t crc) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (!have_sse42) {
    crc = crc32c_table(p, n, crc);
  } else {
    crc = n >= 3 * crc_small_block ? crc32c_sse42_3way(p, n, crc) : crc32c_sse42(p, n, crc);
  }
#else
  crc = crc32c_table(p, n, crc);
#endif
  return ~crc;
}

std::uint32_t crc32c_copy_builtin(void* dst, const void* src, std::size_t n, std::uint32_t crc) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
#if defined(__x86_64__)
  if (have_sse42) {
    crc = ~crc;
    crc = n >= 3 * crc_small_block ? crc32c_sse42_3way<true>(p, n, crc, out) : crc32c_sse42<true>(p, n, crc, out);
    return ~crc;
  }
#endif
  std::memcpy(out, p, n);
  return crc32c_builtin(p, n, crc);
}

#if PAYLOADRUN_HAVE_ISAL
namespace {
// From here on ISA-L's folding beats the crc32 instruction's chains (10 vs
// 14 ns at 256 bytes, 1.2 vs 2.5 us at 64 KiB on the benchmark machine).
constexpr std::size_t isal_min = 256;
std::uint32_t crc32c_isal(const unsigned char* p, std::size_t n, std::uint32_t reg) noexcept {
  constexpr std::size_t chunk = std::size_t{1} << 30;  // its length is an int
  for (; n > chunk; n -= chunk, p += chunk) reg = crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(chunk), reg);
  return crc32_iscsi(const_cast<unsigned char*>(p), static_cast<int>(n), reg);
}
// A copy by 64-byte moves: glibc's memcpy turns large copies into rep movsb,
// which some AMD cores run at a tenth of the speed when the destination is
// a little past the source modulo 4 KiB (a ring's slots land anywhere).
// Each fixed-size __builtin_memcpy compiles to vector moves (g++ 12, -O2:
// no call); a compiler that fused the loop back into one memcpy call would
// bring the slow case back (ring_bench's 64 KiB row would show it).
void copy_blocks(unsigned char* out, const unsigned char* p, std::size_t n) noexcept {
  for (; n >= 64; n -= 64, p += 64, out += 64) __builtin_memcpy(out, p, 64);
  for (; n > 0; --n) *out++ = *p++;
}
}  // namespace
#endif

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) noexcept {
#if PAYLOADRUN_HAVE_ISAL
  if (n >= isal_min) return ~crc32c_isal(static_cast<const unsigned char*>(data), n, ~crc);
#endif
  return crc32c_builtin(data, n, crc);
}

std::uint32_t crc32c_copy(void* dst, const void* src, std::size_t n, std::uint32_t crc) noexcept {
#if PAYLOADRUN_HAVE_ISAL
  if (n >= isal_min) {
    // The checksum, then the copy, a chunk at a time: the chunk is still in
    // L1 for the copy.
    const auto* p = static_cast<const unsigned char*>(src);
    auto* out = static_cast<unsigned char*>(dst);
    constexpr std::size_t chunk = 8192;
    std::uint32_t reg = ~crc;
    for (std::size_t done = 0; done < n; done += chunk) {
      const std::size_t k = std::min(chunk, n - done);
      reg = crc32c_isal(p + done, k, reg);
      copy_blocks(out + done, p + done, k);
    }
    return ~reg;
  }
#endif
  return crc32c_copy_builtin(dst, src, n, crc);
}

std::uint32_t header_crc(const RecordHeader& h) noexcept {
  return crc32c(reinterpret_cast<const unsigned char*>(&h) + 4, 56);
}

namespace {
#if defined(__x86_64__)
// Bytes [4, 60) of the words: the high half of the first, six whole words,
// the low half of the last, straight from registers.
__attribute__((target("sse4.2"))) std::uint32_t header_crc_sse42(const HeaderWords& h) noexcept {
  std::uint64_t c = __builtin_ia32_crc32si(~0u, static_cast<std::uint32_t>(h.w[0] >> 32));
  for (int k = 1; k < 7; ++k) c = __builtin_ia32_crc32di(c, h.w[k]);
  return ~__builtin_ia32_crc32si(static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(h.w[7]));
}
#endif
}  // namespace

std::uint32_t header_crc(const HeaderWords& h) noexcept {
  static_assert(std::endian::native == std::endian::little, "ring records are little-endian (docs/ring-format.md)");
#if defined(__x86_64__)
  if (have_sse42) return header_crc_sse42(h);
#endif
  unsigned char bytes[64];
  std::memcpy(bytes, h.w, sizeof bytes);
  return crc32c(bytes + 4, 56);
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {
std::atomic<std::uint32_t> cached_pid{0};
void refresh_pid() noexcept { cached_pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed); }
}  // namespace

std::uint32_t self_pid() noexcept {
  static const bool registered = [] {
    refresh_pid();
    ::pthread_atfork(nullptr, nullptr, refresh_pid);
    return true;
  }();
  (void)registered;
  return cached_pid.load(std::memory_order_relaxed);
}

std::uint64_t coarse_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool pid_alive(std::uint32_t pid) noexcept {
  if (pid == 0 || pid > 0x3fffffffu) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno != ESRCH;
}

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT32_MAX, nullptr,
            nullptr, 0);
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::uint64_t timeout_ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000u);
  ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000u);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr,
            0);
}

std::string shm_path(const std::string& name) {
  std::string n = name;
  if (!n.empty() && n[0] == '/') n.erase(0, 1);
  if (n.empty() || n.size() > 200 || n.find('/') != std::string::npos || n == "." || n == ".." ||
      n.find('\0') != std::string::npos) {
    throw Error(Errc::ring, fmt::format("ring name '{}' is not usable: give a plain name of 1-200 "
                                        "characters without '/' (it lives in /dev/shm)",
                                        name));
  }
  return "/" + n;
}

RingMap::RingMap(const std::string& name, const RingOptions& options) : name_(name) {
  const std::string path = shm_path(name);
  bool creator = false;
  const auto deadline = monotonic_ns() + static_cast<std::uint64_t>(options.open_timeout.count()) * 1'000'000u;
  std::uint64_t capacity = round_capacity(options.capacity);
  for (;;) {
    int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                        static_cast<mode_t>(options.mode));
    if (fd >= 0) {
      fd_.reset(fd);
      creator = true;
      ::fchmod(fd, static_cast<mode_t>(options.mode));  // umask must not narrow it
      break;
    }
    if (errno != EEXIST) fail(name, "cannot create it in /dev/shm", errno);
    fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd >= 0) {
      fd_.reset(fd);
      break;
    }
    if (errno != ENOENT) fail(name, "cannot open it in /dev/shm (check its owner and mode)", errno);
    // Removed between our two calls: try creating again.
  }
  if (creator) {
    map_size_ = ring_header_size + capacity;
    if (::ftruncate(fd_.get(), static_cast<off_t>(map_size_)) != 0) {
      const int err = errno;
      ::shm_unlink(path.c_str());
      fail(name, fmt::format("cannot size it to {} bytes", map_size_), err);
    }
    // Reserve every page now: a full /dev/shm is an error here, never a
    // SIGBUS at the first write into a hole.
    if (const int err = ::posix_fallocate(fd_.get(), 0, static_cast<off_t>(map_size_)); err != 0) {
      ::shm_unlink(path.c_str());
      fail(name,
           fmt::format("cannot reserve {} bytes in /dev/shm (is it full? df -h /dev/shm; or ask "
                       "for a smaller capacity)",
                       map_size_),
           err);
    }
  } else {
    // Wait for the creator to size it and publish the magic.
    for (;;) {
      struct stat st {};
      if (::fstat(fd_.get(), &st) != 0) fail(name, "cannot stat it", errno);
      if (static_cast<std::size_t>(st.st_size) >= ring_header_size) {
        void* p = ::mmap(nullptr, ring_header_size, PROT_READ, MAP_SHARED, fd_.get(), 0);
        if (p == MAP_FAILED) fail(name, "cannot map its header", errno);
        const auto* h = static_cast<const RingHeader*>(p);
        const std::uint32_t magic = h->magic.load(std::memory_order_acquire);
        const std::uint32_t version = h->version;
        const std::uint64_t cap = h->capacity;
        ::munmap(p, ring_header_size);
        if (magic == ring_magic) {
          if (version != ring_version) {
            throw Error(Errc::ring, fmt::format("ring '{}' has format version {}, this library "
                                                "reads version {}: remove it (rm /dev/shm/{}) or "
                                                "use a matching payloadrun",
                                                name, version, ring_version, path.substr(1)));
          }
          if (cap < min_ring_capacity || cap > max_ring_capacity || (cap & (cap - 1)) != 0 ||
              static_cast<std::uint64_t>(st.st_size) < ring_header_size + cap) {
            throw Error(Errc::ring, fmt::format("ring '{}' has a corrupt header (capacity {}, "
                                                "size {}): remove /dev/shm/{}",
                                                name, cap, st.st_size, path.substr(1)));
          }
          capacity = cap;
          map_size_ = ring_header_size + cap;
          break;
        }
      }
      if (monotonic_ns() > deadline) {
        throw Error(Errc::ring, fmt::format("ring '{}' exists but was not initialised within {} ms "
                                            "(its creator died?): remove /dev/shm/{} and retry",
                                            name, options.open_timeout.count(), path.substr(1)));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  base_ = ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    fail(name, fmt::format("cannot map {} bytes", map_size_), errno);
  }
  header_ = static_cast<RingHeader*>(base_);
  data_ = static_cast<unsigned char*>(base_) + ring_header_size;
  capacity_ = capacity;
  if (creator) {
    // The file is zero-filled; initialise, then publish the magic last.
    header_->state.store(static_cast<std::uint32_t>(RingState::initialising));
    header_->version = ring_version;
    header_->header_size = ring_header_size;
    header_->capacity = capacity;
    header_->ring_id = random_u64();
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&header_->reserve_lock, &attr);
    pthread_mutexattr_destroy(&attr);
    header_->state.store(static_cast<std::uint32_t>(RingState::ready));
    header_->magic.store(ring_magic, std::memory_order_release);
  }
}

RingMap::~RingMap() {
  if (base_ != nullptr) ::munmap(base_, map_size_);
}

void RingMap::copy_out(std::uint64_t pos, char* dst, std::size_t n) const noexcept {
  const std::uint64_t off = pos & mask();
  const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_ - off));
  std::memcpy(dst, data_ + off, first);
  if (first < n) std::memcpy(dst + first, data_, n - first);
}

void RingMap::copy_out(std::uint64_t pos, std::string& dst, std::size_t n) const {
  const std::uint64_t off = pos & mask();
  const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_ - off));
  dst.assign(reinterpret_cast<const char*>(data_ + off), first);
  if (first < n) dst.append(reinterpret_cast<const char*>(data_), n - first);
}

std::uint32_t RingMap::copy_in_crc(std::uint64_t pos, const char* src, std::size_t n) const noexcept {
  const std::uint64_t off = pos & mask();
  const std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity_ - off));
  std::uint32_t c = crc32c_copy(data_ + off, src, first);
  if (first < n) c = crc32c_copy(data_, src + first, n - first, c);
  return c;
}

}  // namespace payloadrun::detail
