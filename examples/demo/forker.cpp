// Demo payload: forks --workers children that outlive it (they sleep for a
// minute, holding stdout/stderr open), prints a JSON summary and exits.
// payloadrun kills the whole process group before reaping the leader, so
// the workers die with it and the pipes reach EOF at once.
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "demo_args.hpp"

int main(int argc, char** argv) {
  const long workers = demo::int_arg(argc, argv, "--workers", 3);
  long started = 0;
  for (long i = 0; i < workers; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::sleep(60);  // outlives the leader
      ::_exit(0);
    }
    started += pid > 0;
  }
  demo::sleep_ms(demo::int_arg(argc, argv, "--runtime-ms", 50));
  std::printf("{\"workers\": {\"started\": %ld}}\n", started);
  return started == workers ? 0 : 1;
}
