// Logger lookup: the application's "payloadrun" logger, or one made here.
#include "detail/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace payloadrun::detail {

// Levels are the application's: a logger made here is initialized by spdlog's
// registry with the level configured for "payloadrun" or the global default
// (what spdlog::set_level and spdlog::cfg::load_env_levels() set); the
// library never sets one itself.
std::shared_ptr<spdlog::logger> logger() {
  if (auto existing = spdlog::get("payloadrun")) return existing;
  try {
    return spdlog::stderr_color_mt("payloadrun");
  } catch (const spdlog::spdlog_ex&) {
    // Another thread registered it first.
    if (auto existing = spdlog::get("payloadrun")) return existing;
    throw;
  }
}

}  // namespace payloadrun::detail
