// format_value: Rust's f64 Display, which describe() and the messages use
// (the data model: test_model.cpp). Test vectors, extremes, random bits
// round-tripped, a pseudo-random stream pinned to Rust 1.95's output, exact
// ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model_util.hpp"
#include "payloadrun/evaluate.hpp"

namespace pr = payloadrun;
using model_test::inf_v;
using model_test::nan_v;

// ---- format_value (Rust's f64 Display; describe() and messages use it) ---

TEST(FormatValue, MatchesRustDisplayVectors) {
  struct Case {
    double v;
    const char* s;
  };
  const Case cases[] = {
      {0.0, "0"},
      {-0.0, "-0"},
      {1.0, "1"},
      {50.0, "50"},
      {-1.5, "-1.5"},
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3.0, "0.3333333333333333"},
      {100.5, "100.5"},
      {12345.678, "12345.678"},
      {123456789.125, "123456789.125"},
      {0.000123, "0.000123"},
      {1e-5, "0.00001"},
      {1e-7, "0.0000001"},
      {1.5e-7, "0.00000015"},
      {123e-20, "0.00000000000000000123"},
      {1e15, "1000000000000000"},
      {1e17, "100000000000000000"},
      {9007199254740993.0, "9007199254740992"},
      {9007199254740994.0, "9007199254740994"},
      {1e21, "1000000000000000000000"},
      {1e22, "10000000000000000000000"},
      {1e23, "100000000000000000000000"},
      {6.02214076e23, "602214076000000000000000"},
      {299792458.0, "299792458"},
      {nan_v, "NaN"},
      {-nan_v, "NaN"},
      {inf_v, "inf"},
      {-inf_v, "-inf"},
  };
  for (const auto& c : cases) EXPECT_EQ(pr::format_value(c.v), c.s) << c.s;
}

TEST(FormatValue, ExtremesExpandWithoutExponent) {
  EXPECT_EQ(pr::format_value(std::numeric_limits<double>::max()),
            "17976931348623157" + std::string(292, '0'));
  EXPECT_EQ(pr::format_value(std::numeric_limits<double>::denorm_min()),
            "0." + std::string(323, '0') + "5");
  EXPECT_EQ(pr::format_value(-std::numeric_limits<double>::denorm_min()),
            "-0." + std::string(323, '0') + "5");
  EXPECT_EQ(pr::format_value(std::numeric_limits<double>::min()),
            "0." + std::string(307, '0') + "22250738585072014");
}

TEST(FormatValue, RoundTripsAndNeverUsesExponentOnRandomBits) {
  std::mt19937_64 rng(99);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    const auto s = pr::format_value(v);
    ASSERT_EQ(s.find_first_of("eE"), std::string::npos) << s;
    ASSERT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
    ASSERT_EQ(std::signbit(v), s[0] == '-') << s;
  }
}

namespace {
std::uint64_t splitmix(std::uint64_t& s) {
  s += 0x9E3779B97F4A7C15ULL;
  std::uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Test doubles: random bit patterns; decimal-looking m / 10^k and m * 10^k;
// 53-bit integers over 2^0..2^11 and times 2^0..2^39 (many exact ties
// between two shortest candidates, which Rust rounds up, not to even).
double stream_value(std::uint64_t i, std::uint64_t& s) {
  const std::uint64_t a = splitmix(s);
  double v = 0;
  switch (i % 4) {
    case 0:
      std::memcpy(&v, &a, sizeof v);
      return v;
    case 1: {
      const std::uint64_t b = splitmix(s);
      double p = 1.0;
      for (std::uint64_t k = 0; k < b % 20; ++k) p *= 10.0;
      const auto m = static_cast<double>(a % 1000000);
      return (b >> 32) % 2 == 0 ? m / p : m * p;
    }
    case 2: {
      const std::uint64_t b = splitmix(s);
      return static_cast<double>(a >> 11) / static_cast<double>(1ULL << (b % 12));
    }
    default: {
      const std::uint64_t b = splitmix(s);
      return static_cast<double>(a >> 11) * static_cast<double>(1ULL << (b % 40));
    }
  }
}
}  // namespace

// The same 40,000-value stream was rendered by Rust 1.95's `{}`; the FNV-1a
// hash of its "value\n" lines and the first outputs are pinned here.
TEST(FormatValue, MatchesRustDisplayOnPseudoRandomStream) {
  std::uint64_t s = 7;
  std::uint64_t h = 0xcbf29ce484222325ULL;
  int n = 0;
  std::vector<std::string> first;
  for (std::uint64_t i = 0; i < 40000; ++i) {
    const double v = stream_value(i, s);
    if (!std::isfinite(v)) continue;
    const std::string t = pr::format_value(v);
    if (first.size() < 8) first.push_back(t);
    for (unsigned char c : t + "\n") {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    ++n;
  }
  EXPECT_EQ(first, (std::vector<std::string>{
                       "53876272295315975" + std::string(156, '0'), "0.955804", "5127509082937.942",
                       "617562536987423000000000000", "3849739777176018" + std::string(81, '0'),
                       "0.77985", "58299067534187.94", "138727197424383740000000"}));
  EXPECT_EQ(n, 39995);
  EXPECT_EQ(h, 0x8cd745487481840bULL);
}

TEST(FormatValue, ExactTiesRoundUpLikeRust) {
  // Exactly halfway between two 17-digit candidates: Rust prints the upper.
  EXPECT_EQ(pr::format_value(1099514114116857.25), "1099514114116857.3");
  EXPECT_EQ(pr::format_value(-1205569253547384.25), "-1205569253547384.3");
  EXPECT_EQ(pr::format_value(12510373090564.0625), "12510373090564.063");
}
