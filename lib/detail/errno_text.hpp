// The one errno wording of the library and its programs:
// "No such file or directory (ENOENT)"; the number when glibc has no name
// for it ("Unknown error 999 (999)"). Header-only: the programs in
// examples/ include it too (through payloadrun_detail_dep).
//
// Callers pass the errno they saved right after the failing call: anything
// in between (creating the logger, formatting, unlink) may change errno.
#pragma once

#include <cstring>
#include <string>

#include <fmt/format.h>

namespace payloadrun::detail {

inline std::string errno_text(int e) {
  const char* name = ::strerrorname_np(e);
  if (name != nullptr) return fmt::format("{} ({})", std::strerror(e), name);
  return fmt::format("{} ({})", std::strerror(e), e);
}

}  // namespace payloadrun::detail
