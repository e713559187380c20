// payloadrun: the shared-memory result ring, both sides (format:
// docs/ring-format.md).
//
// Kept for existing users: it only includes payloadrun/ring_producer.hpp
// (RingOptions, RingProducer, RingEmitter), payloadrun/ring_consumer.hpp
// (RingConsumer, record decoding) and payloadrun/drain.hpp (Drain). New code
// includes the one it needs.
#pragma once

#include "payloadrun/drain.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
