// The seed corpus of fuzz_ring_decode (format: ring_fuzz.hpp), made with
// the real body encoder (encode_metrics, encode_raw) and, for the ring
// images, the real RingProducer. Regenerate with
//   PAYLOADRUN_FUZZ_WRITE_SEEDS=fuzz/corpus/ring_decode ./build-fuzz/fuzz/fuzz_ring_decode
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "detail/ring_layout.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "ring_fuzz.hpp"

namespace ring_fuzz {
namespace {

using namespace payloadrun;
using namespace std::chrono_literals;

const char* const fio_stdout =
    R"({"fio version":"fio-3.35","timestamp":1700000000,"jobs":[{"jobname":"randread",)"
    R"("read":{"io_bytes":52428800,"bw":51200,"iops":12800.5,"clat_ns":{"min":2000,"max":950000,)"
    R"("mean":77500.25,"percentile":{"50.000000":70000,"99.000000":310000}}},"write":{"iops":0}}],)"
    R"("disk_util":[{"name":"nvme0n1","util":87.5}]})";

Completion fio_completion() {
  Completion c;
  c.payload_name = "fio_randread";
  c.pid = 4242;
  c.metrics.payload_index = 3;
  c.metrics.duration = 12345678ns;
  c.metrics.add("jobs.0.read.iops", 12800.5);
  c.metrics.set_hint(0, Polarity::higher_better, "iops");
  c.metrics.add("jobs.0.read.clat_ns.percentile.99.000000", 310000);
  c.metrics.set_hint(1, Polarity::lower_better, "ns");
  c.metrics.add("disk_util.0.util", 87.5, MetricSource::json, MetricStream::stderr_stream);
  c.metrics.add("neg_zero", -0.0);
  c.metrics.add("tiny", 5e-324);
  c.metrics.add("huge", 1.7976931348623157e308);
  c.result = AssertResult::fail({DetailKind::other, "Min { metric: \"jobs.0.read.iops\", value: 20000 }"});
  return c;
}

Completion failed_completion() {
  Completion c;
  c.payload_name = "overrun \"quoted\" \x01 \xff";  // escaped and lossy-replaced by the encoder
  c.metrics.payload_index = 18446744073709551615ULL;
  c.metrics.exit_code = -1;
  c.metrics.timed_out = true;
  c.metrics.killed_by_signal = 9;
  c.metrics.add("nan", std::numeric_limits<double>::quiet_NaN());
  c.metrics.add("inf", std::numeric_limits<double>::infinity());
  c.metrics.add("minus_inf", -std::numeric_limits<double>::infinity());
  c.result = AssertResult::fail({DetailKind::spawn, "spawn failed: ENOENT"});
  c.result.merge(AssertResult::fail({DetailKind::lost, "lost"}));
  c.error = "read error: EIO";
  return c;
}

RawPayloadOutput raw_output(std::uint64_t index) {
  RawPayloadOutput r;
  r.payload_index = index;
  r.payload_name = "llm";
  r.stdout_text = std::string("model says:\n") + fio_stdout + "\nbye\t\x7f";
  r.stderr_text = "warning: slow\n";
  r.hint = "fio json";
  r.metric_hints = {{"jobs.0.read.iops", Polarity::higher_better, "iops"},
                    {"disk_util.0.util", Polarity::unknown, "%"}};
  r.metric_bounds = MetricBounds{2, 0.0, std::numeric_limits<double>::infinity()};
  r.exit_code = 0;
  r.checks = {MetricCheck::min("jobs.0.read.iops", 100), MetricCheck::max("disk_util.0.util", 100),
              MetricCheck::range("jobs.0.read.clat_ns.mean", -1e9, 1e9),
              MetricCheck::exists("jobs.0.write.iops"), MetricCheck::exit_code_eq(0)};
  return r;
}

void save(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

std::string with_mode(std::uint8_t mode, const std::string& rest) {
  return std::string(1, static_cast<char>(mode)) + rest;
}

// Fragments of `body` as the producer splits them for a ring of `capacity`.
std::vector<RecordSpec> fragments(std::uint8_t type, std::uint32_t pid, std::uint64_t index,
                                  std::uint64_t id, const std::string& body) {
  const std::size_t max = capacity / 4 - detail::record_header_size;
  const std::size_t count = body.empty() ? 1 : (body.size() + max - 1) / max;
  std::vector<RecordSpec> out;
  for (std::size_t i = 0; i < count; ++i) {
    RecordSpec r;
    r.type = type;
    r.pid = pid;
    r.payload_index = index;
    r.message_id = id;
    r.frag_index = static_cast<std::uint32_t>(i);
    r.frag_count = static_cast<std::uint32_t>(count);
    r.total_length = static_cast<std::uint32_t>(body.size());
    r.body = body.substr(i * max, max);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<RecordSpec> operator+(std::vector<RecordSpec> a, const std::vector<RecordSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Image and header-page seeds: the bytes a real RingProducer wrote.
void producer_seeds(const std::string& dir) {
  const std::string name = "payloadrun-fuzz-seeds-" + std::to_string(::getpid());
  remove_ring(name);
  const auto dump = [&](const std::string& seed) {
    const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC, 0);
    const std::size_t size = detail::ring_header_size + capacity;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) std::abort();
    const auto* h = static_cast<const detail::RingHeader*>(p);
    const char* bytes = static_cast<const char*>(p);
    std::string image;
    put(image, h->tail.load(), 8);
    put(image, h->head.load(), 8);
    image.append(bytes + detail::ring_header_size, capacity);
    save(dir, "image_" + seed, with_mode(image_mode, image));
    save(dir, "header_" + seed, with_mode(header_mode, std::string(1, '\0') + std::string(bytes, size)));
    ::munmap(p, size);
  };
  {
    RingProducer producer(name, RingOptions{.capacity = capacity});
    producer.write(RecordType::metrics, 3, encode_metrics(fio_completion(), false));
    producer.write(RecordType::raw_output, 4, encode_raw(raw_output(4)));
    Completion deferred;
    deferred.payload_name = "llm";
    deferred.metrics.payload_index = 4;
    producer.write(RecordType::metrics, 4, encode_metrics(deferred, true));
    dump("producer_messages");
    // Consume those, then write across the end of the data area (wrap) and
    // a message long enough to be fragmented.
    {
      RingConsumer consumer(name);
      while (consumer.next(0ms)) {
      }
    }
    producer.write(RecordType::metrics, 5, encode_metrics(failed_completion(), false));
    RawPayloadOutput long_raw = raw_output(6);
    while (long_raw.stdout_text.size() < 5000) long_raw.stdout_text += raw_output(6).stdout_text;
    producer.write(RecordType::raw_output, 6, encode_raw(long_raw));
    dump("producer_wrapped_fragmented");
  }
  remove_ring(name);
}

}  // namespace

void write_ring_seeds(const std::string& dir) {
  const std::string metrics = encode_metrics(fio_completion(), false);
  const std::string failed = encode_metrics(failed_completion(), false);
  const std::string raw = encode_raw(raw_output(4));
  Completion deferred;
  deferred.payload_name = "llm";
  deferred.metrics.payload_index = 4;
  const std::string deferred_metrics = encode_metrics(deferred, true);

  // Bodies.
  save(dir, "body_metrics", with_mode(body_mode, metrics));
  save(dir, "body_metrics_failed", with_mode(body_mode, failed));
  save(dir, "body_metrics_deferred", with_mode(body_mode, deferred_metrics));
  save(dir, "body_raw", with_mode(body_mode, raw));
  save(dir, "body_raw_minimal", with_mode(body_mode, encode_raw(RawPayloadOutput{})));
  save(dir, "body_truncated", with_mode(body_mode, metrics.substr(0, metrics.size() / 2)));

  // Records as a producer lays them out.
  save(dir, "records_metrics", encode_records(0, fragments(1, 4242, 3, 1, metrics)));
  save(dir, "records_deferred_pair",
       encode_records(0, fragments(2, 4242, 4, 2, raw) + fragments(1, 4242, 4, 3, deferred_metrics)));
  RawPayloadOutput long_raw = raw_output(6);
  while (long_raw.stdout_text.size() < 5000) long_raw.stdout_text += raw_output(6).stdout_text;
  save(dir, "records_fragmented_wrapping",
       encode_records(capacity - 2 * detail::record_align,
                      fragments(2, 4242, 6, 9, encode_raw(long_raw)) +
                          fragments(1, 4242, 6, 10, deferred_metrics)));
  auto corrupt = fragments(1, 4242, 3, 1, metrics) + fragments(1, 4242, 5, 2, failed);
  corrupt[0].flags = bad_body_crc;
  save(dir, "records_bad_body_crc", encode_records(0, corrupt));
  corrupt[0].flags = bad_header_crc;
  save(dir, "records_bad_header_crc", encode_records(0, corrupt));
  corrupt[0].flags = bad_magic;
  save(dir, "records_bad_magic", encode_records(0, corrupt));
  corrupt[0].flags = reserved_only;  // pid 4242: abandoned unless such a process lives
  save(dir, "records_abandoned", encode_records(0, corrupt));
  corrupt[0].flags = reserved_only | own_pid;  // a live producer: the consumer waits
  save(dir, "records_blocked", encode_records(0, corrupt));
  auto lost_first = fragments(2, 4242, 6, 9, encode_raw(long_raw));
  lost_first[0].flags = bad_body_crc;
  save(dir, "records_fragment_lost", encode_records(0, lost_first));

  producer_seeds(dir);
}

}  // namespace ring_fuzz
