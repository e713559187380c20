// Shared by the extraction suites: small helpers and an independent, naive
// implementation of ktstr's extraction rules (the oracle for generated
// documents), plus a deterministic fio-like document generator.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "payloadrun/extract.hpp"
#include "payloadrun/metrics.hpp"

namespace extract_test {


using payloadrun::Extractor;
using payloadrun::find_json_region;
using payloadrun::MetricSource;
using payloadrun::MetricStream;
using payloadrun::PayloadMetrics;
using payloadrun::walk_truncation_sentinel;

using Flat = std::vector<std::pair<std::string, double>>;

inline Flat flat(const PayloadMetrics& m) {
  Flat out;
  for (const auto& x : m) out.emplace_back(std::string(x.name), x.value);
  return out;
}

inline Flat extract(std::string_view text) {
  PayloadMetrics m;
  const std::size_t n = payloadrun::extract_metrics(text, MetricSource::json,
                                                    MetricStream::stdout_stream, m);
  EXPECT_EQ(n, m.size());
  return flat(m);
}

// `depth` objects nested under key "x" around `inner`.
inline std::string nest_objects(std::size_t depth, const std::string& inner) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "{\"x\":";
  s += inner;
  s.append(depth, '}');
  return s;
}

inline std::string dotted_x(std::size_t segments) {
  std::string s;
  for (std::size_t i = 0; i < segments; ++i) s += (i == 0 ? "x" : ".x");
  return s;
}

// ---------------------------------------------------------------------------
// An independent, deliberately naive implementation of the rules: a small
// recursive-descent JSON parser into a tree, then a flatten that builds one
// std::string per name. Used as the oracle for generated documents.

struct Node {
  enum Kind { null_value, boolean, number, string, array, object } kind = null_value;
  double value = 0;
  std::vector<std::pair<std::string, Node>> members;  // objects, in document order
  std::vector<Node> items;                            // arrays
};

class NaiveParser {
 public:
  explicit NaiveParser(std::string_view s) : s_(s) {}

  std::optional<Node> document() {
    Node n;
    skip_ws();
    if (!value(n, 0)) return std::nullopt;
    skip_ws();
    if (i_ != s_.size()) return std::nullopt;
    return n;
  }

 private:
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(std::uint32_t& v) {
    if (i_ + 4 > s_.size()) return false;
    v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = s_[i_ + k];
      if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
      v = v * 16 + static_cast<std::uint32_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    i_ += 4;
    return true;
  }
  bool str(std::string& out) {
    if (!lit("\"")) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      std::uint32_t cp = 0;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '"': case '\\': case '/': out += e; break;
        case 'u':
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {
            std::uint32_t lo = 0;
            if (!lit("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return false;
          }
          put_utf8(out, cp);
          break;
        default: return false;
      }
    }
    return false;
  }
  bool num(Node& n) {
    const std::size_t start = i_;
    auto digits = [&] {
      const std::size_t b = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - b;
    };
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) return false;
    }
    n.kind = Node::number;
    n.value = std::strtod(std::string(s_.substr(start, i_ - start)).c_str(), nullptr);
    return std::isfinite(n.value);  // serde_json rejects out-of-range numbers
  }
  bool value(Node& n, std::size_t nesting) {
    skip_ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{' || c == '[') {
      if (nesting + 1 >= 128) return false;  // serde_json's recursion limit
      ++i_;
      n.kind = (c == '{') ? Node::object : Node::array;
      skip_ws();
      if (lit(c == '{' ? "}" : "]")) return true;
      for (;;) {
        if (c == '{') {
          std::string key;
          skip_ws();
          if (!str(key)) return false;
          skip_ws();
          if (!lit(":")) return false;
          n.members.emplace_back(std::move(key), Node());
          if (!value(n.members.back().second, nesting + 1)) return false;
        } else {
          n.items.emplace_back();
          if (!value(n.items.back(), nesting + 1)) return false;
        }
        skip_ws();
        if (lit(",")) continue;
        return lit(c == '{' ? "}" : "]");
      }
    }
    if (c == '"') {
      std::string ignored;
      n.kind = Node::string;
      return str(ignored);
    }
    if (lit("true") || lit("false")) {
      n.kind = Node::boolean;
      return true;
    }
    if (lit("null")) return true;
    return num(n);
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

inline void naive_flatten(const Node& n, const std::string& path, std::size_t depth, Flat& out) {
  if (depth > payloadrun::max_walk_depth) {
    out.emplace_back(std::string(walk_truncation_sentinel), static_cast<double>(depth));
    return;
  }
  auto join = [&](const std::string& seg) { return path.empty() ? seg : path + "." + seg; };
  if (n.kind == Node::number) {
    out.emplace_back(path, n.value);
  } else if (n.kind == Node::array) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      naive_flatten(n.items[i], join(std::to_string(i)), depth + 1, out);
    }
  } else if (n.kind == Node::object) {
    for (std::size_t i = 0; i < n.members.size(); ++i) {
      bool later = false;  // the last occurrence of a key wins, in its place
      for (std::size_t j = i + 1; j < n.members.size(); ++j) later |= n.members[j].first == n.members[i].first;
      if (!later) naive_flatten(n.members[i].second, join(n.members[i].first), depth + 1, out);
    }
  }
}

// ktstr's find_and_parse_json, naively (ASCII trim is enough for the
// generated inputs).
inline Flat naive_extract(std::string_view text) {
  std::string_view t = text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  std::optional<Node> doc = NaiveParser(t).document();
  if (!doc) {
    const std::size_t start = text.find_first_of("{[");
    if (start == std::string_view::npos) return {};
    const char open = text[start];
    const char close = open == '{' ? '}' : ']';
    int depth = 0;
    bool in_string = false;
    bool escape = false;
    for (std::size_t i = start; i < text.size() && !doc; ++i) {
      const char c = text[i];
      if (escape) {
        escape = false;
      } else if (in_string) {
        if (c == '\\') escape = true;
        if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == open) {
        ++depth;
      } else if (c == close && --depth == 0) {
        doc = NaiveParser(text.substr(start, i - start + 1)).document();
        if (!doc) return {};
      }
    }
    if (!doc) return {};
  }
  Flat out;
  naive_flatten(*doc, "", 0, out);
  return out;
}

// A deterministic fio-like --output-format=json document.
inline std::string fio_like_document(int jobs, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  bool first = true;
  auto key = [&](const char* k) {
    s += first ? "\n" : ",\n";
    first = false;
    s += '"';
    s += k;
    s += "\" : ";
  };
  auto open = [&](const char* k, char c) {
    if (k != nullptr) {
      key(k);
    } else {
      s += first ? "\n" : ",\n";
    }
    s += c;
    first = true;
  };
  auto close = [&](char c) {
    s += '\n';
    s += c;
    first = false;
  };
  auto integer = [&](const char* k, std::uint64_t mod) {
    key(k);
    s += std::to_string((static_cast<std::uint64_t>(rng()) << 20 ^ rng()) % mod);
  };
  auto real = [&](const char* k) {
    key(k);
    char b[64];
    std::snprintf(b, sizeof b, "%.6f", static_cast<double>(rng() % 100000000) / 1000.0);
    s += b;
  };
  auto text = [&](const char* k, const char* v) {
    key(k);
    s += '"';
    s += v;
    s += '"';
  };
  auto lat = [&](const char* name, bool percentiles) {
    open(name, '{');
    integer("min", 100000);
    integer("max", 100000000);
    real("mean");
    real("stddev");
    integer("N", 10000000);
    if (percentiles) {
      open("percentile", '{');
      for (const char* p : {"1.000000", "5.000000", "10.000000", "50.000000", "90.000000",
                            "99.000000", "99.500000", "99.900000", "99.990000"}) {
        integer(p, 10000000);
      }
      close('}');
    }
    close('}');
  };
  open(nullptr, '{');
  text("fio version", "fio-3.36");
  integer("timestamp", 2000000000);
  open("global options", '{');
  text("ioengine", "libaio");
  close('}');
  open("jobs", '[');
  for (int j = 0; j < jobs; ++j) {
    open(nullptr, '{');
    text("jobname", "job \\\"quoted\\\" {x} [y]");
    integer("error", 2);
    for (const char* dir : {"read", "write", "trim"}) {
      open(dir, '{');
      integer("io_bytes", 1ULL << 40);
      integer("bw", 1ULL << 22);
      real("iops");
      lat("slat_ns", false);
      lat("clat_ns", true);
      lat("lat_ns", false);
      real("bw_mean");
      integer("iops_min", 100000);
      close('}');
    }
    real("usr_cpu");
    open("latency_us", '{');
    for (const char* b : {"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"}) {
      key(b);
      s += "0.0" + std::to_string(rng() % 100);
    }
    close('}');
    open("latency_ms", '{');
    for (const char* b : {"2", "1000", ">=2000"}) integer(b, 100);
    close('}');
    close('}');
  }
  close(']');
  open("disk_util", '[');
  open(nullptr, '{');
  text("name", "nvme0n1");
  integer("read_ios", 100000000);
  real("util");
  close('}');
  close(']');
  close('}');
  return s;
}

// A random document exercising duplicates (a tiny key pool, dotted and empty
// keys, one large object), every number form, escapes, and deep chains.
struct RandomDoc {
  std::mt19937 rng;
  std::string s;

  explicit RandomDoc(std::uint32_t seed) : rng(seed) {}
  std::uint32_t pick(std::uint32_t n) { return rng() % n; }
  void number() {
    static const char* const forms[] = {
        "0", "-0", "7", "-12", "3.25", "-0.0", "1e3", "2.5E-3", "-4e+2", "123456789012",
        "9007199254740993", "18446744073709551615", "18446744073709551616",
        "-9223372036854775808", "-9223372036854775809", "123456789012345678901234567",
        "-98765432109876543210", "0.000001", "1.7976931348623157e308", "5e-324"};
    s += forms[pick(sizeof forms / sizeof forms[0])];
  }
  void string() {
    static const char* const forms[] = {"\"plain\"", "\"-0\"", "\"42\"", "\"br{ack]ets\"",
                                        "\"esc \\\" quote\"", "\"back\\\\\"", "\"\\u00e9\\n\""};
    s += forms[pick(sizeof forms / sizeof forms[0])];
  }
  void key() {
    static const char* const keys[] = {"a", "b", "c", "a.b", "", "x\\\"y", "\\u0061", "b"};
    s += '"';
    s += keys[pick(sizeof keys / sizeof keys[0])];
    s += "\":";
  }
  void value(std::size_t depth) {
    const std::uint32_t r = pick(depth > 8 || s.size() > 20000 ? 6 : 10);  // stay small
    if (r < 3) {
      number();
    } else if (r == 3) {
      string();
    } else if (r == 4) {
      s += pick(3) == 0 ? "null" : (pick(2) ? "true" : "false");
    } else if (r == 5 && pick(4) == 0) {
      chain();
    } else if (r < 8) {
      s += '{';
      const std::uint32_t n = pick(6);
      for (std::uint32_t i = 0; i < n; ++i) {
        if (i) s += ',';
        key();
        value(depth + 1);
      }
      s += '}';
    } else if (r == 8 && depth < 2 && pick(3) == 0) {
      big_object(depth);
    } else {
      s += '[';
      const std::uint32_t n = pick(5);
      for (std::uint32_t i = 0; i < n; ++i) {
        if (i) s += ',';
        value(depth + 1);
      }
      s += ']';
    }
  }
  // A chain deep enough to cross the walk cap, ending in mixed values.
  void chain() {
    const std::size_t levels = 55 + pick(20);
    std::string closers;
    for (std::size_t i = 0; i < levels; ++i) {
      const bool array = pick(2) != 0;
      s += array ? "[" : "{\"k\":";
      closers.insert(closers.begin(), array ? ']' : '}');
    }
    s += "{\"a\":1,\"b\":\"s\",\"a\":[2,3]}" + closers;
  }
  void big_object(std::size_t depth) {
    s += '{';
    const std::uint32_t n = 65 + pick(80);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i) s += ',';
      s += "\"k" + std::to_string(pick(n)) + "\":";
      value(depth + 1);
    }
    s += '}';
  }
};

}  // namespace extract_test
