// payloadrun: metric extraction from JSON output (ktstr's rules).
//
// Finding the document: the whole text, trimmed (Unicode whitespace, as
// Rust's str::trim), is parsed as JSON first. If that fails, the first `{`
// or `[` is scanned to its matching closer (only that bracket type counts;
// brackets inside string literals are skipped, backslash escapes honoured)
// and that region alone is parsed. Several documents yield the first; prose
// after it is ignored; an unbalanced opener or an unparseable region yields
// no metrics and no error. Invalid UTF-8 reads as String::from_utf8_lossy.
//
// Flattening: every number whose double value is finite becomes a metric
// named by its path (object keys and array indices joined with '.', no
// leading dot; a '.' joins only a non-empty name, so {"": {"a": 1}} gives
// "a"; a top-level scalar is named ""). Strings, booleans and null are
// skipped. Metrics come in document order. Within one object a repeated key
// keeps only its last value, placed where that last occurrence is. Integers
// beyond 2^53 lose precision as doubles do; integers beyond 64 bits read as
// doubles; a number out of double range fails the document. Values nested
// deeper than max_walk_depth (the root is depth 0) are skipped and each
// skipped value adds one metric named walk_truncation_sentinel whose value
// is its depth. serde_json's recursion limit applies: a document with
// arrays/objects nested max_parse_depth deep (127 parse, 128 do not, empty
// or not) does not parse (no metrics).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "payloadrun/export.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun {

inline constexpr std::size_t max_walk_depth = 64;
inline constexpr std::size_t max_parse_depth = 128;
inline constexpr std::string_view walk_truncation_sentinel = "__walk_json_leaves_truncated";

/// The region the fallback scan would parse: the first `{`/`[` through its
/// matching closer, or nullopt when there is no opener or it is unbalanced.
PAYLOADRUN_API std::optional<std::string_view> find_json_region(std::string_view text) noexcept;

/// What the document finding above makes of a text, for diagnostics: why a
/// text yields no metrics, or where the document it yields is.
struct DocumentSearch {
  enum class Outcome : std::uint8_t {
    empty,       ///< nothing but whitespace
    no_opener,   ///< not one JSON value, and no `{` or `[` in it
    unbalanced,  ///< not one JSON value, and its first opener (at `offset`) is never closed
    not_json,    ///< the text tried last (`offset`, `length`: the first balanced region) is not JSON
    document,    ///< the JSON document at `offset`, `length` bytes long (metrics come from it)
  };
  Outcome outcome = Outcome::empty;
  std::size_t offset = 0;  ///< byte offset into the text
  std::size_t length = 0;  ///< bytes (0 for empty, no_opener and unbalanced)
};

/// Search `text` as extraction does (same rules, same parser); never throws.
PAYLOADRUN_API DocumentSearch search_document(std::string_view text) noexcept;

/// A reusable extractor (keeps its parser buffers between calls). Not
/// thread-safe; use one per thread.
class PAYLOADRUN_API Extractor {
 public:
  Extractor();
  ~Extractor();
  Extractor(Extractor&&) noexcept;
  Extractor& operator=(Extractor&&) noexcept;

  /// Append the metrics of the first JSON document in `text` to `out`,
  /// tagged with `source` and `stream`. Returns how many were appended.
  /// Never throws for any input.
  std::size_t extract(std::string_view text, MetricSource source, MetricStream stream,
                      PayloadMetrics& out) noexcept;

  /// search_document with this extractor's buffers.
  DocumentSearch search(std::string_view text) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One-shot convenience over Extractor.
PAYLOADRUN_API std::size_t extract_metrics(std::string_view text, MetricSource source,
                                           MetricStream stream, PayloadMetrics& out) noexcept;

}  // namespace payloadrun
