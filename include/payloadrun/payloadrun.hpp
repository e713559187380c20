// payloadrun: umbrella header.
#pragma once

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/metrics.hpp"
#include "payloadrun/payload.hpp"
#include "payloadrun/supervisor.hpp"
