// include/payloadrun/gtest.hpp matchers and include/payloadrun/fmt.hpp
// formatters, on constructed results and on a real invocation.
#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <payloadrun/fmt.hpp>
#include <payloadrun/gtest.hpp>
#include <payloadrun/payloadrun.hpp>

using namespace payloadrun;
using namespace payloadrun::testing;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Lt;
using ::testing::Not;

namespace {

Completion passing() {
  Completion c;
  c.payload_name = "fio";
  c.pid = 42;
  c.metrics.add("jobs.0.read.iops", 1250);
  c.metrics.add("lat.p99", 4.5, MetricSource::json, MetricStream::stderr_stream);
  c.metrics.set_hint(0, Polarity::higher_better, "iops");
  return c;
}

Completion failing() {
  Completion c = passing();
  c.metrics.exit_code = 3;
  c.stderr_text = "line one\ndevice /dev/nope vanished\n";
  c.result = AssertResult::fail({DetailKind::other, "payload exited with code 3, expected 0"});
  c.result.details.push_back({DetailKind::spawn, "second detail"});
  return c;
}

template <class M, class T>
std::string explain(const M& matcher, const T& value) {
  ::testing::StringMatchResultListener l;
  ::testing::ExplainMatchResult(matcher, value, &l);
  return l.str();
}

TEST(Matchers, PassedAndFailed) {
  EXPECT_THAT(passing(), Passed());
  EXPECT_THAT(failing(), Failed());
  EXPECT_THAT(failing(), Not(Passed()));
  EXPECT_THAT(failing().result, Failed());
  EXPECT_THAT(AssertResult::pass(), Passed());
  Completion errored = passing();
  errored.error = "read failed";
  EXPECT_THAT(errored, Not(Passed()));
  EXPECT_THAT(explain(Passed(), errored), HasSubstr("supervision error: read failed"));
  EXPECT_EQ(::testing::DescribeMatcher<Completion>(Passed()), "passed its checks");
  EXPECT_EQ(::testing::DescribeMatcher<Completion>(Passed(), true), "failed its checks");
}

TEST(Matchers, FailingPassedShowsTheDetailsAndTheStderrTail) {
  const std::string why = explain(Passed(), failing());
  EXPECT_THAT(why, HasSubstr("[other] payload exited with code 3, expected 0"));
  EXPECT_THAT(why, HasSubstr("[spawn] second detail"));
  EXPECT_THAT(why, HasSubstr("stderr tail:\nline one\ndevice /dev/nope vanished"));
  // As a test author sees it in the failure output.
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(failing(), Passed()), "payload exited with code 3, expected 0");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(failing(), Passed()), "device /dev/nope vanished");
}

TEST(Matchers, HasMetric) {
  const Completion c = passing();
  EXPECT_THAT(c.metrics, HasMetric("jobs.0.read.iops"));
  EXPECT_THAT(c.metrics, HasMetric("jobs.0.read.iops", Ge(1000)));
  EXPECT_THAT(c.metrics, HasMetric("lat.p99", 4.5));
  EXPECT_THAT(c, HasMetric("lat.p99", Lt(10)));
  EXPECT_THAT(c.metrics, Not(HasMetric("jobs.0.read.iops", Ge(2000))));
  EXPECT_THAT(c.metrics, Not(HasMetric("missing")));
  EXPECT_THAT(explain(HasMetric("missing"), c.metrics),
              HasSubstr("has no metric \"missing\"; it has 2 metrics: jobs.0.read.iops, lat.p99"));
  EXPECT_THAT(explain(HasMetric("jobs.0.read.iops", Ge(2000)), c.metrics),
              HasSubstr("metric \"jobs.0.read.iops\" = 1250"));
  EXPECT_EQ(::testing::DescribeMatcher<PayloadMetrics>(HasMetric("iops", Ge(1000))),
            "has a metric \"iops\" whose value is >= 1000");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(c.metrics, HasMetric("iops", Ge(1000))), "has no metric \"iops\"");
}

TEST(Matchers, HasDetailExitedWithTimedOut) {
  const Completion c = failing();
  EXPECT_THAT(c, HasDetail(DetailKind::spawn, HasSubstr("second")));
  EXPECT_THAT(c, HasDetail(HasSubstr("expected 0")));
  EXPECT_THAT(c, Not(HasDetail(DetailKind::spawn, HasSubstr("expected 0"))));
  EXPECT_THAT(explain(HasDetail(DetailKind::bounds, HasSubstr("x")), c), HasSubstr("vanished"));
  EXPECT_THAT(c, ExitedWith(3));
  EXPECT_THAT(c, Not(TimedOut()));
  Completion t = passing();
  t.metrics.timed_out = true;
  t.metrics.exit_code = -1;
  EXPECT_THAT(t, TimedOut());
  EXPECT_THAT(t, ExitedWith(Lt(0)));
}

TEST(Matchers, PrintToShowsTheResult) {
  const std::string s = ::testing::PrintToString(failing());
  EXPECT_THAT(s, HasSubstr("Completion{fio, pid 42, failed: [other] payload exited with code 3"));
  EXPECT_THAT(s, HasSubstr("jobs.0.read.iops=1250 iops"));
  EXPECT_THAT(s, HasSubstr("device /dev/nope vanished"));
}

TEST(Formatters, EveryType) {
  const Completion c = failing();
  EXPECT_EQ(fmt::format("{}", c.metrics[0]), "jobs.0.read.iops=1250 iops (higher_better, json, stdout)");
  EXPECT_EQ(fmt::format("{}", c.metrics[1]), "lat.p99=4.5 (unknown, json, stderr)");
  EXPECT_EQ(fmt::format("{}", c.metrics),
            "exit 3, 2 metrics [jobs.0.read.iops=1250 iops (higher_better, json, stdout), "
            "lat.p99=4.5 (unknown, json, stderr)]");
  EXPECT_EQ(fmt::format("{}", c.result.details[1]), "[spawn] second detail");
  EXPECT_EQ(fmt::format("{}", c.result),
            "failed: [other] payload exited with code 3, expected 0; [spawn] second detail");
  EXPECT_EQ(fmt::format("{}", AssertResult::pass()), "passed");
  EXPECT_EQ(fmt::format("{}", MetricCheck::min("iops", 100)), MetricCheck::min("iops", 100).describe());
  EXPECT_EQ(fmt::format("{}", MetricCheck::exists("lat")), MetricCheck::exists("lat").describe());
  const std::string all = fmt::format("{}", c);
  EXPECT_THAT(all, HasSubstr("fio (pid 42): failed: [other] payload exited with code 3"));
  EXPECT_THAT(all, HasSubstr("| exit 3, 2 metrics"));
  EXPECT_THAT(all, HasSubstr("stderr tail:\nline one\ndevice /dev/nope vanished"));
  PayloadMetrics many;
  for (int i = 0; i < 20; ++i) many.add("m" + std::to_string(i), i);
  EXPECT_THAT(fmt::format("{}", many), HasSubstr(", ... 4 more]"));
  EXPECT_THROW((void)fmt::format(fmt::runtime("{:x}"), c.result), fmt::format_error);
}

TEST(Matchers, OnARealInvocation) {
  Supervisor sup;
  Payload p = Payload::binary_payload("sh", "sh");
  p.output = output::Json{};
  p.default_args = {"-c", R"(echo '{"iops": 1500}'; echo 'warn: slow disk' >&2)"};
  p.default_checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 1000)};
  const Completion ok = sup.payload(p).timeout(std::chrono::seconds(30)).run();
  EXPECT_THAT(ok, Passed());
  EXPECT_THAT(ok.metrics, HasMetric("iops", Ge(1000)));
  const Completion bad = sup.payload(p).check(MetricCheck::min("iops", 2000)).timeout(std::chrono::seconds(30)).run();
  EXPECT_THAT(bad, HasDetail(DetailKind::other, HasSubstr("below minimum 2000")));
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(bad, Passed()), "metric 'iops' = 1500 below minimum 2000");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(bad, Passed()), "warn: slow disk");
}

}  // namespace
