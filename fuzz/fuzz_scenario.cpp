// libFuzzer target: scenario parsing (examples/runner/scenario.cpp,
// runner::parse_scenario). The input is the scenario file's text.
//
// Invariants:
//  - the only exception is runner::ScenarioError, and its message starts
//    with the file name (scenario.hpp: what() names the file);
//  - an accepted scenario is what the format allows: at least one payload,
//    concurrency 1..1000000, each payload named, with a binary (a "./" or
//    "../" one resolved against the base directory), count <= 10000000,
//    timeout >= 1 ms, a non-empty cgroup name, environment names non-empty
//    without '=', metric checks on non-empty names with lo <= hi and no NaN,
//    exit-code checks within -1..255;
//  - parsing is deterministic.
#include <cmath>
#include <string>
#include <string_view>
#include <typeinfo>

#include "fuzz_util.hpp"
#include "scenario.hpp"

namespace {

constexpr const char* file = "fuzz/scenario.json";
constexpr const char* base_dir = "/base/dir";

void check_scenario(const runner::Scenario& s) {
  FUZZ_CHECK(!s.payloads.empty(), "accepted a scenario without payloads");
  FUZZ_CHECK(s.concurrency >= 1 && s.concurrency <= 1'000'000, "concurrency " + std::to_string(s.concurrency));
  FUZZ_CHECK(s.file == file, "file name not kept");
  std::size_t total = 0;
  for (const runner::ScenarioPayload& sp : s.payloads) {
    FUZZ_CHECK(sp.payload != nullptr, "null payload");
    const payloadrun::Payload& p = *sp.payload;
    FUZZ_CHECK(!p.name.empty(), "payload without a name");
    FUZZ_CHECK(!p.binary.empty(), "payload '" + p.name + "' without a binary");
    FUZZ_CHECK(!p.binary.starts_with("./") && !p.binary.starts_with("../"),
               "binary " + fuzz::quoted(p.binary) + " not resolved against the base directory");
    FUZZ_CHECK(sp.count <= 10'000'000, "count " + std::to_string(sp.count));
    FUZZ_CHECK(!sp.timeout || sp.timeout->count() >= 1, "timeout below 1 ms");
    FUZZ_CHECK(!sp.cgroup || !sp.cgroup->empty(), "empty cgroup name");
    for (const auto& [key, value] : sp.env) {
      FUZZ_CHECK(!key.empty() && key.find('=') == std::string::npos, "environment name " + fuzz::quoted(key));
    }
    for (const payloadrun::MetricHint& h : p.metrics) FUZZ_CHECK(!h.name.empty(), "metric hint without a name");
    for (const payloadrun::MetricCheck& c : p.default_checks) {
      if (c.is_metric_level()) {
        FUZZ_CHECK(!c.metric().empty(), "metric check without a metric name");
        FUZZ_CHECK(!std::isnan(c.lo()) && !std::isnan(c.hi()) && c.lo() <= c.hi(),
                   "check bounds " + std::to_string(c.lo()) + ".." + std::to_string(c.hi()));
      } else {
        FUZZ_CHECK(c.exit_code() >= -1 && c.exit_code() <= 255, "exit code " + std::to_string(c.exit_code()));
      }
    }
    total += sp.count;
  }
  FUZZ_CHECK(s.total_invocations() == total, "total_invocations() is not the sum of the counts");
}

bool same_scenario(const runner::Scenario& a, const runner::Scenario& b) {
  if (a.concurrency != b.concurrency || a.payloads.size() != b.payloads.size()) return false;
  for (std::size_t i = 0; i < a.payloads.size(); ++i) {
    const runner::ScenarioPayload& x = a.payloads[i];
    const runner::ScenarioPayload& y = b.payloads[i];
    if (x.payload->name != y.payload->name || x.payload->binary != y.payload->binary ||
        x.payload->default_args != y.payload->default_args || x.payload->output != y.payload->output ||
        x.payload->metrics != y.payload->metrics || x.payload->default_checks != y.payload->default_checks ||
        x.payload->uses_parent_pgrp != y.payload->uses_parent_pgrp || x.timeout != y.timeout ||
        x.cgroup != y.cgroup || x.own_cgroup != y.own_cgroup || x.env != y.env || x.count != y.count) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const runner::Scenario s = runner::parse_scenario(json, file, base_dir);
    check_scenario(s);
    FUZZ_CHECK(same_scenario(s, runner::parse_scenario(json, file, base_dir)), "parsing is not deterministic");
  } catch (const runner::ScenarioError& e) {
    const std::string_view what(e.what());
    FUZZ_CHECK(what.starts_with(std::string(file) + ": "), "ScenarioError does not name the file: " +
                                                               fuzz::quoted(what));
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("parse_scenario threw ") + typeid(e).name() + ": " + e.what());
  }
  return 0;
}
