// payloadrun runner: JSON paths and type names for messages (json_path.hpp).
#include "json_path.hpp"

#include <set>

#include <fmt/format.h>

namespace runner {

const char* json_type_name(simdjson::dom::element_type t) {
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

std::string json_path_join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string json_path_index(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

std::string nul_byte_problem(std::string_view s) {
  const auto at = s.find('\0');
  return at == std::string_view::npos ? std::string() : fmt::format("contains a NUL byte at offset {}", at);
}

namespace {

// Depth-first; `path` names `e`. The DOM keeps every field of an object,
// duplicates included, in document order.
std::string key_problem(simdjson::dom::element e, const std::string& path) {
  simdjson::dom::object o;
  simdjson::dom::array a;
  if (e.get(o) == simdjson::SUCCESS) {
    std::set<std::string_view> keys;
    for (auto field : o) {
      const std::string where = path.empty() ? "(top level)" : path;
      if (const std::string nul = nul_byte_problem(field.key); !nul.empty()) {
        return fmt::format("{}: a key {}", where, nul);
      }
      if (!keys.insert(field.key).second) {
        return fmt::format("{}: duplicate key \"{}\" (a key may appear once per object)", where, field.key);
      }
      if (std::string p = key_problem(field.value, json_path_join(path, field.key)); !p.empty()) return p;
    }
  } else if (e.get(a) == simdjson::SUCCESS) {
    std::size_t i = 0;
    for (auto item : a) {
      if (std::string p = key_problem(item, json_path_index(path, i++)); !p.empty()) return p;
    }
  }
  return {};
}

}  // namespace

std::string find_duplicate_key(simdjson::dom::element root) { return key_problem(root, ""); }

}  // namespace runner
