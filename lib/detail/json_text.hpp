// Text preparation for metric extraction: Rust's str::trim, the cheap
// "could this be one JSON value" test, and the copies that make simdjson see
// what serde_json would (numbers it reads as f64, lossy UTF-8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace payloadrun::detail {

/// Rust's str::trim (Unicode White_Space at both ends).
std::string_view rust_trim(std::string_view s) noexcept;
/// Whether `s` starts and ends as a lone JSON value must.
bool could_be_one_value(std::string_view s) noexcept;
/// Whether `s` may hold the integer token `-0` (outside or inside strings).
bool has_negative_zero_integer(std::string_view s) noexcept;
/// Copy `s` to `out` with ".0" appended to the integer tokens serde_json
/// reads as f64 but simdjson does not (`-0`, 19+ digits). Whether anything changed.
bool rewrite_numbers(std::string_view s, std::string& out);
/// String::from_utf8_lossy into `out`.
void lossy_utf8(std::string_view s, std::string& out);

}  // namespace payloadrun::detail
