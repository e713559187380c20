// libFuzzer target: cgroup name validation (detail::validate_cgroup_name in
// lib/cgroup.cpp, reached through PayloadRun::in_cgroup too) and the prefix
// check of Cgroup::create_unique. The input is the name, any bytes.
//
// Invariants:
//  - the only exception is Error(invalid_argument) (for the prefix, with a
//    parent that does not exist: that or Error(cgroup) once accepted);
//  - a name is accepted exactly when the rules of detail/cgroup.hpp say so
//    (an independent re-statement below), and PayloadRun::in_cgroup agrees;
//  - an accepted name is the input's non-empty, non-"." components joined
//    by '/', validates to itself again, and joined to a parent the way spawn.cpp joins it
//    ("{parent}/{name}") and lexically normalised, stays strictly under the
//    parent (checked with std::filesystem and with a plain component walk);
//  - an accepted prefix makes a direct child of the parent.
#include <climits>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "detail/cgroup.hpp"
#include "fuzz_util.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/supervisor.hpp"

namespace {

using payloadrun::Errc;
using payloadrun::Error;

constexpr std::string_view parent = "/sys/fs/cgroup/payloadrun.slice/run";

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// The rules of detail/cgroup.hpp, restated.
bool ref_acceptable(std::string_view name) {
  if (name.find('\0') != std::string_view::npos || name.find('\n') != std::string_view::npos) return false;
  std::size_t kept = 0;
  for (std::string_view part : split(name)) {
    if (part.empty() || part == ".") continue;  // dropped, as a path join drops them
    if (part == ".." || part.size() > NAME_MAX) return false;
    ++kept;
  }
  return kept > 0;
}

// Components of `path` (absolute) after resolving "." and ".." lexically;
// `escaped` is set if ".." ever climbs above `floor` components.
std::vector<std::string_view> normalise(std::string_view path, std::size_t floor, bool& escaped) {
  std::vector<std::string_view> out;
  escaped = false;
  for (std::string_view part : split(path)) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (out.size() <= floor) escaped = true;
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(part);
  }
  return out;
}

void check_stays_under(const std::string& joined, std::size_t min_extra, std::size_t max_extra) {
  bool escaped = false;
  const auto parent_parts = normalise(parent, 0, escaped);
  const auto parts = normalise(joined, parent_parts.size(), escaped);
  FUZZ_CHECK(!escaped, "'..' climbs out of the parent in " + fuzz::quoted(joined));
  FUZZ_CHECK(parts.size() >= parent_parts.size() + min_extra && parts.size() <= parent_parts.size() + max_extra,
             "wrong depth under the parent: " + fuzz::quoted(joined));
  for (std::size_t i = 0; i < parent_parts.size(); ++i) {
    FUZZ_CHECK(parts[i] == parent_parts[i], "not under the parent: " + fuzz::quoted(joined));
  }

  namespace fs = std::filesystem;
  const fs::path normal = fs::path(joined).lexically_normal();
  const fs::path rel = normal.lexically_relative(fs::path(parent));
  FUZZ_CHECK(!rel.empty() && rel != "." && *rel.begin() != "..",
             "std::filesystem: " + fuzz::quoted(normal.string()) + " is not strictly under the parent");
}

payloadrun::Supervisor& supervisor() {
  static auto* s = new payloadrun::Supervisor();  // never destroyed: outlives every input
  return *s;
}

void check_name(std::string_view name) {
  const bool expected = ref_acceptable(name);
  std::string result;
  bool accepted = false;
  try {
    result = payloadrun::detail::validate_cgroup_name(name);
    accepted = true;
  } catch (const Error& e) {
    FUZZ_CHECK(e.code() == Errc::invalid_argument, std::string("rejected with ") + to_string(e.code()));
  }
  FUZZ_CHECK(accepted == expected, fuzz::quoted(name) + (accepted ? " accepted" : " rejected") +
                                       ", the rules say the opposite");

  // The public entry point agrees.
  static const auto payload =
      std::make_shared<const payloadrun::Payload>(payloadrun::Payload::binary_payload("p", "/bin/true"));
  payloadrun::PayloadRun run(supervisor(), payload);
  bool run_accepted = false;
  try {
    run.in_cgroup(std::string(name));
    run_accepted = true;
  } catch (const Error& e) {
    FUZZ_CHECK(e.code() == Errc::invalid_argument, "in_cgroup threw " + std::string(to_string(e.code())));
  }
  FUZZ_CHECK(run_accepted == accepted, "PayloadRun::in_cgroup disagrees with validate_cgroup_name");
  if (!accepted) return;
  FUZZ_CHECK(run.cgroup() && *run.cgroup() == result, "in_cgroup stored a different name");

  std::string normal;
  for (std::string_view part : split(name)) {
    if (part.empty() || part == ".") continue;
    if (!normal.empty()) normal += '/';
    normal += part;
  }
  FUZZ_CHECK(result == normal, "result " + fuzz::quoted(result) + " is not the name's components joined");
  FUZZ_CHECK(payloadrun::detail::validate_cgroup_name(result) == result, "validation is not idempotent");
  check_stays_under(std::string(parent) + "/" + result, 1, static_cast<std::size_t>(-1) / 2);
}

void check_prefix(std::string_view prefix) {
  const bool expected = !prefix.empty() && prefix != "." && prefix != ".." && prefix.size() <= 200 &&
                        prefix.find_first_of(std::string_view("/\n\0", 3)) == std::string_view::npos;
  bool accepted = true;
  try {
    payloadrun::detail::Cgroup::create_unique("/nonexistent/payloadrun-fuzz", prefix);
    FUZZ_CHECK(false, "created a cgroup under a parent that does not exist");
  } catch (const Error& e) {
    accepted = e.code() != Errc::invalid_argument;
    FUZZ_CHECK(e.code() == Errc::invalid_argument || e.code() == Errc::cgroup,
               "create_unique threw " + std::string(to_string(e.code())));
  }
  FUZZ_CHECK(accepted == expected, "prefix " + fuzz::quoted(prefix) + (accepted ? " accepted" : " rejected") +
                                       ", the documented rule says the opposite");
  if (accepted) check_stays_under(std::string(parent) + "/" + std::string(prefix) + "-4242-7", 1, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  check_name(name);
  check_prefix(name);
  return 0;
}
