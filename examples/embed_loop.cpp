// Embedding payloadrun in a program that already runs a libuv loop: the
// payloads run beside the host's own timer, all on one thread.
#include <uv.h>

#include <cstdio>

#include <payloadrun/payloadrun.hpp>

int main() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int failures = 0;
  {
    payloadrun::Supervisor supervisor(&loop);  // embeds; we keep running the loop
    payloadrun::Payload bench = payloadrun::Payload::binary_payload("bench", "sh");
    bench.output = payloadrun::output::Json{};
    bench.default_args = {"-c", R"(echo '{"jobs":[{"read":{"iops":1250}}]}')"};
    bench.metrics = {{"jobs.0.read.iops", payloadrun::Polarity::higher_better, "iops"}};
    bench.default_checks = {payloadrun::MetricCheck::exit_code_eq(0),
                            payloadrun::MetricCheck::min("jobs.0.read.iops", 1000)};
    for (int i = 0; i < 4; ++i) {
      supervisor.payload(bench).timeout(std::chrono::seconds(10)).spawn([&](payloadrun::Completion c) {
        std::printf("%s #%llu: %s, iops=%g\n", c.payload_name.c_str(),
                    static_cast<unsigned long long>(c.metrics.payload_index),
                    c.result.passed ? "passed" : "FAILED", c.metrics.get("jobs.0.read.iops").value_or(-1));
        failures += c.result.passed ? 0 : 1;
      });
    }
    uv_run(&loop, UV_RUN_DEFAULT);  // the host's own loop drives everything
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // let the supervisor's handles finish closing
  const int closed = uv_loop_close(&loop);
  std::printf("uv_loop_close: %d\n", closed);
  return failures == 0 && closed == 0 ? 0 : 1;
}
