// Demo payload: schbench-like. Prints its banner nowhere and its JSON on
// stderr only (payloadrun falls back to stderr when stdout has no metric).
#include <cstdio>

#include "demo_args.hpp"

int main(int argc, char** argv) {
  demo::sleep_ms(demo::int_arg(argc, argv, "--runtime-ms", 100));
  const double j = demo::jitter();
  std::fprintf(stderr,
               "{\"wakeup_latency_us\": {\"p50\": %.0f, \"p99\": %.0f, \"p999\": %.0f},\n"
               " \"request_latency_us\": {\"p99\": %.0f},\n"
               " \"rps\": %.1f}\n",
               8 + 4 * j, 40 + 30 * j, 200 + 100 * j, 3000 + 500 * j, 950 + 100 * j);
  return 0;
}
