// The library's logger: spdlog logger "payloadrun" (created on first use if
// the application has not registered one, at the level spdlog's registry
// gives a new logger: spdlog::set_level, spdlog::cfg::load_env_levels()).
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace payloadrun::detail {

std::shared_ptr<spdlog::logger> logger();

}  // namespace payloadrun::detail
