// payloadrun: symbol export macro.
#pragma once

#if defined(PAYLOADRUN_BUILDING_LIBRARY)
#define PAYLOADRUN_API __attribute__((visibility("default")))
#else
#define PAYLOADRUN_API
#endif
