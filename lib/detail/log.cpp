// Logger lookup: the application's "payloadrun" logger, or one made here.
#include "detail/log.hpp"

#include <cstdlib>
#include <string_view>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace payloadrun::detail {
namespace {

// SPDLOG_LEVEL is "level" or a comma list of "logger=level" and "level".
spdlog::level::level_enum level_from_env() {
  const char* env = std::getenv("SPDLOG_LEVEL");
  spdlog::level::level_enum level = spdlog::level::warn;
  if (env == nullptr) return level;
  std::string_view rest(env);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      level = spdlog::level::from_str(std::string(item));
    } else if (item.substr(0, eq) == "payloadrun") {
      return spdlog::level::from_str(std::string(item.substr(eq + 1)));
    }
  }
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger() {
  if (auto existing = spdlog::get("payloadrun")) return existing;
  try {
    auto made = spdlog::stderr_color_mt("payloadrun");
    made->set_level(level_from_env());
    return made;
  } catch (const spdlog::spdlog_ex&) {
    // Another thread registered it first.
    if (auto existing = spdlog::get("payloadrun")) return existing;
    throw;
  }
}

}  // namespace payloadrun::detail
