// Error codes' names and the out-of-line pieces of small public types.
#include "payloadrun/emitter.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun {

const char* to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::scheduler_kind: return "scheduler_kind";
    case Errc::forbidden_check: return "forbidden_check";
    case Errc::not_found: return "not_found";
    case Errc::spawn_failed: return "spawn_failed";
    case Errc::cgroup: return "cgroup";
    case Errc::already_consumed: return "already_consumed";
    case Errc::in_callback: return "in_callback";
    case Errc::io: return "io";
    case Errc::ring: return "ring";
    case Errc::shut_down: return "shut_down";
  }
  return "unknown";
}

namespace {

class ErrcCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "payloadrun"; }
  std::string message(int value) const override {
    return value >= 1 && value <= static_cast<int>(Errc::shut_down) + 1
               ? to_string(static_cast<Errc>(value - 1))
               : "unknown payloadrun error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const ErrcCategory category;
  return category;
}

Emitter::~Emitter() = default;

}  // namespace payloadrun
