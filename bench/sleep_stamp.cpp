// A `sleep S` that says when it ended: sleeps S seconds (a decimal), then
// prints CLOCK_MONOTONIC in nanoseconds and exits 0. The concurrency
// benchmark runs it for every implementation, so the reap tail is measured
// from the last payload's real end, not estimated from when the last spawn
// call returned (which differs by each implementation's own bookkeeping
// after the child exec'd). libc only: it starts like `sleep`.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sleep_stamp SECONDS\n");
    return 2;
  }
  char* end = nullptr;
  const double s = std::strtod(argv[1], &end);
  if (end == argv[1] || *end != '\0' || !(s >= 0) || s > 86400) {
    std::fprintf(stderr, "sleep_stamp: '%s' is not a number of seconds (0..86400)\n", argv[1]);
    return 2;
  }
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(s);
  ts.tv_nsec = static_cast<long>((s - static_cast<double>(ts.tv_sec)) * 1e9);
  int rc;
  while ((rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts)) == EINTR) {
  }
  if (rc != 0) return 3;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  std::printf("%lld\n", static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
  return std::fflush(stdout) == 0 ? 0 : 4;
}
