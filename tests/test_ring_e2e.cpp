// End to end: a Supervisor with options.ring emitting real payload
// completions into a separate payloadrun-drain process, read back from its
// sidecar.
#include <sys/prctl.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>
#include <simdjson.h>

#include "fixture.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "test_ring_util.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace ring_test;
using namespace std::chrono_literals;

namespace {

class RingE2E : public ProcessTest {};

// `extractor`: the --extractor program, then each further word as one
// --extractor-arg.
pid_t start_drain(const std::string& ring, const std::string& out,
                  const std::vector<std::string>& extractor = {}) {
  // meson test sets PAYLOADRUN_DRAIN; else the build tree's examples/.
  static const std::string path = [] {
    if (const char* env = std::getenv("PAYLOADRUN_DRAIN")) return std::string(env);
    std::string self = self_exe();
    return self.substr(0, self.rfind('/')) + "/../examples/payloadrun-drain";
  }();
  const char* drain = path.c_str();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string err = out + ".stderr";
    std::freopen(err.c_str(), "w", stderr);
    std::vector<std::string> args{drain, "--ring", ring, "--out", out};
    if (extractor.empty()) {
      args.insert(args.end(), {"--capacity", "65536"});
    } else {
      args.insert(args.end(), {"--extractor", extractor[0]});
      for (std::size_t i = 1; i < extractor.size(); ++i) args.insert(args.end(), {"--extractor-arg", extractor[i]});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(drain, argv.data());
    ::_exit(127);
  }
  return pid;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST_F(RingE2E, SupervisorEmitsIntoADrainProcess) {
  RingName ring("e2e");
  const std::string out = "/tmp/payloadrun-test-" + std::to_string(::getpid()) + "-e2e.jsonl";
  std::remove(out.c_str());
  const pid_t drain = start_drain(ring, out);

  SupervisorOptions o;
  o.ring = ring.name;
  Payload json = child_payload("json", {"json", R"({"iops": 1500.25, "lat": {"p99": 12}})"}, output::Json{});
  json.default_checks = {MetricCheck::min("iops", 1000)};
  Payload deferred = child_payload("deferred", {"json", R"(text before {"tput": 42} after)"},
                                   output::Deferred{"look for tput"});
  deferred.metrics = {{"tput", Polarity::higher_better, "MB/s"}};
  deferred.metric_bounds = MetricBounds{1, 0.0, 100.0};
  deferred.default_checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("tput", 50)};
  Payload failing = child_payload("exit3", {"exit", "3"});
  failing.default_checks = {MetricCheck::exit_code_eq(0)};

  Supervisor& s = sup(o);
  constexpr int rounds = 20;
  int done = 0;
  for (int i = 0; i < rounds; ++i) {
    for (const Payload* p : {&json, &deferred, &failing}) {
      s.payload(*p).timeout(30s).spawn([&](Completion) { ++done; });
    }
  }
  s.run();
  EXPECT_EQ(done, rounds * 3);
  // Let the drain catch up, then stop it.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (read_lines(out).size() < rounds * 3 && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(10ms);
  }
  ::kill(drain, SIGTERM);
  const int status = wait_child(drain, 30s);
  const std::string log = slurp(out + ".stderr");
  EXPECT_TRUE(exited_ok(status)) << log;
  EXPECT_NE(log.find("0 corrupt, 0 abandoned"), std::string::npos) << log;

  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(rounds * 3)) << log;
  simdjson::dom::parser parser;
  std::map<std::string, int> passed, count;
  for (const auto& l : lines) {
    simdjson::dom::element e = parser.parse(l);
    const std::string name{std::string_view(e["payload"])};
    ++count[name];
    passed[name] += bool(e["passed"]);
    if (name == "deferred") {
      simdjson::dom::array metrics = e["metrics"];
      ASSERT_EQ(metrics.size(), 1u) << l;
      simdjson::dom::element m = metrics.at(0);
      EXPECT_EQ(std::string_view(m["name"]), "tput");
      EXPECT_EQ(double(m["value"]), 42.0);
      EXPECT_EQ(std::string_view(m["polarity"]), "higher_better");
      EXPECT_EQ(std::string_view(m["unit"]), "MB/s");
      EXPECT_EQ(std::string_view(m["source"]), "deferred");
      simdjson::dom::array details = e["details"];
      ASSERT_EQ(details.size(), 1u) << l;  // min("tput", 50) fails on the consumer side
      EXPECT_NE(std::string_view(details.at(0)["message"]).find("tput"), std::string_view::npos) << l;
    }
    if (name == "json") {
      simdjson::dom::array metrics = e["metrics"];
      EXPECT_EQ(metrics.size(), 2u);
      EXPECT_EQ(double(metrics.at(0)["value"]), 1500.25);
    }
    if (name == "exit3") {
      EXPECT_EQ(int64_t(e["exit_code"]), 3);
    }
  }
  EXPECT_EQ(count["json"], rounds);
  EXPECT_EQ(count["deferred"], rounds);
  EXPECT_EQ(count["exit3"], rounds);
  EXPECT_EQ(passed["json"], rounds);
  EXPECT_EQ(passed["deferred"], 0);
  EXPECT_EQ(passed["exit3"], 0);
  std::remove(out.c_str());
  std::remove((out + ".stderr").c_str());
}

// payloadrun-drain --extractor PROGRAM --extractor-arg ARG...: each ARG
// reaches the extractor as one argument, spaces included.
TEST_F(RingE2E, DrainRunsTheExtractorWithItsArgumentsIntact) {
  RingName ring("xarg");
  const std::string out = "/tmp/payloadrun-test-" + std::to_string(::getpid()) + "-xarg.jsonl";
  std::remove(out.c_str());
  const pid_t drain =
      start_drain(ring, out, {self_exe(), "--payloadrun-child", "drain-print", R"({"with space": 4})"});
  SupervisorOptions o;
  o.ring = ring.name;
  Supervisor& s = sup(o);
  s.payload(child_payload("deferred", {"print", "raw text"}, output::Deferred{})).timeout(30s).run();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (read_lines(out).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ::kill(drain, SIGTERM);
  const std::string log = slurp(out + ".stderr");
  EXPECT_TRUE(exited_ok(wait_child(drain, 30s))) << log;
  const auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_NE(lines[0].find(R"("passed":true)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(R"({"name":"with space","value":4.0,)"), std::string::npos) << lines[0];
  std::remove(out.c_str());
  std::remove((out + ".stderr").c_str());
}

TEST_F(RingE2E, EmitterQueuesWhenFullAndFlushesWhenTheDrainStartsLate) {
  RingName ring("late");
  const std::string out = "/tmp/payloadrun-test-" + std::to_string(::getpid()) + "-late.jsonl";
  std::remove(out.c_str());
  {
    // A 4 KiB ring created by the emitter; no consumer yet.
    auto emitter = std::make_shared<RingEmitter>(&loop_, ring.name, RingOptions{.capacity = 4096});
    SupervisorOptions o;
    o.emitter = emitter;
    Supervisor& s = sup(o);
    Payload p = child_payload("json", {"json", R"({"a": 1, "b": 2, "c": 3})"}, output::Json{});
    for (int i = 0; i < 60; ++i) s.payload(p).timeout(30s).spawn([](Completion) {});
    s.run();
    EXPECT_GT(emitter->queue_depth(), 0u) << "the full ring made records wait in process";
    const pid_t drain = start_drain(ring, out, {"cat"});
    // The emitter's timer keeps the loop alive until everything is written.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (emitter->queue_depth() > 0 && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    EXPECT_EQ(emitter->queue_depth(), 0u);
    while (read_lines(out).size() < 60 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    ::kill(drain, SIGTERM);
    EXPECT_TRUE(exited_ok(wait_child(drain, 30s))) << slurp(out + ".stderr");
    sup_.reset();
  }
  EXPECT_EQ(read_lines(out).size(), 60u);
  std::remove(out.c_str());
  std::remove((out + ".stderr").c_str());
}

// Issue "reliability": the ring stays full with no consumer for 30 s while
// payloads keep completing; when a consumer finally appears every record
// arrives, each payload_index exactly once.
TEST_F(RingE2E, RingFullWithNoConsumerForThirtySecondsLosesNothing) {
  RingName ring("full30");
  const std::string out = "/tmp/payloadrun-test-" + std::to_string(::getpid()) + "-full30.jsonl";
  std::remove(out.c_str());
  std::set<std::uint64_t> emitted;
  {
    auto emitter = std::make_shared<RingEmitter>(&loop_, ring.name, RingOptions{.capacity = 4096});
    SupervisorOptions o;
    o.emitter = emitter;
    Supervisor& s = sup(o, 120s);
    Payload p = child_payload("steady", {"json", R"({"a": 1, "b": {"c": 2.5}})"}, output::Json{});
    // One completion every 100 ms for 30 s, on a timer: the loop keeps
    // turning (and the emitter keeps retrying) the whole time.
    const auto start = std::chrono::steady_clock::now();
    struct Pacer {
      uv_timer_t timer;
      std::function<void()> tick;
    } pacer;
    pacer.tick = [&] {
      if (std::chrono::steady_clock::now() - start >= 30s) {
        uv_timer_stop(&pacer.timer);
        return;
      }
      s.payload(p).timeout(30s).spawn([&](Completion c) { emitted.insert(c.metrics.payload_index); });
    };
    uv_timer_init(&loop_, &pacer.timer);
    pacer.timer.data = &pacer;
    uv_timer_start(&pacer.timer, [](uv_timer_t* t) { static_cast<Pacer*>(t->data)->tick(); }, 0, 100);
    while (uv_is_active(reinterpret_cast<uv_handle_t*>(&pacer.timer)) != 0 || s.live() > 0) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&pacer.timer), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // its close completes before `pacer` goes
    ASSERT_GE(emitted.size(), 100u) << "payloads kept completing for 30 s";
    EXPECT_GT(emitter->queue_depth(), emitted.size() / 2) << "the 4 KiB ring held only a few records";

    const pid_t drain = start_drain(ring, out, {"cat"});
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (emitter->queue_depth() > 0 && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_ONCE);
    }
    EXPECT_EQ(emitter->queue_depth(), 0u);
    while (read_lines(out).size() < emitted.size() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    ::kill(drain, SIGTERM);
    EXPECT_TRUE(exited_ok(wait_child(drain, 30s))) << slurp(out + ".stderr");
    sup_.reset();
  }
  std::multiset<std::uint64_t> arrived;
  simdjson::dom::parser parser;
  for (const auto& l : read_lines(out)) arrived.insert(std::uint64_t(parser.parse(l)["payload_index"]));
  EXPECT_EQ(arrived.size(), emitted.size()) << "records lost or duplicated";
  EXPECT_TRUE(std::equal(emitted.begin(), emitted.end(), arrived.begin(), arrived.end()))
      << "the sidecar's payload_index set differs from the completions'";
  std::remove(out.c_str());
  std::remove((out + ".stderr").c_str());
}

TEST_F(RingE2E, DrainExitsNonZeroOnCorruption) {
  RingName ring("drain-corrupt");
  const std::string out = "/tmp/payloadrun-test-" + std::to_string(::getpid()) + "-corrupt.jsonl";
  {
    RingProducer p(ring.name, {.capacity = 1 << 16});
    p.write(RecordType::metrics, 0, "{not json");
  }
  const pid_t drain = start_drain(ring, out);
  std::this_thread::sleep_for(200ms);
  ::kill(drain, SIGTERM);
  const int status = wait_child(drain, 30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << slurp(out + ".stderr");
  EXPECT_NE(slurp(out + ".stderr").find("1 undecodable"), std::string::npos) << slurp(out + ".stderr");
  std::remove(out.c_str());
  std::remove((out + ".stderr").c_str());
}

}  // namespace

namespace {

// Producers SIGKILLed at random instants while they stream (under the
// reservation lock, in the middle of a body's copy, between records):
// every record the consumer gets is whole and in order, the only one a
// killed producer loses is the one it was writing (counted abandoned, at
// most one a kill), nothing is corrupt and the ring ends empty.
TEST(RingKill, ProducersKilledAtRandomInstantsLoseOnlyTheRecordBeingWritten) {
  RingName name("random-kill");
  const RingOptions o{.capacity = 1 << 20};
  RingConsumer consumer(name, o);
  std::mt19937 rng(20261203);
  std::map<std::uint32_t, std::uint64_t> next_seq;  // per producer pid
  std::uint64_t records = 0, bad = 0, out_of_order = 0;
  auto check = [&](const RingView& v) {
    ++records;
    std::uint64_t seq = 0;
    if (v.body.size() < 8) return void(++bad);
    std::memcpy(&seq, v.body.data(), 8);
    for (std::size_t i = 8; i < v.body.size(); ++i) {
      if (v.body[i] != static_cast<char>(seq * 31 + i)) return void(++bad);
    }
    out_of_order += seq != next_seq[v.pid] ? 1 : 0;
    next_seq[v.pid] = seq + 1;
  };
  constexpr int kills = 20;
  for (int k = 0; k < kills; ++k) {
    const std::size_t size = std::uniform_int_distribution<std::size_t>(16, 3000)(rng);
    const pid_t pid = fork_child([&] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      RingProducer p(name, o);
      std::string rec(size, '\0');
      const auto give_up = std::chrono::steady_clock::now() + 60s;  // the parent kills it long before
      for (std::uint64_t seq = 0; std::chrono::steady_clock::now() < give_up; ++seq) {
        std::memcpy(rec.data(), &seq, 8);
        for (std::size_t i = 8; i < rec.size(); ++i) rec[i] = static_cast<char>(seq * 31 + i);
        p.write(RecordType::raw_output, seq, rec);
        while (p.queue_depth() > 0 && p.flush() > 0) ::sched_yield();
      }
      return 1;
    });
    ASSERT_GT(pid, 0);
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::microseconds(std::uniform_int_distribution<int>(200, 30000)(rng));
    while (std::chrono::steady_clock::now() < until) consumer.read(1ms, check);
    ::kill(pid, SIGKILL);
    const int status = wait_child(pid, 30s);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  for (const auto bound = std::chrono::steady_clock::now() + 30s;
       consumer.read(300ms, check) > 0 && std::chrono::steady_clock::now() < bound;) {
  }
  EXPECT_GT(records, 0u);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(out_of_order, 0u) << "a record missing in the middle of a producer's stream";
  EXPECT_EQ(consumer.stats().corrupt, 0u);
  EXPECT_LE(consumer.stats().abandoned, static_cast<std::uint64_t>(kills));
  EXPECT_TRUE(consumer.empty());
}


// A few small records behind the consumer's last head (fewer bytes than
// the consumer waits to gather before reading right behind a producer):
// a zero-timeout poll takes them at once, a read or next with a timeout
// after a pause of microseconds, never after its timeout; a read stopped
// at such a batch leaves it for the next call, losing nothing.
TEST(RingBatch, AFewSmallRecordsAreReadAtOnceNeverHeldForTheTimeout) {
  RingName name("short-batch");
  const RingOptions o{.capacity = 1 << 20};
  RingConsumer consumer(name, o);
  RingProducer producer(name, o);
  std::uint64_t want = 0, bad = 0;
  auto check = [&](const RingView& v) { bad += v.payload_index == want++ ? 0 : 1; };
  std::uint64_t written = 0;
  auto write = [&](int n) {
    for (int i = 0; i < n; ++i) producer.write(RecordType::raw_output, written++, std::string(100, 'x'));
  };
  for (int round = 0; round < 50; ++round) {
    write(3);
    EXPECT_EQ(consumer.read(0ms, check), 3u) << "a poll left records behind (round " << round << ")";
    write(3);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(consumer.read(5s, check), 3u);
    write(1);
    EXPECT_TRUE(consumer.next(5s).has_value());
    ++want;
    // Well under the 5 s timeout (the pause is microseconds; slack for a busy machine).
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "round " << round;
    // A read that stops at a short batch written while it runs.
    write(200);
    std::size_t got = 0;
    bool more = true;
    for (const auto bound = std::chrono::steady_clock::now() + 10s;
         got < 203 && std::chrono::steady_clock::now() < bound;) {
      consumer.read(1s, [&](const RingView& v) {
        check(v);
        if (++got == 100 && more) write(3), more = false;  // mid-read: a few more behind head
      });
    }
    EXPECT_EQ(got, 203u);
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(want, written);
  EXPECT_TRUE(consumer.empty());
  EXPECT_EQ(consumer.stats().corrupt + consumer.stats().abandoned, 0u);
}

}  // namespace
