// payloadrun runner: naming places and value types in a JSON document, for
// error messages that say where and what (`payloads[2].checks[0].min.value:
// expected a number, got a string`).
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "detail/json_fields.hpp"

namespace runner {

// Type names and paths: the one wording (lib/detail/json_fields.hpp).
using payloadrun::detail::json_path_index;
using payloadrun::detail::json_path_join;
using payloadrun::detail::json_type_name;

/// Where `s` has a NUL byte (which exec, C strings and messages would cut
/// at): "contains a NUL byte at offset N"; empty when it has none.
std::string nul_byte_problem(std::string_view s);

/// The first key problem at any depth of `root`, as "PATH: what": a key
/// given twice in one object (simdjson's lookup would silently take the
/// first) or a key with a NUL byte; empty when there is none.
std::string find_duplicate_key(simdjson::dom::element root);

}  // namespace runner
