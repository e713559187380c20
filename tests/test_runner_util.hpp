// Helpers for the runner tests: run the `payloadrun` program with bounded
// waits, temp directories, reading files.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace runner_test {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}
/// Set by meson (tests/meson.build).
inline std::string runner_exe() { return env_or("PAYLOADRUN_EXE", "examples/payloadrun"); }
inline std::string demo_dir() { return env_or("PAYLOADRUN_DEMO_DIR", "examples/demo"); }
/// examples/ in the source tree (the K8s and Slurm examples).
inline std::string examples_source_dir() { return env_or("PAYLOADRUN_EXAMPLES_DIR", "../examples"); }
inline std::string drain_exe() { return env_or("PAYLOADRUN_DRAIN", "examples/payloadrun-drain"); }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

/// A fresh directory, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "payloadrun-runner-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ProgramResult {
  int status = -1;  ///< exit status, or -1 when killed
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

/// Variables that select a shard (shard.hpp): never inherited by the
/// programs the tests run, so a test run inside a batch job is unaffected.
inline bool is_shard_variable(std::string_view entry) {
  for (std::string_view name : {"JOB_COMPLETION_INDEX=", "PAYLOADRUN_SHARD_COUNT=", "SLURM_ARRAY_TASK_ID=",
                                "SLURM_ARRAY_TASK_COUNT=", "SLURM_ARRAY_TASK_MIN=", "TEST_SHARD_INDEX=",
                                "TEST_TOTAL_SHARDS=", "TEST_SHARD_STATUS_FILE="}) {
    if (entry.starts_with(name)) return true;
  }
  return false;
}

/// Run `argv` (argv[0] a path), stdout/stderr to files (not a terminal),
/// with our environment minus the shard variables plus `env` ("NAME=value").
/// Bounded: after `bound` it gets SIGTERM (the runner kills its payloads),
/// then SIGKILL, and the test fails.
inline ProgramResult run_process(const std::vector<std::string>& argv_s,
                                 std::chrono::seconds bound = std::chrono::seconds(120),
                                 const std::vector<std::string>& env = {}) {
  TempDir dir;
  const std::string out_path = dir.file("stdout"), err_path = dir.file("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = argv_s;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!is_shard_variable(*e)) env_s.emplace_back(*e);
  }
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ProgramResult r;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    return r;
  }
  int status = 0;
  bool termed = false;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    const auto waited = std::chrono::steady_clock::now() - start;
    if (!termed && waited > bound) {
      ADD_FAILURE() << argv_s[0] << " ran longer than " << bound.count() << " s; terminating it";
      ::kill(pid, SIGTERM);
      termed = true;
    } else if (termed && waited > bound + std::chrono::seconds(10)) {
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

/// Run the `payloadrun` program with `args` (see run_process).
inline ProgramResult run_program(const std::vector<std::string>& args,
                                 std::chrono::seconds bound = std::chrono::seconds(120),
                                 const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {runner_exe()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, bound, env);
}

/// Parse `path` with python3's XML parser; empty string when well-formed.
inline std::string xml_parse_error(const std::string& path) {
  const std::string cmd = "python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' '" + path +
                          "' 2>&1";
  std::string output;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
  const int status = ::pclose(p);
  if (status != 0 && output.empty()) output = "python3 exited with " + std::to_string(status);
  return status == 0 ? std::string() : output;
}

}  // namespace runner_test
