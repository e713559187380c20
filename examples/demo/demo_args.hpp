// Tiny argument helper shared by the demo payloads: `--name=value` or
// `--name value`, integers only.
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>

namespace demo {

inline long int_arg(int argc, char** argv, const char* name, long fallback) {
  const std::size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], name, n) != 0) continue;
    if (argv[i][n] == '=') return std::strtol(argv[i] + n + 1, nullptr, 10);
    if (argv[i][n] == '\0' && i + 1 < argc) return std::strtol(argv[i + 1], nullptr, 10);
  }
  return fallback;
}

inline void sleep_ms(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

/// A small per-process pseudo-random value in [0, 1).
inline double jitter() {
  unsigned x = static_cast<unsigned>(::getpid()) * 2654435761u;
  x ^= x >> 13;
  return static_cast<double>(x % 1000) / 1000.0;
}

}  // namespace demo
