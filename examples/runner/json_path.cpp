// payloadrun runner: JSON paths and type names for messages (json_path.hpp).
#include "json_path.hpp"

#include <set>

#include <fmt/format.h>

namespace runner {

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
      const std::string where = payloadrun::detail::json_where(path);
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
