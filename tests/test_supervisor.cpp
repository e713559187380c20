// The supervisor's contract, end to end with real child processes: results,
// metrics pipeline, checks, handles, errors, emission, embedding.
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

class SupervisorTest : public ProcessTest {};

TEST_F(SupervisorTest, RunReturnsExitCodeAndBothStreams) {
  auto c = sup().payload(child_payload("printer", {"print", "hello", "oops", "3"})).run();
  EXPECT_EQ(c.payload_name, "printer");
  EXPECT_EQ(c.metrics.exit_code, 3);
  EXPECT_EQ(c.stdout_text, "hello");
  EXPECT_EQ(c.stderr_text, "oops");
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_FALSE(c.metrics.killed_by_signal.has_value());
  EXPECT_TRUE(c.result.passed);  // no checks: exit code alone is not a failure
  EXPECT_GT(c.pid, 0);
  EXPECT_GT(c.metrics.duration.count(), 0);
}

TEST_F(SupervisorTest, JsonMetricsFromStdoutWithChecksAndHints) {
  Payload p = child_payload("fio", {"json", R"({"jobs":[{"read":{"iops":1500.5}}],"lat":{"p99":12}})"},
                            output::Json{});
  p.metrics = {{"jobs.0.read.iops", Polarity::higher_better, "iops"}};
  p.default_checks = {MetricCheck::min("jobs.0.read.iops", 1000), MetricCheck::max("lat.p99", 20)};
  auto c = sup().payload(p).run();
  ASSERT_EQ(c.metrics.size(), 2u);
  EXPECT_EQ(c.metrics.get("jobs.0.read.iops"), 1500.5);
  EXPECT_EQ(c.metrics.get("lat.p99"), 12);
  const Metric m = c.metrics[*c.metrics.find("jobs.0.read.iops")];
  EXPECT_EQ(m.polarity, Polarity::higher_better);
  EXPECT_EQ(m.unit, "iops");
  EXPECT_EQ(m.stream, MetricStream::stdout_stream);
  EXPECT_EQ(m.source, MetricSource::json);
  EXPECT_EQ(c.metrics[*c.metrics.find("lat.p99")].polarity, Polarity::unknown);
  EXPECT_TRUE(c.result.passed) << (c.result.details.empty() ? "" : c.result.details[0].message);
}

TEST_F(SupervisorTest, StderrFallbackOnlyWhenStdoutYieldsNothing) {
  Supervisor& s = sup();
  auto fallback = s.payload(child_payload("schbench", {"stderr-json", R"({"p99": 7})", "no json"},
                                          output::Json{}))
                      .run();
  ASSERT_EQ(fallback.metrics.size(), 1u);
  EXPECT_EQ(fallback.metrics[0].stream, MetricStream::stderr_stream);
  EXPECT_EQ(fallback.metrics.get("p99"), 7);

  // Both streams carry JSON: stdout wins, the streams are never merged.
  auto both = s.payload(child_payload("both", {"json", R"({"a": 1})", R"({"b": 2})"}, output::Json{}))
                  .run();
  ASSERT_EQ(both.metrics.size(), 1u);
  EXPECT_EQ(both.metrics.get("a"), 1);
  EXPECT_FALSE(both.metrics.get("b"));
}

TEST_F(SupervisorTest, ExitCodeCheckShortCircuitsAndQuotesStderrTail) {
  Payload p = child_payload("failing", {"print", "", "fatal: config missing\n", "2"}, output::Json{});
  p.default_checks = {MetricCheck::exit_code_eq(0), MetricCheck::min("iops", 1)};
  auto c = sup().payload(p).run();
  EXPECT_FALSE(c.result.passed);
  ASSERT_EQ(c.result.details.size(), 1u);
  EXPECT_THAT(c.result.details[0].message, HasSubstr("payload exited with code 2, expected 0"));
  EXPECT_THAT(c.result.details[0].message, HasSubstr("stderr:\nfatal: config missing"));
}

TEST_F(SupervisorTest, MissingMetricsFailLoudly) {
  Payload p = child_payload("quiet", {"print", "not json"}, output::Json{});
  auto c = sup().payload(p).check(MetricCheck::exists("iops")).check(MetricCheck::min("lat", 1)).run();
  EXPECT_FALSE(c.result.passed);
  ASSERT_EQ(c.result.details.size(), 2u);
  // ktstr's message, then why (issue 18).
  EXPECT_THAT(c.result.details[0].message,
              StartsWith("metric 'iops' not found in payload output: stdout has no JSON document"));
  EXPECT_THAT(c.result.details[1].message,
              StartsWith("metric 'lat' not found in payload output: stdout has no JSON document"));
}

TEST_F(SupervisorTest, BuilderComposesArgsAndChecksLikeTheSeed) {
  Supervisor& s = sup();
  Payload p = child_payload("echo", {"print"});
  p.default_checks = {MetricCheck::exit_code_eq(0)};
  PayloadRun r = s.payload(p);
  EXPECT_EQ(r.effective_args(), (std::vector<std::string>{"--payloadrun-child", "print"}));
  r.arg("a").args({"b", "c"});
  EXPECT_EQ(r.effective_args().size(), 5u);
  r.clear_args().arg("--payloadrun-child").arg("print").arg("only");
  EXPECT_EQ(r.effective_checks().size(), 1u);
  r.clear_checks().check(MetricCheck::exit_code_eq(4));
  auto c = r.run();
  EXPECT_EQ(c.stdout_text, "only");
  EXPECT_FALSE(c.result.passed);  // exit 0, expected 4
}

TEST_F(SupervisorTest, PayloadIndexIsUniqueAndIncreasing) {
  Supervisor& s = sup();
  auto a = s.payload(child_payload("a", {"exit", "0"})).run();
  auto b = s.payload(child_payload("b", {"exit", "0"})).run();
  EXPECT_LT(a.metrics.payload_index, b.metrics.payload_index);
}

TEST_F(SupervisorTest, PayloadIndexSpaceForSlices) {
  // Slice 2 of 3: every index is k * 3 + 2, and the indices still increase.
  SupervisorOptions o;
  o.index_stride = 3;
  o.index_offset = 2;
  Supervisor& s = sup(o);
  std::vector<std::uint64_t> seen;
  for (int i = 0; i < 4; ++i) {
    seen.push_back(s.payload(child_payload("slice", {"exit", "0"})).run().metrics.payload_index);
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i] % 3, 2u) << seen[i];
    if (i > 0) {
      EXPECT_GT(seen[i], seen[i - 1]);
    }
  }
}

TEST_F(SupervisorTest, PayloadIndexSpaceRejectsAnOffsetOutsideTheStride) {
  for (auto [stride, offset] : {std::pair<std::uint64_t, std::uint64_t>{0, 0}, {4, 4}, {2, 7}}) {
    SupervisorOptions o;
    o.index_stride = stride;
    o.index_offset = offset;
    try {
      Supervisor s(o);
      ADD_FAILURE() << "stride " << stride << " offset " << offset << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr("index_offset"));
    }
  }
}

TEST_F(SupervisorTest, SpawnErrorsAreSynchronousAndActionable) {
  Supervisor& s = sup();
  try {
    s.payload(Payload::binary_payload("ghost", "definitely-not-a-binary-xyz")).spawn();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
    EXPECT_THAT(e.what(), HasSubstr("spawn payload 'ghost'"));
    EXPECT_THAT(e.what(), HasSubstr("binary not found on PATH"));
    EXPECT_THAT(e.what(), HasSubstr("interpreter"));
  }
  // A script whose #! interpreter is missing: execve says ENOENT.
  char dir[] = "/tmp/payloadrun-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string script = std::string(dir) + "/script.sh";
  {
    std::ofstream f(script);
    f << "#!/nonexistent/interpreter\necho hi\n";
  }
  ::chmod(script.c_str(), 0755);
  try {
    s.payload(Payload::binary_payload("script", script)).spawn();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
    EXPECT_EQ(e.sys_errno(), ENOENT);
    EXPECT_THAT(e.what(), HasSubstr("#!"));
  }
  // Not executable: EACCES.
  ::chmod(script.c_str(), 0644);
  try {
    s.payload(Payload::binary_payload("noexec", script)).spawn();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::spawn_failed);
    EXPECT_EQ(e.sys_errno(), EACCES);
  }
  // A missing working directory.
  try {
    s.payload(child_payload("cwd", {"cwd"})).working_dir("/nonexistent/dir").spawn();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::spawn_failed);
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/dir"));
  }
  ::unlink(script.c_str());
  ::rmdir(dir);
  EXPECT_EQ(s.live(), 0u);
}

TEST_F(SupervisorTest, SchedulerKindIsRefused) {
  try {
    sup().payload(Payload::scheduler_payload("eevdf", "eevdf")).run();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::scheduler_kind);
    EXPECT_THAT(e.what(), HasSubstr("scheduler-kind"));
  }
}

TEST_F(SupervisorTest, CgroupNamesAreValidatedInTheBuilder) {
  Supervisor& s = sup();
  auto expect_invalid = [&](const std::string& name, const char* needle) {
    try {
      s.payload(child_payload("cg", {"exit", "0"})).in_cgroup(name);
      ADD_FAILURE() << "accepted " << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_THAT(e.what(), HasSubstr(needle));
    }
  };
  expect_invalid("../escape", "..");
  expect_invalid(std::string("bad\0name", 8), "NUL");
  expect_invalid("/", "empty");
  expect_invalid("", "empty");
  EXPECT_EQ(s.payload(child_payload("cg", {"exit", "0"})).in_cgroup("/workload").cgroup(), "workload");
}

TEST_F(SupervisorTest, HandleLifecycle) {
  Supervisor& s = sup();
  PayloadHandle h = s.payload(child_payload("sleeper", {"sleep", "300"})).spawn();
  EXPECT_EQ(h.payload_name(), "sleeper");
  ASSERT_TRUE(h.pid().has_value());
  EXPECT_FALSE(h.try_wait().has_value());  // still running
  auto c = h.wait();
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_FALSE(h.pid().has_value());
  for (int i = 0; i < 3; ++i) {
    try {
      if (i == 0) h.wait();
      if (i == 1) h.kill();
      if (i == 2) h.try_wait();
      ADD_FAILURE() << "second consume accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::already_consumed);
      EXPECT_THAT(e.what(), HasSubstr("'sleeper' already consumed"));
    }
  }
}

TEST_F(SupervisorTest, TryWaitEventuallyReturnsTheResult) {
  Supervisor& s = sup();
  PayloadHandle h = s.payload(child_payload("quick", {"exit", "5"})).spawn();
  std::optional<Completion> c;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!c && std::chrono::steady_clock::now() < until) {
    c = h.try_wait();
    if (!c) ::usleep(1000);
  }
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->metrics.exit_code, 5);
}

TEST_F(SupervisorTest, KillReturnsCollectedOutputAndMinusOne) {
  Supervisor& s = sup();
  Payload p = Payload::binary_payload("sh", "sh");
  p.default_args = {"-c", "echo partial; exec sleep 60"};
  PayloadHandle h = s.payload(p).spawn();
  // Let it print first.
  for (int i = 0; i < 200 && !h.done(); ++i) {
    h.try_wait().has_value() ? (void)0 : (void)::usleep(5000);
    if (i == 50) break;
  }
  auto c = h.kill();
  EXPECT_EQ(c.metrics.exit_code, -1);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_EQ(c.stdout_text, "partial\n");
}

TEST_F(SupervisorTest, TimeoutKillsAndKeepsPartialOutput) {
  Supervisor& s = sup();
  Payload p = Payload::binary_payload("sh", "sh");
  p.default_args = {"-c", "echo partial; exec sleep 60"};
  const auto t0 = std::chrono::steady_clock::now();
  auto c = s.payload(p).timeout(300ms).check(MetricCheck::exit_code_eq(-1)).run();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.exit_code, -1);
  EXPECT_EQ(c.stdout_text, "partial\n");
  EXPECT_TRUE(c.result.passed);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
}

// Deadlines share one timer armed for the earliest: one that becomes the
// earliest re-arms it, one whose payload exits first leaves it to fire on
// nothing due and move on, and every deadline is acted on at its time,
// never before (C at 300 ms after A's forgotten 200 ms, B at 600 ms).
TEST_F(SupervisorTest, DeadlinesSharingOneTimerEachFireAtTheirOwnTime) {
  Supervisor& s = sup();
  const auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, std::chrono::steady_clock::duration> done;
  std::map<std::string, Completion> results;
  auto start = [&](const std::string& name, std::vector<std::string> argv, std::chrono::milliseconds t) {
    s.payload(child_payload(name, std::move(argv))).timeout(t).spawn([&, name](Completion c) {
      done[name] = std::chrono::steady_clock::now() - t0;
      results.emplace(name, std::move(c));
    });
  };
  // (B and C end on their own after 3 s: a deadline not acted on fails fast.)
  start("B", {"sleep", "3000"}, 600ms);
  start("A", {"exit", "0"}, 200ms);  // the earliest, forgotten when A exits
  start("C", {"sleep", "3000"}, 300ms);
  for (const auto bound = t0 + 8s; done.size() < 3 && std::chrono::steady_clock::now() < bound;) {
    uv_run(&loop_, UV_RUN_ONCE);
  }
  ASSERT_EQ(done.size(), 3u);
  EXPECT_FALSE(results.at("A").metrics.timed_out);
  EXPECT_EQ(results.at("A").metrics.exit_code, 0);
  EXPECT_LT(done.at("A"), 200ms);
  for (const auto& [name, at] : {std::pair<std::string, std::chrono::milliseconds>{"C", 300ms}, {"B", 600ms}}) {
    EXPECT_TRUE(results.at(name).metrics.timed_out) << name;
    EXPECT_GE(results.at(name).metrics.duration, at) << name << " was stopped before its deadline";
    EXPECT_LT(done.at(name), at + 250ms) << name << " completed late";  // slack for a loaded CI machine
  }
}

TEST_F(SupervisorTest, DroppingALiveHandleKillsItsGroupAndWarns) {
  LogCapture log;
  Supervisor& s = sup();
  int pid = 0;
  {
    PayloadHandle h = s.payload(child_payload("dropped", {"sleep", "60000"})).spawn();
    pid = *h.pid();
  }
  EXPECT_EQ(::kill(pid, 0), -1);  // reaped: no such process
  EXPECT_EQ(errno, ESRCH);
  EXPECT_TRUE(log.contains("PayloadHandle for 'dropped' dropped without wait/kill"));
  EXPECT_EQ(s.live(), 0u);
}

TEST_F(SupervisorTest, SpawnWithCallbackAndOnExit) {
  Supervisor& s = sup();
  int seen = 0;
  s.payload(child_payload("cb", {"exit", "9"})).spawn([&](Completion c) {
    EXPECT_EQ(c.metrics.exit_code, 9);
    ++seen;
  });
  PayloadHandle h = s.payload(child_payload("onexit", {"exit", "4"})).spawn();
  h.on_exit([&](Completion c) {
    EXPECT_EQ(c.metrics.exit_code, 4);
    ++seen;
  });
  EXPECT_THROW(h.wait(), Error);  // consumed by on_exit
  s.run();
  EXPECT_EQ(seen, 2);
}

TEST_F(SupervisorTest, BlockingCallsAreRefusedInsideCallbacks) {
  Supervisor& s = sup();
  bool refused = false;
  s.payload(child_payload("outer", {"exit", "0"})).spawn([&](Completion) {
    try {
      s.payload(child_payload("inner", {"exit", "0"})).run();
    } catch (const Error& e) {
      refused = e.code() == Errc::in_callback;
    }
  });
  s.run();
  EXPECT_TRUE(refused);
}

TEST_F(SupervisorTest, AThrowingCallbackDoesNotEscapeTheLoop) {
  LogCapture log;
  Supervisor& s = sup();
  s.payload(child_payload("thrower", {"exit", "0"})).spawn([](Completion) {
    throw std::runtime_error("boom");
  });
  int after = -1;
  s.payload(child_payload("next", {"exit", "3"})).spawn([&](Completion c) { after = c.metrics.exit_code; });
  s.run();
  EXPECT_EQ(after, 3);
  EXPECT_TRUE(log.contains("boom"));
}

TEST_F(SupervisorTest, DeferredPayloadShipsRawOutputAndSharesTheIndex) {
  auto emitter = std::make_shared<RecordingEmitter>();
  SupervisorOptions o;
  o.emitter = emitter;
  Supervisor& s = sup(o);
  Payload p = child_payload("llm", {"print", R"({"iops": 5})", "err text", "0"},
                            output::Deferred{"find iops"});
  p.default_checks = {MetricCheck::min("iops", 1)};  // the consumer's job
  p.metrics = {{"iops", Polarity::higher_better, "iops"}};
  p.metric_bounds = MetricBounds{1, 0.0, 1e9};
  // Runtime metric-level checks are refused, naming them.
  try {
    s.payload(p).check(MetricCheck::max("lat", 5));
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::forbidden_check);
    EXPECT_THAT(e.what(), HasSubstr("Max { metric: \"lat\", value: 5 }"));
  }
  auto c = s.payload(p).check(MetricCheck::exit_code_eq(0)).run();
  EXPECT_TRUE(c.metrics.empty());  // no extraction in the supervisor
  EXPECT_TRUE(c.result.passed);
  ASSERT_EQ(emitter->raws.size(), 1u);
  ASSERT_EQ(emitter->metrics.size(), 1u);
  EXPECT_EQ((std::vector<std::string>{"raw", "metrics"}), emitter->order);
  EXPECT_EQ(emitter->raws[0].payload_index, c.metrics.payload_index);
  EXPECT_EQ(emitter->metrics[0].first, c.metrics.payload_index);
  EXPECT_EQ(emitter->raws[0].stdout_text, R"({"iops": 5})");
  EXPECT_EQ(emitter->raws[0].stderr_text, "err text");
  EXPECT_EQ(emitter->raws[0].hint, "find iops");
  EXPECT_EQ(emitter->raws[0].metric_hints, p.metrics);
  EXPECT_EQ(emitter->raws[0].metric_bounds, p.metric_bounds);
  EXPECT_EQ(emitter->raws[0].checks.size(), 2u);

  // exit_code_eq is judged in the supervisor.
  Payload failing = p;
  failing.default_args = {"--payloadrun-child", "print", "", "bad", "1"};
  auto f = s.payload(failing).check(MetricCheck::exit_code_eq(0)).run();
  EXPECT_FALSE(f.result.passed);
  EXPECT_THAT(f.result.details.at(0).message, HasSubstr("exited with code 1"));
}

TEST_F(SupervisorTest, EmitterSeesEveryJsonCompletion) {
  auto emitter = std::make_shared<RecordingEmitter>();
  SupervisorOptions o;
  o.emitter = emitter;
  Supervisor& s = sup(o);
  for (int i = 0; i < 5; ++i) s.payload(child_payload("e", {"exit", "0"})).spawn([](Completion) {});
  s.run();
  ASSERT_EQ(emitter->metrics.size(), 5u);
  EXPECT_TRUE(emitter->raws.empty());
}

TEST_F(SupervisorTest, EnvironmentWorkingDirAndStdin) {
  Supervisor& s = sup();
  ::setenv("PAYLOADRUN_TEST_INHERITED", "from-parent", 1);
  EXPECT_EQ(s.payload(child_payload("env", {"env", "PAYLOADRUN_TEST_INHERITED"})).run().stdout_text,
            "from-parent");
  EXPECT_EQ(s.payload(child_payload("env", {"env", "PAYLOADRUN_TEST_INHERITED"}))
                .env_remove("PAYLOADRUN_TEST_INHERITED")
                .run()
                .stdout_text,
            "<unset>");
  EXPECT_EQ(s.payload(child_payload("env", {"env", "K"})).env("K", "V").run().stdout_text, "V");
  EXPECT_EQ(s.payload(child_payload("env", {"env-count"})).clear_env().env("ONLY", "1").run().stdout_text,
            "1");
  EXPECT_EQ(s.payload(child_payload("cwd", {"cwd"})).working_dir("/tmp").run().stdout_text, "/tmp");
  EXPECT_EQ(s.payload(child_payload("cat", {"cat"})).stdin_bytes("fed through stdin").run().stdout_text,
            "fed through stdin");
  // Default stdin is /dev/null: cat sees EOF at once.
  EXPECT_EQ(s.payload(child_payload("cat", {"cat"})).run().stdout_text, "");
  ::unsetenv("PAYLOADRUN_TEST_INHERITED");
}

TEST_F(SupervisorTest, EmbeddedLoopKeepsRunningTheHostsOwnWork) {
  Supervisor& s = sup();
  int ticks = 0;
  uv_timer_t timer;
  uv_timer_init(&loop_, &timer);
  timer.data = &ticks;
  uv_timer_start(&timer, [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 1, 1);
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    s.payload(child_payload("n", {"sleep", "50"})).spawn([&](Completion) {
      if (++done == 3) uv_timer_stop(&timer);
    });
  }
  uv_run(&loop_, UV_RUN_DEFAULT);  // the host drives its own loop
  EXPECT_EQ(done, 3);
  EXPECT_GT(ticks, 5);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);
}

// SupervisorOptions::reserve_fds, in a fresh helper process (a test
// binary's own fd table may have grown already) that has a second thread,
// as a host like Node.js has: the fd table holds the reservation from
// construction on, keeps it after the Supervisor is gone (the kernel never
// shrinks it), and nothing is left open. FDSize counts in powers of two.
// Empty when the helper cannot set the open-file limit it was given (a
// container's hard limit below it, without the right to raise it).
std::optional<std::vector<long>> fd_table_report(Supervisor& s, std::vector<std::string> args) {
  args.insert(args.begin(), "fd-table");
  auto c = s.payload(child_payload("fd-table", std::move(args))).run();
  if (c.metrics.exit_code == 77) return std::nullopt;
  EXPECT_EQ(c.metrics.exit_code, 0) << c.stdout_text << c.stderr_text;
  std::istringstream in(c.stdout_text);
  std::vector<long> v(5, -1);
  for (auto& x : v) in >> x;
  EXPECT_GE(v[3], 0) << c.stdout_text;
  return v;
}

TEST_F(SupervisorTest, TheFdTableIsGrownOnceAtConstructionToHoldReserveFds) {
  const auto report = fd_table_report(sup(), {"4096", "8192"});
  if (!report) GTEST_SKIP() << "the helper cannot set RLIMIT_NOFILE to 8192 here (hard limit, no privilege)";
  const auto& v = *report;
  EXPECT_LT(v[0], 4096) << "a fresh process already had the table: the test shows nothing";
  EXPECT_GE(v[1], 4096) << "the Supervisor did not grow the fd table";
  EXPECT_GE(v[2], 4096);
  EXPECT_EQ(v[4], v[3]) << "reserving left an fd open";
}

TEST_F(SupervisorTest, TheFdReservationStopsAtTheOpenFileLimitAndZeroTurnsItOff) {
  const auto report = fd_table_report(sup(), {"100000", "512"});
  ASSERT_TRUE(report) << "lowering RLIMIT_NOFILE to 512 cannot fail";
  const auto& capped = *report;
  EXPECT_LT(capped[0], 512);
  EXPECT_EQ(capped[1], 512) << "not grown to RLIMIT_NOFILE, or past it";
  EXPECT_EQ(capped[4], capped[3]);
  const auto off = fd_table_report(sup(), {"0", "512"});
  ASSERT_TRUE(off);
  EXPECT_EQ((*off)[1], (*off)[0]) << "reserve_fds = 0 still grew the table";
  EXPECT_EQ((*off)[4], (*off)[3]);
  const auto dflt = fd_table_report(sup(), {"default", "1024"});  // the option left as it is: 1,024
  if (!dflt) GTEST_SKIP() << "the helper cannot set RLIMIT_NOFILE to 1024 here";
  EXPECT_LT((*dflt)[0], 1024) << "a fresh process already had the table: the default shows nothing";
  EXPECT_GE((*dflt)[1], 1024);
}

}  // namespace
