// libFuzzer target: decoding what a ring consumer reads from shared memory
// (lib/ring_consumer.cpp: record headers, checksums, resynchronisation,
// reservations, fragment reassembly; lib/detail/ring_codec.cpp: the JSON
// bodies; lib/detail/ring_drain.cpp: the Drain). The input format is in
// ring_fuzz.hpp; modes 1-3 write a real shm ring and drain it with a fresh
// RingConsumer.
//
// Invariants:
//  - RingConsumer::next() never throws, whatever the ring holds, and only
//    delivers messages of a known type that some run of records in the ring
//    justifies (records mode: same type, pid, payload index and body bytes);
//    its stats count what it delivered; with nothing left reserved it
//    drains the ring to empty; every record of a well-formed records-mode
//    ring (committed, single-fragment) is delivered, in order;
//  - decode_metrics/decode_raw throw nothing but Error(Errc::ring); what
//    they decode survives encode and decode again unchanged;
//  - Drain::consume never throws; every sidecar line it writes is a JSON
//    object with the documented fields.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "detail/ring_layout.hpp"
#include "fuzz_util.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "ring_fuzz.hpp"

namespace {

using namespace payloadrun;
using detail::RecordHeader;
using detail::RingHeader;
using namespace std::chrono_literals;

// ------------------------------------------------------------ input reading

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  std::uint64_t get(int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      if (n > 0) {
        v |= static_cast<std::uint64_t>(*p++) << (8 * i);
        --n;
      }
    }
    return v;
  }
  std::string_view take(std::size_t k) {
    k = std::min(k, n);
    std::string_view s(reinterpret_cast<const char*>(p), k);
    p += k;
    n -= k;
    return s;
  }
};

// ------------------------------------------------------------ bodies

bool same_double(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}
bool same_opt_double(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || same_double(*a, *b));
}

bool same_metrics(const PayloadMetrics& a, const PayloadMetrics& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Metric x = a[i];
    const Metric y = b[i];
    if (x.name != y.name || !same_double(x.value, y.value) || x.polarity != y.polarity ||
        x.unit != y.unit || x.source != y.source || x.stream != y.stream) {
      return false;
    }
  }
  return true;
}

// decode -> encode -> decode is the identity on what decoded.
void check_metrics_body(std::string_view body) {
  MetricsRecord r;
  try {
    r = decode_metrics(body);
  } catch (const Error& e) {
    FUZZ_CHECK(e.code() == Errc::ring, std::string("decode_metrics threw ") + to_string(e.code()));
    return;
  }
  Completion c;
  c.payload_name = r.payload_name;
  c.result = r.result;
  c.metrics = r.metrics;
  c.error = r.error;
  const std::string again = encode_metrics(c, r.deferred);
  MetricsRecord r2;
  try {
    r2 = decode_metrics(again);
  } catch (const Error& e) {
    FUZZ_CHECK(false, "re-encoded metrics body does not decode: " + std::string(e.what()) + " in " +
                          fuzz::quoted(again, 400));
  }
  FUZZ_CHECK(r2.payload_name == r.payload_name && r2.payload_index == r.payload_index &&
                 r2.exit_code == r.exit_code && r2.timed_out == r.timed_out &&
                 r2.killed_by_signal == r.killed_by_signal && r2.deferred == r.deferred &&
                 r2.result.passed == r.result.passed && r2.result.details == r.result.details &&
                 same_metrics(r2.metrics, r.metrics) && r2.error == r.error,
             "metrics body changed in a round trip: " + fuzz::quoted(again, 400));
}

void check_raw_body(std::string_view body) {
  RawPayloadOutput r;
  try {
    r = decode_raw(body);
  } catch (const Error& e) {
    FUZZ_CHECK(e.code() == Errc::ring, std::string("decode_raw threw ") + to_string(e.code()));
    return;
  }
  const std::string again = encode_raw(r);
  RawPayloadOutput r2;
  try {
    r2 = decode_raw(again);
  } catch (const Error& e) {
    FUZZ_CHECK(false, "re-encoded raw body does not decode: " + std::string(e.what()) + " in " +
                          fuzz::quoted(again, 400));
  }
  const bool bounds_same =
      r2.metric_bounds.has_value() == r.metric_bounds.has_value() &&
      (!r.metric_bounds || (r2.metric_bounds->min_count == r.metric_bounds->min_count &&
                            same_opt_double(r2.metric_bounds->value_min, r.metric_bounds->value_min) &&
                            same_opt_double(r2.metric_bounds->value_max, r.metric_bounds->value_max)));
  FUZZ_CHECK(r2.payload_index == r.payload_index && r2.payload_name == r.payload_name &&
                 r2.stdout_text == r.stdout_text && r2.stderr_text == r.stderr_text && r2.hint == r.hint &&
                 r2.metric_hints == r.metric_hints && bounds_same && r2.exit_code == r.exit_code &&
                 r2.timed_out == r.timed_out && r2.checks == r.checks,
             "raw body changed in a round trip: " + fuzz::quoted(again, 400));
}

void check_sidecar_line(std::string_view line) {
  static simdjson::dom::parser parser;
  simdjson::dom::object o;
  const auto err = parser.parse(line.data(), line.size(), true).get(o);
  FUZZ_CHECK(err == simdjson::SUCCESS, "sidecar line is not a JSON object (" +
                                           std::string(simdjson::error_message(err)) + "): " +
                                           fuzz::quoted(line, 400));
  for (const char* key : {"payload", "payload_index", "pid", "exit_code", "timed_out", "passed", "details",
                          "metrics"}) {
    FUZZ_CHECK(o[key].error() == simdjson::SUCCESS, std::string("sidecar line lacks ") + key);
  }
}

void drain_messages(const std::vector<RingMessage>& messages) {
  std::vector<std::string> lines;
  Drain drain([&](std::string_view line) { lines.emplace_back(line); });
  try {
    for (const RingMessage& m : messages) drain.consume(m);
    drain.finish();
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("Drain threw: ") + e.what());
  }
  FUZZ_CHECK(drain.summary().invocations == lines.size(), "Drain's summary miscounts its lines");
  for (const std::string& line : lines) check_sidecar_line(line);
}

void run_body(std::string_view body) {
  check_metrics_body(body);
  check_raw_body(body);
  // Paired the way the Drain pairs them: raw output, then its metrics.
  std::uint64_t index = 0;
  try {
    index = decode_raw(body).payload_index;
  } catch (const Error&) {
    try {
      index = decode_metrics(body).payload_index;
    } catch (const Error&) {
    }
  }
  drain_messages({RingMessage{RecordType::raw_output, 7, index, 1, std::string(body)},
                  RingMessage{RecordType::metrics, 7, index, 2, std::string(body)}});
}

// ------------------------------------------------------------ the shm rings

// A mapping of /dev/shm/NAME made here, to write untrusted bytes into.
class ShmFile {
 public:
  /// create: a new object of `size` bytes (replacing a leftover); else the
  /// existing one, `size` bytes of it mapped.
  ShmFile(std::string name, std::size_t size, bool create) : name_(std::move(name)), size_(size) {
    if (create) remove_ring(name_);
    const int fd = ::shm_open(("/" + name_).c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
    if (fd < 0 || (create && ::ftruncate(fd, static_cast<off_t>(size_)) != 0)) std::abort();
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<unsigned char*>(p);
  }
  ~ShmFile() {
    ::munmap(base_, size_);
    remove_ring(name_);
  }
  ShmFile(const ShmFile&) = delete;
  ShmFile& operator=(const ShmFile&) = delete;

  const std::string& name() const { return name_; }
  unsigned char* base() { return base_; }
  unsigned char* data() { return base_ + detail::ring_header_size; }
  RingHeader& header() { return *reinterpret_cast<RingHeader*>(base_); }

 private:
  std::string name_;
  std::size_t size_;
  unsigned char* base_;
};

std::string ring_name(const char* suffix) { return "payloadrun-fuzz-" + std::to_string(::getpid()) + suffix; }

// Rings left behind by fuzzer processes that crashed (a crash skips atexit).
void remove_stale_rings() {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return;
  constexpr std::string_view prefix = "payloadrun-fuzz-";
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view n(e->d_name);
    if (n.substr(0, prefix.size()) != prefix) continue;
    const long pid = std::strtol(e->d_name + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) remove_ring(std::string(n));
  }
  ::closedir(dir);
}

// The main ring: initialised by the library (a RingProducer creates it),
// then mapped here; removed at exit.
ShmFile& main_ring() {
  static ShmFile* ring = [] {
    const std::string name = ring_name("");
    remove_ring(name);
    { RingProducer creator(name, RingOptions{.capacity = ring_fuzz::capacity}); }
    std::atexit([] {
      remove_ring(ring_name(""));
      remove_ring(ring_name("-h"));
    });
    return new ShmFile(name, detail::ring_header_size + ring_fuzz::capacity, false);
  }();
  return *ring;
}

void reset(ShmFile& ring, std::uint64_t tail, std::uint64_t head) {
  std::memset(ring.data(), 0, ring_fuzz::capacity);
  ring.header().tail.store(tail);
  ring.header().head.store(head);
  ring.header().consumer_pid.store(0);
}

// Bytes [pos, pos + n) of the data area, wrapping.
void copy_in(unsigned char* data, std::uint64_t pos, std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    data[(pos + i) % ring_fuzz::capacity] = static_cast<unsigned char>(bytes[i]);
  }
}
std::uint32_t crc_at(const unsigned char* data, std::uint64_t pos, std::size_t n) {
  std::string bytes(n, '\0');
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(data[(pos + i) % ring_fuzz::capacity]);
  return detail::crc32c(bytes.data(), bytes.size());
}

struct Drained {
  std::vector<RingMessage> messages;
  bool empty = false;
  RingStats stats;
};

// Drain `name` with a fresh consumer (no state from earlier inputs).
Drained drain_ring(const std::string& name, std::chrono::milliseconds open_timeout, bool may_refuse) {
  Drained out;
  std::optional<RingConsumer> consumer;
  try {
    consumer.emplace(name, RingOptions{.capacity = ring_fuzz::capacity, .open_timeout = open_timeout});
  } catch (const Error& e) {
    FUZZ_CHECK(may_refuse && e.code() == Errc::ring, std::string("RingConsumer refused the ring: ") + e.what());
    return out;
  }
  std::uint64_t bytes = 0;
  try {
    const std::size_t bound = 2 * (consumer->capacity() / detail::record_align) + 16;
    for (std::size_t i = 0;; ++i) {
      std::optional<RingMessage> m = consumer->next(0ms);
      if (!m) break;
      FUZZ_CHECK(i < bound, "the consumer delivers more messages than the ring has slots");
      FUZZ_CHECK(m->type == RecordType::metrics || m->type == RecordType::raw_output,
                 "delivered a message of unknown type " + std::to_string(static_cast<int>(m->type)));
      bytes += m->body.size();
      out.messages.push_back(std::move(*m));
    }
    out.empty = consumer->empty();
    consumer->abandon_partials();
    FUZZ_CHECK(!consumer->has_partial(), "a partial message survived abandon_partials()");
    (void)consumer->take_reports();
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("RingConsumer threw: ") + e.what());
  }
  const RingStats& stats = consumer->stats();
  out.stats = stats;
  if (std::getenv("FUZZ_VERBOSE") != nullptr) {  // what a seed exercises
    std::fprintf(stderr, "ring: %zu messages; records %llu corrupt %llu abandoned %llu incomplete %llu%s\n",
                 out.messages.size(), static_cast<unsigned long long>(stats.records),
                 static_cast<unsigned long long>(stats.corrupt), static_cast<unsigned long long>(stats.abandoned),
                 static_cast<unsigned long long>(stats.incomplete), out.empty ? ", drained" : "");
  }
  FUZZ_CHECK(stats.messages == out.messages.size() && stats.bytes == bytes,
             "stats count " + std::to_string(stats.messages) + " messages, delivered " +
                 std::to_string(out.messages.size()));
  return out;
}

void check_delivered(const std::vector<RingMessage>& messages) {
  for (const RingMessage& m : messages) {
    if (m.type == RecordType::metrics) {
      check_metrics_body(m.body);
    } else {
      check_raw_body(m.body);
    }
  }
  drain_messages(messages);
}

// ------------------------------------------------------------ the modes

void run_image(Reader in, bool fix) {
  ShmFile& ring = main_ring();
  const std::uint64_t tail = in.get(8);
  const std::uint64_t head = in.get(8);
  reset(ring, tail, head);
  const std::string_view bytes = in.take(ring_fuzz::capacity);
  std::memcpy(ring.data(), bytes.data(), bytes.size());
  if (fix) {
    for (std::size_t off = 0; off < ring_fuzz::capacity; off += detail::record_align) {
      auto* r = reinterpret_cast<RecordHeader*>(ring.data() + off);
      if (r->magic != detail::record_magic) continue;
      if (r->length <= ring_fuzz::capacity - detail::record_header_size) {
        r->body_crc = crc_at(ring.data(), off + detail::record_header_size, r->length);
      }
      r->header_crc = detail::header_crc(*r);
    }
  }
  check_delivered(drain_ring(ring.name(), 2000ms, false).messages);
}

// Whether records justify message m: one whole record, or fragments
// 0..n-1 of its (pid, message id) in ring order.
bool justified(const RingMessage& m, const std::vector<ring_fuzz::RecordSpec>& records) {
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    if (r.pid != m.pid || r.message_id != m.message_id || r.frag_index != 0 ||
        r.type != static_cast<std::uint8_t>(m.type) || r.payload_index != m.payload_index) {
      continue;
    }
    if (r.frag_count <= 1 && r.body == m.body) return true;
    std::string body = r.body;
    std::uint32_t next = 1;
    for (std::size_t j = i + 1; j < records.size() && next < r.frag_count; ++j) {
      const auto& f = records[j];
      if (f.pid != m.pid || f.message_id != m.message_id) continue;
      if (f.frag_index != next) break;
      body += f.body;
      ++next;
    }
    if (next == r.frag_count && body == m.body) return true;
  }
  return false;
}

// What a ring of clean messages must yield: each (pid, message id) holds
// either whole single records or one message's fragments 0..n-1 in ring
// order, with consistent counts and total length, all of a known type, and
// records are lost only to a failing body checksum. Then a fragmented
// message that lost a fragment counts incomplete exactly once, and every
// other message is delivered. nullopt when the ring is not of that shape.
struct Outcome {
  std::size_t messages = 0;
  std::uint64_t incomplete = 0;
};
std::optional<Outcome> clean_outcome(const std::vector<ring_fuzz::RecordSpec>& sent) {
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::vector<const ring_fuzz::RecordSpec*>> by_key;
  for (const auto& r : sent) {
    if ((r.flags & ~(ring_fuzz::bad_body_crc | ring_fuzz::own_pid)) != 0 || (r.type != 1 && r.type != 2)) {
      return std::nullopt;
    }
    by_key[{r.pid, r.message_id}].push_back(&r);
  }
  Outcome out;
  for (const auto& [key, records] : by_key) {
    const std::uint32_t n = records.front()->frag_count;
    if (n <= 1) {
      for (const auto* r : records) {
        if (r->frag_count > 1 || r->frag_index != 0 || r->total_length != r->body.size()) return std::nullopt;
        if ((r->flags & ring_fuzz::bad_body_crc) == 0) ++out.messages;
      }
      continue;
    }
    if (records.size() != n) return std::nullopt;
    std::uint64_t total = 0;
    bool lost = false;
    for (std::uint32_t i = 0; i < n; ++i) {
      const auto* r = records[i];
      if (r->frag_index != i || r->frag_count != n || r->total_length != records.front()->total_length) {
        return std::nullopt;
      }
      total += r->body.size();
      lost = lost || (r->flags & ring_fuzz::bad_body_crc) != 0;
    }
    if (total != records.front()->total_length) return std::nullopt;
    if (lost) {
      ++out.incomplete;
    } else {
      ++out.messages;
    }
  }
  return out;
}

void run_records(Reader in) {
  ShmFile& ring = main_ring();
  const std::uint64_t start = in.get(8) & 0x7fffffffffffffc0ULL;
  reset(ring, start, start);
  std::vector<ring_fuzz::RecordSpec> sent;     // every record written
  std::vector<ring_fuzz::RecordSpec> records;  // those committed and intact
  bool resyncs = false;   // a record the consumer must resynchronise past
  bool reserved = false;  // a record left reserved
  bool plain = true;      // every record committed, intact, whole and of a known type
  std::uint64_t head = start;
  while (in.n > 0) {
    ring_fuzz::RecordSpec r;
    r.flags = static_cast<std::uint8_t>(in.get(1));
    r.type = static_cast<std::uint8_t>(in.get(1));
    r.pid = static_cast<std::uint32_t>(in.get(4));
    r.payload_index = in.get(8);
    r.message_id = in.get(8);
    r.frag_index = static_cast<std::uint32_t>(in.get(4));
    r.frag_count = static_cast<std::uint32_t>(in.get(4));
    r.total_length = static_cast<std::uint32_t>(in.get(4));
    const auto length = static_cast<std::size_t>(in.get(4));
    r.body = std::string(in.take(std::min(length, ring_fuzz::capacity - detail::record_header_size)));
    const std::uint64_t slot = detail::slot_size(r.body.size());
    if (head - start + slot > ring_fuzz::capacity) break;
    if ((r.flags & ring_fuzz::own_pid) != 0) r.pid = static_cast<std::uint32_t>(::getpid());

    RecordHeader h{};
    h.magic = (r.flags & ring_fuzz::bad_magic) != 0 ? ~detail::record_magic : detail::record_magic;
    h.version = detail::record_version;  // a record's own version, not the ring's
    h.type = r.type;
    h.pid = r.pid;
    h.payload_index = r.payload_index;
    h.length = static_cast<std::uint32_t>(r.body.size());
    h.body_crc = detail::crc32c(r.body.data(), r.body.size()) ^
                 ((r.flags & ring_fuzz::bad_body_crc) != 0 ? 1u : 0u);
    h.reserve_ns = detail::monotonic_ns();
    h.message_id = r.message_id;
    h.frag_index = r.frag_index;
    h.frag_count = r.frag_count;
    h.total_length = r.total_length;
    h.header_crc = detail::header_crc(h) ^ ((r.flags & ring_fuzz::bad_header_crc) != 0 ? 1u : 0u);
    const bool committed = (r.flags & ring_fuzz::reserved_only) == 0;
    h.state.store(committed ? detail::slot_committed : detail::slot_reserved);
    std::memcpy(ring.data() + (head % ring_fuzz::capacity), static_cast<const void*>(&h), sizeof h);
    copy_in(ring.data(), head + detail::record_header_size, r.body);
    head += slot;

    resyncs = resyncs || (r.flags & (ring_fuzz::bad_magic | ring_fuzz::bad_header_crc)) != 0;
    reserved = reserved || !committed;
    plain = plain && (r.flags & ~ring_fuzz::own_pid) == 0 && (r.type == 1 || r.type == 2) &&
            r.frag_count <= 1 && r.frag_index == 0 && r.total_length == r.body.size();
    sent.push_back(r);
    const std::uint8_t damage = ring_fuzz::bad_magic | ring_fuzz::bad_header_crc | ring_fuzz::bad_body_crc;
    if (committed && (r.flags & damage) == 0) {
      records.push_back(std::move(r));
    }
  }
  ring.header().head.store(head);

  const Drained d = drain_ring(ring.name(), 2000ms, false);
  if (!reserved) FUZZ_CHECK(d.empty, "the consumer stopped before the end of a ring with no reservation");
  if (!resyncs) {
    for (const RingMessage& m : d.messages) {
      FUZZ_CHECK(justified(m, records), "delivered a message no records justify: type " +
                                            std::to_string(static_cast<int>(m.type)) + ", body " +
                                            fuzz::quoted(m.body));
    }
  }
  if (plain) {
    FUZZ_CHECK(d.messages.size() == records.size(),
               "a well-formed ring of " + std::to_string(records.size()) + " records delivered " +
                   std::to_string(d.messages.size()));
    for (std::size_t i = 0; i < records.size(); ++i) {
      FUZZ_CHECK(d.messages[i].body == records[i].body && d.messages[i].pid == records[i].pid &&
                     d.messages[i].message_id == records[i].message_id,
                 "message " + std::to_string(i) + " differs from its record");
    }
  }
  if (const auto expected = clean_outcome(sent)) {
    FUZZ_CHECK(d.messages.size() == expected->messages && d.stats.incomplete == expected->incomplete,
               "clean messages: delivered " + std::to_string(d.messages.size()) + " (expected " +
                   std::to_string(expected->messages) + "), incomplete " + std::to_string(d.stats.incomplete) +
                   " (expected " + std::to_string(expected->incomplete) + ")");
  }
  check_delivered(d.messages);
}

void run_header(Reader in) {
  const std::size_t size = detail::ring_header_size + ring_fuzz::capacity - 64 * (in.get(1) & 127);
  ShmFile ring(ring_name("-h"), size, true);
  const std::string_view page = in.take(detail::ring_header_size);
  std::memcpy(ring.base(), page.data(), page.size());
  const std::string_view bytes = in.take(size - detail::ring_header_size);
  std::memcpy(ring.data(), bytes.data(), bytes.size());
  check_delivered(drain_ring(ring.name(), 0ms, true).messages);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("PAYLOADRUN_FUZZ_WRITE_SEEDS")) {
    ring_fuzz::write_ring_seeds(dir);
    std::exit(0);
  }
  // The library's reports go to a logger without sinks: still formatted
  // (with untrusted text in them), never printed.
  spdlog::register_logger(std::make_shared<spdlog::logger>("payloadrun"));
  spdlog::get("payloadrun")->set_level(spdlog::level::trace);
  remove_stale_rings();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Reader in{data + 1, size - 1};
  switch (data[0] & 3) {
    case ring_fuzz::body_mode: run_body(in.take(size - 1)); break;
    case ring_fuzz::image_mode: run_image(in, (data[0] & ring_fuzz::fix_crcs) != 0); break;
    case ring_fuzz::records_mode: run_records(in); break;
    default: run_header(in); break;
  }
  return 0;
}
