// payloadrun runner: naming places and value types in a JSON document, for
// error messages that say where and what (`payloads[2].checks[0].min.value:
// expected a number, got a string`).
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace runner {

/// "an array", "an integer", "null", ...
const char* json_type_name(simdjson::dom::element_type t);
/// `path.key`, or `key` at the top level (empty path).
std::string json_path_join(const std::string& path, std::string_view key);
/// `path[i]`.
std::string json_path_index(const std::string& path, std::size_t i);

}  // namespace runner
