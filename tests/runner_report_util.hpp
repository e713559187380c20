// Report helpers for the shard and merge suites (test_shard.cpp,
// test_runner_merge.cpp, test_runner_merge_slices.cpp): simdjson arrays by
// value, a small two-payload scenario, one edit of a report's text.
#pragma once

#include <simdjson.h>

#include <stdexcept>
#include <string>

namespace runner_test {

// By value: range-for over a temporary simdjson_result's value() dangles.
inline simdjson::dom::array array_of(simdjson::simdjson_result<simdjson::dom::element> e) {
  simdjson::dom::array a;
  if (e.get(a) != simdjson::SUCCESS) throw std::runtime_error("not an array");
  return a;
}

constexpr const char* small_scenario = R"({"payloads": [
  {"name": "ok", "binary": "sh", "output": "json", "args": ["-c", "echo '{\"v\": 7}'"],
   "metrics": [{"name": "v", "polarity": "higher_better", "unit": "ops"}], "count": 9},
  {"name": "also", "binary": "true", "count": 5}]})";

inline std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  if (at == std::string::npos) throw std::runtime_error("no \"" + from + "\" in the report");
  return s.replace(at, from.size(), to);
}

}  // namespace runner_test
