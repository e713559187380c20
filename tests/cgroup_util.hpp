// Test cgroup parents on the real cgroup2 filesystem, for the suites that
// need one (test_cgroup, test_pdeathsig).
#pragma once

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "detail/cgroup.hpp"

namespace payloadrun_test {

/// PAYLOADRUN_REQUIRE_CGROUP=1 (CI): no usable cgroup2 fails the test
/// instead of skipping it.
inline bool cgroup_required() {
  const char* v = std::getenv("PAYLOADRUN_REQUIRE_CGROUP");
  return v != nullptr && std::string(v) == "1";
}

/// Fails (PAYLOADRUN_REQUIRE_CGROUP=1) or skips the test, saying `why`.
#define PAYLOADRUN_CGROUP_UNAVAILABLE(why)                                           \
  do {                                                                               \
    if (::payloadrun_test::cgroup_required()) FAIL() << (why) << " (PAYLOADRUN_REQUIRE_CGROUP=1)"; \
    GTEST_SKIP() << (why);                                                           \
  } while (0)

/// A fresh directory "<mount>/<stem>-<pid>-<n>" on the cgroup2 mount: `path`
/// is set, or it is empty and `why` says why there is none.
struct TestCgroupParent {
  std::string mount;
  std::string path;
  std::string why;
};

inline TestCgroupParent make_test_cgroup_parent(const std::string& stem) {
  TestCgroupParent out;
  const auto mount = payloadrun::detail::find_cgroup2_mount();
  if (!mount) {
    out.why = "no cgroup2 filesystem in /proc/self/mountinfo";
    return out;
  }
  out.mount = *mount;
  static int n = 0;
  const std::string path = out.mount + "/" + stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  if (::mkdir(path.c_str(), 0755) != 0) {
    out.why = "cgroup2 at " + out.mount + " is not writable: mkdir " + path + ": " + std::strerror(errno);
  } else {
    out.path = path;
  }
  return out;
}

/// rmdir `path` and every cgroup below it, deepest first (they must be
/// empty).
inline void remove_cgroup_tree(const std::string& path) {
  ::nftw(path.c_str(), [](const char* p, const struct stat*, int type, FTW*) {
    if (type == FTW_DP) ::rmdir(p);
    return 0;
  }, 32, FTW_DEPTH | FTW_PHYS);
}

}  // namespace payloadrun_test
