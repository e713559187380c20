// `payloadrun merge` (examples/runner/merge.cpp, report_read.cpp): reading
// reports back as untrusted input: what `run --json` writes reads back,
// non-finite values and control characters round-trip, malformed reports
// are errors naming the file and the JSON path, corrupted ones never crash
// (merging real slices: test_runner_merge_slices.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "merge.hpp"
#include "report.hpp"
#include "report_read.hpp"
#include "runner_report_util.hpp"
#include "scenario.hpp"
#include "shard.hpp"

using namespace runner;
using namespace runner_test;
using ::testing::HasSubstr;

namespace {

// A report as `payloadrun run --json` writes it, for one invocation.
std::string sample_report() {
  const Scenario s = parse_scenario(small_scenario, "s.json", ".");
  RunResult r;
  r.shard = Shard{0, 1, "none"};
  r.planned = s.total_invocations();
  InvocationRecord rec;
  rec.payload = "ok";
  rec.spawned = true;
  rec.payload_index = 3;
  rec.pid = 42;
  rec.passed = false;
  rec.details = {{payloadrun::DetailKind::other, "metric 'v' = 7 below minimum 8"}};
  rec.metrics = {{"v", 7, payloadrun::Polarity::higher_better, "ops", payloadrun::MetricSource::json,
                  payloadrun::MetricStream::stdout_stream}};
  rec.duration_ms = 1.5;
  r.records.push_back(rec);
  std::ostringstream out;
  write_json_report(out, s, r);
  return out.str();
}

std::string report_error(const std::string& json) {
  try {
    parse_report(json, "r.json");
  } catch (const ReportError& e) {
    return e.what();
  }
  return "(no error)";
}

// The one JSON writer and reader (docs/json.md) in reports: non-finite
// values are the strings "NaN", "Infinity", "-Infinity" and read back;
// null (reports written before) reads as NaN; strings are escaped once.
TEST(MergeReports, NonFiniteValuesAndControlCharactersRoundTrip) {
  std::string json = sample_report();
  EXPECT_THAT(json, HasSubstr("\"value\": 7.0,"));
  json = replace_once(json, "\"value\": 7.0", "\"value\": \"-Infinity\"");
  json = replace_once(json, "\"duration_ms\": 1.5", "\"duration_ms\": \"NaN\"");
  json = replace_once(json, "below minimum 8", "below\\u0001 \\b minimum 8");
  LoadedReport r = parse_report(json, "r.json");
  const InvocationRecord& rec = r.result.records.at(0);
  EXPECT_EQ(rec.metrics.at(0).value, -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(rec.duration_ms));
  EXPECT_EQ(rec.details.at(0).message, "metric 'v' = 7 below\x01 \b minimum 8");
  std::ostringstream again;
  write_json_report(again, r.scenario, r.result);
  EXPECT_THAT(again.str(), HasSubstr("\"value\": \"-Infinity\""));
  EXPECT_THAT(again.str(), HasSubstr("\"duration_ms\": \"NaN\""));
  EXPECT_THAT(again.str(), HasSubstr(R"(below\u0001 \u0008 minimum 8)"));
  const LoadedReport old = parse_report(replace_once(sample_report(), "\"value\": 7.0", "\"value\": null"), "r.json");
  EXPECT_TRUE(std::isnan(old.result.records.at(0).metrics.at(0).value));
  EXPECT_THAT(report_error(replace_once(sample_report(), "\"value\": 7.0", "\"value\": \"nan\"")),
              HasSubstr("r.json: invocations[0].metrics[0].value: expected a number, \"NaN\", \"Infinity\", "
                        "\"-Infinity\" or null, got a string"));
}

TEST(MergeReports, ReadsBackWhatRunWrites) {
  const LoadedReport r = parse_report(sample_report(), "r.json");
  EXPECT_EQ(r.scenario.digest, parse_scenario(small_scenario, "s.json", ".").digest);
  ASSERT_EQ(r.scenario.payloads.size(), 2u);
  EXPECT_EQ(r.scenario.payloads[0].payload->name, "ok");
  EXPECT_EQ(r.scenario.payloads[0].count, 9u);
  EXPECT_EQ(r.scenario.payloads[0].payload->metrics,
            (std::vector<payloadrun::MetricHint>{{"v", payloadrun::Polarity::higher_better, "ops"}}));
  EXPECT_EQ(r.result.shard, (Shard{0, 1, "none"}));
  EXPECT_EQ(r.rule, assignment_rule);
  EXPECT_EQ(r.result.planned, 14u);
  ASSERT_EQ(r.result.records.size(), 1u);
  const InvocationRecord& rec = r.result.records[0];
  EXPECT_EQ(rec.payload_index, 3u);
  EXPECT_EQ(rec.pid, 42);
  EXPECT_EQ(rec.details.at(0).message, "metric 'v' = 7 below minimum 8");
  EXPECT_EQ(rec.metrics.at(0).unit, "ops");
  EXPECT_EQ(rec.duration_ms, 1.5);
  EXPECT_FALSE(r.merged);
}

TEST(MergeReports, MalformedReportsAreErrorsNamingFileAndPath) {
  const std::string good = sample_report();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "r.json: not a payloadrun JSON report: not valid JSON"},
      {good.substr(0, good.size() / 2), "r.json: not a payloadrun JSON report: not valid JSON"},
      {"[1, 2]", "r.json: (top level): expected an object, got an array"},
      {R"({"passed": true, "invocations": []})", "r.json: not a payloadrun report with a scenario digest"},
      {replace_once(good, "\"exit_code\": 0", "\"exit_code\": \"0\""),
       "r.json: invocations[0].exit_code: expected an integer from -1 to 255, got a string"},
      {replace_once(good, "\"exit_code\": 0", "\"exit_code\": 256"),
       "r.json: invocations[0].exit_code: expected an integer from -1 to 255, got 256"},
      {replace_once(good, "\"payload_index\": 3", "\"payload_index\": -3"),
       "r.json: invocations[0].payload_index: expected a non-negative integer"},
      {replace_once(good, "\"kind\": \"other\"", "\"kind\": \"weird\""),
       "r.json: invocations[0].details[0].kind: expected one of \"other\", \"spawn\""},
      {replace_once(good, "\"stream\": \"stdout\"", "\"stream\": 1"),
       "r.json: invocations[0].metrics[0].stream: expected a string, got an integer"},
      {replace_once(good, "\"scenario_index\": 0", "\"scenario_index\": 2"),
       "r.json: invocations[0].scenario_index: expected an integer from 0 to 1, got 2"},
      {replace_once(good, "\"invocation\": 0", "\"invocation\": 9"),
       "r.json: invocations[0].invocation: expected an integer from 0 to 8, got 9"},
      {replace_once(good, "{\"payload\": \"ok\"", "{\"payload\": \"also\""),
       "r.json: invocations[0].payload: expected \"ok\" (scenario.payloads[0].name), got \"also\""},
      {replace_once(good, "\"digest\": \"sha256:", "\"digest\": \"md5:"), "r.json: scenario.digest: expected"},
      {replace_once(good, "\"count\": 9", "\"count\": 10"),
       "r.json: scenario.invocations: expected the sum of the payloads' counts (15), got 14"},
      {replace_once(good, "\"index\": 0, \"count\": 1", "\"index\": 1, \"count\": 1"),
       "r.json: shard.index: expected an integer from 0 to 0, got 1"},
      {replace_once(good, "\"count\": 1, \"source\"", "\"count\": 0, \"source\""),
       "r.json: shard.count: expected an integer from 1 to 1000000, got 0"},
      {replace_once(good, "\"rule\": ", "\"rules\": "), "r.json: shard.rule: missing; expected a string"},
      {replace_once(good, "\"duration_ms\": 1.5", "\"duration_ms\": true"),
       "r.json: invocations[0].duration_ms: expected a number, \"NaN\", \"Infinity\", \"-Infinity\" or null, got a boolean"},
      {replace_once(good, "\"invocations\": 14}", "\"invocations\": 0}"),
       "r.json: invocations: expected at most shard.invocations = 0 entries, got 1"},
  };
  for (const auto& [json, message] : cases) {
    EXPECT_THAT(report_error(json), HasSubstr(message)) << json.substr(0, 300);
  }
}

TEST(MergeReports, CorruptedReportsAreRejectedOrMergedNeverACrash) {
  const std::string good = sample_report();
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const std::string alphabet = "{}[]\",:0123456789-.eE truefalsn\\\x00\xff";
  std::size_t rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text = good;
    for (int edits = 1 + static_cast<int>(next() % 3); edits > 0; --edits) {
      const std::size_t at = next() % text.size();
      switch (next() % 3) {
        case 0: text[at] = alphabet[next() % alphabet.size()]; break;
        case 1: text.erase(at, 1 + next() % 8); break;
        default: text.insert(at, 1, alphabet[next() % alphabet.size()]);
      }
      if (text.empty()) text = "{";
    }
    try {
      std::vector<LoadedReport> reports;
      reports.push_back(parse_report(text, "r.json"));
      merge_reports(std::move(reports));
    } catch (const ReportError&) {
      ++rejected;
    } catch (const MergeError&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected " << e.what() << " for:\n" << text;
    }
  }
  EXPECT_GT(rejected, 2000u);
}

}  // namespace
