// Scenario parsing (examples/runner/scenario.cpp): every field, and every
// error naming the file, the JSON path and what was expected.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "scenario.hpp"
#include "test_runner_util.hpp"

using namespace runner;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

std::string error_of(const std::string& json) {
  try {
    parse_scenario(json, "s.json", "/base");
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "(no error)";
}

// One payload with `field` spliced in: {"name":"p","binary":"b", field}.
std::string with_payload_field(const std::string& field, int index = 0) {
  std::string payloads;
  for (int i = 0; i < index; ++i) payloads += R"({"name": "ok)" + std::to_string(i) + R"(", "binary": "true"}, )";
  return R"({"payloads": [)" + payloads + R"({"name": "p", "binary": "b", )" + field + "}]}";
}

TEST(RunnerScenario, ParsesEveryField) {
  const Scenario s = parse_scenario(R"({
    "concurrency": 7,
    "payloads": [{
      "name": "fio", "binary": "./fio_like", "args": ["--a", "b"], "output": "json",
      "metrics": [{"name": "iops", "polarity": "higher_better", "unit": "iops"},
                  {"name": "lat", "polarity": "lower_better"}],
      "checks": [{"min": {"metric": "iops", "value": 100}}, {"max": {"metric": "lat", "value": 2.5}},
                 {"range": {"metric": "x", "lo": -1, "hi": 1}}, {"exists": "lat"}, {"exit_code": 0}],
      "timeout_ms": 5000, "cgroup": "bench", "own_cgroup": true, "uses_parent_pgrp": true,
      "env": {"K": "V", "X": ""}, "count": 10
    }, {"name": "d", "binary": "/bin/true", "output": {"deferred": "hint text"}},
       {"name": "e", "binary": "true", "output": "exit_code", "count": 0}]})",
                                    "s.json", "/base");
  EXPECT_EQ(s.concurrency, 7u);
  ASSERT_EQ(s.payloads.size(), 3u);
  const ScenarioPayload& sp = s.payloads[0];
  const payloadrun::Payload& p = *sp.payload;
  EXPECT_EQ(p.name, "fio");
  EXPECT_EQ(p.binary, "/base/fio_like");
  EXPECT_EQ(p.default_args, (std::vector<std::string>{"--a", "b"}));
  EXPECT_TRUE(std::holds_alternative<payloadrun::output::Json>(p.output));
  ASSERT_EQ(p.metrics.size(), 2u);
  EXPECT_EQ(p.metrics[0], (payloadrun::MetricHint{"iops", payloadrun::Polarity::higher_better, "iops"}));
  EXPECT_EQ(p.metrics[1], (payloadrun::MetricHint{"lat", payloadrun::Polarity::lower_better, ""}));
  ASSERT_EQ(p.default_checks.size(), 5u);
  EXPECT_EQ(p.default_checks[0], payloadrun::MetricCheck::min("iops", 100));
  EXPECT_EQ(p.default_checks[1], payloadrun::MetricCheck::max("lat", 2.5));
  EXPECT_EQ(p.default_checks[2], payloadrun::MetricCheck::range("x", -1, 1));
  EXPECT_EQ(p.default_checks[3], payloadrun::MetricCheck::exists("lat"));
  EXPECT_EQ(p.default_checks[4], payloadrun::MetricCheck::exit_code_eq(0));
  EXPECT_TRUE(p.uses_parent_pgrp);
  EXPECT_EQ(sp.timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(sp.cgroup, "bench");
  EXPECT_TRUE(sp.own_cgroup);
  EXPECT_EQ(sp.env, (std::vector<std::pair<std::string, std::string>>{{"K", "V"}, {"X", ""}}));
  EXPECT_EQ(sp.count, 10u);
  const auto* deferred = std::get_if<payloadrun::output::Deferred>(&s.payloads[1].payload->output);
  ASSERT_NE(deferred, nullptr);
  EXPECT_EQ(deferred->hint, "hint text");
  EXPECT_EQ(s.payloads[1].payload->binary, "/bin/true");  // absolute: unchanged
  EXPECT_EQ(s.payloads[1].count, 1u);                     // default
  EXPECT_FALSE(s.payloads[1].timeout.has_value());
  EXPECT_EQ(s.payloads[2].payload->binary, "true");  // PATH name: unchanged
  EXPECT_TRUE(std::holds_alternative<payloadrun::output::ExitCode>(s.payloads[2].payload->output));
  EXPECT_EQ(s.total_invocations(), 11u);
}

TEST(RunnerScenario, DefaultsConcurrency) {
  EXPECT_EQ(parse_scenario(R"({"payloads": [{"name": "a", "binary": "true"}]})", "f", ".").concurrency, 64u);
}

struct ErrorCase {
  std::string json;
  std::string where_and_what;  // "path: message" as it must appear
};

TEST(RunnerScenario, EveryErrorNamesFilePathAndExpectation) {
  const std::vector<ErrorCase> cases = {
      {"[1]", "s.json: (top level): expected an object"},
      {"{}", "s.json: payloads: missing; expected an array of payloads"},
      {R"({"payloads": {}})", "s.json: payloads: expected an array of payloads, got an object"},
      {R"({"payloads": []})", "s.json: payloads: expected at least one payload"},
      {R"({"payloads": [], "concurency": 3})", "s.json: concurency: unknown key; expected one of: concurrency, payloads"},
      {R"({"concurrency": 0, "payloads": []})", "s.json: concurrency: expected a positive integer, got 0"},
      {R"({"concurrency": "8", "payloads": []})", "s.json: concurrency: expected a positive integer, got a string"},
      {R"({"payloads": [3]})", "s.json: payloads[0]: expected a payload object, got an integer"},
      {R"({"payloads": [{"binary": "b"}]})", "s.json: payloads[0].name: missing; expected a payload name"},
      {R"({"payloads": [{"name": "p"}]})", "s.json: payloads[0].binary: missing; expected a binary"},
      {R"({"payloads": [{"name": "", "binary": "b"}]})", "s.json: payloads[0].name: expected a non-empty string"},
      {with_payload_field(R"("checks": [{"min": {"metric": "iops", "value": "100"}}])", 2),
       "s.json: payloads[2].checks[0].min.value: expected a number, got a string"},
      {with_payload_field(R"("checks": [{"exists": "a"}, {"max": {"metric": "iops"}}])"),
       "s.json: payloads[0].checks[1].max.value: missing; expected a number"},
      {with_payload_field(R"("checks": [{"range": {"metric": "x", "lo": 5, "hi": 1}}])"),
       "s.json: payloads[0].checks[0].range: expected lo <= hi, got lo = 5 > hi = 1"},
      {with_payload_field(R"("checks": [{"minimum": {"metric": "x", "value": 1}}])"),
       "s.json: payloads[0].checks[0].minimum: unknown check"},
      {with_payload_field(R"("checks": [{"min": {"metric": "x", "value": 1}, "max": {"metric": "x", "value": 2}}])"),
       "s.json: payloads[0].checks[0]: expected an object with one key"},
      {with_payload_field(R"("checks": [{"exit_code": 1.5}])"),
       "s.json: payloads[0].checks[0].exit_code: expected an exit code (an integer from -1 to 255), got a number"},
      {with_payload_field(R"("checks": [{"exit_code": 300}])"),
       "s.json: payloads[0].checks[0].exit_code: expected an exit code (an integer from -1 to 255), got 300"},
      {with_payload_field(R"("checks": [{"exists": ""}])"), "s.json: payloads[0].checks[0].exists: expected a non-empty string"},
      {with_payload_field(R"("checks": {"exists": "x"})"), "s.json: payloads[0].checks: expected an array of checks, got an object"},
      {with_payload_field(R"("output": "xml")"), R"(s.json: payloads[0].output: expected "json", "exit_code" or {"deferred": "hint"}, got "xml")"},
      {with_payload_field(R"("output": {"deferred": 3})"), "s.json: payloads[0].output.deferred: expected a hint string or null, got an integer"},
      {with_payload_field(R"("metrics": [{"name": "a", "polarity": "up"}])"),
       R"(s.json: payloads[0].metrics[0].polarity: expected "higher_better" or "lower_better", got "up")"},
      {with_payload_field(R"("metrics": [{"polarity": "higher_better"}])"), "s.json: payloads[0].metrics[0].name: missing"},
      {with_payload_field(R"("metrics": [{"name": "a", "unit": 1}])"), "s.json: payloads[0].metrics[0].unit: expected a string, got an integer"},
      {with_payload_field(R"("args": ["a", 1])"), "s.json: payloads[0].args[1]: expected a string, got an integer"},
      {with_payload_field(R"("timeout_ms": -5)"), "s.json: payloads[0].timeout_ms: expected a positive integer (milliseconds), got -5"},
      {with_payload_field(R"("timeout_ms": 2.5)"), "s.json: payloads[0].timeout_ms: expected a positive integer (milliseconds), got a number"},
      {with_payload_field(R"("count": -1)"), "s.json: payloads[0].count: expected a non-negative integer, got -1"},
      {with_payload_field(R"("env": {"A": 1})"), "s.json: payloads[0].env.A: expected a string, got an integer"},
      {with_payload_field(R"("env": {"A=B": "1"})"), "s.json: payloads[0].env.A=B: expected an environment variable name"},
      {with_payload_field(R"("own_cgroup": "yes")"), "s.json: payloads[0].own_cgroup: expected true or false, got a string"},
      {with_payload_field(R"("cgroup": 5)"), "s.json: payloads[0].cgroup: expected a non-empty string, got an integer"},
      {with_payload_field(R"("timeout": 5)"), "s.json: payloads[0].timeout: unknown key; expected one of: name, binary"},
      {R"({"payloads": [)", "s.json: not valid JSON"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(error_of(c.json), StartsWith(c.where_and_what)) << "scenario: " << c.json;
  }
}

TEST(RunnerScenario, LoadResolvesRelativeBinariesAgainstTheFileDirectory) {
  runner_test::TempDir dir;
  runner_test::write_file(dir.file("s.json"),
                          R"({"payloads": [{"name": "a", "binary": "./bin/x"}, {"name": "b", "binary": "../y"}]})");
  const Scenario s = load_scenario(dir.file("s.json"));
  EXPECT_EQ(s.file, dir.file("s.json"));
  EXPECT_EQ(s.payloads[0].payload->binary, dir.path() + "/bin/x");
  EXPECT_EQ(s.payloads[1].payload->binary, dir.path() + "/../y");
}

TEST(RunnerScenario, MissingFileIsAnError) {
  try {
    load_scenario("/nonexistent/scenario.json");
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/scenario.json: cannot open the scenario file"));
  }
}

}  // namespace
