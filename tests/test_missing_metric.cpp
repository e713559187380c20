// A missing metric's detail says why (issue 18): evaluate_checks with the
// captured output, on outputs shaped like the tools' (real fio and hyperfine
// runs: test_runner_reports.cpp).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/metrics.hpp"

namespace pr = payloadrun;
using pr::AssertResult;
using pr::MetricCheck;
using pr::PayloadMetrics;
using Msgs = std::vector<std::string>;

namespace {

Msgs messages(const AssertResult& r) {
  Msgs out;
  for (const auto& d : r.details) out.push_back(d.message);
  return out;
}

AssertResult eval_output(std::vector<MetricCheck> checks, std::string_view out, std::string_view err = "") {
  PayloadMetrics pm;
  pr::extract_metrics(out, pr::MetricSource::json, pr::MetricStream::stdout_stream, pm);
  if (pm.empty() && !err.empty()) pr::extract_metrics(err, pr::MetricSource::json, pr::MetricStream::stderr_stream, pm);
  return pr::evaluate_checks(checks, pm, pr::CapturedOutput{out, err});
}

}  // namespace

TEST(MissingMetricReason, SaysWhenThereIsNoDocument) {
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("iops")}, "")),
            Msgs{"metric 'iops' not found in payload output: stdout is empty"});
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("iops")}, "all good, 5 runs\n", "warning: slow disk\n")),
            Msgs{"metric 'iops' not found in payload output: stdout has no JSON document (17 bytes, no '{' or "
                 "'['); stderr has no JSON document (19 bytes, no '{' or '[')"});
  EXPECT_EQ(messages(eval_output({MetricCheck::min("iops", 1)}, "result: {\"iops\": 5")),
            Msgs{"metric 'iops' not found in payload output: stdout has no JSON document (the '{' at offset 8 is "
                 "never closed)"});
}

TEST(MissingMetricReason, QuotesTheFirstRegionWhenItIsNotJson) {
  const std::string table =
      "Benchmark 1: sleep 0\n  Time (mean \xC2\xB1 \xCF\x83):  1.1 ms \xC2\xB1 0.1 ms    [User: 0.3 ms, System: 0.0 "
      "ms]\n{\"results\": [{\"mean\": 0.0011}]}\n";
  const auto r = eval_output({MetricCheck::exists("results.0.mean"), MetricCheck::max("results.0.max", 1)}, table);
  const std::string why = fmt::format(
      ": stdout's first balanced region, at offset {}, is not JSON: \"[User: 0.3 ms, System: 0.0 ms]\" (only that "
      "region is read)",
      table.find("[User"));
  EXPECT_EQ(messages(r), (Msgs{"metric 'results.0.mean' not found in payload output" + why,
                               "metric 'results.0.max' not found in payload output" + why}));
  // A long region is cut, on one line.
  const std::string long_region = "[" + std::string(100, 'x') + "\n]";
  const auto cut = eval_output({MetricCheck::exists("a")}, long_region);
  EXPECT_EQ(messages(cut), Msgs{"metric 'a' not found in payload output: stdout's first balanced region, at offset "
                                "0, is not JSON: \"[" + std::string(59, 'x') + "...\" (only that region is read)"});
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("a")}, "{\"name\": \"fio\"}")),
            Msgs{"metric 'a' not found in payload output: stdout's JSON document, at offset 0, has no number"});
}

TEST(MissingMetricReason, NamesTheClosestMetrics) {
  const std::string fio =
      R"({"jobs": [{"read": {"iops": 4000, "clat_ns": {"mean": 61000.5, "percentile": {"95.000000": 70656, )"
      R"("99.000000": 2572288, "99.500000": 2600000}}}, "write": {"clat_ns": {"percentile": {"99.000000": 1}}}}]})";
  auto r = eval_output({MetricCheck::max("percentile.99", 1)}, fio);
  EXPECT_EQ(messages(r),
            Msgs{"metric 'percentile.99' not found in payload output: the document on stdout has 6 metrics; closest: "
                 "jobs.0.read.clat_ns.percentile.99.000000, jobs.0.read.clat_ns.percentile.99.500000, "
                 "jobs.0.write.clat_ns.percentile.99.000000"});
  // A name's last segments (suffix), then an edit away (typo).
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("read.iops")}, fio)),
            Msgs{"metric 'read.iops' not found in payload output: the document on stdout has 6 metrics; closest: "
                 "jobs.0.read.iops"});
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("jobs.0.read.clat_ns.maen")}, fio)),
            Msgs{"metric 'jobs.0.read.clat_ns.maen' not found in payload output: the document on stdout has 6 "
                 "metrics; closest: jobs.0.read.clat_ns.mean"});
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("lat")}, R"({"x": 1, "y": 2, "z": 3, "w": 4})")),
            Msgs{"metric 'lat' not found in payload output: the document on stdout has 4 metrics, none with a close "
                 "name (first: x, y, z)"});
  // More than three containing the name: counted.
  std::string many = "{";
  for (int i = 0; i < 6; ++i) many += fmt::format("{}\"cpu{}\": {{\"usage\": {}}}", i ? ", " : "", i, i);
  many += "}";
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("usage")}, many)),
            Msgs{"metric 'usage' not found in payload output: the document on stdout has 6 metrics; closest: "
                 "cpu0.usage, cpu1.usage, cpu2.usage (and 3 more containing 'usage')"});
  // From the stderr fallback, the stream is named.
  EXPECT_EQ(messages(eval_output({MetricCheck::exists("p99")}, "starting\n", R"({"wakeup": {"p99": 40}})")),
            Msgs{"metric 'p99' not found in payload output: the document on stderr has 1 metric; closest: "
                 "wakeup.p99"});
}

// Every search scans all names: at most 8 per evaluation, so a document of
// many metrics and many missing checks costs a bounded time on the loop.
TEST(MissingMetricReason, SearchesForTheFirstEightMissingOnly) {
  std::vector<MetricCheck> checks;
  for (int i = 0; i < 10; ++i) checks.push_back(MetricCheck::exists(fmt::format("m{}", i)));
  const Msgs got = messages(eval_output(checks, R"({"x": {"m0": 1, "m9": 2}})"));
  ASSERT_EQ(got.size(), 10u);
  const std::string has = " not found in payload output: the document on stdout has 2 metrics";
  EXPECT_EQ(got[0], "metric 'm0'" + has + "; closest: x.m0, x.m9");
  EXPECT_EQ(got[7], "metric 'm7'" + has + "; closest: x.m0, x.m9");
  EXPECT_EQ(got[9], "metric 'm9' not found in payload output: the document on stdout has 2 metrics (closest names "
                    "are given for the first 8 missing)");
}

TEST(MissingMetricReason, WithoutTheOutputTheSeedsMessageStays) {
  PayloadMetrics pm;
  pm.add("jobs.0.read.iops", 1);
  const std::vector<MetricCheck> checks = {MetricCheck::exists("iops")};
  EXPECT_EQ(messages(pr::evaluate_checks(checks, pm, "")), Msgs{"metric 'iops' not found in payload output"});
  EXPECT_EQ(pr::missing_metric_reason("iops", pm, nullptr),
            "the document on stdout has 1 metric; closest: jobs.0.read.iops");
  EXPECT_EQ(pr::missing_metric_reason("iops", PayloadMetrics{}, nullptr), "no metrics were extracted");
}
