// Callback style with the supervisor's own loop: a handful of payloads, a
// deadline, a kill, and the verdicts.
#include <cstdio>

#include <payloadrun/payloadrun.hpp>

using namespace payloadrun;
using namespace std::chrono_literals;

int main() {
  Supervisor sup;  // owns its loop
  Payload ok = Payload::binary_payload("ok", "sh");
  ok.default_args = {"-c", "echo '{\"lat\": {\"p99\": 4.5}}'"};
  ok.output = output::Json{};
  ok.default_checks = {MetricCheck::max("lat.p99", 10)};

  Payload slow = Payload::binary_payload("slow", "sleep");
  slow.default_args = {"30"};

  int passed = 0, timed_out = 0;
  for (int i = 0; i < 3; ++i) {
    sup.payload(ok).spawn([&](Completion c) { passed += c.result.passed; });
  }
  sup.payload(slow).timeout(200ms).spawn([&](Completion c) { timed_out += c.metrics.timed_out; });
  PayloadHandle background = sup.payload(slow).spawn();
  background.kill_async();  // its group is SIGKILLed; the result stays in the handle
  sup.run();                // until every payload is done
  Completion killed = background.wait();

  std::printf("passed %d/3, timed out %d, killed exit code %d\n", passed, timed_out,
              killed.metrics.exit_code);
  return passed == 3 && timed_out == 1 && killed.metrics.exit_code == -1 ? 0 : 1;
}
