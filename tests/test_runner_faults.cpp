// The `payloadrun` program under real faults (issue 14, items 5-8): closed
// stdio, a vanished pipe reader, SIGKILL mid-run, aliased outputs, a full
// file system, bad inputs, an interrupt racing the last reap, RLIMIT_NOFILE.
// This process is a child subreaper, so payloads a dead payloadrun left are
// re-parented here, seen, and reaped; every test ends with no child left.
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "child_modes.hpp"
#include "payloadrun/ring_producer.hpp"
#include "test_runner_util.hpp"

using namespace runner_test;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

namespace {

// Pids whose parent is this process (alive or zombie), from /proc.
std::vector<pid_t> own_children() {
  std::vector<pid_t> kids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(e.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) kids.push_back(std::stoi(name));
  }
  return kids;
}

// Reap every child that has exited; true when none is left.
bool reap_all() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  return payloadrun_test::no_children();
}

// Wait up to `bound` for every child to exit; then SIGKILL what is left
// (and fail). Returns how many had to be killed.
std::size_t settle_children(std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!reap_all()) {
    if (std::chrono::steady_clock::now() > deadline) {
      const auto left = own_children();
      for (pid_t p : left) ::kill(p, SIGKILL);
      while (::waitpid(-1, nullptr, 0) > 0) {
      }
      return left.size();
    }
    std::this_thread::sleep_for(5ms);
  }
  return 0;
}

class RunnerFaults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  void TearDown() override {
    EXPECT_EQ(settle_children(10s), 0u) << "children were left running at the end of the test";
  }
  TempDir dir_;
};

struct Launch {
  std::vector<std::string> args;
  bool close_stdout = false;
  bool close_stderr = false;
  int stdio_fd = -1;       ///< onto fds 1 and 2 (a pipe's write end)
  rlim_t nofile = 0;       ///< RLIMIT_NOFILE soft and hard, if non-zero
  rlim_t nofile_soft = 0;  ///< soft only (hard kept), if non-zero
  bool own_group = false;
};

struct Launched {
  pid_t pid = -1;
  std::string out_path, err_path;
};

// fork + exec `payloadrun`, with the fault set up in the child before exec.
Launched launch(const Launch& l, const TempDir& dir, const std::string& tag = "p") {
  Launched r{-1, dir.file(tag + ".out"), dir.file(tag + ".err")};
  std::vector<std::string> argv_s = {runner_exe()};
  argv_s.insert(argv_s.end(), l.args.begin(), l.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out = ::open(r.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(r.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  r.pid = ::fork();
  if (r.pid == 0) {
    if (l.own_group) ::setpgid(0, 0);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(l.stdio_fd >= 0 ? l.stdio_fd : out, 1);
    ::dup2(l.stdio_fd >= 0 ? l.stdio_fd : err, 2);
    if (l.close_stdout) ::close(1);
    if (l.close_stderr) ::close(2);
    if (l.nofile != 0) {
      const rlimit lim{l.nofile, l.nofile};
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(126);
    }
    if (l.nofile_soft != 0) {
      rlimit lim{};
      ::getrlimit(RLIMIT_NOFILE, &lim);
      lim.rlim_cur = l.nofile_soft;
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
  EXPECT_GT(r.pid, 0);
  return r;
}

// Exit status, 128 + signal when killed by one; kills it past `bound`.
int wait_for(pid_t pid, std::chrono::milliseconds bound = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "payloadrun ran longer than " << bound.count() << " ms; killing it";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_launch(const Launch& l, const TempDir& dir) { return wait_for(launch(l, dir).pid); }

// A report file: parsed, or the parse error.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string error;
  explicit Json(const std::string& path) {
    if (auto e = parser.load(path).get(root)) error = simdjson::error_message(e);
  }
  bool ok() const { return error.empty(); }
  bool flag(const char* key) { return root[key].get_bool().value(); }
  simdjson::dom::array invocations() { return array(root, "invocations"); }
  // By value: range-for over a temporary simdjson_result's value() dangles.
  static simdjson::dom::array array(simdjson::dom::element e, const char* key) {
    simdjson::dom::array a;
    if (e[key].get(a) != simdjson::SUCCESS) ADD_FAILURE() << "no array " << key;
    return a;
  }
};

std::string quick_scenario(const TempDir& dir, int count = 4, const char* extra = "") {
  const std::string path = dir.file("s.json");
  write_file(path, std::string(R"({"concurrency": 4, "payloads": [{"name": "s", "binary": "sleep", "args": ["0.05"], "count": )") +
                       std::to_string(count) + "}" + extra + "]}");
  return path;
}

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
