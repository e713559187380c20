// The `payloadrun` program end to end: real processes, every wait bounded
// (run_program terminates the program past its bound).
#include <poll.h>
#include <sys/stat.h>
#include <pty.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <set>

#include <payloadrun/ring_consumer.hpp>

#include "test_runner_util.hpp"

using namespace runner_test;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

std::string str(simdjson::dom::element e, const char* key) { return std::string(e[key].get_string().value()); }

// By value: range-for over a temporary simdjson_result's value() dangles.
simdjson::dom::array arr(simdjson::dom::element e, const char* key) {
  simdjson::dom::array a;
  if (e[key].get(a) != simdjson::SUCCESS) throw std::runtime_error(std::string("no array ") + key);
  return a;
}

struct Report {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Report(const std::string& path) {
    auto err = parser.load(path).get(root);
    if (err) throw std::runtime_error(path + ": " + simdjson::error_message(err));
  }
  simdjson::dom::array invocations() { return arr(root, "invocations"); }
};

std::vector<std::string> detail_kinds(simdjson::dom::element inv) {
  std::vector<std::string> kinds;
  for (auto d : arr(inv, "details")) kinds.push_back(str(d, "kind"));
  return kinds;
}

std::string all_messages(simdjson::dom::element inv) {
  std::string s;
  for (auto d : arr(inv, "details")) s += str(d, "message") + "\n";
  return s;
}

TEST(Runner, DemoScenarioPassesEndToEnd) {
  TempDir dir;
  const ProgramResult r =
      run_program({"run", "--json", dir.file("r.json"), "--junit", dir.file("r.xml")}, std::chrono::seconds(90));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("demo.json: 640 invocations of 6 payloads, concurrency 200"));
  EXPECT_THAT(r.err, HasSubstr("640 of 640 invocations passed"));
  EXPECT_THAT(r.out, HasSubstr("metric medians"));
  EXPECT_THAT(r.out, Not(HasSubstr("FAILED")));
  Report report(dir.file("r.json"));
  EXPECT_TRUE(report.root["passed"].get_bool().value());
  std::map<std::string, int> per_payload;
  std::set<std::uint64_t> indices;
  for (auto inv : report.invocations()) {
    EXPECT_TRUE(inv["passed"].get_bool().value()) << simdjson::to_string(inv);
    ++per_payload[str(inv, "payload")];
    indices.insert(inv["payload_index"].get_uint64().value());
  }
  EXPECT_EQ(per_payload, (std::map<std::string, int>{{"fio_randread", 300}, {"schbench_stderr", 200},
                                                       {"forker", 60}, {"overrun", 20},
                                                       {"failer_expected", 40}, {"fio_deferred", 20}}));
  EXPECT_EQ(indices.size(), 640u) << "payload_index is unique per invocation";
  EXPECT_EQ(xml_parse_error(dir.file("r.xml")), "");
  std::printf("demo scenario: %lld ms wall\n", static_cast<long long>(r.elapsed.count()));
}

TEST(Runner, FailuresScenarioReportsEveryFailureKind) {
  TempDir dir;
  const ProgramResult r = run_program({"run", demo_dir() + "/failures.json", "--json", dir.file("r.json"),
                                       "--junit", dir.file("r.xml")},
                                      std::chrono::seconds(60));
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  Report report(dir.file("r.json"));
  EXPECT_FALSE(report.root["passed"].get_bool().value());
  std::map<std::string, std::vector<simdjson::dom::element>> by;
  for (auto inv : report.invocations()) by[str(inv, "payload")].push_back(inv);
  ASSERT_EQ(by["fio_ok"].size(), 2u);
  for (auto inv : by["fio_ok"]) EXPECT_TRUE(inv["passed"].get_bool().value());
  ASSERT_EQ(by["fio_too_slow"].size(), 3u);
  for (auto inv : by["fio_too_slow"]) {
    EXPECT_FALSE(inv["passed"].get_bool().value());
    EXPECT_EQ(detail_kinds(inv), (std::vector<std::string>{"other", "other"}));
    EXPECT_THAT(all_messages(inv), HasSubstr("below minimum 5000"));
    EXPECT_THAT(all_messages(inv), HasSubstr("metric 'jobs.0.read.lat_ns.mean' not found in payload output"));
  }
  for (auto inv : by["failer"]) {
    EXPECT_EQ(inv["exit_code"].get_int64().value(), 3);
    EXPECT_THAT(all_messages(inv), HasSubstr("payload exited with code 3, expected 0; stderr:\nfailer: opening"));
  }
  ASSERT_EQ(by["overrun"].size(), 2u);
  for (auto inv : by["overrun"]) {
    EXPECT_TRUE(inv["timed_out"].get_bool().value());
    EXPECT_EQ(inv["exit_code"].get_int64().value(), -1);
    EXPECT_FALSE(inv["passed"].get_bool().value());
  }
  for (const char* name : {"missing_binary", "bad_cgroup"}) {
    ASSERT_EQ(by[name].size(), 1u) << name;
    auto inv = by[name][0];
    EXPECT_EQ(detail_kinds(inv), std::vector<std::string>{"spawn"});
    EXPECT_TRUE(inv["payload_index"].is_null()) << "never spawned: no payload_index";
    EXPECT_FALSE(inv["passed"].get_bool().value());
  }
  EXPECT_THAT(all_messages(by["missing_binary"][0]), HasSubstr("does-not-exist"));
  EXPECT_THAT(all_messages(by["bad_cgroup"][0]), HasSubstr("cgroup_parent"));
  // The terminal summary: table rows, failure details with the stderr tail.
  EXPECT_THAT(r.out, HasSubstr("FAILED failer#0"));
  EXPECT_THAT(r.out, HasSubstr("failer: giving up after 3 attempts"));
  EXPECT_THAT(r.out, HasSubstr("[spawn]"));
  EXPECT_THAT(r.out, HasSubstr("timed out"));
  EXPECT_EQ(xml_parse_error(dir.file("r.xml")), "");
  const std::string xml = read_file(dir.file("r.xml"));
  EXPECT_THAT(xml, HasSubstr(R"(<testsuite name="failer" tests="2" failures="2")"));
  EXPECT_THAT(xml, HasSubstr(R"(<testsuite name="fio_ok" tests="2" failures="0")"));
  EXPECT_THAT(xml, HasSubstr(R"(type="spawn")"));
}

TEST(Runner, JsonReportHasEveryField) {
  TempDir dir;
  write_file(dir.file("s.json"), R"({"payloads": [
    {"name": "both", "binary": "sh", "output": "json",
     "args": ["-c", "echo \"{\\\"v\\\": $VALUE, \\\"lat\\\": {\\\"p99\\\": 2.5}}\"; echo oops >&2"],
     "env": {"VALUE": "42"},
     "metrics": [{"name": "v", "polarity": "higher_better", "unit": "ops"}],
     "checks": [{"exit_code": 0}, {"min": {"metric": "v", "value": 100}}], "count": 1},
    {"name": "err", "binary": "sh", "output": "json", "args": ["-c", "echo '{\"e\": 1}' >&2"],
     "checks": [{"exists": "e"}]}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--json", dir.file("r.json")});
  ASSERT_EQ(r.status, 1) << r.out << r.err;
  Report report(dir.file("r.json"));
  auto invs = report.invocations();
  ASSERT_EQ(invs.size(), 2u);
  auto a = invs.at(0).value();
  EXPECT_EQ(str(a, "payload"), "both");
  EXPECT_TRUE(a["payload_index"].is_uint64() || a["payload_index"].is_int64());
  EXPECT_NE(a["payload_index"].get_uint64().value(), invs.at(1)["payload_index"].get_uint64().value());
  EXPECT_EQ(a["exit_code"].get_int64().value(), 0);
  EXPECT_FALSE(a["timed_out"].get_bool().value());
  EXPECT_FALSE(a["passed"].get_bool().value());
  ASSERT_EQ(a["details"].get_array().size(), 1u);
  EXPECT_EQ(str(a["details"].at(0).value(), "kind"), "other");
  EXPECT_EQ(str(a["details"].at(0).value(), "message"), "metric 'v' = 42 below minimum 100");
  auto metrics = arr(a, "metrics");
  ASSERT_EQ(metrics.size(), 2u);
  auto v = metrics.at(0).value();
  EXPECT_EQ(str(v, "name"), "v");
  EXPECT_EQ(v["value"].get_double().value(), 42);
  EXPECT_EQ(str(v, "polarity"), "higher_better");
  EXPECT_EQ(str(v, "unit"), "ops");
  EXPECT_EQ(str(v, "source"), "json");
  EXPECT_EQ(str(v, "stream"), "stdout");
  EXPECT_EQ(str(metrics.at(1).value(), "name"), "lat.p99");
  EXPECT_EQ(str(metrics.at(1).value(), "polarity"), "unknown");
  EXPECT_FALSE(a["stdout_truncated"].get_bool().value());
  EXPECT_FALSE(a["stderr_truncated"].get_bool().value());
  EXPECT_GT(a["duration_ms"].get_double().value(), 0.0);
  auto b = invs.at(1).value();
  EXPECT_TRUE(b["passed"].get_bool().value());
  EXPECT_EQ(b["details"].get_array().size(), 0u);
  EXPECT_EQ(str(b["metrics"].at(0).value(), "stream"), "stderr");
  EXPECT_FALSE(report.root["passed"].get_bool().value());
  // What merge needs (README "Scale-out"): the scenario and the slice.
  auto scenario = report.root["scenario"];
  EXPECT_EQ(str(scenario.value(), "file"), dir.file("s.json"));
  EXPECT_THAT(str(scenario.value(), "digest"), ::testing::MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_EQ(scenario["invocations"].get_uint64().value(), 2u);
  EXPECT_EQ(str(scenario["payloads"].at(0)["metrics"].at(0).value(), "unit"), "ops");
  EXPECT_EQ(scenario["payloads"].at(1)["count"].get_uint64().value(), 1u);
  auto shard = report.root["shard"];
  EXPECT_EQ(shard["index"].get_uint64().value(), 0u);
  EXPECT_EQ(shard["count"].get_uint64().value(), 1u);
  EXPECT_EQ(str(shard.value(), "source"), "none");
  EXPECT_THAT(str(shard.value(), "rule"), HasSubstr("fnv1a64"));
  EXPECT_EQ(shard["invocations"].get_uint64().value(), 2u);
  // The table: one row per payload with the hinted metric's median.
  EXPECT_THAT(r.out, HasSubstr("v=42 ops"));
}

TEST(Runner, ConcurrencyBoundsInvocationsInFlight) {
  TempDir dir;
  // Each invocation appends "+" on start and "-" on exit; at most N may overlap.
  write_file(dir.file("s.json"), R"({"concurrency": 2, "payloads": [{"name": "s", "binary": "sh",
    "args": ["-c", "echo + >> \"$LOG\"; sleep 0.2; echo - >> \"$LOG\""],
    "env": {"LOG": ")" + dir.file("log") + R"("}, "count": 6}]})");
  auto max_overlap = [&] {
    int cur = 0, max = 0;
    for (char c : read_file(dir.file("log"))) {
      if (c == '+') max = std::max(max, ++cur);
      if (c == '-') --cur;
    }
    return max;
  };
  ProgramResult r = run_program({"run", dir.file("s.json")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(max_overlap(), 2);
  EXPECT_GE(r.elapsed.count(), 550);  // 3 waves of 200 ms
  ::unlink(dir.file("log").c_str());
  r = run_program({"run", dir.file("s.json"), "--concurrency", "6"});  // the flag wins
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_GT(max_overlap(), 2) << "--concurrency 6 overrides the scenario's 2";
}

TEST(Runner, BadScenarioOrUsageExits2AndRunsNothing) {
  TempDir dir;
  const std::string marker = dir.file("ran");
  write_file(dir.file("bad.json"), R"({"payloads": [{"name": "touch", "binary": "touch", "args": [")" + marker +
                                       R"("]}, {"name": "x", "binary": "true", "checks": [{"min": {"metric": "a", "value": "1"}}]}]})");
  ProgramResult r = run_program({"run", dir.file("bad.json"), "--json", dir.file("r.json")});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr(dir.file("bad.json") + ": payloads[1].checks[0].min.value: expected a number, got a string"));
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_FALSE(std::filesystem::exists(dir.file("r.json")));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {"walk"}, {"run", "--concurrency", "0"}, {"run", "--concurrency"}, {"run", "--frobnicate"},
           {"run", "a.json", "b.json"}, {"run", dir.file("missing.json")},
           {"run", "--json", "/nonexistent-dir/r.json"}}) {
    r = run_program(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << r.err;
    EXPECT_THAT(r.err, HasSubstr("payloadrun: "));
  }
  r = run_program({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: payloadrun run"));
}

// The command lines through CLI11 (issue 15): --help for each command and
// program, usage errors naming the flag or value and exiting 2.
TEST(Runner, CommandLinesHaveHelpAndNameTheBadFlag) {
  ProgramResult r = run_program({"run", "--help"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--concurrency N"));
  EXPECT_THAT(r.out, HasSubstr("usage: payloadrun run"));
  r = run_program({"merge", "--help"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--sidecar OUT.jsonl IN.jsonl..."));
  EXPECT_THAT(r.out, HasSubstr("usage: payloadrun merge"));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "payloadrun: missing command (\"run\" or \"merge\")"},
      {{"walk"}, "payloadrun: unknown command \"walk\" (\"run\" or \"merge\")"},
      {{"run", "--concurrency", "x"}, "--concurrency needs a positive integer, got \"x\""},
      {{"run", "--concurrency"}, "--concurrency: 1 required N missing"},
      {{"run", "--json"}, "--json: 1 required REPORT.json missing"},
      {{"run", "--frobnicate"}, "unknown option --frobnicate for run"},
      {{"run", "a.json", "b.json"}, "one scenario at a time (got \"a.json\" and \"b.json\")"},
      {{"run", "--ring"}, "--ring needs a ring name, got an empty one"},
      {{"merge", "o.json", "a.json", "--sidecar", "o.jsonl", "x.jsonl", "--sidecar", "p", "q"},
       "payloadrun merge: --sidecar is given twice"},
      {{"merge", "o.json", "a.json", "--junit"}, "payloadrun merge: --junit: 1 required OUT.xml missing"},
  };
  for (const auto& [args, message] : cases) {
    r = run_program(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
    EXPECT_THAT(r.err, HasSubstr(message)) << ::testing::PrintToString(args);
    EXPECT_THAT(r.err, HasSubstr("usage: payloadrun ")) << ::testing::PrintToString(args);
  }
  r = run_process({drain_exe(), "--help"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--capacity BYTES"));
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "payloadrun-drain: --ring is required"},
           {{"--ring", "x", "--out"}, "payloadrun-drain: --out: 1 required SIDECAR.jsonl missing"},
           {{"--ring", "x", "--out", "o", "--capacity", "0"}, "--capacity takes a byte count, got \"0\""},
           {{"--ring", "x", "--out", "o", "--frob"}, "payloadrun-drain: unknown option --frob"},
           {{"--ring", "", "--out", "o"}, "payloadrun-drain: --ring needs a name"}}) {
    std::vector<std::string> argv = {drain_exe()};
    argv.insert(argv.end(), args.begin(), args.end());
    r = run_process(argv);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
    EXPECT_THAT(r.err, HasSubstr(message)) << ::testing::PrintToString(args);
    EXPECT_THAT(r.err, HasSubstr("usage: payloadrun-drain")) << ::testing::PrintToString(args);
  }
}

TEST(Runner, JunitEscapesMarkupAndControlCharacters) {
  TempDir dir;
  write_file(dir.file("s.json"), R"({"payloads": [{"name": "x<&\"'>", "binary": "sh",
    "args": ["-c", "printf 'bad <tag> & \"q\" \\001\\033[31m red\\n' >&2; exit 4"],
    "checks": [{"exit_code": 0}], "count": 2}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--junit", dir.file("r.xml"), "--quiet"});
  ASSERT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(xml_parse_error(dir.file("r.xml")), "") << read_file(dir.file("r.xml"));
  const std::string xml = read_file(dir.file("r.xml"));
  EXPECT_THAT(xml, HasSubstr("bad &lt;tag&gt; &amp; &quot;q&quot;"));
  EXPECT_THAT(xml, HasSubstr(R"(<testsuite name="x&lt;&amp;&quot;&apos;&gt;" tests="2" failures="2")"));
  EXPECT_THAT(xml, HasSubstr("payload exited with code 4, expected 0"));
  EXPECT_THAT(r.err, Not(HasSubstr("[1/2]")));  // --quiet: no progress
}

// Runs the program on a pseudo-terminal; returns everything it wrote.
std::string run_on_pty(const std::vector<std::string>& args, int& status) {
  std::vector<std::string> argv_s = {runner_exe()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  EXPECT_GT(pid, 0);
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "pty run exceeded 60 s";
      ::kill(pid, SIGTERM);
      break;
    }
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child side is closed
    output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  ::waitpid(pid, &status, 0);
  return output;
}

TEST(Runner, ProgressRedrawsInPlaceOnATerminalAndPrintsLinesOnAPipe) {
  TempDir dir;
  write_file(dir.file("s.json"), R"({"concurrency": 2, "payloads": [
    {"name": "ok", "binary": "sleep", "args": ["0.15"], "count": 6},
    {"name": "bad", "binary": "false", "checks": [{"exit_code": 0}]}]})");
  int status = 0;
  const std::string tty = run_on_pty({"run", dir.file("s.json")}, status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << tty;
  EXPECT_THAT(tty, HasSubstr("\r[7/7] running 0, failed 1"));
  EXPECT_THAT(tty, HasSubstr("\x1b[K"));  // erase to end of line
  EXPECT_THAT(tty, HasSubstr("FAILED bad#0: [other] payload exited with code 1, expected 0"));
  EXPECT_GE(std::count(tty.begin(), tty.end(), '\r'), 3) << "redrawn in place while running";

  const ProgramResult piped = run_program({"run", dir.file("s.json")});
  EXPECT_EQ(piped.status, 1);
  EXPECT_THAT(piped.err, Not(HasSubstr("\x1b[K")));
  EXPECT_EQ(piped.err.find('\r'), std::string::npos);
  EXPECT_THAT(piped.err, HasSubstr("[7/7] running 0, failed 1"));
  EXPECT_THAT(piped.err, HasSubstr("FAILED bad#0: [other] payload exited with code 1, expected 0\n"));
}

TEST(Runner, RingOptionShipsEveryInvocation) {
  TempDir dir;
  const std::string ring = "payloadrun-runner-test-" + std::to_string(::getpid());
  payloadrun::remove_ring(ring);
  payloadrun::RingConsumer consumer(ring);  // created first; the program opens it
  write_file(dir.file("s.json"), R"({"payloads": [
    {"name": "j", "binary": "sh", "output": "json", "args": ["-c", "echo '{\"x\": 1}'"], "count": 3},
    {"name": "d", "binary": "sh", "output": {"deferred": "x"}, "args": ["-c", "echo '{\"x\": 2}'"],
     "checks": [{"exit_code": 0}, {"min": {"metric": "x", "value": 1}}]}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--ring", ring});
  EXPECT_EQ(r.status, 0) << r.err;
  std::map<payloadrun::RecordType, int> seen;
  while (auto m = consumer.next(std::chrono::milliseconds(2000))) {
    ++seen[m->type];
    if (seen[payloadrun::RecordType::metrics] + seen[payloadrun::RecordType::raw_output] == 5) break;
  }
  EXPECT_EQ(seen[payloadrun::RecordType::metrics], 4);     // every invocation
  EXPECT_EQ(seen[payloadrun::RecordType::raw_output], 1);  // the deferred one's raw output
  payloadrun::remove_ring(ring);
}

// Processes whose command line contains `token`.
int count_processes_with(const std::string& token) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = read_file(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    n += cmdline.find(token) != std::string::npos;
  }
  return n;
}

// `payloadrun run SCENARIO --json REPORT` with stdout/stderr on /dev/null.
pid_t start_runner_quietly(const std::string& scenario, const std::string& report) {
  const std::string exe = runner_exe();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execl(exe.c_str(), exe.c_str(), "run", scenario.c_str(), "--json", report.c_str(), nullptr);
    ::_exit(127);
  }
  return pid;
}

// SIGTERM, then reap; a runner still there at `bound` fails the test and is SIGKILLed.
int sigterm_and_wait(pid_t pid, std::chrono::steady_clock::time_point bound) {
  ::kill(pid, SIGTERM);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > bound) {
      ADD_FAILURE() << "payloadrun did not exit after SIGTERM";
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status;
}

// Runs `count` x `sleep ARG` at `concurrency` (report r.json in `dir`) and
// waits, 20 s at most, until `want` of them run.
pid_t start_sleepers(TempDir& dir, int concurrency, int count, const std::string& arg, int want) {
  write_file(dir.file("s.json"),
             fmt::format(R"({{"concurrency": {}, "payloads": [
    {{"name": "long", "binary": "sleep", "args": ["{}"], "count": {}}}]}})",
                         concurrency, arg, count));
  const pid_t pid = start_runner_quietly(dir.file("s.json"), dir.file("r.json"));
  const auto start = std::chrono::steady_clock::now();
  while (pid > 0 && count_processes_with("sleep " + arg) < want &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pid;
}

TEST(Runner, SigtermKillsRunningPayloadsAndExits130) {
  TempDir dir;
  const std::string report = dir.file("r.json");
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = start_sleepers(dir, 3, 6, "97.125", 3);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(count_processes_with("sleep 97.125"), 3);
  const int status = sigterm_and_wait(pid, start + std::chrono::seconds(40));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status;
  EXPECT_EQ(count_processes_with("sleep 97.125"), 0) << "payloads outlived the runner";
  Report r(report);
  EXPECT_TRUE(r.root["interrupted"].get_bool().value());
  EXPECT_FALSE(r.root["passed"].get_bool().value());
  EXPECT_EQ(r.invocations().size(), 3u);
}

// A burst of 2,000 starts is spread over loop turns (about 1 ms of spawning
// each), so a SIGTERM that comes after the first payload started stops the
// burst: some invocations never start. When the whole burst ran before the
// loop first polled the signal, all 2,000 started and were then killed.
TEST(Runner, SigtermDuringABurstOfStartsStopsTheBurst) {
  constexpr int n = 2000;
  TempDir dir;
  const std::string report = dir.file("r.json");
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = start_sleepers(dir, n, n, "97.25", 1);
  ASSERT_GT(pid, 0);
  const int status = sigterm_and_wait(pid, start + std::chrono::seconds(60));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status;
  // PID 1 reaps orphans late: give killed payloads a moment to disappear.
  while (count_processes_with("sleep 97.25") > 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(count_processes_with("sleep 97.25"), 0) << "payloads outlived the runner";
  Report r(report);
  EXPECT_TRUE(r.root["interrupted"].get_bool().value());
  const std::size_t started = r.invocations().size();
  EXPECT_GE(started, 1u);
  EXPECT_LT(started, static_cast<std::size_t>(n)) << "the whole burst started before the signal was seen";
}

// The cgroup2 mount point from /proc/self/mountinfo (field 5 of the line
// whose filesystem type, after " - ", is cgroup2), or empty.
std::string cgroup2_mount() {
  std::istringstream all(read_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(all, line);) {
    std::istringstream f(line);
    std::vector<std::string> fields;
    for (std::string w; f >> w;) fields.push_back(w);
    for (std::size_t i = 6; i + 1 < fields.size(); ++i) {
      if (fields[i] == "-") {
        if (fields[i + 1] == "cgroup2") return fields[4];
        break;
      }
    }
  }
  return {};
}

// --cgroup-parent on the real cgroup2 filesystem: a named cgroup (created by
// --create-cgroups), a fresh cgroup per invocation (own_cgroup, removed
// afterwards), and a payload left outside. Each payload checks its own
// /proc/self/cgroup with grep, so the verdicts say where it ran.
TEST(Runner, CgroupParentPlacesPayloadsInRealCgroups) {
  const std::string mount = cgroup2_mount();
  const char* required = std::getenv("PAYLOADRUN_REQUIRE_CGROUP");
  const bool must = required != nullptr && std::string(required) == "1";
  const std::string rel = "payloadrun-runner-test-" + std::to_string(::getpid());
  const std::string parent = mount + "/" + rel;
  if (mount.empty() || ::mkdir(parent.c_str(), 0755) != 0) {
    const std::string why = mount.empty() ? "no cgroup2 filesystem in /proc/self/mountinfo"
                                          : "cgroup2 at " + mount + " is not writable: " + std::strerror(errno);
    if (must) FAIL() << why << " (PAYLOADRUN_REQUIRE_CGROUP=1)";
    GTEST_SKIP() << why;
  }
  TempDir dir;
  write_file(dir.file("s.json"), R"({"concurrency": 4, "payloads": [
    {"name": "named", "binary": "grep", "args": ["-qx", "0::/)" + rel + R"(/work", "/proc/self/cgroup"],
     "cgroup": "work", "checks": [{"exit_code": 0}], "count": 3},
    {"name": "own", "binary": "grep", "args": ["-qE", "^0::/)" + rel + R"(/.+", "/proc/self/cgroup"],
     "own_cgroup": true, "checks": [{"exit_code": 0}], "count": 3},
    {"name": "outside", "binary": "grep", "args": ["-q", ")" + rel + R"(", "/proc/self/cgroup"],
     "checks": [{"exit_code": 1}]}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--cgroup-parent", rel, "--create-cgroups",
                                       "--json", dir.file("r.json"), "--quiet"},
                                      std::chrono::seconds(60));
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(parent)) {
    if (e.is_directory()) left.push_back(e.path().filename().string());
  }
  for (const auto& d : left) ::rmdir((parent + "/" + d).c_str());
  ::rmdir(parent.c_str());
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(left, std::vector<std::string>{"work"}) << "own cgroups are removed after completion";
  Report rep(dir.file("r.json"));
  std::map<std::string, int> passed;
  for (auto inv : rep.invocations()) passed[str(inv, "payload")] += inv["passed"].get_bool().value();
  EXPECT_EQ(passed["named"], 3);
  EXPECT_EQ(passed["own"], 3);
  EXPECT_EQ(passed["outside"], 1);
}

}  // namespace
