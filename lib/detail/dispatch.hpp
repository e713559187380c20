// Exception barrier for libuv callbacks.
#pragma once

#include <exception>

#include "detail/log.hpp"

namespace payloadrun::detail {

template <class Body>
void dispatch(Supervisor::Impl* impl, const char* where, Body&& body) noexcept {
  if (impl != nullptr) ++impl->dispatch_depth;
  try {
    body();
  } catch (const std::exception& e) {
    try {
      logger()->error("{}: unexpected exception: {}", where, e.what());
    } catch (...) {
    }
  } catch (...) {
    try {
      logger()->error("{}: unexpected non-standard exception", where);
    } catch (...) {
    }
  }
  if (impl != nullptr) --impl->dispatch_depth;
}

}  // namespace payloadrun::detail
