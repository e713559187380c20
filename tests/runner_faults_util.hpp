// Helpers for the runner fault suites (test_runner_faults.cpp,
// test_runner_faults_limits.cpp): this process's children, seen in /proc and
// reaped within a bound; the RunnerFaults fixture (a child subreaper; no
// child left at the end of a test); `payloadrun` forked with the fault set up
// before exec; a report parsed.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_modes.hpp"
#include "test_runner_util.hpp"

namespace runner_faults_test {

using namespace runner_test;
using namespace std::chrono_literals;

// Pids whose parent is this process (alive or zombie), from /proc.
inline std::vector<pid_t> own_children() {
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
inline bool reap_all() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  return payloadrun_test::no_children();
}

// Wait up to `bound` for every child to exit; then SIGKILL what is left
// (and fail). Returns how many had to be killed.
inline std::size_t settle_children(std::chrono::milliseconds bound) {
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
inline Launched launch(const Launch& l, const TempDir& dir, const std::string& tag = "p") {
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
inline int wait_for(pid_t pid, std::chrono::milliseconds bound = 20s) {
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

inline std::string quick_scenario(const TempDir& dir, int count = 4, const char* extra = "") {
  const std::string path = dir.file("s.json");
  write_file(path, std::string(R"({"concurrency": 4, "payloads": [{"name": "s", "binary": "sleep", "args": ["0.05"], "count": )") +
                       std::to_string(count) + "}" + extra + "]}");
  return path;
}

}  // namespace runner_faults_test
