// The scenario digest: SHA-256 over a canonical serialization of the parsed
// scenario, so whitespace, key order and number spelling do not matter.
#include "digest.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "detail/json_write.hpp"

namespace runner {
namespace {

constexpr std::array<std::uint32_t, 64> k_rounds = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr(std::uint32_t x, int n) noexcept { return (x >> n) | (x << (32 - n)); }

void compress(std::array<std::uint32_t, 8>& h, const std::uint8_t* block) noexcept {
  std::uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = static_cast<std::uint32_t>(block[4 * i]) << 24 | static_cast<std::uint32_t>(block[4 * i + 1]) << 16 |
           static_cast<std::uint32_t>(block[4 * i + 2]) << 8 | static_cast<std::uint32_t>(block[4 * i + 3]);
  }
  for (int i = 16; i < 64; ++i) {
    const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    const std::uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const std::uint32_t ch = (e & f) ^ (~e & g);
    const std::uint32_t t1 = hh + s1 + ch + k_rounds[static_cast<std::size_t>(i)] + w[i];
    const std::uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const std::uint32_t t2 = s0 + maj;
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

// Strings as the one JSON writer spells them (docs/json.md).
void canonical_string(std::string& out, std::string_view s) { payloadrun::detail::json_string(out, s); }

void canonical_double(std::string& out, double d) {
  // JSON has no inf/nan and simdjson never yields them; integral values
  // print as integers so 100, 100.0 and 1e2 agree.
  if (std::trunc(d) == d && std::fabs(d) < 9.0e15) {
    out += fmt::format("{}", static_cast<std::int64_t>(d));
  } else {
    out += fmt::format("{}", d);
  }
}

void canonical(std::string& out, simdjson::dom::element e, bool top) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      std::vector<std::pair<std::string_view, simdjson::dom::element>> fields;
      simdjson::dom::object o;
      if (e.get(o) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      for (auto field : o) {
        if (top && field.key == "concurrency") continue;
        fields.emplace_back(field.key, field.value);
      }
      std::stable_sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ',';
        canonical_string(out, fields[i].first);
        out += ':';
        canonical(out, fields[i].second, false);
      }
      out += '}';
      return;
    }
    case element_type::ARRAY: {
      out += '[';
      bool first = true;
      simdjson::dom::array a;
      if (e.get(a) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      for (auto v : a) {
        if (!first) out += ',';
        first = false;
        canonical(out, v, false);
      }
      out += ']';
      return;
    }
    case element_type::STRING: {
      std::string_view s;
      if (e.get(s) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      canonical_string(out, s);
      return;
    }
    case element_type::INT64: {
      std::int64_t v = 0;
      if (e.get(v) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      out += fmt::format("{}", v);
      return;
    }
    case element_type::UINT64: {
      std::uint64_t v = 0;
      if (e.get(v) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      out += fmt::format("{}", v);
      return;
    }
    case element_type::DOUBLE: {
      double v = 0;
      if (e.get(v) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      canonical_double(out, v);
      return;
    }
    case element_type::BOOL: {
      bool v = false;
      if (e.get(v) != simdjson::SUCCESS) return;  // cannot happen: the type was checked
      out += v ? "true" : "false";
      return;
    }
    case element_type::NULL_VALUE: out += "null"; return;
  }
}

}  // namespace

std::array<std::uint8_t, 32> sha256(std::string_view bytes) {
  std::array<std::uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t full = bytes.size() / 64;
  for (std::size_t i = 0; i < full; ++i) compress(h, data + 64 * i);
  // The tail, 0x80, zeros, then the length in bits (big-endian): one or two blocks.
  std::uint8_t tail[128] = {};
  const std::size_t rest = bytes.size() - 64 * full;
  std::copy(data + 64 * full, data + bytes.size(), tail);
  tail[rest] = 0x80;
  const std::size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const std::uint64_t bits = static_cast<std::uint64_t>(bytes.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 1 - static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * i));
  for (std::size_t off = 0; off < tail_len; off += 64) compress(h, tail + off);
  std::array<std::uint8_t, 32> out{};
  for (std::size_t i = 0; i < 8; ++i) {
    for (std::size_t j = 0; j < 4; ++j) out[4 * i + j] = static_cast<std::uint8_t>(h[i] >> (24 - 8 * j));
  }
  return out;
}

std::string to_hex(const std::uint8_t* bytes, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 0xf];
  }
  return s;
}

std::string canonical_scenario_json(const simdjson::dom::element& root) {
  std::string out;
  canonical(out, root, true);
  return out;
}

std::string scenario_digest(const simdjson::dom::element& root) {
  const auto d = sha256(canonical_scenario_json(root));
  return "sha256:" + to_hex(d.data(), d.size());
}

}  // namespace runner
