// The one simdjson field reader of the library and its programs
// (docs/json.md): typed access to untrusted JSON where every failure names
// the place and what was expected there ("payloads[2].checks[0].min.value:
// expected a number, got a string"), the reading of doubles json_write.hpp
// wrote. The ring decoder (lib/detail/ring_codec.cpp), the scenario parser
// and the report reader (examples/runner/) use it; header-only, shared with
// the runner through payloadrun_detail_dep.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace payloadrun::detail {

/// "an array", "an integer", "null", ...
inline const char* json_type_name(simdjson::dom::element_type t) {
  using simdjson::dom::element_type;
  switch (t) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "a value";
}

/// `path.key`, or `key` at the top level (empty path).
inline std::string json_path_join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

/// `path[i]`.
inline std::string json_path_index(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

/// A message's place: the path, or "(top level)".
inline std::string json_where(const std::string& path) { return path.empty() ? "(top level)" : path; }

/// The one wording of a type mismatch: "expected WHAT, got TYPE".
inline std::string json_expected(std::string_view what, simdjson::dom::element e) {
  return fmt::format("expected {}, got {}", what, json_type_name(e.type()));
}

/// A double as json_double wrote it: a number, or one of the strings "NaN",
/// "Infinity", "-Infinity"; with `null_is_nan`, null too (documents written
/// before docs/json.md, which had null for non-finite values). False when
/// `e` is none of these.
inline bool json_read_double(simdjson::dom::element e, double& out, bool null_is_nan = false) {
  if (e.is_number()) return e.get_double().get(out) == simdjson::SUCCESS;
  if (null_is_nan && e.is_null()) {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return false;
  if (s == "NaN") out = std::numeric_limits<double>::quiet_NaN();
  else if (s == "Infinity") out = std::numeric_limits<double>::infinity();
  else if (s == "-Infinity") out = -std::numeric_limits<double>::infinity();
  else return false;
  return true;
}

/// Typed reads of untrusted JSON. Every failure calls `fail(place, what)`,
/// which must throw (the caller's exception: payloadrun::Error, the runner's
/// ScenarioError, ...); `place` is the JSON path or "(top level)".
class JsonReader {
 public:
  using Fail = std::function<void(const std::string& place, const std::string& what)>;
  using element = simdjson::dom::element;
  using object = simdjson::dom::object;
  using array = simdjson::dom::array;

  explicit JsonReader(Fail fail) : fail_(std::move(fail)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    fail_(json_where(path), what);
    std::abort();  // `fail` broke its contract
  }
  /// "expected WHAT, got TYPE".
  [[noreturn]] void expected(const std::string& path, std::string_view what, element e) const {
    fail(path, json_expected(what, e));
  }

  object as_object(element e, const std::string& path, std::string_view what = "an object") const {
    object o;
    if (e.get(o) != simdjson::SUCCESS) expected(path, what, e);
    return o;
  }
  array as_array(element e, const std::string& path, std::string_view what = "an array") const {
    array a;
    if (e.get(a) != simdjson::SUCCESS) expected(path, what, e);
    return a;
  }
  std::string_view as_string(element e, const std::string& path, std::string_view what = "a string") const {
    std::string_view s;
    if (e.get(s) != simdjson::SUCCESS) expected(path, what, e);
    return s;
  }
  bool as_bool(element e, const std::string& path) const {
    bool b = false;
    if (e.get(b) != simdjson::SUCCESS) expected(path, "true or false", e);
    return b;
  }
  /// A finite JSON number (integer or not).
  double as_number(element e, const std::string& path, std::string_view what = "a number") const {
    double d = 0;
    if (!e.is_number() || e.get(d) != simdjson::SUCCESS) expected(path, what, e);
    return d;
  }
  /// A double as json_double writes it (json_read_double).
  double as_double(element e, const std::string& path, bool null_is_nan = false) const {
    double d = 0;
    if (!json_read_double(e, d, null_is_nan)) {
      expected(path, null_is_nan ? R"(a number, "NaN", "Infinity", "-Infinity" or null)"
                                 : R"(a number, "NaN", "Infinity" or "-Infinity")",
               e);
    }
    return d;
  }
  /// An integer token (never 1.0) in [lo, hi]; `what` names the range.
  std::int64_t as_integer(element e, const std::string& path, std::int64_t lo, std::int64_t hi,
                          std::string_view what) const {
    std::int64_t v = 0;
    if (e.type() == simdjson::dom::element_type::DOUBLE || e.get(v) != simdjson::SUCCESS) expected(path, what, e);
    if (v < lo || v > hi) fail(path, fmt::format("expected {}, got {}", what, v));
    return v;
  }
  std::int64_t as_integer(element e, const std::string& path, std::int64_t lo, std::int64_t hi) const {
    return as_integer(e, path, lo, hi, fmt::format("an integer from {} to {}", lo, hi));
  }
  std::uint64_t as_unsigned(element e, const std::string& path, std::string_view what = "a non-negative integer") const {
    std::uint64_t v = 0;
    if (e.type() == simdjson::dom::element_type::DOUBLE || e.get(v) != simdjson::SUCCESS) expected(path, what, e);
    return v;
  }
  /// `o[key]`, or a failure "missing; expected WHAT" at `path.key`.
  element required(object o, const std::string& path, std::string_view key, std::string_view what) const {
    element e;
    if (o[key].get(e) != simdjson::SUCCESS) fail(json_path_join(path, key), fmt::format("missing; expected {}", what));
    return e;
  }
  /// Whether `o` has `key`, and `out` its value.
  static bool optional(object o, std::string_view key, element& out) { return o[key].get(out) == simdjson::SUCCESS; }
  /// Unknown keys are errors (a typo must not silently drop a setting).
  void only_keys(object o, const std::string& path, std::initializer_list<std::string_view> keys) const {
    for (auto field : o) {
      bool known = false;
      for (auto k : keys) known = known || k == field.key;
      if (!known) {
        fail(json_path_join(path, field.key), fmt::format("unknown key; expected one of: {}", fmt::join(keys, ", ")));
      }
    }
  }

 private:
  Fail fail_;
};

}  // namespace payloadrun::detail
