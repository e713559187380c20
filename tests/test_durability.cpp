// Nothing lost, end to end (issue 14): real faults against the ring and the
// drain program. A drain SIGKILLed at random instants and at its sidecar
// writes, a drain writing to /dev/full and to a tmpfs that fills up, a drain
// restarted after a crash or stopped mid-pair, an uncommitted message. No
// consumer and spill journals: test_durability_spill.cpp.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <span>
#include <thread>

#include "durability_util.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/ring_consumer.hpp"
#include "payloadrun/ring_producer.hpp"

using namespace payloadrun;
using namespace ring_test;
using namespace durability_test;
using namespace std::chrono_literals;

namespace {

/// Body of a metrics record for invocation `index` (deferred: a raw output
/// precedes it).
std::string metrics_body(std::uint64_t index, bool deferred) {
  Completion c;
  c.payload_name = deferred ? "deferred" : "plain";
  c.metrics.payload_index = index;
  c.result = AssertResult::pass();
  c.pid = 4242;
  return encode_metrics(c, deferred);
}

std::string raw_body(std::uint64_t index, std::size_t pad) {
  RawPayloadOutput r;
  r.payload_index = index;
  r.payload_name = "deferred";
  r.stdout_text = std::string(pad, ' ') + "{\"tput\": " + std::to_string(index) + "}";
  r.metric_hints = {{"tput", Polarity::higher_better, "MB/s"}};
  return encode_raw(r);
}

/// Write `n` invocations (every 4th a Deferred pair, every 50th with a raw
/// output large enough to be fragmented), waiting for room as needed.
int produce(const std::string& ring, std::uint64_t n, const RingOptions& options, bool big = true,
            std::chrono::microseconds pace = {}) {
  RingProducer p(ring, options);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (pace.count() != 0) std::this_thread::sleep_for(pace);
    if (i % 4 == 1) {
      const std::string raw = raw_body(i, big && i % 50 == 1 ? p.max_fragment() + 100 : 10);
      const std::string met = metrics_body(i, true);
      const RingRecord pair[2] = {{RecordType::raw_output, i, raw}, {RecordType::metrics, i, met}};
      p.write(std::span<const RingRecord>(pair, 2));
    } else {
      p.write(RecordType::metrics, i, metrics_body(i, false));
    }
    if (!p.flush_for(120s)) return 4;
  }
  return 0;
}

TEST(Durability, DrainKilledAtRandomInstantsWritesEveryRecordExactlyOnce) {
  Rig rig("kill9");
  const std::string& ring = rig.ring;
  const std::string& out = rig.out;
  const std::string& err = rig.err;
  constexpr std::uint64_t n = 2000;
  RingOptions o;
  o.capacity = 64 * 1024;  // small: the producer waits on the drain, and the ring wraps
  // Paced (~1 s in all) so that the kills land all along the stream.
  const pid_t producer = fork_child([&] { return produce(ring, n, o, true, 500us); });

  std::mt19937 rng(20261202);
  std::uniform_int_distribution<int> delay_us(1'000, 25'000);
  int kills = 0;
  const auto bound = std::chrono::steady_clock::now() + 120s;
  int producer_status = -1;
  while (std::chrono::steady_clock::now() < bound) {
    const pid_t drain = start_drain({"--ring", ring, "--out", out, "--capacity", "65536"}, err);
    // Mostly 1-25 ms (many land while it starts, reads the sidecar or
    // writes); every 10th drain runs 200 ms, so that the stream progresses
    // however slowly a drain starts (sanitizers).
    std::this_thread::sleep_for(kills % 10 == 9 ? std::chrono::microseconds(200'000)
                                               : std::chrono::microseconds(delay_us(rng)));
    ::kill(drain, SIGKILL);
    ::waitpid(drain, nullptr, 0);
    ++kills;
    int st = 0;
    if (::waitpid(producer, &st, WNOHANG) == producer) {
      producer_status = st;
      break;
    }
  }
  ASSERT_NE(producer_status, -1) << "the producer did not finish within the bound";
  EXPECT_TRUE(exited_ok(producer_status));
  EXPECT_GE(kills, 10) << "too few kills to test anything";
  // A last drain takes what is left (on SIGTERM it reads every committed
  // record before it exits) and stops cleanly.
  const pid_t last = start_drain({"--ring", ring, "--out", out, "--capacity", "65536"}, err);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(last), 0) << slurp(err);
  expect_exactly_once(out, n);
  const std::string said = slurp(err);
  std::size_t torn = 0;
  for (auto at = said.find("torn last line"); at != std::string::npos; at = said.find("torn last line", at + 1)) ++torn;
  std::cout << "drain SIGKILLed " << kills << " times during " << n << " invocations; " << torn
            << " torn last lines cut off\n";
}

#if defined(__x86_64__)
// Run a drain under ptrace and SIGKILL it exactly at its `nth` write(2) to
// `sidecar`: at the syscall's entry (nothing of the batch written) or at
// its exit (the batch written, not yet committed). Returns false if the
// drain exited before that write.
bool kill_drain_at_write(const std::vector<std::string>& args, const std::string& err_path,
                         const std::string& sidecar, int nth, bool at_exit) {
  const std::string exe = drain_path();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) ::dup2(fd, 2);
    ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    ::raise(SIGSTOP);
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);  // the SIGSTOP
  ::ptrace(PTRACE_SETOPTIONS, pid, nullptr,
           reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
  const std::string target = std::filesystem::canonical(std::filesystem::path(sidecar).parent_path()) /
                             std::filesystem::path(sidecar).filename();
  int writes = 0;
  bool entering = true;
  bool in_sidecar_write = false;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  ::ptrace(PTRACE_SYSCALL, pid, nullptr, nullptr);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, 0) != pid) break;
    if (WIFEXITED(status) || WIFSIGNALED(status)) return false;
    int deliver = 0;
    if (WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80)) {
      user_regs_struct regs{};
      ::ptrace(PTRACE_GETREGS, pid, nullptr, &regs);
      if (entering) {
        in_sidecar_write = false;
        if (regs.orig_rax == SYS_write) {
          char link[4096];
          const std::string fdpath = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(regs.rdi);
          const ssize_t n = ::readlink(fdpath.c_str(), link, sizeof link - 1);
          if (n > 0 && std::string(link, static_cast<std::size_t>(n)) == target) {
            in_sidecar_write = true;
            if (++writes == nth && !at_exit) break;
          }
        }
      } else if (in_sidecar_write && writes == nth && at_exit) {
        break;
      }
      entering = !entering;
    } else if (WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP) {
      deliver = WSTOPSIG(status);
    }
    ::ptrace(PTRACE_SYSCALL, pid, nullptr, reinterpret_cast<void*>(static_cast<long>(deliver)));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return writes == nth;
}

TEST(Durability, DrainKilledAtItsSidecarWriteLosesNothingAndWritesNothingTwice) {
  Rig rig("atwrite");
  constexpr std::uint64_t n = 2000;
  RingOptions o;
  o.capacity = 64 * 1024;
  const pid_t producer = fork_child([&] { return produce(rig.ring, n, o, false, 500us); });
  // Alternately at the entry (the batch not written: it must stay in the
  // ring) and at the exit (written, not committed: it must not be written
  // again) of the 1st..3rd write of each drain, with and without --fsync.
  int kills = 0;
  int producer_status = -1;
  for (int round = 0; round < 200 && producer_status == -1; ++round) {
    std::vector<std::string> args = {"--ring", rig.ring, "--out", rig.out, "--capacity", "65536"};
    if (round % 4 >= 2) args.push_back("--fsync");
    kills += kill_drain_at_write(args, rig.err, rig.out, 1 + round % 3, round % 2 == 1) ? 1 : 0;
    int st = 0;
    if (::waitpid(producer, &st, WNOHANG) == producer) producer_status = st;
  }
  // A last drain takes what is left (and lets a producer still waiting for
  // room finish), then stops cleanly.
  const pid_t last = start_drain({"--ring", rig.ring, "--out", rig.out, "--capacity", "65536"}, rig.err);
  if (producer_status == -1) producer_status = wait_child(producer, 60s);
  EXPECT_TRUE(exited_ok(producer_status));
  EXPECT_GE(kills, 20);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(last), 0) << slurp(rig.err);
  expect_exactly_once(rig.out, n);
  std::cout << "drain SIGKILLed " << kills << " times at a sidecar write(2)\n";
}
#endif

TEST(Durability, DrainToDevFullConsumesNothingAndTheNextDrainGetsAll) {
  Rig rig("devfull");
  const std::string& ring = rig.ring;
  const std::string& err = rig.err;
  constexpr std::uint64_t n = 50;
  ASSERT_TRUE(exited_ok(wait_child(fork_child([&] { return produce(ring, n, {}); }), 30s)));
  const pid_t full = start_drain({"--ring", ring, "--out", "/dev/full"}, err);
  const int status = wait_child(full, 30s);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << slurp(err);
  const std::string said = slurp(err);
  EXPECT_NE(said.find("/dev/full"), std::string::npos) << said;
  EXPECT_NE(said.find("ENOSPC"), std::string::npos) << said;
  // Nothing was consumed: a drain to a real file gets every record.
  const std::string& out = rig.out;
  const pid_t good = start_drain({"--ring", ring, "--out", out}, err);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(stop_drain(good), 0) << slurp(err);
  expect_exactly_once(out, n);
}

TEST(Durability, DrainOnAFullFilesystemStopsAndResumesExactlyOnce) {
  RingName ring("tmpfs");
  TempDir dir("tmpfs");
  const std::string mnt = dir.path + "/mnt";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    if (may_skip_mounts()) GTEST_SKIP() << "cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): " << std::strerror(errno);
    FAIL() << "running as root, yet cannot mount a tmpfs: " << std::strerror(errno);
  }
  const std::string out = mnt + "/sidecar.jsonl";
  const std::string err = dir.path + "/drain.stderr";
  constexpr std::uint64_t n = 600;  // ~150 KiB of lines: more than the 64 KiB filesystem holds
  RingOptions o;
  o.capacity = 1 << 20;
  ASSERT_TRUE(exited_ok(wait_child(fork_child([&] { return produce(ring, n, o, false); }), 60s)));
  const pid_t first = start_drain({"--ring", ring, "--out", out}, err);
  const int status = wait_child(first, 30s);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(err);
  EXPECT_EQ(WEXITSTATUS(status), 3) << slurp(err);
  EXPECT_NE(slurp(err).find("ENOSPC"), std::string::npos) << slurp(err);
  const auto written = std::filesystem::file_size(out);
  EXPECT_GT(written, 32u * 1024) << "the first drain wrote what fitted";
  // Make room; the next drain appends to the same sidecar.
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=8m"), 0) << std::strerror(errno);
  const pid_t second = start_drain({"--ring", ring, "--out", out, "--fsync"}, err);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(second), 0) << slurp(err);
  expect_exactly_once(out, n);
}

TEST(Durability, ARestartedDrainCutsATornLineAndSkipsLinesAlreadyWritten) {
  Rig rig("dedup");
  const std::string& ring = rig.ring;
  const std::string& out = rig.out;
  const std::string& err = rig.err;
  constexpr std::uint64_t n = 40;
  ASSERT_TRUE(exited_ok(wait_child(fork_child([&] { return produce(ring, n, {}); }), 30s)));
  // A consumer that wrote the lines of the first 30 invocations but died
  // before committing, the last of them torn by the crash.
  {
    RingOptions o;
    o.auto_commit = false;
    RingConsumer c(ring, o);
    std::string text;
    Drain d([&](std::string_view line) { text.append(line).push_back('\n'); });
    std::uint64_t invocations = 0;
    while (invocations < 30) {
      auto m = c.next(1s);
      ASSERT_TRUE(m);
      d.consume(*m);
      invocations = d.summary().invocations;
    }
    text.resize(text.size() - 25);  // the torn end of the last line
    std::ofstream(out) << text;
  }
  const pid_t drain = start_drain({"--ring", ring, "--out", out}, err);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(drain), 0) << slurp(err);
  expect_exactly_once(out, n);
  const std::string said = slurp(err);
  EXPECT_NE(said.find("removed a torn last line"), std::string::npos) << said;
  EXPECT_NE(said.find("29 already in the sidecar"), std::string::npos) << said;
}

TEST(Durability, AStoppedDrainLeavesAHalfPairForTheNextDrain) {
  Rig rig("halfpair");
  {
    RingProducer p(rig.ring);
    p.write(RecordType::raw_output, 5, raw_body(5, 10));  // its metrics record comes later
  }
  const pid_t first = start_drain({"--ring", rig.ring, "--out", rig.out}, rig.err);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(first), 0) << slurp(rig.err);
  EXPECT_EQ(slurp(rig.out), "") << "no pairing failure for a raw output that may still be paired";
  EXPECT_NE(slurp(rig.err).find("left in the ring for the next drain"), std::string::npos) << slurp(rig.err);
  {
    RingProducer p(rig.ring);
    p.write(RecordType::metrics, 5, metrics_body(5, true));
  }
  const pid_t second = start_drain({"--ring", rig.ring, "--out", rig.out}, rig.err);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stop_drain(second), 0) << slurp(rig.err);
  std::size_t bad = 0;
  const auto seen = sidecar_indexes(rig.out, &bad);  // (asserts every line passed)
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen.begin()->first, 5u);
  EXPECT_EQ(seen.begin()->second, 1);
}

TEST(Durability, PairingDoesNotDependOnOrderAndADedupSeesEitherHalf) {
  const auto raw_msg = [](const std::string& origin) {
    RingMessage m;
    m.type = RecordType::raw_output;
    m.pid = 77;
    m.payload_index = 9;
    m.body = raw_body(9, 10);
    m.origin = origin;
    return m;
  };
  RingMessage met;
  met.type = RecordType::metrics;
  met.pid = 77;
  met.payload_index = 9;
  met.body = metrics_body(9, true);
  met.origin = "s:00000000000000aa:64";
  met.hold.spills = {0xaa};
  std::vector<std::string> lines;
  {
    // The metrics record first (a journal imported before the ring).
    Drain d([&](std::string_view l) { lines.emplace_back(l); });
    d.consume(met);
    EXPECT_EQ(d.pending(), 1u);
    EXPECT_NE(d.hold().spills.size(), 0u) << "a waiting half holds its records";
    d.consume(raw_msg("r:00000000000000bb:128"));
    EXPECT_EQ(d.pending(), 0u);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("\"passed\":true"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("\"record\":\"s:00000000000000aa:64 r:00000000000000bb:128\""), std::string::npos)
        << lines[0];
  }
  {
    // A sidecar that already holds a line made from the raw output alone
    // (a pairing failure written before a crash): the pair is not written.
    DrainOptions o;
    o.already_written = {"r:00000000000000bb:128"};
    std::vector<std::string> again;
    Drain d([&](std::string_view l) { again.emplace_back(l); }, o);
    d.consume(raw_msg("r:00000000000000bb:128"));
    d.consume(met);
    EXPECT_TRUE(again.empty());
    EXPECT_EQ(d.summary().duplicates, 1u);
  }
}

TEST(Durability, AnUncommittedMessageIsDeliveredAgainWithTheSameOrigin) {
  RingName ring("recommit");
  RingOptions o;
  o.auto_commit = false;
  {
    RingProducer p(ring, o);
    p.write(RecordType::metrics, 7, metrics_body(7, false));
    p.write(RecordType::metrics, 8, metrics_body(8, false));
  }
  std::string first_origin;
  {
    RingConsumer c(ring, o);
    auto m = c.next(1s);
    ASSERT_TRUE(m);
    first_origin = m->origin;
    EXPECT_EQ(m->payload_index, 7u);
    // Not committed: a consumer that goes away now leaves it in the ring.
  }
  {
    RingConsumer c(ring, o);
    auto m = c.next(1s);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload_index, 7u);
    EXPECT_EQ(m->origin, first_origin);
    c.commit();
  }
  RingConsumer c(ring, o);
  auto m = c.next(1s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload_index, 8u) << "a committed message is never delivered again";
  c.commit();
  EXPECT_TRUE(c.empty());
}

}  // namespace
