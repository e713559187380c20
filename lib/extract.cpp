// Metric extraction: ktstr's find_and_parse_json + walk (test_support/metrics.rs),
// with serde_json's parsing rules reproduced on top of simdjson's DOM parser.
//
// Where simdjson and serde_json disagree, the input is adjusted before (or
// after) parsing so that the outcome is serde_json's:
//   - integers beyond u64/i64 (simdjson: NUMBER_ERROR; serde: f64) and the
//     integer `-0` (simdjson: int 0; serde: f64 -0.0) are re-parsed from a
//     copy in which those tokens get ".0" appended;
//   - invalid UTF-8 (simdjson: UTF8_ERROR) is re-parsed from a copy with
//     String::from_utf8_lossy's replacements, as ktstr decodes output that way;
//   - duplicate object keys are dropped during the walk (last value wins);
//   - serde's recursion limit fails the 128th nested container: simdjson's
//     max_depth 128 does the same except for an empty innermost container,
//     which is checked after the walk (only deep documents pay for it);
//   - the whole-text attempt trims Unicode White_Space, as Rust's str::trim.
#include "payloadrun/extract.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace payloadrun {
namespace {

namespace dom = simdjson::dom;

// Objects with more keys than this find duplicate keys with a hash table;
// smaller ones with a 1024-bit filter (see Extractor::Impl).
constexpr std::size_t bloom_key_limit = 64;

// ---------------------------------------------------------------------------
// Text helpers.

// Byte length of the Unicode White_Space character starting at s[0], else 0.
std::size_t leading_space(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return 1;
  if (c == 0xC2 && s.size() >= 2 && (b(1) == 0x85 || b(1) == 0xA0)) return 2;  // NEL, NBSP
  if (s.size() < 3) return 0;
  if (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && b(1) == 0x80 &&
      (b(2) <= 0x8A || b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF)) {
    return 3;  // U+2000..U+200A, U+2028, U+2029, U+202F (b(2) >= 0x80 always here)
  }
  if (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Byte length of the White_Space character ending s, else 0. The lead bytes
// checked here can never be continuation bytes, so a match is a real char.
std::size_t trailing_space(std::string_view s) noexcept {
  const std::size_t n = s.size();
  const auto c = static_cast<unsigned char>(s[n - 1]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return 1;
  if (n >= 2 && leading_space(s.substr(n - 2)) == 2) return 2;
  if (n >= 3 && leading_space(s.substr(n - 3)) == 3) return 3;
  return 0;
}

// Rust's str::trim.
std::string_view rust_trim(std::string_view s) noexcept {
  while (!s.empty()) {
    const std::size_t k = leading_space(s);
    if (k == 0) break;
    s.remove_prefix(k);
  }
  while (!s.empty()) {
    const std::size_t k = trailing_space(s);
    if (k == 0) break;
    s.remove_suffix(k);
  }
  return s;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// End of the string literal whose opening quote is at `open`: index of the
// closing quote, or s.size() when unterminated. A quote preceded by an odd
// run of backslashes is escaped (escapes pair up from the left).
std::size_t string_end(std::string_view s, std::size_t open) noexcept {
  std::size_t from = open + 1;
  while (from < s.size()) {
    const void* hit = std::memchr(s.data() + from, '"', s.size() - from);
    if (hit == nullptr) return s.size();
    const auto q = static_cast<std::size_t>(static_cast<const char*>(hit) - s.data());
    std::size_t k = q;
    while (k > open + 1 && s[k - 1] == '\\') --k;
    if ((q - k) % 2 == 0) return q;
    from = q + 1;
  }
  return s.size();
}

// Deepest nesting of arrays/objects (outside strings), stopping at `cap`.
std::size_t container_nesting(std::string_view s, std::size_t cap) noexcept {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  for (std::size_t i = 0; i < s.size() && deepest < cap; ++i) {
    const char c = s[i];
    if (c == '"') {
      i = string_end(s, i);
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// A `-0` integer token (simdjson reads it as int 0, serde_json as -0.0).
// May match inside a string: that only costs a needless rewrite.
bool has_negative_zero_integer(std::string_view s) noexcept {
  const char* p = s.data();
  const char* const end = p + s.size();
  while (p < end) {
    const void* hit = std::memchr(p, '-', static_cast<std::size_t>(end - p));
    if (hit == nullptr) return false;
    p = static_cast<const char*>(hit) + 1;
    if (p < end && *p == '0' &&
        (p + 1 == end || (!is_digit(p[1]) && p[1] != '.' && p[1] != 'e' && p[1] != 'E'))) {
      return true;
    }
  }
  return false;
}

// Copy `s` into `out`, appending ".0" to integer tokens (outside strings)
// that serde_json reads as f64 but simdjson does not: `-0`, and integers of
// 19+ digits (which covers everything beyond i64/u64; appending ".0" to one
// that fits does not change its nearest double). Returns whether any changed.
bool rewrite_numbers(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size() + 16);
  bool changed = false;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      const std::size_t e = std::min(string_end(s, i) + 1, s.size());
      out.append(s.substr(i, e - i));
      i = e;
      continue;
    }
    if (c != '-' && !is_digit(c)) {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t first = (c == '-') ? i + 1 : i;
    std::size_t k = first;
    while (k < s.size() && is_digit(s[k])) ++k;
    const std::size_t digits = k - first;
    out.append(s.substr(i, k - i));
    if (k < s.size() && (s[k] == '.' || s[k] == 'e' || s[k] == 'E')) {
      // A fraction/exponent: copy the rest of the token untouched.
      const std::size_t t = k;
      while (k < s.size() && (is_digit(s[k]) || s[k] == '.' || s[k] == 'e' || s[k] == 'E' ||
                              s[k] == '+' || s[k] == '-')) {
        ++k;
      }
      out.append(s.substr(t, k - t));
    } else if ((c == '-' && digits == 1 && s[first] == '0') ||
               (digits >= 19 && s[first] != '0')) {
      out.append(".0");
      changed = true;
    }
    i = k;
  }
  return changed;
}

// Length of the well-formed UTF-8 sequence at s[i], or 0 with `bad` set to
// the length of its maximal ill-formed prefix (at least 1), as Rust's
// from_utf8_lossy decides where one U+FFFD goes.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  std::size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= s.size()) break;
    const unsigned char t = b(i + k);
    const unsigned char tlo = (k == 1) ? lo : 0x80;
    const unsigned char thi = (k == 1) ? hi : 0xBF;
    if (t < tlo || t > thi) break;
  }
  if (k > need) return need + 1;
  bad = k;
  return 0;
}

// String::from_utf8_lossy.
void lossy_utf8(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size() + 16);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    const std::size_t n = utf8_sequence(s, i, bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += bad;
    }
  }
}

// A cheap hash of an object key for the duplicate check (equal keys hash
// equal; quality only affects speed). Reads the ends of the key only.
std::uint64_t key_hash(std::string_view key) noexcept {
  const char* p = key.data();
  const std::size_t n = key.size();
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (n >= 8) {
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);
  } else if (n >= 4) {
    std::uint32_t x = 0;
    std::uint32_t y = 0;
    std::memcpy(&x, p, 4);
    std::memcpy(&y, p + n - 4, 4);
    a = x;
    b = y;
  } else if (n > 0) {
    a = static_cast<unsigned char>(p[0]) | (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) |
        (std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16);
  }
  std::uint64_t h = (a ^ 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
  h ^= (b + n) * 0x94D049BB133111EBULL;
  return h ^ (h >> 29);
}

}  // namespace

std::optional<std::string_view> find_json_region(std::string_view text) noexcept {
  const std::size_t start = text.find_first_of("{[");
  if (start == std::string_view::npos) return std::nullopt;
  const char opener = text[start];
  const char closer = (opener == '{') ? '}' : ']';
  std::size_t depth = 0;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      i = string_end(text, i);
    } else if (c == opener) {
      ++depth;
    } else if (c == closer && --depth == 0) {
      return text.substr(start, i - start + 1);
    }
  }
  return std::nullopt;
}

struct Extractor::Impl {
  dom::parser parser_;
  std::string number_buf_;   // rewrite_numbers output
  std::string lossy_buf_;    // lossy_utf8 output
  std::string_view parsed_;  // the bytes behind the current DOM

  // The DOM tape (simdjson's documented format, doc/tape.md): one word per
  // node, type in the top byte; containers hold the index after their
  // closer in the low 32 bits and a saturated child count in bits 32..55;
  // numbers keep their value in the next word; strings hold an offset into
  // the string buffer, where a 4-byte length precedes the bytes.
  const std::uint64_t* tape_ = nullptr;
  const std::uint8_t* strings_ = nullptr;

  // Duplicate keys. Each object being walked at depth d lists its keys in
  // levels_[d] (objects at one depth never overlap in time). A 1024-bit
  // filter on the walker's stack flags a possible repeat; only then are the
  // earlier keys compared. Objects with many keys use a hash table instead,
  // whose slots belong to the current object when their stamp matches.
  struct Seen {
    std::string_view key;
    std::size_t begin = 0;  // the records this key's value produced
    std::size_t end = 0;
  };
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t stamp = 0;
    std::uint32_t seen = 0;  // index into Level::seen
  };
  struct Level {
    std::vector<Seen> seen;
    std::vector<Slot> slots;
    std::uint32_t stamp = 0;
  };
  using Bloom = std::uint64_t[16];
  std::vector<Level> levels_;
  // Record ranges produced by values that a later duplicate key replaced.
  std::vector<std::pair<std::size_t, std::size_t>> dead_;

  std::string path_;  // the current container's name plus '.', or empty
  PayloadMetrics* out_ = nullptr;
  std::size_t first_record_ = 0;
  MetricSource source_ = MetricSource::json;
  MetricStream stream_ = MetricStream::stdout_stream;
  bool truncated_ = false;  // a walk sentinel was emitted
  bool full_ = false;       // the name arena reached 4 GiB: stop

  bool parse(std::string_view json, bool allow_lossy);
  void run(std::string_view text);

  static char type_at(std::uint64_t word) noexcept { return static_cast<char>(word >> 56); }
  std::size_t after(std::size_t k) const noexcept;
  std::string_view string_at(std::size_t k) const noexcept;
  void walk_object(std::size_t k, std::size_t depth);
  void walk_array(std::size_t k, std::size_t depth);
  void visit(std::string_view segment, std::size_t k, std::size_t depth);
  void note_key(Level& level, Bloom* bloom, std::string_view key, std::size_t begin,
                std::size_t end);
  void rehash(Level& level);
  void drop_dead_records();
  void emit(std::string_view prefix, std::string_view segment, double value);
  void emit_sentinel(std::size_t depth);
};

// Parse `json` as serde_json::from_str would accept it. The tape stays valid
// until the next parse; `parsed_` names the bytes it was built from.
bool Extractor::Impl::parse(std::string_view json, bool allow_lossy) {
  std::string_view input = json;
  bool rewritten = false;
  if (has_negative_zero_integer(input) && rewrite_numbers(input, number_buf_)) {
    input = number_buf_;
    rewritten = true;
  }
  auto result = parser_.parse(input.data(), input.size(), true);
  if (result.error() == simdjson::NUMBER_ERROR && !rewritten && rewrite_numbers(json, number_buf_)) {
    input = number_buf_;
    result = parser_.parse(input.data(), input.size(), true);
  }
  if (result.error() == simdjson::UTF8_ERROR && allow_lossy) {
    lossy_utf8(json, lossy_buf_);
    return parse(lossy_buf_, false);
  }
  if (result.error() != simdjson::SUCCESS) return false;
  tape_ = parser_.doc.tape.get();
  strings_ = parser_.doc.string_buf.get();
  parsed_ = input;
  return true;
}

void Extractor::Impl::run(std::string_view text) {
  truncated_ = false;
  full_ = false;
  dead_.clear();
  path_.clear();
  first_record_ = out_->records().size();
  if (parser_.max_depth() != max_parse_depth) {
    const std::size_t capacity = std::max<std::size_t>(text.size(), 4096);
    if (parser_.allocate(capacity, max_parse_depth) != simdjson::SUCCESS) return;
  }
  if (levels_.empty()) levels_.resize(max_walk_depth + 1);
  // Whole trimmed text first; then the first balanced region.
  const std::string_view trimmed = rust_trim(text);
  if (trimmed.empty() || !parse(trimmed, true)) {
    const auto region = find_json_region(text);
    if (!region) return;
    const bool same = region->data() == trimmed.data() && region->size() == trimmed.size();
    if (same || !parse(*region, true)) return;
  }
  // tape_[0] is the root marker; the document's value starts at 1.
  switch (type_at(tape_[1])) {
    case '{': walk_object(1, 0); break;
    case '[': walk_array(1, 0); break;
    default: visit(std::string_view(), 1, 0); break;  // a top-level scalar is named ""
  }
  if (!dead_.empty()) drop_dead_records();
}

std::size_t Extractor::Impl::after(std::size_t k) const noexcept {
  const std::uint64_t word = tape_[k];
  switch (type_at(word)) {
    case '{':
    case '[': return static_cast<std::uint32_t>(word);
    case 'l':
    case 'u':
    case 'd': return k + 2;
    default: return k + 1;
  }
}

std::string_view Extractor::Impl::string_at(std::size_t k) const noexcept {
  const std::uint8_t* p = strings_ + (tape_[k] & simdjson::internal::JSON_VALUE_MASK);
  std::uint32_t length = 0;
  std::memcpy(&length, p, sizeof length);
  return {reinterpret_cast<const char*>(p + sizeof length), length};
}

// Children of a container at `depth` sit at depth + 1; past max_walk_depth
// each one is replaced by a sentinel (whatever its type, as ktstr checks the
// depth before looking at the value).
void Extractor::Impl::walk_object(std::size_t k, std::size_t depth) {
  const std::uint64_t word = tape_[k];
  const std::size_t closer = static_cast<std::uint32_t>(word) - 1;
  const std::size_t keys = (word >> 32) & simdjson::internal::JSON_COUNT_MASK;
  Level* level = nullptr;
  Bloom bloom{};
  Bloom* filter = nullptr;
  if (keys > 1) {
    level = &levels_[depth];
    level->seen.clear();
    if (keys <= bloom_key_limit) {
      filter = &bloom;
    } else {
      std::size_t want = 64;
      while (want < 2 * keys && want < (std::size_t{1} << 20)) want *= 2;  // grows if needed
      if (level->slots.size() < want) {
        level->slots.assign(want, Slot{});
        level->stamp = 0;
      }
      if (++level->stamp == 0) {
        std::fill(level->slots.begin(), level->slots.end(), Slot{});
        level->stamp = 1;
      }
    }
  }
  std::vector<PayloadMetrics::Record>& records = out_->records();
  for (std::size_t j = k + 1; j < closer && !full_; j = after(j + 1)) {
    const std::string_view key = string_at(j);
    const std::size_t begin = records.size();
    if (depth + 1 > max_walk_depth) {
      emit_sentinel(depth + 1);
    } else {
      visit(key, j + 1, depth + 1);
    }
    if (level != nullptr) note_key(*level, filter, key, begin, records.size());
  }
}

void Extractor::Impl::walk_array(std::size_t k, std::size_t depth) {
  const std::size_t closer = static_cast<std::uint32_t>(tape_[k]) - 1;
  char digits[24];
  std::size_t index = 0;
  for (std::size_t j = k + 1; j < closer && !full_; j = after(j), ++index) {
    if (depth + 1 > max_walk_depth) {
      emit_sentinel(depth + 1);
      continue;
    }
    char* const end = digits + sizeof digits;
    char* p = end;
    std::size_t v = index;
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    visit(std::string_view(p, static_cast<std::size_t>(end - p)), j, depth + 1);
  }
}

// The value at tape index k sits at `depth` (<= max_walk_depth) under the
// name path_ + segment.
void Extractor::Impl::visit(std::string_view segment, std::size_t k, std::size_t depth) {
  const char type = type_at(tape_[k]);
  if (type == 'd') {
    double v = 0;
    std::memcpy(&v, &tape_[k + 1], sizeof v);
    emit(path_, segment, v);
  } else if (type == 'l') {
    emit(path_, segment, static_cast<double>(static_cast<std::int64_t>(tape_[k + 1])));
  } else if (type == 'u') {
    emit(path_, segment, static_cast<double>(tape_[k + 1]));
  } else if (type == '{' || type == '[') {
    const std::size_t saved = path_.size();
    path_.append(segment);
    path_.push_back('.');
    if (type == '{') {
      walk_object(k, depth);
    } else {
      walk_array(k, depth);
    }
    path_.resize(saved);
  }
  // Strings, booleans and null are skipped.
}

// Record that `key`'s value produced records [begin, end). A repeated key
// kills the earlier occurrence's records: serde_json's map keeps the last
// value, and here it stays where the last occurrence is.
void Extractor::Impl::note_key(Level& level, Bloom* bloom, std::string_view key,
                               std::size_t begin, std::size_t end) {
  const std::uint64_t h = key_hash(key);
  std::size_t match = level.seen.size();
  if (bloom != nullptr) {
    std::uint64_t& word = (*bloom)[h >> 60];
    const std::uint64_t bit = std::uint64_t{1} << ((h >> 54) & 63);
    if ((word & bit) != 0) {  // possibly seen: compare for real
      for (std::size_t i = 0; i < level.seen.size(); ++i) {
        if (level.seen[i].key == key) match = i;
      }
    }
    word |= bit;
  } else {
    if (2 * (level.seen.size() + 1) > level.slots.size()) rehash(level);
    const std::size_t mask = level.slots.size() - 1;
    for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
      Slot& slot = level.slots[i];
      if (slot.stamp != level.stamp) {
        // Field by field: a whole-struct store made GCC stall on store forwarding.
        slot.hash = h;
        slot.stamp = level.stamp;
        slot.seen = static_cast<std::uint32_t>(level.seen.size());
        break;
      }
      if (slot.hash == h && level.seen[slot.seen].key == key) {
        match = slot.seen;
        break;
      }
    }
  }
  if (match == level.seen.size()) {
    level.seen.push_back(Seen{key, begin, end});
    return;
  }
  Seen& earlier = level.seen[match];
  if (earlier.end > earlier.begin) dead_.emplace_back(earlier.begin, earlier.end);
  earlier.begin = begin;
  earlier.end = end;
}

// Double a large object's table (load stays <= 1/2).
void Extractor::Impl::rehash(Level& level) {
  std::vector<Slot> slots(level.slots.size() * 2, Slot{});
  const std::size_t mask = slots.size() - 1;
  for (const Slot& s : level.slots) {
    if (s.stamp != level.stamp) continue;
    std::size_t i = static_cast<std::size_t>(s.hash) & mask;
    while (slots[i].stamp == level.stamp) i = (i + 1) & mask;
    slots[i] = s;
  }
  level.slots.swap(slots);
}

// Remove the records of replaced duplicate values (their name bytes stay in
// the arena, unreferenced).
void Extractor::Impl::drop_dead_records() {
  std::vector<PayloadMetrics::Record>& records = out_->records();
  std::vector<char> dead(records.size() - first_record_, 0);
  for (const auto& [b, e] : dead_) {
    std::fill(dead.begin() + static_cast<std::ptrdiff_t>(b - first_record_),
              dead.begin() + static_cast<std::ptrdiff_t>(e - first_record_), 1);
  }
  std::size_t w = first_record_;
  for (std::size_t r = first_record_; r < records.size(); ++r) {
    if (!dead[r - first_record_]) records[w++] = records[r];
  }
  records.resize(w);
}

// Append the metric named prefix + segment (prefix is path_, which ends with
// '.' unless empty, or nothing for the sentinel).
void Extractor::Impl::emit(std::string_view prefix, std::string_view segment, double value) {
  if (!std::isfinite(value)) return;
  std::string& arena = out_->name_arena();
  const std::size_t offset = arena.size();
  const std::size_t length = prefix.size() + segment.size();
  if (offset + length > std::numeric_limits<std::uint32_t>::max()) {
    full_ = true;
    return;
  }
  arena.append(prefix);
  arena.append(segment);
  out_->records().push_back(PayloadMetrics::Record{
      static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(length), 0,
      Polarity::unknown, source_, stream_, value});
}

void Extractor::Impl::emit_sentinel(std::size_t depth) {
  truncated_ = true;
  emit(std::string_view(), walk_truncation_sentinel, static_cast<double>(depth));
}

Extractor::Extractor() : impl_(std::make_unique<Impl>()) {}
Extractor::~Extractor() = default;
Extractor::Extractor(Extractor&&) noexcept = default;
Extractor& Extractor::operator=(Extractor&&) noexcept = default;

std::size_t Extractor::extract(std::string_view text, MetricSource source, MetricStream stream,
                               PayloadMetrics& out) noexcept {
  std::vector<PayloadMetrics::Record>& records = out.records();
  const std::size_t first_record = records.size();
  const std::size_t first_name = out.name_arena().size();
  try {
    if (!impl_) impl_ = std::make_unique<Impl>();  // a moved-from Extractor
    Impl& impl = *impl_;
    impl.out_ = &out;
    impl.source_ = source;
    impl.stream_ = stream;
    impl.run(text);
    // serde_json rejects a 128th nested container even when it is empty;
    // simdjson accepts that one case. Only a deep document (one that hit
    // the walk cap) can contain it.
    if (impl.truncated_ && container_nesting(impl.parsed_, max_parse_depth) >= max_parse_depth) {
      records.resize(first_record);
      out.name_arena().resize(first_name);
    }
  } catch (...) {
    // Out of memory: keep what was gathered.
  }
  return records.size() - first_record;
}

std::size_t extract_metrics(std::string_view text, MetricSource source, MetricStream stream,
                            PayloadMetrics& out) noexcept {
  try {
    Extractor extractor;
    return extractor.extract(text, source, stream, out);
  } catch (...) {
    return 0;
  }
}

}  // namespace payloadrun
