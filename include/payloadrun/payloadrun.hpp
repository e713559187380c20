// payloadrun: umbrella header: the whole public API (supervising payloads,
// extraction and checks, and both sides of the result ring).
//
// Not included here: the optional adapters payloadrun/fmt.hpp (fmt
// formatters; needs fmt) and payloadrun/gtest.hpp (GoogleMock matchers;
// needs gmock). Include those yourself where you use them.
#pragma once

#include "payloadrun/check.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/export.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"
#include "payloadrun/ring.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "payloadrun/supervisor.hpp"
