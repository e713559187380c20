// payloadrun: symbol export macro.
#pragma once

#if defined(PAYLOADRUN_BUILDING_LIBRARY)
#define PAYLOADRUN_API __attribute__((visibility("default")))
#else
#define PAYLOADRUN_API
#endif

// Members of exported classes that only the library itself calls.
#if defined(PAYLOADRUN_BUILDING_LIBRARY)
#define PAYLOADRUN_INTERNAL __attribute__((visibility("hidden")))
#else
#define PAYLOADRUN_INTERNAL
#endif
