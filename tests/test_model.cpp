// The data model: MetricCheck construction and rendering, AssertResult,
// PayloadMetrics, Payload. Rendering expectations follow the seed's
// forbidden-check list (`Min { metric: {metric:?}, value: {value} }`, ...)
// as Rust 1.95 prints it (format_value itself: test_format_value.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "detail/metrics_access.hpp"
#include "model_util.hpp"
#include "payloadrun/check.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"

namespace pr = payloadrun;
using pr::AssertDetail;
using pr::AssertResult;
using pr::DetailKind;
using pr::MetricCheck;
using pr::PayloadMetrics;
using pr::Polarity;
using model_test::inf_v;
using model_test::nan_v;

namespace {

// Runs `f`, which must throw Error(invalid_argument); returns its text.
template <class F>
std::string invalid_argument_text(F f) {
  try {
    f();
  } catch (const pr::Error& e) {
    EXPECT_EQ(e.code(), pr::Errc::invalid_argument) << e.what();
    EXPECT_EQ(e.sys_errno(), 0);
    return e.what();
  }
  ADD_FAILURE() << "expected Error(invalid_argument)";
  return {};
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

}  // namespace

// ---- MetricCheck ----------------------------------------------------------

TEST(MetricCheck, FactoriesStoreTheirFields) {
  const auto mn = MetricCheck::min("iops", 100);
  EXPECT_EQ(mn.kind(), MetricCheck::Kind::min);
  EXPECT_EQ(mn.metric(), "iops");
  EXPECT_EQ(mn.lo(), 100);
  EXPECT_EQ(mn.hi(), 100);
  EXPECT_TRUE(mn.is_metric_level());

  const auto mx = MetricCheck::max("lat", 2.5);
  EXPECT_EQ(mx.kind(), MetricCheck::Kind::max);
  EXPECT_EQ(mx.metric(), "lat");
  EXPECT_EQ(mx.lo(), 2.5);
  EXPECT_EQ(mx.hi(), 2.5);

  const auto rg = MetricCheck::range("cpu", -1, 99);
  EXPECT_EQ(rg.kind(), MetricCheck::Kind::range);
  EXPECT_EQ(rg.lo(), -1);
  EXPECT_EQ(rg.hi(), 99);

  const auto ex = MetricCheck::exists("x");
  EXPECT_EQ(ex.kind(), MetricCheck::Kind::exists);
  EXPECT_EQ(ex.metric(), "x");
  EXPECT_TRUE(ex.is_metric_level());

  const auto ec = MetricCheck::exit_code_eq(-1);
  EXPECT_EQ(ec.kind(), MetricCheck::Kind::exit_code_eq);
  EXPECT_EQ(ec.exit_code(), -1);
  EXPECT_EQ(ec.metric(), "");
  EXPECT_FALSE(ec.is_metric_level());
}

TEST(MetricCheck, RangeAcceptsEqualAndInfiniteBounds) {
  EXPECT_NO_THROW((void)MetricCheck::range("x", 5, 5));
  EXPECT_NO_THROW((void)MetricCheck::range("x", -inf_v, inf_v));
  EXPECT_NO_THROW((void)MetricCheck::range("x", -0.0, 0.0));
  EXPECT_NO_THROW((void)MetricCheck::range("x", 0.0, -0.0));  // -0 == 0, not reversed
  EXPECT_NO_THROW((void)MetricCheck::min("x", -inf_v));
  EXPECT_NO_THROW((void)MetricCheck::max("x", inf_v));
}

TEST(MetricCheck, ReversedRangeIsRejectedWithActionableText) {
  const auto text = invalid_argument_text([] { (void)MetricCheck::range("iops", 100, 50); });
  EXPECT_TRUE(contains(text, "lo must be <= hi")) << text;  // the seed's panic text
  EXPECT_TRUE(contains(text, "iops")) << text;
  EXPECT_TRUE(contains(text, "lo=100")) << text;
  EXPECT_TRUE(contains(text, "hi=50")) << text;
  EXPECT_TRUE(contains(text, "swap")) << text;
  // Rendered like the seed's numbers: no exponent, shortest digits.
  const auto tiny = invalid_argument_text([] { (void)MetricCheck::range("t", 1e-7, -1e21); });
  EXPECT_TRUE(contains(tiny, "lo=0.0000001, hi=-1000000000000000000000")) << tiny;
  (void)invalid_argument_text([] { (void)MetricCheck::range("x", inf_v, -inf_v); });
}

TEST(MetricCheck, NanIsRejectedEverywhere) {
  const auto min_text = invalid_argument_text([] { (void)MetricCheck::min("iops", nan_v); });
  EXPECT_TRUE(contains(min_text, "NaN")) << min_text;
  EXPECT_TRUE(contains(min_text, "iops")) << min_text;
  const auto max_text = invalid_argument_text([] { (void)MetricCheck::max("lat", nan_v); });
  EXPECT_TRUE(contains(max_text, "NaN")) << max_text;
  const auto lo_text = invalid_argument_text([] { (void)MetricCheck::range("c", nan_v, 1); });
  EXPECT_TRUE(contains(lo_text, "lo")) << lo_text;
  EXPECT_TRUE(contains(lo_text, "NaN")) << lo_text;
  const auto hi_text = invalid_argument_text([] { (void)MetricCheck::range("c", 1, nan_v); });
  EXPECT_TRUE(contains(hi_text, "hi")) << hi_text;
  EXPECT_TRUE(contains(hi_text, "NaN")) << hi_text;
  (void)invalid_argument_text([] { (void)MetricCheck::range("c", nan_v, nan_v); });
}

TEST(MetricCheck, EmptyMetricNameIsRejected) {
  for (auto f :
       {+[] { (void)MetricCheck::min("", 1); }, +[] { (void)MetricCheck::max("", 1); },
        +[] { (void)MetricCheck::range("", 0, 1); }, +[] { (void)MetricCheck::exists(""); }}) {
    const auto text = invalid_argument_text(f);
    EXPECT_TRUE(contains(text, "empty")) << text;
  }
}

TEST(MetricCheck, DescribeMatchesSeedRendering) {
  EXPECT_EQ(MetricCheck::min("iops", 100).describe(), "Min { metric: \"iops\", value: 100 }");
  EXPECT_EQ(MetricCheck::max("lat_ns", 2.5).describe(), "Max { metric: \"lat_ns\", value: 2.5 }");
  EXPECT_EQ(MetricCheck::range("cpu", 0, 100.5).describe(),
            "Range { metric: \"cpu\", lo: 0, hi: 100.5 }");
  EXPECT_EQ(MetricCheck::range("r", -inf_v, inf_v).describe(),
            "Range { metric: \"r\", lo: -inf, hi: inf }");
  EXPECT_EQ(MetricCheck::min("m", -0.0).describe(), "Min { metric: \"m\", value: -0 }");
  EXPECT_EQ(MetricCheck::max("m", 1e21).describe(),
            "Max { metric: \"m\", value: 1000000000000000000000 }");
  EXPECT_EQ(MetricCheck::min("m", 0.1 + 0.2).describe(),
            "Min { metric: \"m\", value: 0.30000000000000004 }");
  EXPECT_EQ(MetricCheck::exists("lat").describe(), "Exists(\"lat\")");
  EXPECT_EQ(MetricCheck::exit_code_eq(-1).describe(), "ExitCodeEq(-1)");
  EXPECT_EQ(MetricCheck::exit_code_eq(0).describe(), "ExitCodeEq(0)");
}

TEST(MetricCheck, DescribeEscapesNamesLikeRustDebug) {
  // Rust's {:?} of a str: \" \\ \n \t \r \0 by name, controls as \u{..},
  // the apostrophe and printable non-ASCII as they are.
  EXPECT_EQ(MetricCheck::exists("a\"b").describe(), R"(Exists("a\"b"))");
  EXPECT_EQ(MetricCheck::exists("a\\b").describe(), R"(Exists("a\\b"))");
  EXPECT_EQ(MetricCheck::exists(std::string("a\nb\tc\rd\0e", 9)).describe(),
            R"(Exists("a\nb\tc\rd\0e"))");
  EXPECT_EQ(MetricCheck::exists("it's").describe(), R"(Exists("it's"))");
  EXPECT_EQ(MetricCheck::exists("\x1b[0m").describe(), R"(Exists("\u{1b}[0m"))");
  EXPECT_EQ(MetricCheck::exists("\x7f").describe(), R"(Exists("\u{7f}"))");
  EXPECT_EQ(MetricCheck::exists("\xC2\x80").describe(), R"(Exists("\u{80}"))");
  EXPECT_EQ(MetricCheck::exists("hé 好").describe(), "Exists(\"hé 好\")");
  EXPECT_EQ(MetricCheck::min("p\"q", 1).describe(), R"(Min { metric: "p\"q", value: 1 })");
}

TEST(MetricCheck, EqualityComparesEveryField) {
  EXPECT_EQ(MetricCheck::min("a", 1), MetricCheck::min("a", 1));
  EXPECT_NE(MetricCheck::min("a", 1), MetricCheck::min("a", 2));
  EXPECT_NE(MetricCheck::min("a", 1), MetricCheck::min("b", 1));
  EXPECT_NE(MetricCheck::min("a", 1), MetricCheck::max("a", 1));
  EXPECT_NE(MetricCheck::range("a", 0, 1), MetricCheck::range("a", 0, 2));
  EXPECT_EQ(MetricCheck::exit_code_eq(3), MetricCheck::exit_code_eq(3));
  EXPECT_NE(MetricCheck::exit_code_eq(3), MetricCheck::exit_code_eq(4));
  EXPECT_NE(MetricCheck::exists("a"), MetricCheck::exists("b"));
}

// ---- AssertResult / AssertDetail ------------------------------------------

TEST(AssertResult, PassAndFailFactories) {
  const auto p = AssertResult::pass();
  EXPECT_TRUE(p.passed);
  EXPECT_TRUE(p.details.empty());
  const auto f = AssertResult::fail({DetailKind::other, "boom"});
  EXPECT_FALSE(f.passed);
  ASSERT_EQ(f.details.size(), 1u);
  EXPECT_EQ(f.details[0], (AssertDetail{DetailKind::other, "boom"}));
  EXPECT_NE(f.details[0], (AssertDetail{DetailKind::spawn, "boom"}));
  EXPECT_EQ(AssertDetail{}.kind, DetailKind::other);
}

TEST(AssertResult, MergeFoldsVerdictAndAppendsDetailsInOrder) {
  auto r = AssertResult::pass();
  r.merge(AssertResult::pass());
  EXPECT_TRUE(r.passed);
  EXPECT_TRUE(r.details.empty());

  r.merge(AssertResult::fail({DetailKind::other, "one"}));
  EXPECT_FALSE(r.passed);
  r.merge(AssertResult::pass());  // a later pass does not restore the verdict
  EXPECT_FALSE(r.passed);
  auto two = AssertResult::fail({DetailKind::bounds, "two"});
  two.details.push_back({DetailKind::lost, "three"});
  r.merge(std::move(two));
  ASSERT_EQ(r.details.size(), 3u);
  EXPECT_EQ(r.details[0].message, "one");
  EXPECT_EQ(r.details[1].message, "two");
  EXPECT_EQ(r.details[1].kind, DetailKind::bounds);
  EXPECT_EQ(r.details[2].message, "three");

  auto passing = AssertResult::pass();
  passing.merge(AssertResult::fail({DetailKind::spawn, "x"}));
  EXPECT_FALSE(passing.passed);
  EXPECT_EQ(passing.details.size(), 1u);
}

TEST(AssertResult, DetailKindNames) {
  EXPECT_STREQ(pr::to_string(DetailKind::other), "other");
  EXPECT_STREQ(pr::to_string(DetailKind::spawn), "spawn");
  EXPECT_STREQ(pr::to_string(DetailKind::extraction), "extraction");
  EXPECT_STREQ(pr::to_string(DetailKind::pairing), "pairing");
  EXPECT_STREQ(pr::to_string(DetailKind::bounds), "bounds");
  EXPECT_STREQ(pr::to_string(DetailKind::lost), "lost");
}

// ---- PayloadMetrics --------------------------------------------------------

TEST(PayloadMetrics, DefaultsAreEmptyAndClean) {
  const PayloadMetrics pm;
  EXPECT_TRUE(pm.empty());
  EXPECT_EQ(pm.size(), 0u);
  EXPECT_EQ(pm.payload_index, 0u);
  EXPECT_EQ(pm.exit_code, 0);
  EXPECT_FALSE(pm.timed_out);
  EXPECT_FALSE(pm.killed_by_signal.has_value());
  EXPECT_FALSE(pm.stdout_truncated);
  EXPECT_FALSE(pm.stderr_truncated);
  EXPECT_FALSE(pm.drain_cut_short);
  EXPECT_EQ(pm.duration.count(), 0);
  EXPECT_EQ(pm.begin(), pm.end());
  EXPECT_FALSE(pm.get("x").has_value());
  EXPECT_FALSE(pm.find("").has_value());
}

TEST(PayloadMetrics, AddKeepsOrderAndFields) {
  PayloadMetrics pm;
  pm.add("jobs.0.read.iops", 12345);
  pm.add("lat_ns", 500, pr::MetricSource::deferred, pr::MetricStream::stderr_stream);
  ASSERT_EQ(pm.size(), 2u);
  EXPECT_FALSE(pm.empty());
  const pr::Metric a = pm[0];
  EXPECT_EQ(a.name, "jobs.0.read.iops");
  EXPECT_EQ(a.value, 12345);
  EXPECT_EQ(a.polarity, Polarity::unknown);
  EXPECT_EQ(a.unit, "");
  EXPECT_EQ(a.source, pr::MetricSource::json);
  EXPECT_EQ(a.stream, pr::MetricStream::stdout_stream);
  const pr::Metric b = pm[1];
  EXPECT_EQ(b.name, "lat_ns");
  EXPECT_EQ(b.source, pr::MetricSource::deferred);
  EXPECT_EQ(b.stream, pr::MetricStream::stderr_stream);
}

TEST(PayloadMetrics, GetAndFindAnswerTheFirstOfDuplicateNames) {
  PayloadMetrics pm;
  pm.add("a", 1);
  pm.add("ab", 2);  // prefix relations must not match
  pm.add("a", 3);
  pm.add("", -4);  // an empty name is just a name
  EXPECT_EQ(pm.find("a"), std::optional<std::size_t>(0));
  EXPECT_EQ(pm.get("a"), std::optional<double>(1));
  EXPECT_EQ(pm.find("ab"), std::optional<std::size_t>(1));
  EXPECT_EQ(pm.get(""), std::optional<double>(-4));
  EXPECT_FALSE(pm.get("b").has_value());
  EXPECT_FALSE(pm.get("abc").has_value());
  EXPECT_FALSE(pm.find("A").has_value());  // case-sensitive
}

TEST(PayloadMetrics, GetReturnsZeroNegativeZeroAndNanAsPresent) {
  PayloadMetrics pm;
  pm.add("zero", 0.0);
  pm.add("nz", -0.0);
  pm.add("nan", nan_v);
  ASSERT_TRUE(pm.get("zero").has_value());
  ASSERT_TRUE(pm.get("nz").has_value());
  EXPECT_TRUE(std::signbit(*pm.get("nz")));
  ASSERT_TRUE(pm.get("nan").has_value());
  EXPECT_TRUE(std::isnan(*pm.get("nan")));
}

TEST(PayloadMetrics, SetHintSetsPolarityAndInternsUnits) {
  PayloadMetrics pm;
  pm.add("a", 1);
  pm.add("b", 2);
  pm.add("c", 3);
  pm.set_hint(0, Polarity::higher_better, "iops");
  pm.set_hint(1, Polarity::lower_better, "ns");
  pm.set_hint(2, Polarity::higher_better, "iops");
  EXPECT_EQ(pm[0].polarity, Polarity::higher_better);
  EXPECT_EQ(pm[0].unit, "iops");
  EXPECT_EQ(pm[1].polarity, Polarity::lower_better);
  EXPECT_EQ(pm[1].unit, "ns");
  EXPECT_EQ(pm[2].unit, "iops");
  EXPECT_EQ(payloadrun::detail::MetricsAccess::records(pm)[0].unit, payloadrun::detail::MetricsAccess::records(pm)[2].unit);  // one table entry per unit
  EXPECT_NE(payloadrun::detail::MetricsAccess::records(pm)[0].unit, payloadrun::detail::MetricsAccess::records(pm)[1].unit);
  pm.set_hint(0, Polarity::unknown, "");
  EXPECT_EQ(pm[0].polarity, Polarity::unknown);
  EXPECT_EQ(pm[0].unit, "");
  EXPECT_EQ(pm[2].unit, "iops");  // others unaffected
  EXPECT_THROW(pm.set_hint(3, Polarity::unknown, "x"), std::out_of_range);
}

TEST(PayloadMetrics, IteratesAsRandomAccessRange) {
  PayloadMetrics pm;
  for (int i = 0; i < 5; ++i) pm.add(std::string(1, static_cast<char>('a' + i)), i * 10);
  static_assert(
      std::is_same_v<std::iterator_traits<PayloadMetrics::const_iterator>::iterator_category,
                     std::random_access_iterator_tag>);
  std::string names;
  double sum = 0;
  for (const pr::Metric m : pm) {
    names += m.name;
    sum += m.value;
  }
  EXPECT_EQ(names, "abcde");
  EXPECT_EQ(sum, 100);
  EXPECT_EQ(std::distance(pm.begin(), pm.end()), 5);
  auto it = pm.begin();
  EXPECT_EQ((*(it + 3)).name, "d");
  EXPECT_EQ(it[4].value, 40);
  it += 2;
  EXPECT_EQ((*it).name, "c");
  EXPECT_EQ((*it++).name, "c");
  EXPECT_EQ((*it).name, "d");
  --it;
  EXPECT_EQ((*it).name, "c");
  EXPECT_TRUE(pm.begin() < it);
  EXPECT_NE(it, pm.end());
}

TEST(PayloadMetrics, ToVectorOwnsEverything) {
  std::vector<PayloadMetrics::OwnedMetric> owned;
  {
    PayloadMetrics pm;
    pm.add("iops", 7, pr::MetricSource::deferred, pr::MetricStream::stderr_stream);
    pm.add("lat", 8);
    pm.set_hint(0, Polarity::higher_better, "ops/s");
    owned = pm.to_vector();
  }  // pm is gone; owned must not point into it
  ASSERT_EQ(owned.size(), 2u);
  EXPECT_EQ(owned[0].name, "iops");
  EXPECT_EQ(owned[0].value, 7);
  EXPECT_EQ(owned[0].polarity, Polarity::higher_better);
  EXPECT_EQ(owned[0].unit, "ops/s");
  EXPECT_EQ(owned[0].source, pr::MetricSource::deferred);
  EXPECT_EQ(owned[0].stream, pr::MetricStream::stderr_stream);
  EXPECT_EQ(owned[1].name, "lat");
  EXPECT_EQ(owned[1].unit, "");
}

TEST(PayloadMetrics, CopyIsDeepAndItsViewsOutliveTheOriginal) {
  auto original = std::make_unique<PayloadMetrics>();
  original->exit_code = 3;
  original->timed_out = true;
  original->killed_by_signal = 9;
  // Long names so the arena is on the heap, not in a small-string buffer.
  original->add(std::string(100, 'n') + ".first", 1);
  original->add("short", 2);
  original->set_hint(1, Polarity::lower_better, "a-fairly-long-unit-name-for-heap");
  PayloadMetrics copy = *original;
  const pr::Metric before = copy[0];
  EXPECT_NE(before.name.data(), (*original)[0].name.data());  // its own storage
  original->add("later", 3);
  original->set_hint(0, Polarity::higher_better, "changed");
  original.reset();
  ASSERT_EQ(copy.size(), 2u);
  EXPECT_EQ(before.name, std::string(100, 'n') + ".first");  // still valid
  EXPECT_EQ(copy[0].polarity, Polarity::unknown);
  EXPECT_EQ(copy[1].unit, "a-fairly-long-unit-name-for-heap");
  EXPECT_EQ(copy.exit_code, 3);
  EXPECT_TRUE(copy.timed_out);
  EXPECT_EQ(copy.killed_by_signal, std::optional<int>(9));
  EXPECT_FALSE(copy.get("later").has_value());

  PayloadMetrics assigned;
  assigned.add("old", 0);
  assigned = copy;
  EXPECT_EQ(assigned.size(), 2u);
  EXPECT_EQ(assigned[1].name, "short");
  EXPECT_FALSE(assigned.get("old").has_value());
}

TEST(PayloadMetrics, ClearAndReserve) {
  PayloadMetrics pm;
  pm.reserve(100, 4096);
  pm.add("a", 1);
  pm.set_hint(0, Polarity::higher_better, "u");
  pm.clear();
  EXPECT_TRUE(pm.empty());
  EXPECT_FALSE(pm.get("a").has_value());
  pm.add("b", 2);
  EXPECT_EQ(pm[0].name, "b");
  EXPECT_EQ(pm[0].unit, "");
  EXPECT_EQ(pm.name_bytes(), 1u);
  EXPECT_EQ(payloadrun::detail::MetricsAccess::name_arena(pm), "b");
}

TEST(PayloadMetrics, LowLevelRecordsAreUsableByAnExtractor) {
  PayloadMetrics pm;
  auto& arena = payloadrun::detail::MetricsAccess::name_arena(pm);
  const auto off = static_cast<std::uint32_t>(arena.size());
  arena += "x.y";
  payloadrun::detail::MetricsAccess::records(pm).push_back(payloadrun::detail::MetricsAccess::Record{
      off, 3, 0, Polarity::unknown, pr::MetricSource::json, pr::MetricStream::stdout_stream, 4.5});
  EXPECT_EQ(pm.size(), 1u);
  EXPECT_EQ(pm.get("x.y"), std::optional<double>(4.5));
}

// The storage is private: users see metrics through the accessors only.
template <class M>
concept ExposesStorage = requires(M& m) { m.name_arena(); } || requires(M& m) { m.records(); } ||
                         requires { typename M::Record; };
static_assert(!ExposesStorage<PayloadMetrics>);

TEST(PayloadMetrics, NameBytesCountsEveryName) {
  PayloadMetrics pm;
  EXPECT_EQ(pm.name_bytes(), 0u);
  pm.add("ab", 1);
  pm.add("ab", 2);
  pm.add("cde", 3);
  EXPECT_EQ(pm.name_bytes(), 7u);
  pm.clear();
  EXPECT_EQ(pm.name_bytes(), 0u);
}

TEST(PayloadMetrics, EnumNames) {
  EXPECT_STREQ(pr::to_string(Polarity::unknown), "unknown");
  EXPECT_STREQ(pr::to_string(Polarity::higher_better), "higher_better");
  EXPECT_STREQ(pr::to_string(Polarity::lower_better), "lower_better");
  EXPECT_STREQ(pr::to_string(pr::MetricSource::json), "json");
  EXPECT_STREQ(pr::to_string(pr::MetricSource::deferred), "deferred");
  EXPECT_STREQ(pr::to_string(pr::MetricStream::stdout_stream), "stdout");
  EXPECT_STREQ(pr::to_string(pr::MetricStream::stderr_stream), "stderr");
}

// ---- Payload ---------------------------------------------------------------

TEST(Payload, BinaryFactoryHasExitCodeOutputAndNothingElse) {
  const auto p = pr::Payload::binary_payload("fio", "/usr/bin/fio");
  EXPECT_EQ(p.name, "fio");
  EXPECT_EQ(p.binary, "/usr/bin/fio");
  EXPECT_EQ(p.kind, pr::PayloadKind::binary);
  EXPECT_TRUE(std::holds_alternative<pr::output::ExitCode>(p.output));
  EXPECT_TRUE(p.default_args.empty());
  EXPECT_TRUE(p.default_checks.empty());
  EXPECT_TRUE(p.metrics.empty());
  EXPECT_FALSE(p.metric_bounds.has_value());
  EXPECT_FALSE(p.uses_parent_pgrp);
}

TEST(Payload, SchedulerFactory) {
  const auto p = pr::Payload::scheduler_payload("sched", "scx_rusty");
  EXPECT_EQ(p.kind, pr::PayloadKind::scheduler);
  EXPECT_EQ(p.name, "sched");
  EXPECT_EQ(p.binary, "scx_rusty");
  EXPECT_TRUE(std::holds_alternative<pr::output::ExitCode>(p.output));
}

TEST(Payload, IsCopyablePlainData) {
  auto p = pr::Payload::binary_payload("p", "/bin/true");
  p.output = pr::output::Deferred{"hint text"};
  p.default_args = {"--a", "--b"};
  p.default_checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 1)};
  p.metrics = {{"iops", Polarity::higher_better, "iops"}};
  p.metric_bounds = pr::MetricBounds{2, 0.0, std::nullopt};
  const pr::Payload copy = p;
  p.default_checks.clear();
  p.metrics[0].unit = "changed";
  ASSERT_EQ(copy.default_checks.size(), 2u);
  EXPECT_EQ(copy.default_checks[1], MetricCheck::min("iops", 1));
  EXPECT_EQ(copy.metrics[0], (pr::MetricHint{"iops", Polarity::higher_better, "iops"}));
  ASSERT_TRUE(std::holds_alternative<pr::output::Deferred>(copy.output));
  EXPECT_EQ(std::get<pr::output::Deferred>(copy.output).hint,
            std::optional<std::string>("hint text"));
  EXPECT_EQ(copy.metric_bounds, (pr::MetricBounds{2, 0.0, std::nullopt}));
  EXPECT_NE(copy.metric_bounds, (pr::MetricBounds{2, std::nullopt, std::nullopt}));
}

TEST(Payload, HintAndBoundsDefaults) {
  const pr::MetricHint h;
  EXPECT_EQ(h.polarity, Polarity::unknown);
  EXPECT_TRUE(h.name.empty());
  EXPECT_TRUE(h.unit.empty());
  const pr::MetricBounds b;
  EXPECT_EQ(b.min_count, 0u);
  EXPECT_FALSE(b.value_min.has_value());
  EXPECT_FALSE(b.value_max.has_value());
  EXPECT_EQ(pr::output::Deferred{}, pr::output::Deferred{std::nullopt});
  EXPECT_NE(pr::output::Deferred{}, pr::output::Deferred{"x"});
}
