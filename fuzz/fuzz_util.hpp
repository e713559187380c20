// Shared helpers of the libFuzzer targets: an invariant check that reports
// what broke and aborts (libFuzzer then saves the input as a crash).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* condition,
                              const std::string& detail) {
  std::fprintf(stderr, "\n==fuzz== invariant violated at %s:%d: %s\n", file, line, condition);
  if (!detail.empty()) std::fprintf(stderr, "==fuzz== %s\n", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Printable rendering of arbitrary bytes for failure messages.
inline std::string quoted(std::string_view s, std::size_t limit = 200) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > limit) out += "...";
  out += '"';
  return out;
}

}  // namespace fuzz

/// Abort with a report unless `condition` holds; `detail` (a std::string
/// expression) is evaluated only on failure.
#define FUZZ_CHECK(condition, detail)                                   \
  do {                                                                  \
    if (!(condition)) ::fuzz::fail(__FILE__, __LINE__, #condition, (detail)); \
  } while (0)
