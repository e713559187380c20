// Sharding (examples/runner/shard.cpp, digest.cpp): the assignment rule in
// process (disjoint, covering, stable), `--shard` and the batch engines'
// variables, the scenario digest; then the real program: slices of a
// scenario for N = 1..7 against the unsharded run, each variable source,
// bad values as usage errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "digest.hpp"
#include "run.hpp"
#include "scenario.hpp"
#include "runner_report_util.hpp"
#include "shard.hpp"
#include "test_runner_util.hpp"

using namespace runner;
using namespace runner_test;
using ::testing::HasSubstr;

namespace {

using Slot = std::pair<std::size_t, std::size_t>;  // (scenario_index, invocation)
using Env = std::map<std::string, std::string>;

EnvLookup lookup(const Env& env) {
  return [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

// What Slurm sets in one task of an array (since 14.x in every task).
Env slurm_task(std::size_t id, std::size_t min, std::size_t max, std::size_t count, std::size_t step = 1) {
  return {{"SLURM_ARRAY_TASK_ID", std::to_string(id)},       {"SLURM_ARRAY_TASK_MIN", std::to_string(min)},
          {"SLURM_ARRAY_TASK_MAX", std::to_string(max)},     {"SLURM_ARRAY_TASK_COUNT", std::to_string(count)},
          {"SLURM_ARRAY_TASK_STEP", std::to_string(step)}};
}
Env with(Env env, const std::string& name, const std::string& value) {
  env[name] = value;
  return env;
}
Env without(Env env, const std::string& name) {
  env.erase(name);
  return env;
}

Shard resolve(const Env& env, std::optional<std::string> flag = {}, std::optional<std::string> count = {}) {
  return resolve_shard(flag, count, lookup(env));
}

std::string resolve_error(const Env& env, std::optional<std::string> flag = {},
                          std::optional<std::string> count = {}) {
  try {
    resolve(env, flag, count);
  } catch (const ShardError& e) {
    return e.what();
  }
  return "(no error)";
}

// Entries of different lengths, a zero count, uneven counts (names are
// unique: a scenario with a name twice is refused).
constexpr const char* mixed_scenario = R"({"payloads": [
  {"name": "a", "binary": "true", "count": 13}, {"name": "b", "binary": "true", "count": 7},
  {"name": "a2", "binary": "sh", "args": ["-c", "exit 0"], "count": 4}, {"name": "z", "binary": "true", "count": 0}]})";

TEST(Shard, Fnv1aAndTheRuleAreFixed) {
  // FNV-1a 64 reference values (draft-eastlake-fnv).
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  // Continuing a hash equals hashing the concatenation.
  EXPECT_EQ(fnv1a64("bar", fnv1a64("foo")), fnv1a64("foobar"));
  // The rule is part of the report format: these must never change (a
  // change would make merge refuse or mis-assign older slices).
  // (Values from the Python reference in docs/scale-out-readme.md.)
  EXPECT_EQ(shard_of("fio_randread", 0, 4), 0u);
  EXPECT_EQ(shard_of("fio_randread", 1, 4), 0u);
  EXPECT_EQ(shard_of("fio_randread", 299, 7), 1u);
  EXPECT_EQ(shard_of("forker", 12, 5), 3u);
  EXPECT_EQ(shard_of(std::string_view("x\0y", 3), 10, 1000), 19u);
  EXPECT_EQ(shard_of("anything", 5, 1), 0u);
  EXPECT_EQ(shard_of("anything", 5, 0), 0u);
}

TEST(Shard, SlicesAreDisjointAndCoverEverythingForNFrom1To7) {
  for (const Scenario& s : {load_scenario(demo_dir() + "/demo.json"), parse_scenario(mixed_scenario, "m.json", ".")}) {
    const auto all = shard_schedule(s, Shard{});
    ASSERT_EQ(all.size(), s.total_invocations());
    const std::set<Slot> everything(all.begin(), all.end());
    ASSERT_EQ(everything.size(), all.size());
    for (std::size_t n = 1; n <= 7; ++n) {
      std::multiset<Slot> union_of_slices;
      for (std::size_t i = 0; i < n; ++i) {
        const auto slice = shard_schedule(s, Shard{i, n, "--shard"});
        union_of_slices.insert(slice.begin(), slice.end());
        if (s.total_invocations() >= 600) {  // the demo: no slice starves or hogs
          const double fair = static_cast<double>(all.size()) / static_cast<double>(n);
          EXPECT_GT(static_cast<double>(slice.size()), 0.75 * fair) << s.file << " shard " << i << " of " << n;
          EXPECT_LT(static_cast<double>(slice.size()), 1.25 * fair) << s.file << " shard " << i << " of " << n;
        }
        // Each slice keeps the round-robin order of the whole.
        auto pos = [&](Slot x) { return std::find(all.begin(), all.end(), x) - all.begin(); };
        for (std::size_t k = 1; k < slice.size(); ++k) EXPECT_LT(pos(slice[k - 1]), pos(slice[k]));
      }
      EXPECT_EQ(union_of_slices.size(), all.size()) << s.file << " N = " << n;
      EXPECT_EQ(std::set<Slot>(union_of_slices.begin(), union_of_slices.end()), everything) << "N = " << n;
    }
  }
}

TEST(Shard, FlagParsesIOfN) {
  EXPECT_EQ(parse_shard_flag("0/1"), (Shard{0, 1, "--shard"}));
  EXPECT_EQ(parse_shard_flag("3/4"), (Shard{3, 4, "--shard"}));
  EXPECT_EQ(parse_shard_flag("999999/1000000"), (Shard{999999, 1000000, "--shard"}));
  for (const char* bad : {"4/4", "1/0", "0/0", "x/4", "1/y", "-1/4", "1", "/4", "1/", " 1/4", "1/4 ", "+1/4",
                          "1/1000001", "99999999999999999999/4"}) {
    try {
      parse_shard_flag(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ShardError& e) {
      EXPECT_THAT(e.what(), HasSubstr("--shard needs I/N")) << bad;
      EXPECT_THAT(e.what(), HasSubstr(std::string("\"") + bad + "\"")) << bad;
    }
  }
}

TEST(Shard, EachEnvironmentSourceSetsTheSliceInOrder) {
  EXPECT_EQ(resolve({}), Shard{});
  EXPECT_EQ(resolve({{"PAYLOADRUN_SHARD_COUNT", "4"}}), Shard{}) << "a count alone selects nothing";
  EXPECT_EQ(resolve({{"JOB_COMPLETION_INDEX", "2"}, {"PAYLOADRUN_SHARD_COUNT", "4"}}),
            (Shard{2, 4, "JOB_COMPLETION_INDEX"}));
  EXPECT_EQ(resolve({{"JOB_COMPLETION_INDEX", "2"}, {"PAYLOADRUN_SHARD_COUNT", "9"}}, {}, "3"),
            (Shard{2, 3, "JOB_COMPLETION_INDEX"}))
      << "--shard-count beats PAYLOADRUN_SHARD_COUNT";
  EXPECT_EQ(resolve(slurm_task(2, 0, 3, 4)), (Shard{2, 4, "SLURM_ARRAY_TASK_ID"}));
  EXPECT_EQ(resolve(slurm_task(12, 10, 13, 4)), (Shard{2, 4, "SLURM_ARRAY_TASK_ID"}));
  EXPECT_EQ(resolve({{"TEST_SHARD_INDEX", "1"}, {"TEST_TOTAL_SHARDS", "3"}}), (Shard{1, 3, "TEST_SHARD_INDEX"}));
  // Precedence: --shard, Kubernetes, Slurm, Bazel.
  Env all = slurm_task(1, 0, 2, 3);
  all.insert({{"JOB_COMPLETION_INDEX", "0"}, {"PAYLOADRUN_SHARD_COUNT", "2"}, {"TEST_SHARD_INDEX", "4"},
              {"TEST_TOTAL_SHARDS", "5"}});
  EXPECT_EQ(resolve(all, "5/6"), (Shard{5, 6, "--shard"}));
  EXPECT_EQ(resolve(all), (Shard{0, 2, "JOB_COMPLETION_INDEX"}));
  Env no_k8s = all;
  no_k8s.erase("JOB_COMPLETION_INDEX");
  EXPECT_EQ(resolve(no_k8s), (Shard{1, 3, "SLURM_ARRAY_TASK_ID"}));
  Env bazel_only = no_k8s;
  bazel_only.erase("SLURM_ARRAY_TASK_ID");
  EXPECT_EQ(resolve(bazel_only), (Shard{4, 5, "TEST_SHARD_INDEX"}));
  EXPECT_EQ(describe(Shard{1, 3, "SLURM_ARRAY_TASK_ID"}), "shard 1 of 3 (from SLURM_ARRAY_TASK_ID)");
  EXPECT_EQ(describe(Shard{}), "unsharded");
}

TEST(Shard, BadValuesAreErrorsNamingTheVariable) {
  struct Case {
    Env env;
    std::optional<std::string> flag, count;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"JOB_COMPLETION_INDEX", "2"}}, {}, {}, "JOB_COMPLETION_INDEX=2 is set (a Kubernetes Indexed Job) but the "
                                                "number of shards is not: pass --shard-count N or set "
                                                "PAYLOADRUN_SHARD_COUNT"},
      {{{"JOB_COMPLETION_INDEX", "two"}, {"PAYLOADRUN_SHARD_COUNT", "4"}}, {}, {},
       "JOB_COMPLETION_INDEX=\"two\": expected a shard index, got a non-number"},
      {{{"JOB_COMPLETION_INDEX", ""}, {"PAYLOADRUN_SHARD_COUNT", "4"}}, {}, {}, "JOB_COMPLETION_INDEX=\"\""},
      {{{"JOB_COMPLETION_INDEX", "4"}, {"PAYLOADRUN_SHARD_COUNT", "4"}}, {}, {},
       "JOB_COMPLETION_INDEX gives shard index 4 but PAYLOADRUN_SHARD_COUNT gives 4 shard(s)"},
      {{{"JOB_COMPLETION_INDEX", "1"}, {"PAYLOADRUN_SHARD_COUNT", "0"}}, {}, {},
       "PAYLOADRUN_SHARD_COUNT=0: expected a shard count from 1 to 1000000"},
      {{{"JOB_COMPLETION_INDEX", "1"}}, {}, "0", "--shard-count=0: expected a shard count"},
      {{{"JOB_COMPLETION_INDEX", "1"}}, {}, "4x", "--shard-count=\"4x\": expected a shard count"},
      {{{"JOB_COMPLETION_INDEX", "-1"}, {"PAYLOADRUN_SHARD_COUNT", "4"}}, {}, {}, "JOB_COMPLETION_INDEX=\"-1\""},
      {{{"SLURM_ARRAY_TASK_ID", "1"}}, {}, {}, "SLURM_ARRAY_TASK_ID=1 is set but SLURM_ARRAY_TASK_COUNT is not"},
      {without(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_MIN"), {}, {},
       "SLURM_ARRAY_TASK_ID=1 is set but SLURM_ARRAY_TASK_MIN is not"},
      {without(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_MAX"), {}, {},
       "SLURM_ARRAY_TASK_ID=1 is set but SLURM_ARRAY_TASK_MAX is not"},
      {with(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_ID", "x"), {}, {}, "SLURM_ARRAY_TASK_ID=\"x\""},
      {slurm_task(1, 0, 3, 0), {}, {}, "SLURM_ARRAY_TASK_COUNT=0: expected"},
      {slurm_task(4, 0, 3, 4), {}, {},
       "SLURM_ARRAY_TASK_ID=4 is outside SLURM_ARRAY_TASK_MIN=0 to SLURM_ARRAY_TASK_MAX=3"},
      {slurm_task(1, 2, 5, 4), {}, {}, "SLURM_ARRAY_TASK_ID=1 is outside SLURM_ARRAY_TASK_MIN=2"},
      {with(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_MIN", "a"), {}, {}, "SLURM_ARRAY_TASK_MIN=\"a\""},
      {with(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_MAX", "-3"), {}, {}, "SLURM_ARRAY_TASK_MAX=\"-3\""},
      {with(slurm_task(1, 0, 3, 4), "SLURM_ARRAY_TASK_STEP", "one"), {}, {}, "SLURM_ARRAY_TASK_STEP=\"one\""},
      {slurm_task(1, 0, 3, 4), {}, "3", "--shard-count 3 disagrees with SLURM_ARRAY_TASK_COUNT=4"},
      {{{"TEST_SHARD_INDEX", "0"}}, {}, {}, "TEST_SHARD_INDEX=0 is set but TEST_TOTAL_SHARDS is not"},
      {{{"TEST_SHARD_INDEX", "0"}, {"TEST_TOTAL_SHARDS", "0"}}, {}, {}, "TEST_TOTAL_SHARDS=0: expected"},
      {{{"TEST_SHARD_INDEX", "3"}, {"TEST_TOTAL_SHARDS", "3"}}, {}, {},
       "TEST_SHARD_INDEX gives shard index 3 but TEST_TOTAL_SHARDS gives 3 shard(s)"},
      {{{"TEST_SHARD_INDEX", "0x1"}, {"TEST_TOTAL_SHARDS", "3"}}, {}, {}, "TEST_SHARD_INDEX=\"0x1\""},
      {{}, {}, "4", "--shard-count needs a shard index"},
      {{}, "1/4", "5", "--shard 1/4 and --shard-count 5 disagree"},
      {{}, "4/4", {}, "--shard needs I/N"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(resolve_error(c.env, c.flag, c.count), HasSubstr(c.message))
        << ::testing::PrintToString(c.env) << " " << c.flag.value_or("-") << " " << c.count.value_or("-");
  }
}

// Issue 17: what Slurm 22.05 sets in the tasks of --array=0-6:2, 1,3,7,
// 0-3,5 and 2-11:3 (observed on a real cluster: a stepped range keeps
// STEP, a list has STEP=1 and MAX - MIN + 1 > COUNT). Every task refuses,
// naming the variables; contiguous arrays of any base give 0..COUNT-1.
TEST(Shard, NonContiguousOrSteppedSlurmArraysAreRefusedInEveryTask) {
  struct Array {
    std::string spec;
    std::vector<std::size_t> ids;
    std::size_t step;
  };
  for (const Array& a : std::vector<Array>{
           {"0-6:2", {0, 2, 4, 6}, 2}, {"1,3,7", {1, 3, 7}, 1}, {"0-3,5", {0, 1, 2, 3, 5}, 1},
           {"2-11:3", {2, 5, 8, 11}, 3}}) {
    const std::size_t min = a.ids.front(), max = a.ids.back(), count = a.ids.size();
    for (std::size_t id : a.ids) {
      const std::string e = resolve_error(slurm_task(id, min, max, count, a.step));
      EXPECT_THAT(e, HasSubstr(fmt::format("SLURM_ARRAY_TASK_MIN={}, SLURM_ARRAY_TASK_MAX={}, "
                                           "SLURM_ARRAY_TASK_COUNT={}, SLURM_ARRAY_TASK_STEP={}: the array must be "
                                           "contiguous with step 1",
                                           min, max, count, a.step)))
          << "--array=" << a.spec << " task " << id;
      EXPECT_THAT(e, HasSubstr(fmt::format("e.g. --array=0-{}", count - 1))) << a.spec;
    }
  }
  // A step of 1 written out, or a list that happens to be contiguous, is
  // fine; so is any base. The shards are exactly 0..COUNT-1.
  for (const Array& a : std::vector<Array>{{"5-8", {5, 6, 7, 8}, 1}, {"0,1,2", {0, 1, 2}, 1}, {"7", {7}, 1}}) {
    std::set<std::size_t> shards;
    for (std::size_t id : a.ids) {
      const Shard s = resolve(slurm_task(id, a.ids.front(), a.ids.back(), a.ids.size(), a.step));
      EXPECT_EQ(s.count, a.ids.size()) << a.spec;
      shards.insert(s.index);
    }
    EXPECT_EQ(shards.size(), a.ids.size()) << a.spec;
    EXPECT_EQ(*shards.rbegin(), a.ids.size() - 1) << a.spec;
  }
  // Without SLURM_ARRAY_TASK_STEP (a hand-made environment) MIN, MAX and
  // COUNT alone decide.
  EXPECT_EQ(resolve(without(slurm_task(6, 5, 8, 4), "SLURM_ARRAY_TASK_STEP")), (Shard{1, 4, "SLURM_ARRAY_TASK_ID"}));
  EXPECT_THAT(resolve_error(without(slurm_task(3, 1, 7, 3), "SLURM_ARRAY_TASK_STEP")),
              HasSubstr("SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_MAX=7, SLURM_ARRAY_TASK_COUNT=3: the array must"));
}

TEST(Shard, BazelStatusFileIsTouchedOnlyWhenBazelShards) {
  TempDir dir;
  const std::string status = dir.file("status");
  Env env = {{"TEST_SHARD_INDEX", "0"}, {"TEST_TOTAL_SHARDS", "2"}, {"TEST_SHARD_STATUS_FILE", status}};
  acknowledge_shard(resolve(env, "1/2"), lookup(env));
  EXPECT_FALSE(std::filesystem::exists(status)) << "--shard overrides Bazel: do not claim to honour its sharding";
  acknowledge_shard(resolve(env), lookup(env));
  EXPECT_TRUE(std::filesystem::exists(status));
  acknowledge_shard(resolve(env), lookup(env));  // touching again is fine
  env["TEST_SHARD_STATUS_FILE"] = dir.file("no-such-dir/status");
  try {
    acknowledge_shard(resolve(env), lookup(env));
    ADD_FAILURE() << "no error";
  } catch (const ShardError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot touch TEST_SHARD_STATUS_FILE=" + dir.file("no-such-dir/status")));
  }
}

TEST(Digest, Sha256Vectors) {
  auto hex = [](std::string_view s) {
    const auto d = sha256(s);
    return to_hex(d.data(), d.size());
  };
  EXPECT_EQ(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  for (std::size_t n : {55u, 56u, 63u, 64u, 65u, 119u, 120u}) {  // padding edges: distinct, stable
    EXPECT_NE(hex(std::string(n, 'x')), hex(std::string(n + 1, 'x')));
  }
}

TEST(Digest, FollowsMeaningNotSpelling) {
  const std::string base = R"({"payloads": [{"name": "a", "binary": "true", "count": 2,
    "checks": [{"min": {"metric": "m", "value": 100}}]}]})";
  const std::string digest = parse_scenario(base, "a.json", ".").digest;
  EXPECT_THAT(digest, ::testing::MatchesRegex("sha256:[0-9a-f]{64}"));
  // Same meaning: whitespace, key order, number spelling, concurrency, the file's place.
  for (const std::string& same : {
           std::string(R"({"payloads":[{"count":2,"binary":"true","name":"a","checks":[{"min":{"value":1e2,"metric":"m"}}]}]})"),
           std::string(R"({"concurrency": 5, "payloads": [{"name": "a", "binary": "true", "count": 2,
              "checks": [{"min": {"metric": "m", "value": 100.0}}]}]})"),
           std::string(R"({"payloads": [{"name": "\u0061", "binary": "true", "count": 2,
              "checks": [{"min": {"metric": "m", "value": 100}}]}]})")}) {
    EXPECT_EQ(parse_scenario(same, "elsewhere/b.json", "/x").digest, digest) << same;
  }
  // Different meaning: any value, the order of payloads or checks.
  for (const std::string& other : {
           std::string(R"({"payloads": [{"name": "a", "binary": "true", "count": 3,
              "checks": [{"min": {"metric": "m", "value": 100}}]}]})"),
           std::string(R"({"payloads": [{"name": "a", "binary": "true", "count": 2,
              "checks": [{"min": {"metric": "m", "value": 100.5}}]}]})"),
           std::string(R"({"payloads": [{"name": "a", "binary": "true", "count": 2, "args": [],
              "checks": [{"min": {"metric": "m", "value": 100}}]}]})"),
           std::string(R"({"payloads": [{"name": "a", "binary": "true", "count": 2,
              "checks": [{"max": {"metric": "m", "value": 100}}]}]})")}) {
    EXPECT_NE(parse_scenario(other, "a.json", ".").digest, digest) << other;
  }
  const Scenario two = parse_scenario(R"({"payloads": [{"name": "a", "binary": "true"}, {"name": "b", "binary": "true"}]})", "f", ".");
  const Scenario swapped = parse_scenario(R"({"payloads": [{"name": "b", "binary": "true"}, {"name": "a", "binary": "true"}]})", "f", ".");
  EXPECT_NE(two.digest, swapped.digest);
}

// ---------------------------------------------------------------- the program

struct SliceReport {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit SliceReport(const std::string& path) {
    if (auto err = parser.load(path).get(root)) throw std::runtime_error(path + ": " + simdjson::error_message(err));
  }
  Shard shard() {
    auto s = root["shard"];
    return Shard{static_cast<std::size_t>(s["index"].get_uint64().value()),
                 static_cast<std::size_t>(s["count"].get_uint64().value()),
                 std::string(s["source"].get_string().value())};
  }
  std::vector<Slot> slots() {
    std::vector<Slot> v;
    for (auto inv : array_of(root["invocations"])) {
      v.emplace_back(inv["scenario_index"].get_uint64().value(), inv["invocation"].get_uint64().value());
    }
    return v;
  }
  std::vector<std::uint64_t> payload_indices() {
    std::vector<std::uint64_t> v;
    for (auto inv : array_of(root["invocations"])) v.push_back(inv["payload_index"].get_uint64().value());
    return v;
  }
};

std::vector<Slot> sorted(std::vector<Slot> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(ShardRun, UnionOfSlicesEqualsTheUnshardedRunForNFrom1To7) {
  TempDir dir;
  write_file(dir.file("s.json"), mixed_scenario);
  const Scenario scenario = load_scenario(dir.file("s.json"));
  ProgramResult r = run_program({"run", dir.file("s.json"), "--json", dir.file("all.json"), "--quiet"});
  ASSERT_EQ(r.status, 0) << r.err;
  SliceReport whole(dir.file("all.json"));
  EXPECT_EQ(whole.shard(), Shard{});
  EXPECT_EQ(std::string(whole.root["shard"]["rule"].get_string().value()), assignment_rule);
  EXPECT_EQ(std::string(whole.root["scenario"]["digest"].get_string().value()), scenario.digest);
  const std::vector<Slot> everything = sorted(whole.slots());
  ASSERT_EQ(everything.size(), 24u);
  for (std::size_t n = 1; n <= 7; ++n) {
    std::vector<Slot> union_of_slices;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string report = dir.file("s" + std::to_string(i) + "of" + std::to_string(n) + ".json");
      // Concurrency differs per slice: the slice must not.
      r = run_program({"run", dir.file("s.json"), "--shard", std::to_string(i) + "/" + std::to_string(n),
                       "--concurrency", std::to_string(1 + (i + n) % 4), "--json", report, "--quiet"});
      ASSERT_EQ(r.status, 0) << r.err;
      SliceReport slice(report);
      const std::vector<Slot> slots = slice.slots();
      EXPECT_EQ(slice.shard(), (Shard{i, n, "--shard"}));
      EXPECT_EQ(slice.root["shard"]["invocations"].get_uint64().value(), slots.size());
      EXPECT_EQ(sorted(slots), sorted(shard_schedule(scenario, Shard{i, n, "--shard"})))
          << "the program and the in-process rule agree";
      for (std::uint64_t index : slice.payload_indices()) EXPECT_EQ(index % n, i) << "shard-qualified index";
      union_of_slices.insert(union_of_slices.end(), slots.begin(), slots.end());
    }
    EXPECT_EQ(sorted(union_of_slices), everything) << "N = " << n << ": every invocation exactly once";
  }
}

TEST(ShardRun, EachEnvironmentSourceSelectsTheSlice) {
  TempDir dir;
  write_file(dir.file("s.json"), mixed_scenario);
  const Scenario scenario = load_scenario(dir.file("s.json"));
  const std::string status_file = dir.file("bazel-status");
  struct Case {
    std::vector<std::string> env, args;
    Shard expected;
  };
  const std::vector<Case> cases = {
      {{"JOB_COMPLETION_INDEX=2", "PAYLOADRUN_SHARD_COUNT=3"}, {}, {2, 3, "JOB_COMPLETION_INDEX"}},
      {{"JOB_COMPLETION_INDEX=1"}, {"--shard-count", "3"}, {1, 3, "JOB_COMPLETION_INDEX"}},
      {{"SLURM_ARRAY_TASK_ID=5", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=4", "SLURM_ARRAY_TASK_MAX=6",
        "SLURM_ARRAY_TASK_STEP=1"},
       {},
       {1, 3, "SLURM_ARRAY_TASK_ID"}},
      {{"SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_COUNT=2", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=1",
        "TEST_SHARD_INDEX=1", "TEST_TOTAL_SHARDS=2"},
       {},
       {0, 2, "SLURM_ARRAY_TASK_ID"}},
      {{"TEST_SHARD_INDEX=0", "TEST_TOTAL_SHARDS=3", "TEST_SHARD_STATUS_FILE=" + status_file}, {},
       {0, 3, "TEST_SHARD_INDEX"}},
      {{"JOB_COMPLETION_INDEX=0", "PAYLOADRUN_SHARD_COUNT=2", "SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=3"},
       {"--shard", "2/5"}, {2, 5, "--shard"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", dir.file("s.json"), "--json", dir.file("r.json")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const ProgramResult r = run_program(args, std::chrono::seconds(60), c.env);
    ASSERT_EQ(r.status, 0) << ::testing::PrintToString(c.env) << r.err;
    EXPECT_THAT(r.err, HasSubstr(describe(c.expected)));
    SliceReport report(dir.file("r.json"));
    EXPECT_EQ(report.shard(), c.expected) << ::testing::PrintToString(c.env);
    EXPECT_EQ(sorted(report.slots()), sorted(shard_schedule(scenario, c.expected)));
  }
  EXPECT_TRUE(std::filesystem::exists(status_file)) << "TEST_SHARD_STATUS_FILE touched as Bazel asks";
}

TEST(ShardRun, BadValuesAreUsageErrorsAndRunNothing) {
  TempDir dir;
  const std::string marker = dir.file("ran");
  write_file(dir.file("s.json"), R"({"payloads": [{"name": "touch", "binary": "touch", "args": [")" + marker +
                                     R"("], "count": 8}]})");
  struct Case {
    std::vector<std::string> env, args;
    std::string names;
  };
  const std::vector<Case> cases = {
      {{"JOB_COMPLETION_INDEX=x", "PAYLOADRUN_SHARD_COUNT=4"}, {}, "JOB_COMPLETION_INDEX=\"x\""},
      {{"JOB_COMPLETION_INDEX=1"}, {}, "PAYLOADRUN_SHARD_COUNT"},
      {{"JOB_COMPLETION_INDEX=4", "PAYLOADRUN_SHARD_COUNT=4"}, {}, "JOB_COMPLETION_INDEX gives shard index 4"},
      {{"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=2"}, {},
       "SLURM_ARRAY_TASK_ID=3"},
      {{"SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_TASK_COUNT=4", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=6",
        "SLURM_ARRAY_TASK_STEP=2"},
       {},
       "SLURM_ARRAY_TASK_MAX=6, SLURM_ARRAY_TASK_COUNT=4, SLURM_ARRAY_TASK_STEP=2: the array must be contiguous"},
      {{"SLURM_ARRAY_TASK_ID=3"}, {}, "SLURM_ARRAY_TASK_COUNT is not"},
      {{"TEST_SHARD_INDEX=0", "TEST_TOTAL_SHARDS=0"}, {}, "TEST_TOTAL_SHARDS=0"},
      {{}, {"--shard", "3/3"}, "--shard needs I/N"},
      {{}, {"--shard=1/0"}, "--shard needs I/N"},
      {{}, {"--shard"}, "--shard: 1 required I/N missing"},
      {{}, {"--shard-count", "2"}, "--shard-count needs a shard index"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", dir.file("s.json"), "--json", dir.file("r.json")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const ProgramResult r = run_program(args, std::chrono::seconds(60), c.env);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(c.env) << ::testing::PrintToString(c.args);
    EXPECT_THAT(r.err, HasSubstr("payloadrun: "));
    EXPECT_THAT(r.err, HasSubstr(c.names)) << ::testing::PrintToString(c.env);
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a usage error runs nothing";
  EXPECT_FALSE(std::filesystem::exists(dir.file("r.json")));
}

}  // namespace
