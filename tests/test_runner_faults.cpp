// The `payloadrun` program under real faults (issue 14, items 5 and 6): closed
// stdio, a vanished pipe reader, SIGKILL mid-run, aliased outputs, a full
// file system, an interrupt racing the last reap, results that reach neither
// the ring nor a spill (items 7 and 8, bad inputs and RLIMIT_NOFILE:
// test_runner_faults_limits.cpp). This process is a child subreaper, so
// payloads a dead payloadrun left are re-parented here, seen, and reaped;
// every test ends with no child left.
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "payloadrun/ring_producer.hpp"
#include "runner_faults_util.hpp"

using namespace runner_faults_test;  // and runner_test
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

namespace {

int run_launch(const Launch& l, const TempDir& dir) { return wait_for(launch(l, dir).pid); }

// ---- item 5: the runner survives its own terminal --------------------------

TEST_F(RunnerFaults, ClosedStdoutOrStderrKeepTheReportClean) {
  const std::string s = quick_scenario(dir_, 4, R"(, {"name": "bad", "binary": "false", "checks": [{"exit_code": 0}]})");
  for (auto [close_out, close_err] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    SCOPED_TRACE(::testing::Message() << "stdout closed " << close_out << ", stderr closed " << close_err);
    const std::string report = dir_.file("r.json"), xml = dir_.file("r.xml");
    Launch l{{"run", s, "--json", report, "--junit", xml}};
    l.close_stdout = close_out;
    l.close_stderr = close_err;
    EXPECT_EQ(run_launch(l, dir_), 1) << "one payload fails: exit 1, not an abort";
    Json j(report);
    ASSERT_TRUE(j.ok()) << j.error << "\n" << read_file(report);
    EXPECT_EQ(j.invocations().size(), 5u);
    const std::string text = read_file(report);
    EXPECT_EQ(text.front(), '{');
    for (const char* table : {"metric medians", "FAILED bad#0", "invocations passed", "[5/5]"}) {
      EXPECT_THAT(text, Not(HasSubstr(table)));
      EXPECT_THAT(read_file(xml), Not(HasSubstr(table)));
    }
    EXPECT_EQ(xml_parse_error(xml), "");
  }
}

TEST_F(RunnerFaults, VanishedPipeReaderIsNotFatalAndLeavesNoPayload) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"concurrency": 3, "payloads": [
    {"name": "slow", "binary": "sleep", "args": ["0.3"], "count": 6},
    {"name": "bad", "binary": "sh", "args": ["-c", "echo noise >&2; exit 3"], "checks": [{"exit_code": 0}], "count": 3}]})");
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);  // the reader is gone before the first write
  Launch l{{"run", s, "--json", dir_.file("r.json")}};
  l.stdio_fd = p[1];
  const Launched run = launch(l, dir_);
  ::close(p[1]);
  const int status = wait_for(run.pid);
  EXPECT_EQ(status, 1) << "exit 1 (a payload failed), not 128 + SIGPIPE (" << 128 + SIGPIPE << ")";
  EXPECT_TRUE(own_children().empty()) << "payloads outlived payloadrun";
  Json j(dir_.file("r.json"));
  ASSERT_TRUE(j.ok()) << j.error;
  EXPECT_EQ(j.invocations().size(), 9u);
  EXPECT_FALSE(j.flag("interrupted"));
}

TEST_F(RunnerFaults, SigkillMidRunLeavesTheOldReportOrAWholeOne) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"concurrency": 20, "payloads": [{"name": "p", "binary": "sleep", "args": ["0.02"], "count": 400}]})");
  const std::string report = dir_.file("r.json");
  const std::string previous = "{\"previous\": true}\n";
  std::mt19937 rng(14);
  int old_kept = 0, whole = 0;
  for (int trial = 0; trial < 8; ++trial) {
    write_file(report, previous);
    const Launched run = launch({{"run", s, "--json", report, "--quiet"}}, dir_);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 700)(rng)));
    ::kill(run.pid, SIGKILL);
    wait_for(run.pid);
    settle_children(5s);  // orphaned payloads end within 20 ms (item 4 kills them)
    const std::string text = read_file(report);
    if (text == previous) {
      ++old_kept;
      continue;
    }
    Json j(report);
    EXPECT_TRUE(j.ok()) << "trial " << trial << ": a torn report: " << j.error << "\n" << text.substr(0, 200);
    whole += j.ok();
  }
  EXPECT_EQ(old_kept + whole, 8);
  std::printf("SIGKILL trials: %d kept the previous report, %d left a whole new one\n", old_kept, whole);
}

// Issue 14 item 4, through the runner: `payloadrun run` SIGKILLed with 100
// live payloads leaves none running (this process is a subreaper: orphans
// come to it, and settle_children counts those it had to kill itself).
TEST_F(RunnerFaults, SigkillWithHundredLivePayloadsLeavesNoneRunning) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"concurrency": 100, "payloads": [{"name": "p", "binary": "sleep", "args": ["300"], "count": 100}]})");
  const Launched run = launch({{"run", s, "--quiet"}}, dir_);
  const auto children_of = [](pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::size_t n = 0;
    for (std::string w; f >> w;) ++n;
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (children_of(run.pid) < 100 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(children_of(run.pid), 100u) << "the runner did not start 100 payloads";
  ::kill(run.pid, SIGKILL);
  wait_for(run.pid);
  EXPECT_EQ(settle_children(5s), 0u) << "payloads outlived their SIGKILLed runner";
}

TEST_F(RunnerFaults, OutputsNamingTheScenarioOrEachOtherAreRefused) {
  const std::string marker = dir_.file("ran");
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"payloads": [{"name": "touch", "binary": "touch", "args": [")" + marker + R"("]}]})");
  const std::string original = read_file(s);
  std::filesystem::create_symlink(s, dir_.file("alias.json"));
  std::filesystem::create_directory(dir_.file("sub"));
  std::filesystem::create_directory_symlink(dir_.file("sub"), dir_.file("sublink"));
  const std::string cwd_relative = std::filesystem::relative(s).string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"run", s, "--json", s}, "--json " + s + " is the same file as the scenario file"},
      {{"run", s, "--junit", dir_.path() + "/./s.json"}, "another name for it"},
      {{"run", s, "--json", cwd_relative}, "the scenario file"},
      {{"run", s, "--json", dir_.file("alias.json")}, "the scenario file"},
      {{"run", s, "--json", dir_.file("x"), "--junit", dir_.file("x")}, "write two reports into one file"},
      {{"run", s, "--json", dir_.file("sub/x"), "--junit", dir_.file("sublink/x")}, "write two reports into one file"},
      {{"run", s, "--json", "/dev/full"}, "character device"},
      {{"run", s, "--json", dir_.file("sub")}, "is a directory"},
  };
  for (const auto& [args, message] : cases) {
    const ProgramResult r = run_program(args, 20s);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << ::testing::PrintToString(args);
  }
  EXPECT_EQ(read_file(s), original) << "the scenario was overwritten";
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a refused run started payloads";
  EXPECT_FALSE(std::filesystem::exists(dir_.file("x")));
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/full"));
}

// A tmpfs of 64 KiB, unmounted at scope exit; fill() leaves no byte free.
class FullFs {
 public:
  explicit FullFs(const std::string& where) : where_(where) {
    std::filesystem::create_directory(where_);
    mounted_ = ::mount("tmpfs", where_.c_str(), "tmpfs", 0, "size=64k") == 0;
  }
  ~FullFs() {
    if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  void fill() {
    const int fd = ::open((where_ + "/fill").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    const std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  }

 private:
  std::string where_;
  bool mounted_ = false;
};

TEST_F(RunnerFaults, FullFileSystemIsAClearErrorAndKeepsTheOldReport) {
  FullFs fs(dir_.file("full"));
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  const std::string s = quick_scenario(dir_, 40);
  const std::string report = dir_.file("full/r.json");
  write_file(report, "old\n");
  fs.fill();
  const ProgramResult r = run_program({"run", s, "--json", report, "--quiet"}, 20s);
  EXPECT_EQ(r.status, 74) << r.err;
  EXPECT_THAT(r.err, HasSubstr(report + ": writing the report failed: No space left on device"));
  EXPECT_EQ(read_file(report), "old\n");
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_.file("full"))) names.push_back(e.path().filename());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("fill", "r.json")) << "a temporary file was left";
}

TEST_F(RunnerFaults, MergeWithAFailingLaterOutputWritesNothing) {
  const std::string s = quick_scenario(dir_, 3);
  ASSERT_EQ(run_program({"run", s, "--json", dir_.file("a.json"), "--quiet"}, 20s).status, 0);
  const std::string out = dir_.file("out.json");
  // A usage-level failure of a later option: nothing written.
  ProgramResult r = run_program({"merge", out, dir_.file("a.json"), "--junit", dir_.file("nodir/x.xml")}, 20s);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << "a 0-byte OUT.json was left behind";
  write_file(out, "existing\n");
  r = run_program({"merge", out, dir_.file("a.json"), "--junit", dir_.file("nodir/x.xml")}, 20s);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(read_file(out), "existing\n");
  r = run_program({"merge", out, dir_.file("a.json"), "--junit", dir_.file("./a.json")}, 20s);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("--junit"));
  EXPECT_EQ(read_file(out), "existing\n");
  // The later output fails at write time (a full file system): OUT.json untouched.
  FullFs fs(dir_.file("full"));
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  fs.fill();
  r = run_program({"merge", out, dir_.file("a.json"), "--junit", dir_.file("full/x.xml")}, 20s);
  EXPECT_EQ(r.status, 74) << r.err;
  EXPECT_THAT(r.err, HasSubstr("x.xml: writing the report failed: No space left on device"));
  EXPECT_EQ(read_file(out), "existing\n");
  ::unlink(out.c_str());
  r = run_program({"merge", out, dir_.file("a.json"), "--junit", dir_.file("full/x.xml")}, 20s);
  EXPECT_EQ(r.status, 74);
  EXPECT_FALSE(std::filesystem::exists(out));
}

// ---- item 6: interrupted is not passed -------------------------------------

// Pids of the running payloads of `runner` (its children named `sleep`).
std::vector<pid_t> payloads_of(pid_t runner) {
  std::vector<pid_t> pids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string stat = read_file(e.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos || stat.find("(sleep)") == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == runner && state != 'Z') pids.push_back(std::stoi(e.path().filename().string()));
  }
  return pids;
}

TEST_F(RunnerFaults, InterruptRacingTheLastReapIsNeverLost) {
  for (int trial = 0; trial < 10; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    // Even trials: the payloads share payloadrun's group and one kill(-pgid)
    // signals all at once (scancel). Odd: own groups, payloadrun first.
    const bool shared = trial % 2 == 0;
    const std::string s = dir_.file("s.json");
    write_file(s, std::string(R"({"concurrency": 4, "payloads": [{"name": "p", "binary": "sleep", "args": ["30"],
      "count": 4, "uses_parent_pgrp": )") + (shared ? "true" : "false") + "}]}");
    const std::string report = dir_.file("r.json");
    ::unlink(report.c_str());
    Launch l{{"run", s, "--json", report, "--quiet"}};
    l.own_group = true;
    const Launched run = launch(l, dir_);
    const auto start = std::chrono::steady_clock::now();
    std::vector<pid_t> payloads;
    while ((payloads = payloads_of(run.pid)).size() < 4 && std::chrono::steady_clock::now() - start < 10s) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_EQ(payloads.size(), 4u);
    if (shared) {
      ::kill(-run.pid, SIGTERM);
    } else {
      ::kill(run.pid, SIGTERM);
      for (pid_t p : payloads) ::kill(-p, SIGTERM);
    }
    EXPECT_EQ(wait_for(run.pid), 130) << read_file(run.err_path);
    Json j(report);
    ASSERT_TRUE(j.ok()) << j.error;
    EXPECT_TRUE(j.flag("interrupted"));
    EXPECT_FALSE(j.flag("passed"));
    std::size_t interrupted = 0;
    for (auto inv : j.invocations()) {
      EXPECT_FALSE(inv["passed"].get_bool().value()) << simdjson::to_string(inv);
      for (auto d : Json::array(inv, "details")) interrupted += d["kind"].get_string().value() == "interrupted";
    }
    EXPECT_EQ(interrupted, 4u) << read_file(report);
    settle_children(5s);
  }
}

// Issue 17: scancel has Slurm signal a job's processes one by one, in no
// promised order: the payloads can die of SIGTERM and be reaped before
// payloadrun's own SIGTERM is even sent (1 in 8 trials of one kill(1) call
// naming the payloads first lost the run's interrupt). A payload ended by SIGTERM/SIGINT
// while payloadrun has none is held back (at most 250 ms) for it: the run
// is still interrupted, the payloads interrupted, not plain failures. A
// SIGTERM that never comes to payloadrun leaves them plain, and the run ends.
TEST_F(RunnerFaults, PayloadsSignalledBeforePayloadrunAreStillInterrupted) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"concurrency": 4, "payloads": [{"name": "p", "binary": "sleep", "args": ["30"], "count": 4}]})");
  const std::string report = dir_.file("r.json");
  for (int trial = 0; trial < 7; ++trial) {
    // Gaps between the payloads' SIGTERM and payloadrun's: none (one after
    // the other, as Slurm does), 20 ms, 100 ms; trial 6: payloadrun gets none.
    const int gap_ms = trial == 6 ? -1 : std::array{0, 20, 100}[trial % 3];
    SCOPED_TRACE(::testing::Message() << "trial " << trial << ", gap " << gap_ms << " ms");
    ::unlink(report.c_str());
    const Launched run = launch({{"run", s, "--json", report, "--quiet"}}, dir_);
    const auto start = std::chrono::steady_clock::now();
    std::vector<pid_t> payloads;
    while ((payloads = payloads_of(run.pid)).size() < 4 && std::chrono::steady_clock::now() - start < 10s) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_EQ(payloads.size(), 4u);
    for (pid_t p : payloads) ::kill(p, SIGTERM);
    const auto signalled = std::chrono::steady_clock::now();
    if (gap_ms >= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      ::kill(run.pid, SIGTERM);
    }
    const int status = wait_for(run.pid);
    const auto took = std::chrono::steady_clock::now() - signalled;
    Json j(report);
    ASSERT_TRUE(j.ok()) << j.error;
    std::size_t interrupted = 0;
    for (auto inv : j.invocations()) {
      for (auto d : Json::array(inv, "details")) interrupted += d["kind"].get_string().value() == "interrupted";
    }
    if (gap_ms >= 0) {
      EXPECT_EQ(status, 130) << read_file(run.err_path);
      EXPECT_TRUE(j.flag("interrupted"));
      EXPECT_EQ(interrupted, 4u) << read_file(report);
    } else {
      EXPECT_EQ(status, 0) << "no checks: a payload ended by a signal passes; " << read_file(run.err_path);
      EXPECT_FALSE(j.flag("interrupted"));
      EXPECT_EQ(interrupted, 0u);
      EXPECT_LT(took, 3s) << "the hold is bounded";
    }
    settle_children(5s);
  }
}

TEST_F(RunnerFaults, InterruptSummaryCountsCompletedInterruptedAndNeverStarted) {
  const std::string s = dir_.file("s.json");
  write_file(s, R"({"concurrency": 2, "payloads": [{"name": "quick", "binary": "true", "count": 1},
    {"name": "long", "binary": "sleep", "args": ["30"], "count": 5}]})");
  const Launched run = launch({{"run", s, "--json", dir_.file("r.json")}}, dir_);
  const auto start = std::chrono::steady_clock::now();
  while (payloads_of(run.pid).size() < 2 && std::chrono::steady_clock::now() - start < 10s) {
    std::this_thread::sleep_for(2ms);
  }
  ::kill(run.pid, SIGINT);
  EXPECT_EQ(wait_for(run.pid), 130);
  const std::string err = read_file(run.err_path);
  EXPECT_THAT(err, HasSubstr("interrupted by SIGINT: 1 of 6 invocations completed, 2 interrupted, 3 never started"));
  EXPECT_THAT(err, Not(HasSubstr("FAILED long"))) << "interrupted invocations are counted, not listed as failures";
  Json j(dir_.file("r.json"));
  ASSERT_TRUE(j.ok());
  std::size_t passed = 0;
  for (auto inv : j.invocations()) passed += inv["passed"].get_bool().value();
  EXPECT_EQ(passed, 1u) << "only the one that completed before the interrupt passed";
}

TEST_F(RunnerFaults, EmptyRingNameIsAUsageError) {
  const std::string s = quick_scenario(dir_);
  for (const auto& args : std::vector<std::vector<std::string>>{{"run", s, "--ring", ""}, {"run", s, "--ring="}}) {
    const ProgramResult r = run_program(args, 20s);
    EXPECT_EQ(r.status, 2);
    EXPECT_THAT(r.err, HasSubstr("--ring needs a ring name, got an empty one"));
  }
}

// Item 3 through the runner: the --ring stays full and its spill journal
// cannot be written (a private mount namespace whose 64 KiB /dev/shm holds a
// 4 KiB ring and is otherwise full): exit 4, saying how many results.
TEST_F(RunnerFaults, ResultsThatReachNeitherTheRingNorASpillExitFour) {
  const std::string s = quick_scenario(dir_, 40);
  const std::string err = dir_.file("exit4.err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k") != 0) {
      ::_exit(100);
    }
    try {
      payloadrun::RingOptions o;
      o.capacity = 4096;
      payloadrun::RingProducer ring("pr-exit4", o);  // created; stays after we close it
    } catch (...) {
      ::_exit(101);
    }
    {
      std::ofstream fill("/dev/shm/fill");
      fill << std::string(128 * 1024, 'x');  // until ENOSPC
    }
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    const std::string exe = runner_exe();
    ::execl(exe.c_str(), exe.c_str(), "run", s.c_str(), "--ring", "pr-exit4", "--quiet", nullptr);
    ::_exit(102);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL() << "payloadrun did not finish within 60 s";
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 100) << "as root a private mount namespace must be available";
  EXPECT_EQ(WEXITSTATUS(status), 4) << read_file(err);
  EXPECT_THAT(read_file(err), HasSubstr("of 40 results did not reach the ring 'pr-exit4'"));
}

}  // namespace
