// cgroup v2 support (lib/detail/cgroup.hpp) against the real cgroup2
// filesystem (names and mountinfo parsing: test_cgroup.cpp). Needs root and
// a writable cgroup2 mount; without one the fixture tests skip, or fail when
// PAYLOADRUN_REQUIRE_CGROUP=1 (CI).
//
// Every cgroup is created under a per-test parent "<mount>/payloadrun-test-
// <pid>-<n>" that TearDown kills, empties and removes, even on failure.
// Every fork is reaped and every wait is bounded.
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include "cgroup_util.hpp"
#include "child_modes.hpp"
#include "detail/cgroup.hpp"
#include "error_util.hpp"
#include "payloadrun/error.hpp"

namespace {

using payloadrun::Errc;
using payloadrun::Error;
using namespace payloadrun::detail;
using namespace std::chrono_literals;
using payloadrun_test::thrown;

constexpr auto kWait = 5s;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_text(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

// Poll `pred` every 5 ms until it holds or `limit` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = kWait) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// fork(); the child runs `body` and _exits with its result.
pid_t fork_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(30);  // a leaked helper dies on its own
    ::_exit(body());
  }
  return pid;
}

// Reap `pid` within `limit`; on timeout SIGKILL and reap it, return nullopt.
std::optional<int> reap(pid_t pid, std::chrono::milliseconds limit = kWait) {
  int status = 0;
  if (eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit)) return status;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return std::nullopt;
}

// Read exactly `n` bytes from `fd`, waiting at most kWait per chunk.
bool read_exact(int fd, void* buf, std::size_t n) {
  for (std::size_t got = 0; got < n;) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kWait).count())) != 1) return false;
    const ssize_t r = ::read(fd, static_cast<char*>(buf) + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// Whether /proc/self/cgroup has the line `line` ("\n0::/path\n"), without
// allocating (for forked children).
bool proc_cgroup_has(const char* line) {
  char buf[8192] = "\n";
  const int fd = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  const ssize_t n = fd < 0 ? -1 : ::read(fd, buf + 1, sizeof buf - 2);
  if (fd >= 0) ::close(fd);
  return n > 0 && std::strstr(buf, line) != nullptr;
}

bool write_zero(int fd) { return ::write(fd, "0", 1) == 1; }

// --------------------------------------------------- real cgroup2 fixture

class CgroupFs : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto made = payloadrun_test::make_test_cgroup_parent("payloadrun-test");
    mount_ = made.mount;
    parent_ = made.path;
    if (parent_.empty()) PAYLOADRUN_CGROUP_UNAVAILABLE(made.why);
  }

  void TearDown() override {
    if (!parent_.empty()) {
      if (!write_text(parent_ + "/cgroup.kill", "1")) kill_tree_by_hand(parent_);
      eventually([&] { return slurp(parent_ + "/cgroup.events").find("populated 0") != std::string::npos; });
      reap_stragglers();
      payloadrun_test::remove_cgroup_tree(parent_);
      EXPECT_FALSE(exists(parent_)) << "test cgroup parent left behind: " << parent_;
    }
    if (!root_controller_.empty() &&
        !write_text(mount_ + "/cgroup.subtree_control", "-" + root_controller_)) {
      std::cerr << "warning: could not disable " << root_controller_ << " in " << mount_
                << "/cgroup.subtree_control again: " << std::strerror(errno) << "\n";
    }
  }

  static void kill_tree_by_hand(const std::string& dir) {  // without cgroup.kill (< 5.14)
    ::nftw(dir.c_str(), [](const char* p, const struct stat*, int type, FTW*) {
      if (type == FTW_D) {
        std::istringstream in(slurp(std::string(p) + "/cgroup.procs"));
        for (pid_t pid; in >> pid;) ::kill(pid, SIGKILL);
      }
      return 0;
    }, 32, FTW_PHYS);
  }

  static void reap_stragglers() {  // until no child is left (ECHILD)
    eventually([] { return payloadrun_test::no_children(); });
  }

  std::string rel(const std::string& abs) const { return abs.substr(mount_.size()); }

  std::string mount_;
  std::string parent_;
  std::string root_controller_;  // enabled at the mount root by a test; disabled in TearDown
};

TEST_F(CgroupFs, ResolveParent) {
  const std::string leaf = parent_.substr(parent_.find_last_of('/') + 1);
  EXPECT_EQ(resolve_cgroup_parent(leaf), parent_);
  EXPECT_EQ(resolve_cgroup_parent(parent_), parent_);
  EXPECT_EQ(resolve_cgroup_parent(parent_ + "/"), parent_);
  EXPECT_EQ(resolve_cgroup_parent(parent_ + "/../" + leaf), parent_);

  auto error_of = [](std::string_view p) -> std::string {
    const Error e = thrown([&] { resolve_cgroup_parent(p); });
    EXPECT_EQ(e.code(), Errc::cgroup) << p;
    return e.what();
  };
  for (const char* outside : {"/tmp", "/", "/proc"}) {
    const auto msg = error_of(outside);
    EXPECT_NE(msg.find("not inside the cgroup2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(mount_), std::string::npos) << msg;
  }
  EXPECT_NE(error_of("..").find("not inside"), std::string::npos);  // relative escape
  const auto missing = error_of(leaf + "/no-such-cgroup");
  EXPECT_NE(missing.find("does not exist"), std::string::npos) << missing;
  EXPECT_NE(missing.find(parent_ + "/no-such-cgroup"), std::string::npos) << missing;
  EXPECT_NE(error_of(parent_ + "/cgroup.procs").find("not a directory"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
}

TEST_F(CgroupFs, OpenMissingWithoutCreateNamesThePath) {
  const std::string path = parent_ + "/absent";
  const Error e = thrown([&] { Cgroup::open(path, false); });
  EXPECT_EQ(e.code(), Errc::cgroup);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  EXPECT_FALSE(exists(path));
}

TEST_F(CgroupFs, OpenWithCreateCreates) {
  const std::string path = parent_ + "/made/nested";
  Cgroup cg = Cgroup::open(path, true);
  EXPECT_TRUE(exists(path + "/cgroup.procs"));
  EXPECT_EQ(cg.path(), path);
  EXPECT_GE(cg.dir_fd(), 0);
  EXPECT_FALSE(cg.owns_directory());
  EXPECT_TRUE(cg.remove());  // not owned: nothing to do
  EXPECT_TRUE(exists(path));
  // Opening an existing one with create=true is fine too.
  EXPECT_NO_THROW(Cgroup::open(path, true));
}

TEST_F(CgroupFs, OpenRefusesNonCgroup2) {
  char tmpl[] = "/tmp/payloadrun-notcg-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const Error e = thrown([&] { Cgroup::open(dir, false); });
  EXPECT_EQ(e.code(), Errc::cgroup);
  EXPECT_NE(std::string(e.what()).find("not a cgroup v2"), std::string::npos) << e.what();
  // create=true must not mkdir outside cgroup2.
  EXPECT_THROW(Cgroup::open(dir + "/child", true), Error);
  EXPECT_FALSE(exists(dir + "/child"));
  ::rmdir(dir.c_str());
  EXPECT_THROW(Cgroup::open("relative/path", false), Error);
}

TEST_F(CgroupFs, OpenRejectsDomainInvalid) {
  const std::string tp = parent_ + "/tp";
  ASSERT_EQ(::mkdir(tp.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tp + "/threaded").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tp + "/invalid").c_str(), 0755), 0);
  ASSERT_TRUE(write_text(tp + "/threaded/cgroup.type", "threaded"));
  ASSERT_EQ(slurp(tp + "/invalid/cgroup.type"), "domain invalid\n");
  const Error e = thrown([&] { Cgroup::open(tp + "/invalid", false); });
  EXPECT_EQ(e.code(), Errc::cgroup);
  EXPECT_EQ(e.sys_errno(), EOPNOTSUPP);
  EXPECT_NE(std::string(e.what()).find("domain invalid"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(tp + "/invalid"), std::string::npos) << e.what();
  EXPECT_NO_THROW(Cgroup::open(tp + "/threaded", false));
}

TEST_F(CgroupFs, OpenRejectsControllersInSubtreeControl) {
  // A controller must be enabled all the way down; enable one at the root
  // if needed (undone in TearDown).
  const std::string root_ctrls = slurp(mount_ + "/cgroup.controllers");
  std::string ctrl = has_word(root_ctrls, "hugetlb") ? "hugetlb" : "";
  if (ctrl.empty()) std::istringstream(root_ctrls) >> ctrl;
  if (ctrl.empty()) {
    const std::string why = "no controller is available on cgroup2 at " + mount_;
    PAYLOADRUN_CGROUP_UNAVAILABLE(why);
  }
  if (!has_word(slurp(parent_ + "/cgroup.controllers"), ctrl)) {
    if (!write_text(mount_ + "/cgroup.subtree_control", "+" + ctrl)) {
      const std::string why = "cannot enable " + ctrl + " at the cgroup2 root: " + std::strerror(errno);
      PAYLOADRUN_CGROUP_UNAVAILABLE(why);
    }
    root_controller_ = ctrl;
  }
  ASSERT_TRUE(write_text(parent_ + "/cgroup.subtree_control", "+" + ctrl)) << std::strerror(errno);
  const std::string busy = parent_ + "/busy";
  ASSERT_EQ(::mkdir(busy.c_str(), 0755), 0);
  ASSERT_TRUE(write_text(busy + "/cgroup.subtree_control", "+" + ctrl)) << std::strerror(errno);
  const Error e = thrown([&] { Cgroup::open(busy, false); });
  const std::string msg = e.what();
  EXPECT_EQ(e.code(), Errc::cgroup);
  EXPECT_EQ(e.sys_errno(), EBUSY);
  EXPECT_NE(msg.find(busy), std::string::npos) << msg;
  EXPECT_NE(msg.find(ctrl), std::string::npos) << msg;
  EXPECT_NE(msg.find("no-internal-process"), std::string::npos) << msg;
  // The kernel agrees: joining it fails with EBUSY ...
  const int procs = ::open((busy + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(procs, 0);
  const pid_t pid = fork_child([&] { return write_zero(procs) ? 1 : (errno == EBUSY ? 0 : 2); });
  ::close(procs);
  ASSERT_GT(pid, 0);
  const auto st = reap(pid);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st;
  // ... and its leaf child is fine.
  EXPECT_NO_THROW(Cgroup::open(busy + "/leaf", true));
}

TEST_F(CgroupFs, CreateUniqueAndRemove) {
  Cgroup a = Cgroup::create_unique(parent_, "job");
  Cgroup b = Cgroup::create_unique(parent_, "job");
  EXPECT_NE(a.path(), b.path());
  const std::string stem = parent_ + "/job-" + std::to_string(::getpid()) + "-";
  EXPECT_EQ(a.path().rfind(stem, 0), 0u) << a.path();
  EXPECT_EQ(b.path().rfind(stem, 0), 0u) << b.path();
  EXPECT_TRUE(a.owns_directory());
  EXPECT_TRUE(exists(a.path()));

  // Moving transfers ownership; the moved-from handle owns nothing.
  Cgroup moved = std::move(b);
  EXPECT_FALSE(b.owns_directory());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.remove());           // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(exists(moved.path()));

  const std::string pa = a.path(), pb = moved.path();
  EXPECT_TRUE(a.remove());
  EXPECT_TRUE(moved.remove());
  EXPECT_FALSE(exists(pa));
  EXPECT_FALSE(exists(pb));
  EXPECT_FALSE(a.owns_directory());

  for (const char* bad : {"", "a/b", ".", ".."}) {
    EXPECT_EQ(thrown([&] { Cgroup::create_unique(parent_, bad); }).code(), Errc::invalid_argument) << bad;
  }
  EXPECT_EQ(thrown([&] { Cgroup::create_unique(parent_ + "/missing", "job"); }).code(), Errc::cgroup);
}

TEST_F(CgroupFs, PlacementBeforeExec) {
  Cgroup cg = Cgroup::create_unique(parent_, "place");
  const std::string expected = "\n0::" + rel(cg.path()) + "\n";
  payloadrun::detail::UniqueFd procs = cg.open_procs();
  const pid_t pid = fork_child([&] {
    if (!write_zero(procs.get())) return 2;
    return proc_cgroup_has(expected.c_str()) ? 0 : 3;
  });
  ASSERT_GT(pid, 0);
  const auto st = reap(pid);
  ASSERT_TRUE(st) << "child did not exit in time";
  ASSERT_TRUE(WIFEXITED(*st)) << *st;
  EXPECT_EQ(WEXITSTATUS(*st), 0) << "2: write to cgroup.procs failed; 3: /proc/self/cgroup is not "
                                 << expected;
  EXPECT_TRUE(eventually([&] { return !cg.populated(); }));
  EXPECT_TRUE(cg.remove());
}

TEST_F(CgroupFs, PopulatedEventsAndRemoveWhileBusy) {
  Cgroup cg = Cgroup::create_unique(parent_, "pop");
  EXPECT_FALSE(cg.populated());
  payloadrun::detail::UniqueFd events = cg.open_events();
  char drain[256];
  ASSERT_GT(::read(events.get(), drain, sizeof drain), 0);  // contains "populated 0"
  payloadrun::detail::UniqueFd procs = cg.open_procs();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t pid = fork_child([&] {
    if (!write_zero(procs.get())) return 2;
    (void)!::write(ready[1], "r", 1);
    ::pause();
    return 0;
  });
  ::close(ready[1]);
  ASSERT_GT(pid, 0);
  char c = 0;
  const bool placed = read_exact(ready[0], &c, 1);
  ::close(ready[0]);
  EXPECT_TRUE(placed);
  if (placed) {
    EXPECT_TRUE(cg.populated());
    pollfd pfd{events.get(), POLLPRI, 0};
    EXPECT_EQ(::poll(&pfd, 1, 5000), 1);
    EXPECT_TRUE(pfd.revents & POLLPRI);
    EXPECT_FALSE(cg.remove());  // EBUSY: still populated; logged, not thrown
    EXPECT_TRUE(cg.owns_directory());
    EXPECT_TRUE(exists(cg.path()));
  }
  ::kill(pid, SIGKILL);
  const auto st = reap(pid);
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL);
  EXPECT_TRUE(eventually([&] { return !cg.populated(); }));
  EXPECT_TRUE(cg.remove());
  EXPECT_FALSE(exists(cg.path()));
}

// A tree A -> B (setsid) -> C, with C in a child cgroup; `do_kill` must end
// all three.
void kill_tree_case(const std::string& parent, const std::function<void(Cgroup&)>& do_kill) {
  Cgroup cg = Cgroup::create_unique(parent, "tree");
  Cgroup sub = Cgroup::open(cg.path() + "/sub", true);
  payloadrun::detail::UniqueFd procs = cg.open_procs();
  payloadrun::detail::UniqueFd sub_procs = sub.open_procs();
  int pids[2];
  ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come back to us for reaping
  auto announce_and_sleep = [&] {
    ::alarm(30);  // alarms are not inherited across fork
    const pid_t me = ::getpid();
    (void)!::write(pids[1], &me, sizeof me);
    ::pause();
    ::_exit(0);
  };
  const pid_t a = fork_child([&] {
    if (!write_zero(procs.get())) return 2;
    if (::fork() == 0) {  // B: a new session, as a daemonizing payload would
      ::setsid();
      if (::fork() == 0 && !write_zero(sub_procs.get())) ::_exit(2);  // C joins `sub`
      announce_and_sleep();                                             // B and C
    }
    ::pause();
    return 0;
  });
  ::close(pids[1]);
  ASSERT_GT(a, 0);
  pid_t tree[3] = {a, 0, 0};
  const bool started = read_exact(pids[0], &tree[1], sizeof(pid_t)) &&
                       read_exact(pids[0], &tree[2], sizeof(pid_t));
  ::close(pids[0]);
  EXPECT_TRUE(started);
  if (started) {
    EXPECT_TRUE(cg.populated());
    EXPECT_TRUE(sub.populated());
    EXPECT_NE(::getsid(tree[1]), ::getsid(a));
  }
  do_kill(cg);
  // All three end up our children (a directly, the rest via the subreaper).
  for (pid_t pid : tree) {
    if (pid <= 0) continue;
    int status = 0;
    const bool done = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; });
    EXPECT_TRUE(done) << "pid " << pid << " was not killed";
    if (!done) ::kill(pid, SIGKILL);  // reaped by TearDown
    EXPECT_TRUE(!done || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) << pid << " " << status;
    EXPECT_TRUE(::kill(pid, 0) == -1 && errno == ESRCH) << pid;
  }
  EXPECT_TRUE(eventually([&] { return !cg.populated(); }));
  EXPECT_TRUE(eventually([] { return payloadrun_test::no_children(); }, 1s)) << "zombies left";
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(sub.populated() == false);
  EXPECT_EQ(::rmdir(sub.path().c_str()), 0);
  EXPECT_TRUE(cg.remove());
}

TEST_F(CgroupFs, KillReachesSetsidDescendants) {
  kill_tree_case(parent_, [](Cgroup& cg) { cg.kill(); });
}

TEST_F(CgroupFs, KillWithSignalsFallbackReachesSetsidDescendants) {
  kill_tree_case(parent_, [](Cgroup& cg) { cg.kill_with_signals(); });
}

TEST_F(CgroupFs, KillOnEmptyAndDefaultCgroupIsHarmless) {
  Cgroup empty = Cgroup::create_unique(parent_, "empty");
  empty.kill();
  empty.kill_with_signals();
  EXPECT_FALSE(empty.populated());
  Cgroup none;
  none.kill();
  EXPECT_TRUE(none.remove());
  EXPECT_EQ(none.stats().cpu_usage_usec, std::nullopt);
  EXPECT_TRUE(empty.remove());
}

TEST_F(CgroupFs, Stats) {
  Cgroup cg = Cgroup::create_unique(parent_, "stats");
  payloadrun::detail::UniqueFd procs = cg.open_procs();
  const pid_t pid = fork_child([&] {
    if (!write_zero(procs.get())) return 2;
    const auto end = std::chrono::steady_clock::now() + 30ms;
    volatile std::uint64_t x = 0;
    while (std::chrono::steady_clock::now() < end) x = x + 1;
    return 0;
  });
  const auto st = pid > 0 ? reap(pid) : std::nullopt;
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  const CgroupStats s = cg.stats();
  auto check = [&](const char* file, const std::optional<std::uint64_t>& v, std::uint64_t lo,
                   std::uint64_t hi) {
    if (!exists(cg.path() + "/" + file)) {
      EXPECT_EQ(v, std::nullopt) << file << " is absent";
      return;
    }
    ASSERT_TRUE(v.has_value()) << file << " exists but was not read";
    EXPECT_TRUE(*v >= lo && *v <= hi) << file << " = " << *v;
  };
  check("memory.peak", s.memory_peak_bytes, 1, 1ull << 40);
  check("pids.peak", s.pids_peak, 1, 1u << 22);
  check("cpu.stat", s.cpu_usage_usec, 1000, 60'000'000);  // >= 1 ms of the 30 ms spin
  std::cout << "[   INFO   ] cgroup.kill " << (exists(cg.path() + "/cgroup.kill") ? "present" : "absent")
            << ", memory.peak " << (s.memory_peak_bytes ? "present" : "absent") << ", pids.peak "
            << (s.pids_peak ? "present" : "absent") << ", root controllers: "
            << slurp(mount_ + "/cgroup.controllers");
  EXPECT_TRUE(cg.remove());
}

}  // namespace
