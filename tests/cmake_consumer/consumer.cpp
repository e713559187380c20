// A consumer of the installed payloadrun, built by the install test
// (tests/install_check.sh) twice: from pkg-config's flags and with CMake.
#include <payloadrun/payloadrun.hpp>

#include <cstdio>

int main() {
  payloadrun::Supervisor supervisor;
  payloadrun::Completion c =
      supervisor.payload(payloadrun::Payload::binary_payload("true", "/bin/true")).run();
  if (c.metrics.exit_code != 0 || c.metrics.timed_out || !c.result.passed) {
    std::fprintf(stderr, "consumer: /bin/true gave exit code %d (timed out %d, passed %d)\n",
                 c.metrics.exit_code, int(c.metrics.timed_out), int(c.result.passed));
    return 1;
  }
  std::puts("ok");
  return 0;
}
