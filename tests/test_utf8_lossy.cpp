// utf8_lossy (evaluate.hpp): Rust's String::from_utf8_lossy, byte for byte.
// Expected strings were produced by Rust 1.95.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/evaluate.hpp"

namespace pr = payloadrun;

namespace {

std::string hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("\\x{:02X}", c);
  return out;
}

}  // namespace

// ---- utf8_lossy -----------------------------------------------------------

TEST(Utf8Lossy, MatchesRustFromUtf8LossyVectors) {
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"hello", "hello"},
      {"héllo 好 😀", "héllo 好 😀"},
      {std::string("a\0b", 3), std::string("a\0b", 3)},
      {"\x80", r},
      {"\xFF", r},
      {"\xFE\xFF", r + r},
      {"\x80\x80\x80", r + r + r},
      {"\xC0\x80", r + r},                  // overlong NUL
      {"\xC1\xBF", r + r},                  // overlong
      {"\xE0\x80\x80", r + r + r},          // overlong 3-byte
      {"\xE0\x9F\xBF", r + r + r},          // overlong 3-byte, top
      {"\xF0\x80\x80\x80", r + r + r + r},  // overlong 4-byte
      {"\xF0\x8F\xBF\xBF", r + r + r + r},  // overlong 4-byte, top
      {"\xED\xA0\x80", r + r + r},          // surrogate D800
      {"\xED\xBF\xBF", r + r + r},          // surrogate DFFF
      {"\xF4\x90\x80\x80", r + r + r + r},  // U+110000
      {"\xF5\x80\x80\x80", r + r + r + r},  // F5 lead
      {"\xF8\x88\x80\x80\x80", r + r + r + r + r},
      {"\xC2", r},  // truncated at end
      {"\xE2\x82", r},
      {"\xF0\x9F\x98", r},
      {"\xF0\x9F", r},
      {"\xF0", r},
      {"\xE2\x82X", r + "X"},
      {"\xF0\x9F\x98X", r + "X"},
      {"\xC2\xC2\xA9", r + "\xC2\xA9"},
      {"\xE1\x80\xE1\x80\x80", r + "\xE1\x80\x80"},
      {"\xF1\x80\x80\xF1\x80\x80\x80", r + "\xF1\x80\x80\x80"},
      {"Hello \xF0\x90\x80World", "Hello " + r + "World"},
      // Unicode 15, Table 3-8 ("U+FFFD for maximal subparts").
      {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
       "a" + r + r + r + "b" + r + "c" + r + r + "d"},
      {"\xED\x9F\xBF", "\xED\x9F\xBF"},          // U+D7FF
      {"\xEE\x80\x80", "\xEE\x80\x80"},          // U+E000
      {"\xEF\xBF\xBF", "\xEF\xBF\xBF"},          // U+FFFF
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},  // U+10FFFF
      {"abcdefghij\xC3", "abcdefghij" + r},
  };
  for (const auto& c : cases) EXPECT_EQ(hex(pr::utf8_lossy(c.in)), hex(c.out)) << hex(c.in);
}

TEST(Utf8Lossy, InvalidByteAtEveryOffsetAroundTheAsciiFastPath) {
  for (std::size_t p = 0; p < 24; ++p) {
    std::string in(24, 'q');
    in[p] = '\xFF';
    const std::string expected = std::string(p, 'q') + "\xEF\xBF\xBD" + std::string(23 - p, 'q');
    EXPECT_EQ(pr::utf8_lossy(in), expected) << p;
  }
  const std::string big(1 << 20, 'z');
  EXPECT_EQ(pr::utf8_lossy(big), big);
}

namespace {
// Independent reference: Unicode Table 3-7 rows, and the maximal-subpart
// rule stated directly (the longest prefix of some well-formed sequence).
std::string reference_lossy(std::string_view s) {
  struct Row {
    int n;
    unsigned char lo[4], hi[4];
  };
  static const Row rows[] = {
      {1, {0x00}, {0x7F}},
      {2, {0xC2, 0x80}, {0xDF, 0xBF}},
      {3, {0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}},
      {3, {0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}},
      {3, {0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}},
      {3, {0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}},
      {4, {0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}},
      {4, {0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}},
      {4, {0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}},
  };
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    int best_prefix = 0, complete = 0;
    for (const auto& row : rows) {
      int m = 0;
      while (m < row.n && i + m < s.size()) {
        const auto b = static_cast<unsigned char>(s[i + m]);
        if (b < row.lo[m] || b > row.hi[m]) break;
        ++m;
      }
      if (m == row.n) complete = m;
      best_prefix = std::max(best_prefix, m);
    }
    if (complete) {
      out.append(s.substr(i, static_cast<std::size_t>(complete)));
      i += static_cast<std::size_t>(complete);
    } else {
      out += "\xEF\xBF\xBD";
      i += static_cast<std::size_t>(std::max(best_prefix, 1));
    }
  }
  return out;
}
}  // namespace

TEST(Utf8Lossy, AgreesWithTableReferenceOnRandomInput) {
  const unsigned char alphabet[] = {'a',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFF};
  std::mt19937 rng(2024);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string in(rng() % 24, '\0');
    for (auto& c : in) c = static_cast<char>(alphabet[rng() % sizeof alphabet]);
    const auto out = pr::utf8_lossy(in);
    ASSERT_EQ(hex(out), hex(reference_lossy(in))) << hex(in);
    ASSERT_EQ(pr::utf8_lossy(out), out) << hex(in);  // output is valid UTF-8
  }
}
