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

/// Where `s` has a NUL byte (which exec, C strings and messages would cut
/// at): "contains a NUL byte at offset N"; empty when it has none.
std::string nul_byte_problem(std::string_view s);

/// The first key problem at any depth of `root`, as "PATH: what": a key
/// given twice in one object (simdjson's lookup would silently take the
/// first) or a key with a NUL byte; empty when there is none.
std::string find_duplicate_key(simdjson::dom::element root);

}  // namespace runner
