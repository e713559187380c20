// Result-ring throughput across processes: a forked producer process writes
// N records of a fixed size (256 B and 64 KiB), the parent consumes them,
// through the payloadrun ring (RingProducer / RingConsumer::read, in place,
// 1 MiB; "ring_copy": RingConsumer::next, a copy per message) and
// through a pipe and a unix socketpair (SOCK_STREAM) carrying the same
// bytes as length-prefixed frames (u32 length + record). Transports are
// interleaved (ring, pipe, socket, ring, ...) for --rounds rounds; medians,
// with the slowest and fastest rounds (--impls ring,pipe runs a subset;
// --pin puts the consumer on CPU 0 and the producer on CPU 1).
// Every record holds its sequence number, a check word and bytes derived
// from the sequence number; the consumer checks each record arrives exactly
// once with the right bytes (and that the producer exited 0), else exit 1.
// Prints one JSON object per (size, impl):
// {"size","impl","records","rounds","records_per_s","mb_per_s",
//  "records_per_s_min","records_per_s_max","cpu_ns_per_record"} (the median
// round's CPU time of both processes, user + system, per record: what the
// transport costs whatever else the machine runs).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <new>
#include <cstdint>
#include <optional>

#include "common.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"

namespace {

constexpr std::size_t header_bytes = 16;  // u64 seq, u64 seq ^ check_key
constexpr std::uint64_t check_key = 0x9e3779b97f4a7c15ull;
constexpr std::size_t pattern_spread = 4096;

/// Deterministic random bytes; a record's body is the slice starting at
/// (seq * 97) % pattern_spread, so neighbouring records differ.
std::string make_pattern(std::size_t record_size) {
  std::string p(record_size + pattern_spread, '\0');
  std::uint64_t x = 0x2545f4914f6cdd1dull;
  for (auto& c : p) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return p;
}

std::size_t pattern_offset(std::uint64_t seq) { return static_cast<std::size_t>(seq * 97 % pattern_spread); }

/// Writes record `seq` (record_size bytes) at `out`.
void fill_record(char* out, std::size_t record_size, std::uint64_t seq, const std::string& pattern) {
  const std::uint64_t check = seq ^ check_key;
  std::memcpy(out, &seq, 8);
  std::memcpy(out + 8, &check, 8);
  std::memcpy(out + header_bytes, pattern.data() + pattern_offset(seq), record_size - header_bytes);
}

/// Exactly-once and content checks on the consumer side.
class Verifier {
 public:
  Verifier(std::size_t n, std::size_t record_size, const std::string& pattern, std::string what)
      : seen_(n, 0), size_(record_size), pattern_(pattern), what_(std::move(what)) {}
  void check(const char* data, std::size_t len) {
    if (len != size_) bench::fail(what_ + ": record of " + std::to_string(len) + " bytes, want " + std::to_string(size_));
    std::uint64_t seq = 0, check = 0;
    std::memcpy(&seq, data, 8);
    std::memcpy(&check, data + 8, 8);
    if ((seq ^ check_key) != check || seq >= seen_.size()) bench::fail(what_ + ": bad record header");
    if (seen_[seq]) bench::fail(what_ + ": record " + std::to_string(seq) + " received twice");
    if (std::memcmp(data + header_bytes, pattern_.data() + pattern_offset(seq), size_ - header_bytes) != 0) {
      bench::fail(what_ + ": record " + std::to_string(seq) + " has wrong bytes");
    }
    seen_[seq] = 1;
    ++count_;
  }
  std::size_t count() const { return count_; }
  void require_all() const {
    if (count_ != seen_.size()) {
      bench::fail(what_ + ": received " + std::to_string(count_) + " of " + std::to_string(seen_.size()) + " records");
    }
  }

 private:
  std::vector<char> seen_;
  std::size_t size_;
  const std::string& pattern_;
  std::string what_;
  std::size_t count_ = 0;
};

double seconds_of(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }

/// This process's CPU time (user + system), seconds.
double self_cpu() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return seconds_of(u.ru_utime) + seconds_of(u.ru_stime);
}

double child_cpu_s = 0;  // CPU time of the producer process reaped last
double last_cpu_s = 0;   // CPU time of both processes in the last run

void reap_ok(pid_t pid, const std::string& what) {
  int status = 0;
  rusage u{};
  while (::wait4(pid, &status, 0, &u) < 0) {
    if (errno != EINTR) bench::fail(what + ": waitpid failed");
  }
  child_cpu_s = seconds_of(u.ru_utime) + seconds_of(u.ru_stime);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bench::fail(what + ": producer process failed");
}

bool write_all(int fd, const char* p, std::size_t len) {
  while (len > 0) {
    const ssize_t w = ::write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    len -= static_cast<std::size_t>(w);
  }
  return true;
}

// --pin: the consumer on CPU 0, the producer on CPU 1 (sched_setaffinity),
// to tell the transports' costs from where the scheduler puts the two.
bool pin = false;

void pin_to(int cpu) {
  if (!pin) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) bench::fail("sched_setaffinity failed (--pin)");
}

// The producer process, pinned to CPU 1 under --pin (0 in the child).
pid_t fork_producer() {
  const pid_t pid = ::fork();
  if (pid < 0) bench::fail("fork failed");
  if (pid == 0) pin_to(1);
  return pid;
}

// --- ring -----------------------------------------------------------------------

std::string live_ring;  // removed at exit too, so a failed check leaves no /dev/shm name

void remove_live_ring() {
  if (!live_ring.empty()) payloadrun::remove_ring(live_ring);
}

// in_place: RingConsumer::read (bodies checked and handed over in the
// ring's memory); else RingConsumer::next (a RingMessage with a copy).
double run_ring(std::size_t n, std::size_t size, const std::string& pattern, std::size_t capacity, int run_id,
                bool in_place) {
  const std::string name = "payloadrun-ring-bench-" + std::to_string(::getpid()) + "-" + std::to_string(run_id);
  const std::string what = (in_place ? "ring " : "ring_copy ") + std::to_string(size) + " B";
  payloadrun::remove_ring(name);
  live_ring = name;
  payloadrun::RingOptions opts;
  opts.capacity = capacity;
  std::optional<payloadrun::RingConsumer> consumer;
  consumer.emplace(name, opts);  // creates the ring and takes the consumer lock
  Verifier v(n, size, pattern, what);
  const double cpu0 = self_cpu();
  const auto t0 = bench::clock::now();
  const pid_t pid = fork_producer();
  if (pid == 0) {
    int rc = 0;
    try {
      payloadrun::RingProducer producer(name, opts);
      std::string rec(size, '\0');
      for (std::uint64_t seq = 0; seq < n; ++seq) {
        fill_record(rec.data(), size, seq, pattern);
        producer.write(payloadrun::RecordType::raw_output, seq, rec);
        // Back-pressure like a blocking pipe: never let the in-process queue grow.
        while (producer.queue_depth() > 0 && producer.flush() > 0) ::sched_yield();
      }
      if (!producer.flush_for(std::chrono::milliseconds(30000))) rc = 3;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ring producer: %s\n", e.what());
      rc = 2;
    }
    ::_exit(rc);
  }
  auto timed_out = [&] {
    ::kill(pid, SIGKILL);
    reap_ok(pid, what);
    bench::fail(what + ": timed out after " + std::to_string(v.count()) + " records");
  };
  while (v.count() < n) {
    if (in_place) {
      const std::size_t got = consumer->read(std::chrono::milliseconds(10000), [&](const payloadrun::RingView& m) {
        if (m.type != payloadrun::RecordType::raw_output) bench::fail(what + ": wrong record type");
        v.check(m.body.data(), m.body.size());
      });
      if (got == 0) timed_out();
      continue;
    }
    auto m = consumer->next(std::chrono::milliseconds(10000));
    if (!m) timed_out();
    if (m->type != payloadrun::RecordType::raw_output) bench::fail(what + ": wrong record type");
    v.check(m->body.data(), m->body.size());
  }
  const double secs = bench::seconds_since(t0);
  reap_ok(pid, what);
  last_cpu_s = self_cpu() - cpu0 + child_cpu_s;
  v.require_all();
  const auto& st = consumer->stats();
  if (st.corrupt || st.abandoned || st.incomplete || st.messages != n || !consumer->empty()) {
    bench::fail(what + ": ring stats: corrupt " + std::to_string(st.corrupt) + ", abandoned " +
                std::to_string(st.abandoned) + ", incomplete " + std::to_string(st.incomplete) +
                ", messages " + std::to_string(st.messages));
  }
  consumer.reset();
  live_ring.clear();
  if (!payloadrun::remove_ring(name)) bench::fail(what + ": ring name was already gone");
  return secs;
}

// --- bare: the ceiling --------------------------------------------------------------
// What two processes reach through shared memory with nothing but a memcpy
// into the slot and a release store of the head (single producer, no
// header, no checksum, no allocation; the consumer checks in place and
// publishes its tail every 1/8 ring). Not a transport: the yardstick for
// the ring's per-record overhead (--impls bare).

double run_bare(std::size_t n, std::size_t size, const std::string& pattern, std::size_t capacity) {
  const std::string what = "bare " + std::to_string(size) + " B";
  struct Shared {
    alignas(64) std::atomic<std::uint64_t> head{0};
    alignas(64) std::atomic<std::uint64_t> tail{0};
  };
  const std::size_t slot = (size + 63) / 64 * 64;
  if (capacity % slot != 0) capacity = capacity / slot * slot;  // slots never wrap
  void* mem = ::mmap(nullptr, sizeof(Shared) + capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) bench::fail("mmap failed");
  auto* sh = new (mem) Shared;
  char* data = static_cast<char*>(mem) + sizeof(Shared);
  std::memset(data, 0, capacity);
  Verifier v(n, size, pattern, what);
  const double cpu0 = self_cpu();
  const auto t0 = bench::clock::now();
  const pid_t pid = fork_producer();
  if (pid == 0) {
    std::uint64_t head = 0, tail = 0;
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      while (head + slot - tail > capacity) {
        tail = sh->tail.load(std::memory_order_acquire);
        if (head + slot - tail > capacity) ::sched_yield();
      }
      fill_record(data + head % capacity, size, seq, pattern);
      head += slot;
      sh->head.store(head, std::memory_order_release);
    }
    ::_exit(0);
  }
  std::uint64_t tail = 0, head = 0, published = 0;
  const auto deadline = bench::clock::now() + std::chrono::seconds(30);
  while (v.count() < n) {
    if (tail == head) {
      head = sh->head.load(std::memory_order_acquire);
      if (tail == head) {
        if (published != tail) sh->tail.store(published = tail, std::memory_order_release);
        if (bench::clock::now() > deadline) bench::fail(what + ": timed out");
        ::sched_yield();
        continue;
      }
    }
    v.check(data + tail % capacity, size);
    tail += slot;
    if (tail - published >= capacity / 8) sh->tail.store(published = tail, std::memory_order_release);
  }
  const double secs = bench::seconds_since(t0);
  reap_ok(pid, what);
  last_cpu_s = self_cpu() - cpu0 + child_cpu_s;
  v.require_all();
  ::munmap(mem, sizeof(Shared) + capacity);
  return secs;
}

// --- pipe / socketpair ----------------------------------------------------------

double run_stream(bool socket, std::size_t n, std::size_t size, const std::string& pattern, std::size_t buf_bytes) {
  const std::string what = std::string(socket ? "socket " : "pipe ") + std::to_string(size) + " B";
  int fds[2];  // [0] read, [1] write
  if (socket) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) bench::fail("socketpair failed");
    const int b = static_cast<int>(buf_bytes);  // the kernel caps these at [rw]mem_max
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &b, sizeof b);
    ::setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &b, sizeof b);
  } else {
    if (::pipe2(fds, O_CLOEXEC) != 0) bench::fail("pipe failed");
    ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(buf_bytes));  // same room as the ring
  }
  Verifier v(n, size, pattern, what);
  const double cpu0 = self_cpu();
  const auto t0 = bench::clock::now();
  const pid_t pid = fork_producer();
  if (pid == 0) {
    ::close(fds[0]);
    std::string frame(4 + size, '\0');
    const auto len = static_cast<std::uint32_t>(size);
    std::memcpy(frame.data(), &len, 4);
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      fill_record(frame.data() + 4, size, seq, pattern);
      if (!write_all(fds[1], frame.data(), frame.size())) ::_exit(2);
    }
    ::_exit(::close(fds[1]) == 0 ? 0 : 3);
  }
  ::close(fds[1]);
  std::vector<char> buf(std::max<std::size_t>(256 * 1024, 2 * (size + 4)));
  std::size_t have = 0, pos = 0;
  for (;;) {
    // Parse every whole frame in the buffer.
    while (have - pos >= 4) {
      std::uint32_t len = 0;
      std::memcpy(&len, buf.data() + pos, 4);
      if (len != size) bench::fail(what + ": bad frame length " + std::to_string(len));
      if (have - pos < 4 + len) break;
      v.check(buf.data() + pos + 4, len);
      pos += 4 + len;
    }
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, have - pos);
      have -= pos;
      pos = 0;
    }
    const ssize_t r = ::read(fds[0], buf.data() + have, buf.size() - have);
    if (r < 0) {
      if (errno == EINTR) continue;
      bench::fail(what + ": read failed");
    }
    if (r == 0) break;
    have += static_cast<std::size_t>(r);
  }
  const double secs = bench::seconds_since(t0);
  ::close(fds[0]);
  reap_ok(pid, what);
  last_cpu_s = self_cpu() - cpu0 + child_cpu_s;
  if (have != 0) bench::fail(what + ": " + std::to_string(have) + " trailing bytes");
  v.require_all();
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::atexit(remove_live_ring);
    bench::Args args(argc, argv);
    const bool smoke = args.has("smoke");
    pin = args.has("pin");
    pin_to(0);
    const long rounds = args.integer("rounds", smoke ? 1 : 5);
    const auto capacity = static_cast<std::size_t>(args.integer("capacity-kib", 1024)) * 1024u;
    const auto n_small = static_cast<std::size_t>(args.integer("n-small", smoke ? 2000 : 200000));
    const auto n_large = static_cast<std::size_t>(args.integer("n-large", smoke ? 50 : 5000));
    // --impls ring,pipe: run only those (all three by default).
    const std::string only = args.str("impls", "ring,pipe,socket");
    const std::vector<std::string> all = {"ring", "pipe", "socket", "ring_copy", "bare"};
    std::vector<std::string> impls;
    for (const auto& i : all) {
      if (("," + only + ",").find("," + i + ",") != std::string::npos) impls.push_back(i);
    }
    if (impls.empty()) bench::fail("--impls names none of ring, pipe, socket, ring_copy, bare");
    int run_id = 0;
    for (const auto& [size, n] : {std::pair<std::size_t, std::size_t>{256, n_small}, {65536, n_large}}) {
      if (n == 0) continue;
      const std::string pattern = make_pattern(size);
      std::vector<std::vector<double>> secs(impls.size()), cpu(impls.size());
      for (long r = 0; r < rounds; ++r) {
        for (std::size_t k = 0; k < impls.size(); ++k) {
          secs[k].push_back(impls[k] == "ring"        ? run_ring(n, size, pattern, capacity, run_id++, true)
                            : impls[k] == "ring_copy" ? run_ring(n, size, pattern, capacity, run_id++, false)
                            : impls[k] == "pipe"   ? run_stream(false, n, size, pattern, capacity)
                            : impls[k] == "socket" ? run_stream(true, n, size, pattern, capacity)
                                                   : run_bare(n, size, pattern, capacity));
          cpu[k].push_back(last_cpu_s);
        }
      }
      for (std::size_t k = 0; k < impls.size(); ++k) {
        // records_per_s / mb_per_s: the median round; _min/_max: the slowest
        // and fastest rounds.
        const double s = bench::median(secs[k]);
        const double slowest = *std::max_element(secs[k].begin(), secs[k].end());
        const double fastest = *std::min_element(secs[k].begin(), secs[k].end());
        std::printf("{\"size\":%zu,\"impl\":\"%s\",\"records\":%zu,\"rounds\":%ld,"
                    "\"records_per_s\":%.1f,\"mb_per_s\":%.2f,\"records_per_s_min\":%.1f,"
                    "\"records_per_s_max\":%.1f,\"cpu_ns_per_record\":%.1f}\n",
                    size, impls[k].c_str(), n, rounds, static_cast<double>(n) / s,
                    static_cast<double>(n * size) / s / 1e6, static_cast<double>(n) / slowest,
                    static_cast<double>(n) / fastest, bench::median(cpu[k]) * 1e9 / static_cast<double>(n));
      }
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ring_bench: %s\n", e.what());
    return 1;
  }
}
