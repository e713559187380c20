// Metric extraction (ktstr's rules): finding the document, flattening, the
// serde_json parsing rules, and a cross-check against a naive flattener.
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

namespace {

using payloadrun::Extractor;
using payloadrun::find_json_region;
using payloadrun::MetricSource;
using payloadrun::MetricStream;
using payloadrun::PayloadMetrics;
using payloadrun::walk_truncation_sentinel;

using Flat = std::vector<std::pair<std::string, double>>;

Flat flat(const PayloadMetrics& m) {
  Flat out;
  for (const auto& x : m) out.emplace_back(std::string(x.name), x.value);
  return out;
}

Flat extract(std::string_view text) {
  PayloadMetrics m;
  const std::size_t n = payloadrun::extract_metrics(text, MetricSource::json,
                                                    MetricStream::stdout_stream, m);
  EXPECT_EQ(n, m.size());
  return flat(m);
}

// `depth` objects nested under key "x" around `inner`.
std::string nest_objects(std::size_t depth, const std::string& inner) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "{\"x\":";
  s += inner;
  s.append(depth, '}');
  return s;
}

std::string dotted_x(std::size_t segments) {
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

void naive_flatten(const Node& n, const std::string& path, std::size_t depth, Flat& out) {
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
Flat naive_extract(std::string_view text) {
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
std::string fio_like_document(int jobs, std::uint32_t seed) {
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

// ---------------------------------------------------------------------------
// Finding the document.

TEST(ExtractDocument, WholeDocumentWithSurroundingWhitespace) {
  EXPECT_EQ(extract(" \n\t{\"a\": 1, \"b\": [2]}\r\n  "), (Flat{{"a", 1}, {"b.0", 2}}));
}

TEST(ExtractDocument, TrimIsRustsUnicodeTrim) {
  // A lone scalar only parses through the whole-text attempt, so these show
  // which whitespace is trimmed: str::trim's (Unicode White_Space).
  EXPECT_EQ(extract("  42 \n"), (Flat{{"", 42}}));
  EXPECT_EQ(extract("\x0c" "7\x0b"), (Flat{{"", 7}}));
  EXPECT_EQ(extract("\xC2\xA0" "42\xE3\x80\x80"), (Flat{{"", 42}}));  // NBSP, U+3000
  EXPECT_EQ(extract("\xE2\x80\xA8" "-1.5\xC2\x85"), (Flat{{"", -1.5}}));  // U+2028, NEL
  EXPECT_TRUE(extract("\x1c" "42").empty());  // U+001C is not White_Space
  EXPECT_TRUE(extract("42 43").empty());
}

TEST(ExtractDocument, BannerBeforeDocument) {
  EXPECT_EQ(extract("fio-3.36 starting up\n{\"iops\": 500}"), (Flat{{"iops", 500}}));
  EXPECT_EQ(extract("fio-3.36\nRunning fio with 4 jobs\n\n{\"jobs\": [{\"jobname\": \"t\", "
                    "\"read\": {\"iops\": 12345, \"bw_bytes\": 50593792}}], "
                    "\"disk_util\": [{\"util\": 99.5}]}"),
            (Flat{{"jobs.0.read.iops", 12345}, {"jobs.0.read.bw_bytes", 50593792},
                  {"disk_util.0.util", 99.5}}));
}

TEST(ExtractDocument, ProseAfterDocumentIsIgnored) {
  EXPECT_EQ(extract("{\"a\": 1, \"b\": 2} --- trailing prose"), (Flat{{"a", 1}, {"b", 2}}));
  EXPECT_EQ(extract("fio-3.36 starting up\n{\"iops\": 100}\nfio done }"), (Flat{{"iops", 100}}));
  EXPECT_EQ(extract("[1, 2, 3]\nextra: banner line\n"), (Flat{{"0", 1}, {"1", 2}, {"2", 3}}));
}

TEST(ExtractDocument, SeveralDocumentsYieldTheFirst) {
  EXPECT_EQ(extract("{\"first\": 1} unrelated {\"second\": 2}"), (Flat{{"first", 1}}));
  EXPECT_EQ(extract("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"), (Flat{{"a", 1}}));
}

TEST(ExtractDocument, DmesgPrefixIsTakenAsTheArray) {
  const std::string input = "[   0.001234] kernel boot banner\n{\"iops\": 100}";
  EXPECT_EQ(find_json_region(input), std::optional<std::string_view>("[   0.001234]"));
  // `[   0.001234]` is valid JSON (a one-element array): its element is the
  // only metric and the real `iops` is lost, as ktstr pins.
  EXPECT_EQ(extract(input), (Flat{{"0", 0.001234}}));
}

TEST(ExtractDocument, BalancedButUnparseableRegionYieldsNothing) {
  EXPECT_TRUE(extract("[stderr bracket message]\n{\"iops\": 300}").empty());
}

TEST(ExtractDocument, BracketsAndEscapedQuotesInStrings) {
  EXPECT_EQ(extract("log: {\"msg\": \"look at {nested} } ] in text\", \"ok\": 1} trailing"),
            (Flat{{"ok", 1}}));
  EXPECT_EQ(extract("x {\"t\": \"has \\\"escaped\\\" } quotes\", \"v\": 2} y"), (Flat{{"v", 2}}));
  EXPECT_EQ(extract("x {\"p\": \"C:\\\\\", \"v\": 3} }"), (Flat{{"v", 3}}));
}

TEST(ExtractDocument, UnbalancedOpenerYieldsNothing) {
  EXPECT_TRUE(extract("incomplete {\"a\": 1").empty());
  EXPECT_TRUE(extract("[FAIL stress-ng: worker timed out\n{\"iops\": 200}").empty());
}

TEST(ExtractDocument, MalformedOrEmptyYieldsNothing) {
  for (const char* bad : {"", "   \n", "garbage not json", "{\"a\": 1,}", "{\"a\" 1}",
                          "{\"a\": NaN}", "{\"a\": 01}", "{\"a\": .5}", "{\"a\": \"\x01\"}",
                          "[\"\\ud800\"]", "{\"a\": tru}", "[1 2]"}) {
    EXPECT_TRUE(extract(bad).empty()) << bad;
  }
  EXPECT_EQ(extract("{\"a\": 1} {"), (Flat{{"a", 1}}));
  EXPECT_TRUE(extract("{}").empty());
  EXPECT_TRUE(extract("{\"outer\": {\"inner\": {}, \"also\": []}}").empty());
}

TEST(ExtractDocument, InvalidUtf8IsReplacedAsFromUtf8Lossy) {
  EXPECT_EQ(extract("{\"k\xff\": 1, \"s\": \"\xc3\x28\", \"a\": 2}"),
            (Flat{{"k\xEF\xBF\xBD", 1}, {"a", 2}}));
  EXPECT_EQ(extract("\xfe\xff banner {\"a\": 1}"), (Flat{{"a", 1}}));
}

// ---------------------------------------------------------------------------
// Flattening.

TEST(ExtractFlatten, Names) {
  EXPECT_EQ(extract("{\"jobs\": [{\"read\": {\"iops\": 123}}]}"), (Flat{{"jobs.0.read.iops", 123}}));
  EXPECT_EQ(extract("{\"a\": [[1, 2], [3, 4]]}"),
            (Flat{{"a.0.0", 1}, {"a.0.1", 2}, {"a.1.0", 3}, {"a.1.1", 4}}));
  EXPECT_EQ(extract("{\"percentile\": {\"99.000000\": 8160, \"99.900000\": 9000}}"),
            (Flat{{"percentile.99.000000", 8160}, {"percentile.99.900000", 9000}}));
  EXPECT_EQ(extract("[10, 20]"), (Flat{{"0", 10}, {"1", 20}}));
  EXPECT_EQ(extract("{\"root\": {\"a\": 1, \"b\": 2}, \"c\": 3}"),
            (Flat{{"root.a", 1}, {"root.b", 2}, {"c", 3}}));
  // As ktstr: a '.' joins a segment only to a non-empty name.
  EXPECT_EQ(extract("{\"\": {\"\": 1}, \"\\u0061\\n\": 2}"), (Flat{{"", 1}, {"a\n", 2}}));
  EXPECT_EQ(extract("{\"\": {\"a\": [3]}, \"b\": {\"\": 4}}"), (Flat{{"a.0", 3}, {"b.", 4}}));
  EXPECT_EQ(extract("3.5"), (Flat{{"", 3.5}}));
  std::string many = "[";
  for (int i = 0; i < 12; ++i) many += (i ? ",": "") + std::to_string(i);
  EXPECT_EQ(extract(many + "]").back(), (std::pair<std::string, double>{"11", 11}));
}

TEST(ExtractFlatten, ZeroAndNegativeKept) {
  const Flat m = extract("{\"errors\": 0, \"idle\": 0.0, \"delta\": -500.5, \"under\": -1000000}");
  EXPECT_EQ(m, (Flat{{"errors", 0}, {"idle", 0}, {"delta", -500.5}, {"under", -1000000}}));
}

TEST(ExtractFlatten, NegativeZeroIsMinusZero) {
  for (const char* doc : {"{\"z\": -0}", "{\"z\": -0.0}", "{\"z\": -0e5}", "x {\"z\": -0} y"}) {
    const Flat m = extract(doc);
    ASSERT_EQ(m.size(), 1u) << doc;
    EXPECT_TRUE(std::signbit(m[0].second)) << doc;
  }
  EXPECT_FALSE(std::signbit(extract("{\"z\": 0}")[0].second));
  const Flat m = extract("{\"s\": \"-0\", \"e\": 1e-0, \"z\": -0}");
  EXPECT_EQ(m, (Flat{{"e", 1}, {"z", 0}}));
  EXPECT_TRUE(std::signbit(m[1].second));
  EXPECT_TRUE(std::signbit(extract("-0")[0].second));
}

TEST(ExtractFlatten, StringsBoolsNullSkipped) {
  EXPECT_EQ(extract("{\"name\": \"fio\", \"ok\": true, \"no\": false, \"n\": null, "
                    "\"s\": \"42\", \"iops\": 42, \"list\": [\"1\", null, 2]}"),
            (Flat{{"iops", 42}, {"list.2", 2}}));
  EXPECT_TRUE(extract("\"7\"").empty());
  EXPECT_TRUE(extract("true").empty());
}

TEST(ExtractFlatten, DuplicateKeysLastValueWins) {
  EXPECT_EQ(extract("{\"a\": 1, \"b\": 2, \"a\": 3}"), (Flat{{"b", 2}, {"a", 3}}));
  EXPECT_EQ(extract("{\"a\": {\"x\": 1, \"y\": 2}, \"b\": 5, \"a\": 7}"), (Flat{{"b", 5}, {"a", 7}}));
  EXPECT_EQ(extract("{\"a\": 1, \"a\": {\"x\": 2}}"), (Flat{{"a.x", 2}}));
  EXPECT_EQ(extract("{\"a\": 1, \"a\": 2, \"a\": \"s\"}"), Flat{});
  EXPECT_EQ(extract("{\"a\": 1, \"\\u0061\": 2}"), (Flat{{"a", 2}}));  // equal once unescaped
  EXPECT_EQ(extract("{\"o\": {\"k\": 1, \"k\": 2}, \"o\": {\"k\": 3, \"j\": 4, \"k\": 5}}"),
            (Flat{{"o.j", 4}, {"o.k", 5}}));
  // A dotted key and a nested path may spell the same name: both are kept.
  EXPECT_EQ(extract("{\"a.b\": 1, \"a\": {\"b\": 2}}"), (Flat{{"a.b", 1}, {"a.b", 2}}));
}

TEST(ExtractFlatten, DuplicateKeysInLargeObjects) {
  std::string doc = "{";
  Flat want;
  for (int i = 0; i < 100; ++i) {
    doc += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
    if (i != 5 && i != 70) want.emplace_back("k" + std::to_string(i), i);
  }
  doc += "\"k5\": -5, \"k70\": {\"v\": -70}}";
  want.emplace_back("k5", -5);
  want.emplace_back("k70.v", -70);
  EXPECT_EQ(extract(doc), want);
  doc.replace(doc.find("\"k5\": -5, "), 10, "");
  doc.replace(doc.find(", \"k70\": {"), std::string::npos, "}");
  EXPECT_EQ(extract(doc).size(), 100u);
}

TEST(ExtractFlatten, NestedDuplicatesStayLinear) {
  // Each level repeats a key after a surviving subtree; a walk that redid an
  // object on finding a repeat would take 2^60 steps here.
  std::string doc = "{\"x\": 1}";
  for (int i = 0; i < 60; ++i) doc = "{\"s\": " + doc + ", \"a\": 1, \"a\": 2}";
  const Flat m = extract(doc);
  ASSERT_EQ(m.size(), 61u);
  std::string inner;
  for (int i = 0; i < 60; ++i) inner += "s.";
  EXPECT_EQ(m.front(), (std::pair<std::string, double>{inner + "x", 1}));
  EXPECT_EQ(m[1], (std::pair<std::string, double>{inner.substr(2) + "a", 2}));
  EXPECT_EQ(m.back(), (std::pair<std::string, double>{"a", 2}));
}

TEST(ExtractFlatten, LargeIntegersBecomeDoubles) {
  EXPECT_EQ(extract("{\"huge\": 9007199254740993}"), (Flat{{"huge", 9007199254740992.0}}));
  EXPECT_EQ(extract("{\"exact\": 9007199254740992}"), (Flat{{"exact", 9007199254740992.0}}));
  EXPECT_EQ(extract("{\"u\": 18446744073709551615}"), (Flat{{"u", 18446744073709551615.0}}));
  // Beyond u64/i64: serde_json reads these as f64 (simdjson rejects them).
  EXPECT_EQ(extract("{\"big\": 18446744073709551616}"), (Flat{{"big", 18446744073709551616.0}}));
  EXPECT_EQ(extract("{\"v\": 99999999999999999999999, \"n\": -9223372036854775809}"),
            (Flat{{"v", 99999999999999999999999.0}, {"n", -9223372036854775809.0}}));
  EXPECT_EQ(extract("banner {\"big\": 123456789012345678901234567890} tail"),
            (Flat{{"big", 123456789012345678901234567890.0}}));
  EXPECT_EQ(extract("{\"s\": \"123456789012345678901234567890\", \"x\": 1}"), (Flat{{"x", 1}}));
}

TEST(ExtractFlatten, OutOfRangeNumbersFailTheDocument) {
  EXPECT_TRUE(extract("{\"a\": 1e400}").empty());
  EXPECT_TRUE(extract("{\"ok\": 1, \"a\": [-1e400]}").empty());
  EXPECT_EQ(extract("{\"tiny\": 1e-400}"), (Flat{{"tiny", 0}}));
}

// ---------------------------------------------------------------------------
// Depth.

TEST(ExtractDepth, LeafAtMaxWalkDepthIsKept) {
  ASSERT_EQ(payloadrun::max_walk_depth, 64u);
  EXPECT_EQ(extract(nest_objects(64, "42")), (Flat{{dotted_x(64), 42}}));
}

TEST(ExtractDepth, DeeperValuesBecomeOneSentinelPerSkippedSubtree) {
  const std::string s(walk_truncation_sentinel);
  EXPECT_EQ(extract(nest_objects(65, "42")), (Flat{{s, 65}}));
  // Every child of a container at depth 64 is a skipped subtree, whatever
  // its type; a duplicated key counts once; an empty container adds none.
  EXPECT_EQ(extract(nest_objects(64, "{\"a\": 1, \"b\": \"s\", \"c\": {\"d\": 1}, \"a\": 2}")),
            (Flat{{s, 65}, {s, 65}, {s, 65}}));
  EXPECT_EQ(extract(nest_objects(64, "[null, [1]]")), (Flat{{s, 65}, {s, 65}}));
  EXPECT_TRUE(extract(nest_objects(64, "{}")).empty());
  EXPECT_EQ(extract("{\"ok\": 1, \"deep\": " + nest_objects(70, "1") + "}"),
            (Flat{{"ok", 1}, {s, 65}}));
}

TEST(ExtractDepth, ParseDepthLimitIsSerdeJsons) {
  // serde_json starts at remaining_depth 128 and fails when entering a
  // container brings it to 0: 127 nested containers parse, 128 do not,
  // whether or not the innermost one is empty.
  ASSERT_EQ(payloadrun::max_parse_depth, 128u);
  auto doc = [](std::size_t containers, const std::string& inner) {
    return "{\"ok\": 1, \"deep\": " + std::string(containers - 1, '[') + inner +
           std::string(containers - 1, ']') + "}";
  };
  const std::string s(walk_truncation_sentinel);
  EXPECT_EQ(extract(doc(127, "1")), (Flat{{"ok", 1}, {s, 65}}));
  EXPECT_EQ(extract(doc(127, "")), (Flat{{"ok", 1}, {s, 65}}));
  EXPECT_TRUE(extract(doc(128, "1")).empty());
  EXPECT_TRUE(extract(doc(128, "")).empty());
  EXPECT_TRUE(extract(doc(129, "")).empty());
  EXPECT_TRUE(extract("prefix " + doc(128, "") + " suffix").empty());
}

// ---------------------------------------------------------------------------
// Tags, appending, reuse.

TEST(ExtractOutput, TagsSourceStreamUnknownPolarityNoUnit) {
  PayloadMetrics m;
  Extractor ex;
  EXPECT_EQ(ex.extract("[{\"a\": 1}, {\"b\": 2}]", MetricSource::deferred,
                       MetricStream::stderr_stream, m),
            2u);
  for (const auto& x : m) {
    EXPECT_EQ(x.source, MetricSource::deferred);
    EXPECT_EQ(x.stream, MetricStream::stderr_stream);
    EXPECT_EQ(x.polarity, payloadrun::Polarity::unknown);
    EXPECT_EQ(x.unit, "");
  }
  EXPECT_EQ(ex.extract("{\"c\": 3}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(m[2].source, MetricSource::json);
  EXPECT_EQ(m[2].stream, MetricStream::stdout_stream);
}

TEST(ExtractOutput, AppendsAfterExistingMetrics) {
  PayloadMetrics m;
  m.add("pre", 1.5);
  Extractor ex;
  EXPECT_EQ(ex.extract("{\"a\": {\"b\": 2}}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(ex.extract("nothing here", MetricSource::json, MetricStream::stdout_stream, m), 0u);
  EXPECT_EQ(flat(m), (Flat{{"pre", 1.5}, {"a.b", 2}}));
  EXPECT_EQ(m.name_arena(), "prea.b");  // no slack left behind
  EXPECT_EQ(m.get("a.b"), 2.0);
}

TEST(ExtractOutput, ReusedExtractorGivesIdenticalResults) {
  const std::vector<std::string> docs = {
      fio_like_document(3, 7), "{\"a\": 1, \"a\": 2}", "banner {\"x\": 18446744073709551616} t",
      "{\"z\": -0}", "garbage", nest_objects(70, "1"), "[   0.001234] x {\"iops\": 1}",
      "{\"ok\": 1, \"deep\": " + std::string(127, '[') + std::string(127, ']') + "}", "{\"k\xff\": 1}"};
  Extractor reused;
  for (int round = 0; round < 2; ++round) {
    for (const std::string& d : docs) {
      PayloadMetrics a;
      PayloadMetrics b;
      reused.extract(d, MetricSource::json, MetricStream::stdout_stream, a);
      Extractor fresh;
      fresh.extract(d, MetricSource::json, MetricStream::stdout_stream, b);
      EXPECT_EQ(flat(a), flat(b)) << d.substr(0, 80);
      EXPECT_EQ(a.name_arena(), b.name_arena());
    }
  }
  Extractor moved = std::move(reused);
  PayloadMetrics m;
  EXPECT_EQ(moved.extract("{\"a\": 1}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(reused.extract("{\"a\": 1}", MetricSource::json, MetricStream::stdout_stream, m), 1u);  // NOLINT(bugprone-use-after-move): a moved-from extractor still works
}

// ---------------------------------------------------------------------------
// find_json_region.

TEST(FindJsonRegion, Cases) {
  using R = std::optional<std::string_view>;
  EXPECT_EQ(find_json_region("prefix {\"a\": 1} suffix"), R("{\"a\": 1}"));
  EXPECT_EQ(find_json_region("log: {\"a\": {\"b\": 1}} done"), R("{\"a\": {\"b\": 1}}"));
  EXPECT_EQ(find_json_region("{\"text\": \"not a }\"}"), R("{\"text\": \"not a }\"}"));
  EXPECT_EQ(find_json_region("{\"t\": \"has \\\"escaped\\\" quotes\"}"),
            R("{\"t\": \"has \\\"escaped\\\" quotes\"}"));
  EXPECT_EQ(find_json_region("{\"t\": \"\\\\\"} }"), R("{\"t\": \"\\\\\"}"));
  EXPECT_EQ(find_json_region("no braces here"), std::nullopt);
  EXPECT_EQ(find_json_region("incomplete {"), std::nullopt);
  EXPECT_EQ(find_json_region("{\"a\": \"unterminated }"), std::nullopt);
  EXPECT_EQ(find_json_region(""), std::nullopt);
  // The first opener decides the type; only that type is counted.
  EXPECT_EQ(find_json_region("x [1, {\"a\": 2}] {\"b\": 3}"), R("[1, {\"a\": 2}]"));
  EXPECT_EQ(find_json_region("{ ] ] }"), R("{ ] ] }"));
  EXPECT_EQ(find_json_region("[ } { ] ]"), R("[ } { ]"));
  // A backslash outside a string does nothing; quotes toggle strings anywhere.
  EXPECT_EQ(find_json_region("{ \\\" } \" }"), R("{ \\\" } \" }"));
  EXPECT_EQ(find_json_region("0123456{89012345678901234}"), R("{89012345678901234}"));
}

// ---------------------------------------------------------------------------
// Cross-checks against the naive flattener.

TEST(ExtractCrossCheck, FioLikeDocumentMatchesNaiveFlatten) {
  const std::string doc = fio_like_document(24, 42);
  const Flat want = naive_extract(doc);
  ASSERT_GT(want.size(), 1500u);
  EXPECT_EQ(extract(doc), want);
  EXPECT_EQ(extract("fio-3.36\nstarting 24 processes\n" + doc + "\nfio: done\n"), want);
  EXPECT_EQ(want.front().first, "timestamp");
  EXPECT_EQ(want[1].first, "jobs.0.error");
}

TEST(ExtractCrossCheck, RandomDocumentsMatchNaiveFlatten) {
  Extractor ex;
  std::size_t nonempty = 0;
  for (std::uint32_t seed = 1; seed <= 1500; ++seed) {
    RandomDoc gen(seed);
    gen.value(0);
    const std::string doc = (seed % 3 == 0) ? "noise [x " + gen.s : (seed % 3 == 1) ? gen.s : "log: " + gen.s + " }";
    PayloadMetrics m;
    ex.extract(doc, MetricSource::json, MetricStream::stdout_stream, m);
    const Flat want = naive_extract(doc);
    nonempty += want.empty() ? 0 : 1;
    ASSERT_EQ(flat(m), want) << "seed " << seed << ": " << doc.substr(0, 200);
  }
  EXPECT_GT(nonempty, 400u);
}

// (Round 339 once differed: the oracle's \u decoding accepted the mangled
// escape "\u0e9\"; the oracle now requires four hex digits, as JSON does.)
TEST(ExtractCrossCheck, MutatedDocumentsMatchNaiveFlatten) {
  // Truncations and structural-character edits: every path through finding
  // the document (whole text, region, unbalanced, unparseable) must agree.
  static const char edits[] = "{}[]\",:\\-0e. x";
  Extractor ex;
  std::mt19937 rng(99);
  for (std::uint32_t round = 0; round < 1500; ++round) {
    RandomDoc gen(round + 5000);
    gen.value(0);
    std::string doc = (round % 2 ? "pre " : "") + gen.s + (round % 4 == 1 ? " post" : "");
    const std::uint32_t changes = 1 + rng() % 3;
    for (std::uint32_t c = 0; c < changes && !doc.empty(); ++c) {
      const std::size_t at = rng() % doc.size();
      switch (rng() % 4) {
        case 0: doc.resize(at); break;
        case 1: doc.erase(at, 1); break;
        case 2: doc.insert(doc.begin() + static_cast<std::ptrdiff_t>(at), edits[rng() % (sizeof edits - 1)]); break;
        default: doc[at] = edits[rng() % (sizeof edits - 1)]; break;
      }
    }
    PayloadMetrics m;
    ex.extract(doc, MetricSource::json, MetricStream::stdout_stream, m);
    ASSERT_EQ(flat(m), naive_extract(doc)) << "round " << round << ": " << doc.substr(0, 200);
  }
}

}  // namespace
