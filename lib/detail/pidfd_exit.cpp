#include "detail/pidfd_exit.hpp"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace payloadrun::detail {
namespace {

// Debian 12's headers predate PIDFD_GET_INFO (uapi linux/pidfd.h, 6.13+;
// PIDFD_INFO_EXIT 6.15+): the first 64 bytes of struct pidfd_info
// (PIDFD_INFO_SIZE_VER0), which the kernel accepts by size.
struct PidfdInfo {
  std::uint64_t mask;
  std::uint64_t cgroupid;
  std::uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  std::int32_t exit_code;  // offset 60
};
static_assert(sizeof(PidfdInfo) == 64);
constexpr unsigned long pidfd_get_info = _IOWR(0xFF, 11, PidfdInfo);
constexpr std::uint64_t pidfd_info_exit = 1u << 3;

bool probe() noexcept {
  // A child that exits at once with a known code; its status must come
  // back through its pidfd (whether or not the kernel auto-reaped it).
  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD | CLONE_VFORK;
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  const long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) ::_exit(42);
  if (pid < 0 || pidfd < 0) return false;
  // Reap it first (unless the kernel already did): the pidfd gets the
  // status when the child is released, not while it is a zombie.
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) != 0 &&
         errno == EINTR) {
  }
  const std::optional<int> st = pidfd_exit_status(pidfd);
  ::close(pidfd);
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 42;
}

}  // namespace

bool pidfd_exit_info_supported() noexcept {
  static const bool supported = probe();  // a fact about the kernel, found once
  return supported;
}

std::optional<int> pidfd_exit_status(int pidfd) noexcept {
  PidfdInfo info{};
  info.mask = pidfd_info_exit;
  if (::ioctl(pidfd, pidfd_get_info, &info) != 0) return std::nullopt;
  if ((info.mask & pidfd_info_exit) == 0) return std::nullopt;
  return info.exit_code;
}

}  // namespace payloadrun::detail
