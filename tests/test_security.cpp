// Security properties (issue "reliability"), each asserted on real
// processes and files: the child's environment is exactly what the payload
// specifies (the supervisor's own by default), argv reaches the binary
// literally with no shell in between, and ring files are private unless
// configured otherwise. (Cgroup names that try to escape the parent:
// test_cgroup.cpp CgroupName.*; untrusted ring bytes: test_ring.cpp
// GarbageRingNeverCrashesTheConsumer and fuzz/.)
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "payloadrun/ring_producer.hpp"

extern "C" char** environ;

using namespace payloadrun;
using namespace payloadrun_test;
using ::testing::UnorderedElementsAreArray;

namespace {

std::vector<std::string> split_nul(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\0') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  EXPECT_EQ(start, s.size()) << "unterminated entry";
  return out;
}

std::vector<std::string> own_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

class Security : public ProcessTest {};

TEST_F(Security, ChildInheritsExactlyTheSupervisorsEnvironmentByDefault) {
  ::setenv("PAYLOADRUN_SECURITY_MARK", "x=y; $(not run)", 1);
  auto c = sup().payload(child_payload("env", {"env-dump"})).run();
  ::unsetenv("PAYLOADRUN_SECURITY_MARK");
  ASSERT_EQ(c.metrics.exit_code, 0);
  std::vector<std::string> expected = own_environment();
  expected.push_back("PAYLOADRUN_SECURITY_MARK=x=y; $(not run)");
  EXPECT_THAT(split_nul(c.stdout_text), UnorderedElementsAreArray(expected))
      << "nothing added, nothing dropped";
}

TEST_F(Security, ChildEnvironmentIsExactlyWhatThePayloadSpecifies) {
  Supervisor& s = sup();
  // A cleared environment plus two variables: exactly those two.
  auto only = s.payload(child_payload("env", {"env-dump"}))
                  .clear_env()
                  .env("A", "1")
                  .env("B", "two words")
                  .run();
  EXPECT_THAT(split_nul(only.stdout_text), UnorderedElementsAreArray({"A=1", "B=two words"}));

  // Inherited, one overridden, one removed: the rest untouched.
  ::setenv("PAYLOADRUN_SECURITY_KEEP", "kept", 1);
  ::setenv("PAYLOADRUN_SECURITY_DROP", "secret", 1);
  ::setenv("PAYLOADRUN_SECURITY_OVER", "old", 1);
  auto edited = s.payload(child_payload("env", {"env-dump"}))
                    .env_remove("PAYLOADRUN_SECURITY_DROP")
                    .env("PAYLOADRUN_SECURITY_OVER", "new")
                    .run();
  std::vector<std::string> expected;
  for (const auto& e : own_environment()) {
    if (e.rfind("PAYLOADRUN_SECURITY_DROP=", 0) == 0) continue;
    expected.push_back(e.rfind("PAYLOADRUN_SECURITY_OVER=", 0) == 0 ? "PAYLOADRUN_SECURITY_OVER=new" : e);
  }
  ::unsetenv("PAYLOADRUN_SECURITY_KEEP");
  ::unsetenv("PAYLOADRUN_SECURITY_DROP");
  ::unsetenv("PAYLOADRUN_SECURITY_OVER");
  EXPECT_THAT(split_nul(edited.stdout_text), UnorderedElementsAreArray(expected));
}

TEST_F(Security, ArgvReachesTheBinaryLiterallyWithNoShellInBetween) {
  const std::vector<std::string> hostile = {
      "; touch /tmp/payloadrun-pwned", "$(id)", "`id`", "*", "a b", "", "line\nbreak",
      "'quoted'", "\"dq\"", "|", "&&", "> /dev/null", "$HOME", "~", "\\", "-c"};
  std::vector<std::string> args = {"argv-report"};
  args.insert(args.end(), hostile.begin(), hostile.end());
  auto c = sup().payload(child_payload("argv", args)).run();
  ASSERT_EQ(c.metrics.exit_code, 0) << c.stderr_text;
  EXPECT_EQ(split_nul(c.stdout_text), hostile) << "every argument arrives byte for byte";
  // The payload is our direct child running the binary itself: a shell in
  // between would be its parent, or its executable.
  EXPECT_EQ(c.stderr_text, std::to_string(::getpid()) + " " + self_exe());
  EXPECT_NE(::access("/tmp/payloadrun-pwned", F_OK), 0);
}

TEST_F(Security, RingFilesArePrivateUnlessConfiguredOtherwise) {
  const mode_t old_umask = ::umask(0);  // a permissive umask must not widen the default
  const std::string base = "payloadrun-test-" + std::to_string(::getpid()) + "-mode";
  for (const auto& [suffix, mode] : {std::pair<const char*, unsigned>{"-default", 0600}, {"-group", 0640}}) {
    const std::string name = base + suffix;
    RingOptions o;
    o.capacity = 8192;
    if (mode != 0600) o.mode = mode;
    {
      RingProducer p(name, o);
      struct stat st {};
      ASSERT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, mode) << name;
      EXPECT_EQ(st.st_uid, ::geteuid());
    }
    remove_ring(name);
  }
  ::umask(old_umask);
}

}  // namespace
