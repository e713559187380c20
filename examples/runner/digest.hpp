// payloadrun runner: the scenario digest every report carries, so that
// `payloadrun merge` can refuse slices of different scenarios.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace simdjson::dom {
class element;
}

namespace runner {

/// SHA-256 of `bytes` (FIPS 180-4).
std::array<std::uint8_t, 32> sha256(std::string_view bytes);

/// Lower-case hex of `bytes`.
std::string to_hex(const std::uint8_t* bytes, std::size_t size);

/// The canonical text of a parsed scenario document: no whitespace, object
/// keys sorted bytewise (array order kept), strings with only `"`, `\` and
/// control characters escaped (as \u00XX), integral numbers as integers
/// (100, 100.0 and 1e2 are all "100"), other numbers in their shortest
/// round-trip form. The top-level "concurrency" is left out: it is a
/// per-machine knob (like --concurrency) that changes neither which
/// invocations run nor how they are judged.
std::string canonical_scenario_json(const simdjson::dom::element& root);

/// "sha256:" + the hex SHA-256 of canonical_scenario_json(root).
std::string scenario_digest(const simdjson::dom::element& root);

}  // namespace runner
