// Payloads die with their supervisor (issue 14, item 4), with real
// processes: a helper child runs a Supervisor (child mode "supervise"), the
// test SIGKILLs it and, as a subreaper, receives and reaps whatever was
// re-parented. Leaders die by PR_SET_PDEATHSIG; descendants in an own cgroup
// by the next Supervisor's sweep of stale cgroups; survives_supervisor opts
// out; a payload whose supervisor died before it armed the signal never
// starts (a ptrace-stopped clone child makes that race deterministic).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cgroup_util.hpp"
#include "detail/cgroup.hpp"
#include "detail/fd.hpp"
#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using payloadrun::detail::UniqueFd;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPayloads = 100;
constexpr auto kDeathBound = 5s;  // SIGKILL to the supervisor -> every leader dead

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// Field 4 (ppid) of /proc/<pid>/stat; 0 when unreadable.
pid_t parent_of(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  char state = 0;
  pid_t ppid = 0;
  fields >> state >> ppid;
  return ppid;
}

UniqueFd pidfd_of(pid_t pid) { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

// The process behind `pidfd` has ended (zombie or reaped).
bool ended(const UniqueFd& pidfd) {
  pollfd p{pidfd.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

// A helper supervisor: `<self> --payloadrun-child supervise ARGS...` with
// stdout on a pipe. With hold, it waits for go() before exec (so the test
// can attach to it first).
class Helper {
 public:
  Helper(const std::vector<std::string>& mode_args, bool hold = false) {
    std::vector<std::string> strings = {self_exe(), "--payloadrun-child", "supervise"};
    strings.insert(strings.end(), mode_args.begin(), mode_args.end());
    std::vector<char*> argv;
    for (auto& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    int out[2], go[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      char b;
      if (hold && ::read(go[0], &b, 1) != 1) ::_exit(97);
      ::execv(argv[0], argv.data());
      ::_exit(98);
    }
    out_ = UniqueFd(out[0]);
    go_ = UniqueFd(go[1]);
    ::close(out[1]);
    ::close(go[0]);
  }
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;
  ~Helper() {
    if (pid_ > 0) kill_and_reap();
  }

  pid_t pid() const { return pid_; }
  void go() { (void)!::write(go_.get(), "g", 1); }

  // The pids it printed before "ready" (empty on error or after 30 s).
  std::vector<pid_t> read_pids() {
    std::string text;
    const auto end = Clock::now() + 30s;
    while (text.find("ready\n") == std::string::npos && Clock::now() < end) {
      pollfd p{out_.get(), POLLIN, 100};
      if (::poll(&p, 1, 100) != 1) continue;
      char buf[4096];
      const ssize_t n = ::read(out_.get(), buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    std::vector<pid_t> pids;
    if (text.find("ready\n") == std::string::npos) {
      ADD_FAILURE() << "the helper supervisor did not get ready: " << text;
      return pids;
    }
    std::istringstream in(text);
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
  }

  // SIGKILL and reap it: its exit (and so the parent-death signals it
  // triggers) has happened when this returns.
  void kill_and_reap() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, __WALL) < 0 && errno == EINTR) {
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd out_;
  UniqueFd go_;
};

class DieWithSupervisor : public ProcessTest {
 protected:
  void SetUp() override {
    ProcessTest::SetUp();
    // Orphaned payloads come to us, not to init (which reaps them late).
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0) << std::strerror(errno);
  }

  void TearDown() override {
    // Whatever a failed test left: kill it and reap every child, bounded.
    for (auto& [pid, fd] : watched_) {
      if (!ended(fd)) ::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
    }
    reap_for(2s);
    watched_.clear();
    ProcessTest::TearDown();
  }

  void watch(pid_t pid) {
    UniqueFd fd = pidfd_of(pid);
    ASSERT_TRUE(fd) << "pidfd_open(" << pid << "): " << std::strerror(errno);
    watched_.emplace(pid, std::move(fd));
  }

  bool is_dead(pid_t pid) { return ended(watched_.at(pid)); }

  // Reap every zombie child (recording how each ended) for up to `limit`,
  // returning early once none is left.
  void reap_for(std::chrono::milliseconds limit) {
    eventually([&] {
      for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG | __WALL);
        if (pid <= 0) return pid < 0 && errno == ECHILD;
        reaped_[pid] = status;
      }
    }, limit);
  }

  // Every watched pid dead within `limit` (reaping as they come): how many
  // are still alive then.
  std::size_t alive_after(std::chrono::milliseconds limit) {
    std::size_t alive = 0;
    eventually([&] {
      reap_for(0ms);
      alive = 0;
      for (auto& [pid, fd] : watched_) alive += !ended(fd);
      return alive == 0;
    }, limit);
    return alive;
  }

  std::map<pid_t, UniqueFd> watched_;
  std::map<pid_t, int> reaped_;  // status of each child we reaped
};

TEST_F(DieWithSupervisor, HundredLeadersDieWhenTheSupervisorIsKilled) {
  Helper helper({std::to_string(kPayloads), "0", "-", self_exe(), "--payloadrun-child", "sleep", "300000"});
  const std::vector<pid_t> pids = helper.read_pids();
  ASSERT_EQ(pids.size(), static_cast<std::size_t>(kPayloads));
  for (pid_t pid : pids) watch(pid);
  helper.kill_and_reap();
  EXPECT_EQ(alive_after(kDeathBound), 0u) << "payloads outlived their SIGKILLed supervisor";
  reap_for(kDeathBound);
  for (pid_t pid : pids) {
    ASSERT_EQ(reaped_.count(pid), 1u) << "payload " << pid << " was not re-parented to us and reaped";
    EXPECT_TRUE(WIFSIGNALED(reaped_[pid]) && WTERMSIG(reaped_[pid]) == SIGKILL) << reaped_[pid];
  }
  EXPECT_TRUE(no_children());
}

TEST_F(DieWithSupervisor, SurvivesSupervisorOptsOut) {
  Helper helper({"1", "1", "-", self_exe(), "--payloadrun-child", "sleep", "300000"});
  const std::vector<pid_t> pids = helper.read_pids();
  ASSERT_EQ(pids.size(), 1u);
  watch(pids[0]);
  helper.kill_and_reap();
  // A parent-death signal would have been sent during the helper's exit,
  // which is over; give a late one ample time anyway.
  std::this_thread::sleep_for(300ms);
  reap_for(0ms);
  EXPECT_FALSE(is_dead(pids[0])) << "the survives_supervisor payload died with its supervisor";
  EXPECT_EQ(parent_of(pids[0]), ::getpid()) << "the orphan should have come to us (subreaper)";
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, watched_.at(pids[0]).get(), SIGKILL, nullptr, 0), 0);
  EXPECT_EQ(alive_after(kDeathBound), 0u);
  reap_for(kDeathBound);
  EXPECT_EQ(reaped_.count(pids[0]), 1u);
  EXPECT_TRUE(no_children());
}

// The supervisor dies after clone but before its child armed
// PR_SET_PDEATHSIG: the signal can then never come, so the child must see
// that its parent changed and exit (127, as for any setup failure) instead
// of exec'ing a payload nobody supervises. The window is made wide and
// deterministic with ptrace: the test traces the helper supervisor, so its
// clone child starts stopped before its first instruction; the test kills
// the helper, then lets the child run.
TEST_F(DieWithSupervisor, ChildWhoseSupervisorDiedBeforeItArmedPdeathsigNeverStarts) {
  Helper helper({"1", "0", "-", self_exe(), "--payloadrun-child", "sleep", "300000"}, true);
  ASSERT_GT(helper.pid(), 0);
  const long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL;
  if (::ptrace(PTRACE_SEIZE, helper.pid(), nullptr, reinterpret_cast<void*>(opts)) != 0) {
    GTEST_SKIP() << "cannot ptrace the helper: " << std::strerror(errno);
  }
  helper.go();
  // Wait (bounded) for `pid` to stop or end; nullopt after 10 s.
  auto wait_stop = [](pid_t pid) -> std::optional<int> {
    int status = 0;
    const bool got = eventually([&] { return ::waitpid(pid, &status, WNOHANG | __WALL) == pid; }, 10s);
    return got ? std::optional<int>(status) : std::nullopt;
  };
  pid_t child = 0;
  while (child == 0) {
    const auto st = wait_stop(helper.pid());
    ASSERT_TRUE(st && WIFSTOPPED(*st)) << "the helper did not reach its clone";
    const int event = *st >> 16;
    if (event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_CLONE) {
      unsigned long msg = 0;
      ASSERT_EQ(::ptrace(PTRACE_GETEVENTMSG, helper.pid(), nullptr, &msg), 0);
      const auto cloned = static_cast<pid_t>(msg);
      // A payload's clone shares the supervisor's memory (CLONE_VM). Any
      // other child (the one-off probe for pidfd exit status) goes on.
      constexpr int kcmp_vm = 1;  // KCMP_VM
      const long same_vm = ::syscall(SYS_kcmp, helper.pid(), cloned, kcmp_vm, 0, 0);
      if (same_vm == 0 || (same_vm < 0 && errno == ENOSYS)) {
        child = cloned;
      } else {
        const auto st2 = wait_stop(cloned);  // its initial stop
        ASSERT_TRUE(st2 && WIFSTOPPED(*st2));
        ASSERT_EQ(::ptrace(PTRACE_DETACH, cloned, nullptr, nullptr), 0) << std::strerror(errno);
        ASSERT_EQ(::ptrace(PTRACE_CONT, helper.pid(), nullptr, nullptr), 0);
      }
    } else {
      // A signal-delivery stop (or group stop): pass the signal on.
      const int sig = event == 0 ? WSTOPSIG(*st) : 0;
      ASSERT_EQ(::ptrace(PTRACE_CONT, helper.pid(), nullptr, reinterpret_cast<void*>(static_cast<long>(sig))), 0);
    }
  }
  watch(child);
  const auto child_stop = wait_stop(child);
  ASSERT_TRUE(child_stop && WIFSTOPPED(*child_stop)) << "the clone child did not start stopped";
  helper.kill_and_reap();  // the parent is gone before the child ran any code
  ASSERT_EQ(::ptrace(PTRACE_DETACH, child, nullptr, nullptr), 0) << std::strerror(errno);
  int status = 0;
  const bool exited = eventually([&] { return ::waitpid(child, &status, WNOHANG | __WALL) == child; }, kDeathBound);
  ASSERT_TRUE(exited) << "the orphaned clone child went on to run the payload";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 127) << "status " << status;
  EXPECT_TRUE(no_children());
}

// ------------------------------------------------ own cgroups (cgroup2)

class StaleCgroups : public DieWithSupervisor {
 protected:
  void SetUp() override {
    DieWithSupervisor::SetUp();
    if (HasFatalFailure()) return;
    const auto made = make_test_cgroup_parent("payloadrun-pdeathsig");
    parent_ = made.path;
    if (parent_.empty()) PAYLOADRUN_CGROUP_UNAVAILABLE(made.why);
  }

  void TearDown() override {
    if (!parent_.empty()) {
      std::ofstream(parent_ + "/cgroup.kill") << "1";
      eventually([&] { return slurp(parent_ + "/cgroup.events").find("populated 0") != std::string::npos; }, 5s);
      remove_cgroup_tree(parent_);
      EXPECT_FALSE(exists(parent_)) << "test cgroup parent left behind: " << parent_;
    }
    DieWithSupervisor::TearDown();
  }

  // Subdirectories of the parent.
  std::vector<std::string> cgroups() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(parent_)) {
      if (e.is_directory()) out.push_back(e.path().string());
    }
    return out;
  }

  std::vector<pid_t> procs(const std::string& cgroup) const {
    std::istringstream in(slurp(cgroup + "/cgroup.procs"));
    std::vector<pid_t> out;
    for (pid_t pid; in >> pid;) out.push_back(pid);
    return out;
  }

  SupervisorOptions options() const {
    SupervisorOptions o;
    o.cgroup_parent = parent_;
    return o;
  }

  std::string parent_;
};

TEST_F(StaleCgroups, NextSupervisorKillsWhatADeadOneLeftInItsOwnCgroups) {
  Helper helper({"1", "0", parent_, "sh", "-c", "sleep 300 & exec sleep 300"});
  const std::vector<pid_t> pids = helper.read_pids();
  ASSERT_EQ(pids.size(), 1u);
  const pid_t leader = pids[0];
  ASSERT_EQ(cgroups().size(), 1u);
  const std::string cg = cgroups()[0];
  ASSERT_TRUE(eventually([&] { return procs(cg).size() == 2; }, 5s)) << "sh did not start its background sleep";
  pid_t grandchild = 0;
  for (pid_t pid : procs(cg)) grandchild = pid != leader ? pid : grandchild;
  watch(leader);
  watch(grandchild);

  {  // A Supervisor beside a live one leaves its cgroups alone.
    Supervisor beside(options());
  }
  EXPECT_TRUE(exists(cg));
  EXPECT_FALSE(is_dead(grandchild));

  helper.kill_and_reap();
  ASSERT_TRUE(eventually([&] { reap_for(0ms); return is_dead(leader); }, kDeathBound)) << "the leader outlived its supervisor";
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(is_dead(grandchild)) << "PR_SET_PDEATHSIG reaches the leader only";
  EXPECT_TRUE(exists(cg));

  LogCapture log;
  sup(options());  // the next supervisor sweeps the parent
  EXPECT_TRUE(is_dead(grandchild)) << "the sweep returned with the stale cgroup still populated";
  EXPECT_FALSE(exists(cg)) << "stale cgroup not removed: " << cg;
  EXPECT_TRUE(log.contains("killed and removed stale cgroup '" + cg + "'"));
  reap_for(kDeathBound);
  ASSERT_EQ(reaped_.count(grandchild), 1u);
  EXPECT_TRUE(WIFSIGNALED(reaped_[grandchild]) && WTERMSIG(reaped_[grandchild]) == SIGKILL);
  EXPECT_TRUE(no_children());
}

TEST_F(StaleCgroups, ASurvivorsCgroupIsNeverKilledOnlyRemovedOnceEmpty) {
  Helper helper({"1", "1", parent_, self_exe(), "--payloadrun-child", "sleep", "300000"});
  const std::vector<pid_t> pids = helper.read_pids();
  ASSERT_EQ(pids.size(), 1u);
  ASSERT_EQ(cgroups().size(), 1u);
  const std::string cg = cgroups()[0];
  EXPECT_EQ(fs::path(cg).filename().string().rfind("survivor-", 0), 0u) << cg;
  watch(pids[0]);
  helper.kill_and_reap();
  {
    Supervisor next(options());
  }
  EXPECT_FALSE(is_dead(pids[0])) << "a survivor was killed by the next supervisor";
  EXPECT_TRUE(exists(cg));
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, watched_.at(pids[0]).get(), SIGKILL, nullptr, 0), 0);
  EXPECT_EQ(alive_after(kDeathBound), 0u);
  ASSERT_TRUE(eventually([&] { return procs(cg).empty(); }, kDeathBound));
  LogCapture log;
  sup(options());
  EXPECT_FALSE(exists(cg)) << "the empty survivor cgroup of a dead supervisor was not removed";
  EXPECT_TRUE(log.contains("removed empty cgroup '" + cg + "'"));
  reap_for(kDeathBound);
  EXPECT_TRUE(no_children());
}

// ------------------------------------------------------- naming rule

TEST(StaleCgroupNames, ParseAndLiveness) {
  const detail::CgroupCreator me = detail::this_creator();
  EXPECT_EQ(me.pid, ::getpid());
  EXPECT_GT(me.start_time, 0u);
  EXPECT_GT(me.pid_ns, 0u);
  EXPECT_TRUE(detail::creator_alive(me));
  const auto parsed = detail::parse_unique_name("payload-12-345-678-9");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first, "payload");
  EXPECT_EQ(parsed->second, (detail::CgroupCreator{12, 345, 678}));
  EXPECT_EQ(detail::parse_unique_name("my-job-1-2-3-4")->first, "my-job");
  for (const char* other : {"payload-12-3", "payload-0-1-2-3", "payload-1-2-3-x", "-1-2-3-4", "1-2-3-4",
                            "payload-1-2-3-", "payload-+1-2-3-4", "work"}) {
    EXPECT_FALSE(detail::parse_unique_name(other)) << other;
  }
  // Our pid with another start time: a reused pid, so the creator is gone.
  EXPECT_FALSE(detail::creator_alive({me.pid, me.start_time + 1, me.pid_ns}));
  // Another pid namespace's creators are never judged.
  EXPECT_TRUE(detail::creator_alive({me.pid, me.start_time + 1, me.pid_ns + 1}));
  // A pid nobody has (above pid_max).
  EXPECT_FALSE(detail::creator_alive({0x3fffffff, 1, me.pid_ns}));
}

}  // namespace
