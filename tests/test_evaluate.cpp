// evaluate.hpp: checks (ported from ktstr's evaluate_checks tests), hints
// (resolve_polarities) and the stderr tail (utf8_lossy: test_utf8_lossy.cpp;
// format_value: test_model.cpp). Expected strings were produced by Rust 1.95 (`{}`,
// from_utf8_lossy, trim_end) so they pin the seed's behaviour.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "payloadrun/check.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"

namespace pr = payloadrun;
using pr::AssertResult;
using pr::MetricCheck;
using pr::PayloadMetrics;
using pr::Polarity;
using Msgs = std::vector<std::string>;

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

struct NamedValue {
  std::string name;
  double value;
};

PayloadMetrics make_pm(std::vector<NamedValue> metrics, int exit_code = 0) {
  PayloadMetrics pm;
  pm.exit_code = exit_code;
  for (const auto& m : metrics) pm.add(m.name, m.value);
  return pm;
}

Msgs messages(const AssertResult& r) {
  Msgs out;
  for (const auto& d : r.details) out.push_back(d.message);
  return out;
}

std::string hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("\\x{:02X}", c);
  return out;
}

AssertResult eval(std::vector<MetricCheck> checks, const PayloadMetrics& pm,
                  std::string_view stderr_text = "") {
  return pr::evaluate_checks(checks, pm, stderr_text);
}

}  // namespace

// ---- evaluate_checks: exit-code pre-pass --------------------------------

TEST(EvaluateChecks, PassesWhenNoChecks) {
  const auto r = eval({}, make_pm({}));
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.details.empty());
}

TEST(EvaluateChecks, ExitCodeMismatchFailsFast) {
  const auto r =
      eval({MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 100)}, make_pm({}, 42));
  EXPECT_FALSE(r.passed);
  // Only the exit-code detail: the missing-metric failure is not reported.
  ASSERT_EQ(r.details.size(), 1u);
  EXPECT_EQ(r.details[0].message, "payload exited with code 42, expected 0");
  EXPECT_EQ(r.details[0].kind, pr::DetailKind::other);
}

TEST(EvaluateChecks, ExitCodeCheckAfterFailingMetricCheckStillShortCircuits) {
  const auto r =
      eval({MetricCheck::min("absent", 1), MetricCheck::exit_code_eq(0)}, make_pm({}, 3));
  EXPECT_EQ(messages(r), Msgs{"payload exited with code 3, expected 0"});
}

TEST(EvaluateChecks, ExitCodeMismatchSurfacesStderr) {
  const auto r = eval({MetricCheck::exit_code_eq(0)}, make_pm({}, 1), "fatal: config missing\n");
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.details.size(), 1u);
  EXPECT_EQ(r.details[0].message,
            "payload exited with code 1, expected 0; stderr:\nfatal: config missing");
}

TEST(EvaluateChecks, ExitCodeMismatchWithoutStderrStaysTerse) {
  const auto r = eval({MetricCheck::exit_code_eq(0)}, make_pm({}, 1), "");
  ASSERT_EQ(r.details.size(), 1u);
  EXPECT_EQ(r.details[0].message, "payload exited with code 1, expected 0");
}

// trim_end removes Unicode White_Space (not only ASCII); all-white stderr
// leaves the terse message.
TEST(EvaluateChecks, StderrTrimEndMatchesRust) {
  struct Case {
    std::string in, kept;
  };
  const std::vector<Case> cases = {
      {" \n\t\r\n", ""},
      {"\v\f", ""},
      {"\n\xC2\x85\xC2\xA0", ""},                    // NEL, NBSP
      {"\xE3\x80\x80\xE2\x80\xA8\xE2\x80\xA9", ""},  // U+3000, U+2028, U+2029
      {"\xE2\x80\x80\xE2\x80\x8A \xE2\x80\xAF\xE2\x81\x9F\xE1\x9A\x80", ""},  // U+2000.., U+1680
      {"a \t\n", "a"},
      {"a\xC2\x85", "a"},
      {"a\xE2\x80\x8B", "a\xE2\x80\x8B"},  // U+200B is not White_Space
      {"a\xEF\xBB\xBF", "a\xEF\xBB\xBF"},  // U+FEFF neither
      {"a\xE1\xA0\x8E", "a\xE1\xA0\x8E"},  // U+180E neither (any more)
      {"a\x1C\x1F", "a\x1C\x1F"},          // info separators are not whitespace
      {"  lead stays\n", "  lead stays"},
  };
  const std::vector<MetricCheck> checks = {MetricCheck::exit_code_eq(0)};
  for (const auto& c : cases) {
    const auto d = pr::exit_code_mismatch_detail(checks, 2, c.in);
    ASSERT_TRUE(d.has_value());
    const std::string terse = "payload exited with code 2, expected 0";
    EXPECT_EQ(d->message, c.kept.empty() ? terse : terse + "; stderr:\n" + c.kept) << hex(c.in);
  }
}

TEST(EvaluateChecks, ExitCodeMismatchQuotesTrimmedTailOfLongStderr) {
  const std::string long_err = std::string(1500, 'A') + "END\n\n   ";
  const auto r = eval({MetricCheck::exit_code_eq(0)}, make_pm({}, 1), long_err);
  ASSERT_EQ(r.details.size(), 1u);
  const std::string expected_tail = "..." + std::string(1021, 'A') + "END";
  EXPECT_EQ(r.details[0].message,
            "payload exited with code 1, expected 0; stderr:\n" + expected_tail);
}

TEST(EvaluateChecks, ExitCodeEqNegativeOneMatchesSignalDeath) {
  EXPECT_TRUE(eval({MetricCheck::exit_code_eq(-1)}, make_pm({}, -1)).passed);
}

TEST(EvaluateChecks, ExitCodeEqNegativeOneFailsOnCleanExit) {
  const auto r = eval({MetricCheck::exit_code_eq(-1)}, make_pm({}, 0));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), Msgs{"payload exited with code 0, expected -1"});
}

TEST(EvaluateChecks, FirstMismatchingExitCodeCheckWins) {
  const std::vector<MetricCheck> checks = {
      MetricCheck::exit_code_eq(0), MetricCheck::exit_code_eq(1), MetricCheck::exit_code_eq(2)};
  const auto d = pr::exit_code_mismatch_detail(checks, 0, "");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->message, "payload exited with code 0, expected 1");
  EXPECT_EQ(d->kind, pr::DetailKind::other);
  const auto r = eval(checks, make_pm({}, 0));
  EXPECT_EQ(messages(r), Msgs{"payload exited with code 0, expected 1"});
}

TEST(EvaluateChecks, ExitCodeMismatchDetailNoneWhenAbsentOrMatching) {
  EXPECT_FALSE(pr::exit_code_mismatch_detail({}, 7, "boom").has_value());
  const std::vector<MetricCheck> metric_only = {MetricCheck::min("x", 1), MetricCheck::exists("y")};
  EXPECT_FALSE(pr::exit_code_mismatch_detail(metric_only, 7, "boom").has_value());
  const std::vector<MetricCheck> matching = {MetricCheck::exit_code_eq(7),
                                             MetricCheck::exit_code_eq(7)};
  EXPECT_FALSE(pr::exit_code_mismatch_detail(matching, 7, "boom").has_value());
}

TEST(EvaluateChecks, MatchingExitCodeChecksAreSkippedInMetricPass) {
  const auto r =
      eval({MetricCheck::exit_code_eq(5), MetricCheck::exists("x"), MetricCheck::exit_code_eq(5)},
           make_pm({{"x", 1}}, 5));
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.details.empty());
}

// (Reversed Range bounds cannot reach the evaluator: see test_model.cpp.)

// ---- evaluate_checks: metric checks --------------------------------------

TEST(EvaluateChecks, MissingMetricFailsLoudly) {
  const auto r = eval({MetricCheck::min("iops", 100)}, make_pm({}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), Msgs{"metric 'iops' not found in payload output"});
}

TEST(EvaluateChecks, MissingMetricFailsEveryKind) {
  const auto r =
      eval({MetricCheck::max("a", 1), MetricCheck::range("b", 0, 1), MetricCheck::exists("c")},
           make_pm({{"other", 1}}));
  EXPECT_EQ(messages(r), (Msgs{"metric 'a' not found in payload output",
                               "metric 'b' not found in payload output",
                               "metric 'c' not found in payload output"}));
}

TEST(EvaluateChecks, MinBelowThresholdFails) {
  const auto r = eval({MetricCheck::min("iops", 100)}, make_pm({{"iops", 50}}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), Msgs{"metric 'iops' = 50 below minimum 100"});
}

TEST(EvaluateChecks, MaxAboveThresholdFails) {
  const auto r = eval({MetricCheck::max("lat", 500)}, make_pm({{"lat", 1000}}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), Msgs{"metric 'lat' = 1000 exceeds maximum 500"});
}

TEST(EvaluateChecks, RangeOutOfBoundsFailsOnEitherSide) {
  EXPECT_EQ(messages(eval({MetricCheck::range("cpu", 0, 100)}, make_pm({{"cpu", 150}}))),
            Msgs{"metric 'cpu' = 150 outside [0, 100]"});
  EXPECT_EQ(messages(eval({MetricCheck::range("cpu", 0.5, 99.75)}, make_pm({{"cpu", -1.25}}))),
            Msgs{"metric 'cpu' = -1.25 outside [0.5, 99.75]"});
}

TEST(EvaluateChecks, BoundsAreInclusive) {
  const auto pm = make_pm({{"v", 10}, {"z", -0.0}});
  const auto r =
      eval({MetricCheck::min("v", 10), MetricCheck::max("v", 10), MetricCheck::range("v", 10, 10),
            MetricCheck::range("v", 0, 10), MetricCheck::min("z", 0.0), MetricCheck::max("z", 0.0)},
           pm);
  EXPECT_TRUE(r.passed) << ::testing::PrintToString(messages(r));
}

TEST(EvaluateChecks, NanValueFailsEveryComparatorWithNanMessage) {
  const auto pm = make_pm({{"iops", nan_v}});
  for (const auto& c : {MetricCheck::min("iops", 100), MetricCheck::max("iops", 100),
                        MetricCheck::range("iops", 0, 100), MetricCheck::min("iops", -inf_v),
                        MetricCheck::range("iops", -inf_v, inf_v)}) {
    const auto r = eval({c}, pm);
    EXPECT_FALSE(r.passed) << c.describe();
    EXPECT_EQ(messages(r), Msgs{"metric 'iops' value is NaN"}) << c.describe();
  }
}

TEST(EvaluateChecks, ExistsIsPresenceOnly) {
  // Zero, negative zero, negative and even NaN values are present.
  const auto pm = make_pm({{"errors", 0.0}, {"drift", -0.0}, {"neg", -3}, {"nan", nan_v}});
  const auto r = eval({MetricCheck::exists("errors"), MetricCheck::exists("drift"),
                       MetricCheck::exists("neg"), MetricCheck::exists("nan")},
                      pm);
  EXPECT_TRUE(r.passed) << ::testing::PrintToString(messages(r));
  EXPECT_FALSE(eval({MetricCheck::exists("thing")}, pm).passed);
}

TEST(EvaluateChecks, AllPassReturnsPass) {
  const auto r = eval(
      {MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 1000), MetricCheck::exists("iops")},
      make_pm({{"iops", 5000}}));
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.details.empty());
}

TEST(EvaluateChecks, DuplicateMinOnSameMetricBothEvaluated) {
  const auto r =
      eval({MetricCheck::min("iops", 50), MetricCheck::min("iops", 200)}, make_pm({{"iops", 100}}));
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), Msgs{"metric 'iops' = 100 below minimum 200"});
}

TEST(EvaluateChecks, ConflictingChecksOnSameMetricBothReportInOrder) {
  const auto r =
      eval({MetricCheck::min("iops", 100), MetricCheck::max("iops", 50)}, make_pm({{"iops", 75}}));
  EXPECT_EQ(messages(r), (Msgs{"metric 'iops' = 75 below minimum 100",
                               "metric 'iops' = 75 exceeds maximum 50"}));
}

TEST(EvaluateChecks, ThreeFailingChecksProduceThreeDetails) {
  const auto pm = make_pm({{"iops", 10}, {"lat", 900}, {"cpu", 200}});
  const auto r = eval({MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 1000),
                       MetricCheck::max("lat", 100), MetricCheck::range("cpu", 0, 100)},
                      pm);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r),
            (Msgs{"metric 'iops' = 10 below minimum 1000", "metric 'lat' = 900 exceeds maximum 100",
                  "metric 'cpu' = 200 outside [0, 100]"}));
  for (const auto& d : r.details) EXPECT_EQ(d.kind, pr::DetailKind::other);
}

TEST(EvaluateChecks, MessagesRenderValuesLikeRustDisplay) {
  const auto pm = make_pm({{"a", 0.1 + 0.2}, {"b", inf_v}, {"c", -inf_v}, {"d", 1e21}});
  const auto r = eval({MetricCheck::min("a", 0.5), MetricCheck::max("b", 1),
                       MetricCheck::min("c", -1e-7), MetricCheck::max("d", 1e20)},
                      pm);
  EXPECT_EQ(
      messages(r),
      (Msgs{"metric 'a' = 0.30000000000000004 below minimum 0.5",
            "metric 'b' = inf exceeds maximum 1", "metric 'c' = -inf below minimum -0.0000001",
            "metric 'd' = 1000000000000000000000 exceeds maximum 100000000000000000000"}));
}

TEST(EvaluateChecks, InfiniteThresholdsAccept) {
  const auto r = eval({MetricCheck::min("x", -inf_v), MetricCheck::max("x", inf_v),
                       MetricCheck::range("x", -inf_v, inf_v)},
                      make_pm({{"x", 1e308}}));
  EXPECT_TRUE(r.passed);
}

// get() semantics: the first metric with a name answers, whichever lookup
// strategy (few checks: find; many checks: a name map) is used.
TEST(EvaluateChecks, DuplicateMetricNamesUseFirstForFewAndManyChecks) {
  const auto pm = make_pm({{"x", 1}, {"y", 7}, {"x", 100}});
  EXPECT_EQ(messages(eval({MetricCheck::min("x", 50)}, pm)),
            Msgs{"metric 'x' = 1 below minimum 50"});
  std::vector<MetricCheck> many(10, MetricCheck::min("x", 50));
  many.push_back(MetricCheck::exists("nope"));
  const auto r = eval(many, pm);
  ASSERT_EQ(r.details.size(), 11u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(r.details[i].message, "metric 'x' = 1 below minimum 50");
  }
  EXPECT_EQ(r.details[10].message, "metric 'nope' not found in payload output");
}

TEST(EvaluateChecks, TenThousandMetricsTimesHundredChecksMatchNaiveReference) {
  PayloadMetrics pm;
  for (int i = 0; i < 10000; ++i) pm.add(fmt::format("jobs.{}.iops", i), i);
  pm.add("jobs.5.iops", -1);  // duplicate: the first (5) must answer
  pm.add("nan.metric", nan_v);

  std::vector<MetricCheck> checks;
  std::mt19937 rng(12345);
  for (int c = 0; c < 100; ++c) {
    const int idx = static_cast<int>(rng() % 10400);  // some names do not exist
    const std::string name =
        c == 4 ? "jobs.5.iops" : (c == 9 ? "nan.metric" : fmt::format("jobs.{}.iops", idx));
    switch (c % 4) {
      case 0:
        checks.push_back(MetricCheck::min(name, 5000));
        break;
      case 1:
        checks.push_back(MetricCheck::max(name, 2500));
        break;
      case 2:
        checks.push_back(MetricCheck::range(name, 1000, 9000));
        break;
      default:
        checks.push_back(MetricCheck::exists(name));
        break;
    }
  }
  checks.push_back(MetricCheck::exit_code_eq(0));

  // Naive reference, written independently of the library: a linear scan
  // (values are integers, so they print as such).
  std::vector<std::string> expected;
  for (const auto& c : checks) {
    if (!c.is_metric_level()) continue;
    std::optional<double> found;
    for (const auto m : pm) {
      if (m.name == c.metric()) {
        found = m.value;
        break;
      }
    }
    const std::string& n = c.metric();
    const auto i = [](double d) { return static_cast<long long>(d); };
    if (!found) {
      expected.push_back("metric '" + n + "' not found in payload output");
    } else if (c.kind() != MetricCheck::Kind::exists && std::isnan(*found)) {
      expected.push_back("metric '" + n + "' value is NaN");
    } else if (c.kind() == MetricCheck::Kind::min && *found < c.lo()) {
      expected.push_back(fmt::format("metric '{}' = {} below minimum {}", n, i(*found), i(c.lo())));
    } else if (c.kind() == MetricCheck::Kind::max && *found > c.lo()) {
      expected.push_back(
          fmt::format("metric '{}' = {} exceeds maximum {}", n, i(*found), i(c.lo())));
    } else if (c.kind() == MetricCheck::Kind::range && (*found < c.lo() || *found > c.hi())) {
      expected.push_back(
          fmt::format("metric '{}' = {} outside [{}, {}]", n, i(*found), i(c.lo()), i(c.hi())));
    }
  }
  ASSERT_GT(expected.size(), 20u);  // the fixture really exercises failures
  ASSERT_LT(expected.size(), 100u);
  const auto r = pr::evaluate_checks(checks, pm, "");
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(messages(r), expected);
  const auto got = messages(r);
  // The NaN fixture (check 9) and the duplicate (check 4: min 5000 answered
  // by the first jobs.5.iops = 5, not the later -1) are among them.
  EXPECT_EQ(std::count(got.begin(), got.end(), "metric 'nan.metric' value is NaN"), 1);
  EXPECT_EQ(std::count(got.begin(), got.end(), "metric 'jobs.5.iops' = 5 below minimum 5000"), 1);
  EXPECT_EQ(std::count(got.begin(), got.end(), "metric 'jobs.5.iops' = -1 below minimum 5000"), 0);
}

// ---- apply_hints (ktstr's resolve_polarities) -----------------------------

TEST(ApplyHints, AppliesHintsByNameRegardlessOfOrder) {
  auto pm = make_pm({{"iops", 1}, {"unhinted", 2}, {"lat_ns", 3}});
  const std::vector<pr::MetricHint> hints = {{"lat_ns", Polarity::lower_better, "ns"},
                                             {"iops", Polarity::higher_better, "iops"}};
  pr::apply_hints(pm, hints);
  EXPECT_EQ(pm[0].polarity, Polarity::higher_better);
  EXPECT_EQ(pm[0].unit, "iops");
  EXPECT_EQ(pm[1].polarity, Polarity::unknown);
  EXPECT_EQ(pm[1].unit, "");
  EXPECT_EQ(pm[2].polarity, Polarity::lower_better);
  EXPECT_EQ(pm[2].unit, "ns");
  EXPECT_EQ(pm[2].value, 3);  // values untouched
}

TEST(ApplyHints, LeavesUnhintedAlone) {
  auto pm = make_pm({{"no_hint", 1}});
  pm.set_hint(0, Polarity::lower_better, "ms");  // a previous value stays
  const std::vector<pr::MetricHint> hints = {{"other", Polarity::higher_better, "x"}};
  pr::apply_hints(pm, hints);
  EXPECT_EQ(pm[0].polarity, Polarity::lower_better);
  EXPECT_EQ(pm[0].unit, "ms");
}

TEST(ApplyHints, DuplicateHintNamesLastWins) {
  auto pm = make_pm({{"iops", 1}});
  const std::vector<pr::MetricHint> hints = {{"iops", Polarity::higher_better, "iops"},
                                             {"iops", Polarity::lower_better, "overridden"}};
  pr::apply_hints(pm, hints);
  EXPECT_EQ(pm[0].polarity, Polarity::lower_better);
  EXPECT_EQ(pm[0].unit, "overridden");
}

TEST(ApplyHints, DuplicateMetricNamesEachGetHint) {
  auto pm = make_pm({{"iops", 1}, {"x", 0}, {"iops", 2}, {"iops", 3}});
  const std::vector<pr::MetricHint> hints = {{"iops", Polarity::higher_better, "iops"},
                                             {"x", Polarity::lower_better, ""}};
  pr::apply_hints(pm, hints);
  for (std::size_t i : {0u, 2u, 3u}) {
    EXPECT_EQ(pm[i].polarity, Polarity::higher_better) << i;
    EXPECT_EQ(pm[i].unit, "iops") << i;
  }
  EXPECT_EQ(pm[1].polarity, Polarity::lower_better);
  EXPECT_EQ(pm[1].unit, "");
}

TEST(ApplyHints, OverwritesAnEarlierHintIncludingUnitReset) {
  auto pm = make_pm({{"a", 1}, {"a", 2}});
  pm.set_hint(0, Polarity::higher_better, "old");
  pm.set_hint(1, Polarity::higher_better, "old");
  const std::vector<pr::MetricHint> hints = {{"a", Polarity::lower_better, ""}};
  pr::apply_hints(pm, hints);
  for (std::size_t i : {0u, 1u}) {
    EXPECT_EQ(pm[i].polarity, Polarity::lower_better);
    EXPECT_EQ(pm[i].unit, "");
  }
}

TEST(ApplyHints, EmptyInputsAreNoop) {
  auto pm = make_pm({{"anything", 1}});
  pr::apply_hints(pm, {});
  EXPECT_EQ(pm[0].polarity, Polarity::unknown);
  EXPECT_EQ(pm[0].unit, "");
  PayloadMetrics empty;
  const std::vector<pr::MetricHint> hints = {{"iops", Polarity::higher_better, "iops"}};
  pr::apply_hints(empty, hints);
  EXPECT_TRUE(empty.empty());
}

TEST(ApplyHints, ManyMetricsAllResolved) {
  PayloadMetrics pm;
  for (int i = 0; i < 10000; ++i) pm.add(fmt::format("m{}", i % 100), i);
  std::vector<pr::MetricHint> hints;
  for (int h = 0; h < 100; h += 3) {
    hints.push_back({fmt::format("m{}", h),
                     h % 2 ? Polarity::lower_better : Polarity::higher_better,
                     fmt::format("u{}", h % 7)});
  }
  pr::apply_hints(pm, hints);
  for (std::size_t i = 0; i < pm.size(); ++i) {
    const int h = static_cast<int>(i % 100);
    if (h % 3 == 0) {
      ASSERT_EQ(pm[i].polarity, h % 2 ? Polarity::lower_better : Polarity::higher_better) << i;
      ASSERT_EQ(pm[i].unit, fmt::format("u{}", h % 7)) << i;
    } else {
      ASSERT_EQ(pm[i].polarity, Polarity::unknown) << i;
      ASSERT_EQ(pm[i].unit, "") << i;
    }
  }
}

// ---- stderr_tail ---------------------------------------------------------

TEST(StderrTail, TruncatesLongInput) {
  const std::string long_s(pr::stderr_tail_bytes + 500, 'A');
  const auto tail = pr::stderr_tail(long_s);
  EXPECT_EQ(tail, "..." + std::string(pr::stderr_tail_bytes, 'A'));
}

TEST(StderrTail, PreservesShortAndExactInput) {
  EXPECT_EQ(pr::stderr_tail("short error"), "short error");
  EXPECT_EQ(pr::stderr_tail(""), "");
  const std::string exact(pr::stderr_tail_bytes, 'x');
  EXPECT_EQ(pr::stderr_tail(exact), exact);
  EXPECT_EQ(pr::stderr_tail(exact + "y"), "..." + exact.substr(1) + "y");
}

TEST(StderrTail, SnapsForwardAcrossMultibyteCharBoundary) {
  const std::string s = std::string(10, 'A') + "é" + std::string(10, 'B');  // 22 bytes
  EXPECT_EQ(pr::stderr_tail(s, 11), "..." + std::string(10, 'B'));
}

TEST(StderrTail, PreservesMultibyteCharAtExactBoundary) {
  const std::string s = std::string(10, 'A') + "é" + std::string(10, 'B');
  EXPECT_EQ(pr::stderr_tail(s, 12), "...é" + std::string(10, 'B'));
}

TEST(StderrTail, OutputIsAlwaysValidUtf8) {
  const std::string s = "xxxxxxxxxx好yyyyyyyyyy";  // 10 + 3 + 10 bytes
  for (std::size_t max = 0; max <= s.size() + 1; ++max) {
    const auto tail = pr::stderr_tail(s, max);
    EXPECT_EQ(pr::utf8_lossy(tail), tail) << "max " << max;
    EXPECT_LE(tail.size(), max + 3) << "max " << max;
    if (max >= 10 && max < 13) {
      EXPECT_EQ(tail, "..." + std::string(10, 'y')) << "max " << max;
    }
  }
}

TEST(StderrTail, SnapsForwardAtProductionThreshold) {
  const std::string s = std::string(100, 'A') + "é" + std::string(1023, 'B');  // 1125 bytes
  ASSERT_GT(s.size(), pr::stderr_tail_bytes);
  EXPECT_EQ(pr::stderr_tail(s), "..." + std::string(1023, 'B'));
}

TEST(StderrTail, PreservesMultibyteAtProductionBoundary) {
  const std::string s = std::string(100, 'A') + "é" + std::string(1022, 'B');  // 1124 bytes
  EXPECT_EQ(pr::stderr_tail(s), "...é" + std::string(1022, 'B'));
}

TEST(StderrTail, ZeroBudgetAndStrayContinuationBytes) {
  EXPECT_EQ(pr::stderr_tail("abc", 0), "...");
  EXPECT_EQ(pr::stderr_tail(std::string_view("\x80\x80\x80"
                                             "abc"),
                            5),
            "...abc");
  EXPECT_EQ(pr::stderr_tail("a😀b", 4), "...b");  // cut inside the 4-byte emoji
  EXPECT_EQ(pr::stderr_tail("a😀b", 5), "...😀b");
}
