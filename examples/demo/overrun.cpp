// Demo payload: overruns any reasonable deadline (sleeps --sleep-ms,
// default a minute) after printing partial progress.
#include <cstdio>

#include "demo_args.hpp"

int main(int argc, char** argv) {
  std::printf("{\"progress\": {\"step\": 1}}\n");
  std::fflush(stdout);
  demo::sleep_ms(demo::int_arg(argc, argv, "--sleep-ms", 60000));
  std::printf("{\"progress\": {\"step\": 2}}\n");
  return 0;
}
