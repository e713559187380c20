// Ranking metric names by closeness to a missing one (closest_names.hpp).
#include "detail/closest_names.hpp"

#include <algorithm>
#include <cctype>
#include <tuple>
#include <unordered_set>

namespace payloadrun::detail {
namespace {

// Cells of edit-distance tables one call may fill (about 0.1 s): past it,
// the remaining names are ranked by suffix and substring only.
constexpr std::size_t edit_distance_budget = 50'000'000;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool at_boundary(std::string_view name, std::size_t pos, std::size_t len) {
  return (pos == 0 || name[pos - 1] == '.') && (pos + len == name.size() || name[pos + len] == '.');
}

// The last `segments` dot-separated segments of `name` (all of it if fewer).
std::string_view last_segments(std::string_view name, std::size_t segments) {
  std::size_t pos = name.size();
  for (std::size_t k = 0; k < segments; ++k) {
    const std::size_t dot = name.rfind('.', pos == 0 ? 0 : pos - 1);
    if (dot == std::string_view::npos || pos == 0) return name;
    pos = dot;
  }
  return name.substr(pos + 1);
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
  if (a.size() > b.size()) std::swap(a, b);
  if (b.size() - a.size() > limit) return limit + 1;
  std::vector<std::size_t> row(a.size() + 1);
  for (std::size_t i = 0; i <= a.size(); ++i) row[i] = i;
  for (std::size_t j = 1; j <= b.size(); ++j) {
    std::size_t diagonal = row[0];
    row[0] = j;
    std::size_t best = row[0];
    for (std::size_t i = 1; i <= a.size(); ++i) {
      const std::size_t up = row[i];
      row[i] = std::min({row[i] + 1, row[i - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
      best = std::min(best, row[i]);
    }
    if (best > limit) return limit + 1;
  }
  return std::min(row[a.size()], limit + 1);
}

ClosestNames closest_names(std::string_view wanted, const PayloadMetrics& metrics, std::size_t limit) {
  struct Candidate {
    int rank;
    std::size_t distance;
    std::size_t length;
    std::size_t order;
    std::string_view name;
  };
  const std::string wanted_lower = lower(wanted);
  const std::size_t segments = static_cast<std::size_t>(std::count(wanted.begin(), wanted.end(), '.')) + 1;
  const std::size_t max_distance = std::max<std::size_t>(1, wanted.size() / 4);
  std::vector<Candidate> found;
  std::unordered_set<std::string_view> seen;
  std::size_t order = 0;
  std::size_t budget = edit_distance_budget;
  for (const Metric m : metrics) {
    const std::string_view name = m.name;
    ++order;
    if (name == wanted || !seen.insert(name).second) continue;
    const std::string name_lower = lower(name);
    int rank = -1;
    std::size_t distance = name.size() - std::min(name.size(), wanted.size());
    const std::size_t pos = name.find(wanted);
    if (pos != std::string_view::npos && pos + wanted.size() == name.size() && at_boundary(name, pos, wanted.size())) {
      rank = 0;
    } else if (pos != std::string_view::npos && at_boundary(name, pos, wanted.size())) {
      rank = 1;
    } else if (name_lower.find(wanted_lower) != std::string::npos) {
      rank = 2;
    } else if (wanted.size() <= 256 && budget >= wanted.size() * 2 * name.size()) {
      budget -= wanted.size() * 2 * name.size();  // the two edit distances' cells, at most
      const std::size_t whole = edit_distance(wanted_lower, name_lower, max_distance);
      const std::size_t tail = edit_distance(wanted_lower, last_segments(name_lower, segments), max_distance);
      distance = std::min(whole, tail);
      if (distance <= max_distance) rank = 3;
    }
    if (rank >= 0) found.push_back({rank, distance, name.size(), order, name});
  }
  std::sort(found.begin(), found.end(), [](const Candidate& x, const Candidate& y) {
    return std::tie(x.rank, x.distance, x.length, x.order) < std::tie(y.rank, y.distance, y.length, y.order);
  });
  ClosestNames out;
  for (const Candidate& c : found) {
    if (out.names.size() < limit) {
      out.names.emplace_back(c.name);
    } else if (c.rank <= 2) {
      ++out.more_containing;
    }
  }
  return out;
}

}  // namespace payloadrun::detail
