// Fault injection into the ring producer, for tests only (not part of the
// public API). A test that uses it links the library's objects
// (tests/meson.build: `internal_dep`), since nothing here is exported from
// the shared library.
#pragma once

#include <functional>

#include "payloadrun/ring_producer.hpp"

namespace payloadrun::detail {

struct RingProducerAccess {
  /// `hook` runs between a record's reservation and its commit (a test may
  /// stop or kill the process there). An empty function removes it.
  static void set_after_reserve_hook(RingProducer& producer, std::function<void()> hook);
};

}  // namespace payloadrun::detail
