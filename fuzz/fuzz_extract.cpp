// libFuzzer target: metric extraction from a payload's output
// (lib/extract.cpp, lib/detail/json_text.cpp; rules in
// include/payloadrun/extract.hpp). The input is the stdout text, any bytes.
//
// Invariants checked on every input:
//  - extract() never throws, returns how many metrics it appended and leaves
//    the metrics already in the PayloadMetrics untouched;
//  - every value is finite, every metric carries the source and stream it
//    was asked for, every name is valid UTF-8;
//  - a fresh Extractor, a reused one and extract_metrics() agree;
//  - invalid UTF-8 reads as String::from_utf8_lossy: the text and its lossy
//    conversion give the same metrics; the two converters (utf8_lossy in
//    evaluate.cpp, lossy_utf8 in json_text.cpp) agree and give valid UTF-8;
//  - find_json_region and rust_trim agree with byte-at-a-time references;
//  - when the text is valid UTF-8 and simdjson parses the document ktstr's
//    rules pick (whole trimmed text, else the first balanced region), the
//    metrics equal a plain recursive walk of that document (paths, document
//    order, last duplicate key wins in place, the depth sentinel, the
//    128-deep parse limit).
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detail/json_text.hpp"
#include "fuzz_util.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/extract.hpp"

namespace {

using payloadrun::MetricSource;
using payloadrun::MetricStream;
using payloadrun::PayloadMetrics;
namespace dom = simdjson::dom;

struct Flat {
  std::string name;
  double value;
  MetricSource source;
  MetricStream stream;
};

std::string describe(const std::vector<Flat>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size() && i < 20; ++i) {
    if (i != 0) out += ", ";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v[i].value);
    out += fuzz::quoted(v[i].name, 60) + "=" + buf;
  }
  if (v.size() > 20) out += ", ... (" + std::to_string(v.size()) + ")";
  return out + "]";
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Equal names, sources, streams; values bitwise (exact) or by == (so the
// reference's int 0 matches the extractor's -0.0).
bool same(const std::vector<Flat>& a, const std::vector<Flat>& b, bool exact) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].source != b[i].source || a[i].stream != b[i].stream) return false;
    if (exact ? !same_bits(a[i].value, b[i].value) : !(a[i].value == b[i].value)) return false;
  }
  return true;
}

std::vector<Flat> flatten(const PayloadMetrics& m, std::size_t from) {
  std::vector<Flat> out;
  for (std::size_t i = from; i < m.size(); ++i) {
    const payloadrun::Metric x = m[i];
    out.push_back(Flat{std::string(x.name), x.value, x.source, x.stream});
  }
  return out;
}

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

// ------------------------------------------------------------ references

// The first '{' or '[' through its matching closer, one byte at a time.
std::optional<std::string_view> ref_find_region(std::string_view text) {
  const std::size_t start = text.find_first_of("{[");
  if (start == std::string_view::npos) return std::nullopt;
  const char opener = text[start];
  const char closer = opener == '{' ? '}' : ']';
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == opener) {
      ++depth;
    } else if (c == closer && --depth == 0) {
      return text.substr(start, i - start + 1);
    }
  }
  return std::nullopt;
}

bool is_white_space(std::uint32_t cp) {  // Unicode White_Space (Rust's char::is_whitespace)
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// The code point of the well-formed UTF-8 sequence at s[i..i+n).
std::uint32_t decode(std::string_view s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i + k])); };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

std::size_t sequence_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// str::trim of valid UTF-8, by decoding characters.
std::string_view ref_trim(std::string_view s) {
  while (!s.empty()) {
    const std::size_t n = sequence_length(static_cast<unsigned char>(s[0]));
    if (!is_white_space(decode(s, 0, n))) break;
    s.remove_prefix(n);
  }
  while (!s.empty()) {
    std::size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!is_white_space(decode(s, start, s.size() - start))) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

// A plain recursive walk of a parsed document, as extract.hpp describes it.
class RefWalk {
 public:
  std::vector<Flat> out;

  void visit(const std::string& prefix, std::string_view segment, dom::element e, std::size_t depth) {
    const std::string name = prefix + std::string(segment);
    switch (e.type()) {
      case dom::element_type::INT64: emit(name, static_cast<double>(std::int64_t(e))); break;
      case dom::element_type::UINT64: emit(name, static_cast<double>(std::uint64_t(e))); break;
      case dom::element_type::DOUBLE: emit(name, double(e)); break;
      case dom::element_type::OBJECT: {
        const std::string inner = name.empty() ? name : name + ".";
        std::vector<std::pair<std::string_view, dom::element>> fields;
        for (dom::key_value_pair f : dom::object(e)) fields.emplace_back(f.key, f.value);
        std::unordered_map<std::string_view, std::size_t> last;
        for (std::size_t i = 0; i < fields.size(); ++i) last[fields[i].first] = i;
        for (std::size_t i = 0; i < fields.size(); ++i) {
          if (last[fields[i].first] == i) field(inner, fields[i].first, fields[i].second, depth + 1);
        }
        break;
      }
      case dom::element_type::ARRAY: {
        const std::string inner = name.empty() ? name : name + ".";
        std::size_t i = 0;
        for (dom::element v : dom::array(e)) field(inner, std::to_string(i++), v, depth + 1);
        break;
      }
      default: break;  // strings, booleans, null
    }
  }

 private:
  void field(const std::string& prefix, std::string_view segment, dom::element e, std::size_t depth) {
    if (depth > payloadrun::max_walk_depth) {
      out.push_back(Flat{std::string(payloadrun::walk_truncation_sentinel), static_cast<double>(depth),
                         MetricSource::json, MetricStream::stdout_stream});
    } else {
      visit(prefix, segment, e, depth);
    }
  }
  void emit(const std::string& name, double v) {
    if (std::isfinite(v)) out.push_back(Flat{name, v, MetricSource::json, MetricStream::stdout_stream});
  }
};

std::size_t nesting(dom::element e) {  // containers on the deepest path (root container = 1)
  std::size_t deepest = 0;
  if (e.type() == dom::element_type::OBJECT) {
    for (dom::key_value_pair f : dom::object(e)) deepest = std::max(deepest, nesting(f.value));
    return deepest + 1;
  }
  if (e.type() == dom::element_type::ARRAY) {
    for (dom::element v : dom::array(e)) deepest = std::max(deepest, nesting(v));
    return deepest + 1;
  }
  return 0;
}

dom::parser& ref_parser() {
  static dom::parser parser = [] {
    dom::parser p;
    if (p.allocate(4096, payloadrun::max_parse_depth) != simdjson::SUCCESS) std::abort();
    return p;
  }();
  return parser;
}

// The reference metrics of valid UTF-8 `text`, or nullopt where simdjson
// and serde_json may disagree (a number simdjson cannot read).
std::optional<std::vector<Flat>> reference(std::string_view text) {
  const auto walk = [](dom::element root) {
    RefWalk w;
    if (nesting(root) < payloadrun::max_parse_depth) w.visit(std::string(), std::string_view(), root, 0);
    return w.out;
  };
  const std::string_view trimmed = ref_trim(text);
  {
    dom::element root;
    const auto err = ref_parser().parse(trimmed.data(), trimmed.size(), true).get(root);
    if (err == simdjson::SUCCESS) return walk(root);
    if (err == simdjson::NUMBER_ERROR) return std::nullopt;
  }
  const auto region = ref_find_region(text);
  if (!region || (region->data() == trimmed.data() && region->size() == trimmed.size())) {
    return std::vector<Flat>{};
  }
  dom::element root;
  const auto err = ref_parser().parse(region->data(), region->size(), true).get(root);
  if (err == simdjson::SUCCESS) return walk(root);
  if (err == simdjson::NUMBER_ERROR) return std::nullopt;
  return std::vector<Flat>{};
}

// ------------------------------------------------------------ checks

void check_text_helpers(std::string_view text) {
  const auto region = payloadrun::find_json_region(text);
  const auto expected = ref_find_region(text);
  FUZZ_CHECK(region.has_value() == expected.has_value() &&
                 (!region || (region->data() == expected->data() && region->size() == expected->size())),
             "find_json_region: got " + (region ? fuzz::quoted(*region) : std::string("none")) +
                 ", expected " + (expected ? fuzz::quoted(*expected) : std::string("none")));

  const std::string_view trimmed = payloadrun::detail::rust_trim(text);
  FUZZ_CHECK(trimmed.data() >= text.data() && trimmed.data() + trimmed.size() <= text.data() + text.size(),
             "rust_trim returned a view outside its input");
  FUZZ_CHECK(payloadrun::detail::rust_trim(trimmed) == trimmed, "rust_trim is not idempotent");

  std::string lossy;
  payloadrun::detail::lossy_utf8(text, lossy);
  const std::string lossy2 = payloadrun::utf8_lossy(text);
  FUZZ_CHECK(lossy == lossy2, "detail::lossy_utf8 " + fuzz::quoted(lossy) + " != utf8_lossy " +
                                  fuzz::quoted(lossy2));
  FUZZ_CHECK(valid_utf8(lossy), "lossy_utf8 produced invalid UTF-8: " + fuzz::quoted(lossy));
  if (valid_utf8(text)) FUZZ_CHECK(lossy == text, "lossy_utf8 changed valid UTF-8");

  // Rust trims the lossy string: trimming first, then converting, must agree.
  std::string lossy_trimmed;
  payloadrun::detail::lossy_utf8(trimmed, lossy_trimmed);
  FUZZ_CHECK(lossy_trimmed == ref_trim(lossy),
             "rust_trim then lossy " + fuzz::quoted(lossy_trimmed) + " != lossy then trim " +
                 fuzz::quoted(ref_trim(lossy)));
}

void check_metrics(const std::vector<Flat>& got, MetricSource source, MetricStream stream) {
  for (const Flat& m : got) {
    FUZZ_CHECK(std::isfinite(m.value), "non-finite value for " + fuzz::quoted(m.name));
    FUZZ_CHECK(m.source == source && m.stream == stream, "wrong source/stream on " + fuzz::quoted(m.name));
    FUZZ_CHECK(valid_utf8(m.name), "name is not valid UTF-8: " + fuzz::quoted(m.name));
  }
}

std::vector<Flat> retag(std::vector<Flat> v, MetricSource source, MetricStream stream) {
  for (Flat& m : v) {
    m.source = source;
    m.stream = stream;
  }
  return v;
}

payloadrun::Extractor& reused_extractor() {
  static payloadrun::Extractor extractor;
  return extractor;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_text_helpers(text);

  // One-shot, into an empty PayloadMetrics.
  PayloadMetrics fresh_out;
  const std::size_t n =
      payloadrun::extract_metrics(text, MetricSource::json, MetricStream::stdout_stream, fresh_out);
  const std::vector<Flat> fresh = flatten(fresh_out, 0);
  FUZZ_CHECK(n == fresh.size(), "returned " + std::to_string(n) + ", appended " + std::to_string(fresh.size()));
  check_metrics(fresh, MetricSource::json, MetricStream::stdout_stream);

  // A reused Extractor (buffers from earlier inputs), appending after a
  // metric already present, with the other source and stream.
  PayloadMetrics appended;
  appended.add("earlier", 42.0, MetricSource::json, MetricStream::stdout_stream);
  const std::size_t n2 =
      reused_extractor().extract(text, MetricSource::deferred, MetricStream::stderr_stream, appended);
  FUZZ_CHECK(n2 == n && appended.size() == n + 1, "reused extractor appended a different count");
  FUZZ_CHECK(appended[0].name == "earlier" && appended[0].value == 42.0, "earlier metric was modified");
  const std::vector<Flat> again = flatten(appended, 1);
  check_metrics(again, MetricSource::deferred, MetricStream::stderr_stream);
  FUZZ_CHECK(same(again, retag(fresh, MetricSource::deferred, MetricStream::stderr_stream), true),
             "reused extractor " + describe(again) + " != fresh " + describe(fresh));

  const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;  // what a seed exercises
  if (verbose) std::fprintf(stderr, "extract: %zu metrics %s\n", n, describe(fresh).c_str());

  // Invalid UTF-8 reads as from_utf8_lossy.
  if (!valid_utf8(text)) {
    if (verbose) std::fprintf(stderr, "extract: compared with the lossy conversion\n");
    const std::string lossy = payloadrun::utf8_lossy(text);
    PayloadMetrics lossy_out;
    payloadrun::extract_metrics(lossy, MetricSource::json, MetricStream::stdout_stream, lossy_out);
    const std::vector<Flat> from_lossy = flatten(lossy_out, 0);
    FUZZ_CHECK(same(fresh, from_lossy, true),
               "raw text " + describe(fresh) + " != its lossy conversion " + describe(from_lossy));
    return 0;
  }

  // The plain recursive walk of the document simdjson parses.
  const auto expected = reference(text);
  if (verbose) {
    std::fprintf(stderr, "extract: %s\n", expected ? "compared with the reference walk" : "no reference");
  }
  if (expected) {
    FUZZ_CHECK(same(fresh, *expected, false),
               "extractor " + describe(fresh) + " != reference walk " + describe(*expected));
  }
  return 0;
}
