// The SHM ring with real shared memory and real processes: body codecs
// (CRC-32C, exact round trips, untrusted bodies), race-free creation, round
// trips and wake latency, multi-producer losslessness under a slow consumer,
// fragmentation, consumer restart, reading in place. Killed and stalled
// producers, corrupt bytes: test_ring_faults.cpp.
#include <sys/stat.h>
#include <time.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "detail/ring_layout.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "test_ring_util.hpp"

using namespace payloadrun;
using namespace ring_test;
using namespace std::chrono_literals;

namespace {

std::uint64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string seq_body(int producer, int seq) { return fmt::format("p{} s{} {}", producer, seq, std::string(static_cast<std::size_t>(seq % 37), 'x')); }

// ------------------------------------------------------------ body codecs

// CRC-32C check values (RFC 3720 / the "123456789" catalogue value), on
// every length around the 8-byte steps of the hardware path, against a
// bitwise reference; crc32c_copy (the producer's copy-and-checksum) too.
// Both the functions the ring uses (ISA-L from 256 bytes where the build
// has it) and the library's own code behind them (its fallback) are checked.
TEST(RingCrc, MatchesTheCrc32cDefinition) {
  using Crc = std::uint32_t (*)(const void*, std::size_t, std::uint32_t) noexcept;
  using CrcCopy = std::uint32_t (*)(void*, const void*, std::size_t, std::uint32_t) noexcept;
  const std::pair<Crc, CrcCopy> impls[] = {{payloadrun::detail::crc32c, payloadrun::detail::crc32c_copy},
                                           {payloadrun::detail::crc32c_builtin, payloadrun::detail::crc32c_copy_builtin}};
  auto bitwise = [](const unsigned char* p, std::size_t n) {
    std::uint32_t c = ~0u;
    for (std::size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
  };
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  // Longer buffers: the builtin code takes three interleaved chains (3 KiB
  // and 192-byte steps), ISA-L starts at 256 bytes and the copy goes in
  // 8 KiB chunks: every length around those boundaries, and 64 KiB.
  std::string big;
  std::uint32_t x = 12345;
  for (int i = 0; i < 70000; ++i) {
    x = x * 1103515245u + 12345u;
    big.push_back(static_cast<char>(x >> 24));
  }
  const auto* b = reinterpret_cast<const unsigned char*>(big.data());
  for (const auto& [crc, crc_copy] : impls) {
    EXPECT_EQ(crc("123456789", 9, 0), 0xE3069283u);
    std::string zeros(32, '\0');
    EXPECT_EQ(crc(zeros.data(), zeros.size(), 0), 0x8A9136AAu);
    for (std::size_t n = 0; n <= data.size(); ++n) {
      const auto* p = reinterpret_cast<const unsigned char*>(data.data());
      EXPECT_EQ(crc(p, n, 0), bitwise(p, n)) << n;
      // Incremental: split anywhere gives the same value.
      EXPECT_EQ(crc(p + n / 3, n - n / 3, crc(p, n / 3, 0)), bitwise(p, n));
      std::string copy(n + 1, '#');  // copy and CRC: the same value, the same bytes, no more
      EXPECT_EQ(crc_copy(copy.data(), p, n, 0), bitwise(p, n)) << n;
      EXPECT_EQ(copy, data.substr(0, n) + "#") << n;
    }
    for (std::size_t n : {191u, 192u, 193u, 255u, 256u, 257u, 383u, 384u, 391u, 1000u, 3071u, 3072u, 3073u,
                          3080u, 3264u, 6143u, 6144u, 6151u, 8191u, 8192u, 8193u, 8195u, 9300u, 16385u, 65536u,
                          70000u}) {
      EXPECT_EQ(crc(b, n, 0), bitwise(b, n)) << n;
      EXPECT_EQ(crc(b + 5, n - 5, crc(b, 5, 0)), bitwise(b, n)) << n;
      if (n > 300) {  // both parts long
        EXPECT_EQ(crc(b + 300, n - 300, crc(b, 300, 0)), bitwise(b, n)) << n;
      }
      std::string copy(n - 3 + 1, '#');  // from an unaligned source, nothing written past the end
      EXPECT_EQ(crc_copy(copy.data(), b + 3, n - 3, 0), bitwise(b + 3, n - 3)) << n;
      EXPECT_EQ(copy, big.substr(3, n - 3) + "#") << n;
      // Continued from a previous result, as a record that wraps the ring's
      // end is copied in two parts.
      for (std::size_t k : {std::size_t{100}, std::size_t{300}, n / 2}) {
        if (k >= n) continue;
        std::string two(n, '#');
        const std::uint32_t first = crc_copy(two.data(), b, k, 0);
        EXPECT_EQ(crc_copy(two.data() + k, b + k, n - k, first), bitwise(b, n)) << n << " split at " << k;
        EXPECT_EQ(two, big.substr(0, n)) << n;
      }
    }
  }
}

// The producer checksums a header from its eight words in registers; the
// consumer from the bytes in the ring. Both must agree on every field.
TEST(RingCrc, HeaderChecksumFromWordsMatchesTheOneFromBytes) {
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 200; ++round) {
    payloadrun::detail::HeaderWords words;
    for (auto& w : words.w) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    payloadrun::detail::RecordHeader bytes;
    std::memcpy(static_cast<void*>(&bytes), words.w, sizeof bytes);
    ASSERT_EQ(payloadrun::detail::header_crc(words), payloadrun::detail::header_crc(bytes)) << round;
    // Bytes 0-3 (state) and 60-63 (header_crc) are not covered; all others are.
    auto other = words;
    other.w[0] ^= 0xffffffffull;
    other.w[7] ^= 0xffffffffull << 32;
    EXPECT_EQ(payloadrun::detail::header_crc(other), payloadrun::detail::header_crc(words));
    for (int bit : {32, 64, 100, 200, 300, 420, 479}) {
      auto flipped = words;
      flipped.w[bit / 64] ^= std::uint64_t{1} << (bit % 64);
      EXPECT_NE(payloadrun::detail::header_crc(flipped), payloadrun::detail::header_crc(words)) << bit;
    }
  }
}

// The producer's header words hold each field at its documented offset
// (docs/ring-format.md): compared byte for byte with a header filled by name.
TEST(RingCrc, HeaderWordsPutEachFieldAtItsOffset) {
  namespace d = payloadrun::detail;
  d::RecordHeader by_name;
  std::memset(static_cast<void*>(&by_name), 0, sizeof by_name);
  by_name.state.store(d::slot_reserved);
  by_name.magic = d::record_magic;
  by_name.version = d::record_version;
  by_name.type = static_cast<std::uint16_t>(payloadrun::RecordType::raw_output);
  by_name.pid = 0x01020304u;
  by_name.payload_index = 0x1112131415161718ull;
  by_name.length = 0x21222324u;
  by_name.reserve_ns = 0x3132333435363738ull;
  by_name.message_id = 0x4142434445464748ull;
  by_name.frag_index = 0x51525354u;
  by_name.frag_count = 0x61626364u;
  by_name.total_length = 0x71727374u;
  const d::HeaderWords w =
      d::header_words(d::slot_reserved, payloadrun::RecordType::raw_output, 0x01020304u, 0x1112131415161718ull,
                      0x21222324u, 0x3132333435363738ull, 0x4142434445464748ull, 0x51525354u, 0x61626364u,
                      0x71727374u);
  unsigned char a[sizeof by_name], b[sizeof w.w];
  std::memcpy(a, static_cast<const void*>(&by_name), sizeof a);
  std::memcpy(b, w.w, sizeof b);
  for (std::size_t i = 0; i < sizeof a; ++i) EXPECT_EQ(a[i], b[i]) << "byte " << i;
  EXPECT_EQ(d::header_crc(w), d::header_crc(by_name));
}

TEST(RingCodec, MetricsRoundTripIsExact) {
  Completion c;
  c.payload_name = "na\"me\\ with \n\t\x01\x1f ctl and ünïcode ☃";
  c.pid = 1234;
  c.metrics.payload_index = 77;
  c.metrics.exit_code = -1;
  c.metrics.timed_out = true;
  c.metrics.killed_by_signal = 9;
  const std::vector<double> values = {0.1, -0.0, 5e-324, 1.7976931348623157e308, 1e21, 123456789.123456789,
                                      9007199254740993.0, -2.5e-300, 1.0 / 3.0, 42};
  for (std::size_t i = 0; i < values.size(); ++i) {
    c.metrics.add(fmt::format("m.{}\x02\"", i), values[i], MetricSource::deferred,
                  i % 2 ? MetricStream::stderr_stream : MetricStream::stdout_stream);
    c.metrics.set_hint(i, i % 3 == 0 ? Polarity::lower_better : Polarity::higher_better, "µs\n");
  }
  c.result = AssertResult::fail({DetailKind::bounds, "x < \"y\"\n"});
  c.error = "boom\r";
  const MetricsRecord r = decode_metrics(encode_metrics(c, true));
  EXPECT_EQ(r.payload_name, c.payload_name);
  EXPECT_EQ(r.payload_index, 77u);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.killed_by_signal, 9);
  EXPECT_TRUE(r.deferred);
  EXPECT_FALSE(r.result.passed);
  EXPECT_EQ(r.result.details, c.result.details);
  EXPECT_EQ(r.error, c.error);
  ASSERT_EQ(r.metrics.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const Metric a = c.metrics[i], b = r.metrics[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(std::memcmp(&a.value, &b.value, sizeof(double)), 0) << "value " << i << " " << b.value;
    EXPECT_EQ(a.polarity, b.polarity);
    EXPECT_EQ(a.unit, b.unit);
    EXPECT_EQ(a.source, b.source);
    EXPECT_EQ(a.stream, b.stream);
  }
}

TEST(RingCodec, RawRoundTripIsExact) {
  RawPayloadOutput raw;
  raw.payload_index = 5;
  raw.payload_name = "deferred";
  raw.stdout_text = std::string("{\"a\":1}\n\0zero\x7f", 15);
  raw.stderr_text = "err\x1b[31m";
  raw.hint = "look at \"iops\"";
  raw.metric_hints = {{"a", Polarity::higher_better, "ops"}, {"b", Polarity::unknown, ""}};
  raw.metric_bounds = MetricBounds{3, -0.5, std::numeric_limits<double>::infinity()};
  raw.exit_code = 2;
  raw.timed_out = true;
  raw.checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("a", 0.1), MetricCheck::max("b", 1e300),
                MetricCheck::range("c", -1, 1), MetricCheck::exists("d")};
  const RawPayloadOutput r = decode_raw(encode_raw(raw));
  EXPECT_EQ(r.payload_index, raw.payload_index);
  EXPECT_EQ(r.payload_name, raw.payload_name);
  EXPECT_EQ(r.stdout_text, raw.stdout_text);
  EXPECT_EQ(r.stderr_text, raw.stderr_text);
  EXPECT_EQ(r.hint, raw.hint);
  EXPECT_EQ(r.metric_hints, raw.metric_hints);
  EXPECT_EQ(r.metric_bounds, raw.metric_bounds);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.checks, raw.checks);
}

TEST(RingCodec, InvalidUtf8IsReplacedNotShipped) {
  RawPayloadOutput raw;
  raw.stdout_text = "ok\xff\xfe end";
  EXPECT_EQ(decode_raw(encode_raw(raw)).stdout_text, utf8_lossy(raw.stdout_text));
}

TEST(RingCodec, UntrustedBodiesThrowRingErrorsNeverCrash) {
  RawPayloadOutput raw;
  raw.stdout_text = "some text";
  raw.checks = {MetricCheck::min("a", 1)};
  const std::string good = encode_raw(raw);
  Completion c;
  c.metrics.add("x", 1);
  const std::string goodm = encode_metrics(c, false);
  int thrown = 0;
  for (std::size_t cut = 0; cut < good.size(); ++cut) {
    try {
      decode_raw(good.substr(0, cut));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::ring);
      ++thrown;
    }
  }
  EXPECT_EQ(thrown, static_cast<int>(good.size()));
  std::uint32_t x = 12345;
  for (int i = 0; i < 3000; ++i) {  // byte flips
    std::string b = i % 2 ? good : goodm;
    x = x * 1103515245 + 12345;
    b[x % b.size()] = static_cast<char>(x >> 16);
    try {
      if (i % 2) decode_raw(b); else decode_metrics(b);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::ring);
    }
  }
  EXPECT_THROW(decode_metrics("{\"payload\":\"x\",\"payload_index\":-1}"), Error);
  EXPECT_THROW(decode_metrics("[]"), Error);
}

// ------------------------------------------------------------ shared memory

TEST(Ring, CreateIsRaceFreeAndNamesAreValidated) {
  RingName name("create");
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; ++i) {
    kids.push_back(fork_child([&] {
      RingProducer p(name, {.capacity = 8192});
      p.write(RecordType::metrics, static_cast<std::uint64_t>(i), seq_body(i, 0));
      return p.flush_for(10s) ? 0 : 1;
    }));
  }
  for (pid_t k : kids) EXPECT_TRUE(exited_ok(wait_child(k)));
  RingConsumer consumer(name, {.capacity = 1 << 20});
  EXPECT_EQ(consumer.capacity(), 8192u) << "an existing ring keeps its capacity";
  std::set<std::uint64_t> got;
  while (auto m = consumer.next(100ms)) got.insert(m->payload_index);
  EXPECT_EQ(got, (std::set<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_THROW(RingConsumer{name.name}, Error) << "a second consumer is refused";
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + name.name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THROW(RingProducer("a/b"), Error);
  EXPECT_THROW(RingProducer(""), Error);
}

TEST(Ring, CrossProcessRoundTripAndWakeLatency) {
  RingName name("roundtrip");
  RingConsumer consumer(name, {.capacity = 1 << 16});
  constexpr int n = 200;
  const pid_t kid = fork_child([&] {
    RingProducer p(name);
    for (int i = 0; i < n; ++i) {
      p.write(RecordType::raw_output, static_cast<std::uint64_t>(i),
              std::to_string(mono_ns()));
      if (!p.flush_for(10s)) return 1;
      std::this_thread::sleep_for(500us);  // the consumer is asleep when the next commit lands
    }
    return 0;
  });
  std::vector<std::uint64_t> latency;
  for (int i = 0; i < n; ++i) {
    auto m = consumer.next(10s);
    ASSERT_TRUE(m) << "record " << i;
    const std::uint64_t now = mono_ns();
    EXPECT_EQ(m->payload_index, static_cast<std::uint64_t>(i));
    EXPECT_EQ(m->type, RecordType::raw_output);
    EXPECT_EQ(m->pid, static_cast<std::uint32_t>(kid));
    latency.push_back(now - std::stoull(m->body));
  }
  EXPECT_TRUE(exited_ok(wait_child(kid)));
  std::sort(latency.begin(), latency.end());
  const double median_us = static_cast<double>(latency[latency.size() / 2]) / 1000.0;
  const double p90_us = static_cast<double>(latency[latency.size() * 9 / 10]) / 1000.0;
  RecordProperty("wake_median_us", fmt::format("{:.1f}", median_us));
  std::printf("commit-to-consumer latency: median %.1f us, p90 %.1f us\n", median_us, p90_us);
  EXPECT_LT(median_us, 1000.0) << "the consumer must wake within a millisecond of a commit";
  EXPECT_EQ(consumer.stats().corrupt + consumer.stats().abandoned, 0u);
}

TEST(Ring, FourProducersHundredThousandEachThroughSixtyFourKiBWithPausingConsumer) {
  RingName name("stress");
  constexpr int producers = 4;
  constexpr int per = 100000;
  RingConsumer consumer(name, {.capacity = 64 * 1024});
  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> kids;
  for (int p = 0; p < producers; ++p) {
    kids.push_back(fork_child([&, p] {
      RingProducer prod(name);
      std::size_t max_depth = 0;
      for (int s = 0; s < per; ++s) {
        prod.write(RecordType::metrics, static_cast<std::uint64_t>(s), seq_body(p, s));
        max_depth = std::max(max_depth, prod.queue_depth());
        if (prod.queue_depth() > 4096 && !prod.flush_for(60s)) return 1;
      }
      if (!prod.flush_for(60s)) return 1;
      return max_depth > 0 ? 0 : 4;  // the pauses must have made it queue
    }));
  }
  std::vector<int> next_seq(producers, 0);
  std::uint64_t total = 0;
  bool ordered = true;
  while (total < static_cast<std::uint64_t>(producers) * per) {
    if (total % 50000 == 0) std::this_thread::sleep_for(100ms);  // pause: the ring fills
    auto m = consumer.next(30s);
    ASSERT_TRUE(m) << "stalled after " << total << " records";
    const auto [p, s] = parse_seq(m->body);
    ASSERT_TRUE(p >= 0 && p < producers) << m->body;
    if (s != next_seq[static_cast<std::size_t>(p)]) ordered = false;
    next_seq[static_cast<std::size_t>(p)] = s + 1;
    ASSERT_EQ(m->body, seq_body(p, s));
    ++total;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (pid_t k : kids) EXPECT_TRUE(exited_ok(wait_child(k)));
  EXPECT_TRUE(ordered) << "each producer's records arrive exactly once, in order";
  for (int p = 0; p < producers; ++p) EXPECT_EQ(next_seq[static_cast<std::size_t>(p)], per);
  EXPECT_FALSE(consumer.next(50ms)) << "no duplicate or extra record";
  EXPECT_EQ(consumer.stats().corrupt + consumer.stats().abandoned, 0u);
  std::printf("4 x 100000 records through a 64 KiB ring: %.2f s, %.0f records/s\n", secs,
              static_cast<double>(total) / secs);
}

TEST(Ring, FortyMiBRecordThroughOneMiBRingIsReassembled) {
  RingName name("huge");
  RingConsumer consumer(name, {.capacity = 1 << 20});
  RawPayloadOutput raw;
  raw.payload_index = 9;
  raw.payload_name = "huge";
  raw.stdout_text.resize(40u << 20);
  for (std::size_t i = 0; i < raw.stdout_text.size(); ++i) raw.stdout_text[i] = static_cast<char>('a' + i % 26);
  const std::string body = encode_raw(raw);
  const pid_t kid = fork_child([&] {
    RingProducer p(name);
    p.write(RecordType::raw_output, 9, body);
    return p.flush_for(120s) ? 0 : 1;
  });
  auto m = consumer.next(120s);
  ASSERT_TRUE(m);
  EXPECT_TRUE(exited_ok(wait_child(kid)));
  EXPECT_EQ(m->body.size(), body.size());
  EXPECT_TRUE(m->body == body);
  EXPECT_EQ(decode_raw(m->body).stdout_text.size(), 40u << 20);
  EXPECT_GT(consumer.stats().records, 40u * 4u);
  EXPECT_EQ(consumer.stats().incomplete, 0u);
}

TEST(Ring, ConsumerRestartLosesAndDuplicatesNothing) {
  RingName name("restart");
  constexpr int n = 30000;
  std::optional<RingConsumer> consumer(std::in_place, name, RingOptions{.capacity = 1 << 14});
  const pid_t kid = fork_child([&] {
    RingProducer p(name);
    for (int s = 0; s < n; ++s) {
      p.write(RecordType::metrics, static_cast<std::uint64_t>(s), seq_body(0, s));
      if (p.queue_depth() > 1000 && !p.flush_for(60s)) return 1;
    }
    return p.flush_for(60s) ? 0 : 1;
  });
  int next = 0;
  for (int round = 0; next < n; ++round) {
    for (int k = 0; k < 2500 && next < n; ++k) {
      auto m = consumer->next(30s);
      ASSERT_TRUE(m) << next;
      ASSERT_EQ(m->body, seq_body(0, next)) << "round " << round;
      ++next;
    }
    consumer.reset();  // stop ...
    std::this_thread::sleep_for(20ms);  // ... the producer queues meanwhile ...
    consumer.emplace(name);  // ... and restart
  }
  EXPECT_TRUE(exited_ok(wait_child(kid)));
  EXPECT_FALSE(consumer->next(50ms));
}

// RingConsumer::read (issue 16): four producers race for reservations in a
// small ring, some messages fragmented or wrapping the ring's end; every
// message arrives exactly once, in each producer's order, with its bytes,
// and the space of the message being read is not given back during its
// callback (the tail never passes a body that is being read in place).
TEST(Ring, ReadInPlaceRacingProducersExactlyOnceAndSpaceBackOnlyAfterTheCallback) {
  RingName name("inplace");
  constexpr int producers = 4;
  constexpr int per = 40000;
  RingConsumer consumer(name, {.capacity = 64 * 1024});
  auto body_of = [](int p, int s) {
    // Every 997th message is larger than a quarter of the ring: fragmented.
    return s % 997 == 0 ? seq_body(p, s) + std::string(20000, static_cast<char>('a' + p)) : seq_body(p, s);
  };
  std::vector<pid_t> kids;
  for (int p = 0; p < producers; ++p) {
    kids.push_back(fork_child([&, p] {
      RingProducer prod(name);
      for (int s = 0; s < per; ++s) {
        prod.write(RecordType::metrics, static_cast<std::uint64_t>(s), body_of(p, s));
        if (prod.queue_depth() > 256 && !prod.flush_for(60s)) return 1;
      }
      return prod.flush_for(60s) ? 0 : 1;
    }));
  }
  std::vector<int> next_seq(producers, 0);
  std::uint64_t total = 0, in_ring = 0, passed_tail = 0;
  std::string first_error;
  while (total < std::uint64_t{producers} * per) {
    const std::size_t got = consumer.read(30s, [&](const RingView& m) {
      const auto [p, s] = parse_seq(std::string(m.body.substr(0, 32)));
      if (p < 0 || p >= producers || s != next_seq[static_cast<std::size_t>(p)] || m.body != body_of(p, s)) {
        if (first_error.empty()) first_error = std::string(m.body.substr(0, 40));
        return;
      }
      next_seq[static_cast<std::size_t>(p)] = s + 1;
      const std::string origin = m.origin();
      if (origin.rfind("r:", 0) == 0) ++in_ring;
      // Read in place: one-record messages. A fragmented one is reassembled
      // into a copy, and one larger than a quarter of the ring cannot hold
      // its first fragments, so the tail may pass them by design.
      if (s % 997 != 0 && consumer.committed_position() > m.hold().ring_position) ++passed_tail;
      ++total;
    });
    ASSERT_GT(got, 0u) << "stalled after " << total << " messages";
    ASSERT_TRUE(first_error.empty()) << "wrong, duplicated or out-of-order message: " << first_error;
  }
  for (pid_t k : kids) EXPECT_TRUE(exited_ok(wait_child(k)));
  EXPECT_EQ(passed_tail, 0u) << "the tail moved past a message while its callback read it in place";
  EXPECT_EQ(in_ring, total);
  EXPECT_EQ(consumer.read(50ms, [](const RingView&) {}), 0u) << "no duplicate or extra message";
  EXPECT_EQ(consumer.stats().corrupt + consumer.stats().abandoned + consumer.stats().incomplete, 0u);
  EXPECT_EQ(consumer.stats().messages, total);
  EXPECT_TRUE(consumer.empty());
}

}  // namespace
