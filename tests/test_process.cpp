// Process mechanics with real children: process groups, descendants that
// outlive the leader, the capture cap, fds, signals, SIGCHLD under SIG_IGN,
// the host's own uv_spawn children, scale, both spawn backends.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

class ProcessMechanics : public ProcessTest, public ::testing::WithParamInterface<SpawnBackend> {
 protected:
  SupervisorOptions opts() {
    SupervisorOptions o;
    o.backend = GetParam();
    return o;
  }
};

std::string field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

Payload sh(const std::string& name, const std::string& script) {
  Payload p = Payload::binary_payload(name, "sh");
  p.default_args = {"-c", script};
  return p;
}

class CloneBackend : public ProcessTest {};

TEST_F(CloneBackend, ChildSeesOnlyStdioFds) {
  // An fd the test leaks without CLOEXEC must not reach the child. (The
  // uv_spawn backend inherits such fds: libuv 1.44 does not close them.)
  const int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  auto c = sup().payload(child_payload("fds", {"list-fds"})).run();
  ::close(leaked);
  EXPECT_EQ(c.stdout_text, "0 1 2 ");
}

TEST_F(CloneBackend, ChildCopiesNoneOfTheParentsManyFdsAndLeavesItsStdioAlone) {
  // Flat spawn cost: a plain clone copies the parent's whole fd table into
  // the child (then close_range closes it again), so each spawn costs
  // O(open fds): with 5,000 live payloads (15,000 fds) that is ~1.4 ms. The
  // child must start with a table no bigger than the supervisor's low stdio
  // slots. The kernel's FDSize of the child shows it: it never shrinks, so a
  // copied 16k table stays visible after exec.
  Supervisor& s = sup();  // its slots are taken while our table is small
  rlimit old_lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old_lim), 0);
  rlimit lim{20000, std::max<rlim_t>(20000, old_lim.rlim_max)};
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    GTEST_SKIP() << "needs RLIMIT_NOFILE >= 20000 (hard limit " << old_lim.rlim_max
                 << ", and not root to raise it)";
  }
  struct stat stdio_before[3];
  for (int i = 0; i < 3; ++i) ASSERT_EQ(::fstat(i, &stdio_before[i]), 0);
  std::vector<int> held;
  for (int i = 0; i < 8000; ++i) {  // 16,000 fds, half of them without CLOEXEC
    int p[2];
    ASSERT_EQ(::pipe2(p, i % 2 == 0 ? O_CLOEXEC : 0), 0);
    held.push_back(p[0]);
    held.push_back(p[1]);
  }
  auto status = s.payload(child_payload("status", {"status"})).run();
  const int fds_holding = count_fds();  // after a first run: the loop opens its own fds lazily
  auto fds = s.payload(child_payload("fds", {"list-fds"})).run();
  const int fds_after = count_fds();
  for (int fd : held) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old_lim);

  EXPECT_EQ(fds.stdout_text, "0 1 2 ") << "none of the 16,000 fds may reach the payload";
  const std::string fd_size = field(status.stdout_text, "FDSize");
  ASSERT_FALSE(fd_size.empty()) << status.stdout_text;
  EXPECT_LE(std::stol(fd_size), 256) << "the child copied the parent's fd table (FDSize " << fd_size << ")";
  EXPECT_EQ(fds_after, fds_holding) << "a spawn left a descriptor behind in the parent";
  for (int i = 0; i < 3; ++i) {
    struct stat now {};
    ASSERT_EQ(::fstat(i, &now), 0);
    EXPECT_EQ(now.st_dev, stdio_before[i].st_dev) << "the supervisor's own fd " << i << " changed";
    EXPECT_EQ(now.st_ino, stdio_before[i].st_ino) << "the supervisor's own fd " << i << " changed";
  }
}

TEST_F(CloneBackend, AForkOfTheHostHoldingCopiesOfOurFdsLeavesNoStaleWatch) {
  // A host's fork (without exec) holds copies of every fd, the supervisor's
  // pipes and pidfds included: closing ours then does not take them out of
  // an epoll set, so the watch set must remove each fd before closing it. A
  // leftover registration would report the finished payload's EOF forever,
  // with a pointer into freed memory (ASan run).
  Supervisor& s = sup();
  pid_t holder = -1;
  {
    PayloadHandle a = s.payload(sh("a", "sleep 0.2; echo a")).spawn();
    holder = ::fork();
    if (holder == 0) {
      ::usleep(10000000);
      ::_exit(0);
    }
    ASSERT_GT(holder, 0);
    const Completion ca = a.wait();
    EXPECT_EQ(ca.stdout_text, "a\n");
    EXPECT_EQ(ca.metrics.exit_code, 0);
  }  // a's invocation is freed; the holder still has its pipes and pidfd open
  // A stale registration would keep reporting a's EOF: the loop would spin
  // (touching freed memory) while this payload sleeps. Count its turns.
  uv_check_t turns{};
  long count = 0;
  uv_check_init(&loop_, &turns);
  turns.data = &count;
  uv_check_start(&turns, [](uv_check_t* h) { ++*static_cast<long*>(h->data); });
  const Completion c = s.payload(child_payload("b", {"sleep", "400"})).run();
  uv_check_stop(&turns);
  uv_close(reinterpret_cast<uv_handle_t*>(&turns), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_LT(count, 100) << "the loop spun while a payload slept: a stale watch is left";
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
}

TEST_P(ProcessMechanics, SignalsResetAndNewProcessGroup) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old_usr1 {};
  ::sigaction(SIGUSR1, &ign, &old_usr1);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  Supervisor& s = sup(opts());
  auto c = s.payload(child_payload("status", {"status"})).run();
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  EXPECT_EQ(field(c.stdout_text, "SigBlk"), "0000000000000000");
  EXPECT_EQ(field(c.stdout_text, "SigIgn"), "0000000000000000");
  std::istringstream ids(c.stderr_text);
  int pid = 0, pgid = 0;
  ids >> pid >> pgid;
  EXPECT_EQ(pid, c.pid);
  EXPECT_EQ(pgid, pid) << "the payload leads its own process group";

  Payload shared = child_payload("shared", {"status"});
  shared.uses_parent_pgrp = true;
  auto d = s.payload(shared).run();
  std::istringstream ids2(d.stderr_text);
  ids2 >> pid >> pgid;
  EXPECT_EQ(pgid, ::getpgrp()) << "uses_parent_pgrp keeps the supervisor's group";
}

TEST_P(ProcessMechanics, OutputPastTheCapIsDrainedAndFlagged) {
  LogCapture log;
  constexpr long long twenty_mib = 20ll << 20;
  auto c = sup(opts())
               .payload(child_payload("chatty", {"write-bytes", std::to_string(twenty_mib)}))
               .run();
  EXPECT_EQ(c.metrics.exit_code, 0) << "the payload must not be blocked or SIGPIPEd by the cap";
  EXPECT_EQ(c.stdout_text.size(), 16u << 20);
  EXPECT_TRUE(c.metrics.stdout_truncated);
  EXPECT_FALSE(c.metrics.stderr_truncated);
  EXPECT_TRUE(log.contains("stdout exceeded 16777216 bytes"));
}

TEST_P(ProcessMechanics, CaptureLimitIsConfigurable) {
  SupervisorOptions o = opts();
  o.capture_limit = 1000;
  auto c = sup(o).payload(child_payload("chatty", {"write-bytes", "5000", "2"})).run();
  EXPECT_EQ(c.stderr_text.size(), 1000u);
  EXPECT_TRUE(c.metrics.stderr_truncated);
}

TEST_P(ProcessMechanics, InvalidUtf8BecomesReplacementCharacters) {
  auto c = sup(opts()).payload(child_payload("bytes", {"bad-utf8"})).run();
  EXPECT_EQ(c.stdout_text, "ok \xEF\xBF\xBD\xEF\xBF\xBD end \xEF\xBF\xBD(");
}

TEST_P(ProcessMechanics, DescendantsInTheGroupDoNotHangWait) {
  // The leader exits at once; its child keeps the pipes for 60 s. Killing
  // the group after the leader exits releases them.
  const auto t0 = std::chrono::steady_clock::now();
  auto c = sup(opts()).payload(child_payload("forker", {"fork-hold", "60000", "3"}, output::Json{})).run();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  EXPECT_EQ(c.metrics.exit_code, 3);
  EXPECT_EQ(c.metrics.get("leader"), 1);
  EXPECT_FALSE(c.metrics.drain_cut_short);
}

TEST_P(ProcessMechanics, LeaderExitingWhileAChildKeepsWriting) {
  auto c = sup(opts()).payload(child_payload("writer", {"fork-writer"})).run();
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_THAT(c.stdout_text, HasSubstr("tick"));
}

TEST_P(ProcessMechanics, ShellBackgroundJobDoesNotHangKillTimeoutOrDrop) {
  Supervisor& s = sup(opts());
  const Payload p = sh("bg", "sleep 60 & exec sleep 60");
  const auto t0 = std::chrono::steady_clock::now();
  {
    PayloadHandle h = s.payload(p).spawn();
    ::usleep(100000);
    auto c = h.kill();
    EXPECT_EQ(c.metrics.exit_code, -1);
  }
  {
    auto c = s.payload(p).timeout(200ms).run();
    EXPECT_TRUE(c.metrics.timed_out);
  }
  {
    PayloadHandle h = s.payload(p).spawn();
    ::usleep(100000);
  }  // dropped
  {
    PayloadHandle h = s.payload(p).spawn();
    ::usleep(100000);
    h.kill_async();
    std::optional<Completion> c;
    for (int i = 0; i < 2000 && !c; ++i) {
      c = h.try_wait();
      if (!c) ::usleep(5000);
    }
    ASSERT_TRUE(c.has_value());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
}

TEST_P(ProcessMechanics, EscapedDescendantIsBoundedByTheDrainGrace) {
  // setsid() takes the child out of reach of killpg: without a cgroup it
  // keeps the pipes; the drain grace bounds the wait (the seed hangs).
  SupervisorOptions o = opts();
  o.drain_grace = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = sup(o).payload(child_payload("escaper", {"setsid-hold", "1500"}, output::Json{})).run();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(c.metrics.drain_cut_short);
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.get("leader"), 1) << "what was read before the cut is kept";
  EXPECT_LT(took, 1400ms);
}

TEST_P(ProcessMechanics, DeadlineCoversTheDrain) {
  SupervisorOptions o = opts();
  o.drain_grace = 30s;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = sup(o).payload(child_payload("escaper", {"setsid-hold", "1500"})).timeout(300ms).run();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_TRUE(c.metrics.drain_cut_short);
}

TEST_P(ProcessMechanics, AfterADeadlineKillTheDrainGetsTheGrace) {
  // The leader is killed at the deadline; its killed group may take a moment
  // to close the pipes (a race with the leader's reaping, seen under load),
  // so the drain gets the grace period, and only an escapee that keeps the
  // pipes past it is cut off.
  SupervisorOptions o = opts();
  o.drain_grace = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = sup(o).payload(sh("late", "setsid sleep 3 & exec sleep 60")).timeout(200ms).run();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_TRUE(c.metrics.drain_cut_short);
  EXPECT_GE(took, 480ms) << "the grace after the kill was skipped";
  EXPECT_LT(took, 2s);
}

TEST_P(ProcessMechanics, PayloadIgnoringSigtermIsStillKilled) {
  auto c = sup(opts()).payload(child_payload("stubborn", {"ignore-term"})).timeout(200ms).run();
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
}

TEST_P(ProcessMechanics, ASpawnActsOnDeadlinesThatPassedWhileTheLoopWasBusy) {
  // spawn() is synchronous, so while a caller keeps spawning (or is busy
  // otherwise) the loop runs no timer. The next spawn kills every payload
  // whose deadline has passed, without waiting for the loop to come back.
  Supervisor& s = sup(opts());
  auto dead = [](char state) { return state == 'Z' || state == 'X'; };
  PayloadHandle later = s.payload(child_payload("later", {"ignore-term"})).timeout(60s).spawn();
  PayloadHandle due = s.payload(child_payload("due", {"ignore-term"})).timeout(300ms).spawn();
  const int due_pid = due.pid().value_or(0);
  const int later_pid = later.pid().value_or(0);
  ::usleep(450000);  // the loop does not run: due's deadline passes unseen
  ASSERT_FALSE(dead(process_state(due_pid))) << "nothing may have killed it yet";
  PayloadHandle next = s.payload(child_payload("next", {"exit", "0"})).spawn();
  char state = process_state(due_pid);
  for (int i = 0; i < 400 && !dead(state); ++i) {  // a SIGKILL takes effect well within 2 s
    ::usleep(5000);
    state = process_state(due_pid);
  }
  EXPECT_TRUE(dead(state)) << "the spawn left an overdue payload running (state " << state << ")";
  EXPECT_FALSE(dead(process_state(later_pid))) << "a payload 60 s from its deadline was killed";
  const Completion c = due.wait();
  EXPECT_TRUE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.killed_by_signal, SIGKILL);
  const Completion k = later.kill();
  EXPECT_FALSE(k.metrics.timed_out);
  EXPECT_EQ(next.wait().metrics.exit_code, 0);
}

TEST_P(ProcessMechanics, APayloadThatEndedBeforeItsDeadlineWasActedOnIsNotTimedOut) {
  // It exits at once; its deadline passes while the loop does not run, and
  // the next spawn acts on overdue deadlines before the loop sees the exit:
  // it ended on its own, so it is not timed out (and nothing signals it).
  Supervisor& s = sup(opts());
  PayloadHandle quick = s.payload(child_payload("quick", {"exit", "3"})).timeout(100ms).spawn();
  // It has exited; its deadline has passed; the loop has run neither (a
  // signal, libuv's SIGCHLD, may cut one sleep short: sleep to a time).
  for (const auto until = std::chrono::steady_clock::now() + 300ms; std::chrono::steady_clock::now() < until;) {
    ::usleep(10000);
  }
  PayloadHandle next = s.payload(child_payload("next", {"exit", "0"})).spawn();
  const Completion c = quick.wait();
  EXPECT_FALSE(c.metrics.timed_out);
  EXPECT_EQ(c.metrics.exit_code, 3);
  EXPECT_FALSE(c.metrics.killed_by_signal.has_value());
  EXPECT_EQ(next.wait().metrics.exit_code, 0);
}

TEST_P(ProcessMechanics, PayloadClosingItsOutputAndRunningOn) {
  auto c = sup(opts()).payload(child_payload("closer", {"close-stdout-sleep", "300"})).run();
  EXPECT_EQ(c.metrics.exit_code, 0);
  EXPECT_FALSE(c.metrics.drain_cut_short);
}

TEST_P(ProcessMechanics, ManyPayloadsInFlightOnOneLoop) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  const rlimit saved = lim;
  lim.rlim_cur = std::max<rlim_t>(lim.rlim_cur, std::min<rlim_t>(lim.rlim_max, 16384));
  ::setrlimit(RLIMIT_NOFILE, &lim);
  Supervisor& s = sup(opts(), 240s);
#if defined(__SANITIZE_ADDRESS__)
  const int n = 200;  // each sanitized child is heavy: keep the run bounded
#else
  const int n = lim.rlim_cur >= 8192 ? 1000 : 200;
#endif
  int ok = 0;
  std::size_t peak = 0;
  char dir[] = "/tmp/payloadrun-many-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string flag = std::string(dir) + "/go";
  const Payload p = child_payload("many", {"wait-file", flag});
  for (int i = 0; i < n; ++i) {
    // Every payload waits for the flag file, so all are in flight together.
    s.payload(p).spawn([&](Completion c) { ok += c.metrics.exit_code == 0; });
    peak = std::max(peak, s.live());
  }
  EXPECT_EQ(peak, static_cast<std::size_t>(n));
  { std::ofstream(flag) << "go"; }
  s.run();
  ::unlink(flag.c_str());
  ::rmdir(dir);
  EXPECT_EQ(ok, n);
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

TEST_P(ProcessMechanics, DistinctExitCodesInFlight) {
  Supervisor& s = sup(opts());
  std::vector<int> got(256, -2);
  for (int i = 0; i < 256; ++i) {
    s.payload(child_payload("code", {"exit", std::to_string(i)})).spawn([&, i](Completion c) {
      got[static_cast<std::size_t>(i)] = c.metrics.exit_code;
    });
  }
  s.run();
  for (int i = 0; i < 256; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
}

TEST_P(ProcessMechanics, SupervisorDestroyedWithLivePayloads) {
  LogCapture log;
  Supervisor& s = sup(opts());
  std::vector<PayloadHandle> handles;
  int called = 0;
  for (int i = 0; i < 50; ++i) {
    handles.push_back(s.payload(child_payload("live", {"sleep", "60000"})).spawn());
    s.payload(child_payload("live-cb", {"sleep", "60000"})).spawn([&](Completion) { ++called; });
  }
  sup_.reset();  // kills and reaps all 100
  EXPECT_EQ(called, 0);
  for (auto& h : handles) {
    try {
      h.wait();
      ADD_FAILURE() << "wait after destruction returned";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::shut_down);
    }
  }
  handles.clear();
  EXPECT_TRUE(log.contains("Supervisor destroyed while payload 'live' ran"));
  // TearDown checks: no child left, loop closes with 0, no fd leaked.
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessMechanics, both_backends(), backend_name);

class HostIntegration : public ProcessTest {};

TEST_F(HostIntegration, SigchldIgnoredBeforeTheSupervisorStillGivesExitCodes) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old {};
  ::sigaction(SIGCHLD, &ign, &old);
  {
    Supervisor& s = sup();
    auto c = s.payload(child_payload("code", {"exit", "7"})).run();
    EXPECT_EQ(c.metrics.exit_code, 7);
    sup_.reset();
  }
  for (int i = 0; i < 10; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  struct sigaction now {};
  ::sigaction(SIGCHLD, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_IGN) << "the host's disposition is restored";
  ::sigaction(SIGCHLD, &old, nullptr);
}

TEST_F(HostIntegration, ASecondSupervisorKeepsExitCodesWhenTheFirstGoesUnderSigIgn) {
  // libuv keeps one SIGCHLD handler per process. With the host's SIGCHLD at
  // SIG_IGN, the first Supervisor installs a watcher; a second one sees a
  // handler, not SIG_IGN, and must still keep its own watcher: else the
  // first one's going (restoring SIG_IGN) lets the kernel reap the second
  // one's children behind its back (exit status lost).
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old {};
  ::sigaction(SIGCHLD, &ign, &old);
  {
    sup();
    Supervisor second;  // its own loop
    sup_.reset();       // the first goes
    for (int i = 0; i < 10; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(second.payload(child_payload("code", {"exit", "7"})).run().metrics.exit_code, 7);
  }
  // Known limit (no process-wide state of ours): with these overlapping
  // lifetimes the second never saw SIG_IGN, so SIGCHLD ends at SIG_DFL, not
  // the host's SIG_IGN. Never a handler left behind with nobody to serve it.
  struct sigaction now {};
  ::sigaction(SIGCHLD, nullptr, &now);
  EXPECT_TRUE(now.sa_handler == SIG_IGN || now.sa_handler == SIG_DFL);
  ::sigaction(SIGCHLD, &old, nullptr);
}

// Issue 15: SIGCHLD set to SIG_IGN by the host AFTER the Supervisor was
// made (the kernel then auto-reaps, and waitid on the pidfd says ECHILD):
// exit codes and death signals stay exact (the pidfd keeps the status on
// Linux >= 6.15; older kernels install a watcher at the spawn), and a
// status that is truly lost is an error, never a plausible value.
TEST_F(HostIntegration, SigchldIgnoredAfterConstructionStillGivesExactStatus) {
  Supervisor& s = sup();
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old {};
  ::sigaction(SIGCHLD, &ign, &old);
  auto c = s.payload(child_payload("code", {"exit", "7"})).run();
  Payload sleeper = child_payload("sleeper", {"sleep", "30000"});
  auto k = s.payload(sleeper).timeout(std::chrono::milliseconds(200)).run();
  ::sigaction(SIGCHLD, &old, nullptr);
  EXPECT_EQ(c.metrics.exit_code, 7);
  EXPECT_FALSE(c.error) << *c.error;
  EXPECT_TRUE(k.metrics.timed_out);
  EXPECT_EQ(k.metrics.killed_by_signal, std::optional<int>(SIGKILL));
  EXPECT_FALSE(k.error) << *k.error;
}

TEST_F(HostIntegration, WherePidfdsKeepTheStatusSigchldIsNeverTouched) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old {};
  ::sigaction(SIGCHLD, &ign, &old);
  {
    Supervisor& s = sup();
    struct sigaction during {};
    ::sigaction(SIGCHLD, nullptr, &during);
    EXPECT_EQ(during.sa_handler, SIG_IGN) << "a SIGCHLD handler was installed although the pidfd keeps the status";
    EXPECT_EQ(s.payload(child_payload("code", {"exit", "9"})).run().metrics.exit_code, 9);
    ::sigaction(SIGCHLD, nullptr, &during);
    EXPECT_EQ(during.sa_handler, SIG_IGN);
    sup_.reset();
  }
  ::sigaction(SIGCHLD, &old, nullptr);
}

TEST_F(HostIntegration, HostsOwnUvSpawnChildKeepsItsExitStatus) {
  Supervisor& s = sup();
  struct HostChild {
    uv_process_t proc;
    int64_t status = -100;
  } host;
  char sh_path[] = "/bin/sh";
  char c_flag[] = "-c";
  char script[] = "sleep 0.2; exit 42";
  char* args[] = {sh_path, c_flag, script, nullptr};
  uv_process_options_t o{};
  o.file = "/bin/sh";
  o.args = args;
  o.exit_cb = [](uv_process_t* p, int64_t status, int) {
    static_cast<HostChild*>(p->data)->status = status;
    uv_close(reinterpret_cast<uv_handle_t*>(p), nullptr);
  };
  host.proc.data = &host;
  ASSERT_EQ(uv_spawn(&loop_, &host.proc, &o), 0);
  int ours = 0;
  for (int i = 0; i < 20; ++i) {
    s.payload(child_payload("mine", {"exit", "1"})).spawn([&](Completion c) { ours += c.metrics.exit_code; });
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(host.status, 42);
  EXPECT_EQ(ours, 20);
}

}  // namespace
