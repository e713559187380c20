// The SHM ring under faults, with real shared memory and real processes: a
// producer killed or stopped between reserve and commit is skipped with a
// count (by next(), read() and a consumer that only polls), corrupt body and
// header bytes are detected and reported, a garbage ring never crashes the
// consumer; a bogus SPDLOG_LEVEL does not silence the drain program's
// warnings.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "detail/ring_layout.hpp"
#include "detail/ring_test_hooks.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"
#include "test_ring_util.hpp"

using namespace payloadrun;
using namespace ring_test;
using namespace std::chrono_literals;

namespace {

TEST(Ring, ProducerKilledBetweenReserveAndCommitIsSkippedWithACount) {
  RingName name("killed");
  RingConsumer consumer(name, {.capacity = 1 << 16});
  const pid_t victim = fork_reserving_producer(name, SIGSTOP);
  int status = 0;
  ASSERT_EQ(::waitpid(victim, &status, WUNTRACED), victim);
  ASSERT_TRUE(WIFSTOPPED(status));
  // While the victim lives, its reservation blocks the records behind it.
  const pid_t other = fork_child([&] {
    RingProducer p(name);
    for (int i = 0; i < 10; ++i) p.write(RecordType::metrics, 100 + static_cast<std::uint64_t>(i), "after");
    return p.flush_for(10s) ? 0 : 1;
  });
  EXPECT_TRUE(exited_ok(wait_child(other)));
  auto first = consumer.next(5s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "before");
  EXPECT_FALSE(consumer.next(50ms)) << "a live producer's reservation is waited for";
  ::kill(victim, SIGKILL);
  ::waitpid(victim, &status, 0);
  std::vector<std::uint64_t> after;
  while (auto m = consumer.next(200ms)) after.push_back(m->payload_index);
  EXPECT_EQ(after.size(), 10u);
  EXPECT_EQ(consumer.stats().abandoned, 1u);
  const auto reports = consumer.take_reports();
  ASSERT_FALSE(reports.empty());
  EXPECT_NE(reports[0].find("producer is gone"), std::string::npos) << reports[0];
}

TEST(Ring, StalledLiveProducerIsSkippedAfterTheAbandonTimeout) {
  RingName name("stalled");
  RingConsumer consumer(name, {.capacity = 1 << 16, .abandon_timeout = 200ms});
  const pid_t victim = fork_child([&] {
    RingProducer p(name);
    payloadrun::detail::RingProducerAccess::set_after_reserve_hook(p, [] { ::raise(SIGSTOP); });
    p.write(RecordType::metrics, 1, "stuck");
    return 0;
  });
  int status = 0;
  ASSERT_EQ(::waitpid(victim, &status, WUNTRACED), victim);
  {
    RingProducer p(name);
    p.write(RecordType::metrics, 2, "behind");
  }
  auto m = consumer.next(5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body, "behind");
  EXPECT_EQ(consumer.stats().abandoned, 1u);
  ::kill(victim, SIGKILL);
  ::waitpid(victim, &status, 0);
}

// Flip one byte of the mapped ring at data offset `off`.
void flip_byte(const std::string& name, std::size_t off) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, detail::ring_header_size + off + 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  static_cast<unsigned char*>(p)[detail::ring_header_size + off] ^= 0x20;
  ::munmap(p, detail::ring_header_size + off + 1);
  ::close(fd);
}

TEST(Ring, CorruptBodyAndHeaderBytesAreDetectedAndReported) {
  RingName name("corrupt");
  RingConsumer consumer(name, {.capacity = 1 << 16});
  {
    RingProducer p(name);
    for (int i = 0; i < 4; ++i) p.write(RecordType::metrics, static_cast<std::uint64_t>(i), std::string(100, 'a' + static_cast<char>(i)));
  }
  const std::size_t slot = detail::slot_size(100);
  flip_byte(name, slot + detail::record_header_size + 7);  // body of record 1
  flip_byte(name, 2 * slot + 20);                            // header (payload_index) of record 2
  std::vector<std::uint64_t> got;
  while (auto m = consumer.next(100ms)) got.push_back(m->payload_index);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 3}));
  EXPECT_EQ(consumer.stats().corrupt, 2u);
  const auto reports = consumer.take_reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_NE(reports[0].find("checksum"), std::string::npos) << reports[0];
  EXPECT_NE(reports[1].find("corrupt record header"), std::string::npos) << reports[1];
}

TEST(Ring, GarbageRingNeverCrashesTheConsumer) {
  RingName name("garbage");
  RingConsumer consumer(name, {.capacity = 1 << 12});
  {
    RingProducer p(name);
    for (int i = 0; i < 20; ++i) p.write(RecordType::metrics, static_cast<std::uint64_t>(i), std::string(50, 'z'));
    p.flush();
  }
  std::uint32_t x = 99;
  for (int round = 0; round < 200; ++round) {
    for (int k = 0; k < 8; ++k) {
      x = x * 1103515245 + 12345;
      flip_byte(name, x % 4096);
    }
    while (consumer.next(0ms)) {
    }
    RingProducer p(name);
    p.write(RecordType::metrics, 1, "fresh");
  }
  SUCCEED();
}

// A producer SIGKILLed between its reservation and its commit: read() (as
// next()) skips the reservation at once, counts it, and continues with the
// records reserved behind it; a corrupt body is never handed over in place.
TEST(Ring, ReadSkipsAKilledProducersReservationAndNeverHandsOverACorruptBody) {
  RingName name("inplace-killed");
  RingConsumer consumer(name, {.capacity = 1 << 16});
  const pid_t victim = fork_reserving_producer(name, SIGKILL);
  const int status = wait_child(victim);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  {
    RingProducer p(name);
    for (int i = 0; i < 4; ++i) p.write(RecordType::metrics, 100 + static_cast<std::uint64_t>(i), std::string(100, 'k'));
  }
  // The third of those four: flip a byte of its body.
  const std::size_t third = detail::slot_size(6) + detail::slot_size(15) + 2 * detail::slot_size(100);
  flip_byte(name, third + detail::record_header_size + 3);
  std::vector<std::uint64_t> got;
  const auto t0 = std::chrono::steady_clock::now();
  while (consumer.read(200ms, [&](const RingView& m) { got.push_back(m.payload_index); }) != 0) {
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 100, 101, 103}));
  EXPECT_EQ(consumer.stats().abandoned, 1u);
  EXPECT_EQ(consumer.stats().corrupt, 1u);
  EXPECT_LT(secs, 2.0) << "a dead producer's reservation is skipped without waiting for abandon_timeout";
}

// A consumer that only polls (next(0) again and again, as a drain loop with
// its own wait would): a killed producer's reservation is skipped all the
// same, once it has held the read position for the consumer's short poll.
TEST(Ring, PollingWithZeroTimeoutSkipsAKilledProducersReservation) {
  RingName name("poll-killed");
  RingConsumer consumer(name, {.capacity = 1 << 16});
  const int status = wait_child(fork_reserving_producer(name, SIGKILL));
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  RingProducer(name).write(RecordType::metrics, 7, "behind");
  std::vector<std::string> got;
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       got.size() < 2 && std::chrono::steady_clock::now() < deadline;) {
    if (auto m = consumer.next(0ms)) got.push_back(m->body);
    else std::this_thread::sleep_for(100us);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"before", "behind"}));
  EXPECT_EQ(consumer.stats().abandoned, 1u);
}

// Levels are the application's (issue 15): a bogus SPDLOG_LEVEL is ignored
// by spdlog::cfg::load_env_levels() in payloadrun-drain, so the library's
// warnings (here: a spill journal that is a directory) still reach stderr.
TEST(DrainProgram, BogusSpdlogLevelDoesNotSilenceTheLibrarysWarnings) {
  const char* drain = std::getenv("PAYLOADRUN_DRAIN");
  ASSERT_NE(drain, nullptr) << "PAYLOADRUN_DRAIN is set by meson";
  RingName ring("bogus-level");
  char dir_template[] = "/tmp/payloadrun-test-level-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string journal = dir + "/" + ring.name + ".spill.00000000000000000001.1.0";
  ASSERT_EQ(::mkdir(journal.c_str(), 0700), 0);
  const std::string out = dir + "/out.jsonl", err = dir + "/err.txt";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
    ::setenv("SPDLOG_LEVEL", "bogus", 1);
    ::execl(drain, drain, "--ring", ring.name.c_str(), "--out", out.c_str(), "--spill-dir", dir.c_str(),
            "--capacity", "65536", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  std::string text;
  for (const auto deadline = std::chrono::steady_clock::now() + 20s;
       text.find("[warning]") == std::string::npos && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
    std::ifstream in(err);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  ::kill(pid, SIGTERM);
  const int status = wait_child(pid, std::chrono::seconds(30));
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(text.find("[payloadrun] [warning]"), std::string::npos) << text;
  EXPECT_NE(text.find("cannot be read"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

}  // namespace
