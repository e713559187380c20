// payloadrun: metrics extracted from a payload's output.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/export.hpp"

namespace payloadrun {

namespace detail {
struct MetricsAccess;  // library-internal
}

/// Whether a larger value of a metric is better, worse, or not known.
enum class Polarity : std::uint8_t { unknown, higher_better, lower_better };

/// How a metric was obtained: parsed in the supervisor from JSON output, or
/// extracted later by the ring consumer from shipped raw output (Deferred).
enum class MetricSource : std::uint8_t { json, deferred };

/// Which captured stream a metric was read from.
enum class MetricStream : std::uint8_t { stdout_stream, stderr_stream };

PAYLOADRUN_API const char* to_string(Polarity p) noexcept;
PAYLOADRUN_API const char* to_string(MetricSource s) noexcept;
PAYLOADRUN_API const char* to_string(MetricStream s) noexcept;

/// One metric, as a view into the PayloadMetrics that holds it. `name` and
/// `unit` stay valid while that PayloadMetrics is alive and not modified.
struct Metric {
  std::string_view name;
  double value = 0.0;
  Polarity polarity = Polarity::unknown;
  std::string_view unit;
  MetricSource source = MetricSource::json;
  MetricStream stream = MetricStream::stdout_stream;
};

/// The metric set and exit facts of one payload invocation.
///
/// Metrics keep the order in which they were found; reading one by index,
/// or iterating, yields Metric views (no allocation), and a document with
/// thousands of metrics is stored compactly. Names may repeat (two paths
/// can flatten to the same dotted name); get() answers the first.
class PAYLOADRUN_API PayloadMetrics {
 public:
  /// Unique per process, allocated when the invocation completes.
  std::uint64_t payload_index = 0;
  /// Exit status; -1 when the payload died from a signal (timeout, kill).
  int exit_code = 0;
  /// The deadline expired and payloadrun killed the payload.
  bool timed_out = false;
  /// kill(), kill_async() or Supervisor::shutdown() stopped the payload
  /// while its leader lived (whatever the exit code: after a graceful stop,
  /// PayloadRun::stop_signal(), it may have exited by itself), or before
  /// its process started (a spawn queued by SupervisorOptions::spawn_slice).
  bool killed = false;
  /// Signal that ended the payload, if a signal did.
  std::optional<int> killed_by_signal;
  /// A stream exceeded the capture cap; the rest of it was discarded.
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  /// Descendants held the pipes open after the payload ended; payloadrun
  /// stopped reading after the drain grace period.
  bool drain_cut_short = false;
  /// Wall time from spawn to completion.
  std::chrono::nanoseconds duration{0};
  /// Figures of the payload's own cgroup (own_cgroup()), each only where the
  /// kernel provides it (memory.peak, cpu.stat usage_usec, pids.peak).
  std::optional<std::uint64_t> cgroup_memory_peak_bytes;
  std::optional<std::uint64_t> cgroup_cpu_usage_usec;
  std::optional<std::uint64_t> cgroup_pids_peak;

  std::size_t size() const noexcept { return records_.size(); }
  bool empty() const noexcept { return records_.empty(); }
  Metric operator[](std::size_t i) const noexcept;

  /// Value of the first metric called `name`, if any.
  std::optional<double> get(std::string_view name) const noexcept;
  /// Index of the first metric called `name`, if any.
  std::optional<std::size_t> find(std::string_view name) const noexcept;

  /// Append a metric (polarity unknown, no unit).
  void add(std::string_view name, double value, MetricSource source = MetricSource::json,
           MetricStream stream = MetricStream::stdout_stream);
  /// Set the polarity and unit of metric `i`.
  void set_hint(std::size_t i, Polarity polarity, std::string_view unit);
  void clear() noexcept;
  void reserve(std::size_t metrics, std::size_t name_bytes);

  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Metric;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Metric;
    const_iterator() = default;
    const_iterator(const PayloadMetrics* m, std::size_t i) : m_(m), i_(i) {}
    Metric operator*() const { return (*m_)[i_]; }
    const_iterator& operator++() { ++i_; return *this; }
    const_iterator operator++(int) { auto t = *this; ++i_; return t; }
    const_iterator& operator--() { --i_; return *this; }
    const_iterator& operator+=(difference_type d) { i_ += static_cast<std::size_t>(d); return *this; }
    const_iterator operator+(difference_type d) const { auto t = *this; t += d; return t; }
    difference_type operator-(const const_iterator& o) const {
      return static_cast<difference_type>(i_) - static_cast<difference_type>(o.i_);
    }
    Metric operator[](difference_type d) const { return (*m_)[i_ + static_cast<std::size_t>(d)]; }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }
    bool operator<(const const_iterator& o) const { return i_ < o.i_; }

   private:
    const PayloadMetrics* m_ = nullptr;
    std::size_t i_ = 0;
  };
  const_iterator begin() const noexcept { return {this, 0}; }
  const_iterator end() const noexcept { return {this, records_.size()}; }

  /// Copy the metrics out as owning values (for callers that outlive this).
  struct OwnedMetric {
    std::string name;
    double value;
    Polarity polarity;
    std::string unit;
    MetricSource source;
    MetricStream stream;
  };
  std::vector<OwnedMetric> to_vector() const;

  /// Bytes of all metric names together (what reserve()'s `name_bytes`
  /// sizes).
  std::size_t name_bytes() const noexcept { return names_.size(); }

 private:
  friend struct detail::MetricsAccess;  // the extractor and the evaluator
  struct Record {
    std::uint32_t name_offset;
    std::uint32_t name_length;
    std::uint32_t unit;  // index into units_ (0 = no unit)
    Polarity polarity;
    MetricSource source;
    MetricStream stream;
    double value;
  };
  std::string names_;
  std::vector<Record> records_;
  std::vector<std::string> units_{std::string()};
};

}  // namespace payloadrun
