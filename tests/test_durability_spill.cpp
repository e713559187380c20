// Nothing lost on the producer's side (issue 14): producers with no
// consumer spill to journals that a drain imports exactly once, even when
// SIGKILLed while importing; a spill that cannot be written is counted
// undelivered; a journal that cannot be read is left in place; a ring that
// does not fit in /dev/shm is an error at creation, never a SIGBUS.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "durability_util.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"

using namespace payloadrun;
using namespace ring_test;
using namespace durability_test;
using namespace std::chrono_literals;

namespace {

bool spill_files_left(const std::string& dir, const std::string& ring) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(ring + ".spill.")) return true;
  }
  return false;
}

// A RingEmitter on a loop, no consumer: after stall_timeout its records go to
// a spill journal; what is still queued when it closes is spilled too.
int emit_without_consumer(const std::string& ring, std::uint64_t n, const std::string& spill_dir,
                          std::uint64_t* undelivered) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  RingOptions o;
  o.capacity = 4096;
  o.stall_timeout = 300ms;
  o.spill_dir = spill_dir;
  {
    RingEmitter e(&loop, ring, o);
    for (std::uint64_t i = 0; i < n / 2; ++i) {
      Completion c;
      c.payload_name = "plain";
      c.metrics.payload_index = i;
      c.result = AssertResult::pass();
      e.emit_metrics(c);
    }
    uv_run(&loop, UV_RUN_DEFAULT);  // the retry timer runs until the stall spills (or fails to)
    for (std::uint64_t i = n / 2; i < n; ++i) {
      RawPayloadOutput r;
      r.payload_index = i;
      r.payload_name = "deferred";
      r.stdout_text = "{\"tput\": 1}";
      r.metric_hints = {{"tput", Polarity::higher_better, "MB/s"}};
      e.emit_raw(r);
      Completion c;
      c.payload_name = "deferred";
      c.metrics.payload_index = i;
      c.result = AssertResult::pass();
      e.emit_metrics(c);
    }
    *undelivered = e.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  return uv_loop_close(&loop) == 0 ? 0 : 6;
}

TEST(Durability, ProducerWithoutConsumerSpillsAndTheDrainImportsExactlyOnce) {
  Rig rig("spill");
  const std::string& ring = rig.ring;
  const std::string spill = rig.dir.path + "/spill";
  std::filesystem::create_directories(spill);
  constexpr std::uint64_t n = 200;
  const pid_t producer = fork_child([&] {
    std::uint64_t undelivered = 99;
    const int rc = emit_without_consumer(ring, n, spill, &undelivered);
    return rc != 0 ? rc : undelivered == 0 ? 0 : 7;
  });
  ASSERT_TRUE(exited_ok(wait_child(producer, 60s)));
  ASSERT_TRUE(spill_files_left(spill, ring)) << "nothing was spilled";
  const std::string& out = rig.out;
  const std::string& err = rig.err;
  // A drain SIGKILLed right after it started importing: the next one still
  // writes every invocation once.
  const pid_t first = start_drain({"--ring", ring, "--out", out, "--spill-dir", spill}, err);
  std::this_thread::sleep_for(30ms);
  ::kill(first, SIGKILL);
  ::waitpid(first, nullptr, 0);
  const pid_t drain = start_drain({"--ring", ring, "--out", out, "--spill-dir", spill}, err);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(stop_drain(drain), 0) << slurp(err);
  expect_exactly_once(out, n);
  EXPECT_FALSE(spill_files_left(spill, ring)) << "imported spill journals are removed";
  EXPECT_NE(slurp(err).find("from spill journals"), std::string::npos);
}

TEST(Durability, ASpillThatCannotBeWrittenIsCountedUndelivered) {
  RingName ring("nospill");
  TempDir dir("nospill");
  const std::string mnt = dir.path + "/mnt";
  std::filesystem::create_directories(mnt);
  std::string spill = mnt;
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4k") == 0) {
    // Fill it: the spill then fails with ENOSPC.
    std::ofstream fill(mnt + "/fill");
    fill << std::string(64 * 1024, 'x');
  } else {
    spill = dir.path + "/does-not-exist";  // fallback fault: the directory is missing
  }
  constexpr std::uint64_t n = 200;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t producer = fork_child([&] {
    std::uint64_t undelivered = 0;
    const int rc = emit_without_consumer(ring, n, spill, &undelivered);
    (void)!::write(fds[1], &undelivered, sizeof undelivered);
    return rc;
  });
  ::close(fds[1]);
  EXPECT_TRUE(exited_ok(wait_child(producer, 60s)));
  std::uint64_t undelivered = 0;
  ASSERT_EQ(::read(fds[0], &undelivered, sizeof undelivered), static_cast<ssize_t>(sizeof undelivered));
  ::close(fds[0]);
  // What is in the ring, plus what close() counted, is every invocation.
  std::uint64_t in_ring = 0;
  RingConsumer c(ring);
  while (auto m = c.next(0ms)) in_ring += m->type == RecordType::metrics ? 1 : 0;
  EXPECT_GT(undelivered, 0u);
  EXPECT_EQ(in_ring + undelivered, n) << in_ring << " in the ring, " << undelivered << " undelivered";
}

TEST(Durability, ARingThatDoesNotFitInDevShmIsAClearErrorAtCreation) {
  // A private mount namespace with a 1 MiB /dev/shm: a 4 MiB ring must fail
  // at creation (posix_fallocate), never SIGBUS at the first write.
  const pid_t child = fork_child([] {
    if (::unshare(CLONE_NEWNS) != 0) return 10;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 11;
    if (::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0) return 12;
    RingOptions o;
    o.capacity = 4u << 20;
    try {
      RingProducer p("payloadrun-test-too-big", o);
      p.write(RecordType::metrics, 0, std::string(100, 'x'));
      return 13;  // created: wrong
    } catch (const Error& e) {
      const std::string what = e.what();
      std::fprintf(stderr, "%s\n", what.c_str());
      if (what.find("cannot reserve") == std::string::npos) return 14;
      struct stat st {};
      if (::stat("/dev/shm/payloadrun-test-too-big", &st) == 0) return 15;  // left behind
      return 0;
    }
  });
  const int status = wait_child(child, 30s);
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 10 || WEXITSTATUS(status) == 12) && may_skip_mounts()) {
    GTEST_SKIP() << "no private mount namespace / tmpfs here (needs root / CAP_SYS_ADMIN)";
  }
  EXPECT_TRUE(exited_ok(status)) << "status " << status;
}

TEST(Durability, AJournalThatCannotBeReadIsLeftInPlace) {
  Rig rig("badjournal");
  const std::string spill = rig.dir.path + "/spill";
  std::filesystem::create_directories(spill);
  const std::string bad = spill + "/" + rig.ring.name + ".spill.00000000000000000001.1.0";
  std::ofstream(bad) << std::string(100, 'x');  // no valid header
  const std::string foreign = spill + "/" + rig.ring.name + ".spill.x.y";  // not a journal's name
  std::ofstream(foreign) << "x";
  const pid_t producer = fork_child([&] {
    std::uint64_t undelivered = 0;
    const int rc = emit_without_consumer(rig.ring, 20, spill, &undelivered);
    return rc != 0 ? rc : undelivered == 0 ? 0 : 7;
  });
  ASSERT_TRUE(exited_ok(wait_child(producer, 60s)));
  const pid_t drain = start_drain({"--ring", rig.ring, "--out", rig.out, "--spill-dir", spill}, rig.err);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(stop_drain(drain), 1) << "an unreadable journal is reported as a problem";
  expect_exactly_once(rig.out, 20);
  EXPECT_TRUE(std::filesystem::exists(bad)) << "an unreadable journal must stay for a later drain";
  EXPECT_TRUE(std::filesystem::exists(foreign));
  EXPECT_NE(slurp(rig.err).find("left in place"), std::string::npos) << slurp(rig.err);
  std::size_t journals = 0;
  for (const auto& e : std::filesystem::directory_iterator(spill)) journals += e.path() != bad && e.path() != foreign;
  EXPECT_EQ(journals, 0u) << "the good journals were imported and removed";
}

}  // namespace
