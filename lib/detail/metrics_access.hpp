// PayloadMetrics' storage (one name arena plus compact records), for the
// extractor and the evaluator that fill and rewrite it in place. Not part
// of the public API.
#pragma once

#include <string>
#include <vector>

#include "payloadrun/metrics.hpp"

namespace payloadrun::detail {

struct MetricsAccess {
  using Record = PayloadMetrics::Record;
  /// The names of every metric, back to back; a Record points into it.
  static std::string& name_arena(PayloadMetrics& m) noexcept { return m.names_; }
  static const std::string& name_arena(const PayloadMetrics& m) noexcept { return m.names_; }
  static std::vector<Record>& records(PayloadMetrics& m) noexcept { return m.records_; }
  static const std::vector<Record>& records(const PayloadMetrics& m) noexcept { return m.records_; }
};

}  // namespace payloadrun::detail
