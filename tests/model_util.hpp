// Non-finite doubles for the data-model suites (test_model.cpp,
// test_format_value.cpp).
#pragma once

#include <limits>

namespace model_test {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

}  // namespace model_test
