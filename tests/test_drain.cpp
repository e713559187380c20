// Drain (lib/drain.cpp) and the consumer-side evaluation of Deferred
// payloads (lib/deferred.cpp): hints, checks, bounds, pairing, and the
// extractor run through a Supervisor of its own (process group, capped
// output, deadline), with real extractor processes.
#include <signal.h>
#include <sys/types.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "detail/deferred.hpp"
#include "fixture.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;

namespace {

AssertResult evaluate(const RawPayloadOutput& raw, const DrainOptions& options, PayloadMetrics& m) {
  return payloadrun::detail::DeferredEvaluator(options).evaluate(raw, m);
}

// A Deferred payload "d"'s raw output: `text` on stdout.
RawPayloadOutput raw_output(std::string text) {
  RawPayloadOutput raw;
  raw.payload_name = "d";
  raw.stdout_text = std::move(text);
  return raw;
}

// The extractor: this test binary in child mode `mode`.
std::vector<std::string> child_extractor(std::vector<std::string> mode) {
  std::vector<std::string> argv{self_exe(), "--payloadrun-child"};
  argv.insert(argv.end(), mode.begin(), mode.end());
  return argv;
}

std::string all_details(const AssertResult& r) {
  std::string s;
  for (const auto& d : r.details) s += std::string(to_string(d.kind)) + ": " + d.message + "\n";
  return s;
}

// False once `pid` has exited (gone, or a zombie nobody reaped yet).
bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < line.size() && line[close_paren + 2] != 'Z' &&
         line[close_paren + 2] != 'X';
}

// ------------------------------------------------------------ deferred evaluation

TEST(Deferred, HintsUniversalChecksBoundsAndDefaultChecks) {
  RawPayloadOutput raw;
  raw.payload_name = "d";
  raw.stdout_text = R"(result: {"a.b": 1, "a": {"b": 2}, "iops": 50, "big": 1e9})";
  raw.metric_hints = {{"iops", Polarity::higher_better, "ops"}};
  raw.metric_bounds = MetricBounds{10, 0.0, 1e6};
  raw.checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 100)};
  PayloadMetrics m;
  const AssertResult r = evaluate(raw, {}, m);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[*m.find("iops")].polarity, Polarity::higher_better);
  EXPECT_EQ(m[0].source, MetricSource::deferred);
  std::vector<std::string> msgs;
  for (const auto& d : r.details) msgs.push_back(std::string(to_string(d.kind)) + ": " + d.message);
  ASSERT_EQ(msgs.size(), 4u) << ::testing::PrintToString(msgs);
  EXPECT_NE(msgs[0].find("extraction: duplicate metric name 'a.b'"), std::string::npos) << msgs[0];
  EXPECT_NE(msgs[1].find("bounds: 4 metrics extracted, fewer than the minimum 10"), std::string::npos);
  EXPECT_NE(msgs[2].find("bounds: metric 'big'"), std::string::npos) << msgs[2];
  EXPECT_NE(msgs[3].find("iops"), std::string::npos) << msgs[3];
}

TEST(Deferred, ExtractorCommandAndStderrFallback) {
  RawPayloadOutput raw;
  raw.payload_name = "d";
  raw.stdout_text = "nothing here";
  raw.stderr_text = R"({"lat": 3})";
  PayloadMetrics m;
  AssertResult r = evaluate(raw, {.extractor = {"cat"}}, m);
  EXPECT_TRUE(r.passed);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].stream, MetricStream::stderr_stream);
  PayloadMetrics m2;
  r = evaluate(raw, {.extractor = {"/nonexistent/extractor", "--x"}}, m2);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.details[0].kind, DetailKind::extraction);
  PayloadMetrics m3;
  raw.stdout_text = R"({"x": 1})";
  r = evaluate(raw, {.extractor = {"sed", "s/x/y/"}}, m3);  // argv as given, no shell
  ASSERT_EQ(m3.size(), 1u);
  EXPECT_EQ(m3[0].name, "y");
}

TEST(Drain, PairsByPidAndIndexNotOrderAndReportsPairingFailures) {
  std::vector<std::string> lines;
  Drain drain([&](std::string_view l) { lines.emplace_back(l); });
  RawPayloadOutput raw;
  raw.payload_name = "def";
  raw.stdout_text = R"({"v": 7})";
  for (std::uint64_t i : {1u, 2u}) {
    raw.payload_index = i;
    drain.consume({RecordType::raw_output, 10, i, 0, encode_raw(raw)});
  }
  Completion c;
  c.payload_name = "def";
  c.metrics.payload_index = 2;
  drain.consume({RecordType::metrics, 10, 2, 0, encode_metrics(c, true)});  // out of order
  c.metrics.payload_index = 3;
  drain.consume({RecordType::metrics, 10, 3, 0, encode_metrics(c, true)});  // no raw output
  drain.consume({RecordType::metrics, 10, 4, 0, "{garbage"});
  // Index 3 waits for its raw output (whichever half comes first waits);
  // finish() gives up on it and on index 1 (raw without metrics).
  EXPECT_EQ(lines.size(), 1u);
  drain.finish();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find(R"("payload_index":2,"pid":10,"exit_code":0,"timed_out":false,"passed":true)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(R"({"name":"v","value":7.0,"polarity":"unknown","unit":"","source":"deferred","stream":"stdout"})"), std::string::npos) << lines[0];
  const std::string rest = lines[1] + lines[2];
  EXPECT_NE(rest.find(R"("payload_index":1,)"), std::string::npos) << rest;
  EXPECT_NE(rest.find(R"("payload_index":3,)"), std::string::npos) << rest;
  EXPECT_NE(lines[1].find(R"("kind":"pairing")"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find(R"("kind":"pairing")"), std::string::npos) << lines[2];
  EXPECT_EQ(drain.summary().pairing_failures, 2u);
  EXPECT_EQ(drain.summary().decode_failures, 1u);
}


// ------------------------------------------------------------ the extractor process

class Extractor : public ProcessTest {};

TEST_F(Extractor, TimeoutKillsItsDescendantsTooAndReturnsInTime) {
  char dir_template[] = "/tmp/payloadrun-extractor.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string pid_file = std::string(dir_template) + "/sleeper.pid";
  const RawPayloadOutput raw = raw_output(R"({"x": 1})");
  const DrainOptions options{.extractor = child_extractor({"fork-sleep", pid_file, "60000"}),
                             .extractor_timeout = 500ms};
  PayloadMetrics m;
  const auto start = std::chrono::steady_clock::now();
  const AssertResult r = evaluate(raw, options, m);
  const auto took = std::chrono::steady_clock::now() - start;
  // The deadline, plus at most the 1 s drain grace, plus scheduling slack.
  EXPECT_LT(took, 500ms + 1000ms + 1000ms);
  EXPECT_GE(took, 450ms);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(all_details(r).find("did not finish within 500 ms; its process group was killed"),
            std::string::npos)
      << all_details(r);
  // The sleeper it forked (holding the output pipe) died with it.
  pid_t sleeper = 0;
  std::ifstream(pid_file) >> sleeper;
  ASSERT_GT(sleeper, 0) << "the extractor's child never started";
  bool alive = true;
  for (int i = 0; i < 200 && (alive = process_alive(sleeper)); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive) << "the extractor's child " << sleeper << " outlived the timeout";
  if (alive) ::kill(sleeper, SIGKILL);
  std::remove(pid_file.c_str());
  ::rmdir(dir_template);
}

TEST_F(Extractor, OutputIsCapped) {
  const RawPayloadOutput raw = raw_output("{}");
  PayloadMetrics m;
  const AssertResult r = evaluate(
      raw, {.extractor = child_extractor({"write-bytes", "4000000"}), .extractor_output_limit = 65536}, m);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(all_details(r).find("wrote more than the 65536 bytes of output kept"), std::string::npos)
      << all_details(r);
  EXPECT_TRUE(m.empty());
}

TEST_F(Extractor, AnArgumentWithSpacesReachesItIntact) {
  const RawPayloadOutput raw = raw_output("raw text the extractor reads and ignores");
  PayloadMetrics m;
  const AssertResult r = evaluate(
      raw, {.extractor = child_extractor({"drain-print", R"({"with space": 1, "a  b\tc": 2})"})}, m);
  EXPECT_TRUE(r.passed) << all_details(r);
  EXPECT_EQ(m.get("with space"), std::optional<double>(1));
  EXPECT_EQ(m.get("a  b\tc"), std::optional<double>(2));
}

TEST_F(Extractor, AMissingBinaryIsAClearErrorInTheRecord) {
  std::vector<std::string> lines;
  {
    Drain drain([&](std::string_view l) { lines.emplace_back(l); },
                {.extractor = {"/nonexistent/payloadrun-extractor", "--flag"}});
    RawPayloadOutput raw;
    raw.payload_name = "def";
    raw.payload_index = 5;
    raw.stdout_text = R"({"v": 7})";
    drain.consume({RecordType::raw_output, 10, 5, 0, encode_raw(raw)});
    Completion c;
    c.payload_name = "def";
    c.metrics.payload_index = 5;
    drain.consume({RecordType::metrics, 10, 5, 0, encode_metrics(c, true)});
  }
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(R"("passed":false)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(R"("kind":"extraction")"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("/nonexistent/payloadrun-extractor --flag' could not be run"), std::string::npos)
      << lines[0];
}

TEST_F(Extractor, ANonZeroExitCarriesItsStderr) {
  const RawPayloadOutput raw = raw_output("{}");
  PayloadMetrics m;
  const AssertResult r = evaluate(raw, {.extractor = child_extractor({"print", "", "bad input", "3"})}, m);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(all_details(r).find("failed (exit 3); stderr: bad input"), std::string::npos) << all_details(r);
}

}  // namespace
