// Fault injection with real processes: fd exhaustion mid-batch, a payload
// writing 1 GiB, a signal storm during a batch, the supervisor destroyed
// with many live payloads. Each asserts a clear error or a correct result,
// no zombie and no leaked fd (the fixture's TearDown).
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int many = 200;  // sanitized children are heavy
#else
constexpr int many = 1000;
#endif

class Faults : public ProcessTest {};

TEST_F(Faults, FdExhaustionMidBatchFailsSomeSpawnsClearlyAndTheRestComplete) {
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(count_fds() + 40);  // room for ~10 payloads
  Supervisor& s = sup();
  // Warm up: one spawn error before the limit, so runtimes that need an fd
  // to check a type the first time (UBSan's vptr check) have done so.
  EXPECT_THROW(s.payload(Payload::binary_payload("none", "/nonexistent/x")).spawn(), Error);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  int spawned = 0, refused = 0, completed = 0;
  std::string message;
  for (int i = 0; i < 40; ++i) {
    try {
      s.payload(child_payload("fd", {"sleep", "200"})).spawn([&](Completion c) {
        completed += c.metrics.exit_code == 0;
      });
      ++spawned;
    } catch (const Error& e) {
      ++refused;
      EXPECT_EQ(e.code(), Errc::spawn_failed);
      EXPECT_EQ(e.sys_errno(), EMFILE);
      message = e.what();
    }
  }
  s.run();
  ::setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_GT(spawned, 0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(completed, spawned);
  EXPECT_THAT(message, HasSubstr("RLIMIT_NOFILE"));
  // TearDown: the fd count is back where it started.
}

TEST_F(Faults, PayloadWritingOneGibIsDrainedAndCapped) {
  auto c = sup().payload(child_payload("gib", {"write-bytes", std::to_string(1ll << 30)})).run();
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_TRUE(c.metrics.stdout_truncated);
  EXPECT_EQ(c.stdout_text.size(), 16u << 20);
}

volatile sig_atomic_t alarms = 0;

TEST_F(Faults, SignalStormDuringABatch) {
  struct sigaction sa {};
  sa.sa_handler = [](int) { alarms = alarms + 1; };
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: system calls see EINTR
  struct sigaction old {};
  ::sigaction(SIGALRM, &sa, &old);
  itimerval every_100us{{0, 100}, {0, 100}};
  ::setitimer(ITIMER_REAL, &every_100us, nullptr);
  Supervisor& s = sup();
  std::vector<int> codes(100, -2);
  for (int i = 0; i < 100; ++i) {
    Payload p = child_payload("storm", {"print", "{\"i\": " + std::to_string(i) + "}", "", std::to_string(i % 7)},
                              output::Json{});
    s.payload(p).spawn([&, i](Completion c) {
      codes[static_cast<std::size_t>(i)] =
          c.metrics.get("i") == i ? c.metrics.exit_code : -3;
    });
  }
  s.run();
  itimerval off{};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old, nullptr);
  EXPECT_GT(alarms, 100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(codes[static_cast<std::size_t>(i)], i % 7) << i;
}

TEST_F(Faults, SupervisorDestroyedWithManyLivePayloads) {
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  rlimit lim = saved;
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 16384);
  ::setrlimit(RLIMIT_NOFILE, &lim);
  const int n = lim.rlim_cur >= 8192 ? many : 200;
  Supervisor& s = sup({}, 240s);
  for (int i = 0; i < n; ++i) s.payload(child_payload("live", {"sleep", "60000"})).spawn([](Completion) {});
  EXPECT_EQ(s.live(), static_cast<std::size_t>(n));
  sup_.reset();  // kills and reaps every one
  ::setrlimit(RLIMIT_NOFILE, &saved);
  // TearDown: the loop closes with 0, no child is left, no fd leaked.
}

}  // namespace
