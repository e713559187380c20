// Demo payload: a fio-like workload. Runs for --runtime-ms, then prints a
// nested JSON document on stdout (jobs[].read.iops, clat percentiles, ...).
#include <cstdio>

#include "demo_args.hpp"

int main(int argc, char** argv) {
  const long runtime_ms = demo::int_arg(argc, argv, "--runtime-ms", 100);
  const long iops_base = demo::int_arg(argc, argv, "--iops", 12000);
  demo::sleep_ms(runtime_ms);
  const double j = demo::jitter();
  const double iops = static_cast<double>(iops_base) * (0.9 + 0.2 * j);
  std::printf(
      "{\n"
      "  \"fio version\": \"fio-3.33\",\n"
      "  \"jobs\": [\n"
      "    {\"jobname\": \"randread\", \"error\": 0,\n"
      "     \"read\": {\"iops\": %.2f, \"bw_bytes\": %.0f, \"runtime\": %ld,\n"
      "              \"clat_ns\": {\"mean\": %.1f, \"percentile\": {\"50.000000\": %.0f, \"99.000000\": %.0f}}},\n"
      "     \"write\": {\"iops\": 0, \"bw_bytes\": 0}}\n"
      "  ],\n"
      "  \"disk_util\": [{\"name\": \"demo0\", \"util\": %.1f}]\n"
      "}\n",
      iops, iops * 4096, runtime_ms, 1e9 / iops * 4, 1e9 / iops * 3, 1e9 / iops * 9, 60 + 30 * j);
  return 0;
}
