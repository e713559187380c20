// The payloadrun::Error that a callable throws, for the cgroup suites
// (test_cgroup.cpp, test_cgroup_fs.cpp).
#pragma once

#include <gtest/gtest.h>

#include "payloadrun/error.hpp"

namespace payloadrun_test {

// The Error that `f` throws; a test failure (and an invalid_argument
// placeholder) when it throws none.
template <class F>
payloadrun::Error thrown(F&& f) {
  try {
    f();
  } catch (const payloadrun::Error& e) {
    return e;
  }
  ADD_FAILURE() << "no payloadrun::Error was thrown";
  return payloadrun::Error(payloadrun::Errc::io, "<none>");
}

}  // namespace payloadrun_test
