// Minimal JSON writing for ring bodies and sidecar lines: strings escaped
// (control characters as \u00XX, invalid UTF-8 replaced first), doubles in
// shortest round-trip form (non-finite values as the strings "NaN",
// "Infinity", "-Infinity").
#pragma once

#include <string>
#include <string_view>

#include "payloadrun/check.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun::detail {

void json_string(std::string& out, std::string_view s);
void json_double(std::string& out, double v);
void json_details(std::string& out, const AssertResult& result);
void json_metrics(std::string& out, const PayloadMetrics& metrics);

}  // namespace payloadrun::detail
