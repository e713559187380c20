// Process start-up (startup.hpp).
#include "startup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace runner {

StartupState prepare_process(bool block_interrupts) {
  StartupState state;
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = ::open("/dev/null", O_RDWR);  // the lowest free fd: this one
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
    ++state.stdio_reopened;
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (block_interrupts) {
    sigset_t interrupts;
    sigemptyset(&interrupts);
    sigaddset(&interrupts, SIGINT);
    sigaddset(&interrupts, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &interrupts, nullptr);
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    if (lim.rlim_cur < lim.rlim_max) {
      rlimit raised = lim;
      raised.rlim_cur = lim.rlim_max;
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
    }
    state.nofile_soft = static_cast<std::size_t>(lim.rlim_cur);
    state.nofile_hard = static_cast<std::size_t>(lim.rlim_max);
  }
  return state;
}

std::size_t concurrency_that_fits(std::size_t nofile, std::size_t open_now) {
  const std::size_t used = open_now + fds_reserved;
  return nofile > used ? (nofile - used) / fds_per_payload : 0;
}

std::size_t count_open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 3;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

}  // namespace runner
