// The one JSON writer of the library and its programs (docs/json.md): ring
// bodies and sidecar lines (lib/), the runner's reports and the scenario
// digest's canonical form (examples/runner/). Header-only, so the programs
// share it through payloadrun_detail_dep without the library exporting it.
//
// Policy:
// - strings: `"` `\` as `\"` `\\`; `\n` `\r` `\t` as themselves; every other
//   control character (U+0000..U+001F) and DEL as `\u00XX` (lowercase hex);
//   everything else verbatim. Invalid UTF-8 is first replaced as Rust's
//   String::from_utf8_lossy does (payloadrun::utf8_lossy: one U+FFFD per
//   maximal ill-formed subsequence), so the output is always valid JSON.
// - doubles: shortest round-trip form (fmt `{}`), `.0` appended when it
//   would read as an integer (so a double stays a double and -0.0 survives);
//   non-finite values are the strings "NaN", "Infinity", "-Infinity"
//   (json_fields.hpp reads them back, and null as NaN for older documents).
#pragma once

#include <simdjson.h>

#include <cmath>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "payloadrun/evaluate.hpp"

namespace payloadrun::detail {

/// `s` as a JSON string literal (quotes included), appended to `out`.
inline void json_string(std::string& out, std::string_view s) {
  if (!simdjson::validate_utf8(s.data(), s.size())) {
    json_string(out, utf8_lossy(s));
    return;
  }
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

/// `s` as a JSON string literal, or null when there is none.
inline void json_string_or_null(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    json_string(out, *s);
  } else {
    out += "null";
  }
}

/// `s` as a JSON string literal.
inline std::string json_quote(std::string_view s) {
  std::string out;
  json_string(out, s);
  return out;
}

/// `v` as a JSON number (a string for NaN and the infinities), appended.
inline void json_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"NaN\"";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    return;
  }
  const std::size_t start = out.size();
  fmt::format_to(std::back_inserter(out), "{}", v);
  if (out.find_first_of(".eE", start) == std::string::npos) out += ".0";
}

/// `v` as json_double writes it.
inline std::string json_number(double v) {
  std::string out;
  json_double(out, v);
  return out;
}

}  // namespace payloadrun::detail
