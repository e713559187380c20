// Helpers for the durability suites (test_durability.cpp,
// test_durability_spill.cpp): the drain program started and stopped, scratch
// directories, sidecars checked for every invocation exactly once.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "test_ring_util.hpp"

namespace durability_test {

using namespace ring_test;
using namespace std::chrono_literals;

inline std::string drain_path() {
  if (const char* env = std::getenv("PAYLOADRUN_DRAIN")) return env;
  return "examples/payloadrun-drain";
}

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag) {
    path = "/tmp/payloadrun-dur-" + std::to_string(::getpid()) + "-" + tag;
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    ::umount2(path.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline pid_t start_drain(const std::vector<std::string>& args, const std::string& err_path) {
  const std::string exe = drain_path();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// Sidecar lines by payload_index; every line must be whole JSON.
inline std::map<std::uint64_t, int> sidecar_indexes(const std::string& path, std::size_t* bad_lines) {
  std::map<std::uint64_t, int> seen;
  std::ifstream f(path);
  simdjson::dom::parser parser;
  *bad_lines = 0;
  for (std::string line; std::getline(f, line);) {
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS) {
      ++*bad_lines;
      continue;
    }
    std::uint64_t index = 0;
    if (doc["payload_index"].get(index) != simdjson::SUCCESS) {
      ++*bad_lines;
      continue;
    }
    bool passed = false;
    if (doc["passed"].get(passed) != simdjson::SUCCESS) passed = false;
    EXPECT_TRUE(passed) << line;
    ++seen[index];
  }
  return seen;
}

inline void expect_exactly_once(const std::string& sidecar, std::uint64_t n) {
  std::size_t bad = 0;
  const auto seen = sidecar_indexes(sidecar, &bad);
  EXPECT_EQ(bad, 0u) << "torn or unparsable lines in " << sidecar;
  EXPECT_EQ(seen.size(), n) << "invocations missing";
  std::size_t dup = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto it = seen.find(i);
    if (it == seen.end()) {
      ADD_FAILURE() << "invocation " << i << " is missing";
      if (++dup > 5) break;
    } else if (it->second != 1) {
      ADD_FAILURE() << "invocation " << i << " appears " << it->second << " times";
      if (++dup > 5) break;
    }
  }
}

/// Stop a drain with SIGTERM once the ring is read; its exit status.
inline int stop_drain(pid_t drain) {
  ::kill(drain, SIGTERM);
  const int status = wait_child(drain, 60s);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// A ring and a scratch directory with a sidecar and the drains' stderr.
struct Rig {
  RingName ring;
  TempDir dir;
  std::string out = dir.path + "/sidecar.jsonl";
  std::string err = dir.path + "/drain.stderr";
  explicit Rig(const std::string& tag) : ring(tag), dir(tag) {}
};

/// Mounting needs CAP_SYS_ADMIN: without it a test skips; as root (CI) it
/// must not.
inline bool may_skip_mounts() { return ::geteuid() != 0; }

}  // namespace durability_test
