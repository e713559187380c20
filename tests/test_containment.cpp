// Cgroup placement and containment through the supervisor, on the real
// cgroup2 filesystem: placement before the first instruction, clear errors,
// cgroup.kill for escapees, fresh per-invocation cgroups removed after.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "detail/cgroup.hpp"
#include "detail/errno_text.hpp"
#include "detail/log.hpp"
#include "fixture.hpp"

using namespace payloadrun;
using namespace payloadrun_test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// Levels are the application's (issue 15): the logger the library makes
// takes the level spdlog's registry gives new loggers, set by the
// application, never one of its own.
TEST(LibraryLogger, TakesTheApplicationsLevel) {
  spdlog::drop("payloadrun");
  const auto saved = spdlog::get_level();
  ::setenv("SPDLOG_LEVEL", "off", 1);  // ignored by the library: only load_env_levels() reads it
  spdlog::set_level(spdlog::level::debug);
  const auto made = detail::logger();
  EXPECT_EQ(made->level(), spdlog::level::debug);
  EXPECT_EQ(spdlog::get("payloadrun"), made);
  spdlog::drop("payloadrun");
  spdlog::set_level(spdlog::level::err);
  EXPECT_EQ(detail::logger()->level(), spdlog::level::err);
  // The application's own "payloadrun" logger is used as it is.
  spdlog::drop("payloadrun");
  auto own = std::make_shared<spdlog::logger>("payloadrun");
  own->set_level(spdlog::level::trace);
  spdlog::register_logger(own);
  EXPECT_EQ(detail::logger(), own);
  EXPECT_EQ(detail::logger()->level(), spdlog::level::trace);
  spdlog::drop("payloadrun");
  spdlog::set_level(saved);
  ::unsetenv("SPDLOG_LEVEL");
}

TEST(ErrnoText, NameWithTheMessageElseTheNumber) {
  EXPECT_EQ(detail::errno_text(ENOENT), "No such file or directory (ENOENT)");
  EXPECT_EQ(detail::errno_text(EACCES), "Permission denied (EACCES)");
  EXPECT_EQ(detail::errno_text(99999), "Unknown error 99999 (99999)");
}

class Containment : public ProcessTest {
 protected:
  void SetUp() override {
    ProcessTest::SetUp();
    const auto mount = detail::find_cgroup2_mount();
    const bool required = std::getenv("PAYLOADRUN_REQUIRE_CGROUP") != nullptr;
    if (!mount || ::access(mount->c_str(), W_OK) != 0) {
      if (required) FAIL() << "PAYLOADRUN_REQUIRE_CGROUP is set but no writable cgroup2 mount exists";
      GTEST_SKIP() << "no writable cgroup2 mount (needs root and cgroup2 in /proc/self/mountinfo)";
    }
    mount_ = *mount;
    parent_ = mount_ + "/payloadrun-containment-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(parent_.c_str(), 0755), 0) << std::strerror(errno);
  }

  void TearDown() override {
    ProcessTest::TearDown();
    if (parent_.empty()) return;
    // Children first; a test failure must not leave cgroups behind.
    std::error_code ec;
    for (int round = 0; round < 3; ++round) {
      for (const auto& e : fs::directory_iterator(parent_, ec)) {
        if (e.is_directory()) ::rmdir(e.path().c_str());
      }
    }
    EXPECT_EQ(::rmdir(parent_.c_str()), 0) << parent_ << ": " << std::strerror(errno);
  }

  SupervisorOptions options() {
    SupervisorOptions o;
    o.cgroup_parent = parent_;
    return o;
  }

  std::size_t child_cgroups() const {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(parent_)) n += e.is_directory();
    return n;
  }

  std::string relative(const std::string& abs) const { return abs.substr(mount_.size()); }

  std::string mount_;
  std::string parent_;
};

TEST_F(Containment, PayloadStartsInsideItsNamedCgroup) {
  ASSERT_EQ(::mkdir((parent_ + "/work").c_str(), 0755), 0);
  auto c = sup(options()).payload(child_payload("where", {"cgroup"})).in_cgroup("/work").run();
  EXPECT_EQ(c.metrics.exit_code, 0);
  // Its first act was to read /proc/self/cgroup: it was already inside.
  EXPECT_THAT(c.stdout_text, HasSubstr("0::" + relative(parent_) + "/work\n"));
  ::rmdir((parent_ + "/work").c_str());
}

TEST_F(Containment, OwnCgroupIsFreshAndRemovedAfterwards) {
  auto c = sup(options()).payload(child_payload("own", {"cgroup"})).own_cgroup().run();
  EXPECT_THAT(c.stdout_text, HasSubstr("0::" + relative(parent_) + "/payload-"));
  EXPECT_EQ(child_cgroups(), 0u) << "the per-invocation cgroup must be removed";
  EXPECT_TRUE(c.metrics.cgroup_cpu_usage_usec.has_value()) << "cpu.stat is always in cgroup2";
  if (::access((parent_ + "/memory.peak").c_str(), F_OK) != 0) {
    EXPECT_FALSE(c.metrics.cgroup_memory_peak_bytes.has_value());
  }
}

TEST_F(Containment, BadCgroupsAreClearSpawnErrorsWithNoChildLeft) {
  Supervisor& s = sup(options());
  try {
    s.payload(child_payload("x", {"exit", "0"})).in_cgroup("missing").spawn();
    ADD_FAILURE() << "a missing cgroup was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::cgroup);
    EXPECT_THAT(e.what(), HasSubstr(parent_ + "/missing"));
    EXPECT_THAT(e.what(), HasSubstr("spawn payload 'x'"));
  }
  EXPECT_EQ(s.live(), 0u);
  // No cgroup parent configured at all.
  Supervisor plain(&loop_);
  try {
    plain.payload(child_payload("x", {"exit", "0"})).own_cgroup().spawn();
    ADD_FAILURE() << "own_cgroup without a parent was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::cgroup);
    EXPECT_THAT(e.what(), HasSubstr("cgroup_parent"));
  }
}

TEST_F(Containment, CreateCgroupsOptionMakesMissingNames) {
  SupervisorOptions o = options();
  o.create_cgroups = true;
  auto c = sup(o).payload(child_payload("made", {"cgroup"})).in_cgroup("made/here").run();
  EXPECT_THAT(c.stdout_text, HasSubstr(relative(parent_) + "/made/here\n"));
  ::rmdir((parent_ + "/made/here").c_str());
  ::rmdir((parent_ + "/made").c_str());
}

pid_t escapee_pid(const Completion& c) { return static_cast<pid_t>(std::atoi(c.stdout_text.c_str())); }

// Dead: gone, or a zombie waiting for init to reap it (kill(pid, 0) still
// succeeds on a zombie).
bool is_dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

TEST_F(Containment, KillTimeoutAndDropReachEscapeesInAnOwnCgroup) {
  Supervisor& s = sup(options());
  const Payload escaper = child_payload("escaper", {"setsid-report", "60000"});
  // The leader exits at once; the escapee is killed by cgroup.kill.
  auto natural = s.payload(escaper).own_cgroup().run();
  EXPECT_FALSE(natural.metrics.drain_cut_short);
  const pid_t e1 = escapee_pid(natural);
  ASSERT_GT(e1, 0);
  EXPECT_TRUE(is_dead(e1)) << "the setsid() escapee must be dead";

  const Payload bg = [] {
    Payload p = Payload::binary_payload("bg", "sh");
    p.default_args = {"-c", "setsid sleep 60 & exec sleep 60"};
    return p;
  }();
  const auto t0 = std::chrono::steady_clock::now();
  {
    PayloadHandle h = s.payload(bg).own_cgroup().spawn();
    ::usleep(100000);
    auto c = h.kill();
    EXPECT_EQ(c.metrics.exit_code, -1);
    EXPECT_FALSE(c.metrics.drain_cut_short) << "cgroup.kill closed the pipes";
  }
  {
    auto c = s.payload(bg).own_cgroup().timeout(200ms).run();
    EXPECT_TRUE(c.metrics.timed_out);
    EXPECT_FALSE(c.metrics.drain_cut_short);
  }
  {
    PayloadHandle h = s.payload(bg).own_cgroup().spawn();
    ::usleep(100000);
  }  // dropped: killed, reaped, cgroup emptied and removed
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  EXPECT_EQ(child_cgroups(), 0u) << "every per-invocation cgroup is empty and removed";
}

TEST_F(Containment, WithoutACgroupAnEscapeeOutlivesTheKill) {
  // The seed's documented limitation: killpg cannot reach a setsid()
  // descendant. The drain grace bounds our wait; the escapee lives on.
  SupervisorOptions o = options();
  o.drain_grace = 200ms;
  auto c = sup(o).payload(child_payload("escaper", {"setsid-report", "3000"})).run();
  EXPECT_TRUE(c.metrics.drain_cut_short);
  const pid_t escapee = escapee_pid(c);
  ASSERT_GT(escapee, 0);
  EXPECT_FALSE(is_dead(escapee)) << "outside a cgroup the escapee survives";
  ::kill(escapee, SIGKILL);  // not our child: init reaps it
}

TEST_F(Containment, TwoHundredPayloadsEachInAFreshCgroup) {
  Supervisor& s = sup(options(), 240s);
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    s.payload(child_payload("many", {"exit", "0"})).own_cgroup().spawn([&](Completion c) {
      ok += c.metrics.exit_code == 0 && c.metrics.cgroup_cpu_usage_usec.has_value();
    });
  }
  s.run();
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(child_cgroups(), 0u) << "every cgroup created was removed";
}

TEST_F(Containment, SupervisorDestroyedWithPayloadsInOwnCgroups) {
  Supervisor& s = sup(options());
  for (int i = 0; i < 10; ++i) {
    Payload p = Payload::binary_payload("bg", "sh");
    p.default_args = {"-c", "setsid sleep 60 & exec sleep 60"};
    s.payload(p).own_cgroup().spawn([](Completion) {});
  }
  ::usleep(200000);
  sup_.reset();
  EXPECT_EQ(child_cgroups(), 0u);
}

}  // namespace
