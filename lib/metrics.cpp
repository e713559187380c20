// PayloadMetrics: one name arena plus compact records.
#include "payloadrun/metrics.hpp"

#include <limits>

#include "payloadrun/error.hpp"

namespace payloadrun {

const char* to_string(Polarity p) noexcept {
  switch (p) {
    case Polarity::higher_better: return "higher_better";
    case Polarity::lower_better: return "lower_better";
    case Polarity::unknown: break;
  }
  return "unknown";
}

const char* to_string(MetricSource s) noexcept {
  return s == MetricSource::deferred ? "deferred" : "json";
}

const char* to_string(MetricStream s) noexcept {
  return s == MetricStream::stderr_stream ? "stderr" : "stdout";
}

Metric PayloadMetrics::operator[](std::size_t i) const noexcept {
  const Record& r = records_[i];
  return Metric{std::string_view(names_).substr(r.name_offset, r.name_length), r.value,
                r.polarity, std::string_view(units_[r.unit]), r.source, r.stream};
}

std::optional<std::size_t> PayloadMetrics::find(std::string_view name) const noexcept {
  const std::string_view arena(names_);
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    if (r.name_length == name.size() && arena.substr(r.name_offset, r.name_length) == name) {
      return i;
    }
  }
  return std::nullopt;
}

std::optional<double> PayloadMetrics::get(std::string_view name) const noexcept {
  if (auto i = find(name)) return records_[*i].value;
  return std::nullopt;
}

void PayloadMetrics::add(std::string_view name, double value, MetricSource source,
                         MetricStream stream) {
  if (names_.size() + name.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw Error(Errc::invalid_argument, "PayloadMetrics: metric names exceed 4 GiB");
  }
  const auto off = static_cast<std::uint32_t>(names_.size());
  names_.append(name);
  records_.push_back(Record{off, static_cast<std::uint32_t>(name.size()), 0, Polarity::unknown,
                            source, stream, value});
}

void PayloadMetrics::set_hint(std::size_t i, Polarity polarity, std::string_view unit) {
  Record& r = records_.at(i);
  r.polarity = polarity;
  if (unit.empty()) {
    r.unit = 0;
    return;
  }
  // Units come from a handful of hints: a linear scan of the table is cheap.
  for (std::size_t u = 1; u < units_.size(); ++u) {
    if (units_[u] == unit) {
      r.unit = static_cast<std::uint32_t>(u);
      return;
    }
  }
  units_.emplace_back(unit);
  r.unit = static_cast<std::uint32_t>(units_.size() - 1);
}

void PayloadMetrics::clear() noexcept {
  names_.clear();
  records_.clear();
  units_.resize(1);
}

void PayloadMetrics::reserve(std::size_t metrics, std::size_t name_bytes) {
  records_.reserve(metrics);
  names_.reserve(name_bytes);
}

std::vector<PayloadMetrics::OwnedMetric> PayloadMetrics::to_vector() const {
  std::vector<OwnedMetric> out;
  out.reserve(records_.size());
  for (const Metric m : *this) {
    out.push_back(OwnedMetric{std::string(m.name), m.value, m.polarity, std::string(m.unit),
                              m.source, m.stream});
  }
  return out;
}

}  // namespace payloadrun
