// Helper-child behaviours for process tests: the test binary re-runs itself
// as `<self> --payloadrun-child MODE ARGS...` (see gtest_main.cpp).
#pragma once

#include <sys/wait.h>

#include <cerrno>

namespace payloadrun_test {

/// True when this process has no child at all, alive or zombie (of any
/// kind: __WALL). A zombie found is reaped, so one leftover fails one test,
/// not every test after it.
inline bool no_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | __WALL) != 0 && errno == ECHILD;
}

/// Run child mode argv[0] with its arguments; returns the exit status.
int run_child_mode(int argc, char** argv);

/// Absolute path of the running test binary (for spawning it as a child).
const char* self_exe();

}  // namespace payloadrun_test
