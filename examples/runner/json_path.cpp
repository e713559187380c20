// payloadrun runner: JSON paths and type names for messages (json_path.hpp).
#include "json_path.hpp"

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

}  // namespace runner
