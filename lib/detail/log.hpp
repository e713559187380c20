// The library's logger: spdlog logger "payloadrun" (created on first use if
// the application has not registered one; level from SPDLOG_LEVEL).
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace payloadrun::detail {

std::shared_ptr<spdlog::logger> logger();

}  // namespace payloadrun::detail
