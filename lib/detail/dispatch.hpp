// Exception barrier and lifetime pin for libuv callbacks.
#pragma once

#include <exception>
#include <memory>

#include "detail/log.hpp"

namespace payloadrun::detail {

template <class Body>
void dispatch(SupervisorImpl* impl, const char* where, Body&& body) noexcept {
  // The pin keeps the supervisor's state alive should the body destroy the
  // Supervisor (or drop the last handle that refers to it).
  std::shared_ptr<SupervisorImpl> pin = impl != nullptr ? impl->weak_from_this().lock() : nullptr;
  if (pin) ++pin->dispatch_depth;
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
  if (!pin) return;
  --pin->dispatch_depth;
  // The body destroyed the Supervisor and nothing of ours drives the loop:
  // the state goes here, inside a uv_run we did not start.
  if (pin.use_count() == 1) pin->loop_busy = pin->own_loop != nullptr;
}

}  // namespace payloadrun::detail
