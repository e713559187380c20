// What users see of a run (issue 18): the JUnit report against a JUnit XSD
// (Ant/Jenkins style, tests/data/junit-jenkins.xsd, checked with xmllint),
// the end-of-run table, and the "not found" details on real fio and
// hyperfine output. Everything through the `payloadrun` program on real
// processes.
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <ctime>
#include <string>
#include <vector>

#include "test_runner_util.hpp"

namespace {

using namespace runner_test;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string junit_xsd() { return env_or("PAYLOADRUN_JUNIT_XSD", "../tests/data/junit-jenkins.xsd"); }

// Whether `tool` runs; a missing one fails the test: README's install line
// (and .ci/run) has it.
bool have_tool(const std::string& tool, const std::string& package) {
  const ProgramResult r = run_process({"sh", "-c", "command -v " + tool}, std::chrono::seconds(10));
  if (r.status == 0) return true;
  ADD_FAILURE() << tool << " is not installed (Debian package " << package << ", in README's install line)";
  return false;
}

// xmllint's verdict on `xml` against the XSD: empty when it validates.
std::string schema_errors(const std::string& xml) {
  const ProgramResult r = run_process({"xmllint", "--noout", "--schema", junit_xsd(), xml}, std::chrono::seconds(30));
  return r.status == 0 ? std::string() : r.err;
}

// An XPath 1.0 expression's string value in `xml`.
std::string xpath(const std::string& xml, const std::string& expr) {
  const ProgramResult r =
      run_process({"xmllint", "--xpath", "string(" + expr + ")", xml}, std::chrono::seconds(30));
  std::string out = r.out;
  if (!out.empty() && out.back() == '\n') out.pop_back();  // xmllint ends the value with one
  return out;
}

double unix_seconds(const std::string& iso) {  // "2026-12-03T09:15:02Z"
  std::tm tm{};
  if (::strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return -1;
  return static_cast<double>(::timegm(&tm));
}

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// Four passing invocations of 0.4 s at once, a failing fio-like one with a
// two-line stderr, one with 100 KB of stderr, one without hints and one
// that cannot start.
constexpr const char* mixed_scenario = R"({"concurrency": 16, "payloads": [
  {"name": "ok", "binary": "sh", "args": ["-c", "sleep 0.4; echo '{\"lat_ns\": 2572288, \"iops\": 4000.25}'"],
   "output": "json", "metrics": [{"name": "lat_ns", "unit": "ns"}, {"name": "iops"}],
   "checks": [{"exit_code": 0}], "count": 4},
  {"name": "nohints", "binary": "sh", "args": ["-c", "echo '{\"a\": 1, \"b\": {\"c\": 2}}'"], "output": "json",
   "count": 2},
  {"name": "fio_fail", "binary": "sh",
   "args": ["-c", "echo 'fio-3.33 starting'; printf 'fio: opening f\\nfio: failed to open file: No such file\\n\\n' >&2; exit 1"],
   "checks": [{"exit_code": 0}]},
  {"name": "loud", "binary": "sh",
   "args": ["-c", "head -c 100000 /dev/zero | tr '\\000' x >&2; echo >&2; echo last-line >&2; exit 2"],
   "checks": [{"exit_code": 0}]},
  {"name": "missing", "binary": "./does-not-exist", "checks": [{"exit_code": 0}]}]})";

const std::string suite = "//testsuite[@name='";

// The mixed scenario's report validates and counts 9 tests, 2 failures, 1 error.
void expect_valid_with_counts(const std::string& xml) {
  EXPECT_EQ(schema_errors(xml), "") << read_file(xml);
  EXPECT_EQ(xpath(xml, "/testsuites/@tests"), "9");
  EXPECT_EQ(xpath(xml, "/testsuites/@failures"), "2");
  EXPECT_EQ(xpath(xml, "/testsuites/@errors"), "1");
}

TEST(RunnerJunit, ValidatesAgainstTheXsdAndSaysWhatFailed) {
  if (!have_tool("xmllint", "libxml2-utils")) return;
  TempDir dir;
  write_file(dir.file("s.json"), mixed_scenario);
  const double before = std::floor(static_cast<double>(std::time(nullptr)));
  const ProgramResult r =
      run_program({"run", dir.file("s.json"), "--json", dir.file("r.json"), "--junit", dir.file("r.xml")});
  const double after = static_cast<double>(std::time(nullptr)) + 1;
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  const std::string xml = dir.file("r.xml");
  // Valid; counts: spawn failures are errors, not failures.
  expect_valid_with_counts(xml);
  EXPECT_EQ(xpath(xml, suite + "missing']/@errors"), "1");
  EXPECT_EQ(xpath(xml, suite + "missing']/@failures"), "0");
  EXPECT_EQ(xpath(xml, suite + "missing']/testcase/error/@type"), "spawn");
  EXPECT_THAT(xpath(xml, suite + "missing']/testcase/error/@message"), HasSubstr("does-not-exist"));
  EXPECT_EQ(xpath(xml, "count(//failure)"), "2");

  // The message: the useful line (the stderr's last non-empty one), the
  // body: everything.
  EXPECT_EQ(xpath(xml, suite + "fio_fail']/testcase/failure/@message"),
            "[other] payload exited with code 1, expected 0; stderr: fio: failed to open file: No such file");
  EXPECT_THAT(xpath(xml, suite + "fio_fail']/testcase/failure"),
              HasSubstr("stderr:\nfio: opening f\nfio: failed to open file: No such file\n"));
  EXPECT_EQ(xpath(xml, suite + "loud']/testcase/failure/@message"),
            "[other] payload exited with code 2, expected 0; stderr: last-line");

  // The output tails of failed cases, capped; none for passed ones.
  EXPECT_EQ(xpath(xml, suite + "fio_fail']/testcase/system-out"), "fio-3.33 starting\n");
  EXPECT_EQ(xpath(xml, suite + "fio_fail']/testcase/system-err"),
            "fio: opening f\nfio: failed to open file: No such file\n\n");
  const std::string loud = xpath(xml, suite + "loud']/testcase/system-err");
  EXPECT_LE(loud.size(), 4096u + 4);
  EXPECT_GT(loud.size(), 4000u);
  EXPECT_THAT(loud, StartsWith("...\n"));
  EXPECT_THAT(loud, EndsWith("xxx\nlast-line\n"));
  EXPECT_EQ(xpath(xml, "count(" + suite + "ok']//system-out)"), "0");

  // A suite's time is its wall-clock span: the four 0.4 s cases ran at once.
  const double span = std::stod(xpath(xml, suite + "ok']/@time"));
  double sum = 0, longest = 0;
  for (int i = 0; i < 4; ++i) {
    const double t = std::stod(xpath(xml, suite + "ok']/testcase[" + std::to_string(i + 1) + "]/@time"));
    sum += t;
    longest = std::max(longest, t);
  }
  EXPECT_GE(span, longest - 0.002);
  EXPECT_LT(span, 0.6 * sum) << "the sum of case durations is " << sum << " s";
  // When and where.
  const double at = unix_seconds(xpath(xml, suite + "ok']/@timestamp"));
  EXPECT_GE(at, before);
  EXPECT_LE(at, after);
  EXPECT_EQ(xpath(xml, suite + "ok']/@hostname"), host_name());

  // The JSON report keeps what merge needs to write the same.
  simdjson::dom::parser parser;
  const simdjson::padded_string json = simdjson::padded_string::load(dir.file("r.json"));
  for (auto inv : parser.parse(json)["invocations"].get_array()) {
    const std::string name(inv["payload"].get_string().value());
    EXPECT_GT(inv["started_unix_ms"].get_double().value(), before * 1000 - 1) << name;
    const std::string err(inv["stderr_tail"].get_string().value());
    if (name == "fio_fail") {
      EXPECT_EQ(err, "fio: opening f\nfio: failed to open file: No such file\n\n");
    } else if (name == "ok") {
      EXPECT_EQ(err, "");
    }
  }
}

TEST(RunnerJunit, TheMergedReportStaysValid) {
  if (!have_tool("xmllint", "libxml2-utils")) return;
  TempDir dir;
  write_file(dir.file("s.json"), mixed_scenario);
  std::vector<std::string> merge = {"merge", dir.file("m.json")};
  const auto started = std::chrono::steady_clock::now();
  for (const char* shard : {"0/2", "1/2"}) {
    const std::string report = dir.file(std::string("r") + shard[0] + ".json");
    const ProgramResult r = run_program({"run", dir.file("s.json"), "--quiet", "--shard", shard, "--json", report});
    ASSERT_TRUE(r.status == 0 || r.status == 1) << r.out << r.err;  // a slice may have no failure
    merge.push_back(report);
  }
  const auto runs = std::chrono::steady_clock::now() - started;
  merge.insert(merge.end(), {"--junit", dir.file("m.xml")});
  const ProgramResult m = run_program(merge);
  ASSERT_EQ(m.status, 1) << m.out << m.err;
  const std::string xml = dir.file("m.xml");
  expect_valid_with_counts(xml);
  EXPECT_EQ(xpath(xml, suite + "fio_fail']/testcase/system-err"),
            "fio: opening f\nfio: failed to open file: No such file\n\n");
  // The slices ran one after the other: the span runs from the first one's
  // first start to the second one's last end, within the two runs' time.
  const double span = std::stod(xpath(xml, suite + "ok']/@time"));
  EXPECT_GE(span, 0.4);
  EXPECT_LE(span, std::chrono::duration<double>(runs).count() + 0.01);
  EXPECT_GT(unix_seconds(xpath(xml, suite + "ok']/@timestamp")), 0);
}

TEST(RunnerTable, MediansInFullAndMetricCountsWithoutHints) {
  TempDir dir;
  write_file(dir.file("s.json"), mixed_scenario);
  const ProgramResult r = run_program({"run", dir.file("s.json")});
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("lat_ns=2572288 ns  iops=4000.25")) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr("e+06")));
  EXPECT_THAT(r.out, HasSubstr("2 metrics (no hints)")) << r.out;
  // The progress line quotes the stderr's last line, not its first.
  EXPECT_THAT(r.err, HasSubstr("FAILED fio_fail#0: [other] payload exited with code 1, expected 0; stderr: fio: "
                               "failed to open file: No such file\n"));
}

// Real tools' output: why a metric is "not found".
TEST(RunnerDiagnostics, HyperfinesTableComesBeforeItsJson) {
  if (!have_tool("hyperfine", "hyperfine")) return;
  TempDir dir;
  write_file(dir.file("s.json"), R"({"payloads": [
    {"name": "table", "binary": "hyperfine", "args": ["--runs", "2", "--export-json", "/dev/stdout", "true"],
     "output": "json", "checks": [{"exists": "results.0.mean"}]},
    {"name": "json_only", "binary": "hyperfine",
     "args": ["--runs", "2", "--style", "none", "--export-json", "/dev/stdout", "true"],
     "output": "json", "checks": [{"exists": "results.0.mean"}, {"exists": "mean"}]}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--json", dir.file("r.json")});
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  const std::string report = read_file(dir.file("r.json"));
  // The first balanced region is the table's "[User: ..., System: ...]".
  EXPECT_THAT(report, testing::ContainsRegex(
                          "metric 'results.0.mean' not found in payload output: stdout's first balanced region, at "
                          "offset [0-9]+, is not JSON: \\\\\"\\[User: [^]]*\\]\\\\\" \\(only "
                          "that region is read\\)"));
  // Without the table (--style none) its names read results.0.mean, results.0.times.1, ...
  EXPECT_THAT(report, HasSubstr("metric 'mean' not found in payload output: the document on stdout has "));
  EXPECT_THAT(report, HasSubstr("closest: results.0.mean"));
  EXPECT_THAT(report, Not(HasSubstr("metric 'results.0.mean' not found in payload output: the document")));
}

TEST(RunnerDiagnostics, FiosPercentileKeysAreNamedInFull) {
  if (!have_tool("fio", "fio")) return;
  TempDir dir;
  write_file(dir.file("s.json"), R"({"payloads": [
    {"name": "fio", "binary": "fio",
     "args": ["--name=t", "--filename=)" + dir.file("f") + R"(", "--size=64k", "--rw=randread", "--bs=4k",
              "--ioengine=psync", "--output-format=json"],
     "output": "json", "timeout_ms": 60000,
     "checks": [{"exit_code": 0}, {"max": {"metric": "percentile.99", "value": 1e12}},
                {"exists": "jobs.0.read.clat_ns.percentile.99.000000"}, {"exists": "jobs.0.read.iops"}]}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--json", dir.file("r.json")});
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  const std::string report = read_file(dir.file("r.json"));
  EXPECT_THAT(report, testing::ContainsRegex("metric 'percentile.99' not found in payload output: the document on "
                                             "stdout has [0-9]+ metrics; closest: "
                                             "jobs.0.read.clat_ns.percentile.99.000000, "));
  EXPECT_THAT(report, Not(HasSubstr("metric 'jobs.0.read")));  // the full names exist
}

}  // namespace
