// Metric extraction: ktstr's find_and_parse_json + walk (test_support/metrics.rs),
// with serde_json's parsing rules reproduced on top of simdjson's DOM parser.
//
// Where simdjson and serde_json disagree, the input is adjusted so that the
// outcome is serde_json's:
//   - integers beyond i64/u64 (simdjson: NUMBER_ERROR; serde: f64) and the
//     integer `-0` (simdjson: int 0; serde: -0.0) are parsed from a copy in
//     which those tokens get ".0" appended;
//   - invalid UTF-8 (simdjson: UTF8_ERROR) is parsed from a copy with
//     String::from_utf8_lossy's replacements, as ktstr decodes output that way;
//   - duplicate object keys: the walk keeps only each key's last value;
//   - serde's recursion limit fails the 128th nested container; simdjson's
//     max_depth 128 agrees except for an empty innermost container, which is
//     checked after the walk (only documents deep enough to hit the walk cap);
//   - the whole-text attempt trims Unicode White_Space, as Rust's str::trim.
#include "payloadrun/extract.hpp"

#include <simdjson.h>

#include "detail/json_text.hpp"
#include "detail/metrics_access.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace payloadrun {
namespace {

using detail::could_be_one_value;
using detail::has_negative_zero_integer;
using detail::lossy_utf8;
using detail::rewrite_numbers;
using detail::rust_trim;

static_assert(std::endian::native == std::endian::little, "the byte scans assume little-endian");

// Objects with more keys than this find duplicates with a hash map; smaller
// ones with a filter (see Extractor::Impl).
constexpr std::size_t filter_key_limit = 64;

// Copy n bytes, sizeof(Word) <= n <= 2 * sizeof(Word), as two overlapping words.
template <class Word>
inline void copy_ends(char* dst, const char* src, std::size_t n) noexcept {
  Word a;
  Word b;
  std::memcpy(&a, src, sizeof a);
  std::memcpy(&b, src + n - sizeof b, sizeof b);
  std::memcpy(dst, &a, sizeof a);
  std::memcpy(dst + n - sizeof b, &b, sizeof b);
}

// memcpy for the short names of the walk, without a libc call.
inline void copy_bytes(char* dst, const char* src, std::size_t n) noexcept {
  if (n >= 16) {
    for (std::size_t i = 0; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    copy_ends<std::uint64_t>(dst, src, n);
  } else if (n >= 4) {
    copy_ends<std::uint32_t>(dst, src, n);
  } else {
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// High bit of each byte of `word` that equals `c` (exact).
inline std::uint64_t byte_matches(std::uint64_t word, char c) noexcept {
  constexpr std::uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
  const std::uint64_t y = word ^ (0x0101010101010101ULL * static_cast<unsigned char>(c));
  return ~(((y & low7) + low7) | y | low7);
}

// A cheap hash of a key from its ends (equal keys hash equal; quality only
// affects speed). Its high bits are the well-mixed ones.
inline std::uint64_t key_hash(std::string_view key) noexcept {
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
    a = static_cast<unsigned char>(p[0]) | (static_cast<unsigned>(static_cast<unsigned char>(p[n / 2])) << 8) |
        (static_cast<unsigned>(static_cast<unsigned char>(p[n - 1])) << 16);
  }
  return (a ^ std::rotl(b, 29) ^ n) * 0x9E3779B97F4A7C15ULL;
}

}  // namespace

std::optional<std::string_view> find_json_region(std::string_view text) noexcept {
  const std::size_t brace = text.find('{');
  const std::size_t start = std::min(brace, text.substr(0, brace).find('['));
  if (start == std::string_view::npos) return std::nullopt;
  const char opener = text[start];
  const char closer = (opener == '{') ? '}' : ']';
  // Eight bytes at a time, stopping only at quotes, backslashes, the opener
  // and the closer; a backslash in a string makes the next byte inert.
  const char* const data = text.data();
  const std::size_t n = text.size();
  std::size_t depth = 0;
  bool in_string = false;
  std::size_t escaped = std::string_view::npos;  // the byte the last backslash escapes
  for (std::size_t i = start; i < n; i += 8) {
    std::uint64_t word = 0;
    if (n - i >= 8) {
      std::memcpy(&word, data + i, 8);
    } else {
      std::memcpy(&word, data + i, n - i);  // zero bytes past the end never match
    }
    std::uint64_t hits = byte_matches(word, '"') | byte_matches(word, '\\') |
                         byte_matches(word, opener) | byte_matches(word, closer);
    for (; hits != 0; hits &= hits - 1) {
      const std::size_t pos = i + static_cast<std::size_t>(std::countr_zero(hits)) / 8;
      const char c = data[pos];
      if (pos == escaped) continue;
      if (in_string) {
        if (c == '\\') escaped = pos + 1;
        if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == opener) {
        ++depth;
      } else if (c == closer && --depth == 0) {
        return text.substr(start, pos - start + 1);
      }
    }
  }
  return std::nullopt;
}

struct __attribute__((visibility("hidden"))) Extractor::Impl {
  simdjson::dom::parser parser_;
  std::string number_buf_;  // rewrite_numbers output
  std::string lossy_buf_;   // lossy_utf8 output

  // The DOM tape (simdjson's documented format, doc/tape.md): one word per
  // node, type in the top byte; a container holds the index after its
  // closer in the low 32 bits and a saturated child count in bits 32..55; a
  // number keeps its value in the next word; a string holds an offset into
  // the string buffer, where a 4-byte length precedes the bytes.
  const std::uint64_t* tape_ = nullptr;
  const std::uint8_t* strings_ = nullptr;

  // Duplicate keys. Before an object's values are walked, its keys are
  // checked (has_repeated_key); an object with a repeat (rare) or with many
  // keys is walked by a plan that visits only each key's last occurrence.
  // Every object is checked and walked once, so the walk stays linear.
  // Plans for objects at depth d use levels_[d]: objects at one depth never
  // overlap in time.
  struct Level {
    std::vector<std::size_t> fields;  // tape index of each key
    std::unordered_map<std::string_view, std::size_t> last;  // key -> its last field
  };
  std::vector<Level> levels_;

  std::string path_;  // the current container's name plus '.', or empty if that is empty
  PayloadMetrics* out_ = nullptr;
  // Names go straight into the arena, grown ahead in zero-filled steps and
  // cut back to name_end_ by finish().
  std::size_t name_end_ = 0;
  std::size_t records_capacity_ = 0;  // the capacities before this call
  std::size_t names_capacity_ = 0;
  MetricSource source_ = MetricSource::json;
  MetricStream stream_ = MetricStream::stdout_stream;
  bool truncated_ = false;  // a walk sentinel was emitted
  bool full_ = false;       // the arena reached 4 GiB (u32 offsets): stop

  static char type_at(std::uint64_t word) noexcept { return static_cast<char>(word >> 56); }
  std::size_t after(std::size_t k) const noexcept {  // the index after the value at k
    switch (type_at(tape_[k])) {
      case '{':
      case '[': return static_cast<std::uint32_t>(tape_[k]);
      case 'l':
      case 'u':
      case 'd': return k + 2;
      default: return k + 1;
    }
  }
  std::string_view string_at(std::size_t k) const noexcept {
    const std::uint8_t* p = strings_ + (tape_[k] & simdjson::internal::JSON_VALUE_MASK);
    std::uint32_t length = 0;
    std::memcpy(&length, p, sizeof length);
    return {reinterpret_cast<const char*>(p + sizeof length), length};
  }

  bool parse(std::string_view json, bool allow_lossy);
  DocumentSearch locate(std::string_view text);
  void run(std::string_view text);
  void walk_object(std::size_t k, std::size_t depth);
  bool has_repeated_key(std::size_t k, std::size_t closer) const noexcept;
  void walk_planned_object(std::size_t k, std::size_t depth);
  void walk_array(std::size_t k, std::size_t depth);
  void walk_field(std::string_view segment, std::size_t k, std::size_t depth);
  void visit(std::string_view segment, std::size_t k, std::size_t depth);
  [[gnu::always_inline]] inline void emit(std::string_view prefix, std::string_view segment,
                                          double value);
  [[gnu::noinline]] void emit_sentinel(std::size_t depth);
  bool too_deep() const noexcept;
  void reserve_output() noexcept;
  void grow_arena(std::size_t need);
  void finish() noexcept;
};

// simdjson reports an integer beyond 64 bits as NUMBER_ERROR up to 3.7.0 and
// as BIGINT_ERROR from 3.7.1 on; either way it is a number to rewrite.
template <class E = simdjson::error_code>
constexpr bool is_out_of_range_number(E e) {
  if constexpr (requires { E::BIGINT_ERROR; }) {
    if (e == E::BIGINT_ERROR) return true;
  }
  return e == E::NUMBER_ERROR;
}

// Parse `json` as serde_json::from_str would accept it; the tape stays
// valid until the next parse.
bool Extractor::Impl::parse(std::string_view json, bool allow_lossy) {
  std::string_view input = json;
  bool rewritten = false;
  if (has_negative_zero_integer(input) && rewrite_numbers(input, number_buf_)) {
    input = number_buf_;
    rewritten = true;
  }
  auto result = parser_.parse(input.data(), input.size(), true);
  if (is_out_of_range_number(result.error()) && !rewritten && rewrite_numbers(json, number_buf_)) {
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
  return true;
}

// The whole trimmed text first; then the first balanced region. On
// `document` the tape holds it.
DocumentSearch Extractor::Impl::locate(std::string_view text) {
  using Outcome = DocumentSearch::Outcome;
  if (parser_.max_depth() != max_parse_depth &&
      parser_.allocate(std::max<std::size_t>(text.size(), 4096), max_parse_depth) != simdjson::SUCCESS) {
    return {Outcome::not_json, 0, text.size()};  // out of memory: nothing parses
  }
  const auto at = [&](std::string_view part) { return static_cast<std::size_t>(part.data() - text.data()); };
  const std::string_view trimmed = rust_trim(text);
  if (trimmed.empty()) return {};
  if (could_be_one_value(trimmed) && parse(trimmed, true)) return {Outcome::document, at(trimmed), trimmed.size()};
  const auto region = find_json_region(text);
  if (!region) {
    const std::size_t opener = text.find_first_of("{[");
    if (opener == std::string_view::npos) return {Outcome::no_opener, 0, 0};
    return {Outcome::unbalanced, opener, 0};
  }
  const bool same = region->data() == trimmed.data() && region->size() == trimmed.size();
  if (same || !parse(*region, true)) return {Outcome::not_json, at(*region), region->size()};
  return {Outcome::document, at(*region), region->size()};
}

void Extractor::Impl::run(std::string_view text) {
  truncated_ = false;
  full_ = false;
  path_.clear();
  if (levels_.empty()) levels_.resize(max_walk_depth + 1);
  if (locate(text).outcome != DocumentSearch::Outcome::document) return;
  reserve_output();
  switch (type_at(tape_[1])) {  // tape_[0] is the root marker
    case '{': walk_object(1, 0); break;
    case '[': walk_array(1, 0); break;
    default: visit(std::string_view(), 1, 0); break;  // a top-level scalar is named ""
  }
}

// A child of a container at depth - 1. Past max_walk_depth it becomes one
// sentinel, whatever its type: ktstr checks the depth before the value.
void Extractor::Impl::walk_field(std::string_view segment, std::size_t k, std::size_t depth) {
  if (depth <= max_walk_depth) {
    visit(segment, k, depth);
  } else {
    emit_sentinel(depth);
  }
}

void Extractor::Impl::emit_sentinel(std::size_t depth) {
  truncated_ = true;
  emit(std::string_view(), walk_truncation_sentinel, static_cast<double>(depth));
}

void Extractor::Impl::walk_object(std::size_t k, std::size_t depth) {
  const std::uint64_t word = tape_[k];
  const std::size_t closer = static_cast<std::uint32_t>(word) - 1;
  const std::size_t keys = (word >> 32) & simdjson::internal::JSON_COUNT_MASK;
  if (keys > filter_key_limit || (keys > 1 && has_repeated_key(k, closer))) {
    walk_planned_object(k, depth);
    return;
  }
  for (std::size_t j = k + 1; j < closer && !full_; j = after(j + 1)) {
    walk_field(string_at(j), j + 1, depth + 1);
  }
}

// Whether a key of the (small) object at k repeats: a 512-bit filter, two
// bits per key, flags possible repeats, which are then compared for real.
bool Extractor::Impl::has_repeated_key(std::size_t k, std::size_t closer) const noexcept {
  std::uint64_t filter[8] = {};
  for (std::size_t j = k + 1; j < closer; j = after(j + 1)) {
    const std::string_view key = string_at(j);
    const std::uint64_t h = key_hash(key);
    std::uint64_t& word1 = filter[h >> 61];
    std::uint64_t& word2 = filter[(h >> 52) & 7];
    const std::uint64_t bit1 = std::uint64_t{1} << ((h >> 55) & 63);
    const std::uint64_t bit2 = std::uint64_t{1} << ((h >> 46) & 63);
    if ((word1 & bit1) != 0 && (word2 & bit2) != 0) {
      for (std::size_t e = k + 1; e < j; e = after(e + 1)) {
        if (string_at(e) == key) return true;
      }
    }
    word1 |= bit1;
    word2 |= bit2;
  }
  return false;
}

// Walk only each key's last occurrence (serde_json's map keeps the last
// value; here it stays where that last occurrence is).
void Extractor::Impl::walk_planned_object(std::size_t k, std::size_t depth) {
  Level& level = levels_[depth];
  const std::size_t closer = static_cast<std::uint32_t>(tape_[k]) - 1;
  const std::size_t keys = (tape_[k] >> 32) & simdjson::internal::JSON_COUNT_MASK;
  level.fields.clear();
  if (level.last.bucket_count() > 8 * keys + 64) {
    level.last = {};  // clear() would cost the buckets of an earlier, larger object
  } else {
    level.last.clear();
  }
  for (std::size_t j = k + 1; j < closer; j = after(j + 1)) {
    level.last[string_at(j)] = level.fields.size();
    level.fields.push_back(j);
  }
  for (std::size_t i = 0; i < level.fields.size() && !full_; ++i) {
    const std::string_view key = string_at(level.fields[i]);
    if (level.last.find(key)->second == i) walk_field(key, level.fields[i] + 1, depth + 1);
  }
}

void Extractor::Impl::walk_array(std::size_t k, std::size_t depth) {
  const std::size_t closer = static_cast<std::uint32_t>(tape_[k]) - 1;
  char digits[24];
  std::size_t index = 0;
  for (std::size_t j = k + 1; j < closer && !full_; j = after(j), ++index) {
    char* p = digits + sizeof digits;
    std::size_t v = index;
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    walk_field(std::string_view(p, static_cast<std::size_t>(digits + sizeof digits - p)), j, depth + 1);
  }
}

// The value at tape index k, at `depth` <= max_walk_depth, named path_ + segment.
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
    // As ktstr, a '.' joins only a non-empty name: {"": {"a": 1}} gives "a".
    const std::size_t saved = path_.size();
    path_.append(segment);
    if (!path_.empty()) path_.push_back('.');
    if (type == '{') {
      walk_object(k, depth);
    } else {
      walk_array(k, depth);
    }
    path_.resize(saved);
  }
  // Strings, booleans and null are skipped.
}

inline void Extractor::Impl::emit(std::string_view prefix, std::string_view segment, double value) {
  if (!std::isfinite(value)) return;
  const std::size_t offset = name_end_;
  const std::size_t length = prefix.size() + segment.size();
  if (offset + length > std::numeric_limits<std::uint32_t>::max()) {
    full_ = true;
    return;
  }
  std::string& arena = detail::MetricsAccess::name_arena(*out_);
  if (offset + length > arena.size()) grow_arena(offset + length);
  copy_bytes(arena.data() + offset, prefix.data(), prefix.size());
  copy_bytes(arena.data() + offset + prefix.size(), segment.data(), segment.size());
  name_end_ = offset + length;
  // Field by field: copying a Record temporary made GCC stall on store forwarding.
  detail::MetricsAccess::Record& record = detail::MetricsAccess::records(*out_).emplace_back();
  record.name_offset = static_cast<std::uint32_t>(offset);
  record.name_length = static_cast<std::uint32_t>(length);
  record.unit = 0;
  record.polarity = Polarity::unknown;
  record.source = source_;
  record.stream = stream_;
  record.value = value;
}

// Whether a container sits max_parse_depth deep (a linear pass over the tape).
bool Extractor::Impl::too_deep() const noexcept {
  const std::size_t words = tape_[0] & simdjson::internal::JSON_VALUE_MASK;
  std::size_t depth = 0;
  for (std::size_t k = 1; k < words;) {
    const char type = type_at(tape_[k]);
    if ((type == '{' || type == '[') && ++depth >= max_parse_depth) return true;
    if (type == '}' || type == ']') --depth;
    k += (type == 'l' || type == 'u' || type == 'd') ? 2 : 1;
  }
  return false;
}

// Size the output for as many leaves as the tape could hold (a keyed number
// takes three words), so a fresh PayloadMetrics is not regrown many times.
void Extractor::Impl::reserve_output() noexcept {
  const std::size_t leaves = (tape_[0] & simdjson::internal::JSON_VALUE_MASK) / 3;
  try {
    detail::MetricsAccess::records(*out_).reserve(detail::MetricsAccess::records(*out_).size() + leaves);
    grow_arena(name_end_ + leaves * 24);
  } catch (const std::bad_alloc&) {
    // Best effort: the walk grows what it needs.
  }
}

void Extractor::Impl::grow_arena(std::size_t need) {
  std::string& arena = detail::MetricsAccess::name_arena(*out_);
  if (need > arena.size()) arena.resize(std::max({need, 2 * arena.size(), std::size_t{4096}}));
}

// Cut the arena back to the names written, and return capacity this call
// added but left mostly unused.
void Extractor::Impl::finish() noexcept {
  std::string& arena = detail::MetricsAccess::name_arena(*out_);
  std::vector<detail::MetricsAccess::Record>& records = detail::MetricsAccess::records(*out_);
  if (arena.size() > name_end_) arena.resize(name_end_);
  try {
    if (arena.capacity() > names_capacity_ && arena.capacity() > 2 * arena.size() + 4096) {
      arena.shrink_to_fit();
    }
    if (records.capacity() > records_capacity_ && records.capacity() > 2 * records.size() + 256) {
      records.shrink_to_fit();
    }
  } catch (...) {
    // Keeping the spare capacity is fine.
  }
}

Extractor::Extractor() : impl_(std::make_unique<Impl>()) {}
Extractor::~Extractor() = default;
Extractor::Extractor(Extractor&&) noexcept = default;
Extractor& Extractor::operator=(Extractor&&) noexcept = default;

std::size_t Extractor::extract(std::string_view text, MetricSource source, MetricStream stream,
                               PayloadMetrics& out) noexcept {
  std::vector<detail::MetricsAccess::Record>& records = detail::MetricsAccess::records(out);
  const std::size_t first_record = records.size();
  const std::size_t first_name = detail::MetricsAccess::name_arena(out).size();
  Impl* impl = nullptr;
  try {
    if (!impl_) impl_ = std::make_unique<Impl>();  // a moved-from Extractor
    impl = impl_.get();
    impl->out_ = &out;
    impl->source_ = source;
    impl->stream_ = stream;
    impl->name_end_ = first_name;
    impl->records_capacity_ = records.capacity();
    impl->names_capacity_ = detail::MetricsAccess::name_arena(out).capacity();
    impl->run(text);
    // simdjson accepts a 128th nested container when it is empty; serde_json
    // does not. Only a document that hit the walk cap can have one.
    if (impl->truncated_ && impl->too_deep()) {
      records.resize(first_record);
      impl->name_end_ = first_name;
    }
  } catch (...) {
    // Out of memory: keep what was gathered.
  }
  if (impl != nullptr) impl->finish();
  return records.size() - first_record;
}

DocumentSearch Extractor::search(std::string_view text) noexcept {
  try {
    if (!impl_) impl_ = std::make_unique<Impl>();
    return impl_->locate(text);
  } catch (...) {
    return {DocumentSearch::Outcome::not_json, 0, text.size()};  // out of memory
  }
}

DocumentSearch search_document(std::string_view text) noexcept {
  try {
    Extractor extractor;
    return extractor.search(text);
  } catch (...) {
    return {DocumentSearch::Outcome::not_json, 0, text.size()};
  }
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
