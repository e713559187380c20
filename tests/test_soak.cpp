// Soak (suite "slow"): 20,000 payloads, one at a time and many at once, on
// one supervisor. Every invocation completes with its own metric, and the
// process's resident memory and open fd count after the soak equal those
// before it within a small bound (printed).
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=4"; }
#endif

namespace {

#if defined(__SANITIZE_ADDRESS__)
// ASan's quarantine holds freed memory back (256 MiB by default) and RSS
// would grow until it is full: this binary keeps a small one instead
// (__asan_default_options, below the namespace).
constexpr long rss_bound_kib = 24 * 1024;
#else
constexpr long rss_bound_kib = 8 * 1024;
#endif

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

class Soak : public ProcessTest {
 protected:
  /// `count` invocations, at most `in_flight` at once, each printing
  /// {"i": N}; returns how many completed with exit 0 and metric i == N.
  int batch(Supervisor& s, int first, int count, int in_flight) {
    int next = first, ok = 0, running = 0;
    const int end = first + count;
    std::function<void()> refill = [&] {
      while (running < in_flight && next < end) {
        const int i = next++;
        ++running;
        s.payload(echo_).arg("{\"i\": " + std::to_string(i) + "}").spawn([&, i](Completion c) {
          --running;
          ok += c.metrics.exit_code == 0 && c.metrics.get("i") == i && c.result.passed;
          refill();
        });
      }
    };
    refill();
    s.run();
    return ok;
  }

  // /bin/echo: a tiny exec, so the soak measures the supervisor, not the
  // child's start-up. No shell: the JSON is one argv element.
  Payload echo_ = [] {
    Payload p = Payload::binary_payload("echo", "echo");
    p.output = output::Json{};
    p.default_checks = {MetricCheck::exists("i")};
    return p;
  }();
};

TEST_F(Soak, TwentyThousandPayloadsLeaveMemoryAndFdsWhereTheyWere) {
  Supervisor& s = sup({}, 600s);
  // Warm up: allocator arenas, the logger, libuv's lazily created handles.
  ASSERT_EQ(batch(s, 0, 500, 64), 500);
  const long rss_before = rss_kib();
  const int fds_before = count_fds();

  constexpr int rounds = 4;
  constexpr int sequential = 1000;  // one at a time
  constexpr int concurrent = 4000;  // 256 in flight
  int ok = 0, first = 500;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r) {
    ok += batch(s, first, sequential, 1);
    first += sequential;
    ok += batch(s, first, concurrent, 256);
    first += concurrent;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long rss_after = rss_kib();
  const int fds_after = count_fds();
  constexpr int total = rounds * (sequential + concurrent);
  std::printf("soak: %d payloads in %.1f s (%.0f/s); RSS %ld KiB -> %ld KiB (%+ld KiB, bound %ld); "
              "fds %d -> %d\n",
              total, secs, total / secs, rss_before, rss_after, rss_after - rss_before, rss_bound_kib,
              fds_before, fds_after);
  EXPECT_EQ(ok, total) << "every invocation completes with its own metric";
  EXPECT_EQ(s.live(), 0u);
  EXPECT_EQ(fds_after, fds_before) << "file descriptors leaked";
  EXPECT_LE(rss_after - rss_before, rss_bound_kib) << "resident memory grew";
}

}  // namespace
