// The names closest to a missing metric's name, for its "not found" detail.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/metrics.hpp"

namespace payloadrun::detail {

struct ClosestNames {
  std::vector<std::string> names;  ///< best first, at most the limit asked for
  /// Further names that contain `wanted` (or end with it) but were not shown.
  std::size_t more_containing = 0;
};

/// Up to `limit` distinct names of `metrics` close to `wanted`, ranked: a
/// name ending with "." + wanted; containing it between dots; containing it
/// anywhere (case-insensitive); then within a small edit distance of it or of
/// the name's last segments (within a bounded amount of work: a huge document
/// gets the first two ranks only past it). Shorter, then earlier names first
/// within a rank.
ClosestNames closest_names(std::string_view wanted, const PayloadMetrics& metrics, std::size_t limit = 3);

/// Levenshtein distance of `a` and `b`, or `limit + 1` once it exceeds `limit`.
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit);

}  // namespace payloadrun::detail
