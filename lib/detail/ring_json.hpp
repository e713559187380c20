// JSON of ring bodies and sidecar lines: the details and metrics arrays,
// written with the one writer (json_write.hpp, docs/json.md).
#pragma once

#include <string>
#include <string_view>

#include "detail/json_write.hpp"
#include "payloadrun/check.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun::detail {

void json_details(std::string& out, const AssertResult& result);
void json_metrics(std::string& out, const PayloadMetrics& metrics);

}  // namespace payloadrun::detail
