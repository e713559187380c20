// `payloadrun merge` on real runs (examples/runner/merge.cpp): the demo's
// slices merge into the unsharded verdicts, metrics and counts; foreign or
// duplicated slices are refused and missing ones reported; unreadable or
// SIGKILLed slices are missing shards; an interrupted slice interrupts the
// whole; the slices' sidecars join without collision (reading reports back:
// test_runner_merge.cpp; the examples: test_runner_examples.cpp).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <payloadrun/ring_producer.hpp>

#include "run.hpp"
#include "runner_report_util.hpp"
#include "scenario.hpp"
#include "shard.hpp"
#include "test_runner_util.hpp"

using namespace runner;
using namespace runner_test;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

// ---------------------------------------------------------------- the program

struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Json(const std::string& path) {
    if (auto err = parser.load(path).get(root)) throw std::runtime_error(path + ": " + simdjson::error_message(err));
  }
};

// What must agree between a merged and an unsharded run, per invocation.
using Verdicts = std::map<std::pair<std::string, std::uint64_t>, std::string>;

Verdicts verdicts(Json& report) {
  Verdicts v;
  for (auto inv : array_of(report.root["invocations"])) {
    std::string s = fmt::format("passed={} exit={} timed_out={} spawned={} details=",
                                inv["passed"].get_bool().value(), inv["exit_code"].get_int64().value(),
                                inv["timed_out"].get_bool().value(), !inv["payload_index"].is_null());
    for (auto d : array_of(inv["details"])) s += std::string(d["kind"].get_string().value()) + ",";
    s += " metrics=";
    for (auto m : array_of(inv["metrics"])) {
      s += fmt::format("{}:{}:{}:{}:{},", std::string_view(m["name"].get_string().value()),
                       std::string_view(m["polarity"].get_string().value()),
                       std::string_view(m["unit"].get_string().value()),
                       std::string_view(m["source"].get_string().value()),
                       std::string_view(m["stream"].get_string().value()));
    }
    const std::string name(inv["payload"].get_string().value());
    v[{name, inv["invocation"].get_uint64().value()}] = s;
  }
  return v;
}

// The end-of-run table's counting columns (payload, runs, passed, failed, timeout).
std::vector<std::string> table_counts(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream in(out);
  bool in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("payload ")) {
      in_table = true;
      continue;
    }
    if (!in_table || line.empty()) {
      if (in_table) break;
      continue;
    }
    std::istringstream cols(line);
    std::string c, row;
    for (int i = 0; i < 5 && cols >> c; ++i) row += c + " ";
    rows.push_back(row);
  }
  return rows;
}

TEST(Merge, DemoSlicesGiveTheUnshardedVerdictsMetricsAndCounts) {
  TempDir dir;
  const ProgramResult whole = run_program({"run", "--json", dir.file("whole.json")}, std::chrono::seconds(90));
  ASSERT_EQ(whole.status, 0) << whole.err;
  // Four slices, each selected by another source.
  const std::vector<std::vector<std::string>> envs = {
      {},
      {"JOB_COMPLETION_INDEX=1", "PAYLOADRUN_SHARD_COUNT=4"},
      {"SLURM_ARRAY_TASK_ID=12", "SLURM_ARRAY_TASK_MIN=10", "SLURM_ARRAY_TASK_MAX=13", "SLURM_ARRAY_TASK_COUNT=4"},
      {"TEST_SHARD_INDEX=3", "TEST_TOTAL_SHARDS=4"}};
  std::vector<std::string> merge_args = {"merge", dir.file("merged.json")};
  for (std::size_t i = 0; i < envs.size(); ++i) {
    const std::string report = dir.file("shard-" + std::to_string(i) + ".json");
    std::vector<std::string> args = {"run", "--quiet", "--json", report, "--junit", dir.file("s.xml")};
    if (i == 0) args.insert(args.end(), {"--shard", "0/4"});
    const ProgramResult r = run_program(args, std::chrono::seconds(90), envs[i]);
    ASSERT_EQ(r.status, 0) << r.err;
    merge_args.push_back(report);
  }
  merge_args.insert(merge_args.end(), {"--junit", dir.file("merged.xml")});
  const ProgramResult merged = run_program(merge_args, std::chrono::seconds(60));
  ASSERT_EQ(merged.status, 0) << merged.out << merged.err;
  EXPECT_THAT(merged.err, HasSubstr("640 of 640 invocations passed (4 of 4 shard(s)"));

  Json a(dir.file("whole.json")), b(dir.file("merged.json"));
  const Verdicts va = verdicts(a), vb = verdicts(b);
  EXPECT_EQ(va.size(), 640u);
  EXPECT_EQ(va, vb) << "per (payload, invocation): verdict, exit code, details, metric names";
  EXPECT_EQ(table_counts(whole.out), table_counts(merged.out));
  EXPECT_EQ(table_counts(merged.out).size(), 6u);
  EXPECT_TRUE(b.root["passed"].get_bool().value());
  EXPECT_EQ(b.root["scenario"]["digest"].get_string().value(), a.root["scenario"]["digest"].get_string().value());
  EXPECT_EQ(b.root["shard"]["source"].get_string().value(), "merge");
  EXPECT_EQ(b.root["merged"]["count"].get_uint64().value(), 4u);
  EXPECT_EQ(b.root["merged"]["missing_shards"].get_array().size(), 0u);
  std::set<std::string> sources;
  for (auto s : array_of(b.root["merged"]["slices"])) sources.emplace(s["source"].get_string().value());
  EXPECT_EQ(sources, (std::set<std::string>{"--shard", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID",
                                            "TEST_SHARD_INDEX"}));
  std::set<std::uint64_t> indices;
  for (auto inv : array_of(b.root["invocations"])) indices.insert(inv["payload_index"].get_uint64().value());
  EXPECT_EQ(indices.size(), 640u) << "payload_index unique across slices";
  EXPECT_EQ(xml_parse_error(dir.file("merged.xml")), "");
  EXPECT_THAT(read_file(dir.file("merged.xml")), HasSubstr(R"(tests="640" failures="0")"));
  EXPECT_THAT(read_file(dir.file("merged.xml")), HasSubstr(R"(<testsuite name="fio_randread" tests="300" failures="0")"));
}

struct Slices {
  TempDir dir;
  // Runs `scenario` (written to NAME.json) in `n` slices: NAME-I.json.
  // `expect` < 0: a slice may pass (0) or fail (1).
  void run(const std::string& name, const std::string& scenario, std::size_t n, int expect = 0) {
    write_file(dir.file(name + ".json"), scenario);
    for (std::size_t i = 0; i < n; ++i) {
      const ProgramResult r = run_program({"run", dir.file(name + ".json"), "--quiet", "--shard",
                                           fmt::format("{}/{}", i, n), "--json", slice(name, i)});
      if (expect < 0) {
        ASSERT_TRUE(r.status == 0 || r.status == 1) << r.err;
      } else {
        ASSERT_EQ(r.status, expect) << r.err;
      }
    }
  }
  std::string slice(const std::string& name, std::size_t i) const { return dir.file(fmt::format("{}-{}.json", name, i)); }
  ProgramResult merge(std::vector<std::string> inputs) const {
    inputs.insert(inputs.begin(), {"merge", dir.file("out.json")});
    return run_program(inputs, std::chrono::seconds(60));
  }
};

TEST(Merge, RefusesForeignSlicesAndReportsMissingAndDuplicatedShards) {
  Slices s;
  ASSERT_NO_FATAL_FAILURE(s.run("a", small_scenario, 3));
  ASSERT_NO_FATAL_FAILURE(s.run("b", replace_once(small_scenario, "\"count\": 5", "\"count\": 6"), 3));
  ASSERT_NO_FATAL_FAILURE(s.run("two", small_scenario, 2));
  // The same scenario reformatted, with another concurrency: the same digest.
  ASSERT_NO_FATAL_FAILURE(s.run("a2", std::string("{\"concurrency\": 3,\n") + (small_scenario + 1), 3));

  ProgramResult r = s.merge({s.slice("a", 0), s.slice("a", 1), s.slice("b", 2)});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr(s.slice("a", 0) + " and " + s.slice("b", 2) + " are slices of different scenarios"));
  EXPECT_FALSE(std::filesystem::exists(s.dir.file("out.json"))) << "nothing written";

  r = s.merge({s.slice("a", 0), s.slice("a2", 1), s.slice("a", 2)});
  EXPECT_EQ(r.status, 0) << r.err;

  r = s.merge({s.slice("a", 2), s.slice("a", 0)});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("missing shard(s) 1 of 3"));
  Json out(s.dir.file("out.json"));
  EXPECT_FALSE(out.root["passed"].get_bool().value());
  ASSERT_EQ(out.root["merged"]["missing_shards"].get_array().size(), 1u);
  EXPECT_EQ(out.root["merged"]["missing_shards"].at(0).get_uint64().value(), 1u);
  EXPECT_GT(out.root["merged"]["missing_invocations"].get_uint64().value(), 0u);

  r = s.merge({s.slice("a", 0), s.slice("a", 1), s.slice("a", 2), s.slice("a2", 1)});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("shard 1 of 3 appears twice: " + s.slice("a", 1) + " and " + s.slice("a2", 1)));

  r = s.merge({s.slice("a", 0), s.slice("two", 1)});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("is shard 0 of 3 but " + s.slice("two", 1) + " is shard 1 of 2"));

  // OUT.json forgotten: the first slice would be overwritten.
  const std::string before = read_file(s.slice("a", 0));
  r = run_program({"merge", s.slice("a", 0), s.slice("a", 1), s.slice("a", 2)});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr(s.slice("a", 0) + " is the report of shard 0 of 3, not an output"));
  EXPECT_EQ(read_file(s.slice("a", 0)), before);

  // A failing invocation in one slice: the whole scenario fails.
  const std::string failing = replace_once(small_scenario, "\"binary\": \"true\"", "\"binary\": \"false\", \"checks\": [{\"exit_code\": 0}]");
  Slices f;
  f.run("c", failing, 2, -1);
  r = f.merge({f.slice("c", 0), f.slice("c", 1)});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.out, HasSubstr("FAILED also#"));
  EXPECT_THAT(r.err, HasSubstr("9 of 14 invocations passed"));
}

TEST(Merge, UntrustedInputsAreErrorsNamingTheFile) {
  Slices s;
  ASSERT_NO_FATAL_FAILURE(s.run("a", small_scenario, 2));
  const std::string good = read_file(s.slice("a", 0));
  // An invocation moved into a slice that does not own it.
  const Scenario sc = parse_scenario(small_scenario, "s.json", ".");
  const auto own = shard_schedule(sc, Shard{0, 2, "--shard"});
  const auto other = shard_schedule(sc, Shard{1, 2, "--shard"});
  ASSERT_FALSE(own.empty());
  ASSERT_FALSE(other.empty());
  std::string moved = good;
  for (const auto& [si, inv] : other) {
    if (si != own[0].first) continue;
    moved = replace_once(good, fmt::format("\"scenario_index\": {}, \"invocation\": {},", own[0].first, own[0].second),
                         fmt::format("\"scenario_index\": {}, \"invocation\": {},", si, inv));
    break;
  }
  ASSERT_NE(moved, good);
  write_file(s.dir.file("moved.json"), moved);
  // A payload_index of the other slice (shard I's are k * N + I).
  const auto at = good.find("\"payload_index\": ") + std::string("\"payload_index\": ").size();
  const auto end = good.find(',', at);
  const std::uint64_t index = std::stoull(good.substr(at, end - at));
  write_file(s.dir.file("index.json"), std::string(good).replace(at, end - at, std::to_string(index + 1)));
  // Well-formed JSON that is not a slice of this run is refused (an
  // unreadable one is a missing shard: UnreadableSliceReportsAreMissingShards).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"moved.json", "by the assignment rule, not to shard 0 (the report's)"},
      {"index.json", "which is not of shard 0 of 2 (that shard's indices are k * 2 + 0)"},
  };
  for (const auto& [file, message] : cases) {
    const ProgramResult r = s.merge({s.dir.file(file), s.slice("a", 1)});
    EXPECT_EQ(r.status, 2) << file;
    EXPECT_THAT(r.err, HasSubstr(message)) << file;
  }
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"merge"}, {"merge", s.dir.file("o.json")}, {"merge", s.dir.file("o.json"), s.slice("a", 0), "--frob"},
           {"merge", s.dir.file("o.json"), s.slice("a", 0), "--sidecar", s.dir.file("o.jsonl")},
           {"merge", s.slice("a", 1), s.slice("a", 1)}}) {
    const ProgramResult r = run_program(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
    EXPECT_THAT(r.err, HasSubstr("usage: payloadrun merge")) << ::testing::PrintToString(args);
  }
}

// Issue 17: a slice report with nothing to read (empty, truncated, not
// JSON, absent, a directory) is a missing shard named by number; the
// merged report of the slices that are there is still written, failing.
TEST(Merge, UnreadableSliceReportsAreMissingShardsAndTheRestIsMerged) {
  Slices s;
  ASSERT_NO_FATAL_FAILURE(s.run("a", small_scenario, 3));
  const std::string good = read_file(s.slice("a", 1));
  write_file(s.dir.file("empty.json"), "");
  write_file(s.dir.file("cut.json"), good.substr(0, good.size() / 2));
  write_file(s.dir.file("garbage.json"), "\x7f" "ELF\x01\x02 not json at all");
  std::filesystem::create_directory(s.dir.file("dir.json"));
  Json a0(s.slice("a", 0)), a2(s.slice("a", 2));
  const std::size_t expected = array_of(a0.root["invocations"]).size() + array_of(a2.root["invocations"]).size();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty.json", "empty.json: not a payloadrun JSON report: not valid JSON: the file is empty"},
      {"cut.json", "cut.json: not a payloadrun JSON report: not valid JSON"},
      {"garbage.json", "garbage.json: not a payloadrun JSON report: not valid JSON"},
      {"absent.json", "absent.json: cannot open the report"},
      {"dir.json", "dir.json"},
  };
  for (const auto& [file, message] : cases) {
    SCOPED_TRACE(file);
    ::unlink(s.dir.file("out.json").c_str());
    const ProgramResult r =
        s.merge({s.slice("a", 0), s.dir.file(file), s.slice("a", 2), "--junit", s.dir.file("out.xml")});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_THAT(r.err, HasSubstr("counted as a missing shard"));
    EXPECT_THAT(r.err, HasSubstr("missing shard(s) 1 of 3: their invocations did not run"));
    ASSERT_TRUE(std::filesystem::exists(s.dir.file("out.json"))) << r.err;
    Json out(s.dir.file("out.json"));
    EXPECT_FALSE(out.root["passed"].get_bool().value());
    ASSERT_EQ(out.root["merged"]["missing_shards"].get_array().size(), 1u);
    EXPECT_EQ(out.root["merged"]["missing_shards"].at(0).get_uint64().value(), 1u);
    EXPECT_EQ(out.root["merged"]["slices"].get_array().size(), 2u);
    EXPECT_EQ(array_of(out.root["invocations"]).size(), expected) << "the slices that are there are merged";
    EXPECT_EQ(xml_parse_error(s.dir.file("out.xml")), "");
  }
  // Every shard there and one input unreadable besides: still a failure.
  ProgramResult r = s.merge({s.slice("a", 0), s.slice("a", 1), s.slice("a", 2), s.dir.file("empty.json")});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("every shard of 3 is there, but 1 input(s) could not be read"));
  // Nothing readable: nothing to merge, nothing written.
  ::unlink(s.dir.file("out.json").c_str());
  r = s.merge({s.dir.file("empty.json"), s.dir.file("cut.json")});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("none of the 2 slice report(s) could be read"));
  EXPECT_FALSE(std::filesystem::exists(s.dir.file("out.json")));
}

// Issue 17: a slice SIGKILLed mid-run (the OOM killer, a node failure)
// leaves no report at all (reports are written to a temporary file and
// renamed at the end), never a 0-byte one; the merge of what a shell glob
// finds reports its shard missing.
TEST(Merge, ASliceSigkilledMidRunLeavesNoReportAndIsAMissingShard) {
  Slices s;
  const std::string scenario = R"({"concurrency": 4, "payloads": [
    {"name": "slow", "binary": "sleep", "args": ["0.2"], "count": 60},
    {"name": "quick", "binary": "true", "count": 20}]})";
  ASSERT_NO_FATAL_FAILURE(s.run("a", scenario, 3));
  ASSERT_EQ(::unlink(s.slice("a", 1).c_str()), 0);
  // Shard 1 of 3 runs about 27 invocations, 4 at a time: ~1.4 s; killed at 0.5 s.
  const ProgramResult killed =
      run_process({"timeout", "--foreground", "-s", "KILL", "0.5", runner_exe(), "run", s.dir.file("a.json"), "--quiet",
                   "--shard", "1/3", "--json", s.slice("a", 1), "--junit", s.dir.file("a-1.xml")});
  ASSERT_EQ(killed.status, 137) << "timeout(1) SIGKILLed payloadrun (alone) mid-run: " << killed.err;
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(s.dir.path())) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("a-") || name.starts_with(".a-")) left.push_back(name);
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"a-0.json", "a-2.json"}))
      << "no report, no temporary file, no 0-byte file of the killed slice";
  const ProgramResult r = s.merge({s.slice("a", 0), s.slice("a", 2)});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("missing shard(s) 1 of 3"));
}

TEST(Merge, AnInterruptedSliceInterruptsTheWhole) {
  Slices s;
  ASSERT_NO_FATAL_FAILURE(s.run("a", small_scenario, 2));
  write_file(s.slice("a", 1), replace_once(read_file(s.slice("a", 1)), "\"interrupted\": false", "\"interrupted\": true"));
  const ProgramResult r = s.merge({s.slice("a", 0), s.slice("a", 1)});
  EXPECT_EQ(r.status, 130);
  EXPECT_THAT(r.err, HasSubstr("shard 1 of 2 (" + s.slice("a", 1) + ") was interrupted"));
  Json out(s.dir.file("out.json"));
  EXPECT_TRUE(out.root["interrupted"].get_bool().value());
  EXPECT_FALSE(out.root["passed"].get_bool().value());
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(path));
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(Merge, SidecarsOfSlicesJoinWithoutCollision) {
  Slices s;
  write_file(s.dir.file("a.json"), small_scenario);
  std::vector<std::string> args = {"merge", s.dir.file("out.json")};
  std::vector<std::string> sidecars;
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string ring = fmt::format("payloadrun-merge-test-{}-{}", ::getpid(), i);
    const std::string side = s.dir.file(fmt::format("side-{}.jsonl", i));
    payloadrun::remove_ring(ring);
    const std::string drain = drain_exe(), err = side + ".stderr";
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::freopen(err.c_str(), "w", stderr);
      ::execl(drain.c_str(), drain.c_str(), "--ring", ring.c_str(), "--out", side.c_str(), nullptr);
      ::_exit(127);
    }
    ASSERT_GT(pid, 0);
    const ProgramResult r = run_program({"run", s.dir.file("a.json"), "--quiet", "--shard", fmt::format("{}/2", i),
                                         "--ring", ring, "--json", s.slice("a", i)});
    EXPECT_EQ(r.status, 0) << r.err;
    const std::size_t planned = shard_schedule(load_scenario(s.dir.file("a.json")), Shard{i, 2, "--shard"}).size();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (lines_of(side).size() < planned && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGTERM);
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline + std::chrono::seconds(10)) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(err);
    payloadrun::remove_ring(ring);
    EXPECT_EQ(lines_of(side).size(), planned);
    args.push_back(s.slice("a", i));
    sidecars.push_back(side);
  }
  args.insert(args.end(), {"--sidecar", s.dir.file("out.jsonl")});
  args.insert(args.end(), sidecars.begin(), sidecars.end());
  ProgramResult r = run_program(args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("no sidecar line")));
  const auto merged = lines_of(s.dir.file("out.jsonl"));
  ASSERT_EQ(merged.size(), 14u);
  simdjson::dom::parser parser;
  std::vector<std::uint64_t> indices;
  for (const auto& line : merged) indices.push_back(parser.parse(line)["payload_index"].get_uint64().value());
  EXPECT_TRUE(std::is_sorted(indices.begin(), indices.end()));
  EXPECT_EQ(std::set<std::uint64_t>(indices.begin(), indices.end()).size(), 14u) << "no collision";
  Json out(s.dir.file("out.json"));
  std::set<std::uint64_t> reported;
  for (auto inv : array_of(out.root["invocations"])) reported.insert(inv["payload_index"].get_uint64().value());
  EXPECT_EQ(reported, std::set<std::uint64_t>(indices.begin(), indices.end()));

  // A drain restarted after SIGKILL may repeat a line: kept once. A
  // different line with the same index, or a broken one, is refused.
  write_file(s.dir.file("repeat.jsonl"), merged[0] + "\n");
  args.push_back(s.dir.file("repeat.jsonl"));
  r = run_program(args);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("repeat.jsonl:1 repeats"));
  EXPECT_EQ(lines_of(s.dir.file("out.jsonl")).size(), 14u);
  write_file(s.dir.file("repeat.jsonl"), replace_once(merged[0], "\"passed\":true", "\"passed\":false") + "\n");
  r = run_program(args);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("repeat.jsonl:1 both have payload_index"));
  write_file(s.dir.file("repeat.jsonl"), merged[1] + "\n" + merged[2].substr(0, 20) + "\n");
  r = run_program(args);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("repeat.jsonl:2: expected a sidecar line"));
}

}  // namespace
