// Helper-child behaviours for process tests: the test binary re-runs itself
// as `<self> --payloadrun-child MODE ARGS...` (see gtest_main.cpp).
#pragma once

namespace payloadrun_test {

/// Run child mode argv[0] with its arguments; returns the exit status.
int run_child_mode(int argc, char** argv);

/// Absolute path of the running test binary (for spawning it as a child).
const char* self_exe();

}  // namespace payloadrun_test
