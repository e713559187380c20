// cgroup names and the cgroup2 mount (lib/detail/cgroup.hpp): names checked
// and normalised as the seed does, /proc/self/mountinfo parsing, the real
// mount. Cgroups on the real cgroup2 filesystem: test_cgroup_fs.cpp.
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup_util.hpp"
#include "detail/cgroup.hpp"
#include "error_util.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/supervisor.hpp"

namespace {

using payloadrun::Errc;
using payloadrun::Error;
using namespace payloadrun::detail;
using payloadrun_test::thrown;

// ---------------------------------------------------------------- naming

std::string name_error(std::string_view name) {
  const Error e = thrown([&] { validate_cgroup_name(name); });
  EXPECT_EQ(e.code(), Errc::invalid_argument) << name;
  return e.what();
}

TEST(CgroupName, StripsLeadingSlashLikeTheSeed) {
  EXPECT_EQ(validate_cgroup_name("/workload"), "workload");
  EXPECT_EQ(validate_cgroup_name("workload"), "workload");
  EXPECT_EQ(validate_cgroup_name("//workload"), "workload");
  EXPECT_EQ(validate_cgroup_name("a/b/c"), "a/b/c");
  // Dots inside a component are ordinary characters.
  EXPECT_EQ(validate_cgroup_name("a..b/...c/.hidden"), "a..b/...c/.hidden");
}

TEST(CgroupName, RejectsParentDirLikeTheSeed) {
  for (const char* n : {"../escape", "a/../b", "a/..", "..", "/.."}) {
    const auto msg = name_error(n);
    EXPECT_EQ(msg, "cgroup name '" + std::string(n) +
                       "' contains '..'; paths must stay within the supervisor's cgroup parent");
  }
}

TEST(CgroupName, RejectsNulLikeTheSeed) {
  const auto msg = name_error(std::string_view("bad\0name", 8));
  EXPECT_NE(msg.find("NUL"), std::string::npos) << msg;
  EXPECT_NE(msg.find("contains a NUL byte"), std::string::npos) << msg;
}

TEST(CgroupName, RejectsEmptyAfterStripLikeTheSeed) {
  EXPECT_EQ(name_error("/"), "cgroup name '/' is empty or resolves to the parent cgroup");
  EXPECT_EQ(name_error(""), "cgroup name '' is empty or resolves to the parent cgroup");
  EXPECT_NE(name_error("///").find("empty"), std::string::npos);
}

TEST(CgroupName, NormalisesPathFormsAsTheSeedJoinsThem) {
  // The seed joins these as paths; they name one cgroup each.
  EXPECT_EQ(validate_cgroup_name("w/"), "w");
  EXPECT_EQ(validate_cgroup_name("/w/"), "w");
  EXPECT_EQ(validate_cgroup_name("a//b"), "a/b");
  EXPECT_EQ(validate_cgroup_name("./w"), "w");
  EXPECT_EQ(validate_cgroup_name("a/./b/."), "a/b");
  EXPECT_EQ(validate_cgroup_name("a///b//c/"), "a/b/c");
  for (const char* n : {".", "./", "/./.", "//"}) {
    EXPECT_NE(name_error(n).find("is empty or resolves to the parent cgroup"), std::string::npos) << n;
  }
  EXPECT_NE(name_error("./../a").find("'..'"), std::string::npos);
  EXPECT_NE(name_error("a\nb").find("newline"), std::string::npos);
  EXPECT_NE(name_error("a/" + std::string(256, 'x')).find("longer than 255"), std::string::npos);
  EXPECT_EQ(validate_cgroup_name(std::string(255, 'x')), std::string(255, 'x'));
}

TEST(CgroupName, InCgroupNamesThePayloadInItsError) {
  payloadrun::Supervisor s;
  payloadrun::PayloadRun run = s.payload(payloadrun::Payload::binary_payload("worker", "/bin/true"));
  try {
    run.in_cgroup("a/../b");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_EQ(std::string(e.what()), "payload 'worker': cgroup name 'a/../b' contains '..'; paths must "
                                     "stay within the supervisor's cgroup parent");
  }
  EXPECT_EQ(*run.in_cgroup("./w//x/").cgroup(), "w/x");
}

// ------------------------------------------------------- mountinfo parsing

class Mountinfo : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/payloadrun-mountinfo-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(Mountinfo, NoCgroup2Line) {
  const auto p = write("none",
                       "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
                       "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                       "50 22 0:40 / /srv rw - tmpfs cgroup2 rw\n");  // source, not fstype
  EXPECT_EQ(find_cgroup2_mount(p), std::nullopt);
  EXPECT_EQ(find_cgroup2_mount(write("empty", "")), std::nullopt);
  EXPECT_EQ(find_cgroup2_mount(dir_ + "/missing"), std::nullopt);
}

TEST_F(Mountinfo, EscapedSpacesAndOptionalFields) {
  const auto p = write("escaped",
                       "41 31 0:38 / /mnt/my\\040cgroup\\011x rw,relatime shared:5 master:1 - "
                       "cgroup2 cgroup2 rw,nsdelegate\n");
  EXPECT_EQ(find_cgroup2_mount(p), std::optional<std::string>("/mnt/my cgroup\tx"));
}

TEST_F(Mountinfo, SeveralLinesPicksTheCgroup2One) {
  const auto p = write("several",
                       "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                       "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                       "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
                       "90 22 0:38 / /elsewhere rw,relatime - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(find_cgroup2_mount(p), std::optional<std::string>("/sys/fs/cgroup/unified"));
}

TEST(CgroupMount, RealMountinfo) {
  const auto mount = find_cgroup2_mount();
  if (!mount) {
    PAYLOADRUN_CGROUP_UNAVAILABLE("no cgroup2 mount in /proc/self/mountinfo");
  }
  struct statfs sfs {};
  ASSERT_EQ(::statfs(mount->c_str(), &sfs), 0) << *mount;
  EXPECT_EQ(sfs.f_type, static_cast<decltype(sfs.f_type)>(CGROUP2_SUPER_MAGIC)) << *mount;
}

}  // namespace
