// Text preparation for metric extraction (see json_text.hpp).
#include "detail/json_text.hpp"

#include <cstdint>
#include <cstring>

namespace payloadrun::detail {
namespace {

}  // namespace

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Byte length of the Unicode White_Space character starting s, else 0.
std::size_t leading_space(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return 1;
  if (c == 0xC2 && s.size() >= 2 && (b(1) == 0x85 || b(1) == 0xA0)) return 2;  // NEL, NBSP
  if (s.size() < 3) return 0;
  const bool space = (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) ||              // U+1680
                     (c == 0xE2 && b(1) == 0x80 &&                               // U+2000..200A,
                      ((b(2) >= 0x80 && b(2) <= 0x8A) || b(2) == 0xA8 ||         // U+2028, U+2029,
                       b(2) == 0xA9 || b(2) == 0xAF)) ||                         // U+202F
                     (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) ||              // U+205F
                     (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80);                // U+3000
  return space ? 3 : 0;
}

// Rust's str::trim. At the end, a match on the last 1-3 bytes is a real
// character: the lead bytes checked can never be continuation bytes.
std::string_view rust_trim(std::string_view s) noexcept {
  for (std::size_t k; !s.empty() && (k = leading_space(s)) != 0;) s.remove_prefix(k);
  while (!s.empty()) {
    std::size_t k = 0;
    for (std::size_t n = 1; n <= 3 && n <= s.size() && k == 0; ++n) {
      if (leading_space(s.substr(s.size() - n)) == n) k = n;
    }
    if (k == 0) break;
    s.remove_suffix(k);
  }
  return s;
}

// Whether `s` starts and ends as a lone JSON value must. When not, parsing
// it whole would fail, so that attempt is skipped (banners, trailing prose).
bool could_be_one_value(std::string_view s) noexcept {
  if (s.empty()) return false;
  switch (s.front()) {
    case '{': return s.back() == '}';
    case '[': return s.back() == ']';
    case '"': return s.back() == '"';
    case 't':
    case 'f': return s.back() == 'e';
    case 'n': return s.back() == 'l';
    default: return (s.front() == '-' || is_digit(s.front())) && is_digit(s.back());
  }
}

// Index of the quote closing the string opened at `open`, or s.size(). A
// quote after an odd run of backslashes is escaped.
std::size_t string_end(std::string_view s, std::size_t open) noexcept {
  for (std::size_t q = open; (q = s.find('"', q + 1)) != std::string_view::npos;) {
    std::size_t k = q;
    while (k > open + 1 && s[k - 1] == '\\') --k;
    if ((q - k) % 2 == 0) return q;
  }
  return s.size();
}

// A `-0` integer token: a '-' where a value may start, then '0' and no more
// of a number. A hit inside a string only costs a needless rewrite.
bool has_negative_zero_integer(std::string_view s) noexcept {
  for (std::size_t i = 0; (i = s.find('-', i)) != std::string_view::npos; ++i) {
    const char before = i == 0 ? ' ' : s[i - 1];
    const char next = i + 2 < s.size() ? s[i + 2] : ' ';
    if (std::string_view(":,[ \n\t\r").find(before) != std::string_view::npos &&
        i + 1 < s.size() && s[i + 1] == '0' && !is_digit(next) && next != '.' && next != 'e' &&
        next != 'E') {
      return true;
    }
  }
  return false;
}

// Copy `s` to `out`, appending ".0" to the integer tokens (outside strings)
// that serde_json reads as f64 but simdjson does not: `-0`, and integers of
// 19+ digits (all those beyond i64/u64; ".0" does not change the nearest
// double of one that fits). Returns whether anything changed.
bool rewrite_numbers(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size() + 16);
  bool changed = false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    std::size_t k = i + 1;
    if (c == '"') {
      k = std::min(string_end(s, i) + 1, s.size());
    } else if (c == '-' || is_digit(c)) {
      const std::size_t first = (c == '-') ? i + 1 : i;
      for (k = first; k < s.size() && is_digit(s[k]);) ++k;
      const std::size_t digits = k - first;
      if (k < s.size() && (s[k] == '.' || s[k] == 'e' || s[k] == 'E')) {
        while (k < s.size() && (is_digit(s[k]) || s[k] == '.' || s[k] == 'e' || s[k] == 'E' ||
                                s[k] == '+' || s[k] == '-')) {
          ++k;
        }
      } else if ((c == '-' && digits == 1 && s[first] == '0') || (digits >= 19 && s[first] != '0')) {
        out.append(s.substr(i, k - i)).append(".0");
        changed = true;
        i = k;
        continue;
      }
    }
    out.append(s.substr(i, k - i));
    i = k;
  }
  return changed;
}

// String::from_utf8_lossy: each maximal ill-formed subsequence becomes one
// U+FFFD (Unicode's "substitution of maximal subparts", which Rust follows).
void lossy_utf8(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size() + 16);
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t need = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      lo = (c == 0xE0) ? 0xA0 : 0x80;
      hi = (c == 0xED) ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      lo = (c == 0xF0) ? 0x90 : 0x80;
      hi = (c == 0xF4) ? 0x8F : 0xBF;
    } else if (c >= 0x80) {
      out.append("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    std::size_t k = 1;  // continuation bytes that fit
    for (; k <= need && i + k < s.size(); ++k) {
      const auto t = static_cast<unsigned char>(s[i + k]);
      if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF)) break;
    }
    if (k > need) {
      out.append(s.substr(i, k));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    i += k;
  }
}


}  // namespace payloadrun::detail
