// The `payloadrun` program on bad input and under limits (issue 14, items 7
// and 8): inputs that are not small regular files, bad scenario contents
// named by their JSON path, out of memory, a low RLIMIT_NOFILE; a message
// and an exit status, never an abort. Every test ends with no child left
// (the RunnerFaults fixture, runner_faults_util.hpp).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "runner_faults_util.hpp"

using namespace runner_faults_test;  // and runner_test
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

namespace {

// ---- item 7: bounded input, never an abort ---------------------------------

TEST_F(RunnerFaults, InputsThatAreNotSmallRegularFilesAreNamed) {
  const std::string fifo = dir_.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string big = dir_.file("big.json");
  write_file(big, "{}");
  ASSERT_EQ(::truncate(big.c_str(), (64 << 20) + 1), 0);  // sparse: 64 MiB + 1
  const std::string s = quick_scenario(dir_, 2);
  ASSERT_EQ(run_program({"run", s, "--json", dir_.file("a.json"), "--quiet"}, 20s).status, 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"run", "/dev/zero"}, "/dev/zero: the scenario file is a character device, not a regular file"},
      {{"run", fifo}, fifo + ": the scenario file is a FIFO (named pipe), not a regular file"},
      {{"run", dir_.path()}, dir_.path() + ": the scenario file is a directory"},
      {{"run", big}, big + ": the scenario file is 67108865 bytes, more than the limit of 64 MiB"},
      {{"merge", dir_.file("o.json"), fifo}, fifo + ": the report is a FIFO"},
      {{"merge", dir_.file("o.json"), dir_.path()}, ": the report is a directory"},
      {{"merge", dir_.file("o.json"), big}, "more than the limit of 64 MiB"},
      {{"merge", dir_.file("o.json"), dir_.file("a.json"), "--sidecar", dir_.file("o.jsonl"), fifo},
       fifo + ": the sidecar is a FIFO"},
  };
  for (const auto& [args, message] : cases) {
    const ProgramResult r = run_program(args, 10s);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_LT(r.elapsed, 5000ms) << "blocked on " << ::testing::PrintToString(args);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.file("o.json")));
}

TEST_F(RunnerFaults, BadScenarioContentsAreErrorsNamingTheJsonPath) {
  const std::string s = dir_.file("s.json");
  const std::string marker = dir_.file("ran");
  const std::string touch = R"({"name": "touch", "binary": "touch", "args": [")" + marker + R"("]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"payloads": [)" + touch + R"(, {"name": "x", "binary": "true", "checks": [{"min": {"metric": "a", "value": 1, "value": 2}}]}]})",
       "payloads[1].checks[0].min: duplicate key \"value\""},
      {R"({"payloads": [)" + touch + R"(], "payloads": []})", "(top level): duplicate key \"payloads\""},
      {R"({"payloads": [)" + touch + R"(, {"name": "t", "binary": "true"}, {"name": "touch", "binary": "true"}]})",
       "payloads[2].name: \"touch\" is already the name of payloads[0]"},
      {R"({"payloads": [{"name": "a", "binary": "true", "count": 0}, {"name": "b", "binary": "true", "count": 0}]})",
       "payloads: every payload's count is 0: nothing to run"},
      {R"({"payloads": []})", "payloads: expected at least one payload"},
      {R"({"payloads": [)" + touch + R"(, {"name": "n", "binary": "echo", "args": ["ok", "abc\u0000def"]}]})",
       "payloads[1].args[1]: contains a NUL byte at offset 3"},
      {R"({"payloads": [)" + touch + R"(, {"name": "n", "binary": "true", "env": {"K": "v\u0000"}}]})",
       "payloads[1].env.K: contains a NUL byte at offset 1"},
      {R"({"payloads": [)" + touch + R"(, {"name": "n", "binary": "true", "env": {"K\u0000X": "v"}}]})",
       "payloads[1].env: a key contains a NUL byte at offset 1"},
      {R"({"payloads": [)" + touch + R"(, {"name": "d", "binary": "/tmp"}]})",
       "payloads[1].binary: '/tmp' is a directory"},
      {R"({"payloads": [)" + touch + R"(, {"name": "d", "binary": "true", "count": 1000000000000}]})",
       "payloads[1].count: expected an invocation count of at most 10000000"},
      {R"({"payloads": [)" + touch + R"(, {"name": "a", "binary": "true", "count": 6000000},
         {"name": "b", "binary": "true", "count": 6000000}]})",
       "payloads: the counts add up to 12000001 invocations, more than the limit of 10000000"},
  };
  for (const auto& [text, message] : cases) {
    write_file(s, text);
    const ProgramResult r = run_program({"run", s, "--json", dir_.file("r.json")}, 20s);
    EXPECT_EQ(r.status, 2) << text << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(s + ": " + message)) << text;
    EXPECT_EQ(r.err.find('\0'), std::string::npos) << "a NUL byte reached the message";
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a bad scenario ran a payload";
  EXPECT_FALSE(std::filesystem::exists(dir_.file("r.json")));
}

TEST_F(RunnerFaults, OutOfMemoryIsAMessageAndExit2NotAnAbort) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory cannot live under RLIMIT_AS";
#endif
  // A valid 40 MiB scenario of 4,000,000 arguments under a 750 MiB
  // address-space limit: simdjson parses it, building the argument vector
  // throws std::bad_alloc (or, on a leaner libc, simdjson itself reports
  // MEMALLOC). Either way: a message and exit 2, never an abort.
  const std::string s = dir_.file("s.json");
  std::string text = R"({"payloads": [{"name": "a", "binary": "true", "args": [)";
  for (int i = 0; i < 4'000'000; ++i) text += "\"123456\",";
  text += "\"x\"]}]}";
  write_file(s, text);
  const std::string exe = runner_exe(), err = dir_.file("err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    const rlimit as{750u << 20, 750u << 20};
    ::setrlimit(RLIMIT_AS, &as);
    ::execl(exe.c_str(), exe.c_str(), "run", s.c_str(), "--quiet", nullptr);
    ::_exit(127);
  }
  EXPECT_EQ(wait_for(pid), 2) << read_file(err);
  EXPECT_THAT(read_file(err), ::testing::AnyOf(HasSubstr("payloadrun: out of memory (std::bad_alloc)"),
                                               HasSubstr("Error allocating memory")));
}

// ---- item 8: RLIMIT_NOFILE -------------------------------------------------

TEST_F(RunnerFaults, LowFdLimitLowersTheConcurrencyWithOneWarning) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"payloads": [{"name": "p", "binary": "sleep", "args": ["0.02"], "count": 60}]})");
  Launch l{{"run", s, "--concurrency", "200", "--json", dir_.file("r.json")}};
  l.nofile = 64;
  const Launched run = launch(l, dir_);
  EXPECT_EQ(wait_for(run.pid), 0) << read_file(run.err_path);
  const std::string err = read_file(run.err_path);
  EXPECT_THAT(err, HasSubstr("warning: concurrency lowered from 200 to "));
  EXPECT_THAT(err, HasSubstr("RLIMIT_NOFILE is 64 (hard limit 64)"));
  std::size_t warnings = 0;
  for (std::size_t at = 0; (at = err.find("warning", at)) != std::string::npos; ++at) ++warnings;
  EXPECT_EQ(warnings, 1u) << err;
  EXPECT_THAT(err, Not(HasSubstr("EMFILE")));
  EXPECT_THAT(err, HasSubstr("60 of 60 invocations passed"));
  Json j(dir_.file("r.json"));
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE(j.flag("passed"));

  // A low soft limit under a high hard one is raised: no warning.
  Launch raised{{"run", s, "--concurrency", "200"}};
  raised.nofile_soft = 64;
  const Launched r2 = launch(raised, dir_, "raised");
  EXPECT_EQ(wait_for(r2.pid), 0);
  EXPECT_THAT(read_file(r2.err_path), Not(HasSubstr("warning")));
  EXPECT_THAT(read_file(r2.err_path), HasSubstr("concurrency 200"));
}

}  // namespace
