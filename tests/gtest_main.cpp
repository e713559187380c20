// Shared main for the test executables. A test binary started with
// "--payloadrun-child MODE ..." runs as a helper child instead of tests
// (see child_modes.hpp), as libuv's and libcamera's test runners do.
#include <gtest/gtest.h>

#include <cstring>

#include "child_modes.hpp"

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--payloadrun-child") == 0) {
    return payloadrun_test::run_child_mode(argc - 2, argv + 2);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
