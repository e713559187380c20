// Growing this process's fd table once, ahead of need.
//
// The kernel grows a process's fd table by doubling it when an fd beyond
// it is allocated, and while another thread shares the table (any
// multi-threaded host: Node.js, a program with a thread pool) it waits for
// an RCU grace period first: 5-30 ms on a small VM, inside whichever call
// crossed the boundary (a test program with one sleeping second thread:
// 22.5 / 31.2 / 14.6 / 5.5 / 22.4 ms at fd 256 / 512 / 1,024 / 2,048 /
// 4,096; the growths at 64 and 128 took under 0.5 ms). spawn() makes pipes and
// pidfds, so without this each crossing would hold the loop that long.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>

#include "detail/errno_text.hpp"
#include "detail/fd.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {

void reserve_fd_table(int source_fd, std::size_t fds) noexcept {
  if (fds == 0 || source_fd < 0) return;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    const int e = errno;
    try {
      logger()->debug("fd table not reserved: getrlimit(RLIMIT_NOFILE) failed: {}", errno_text(e));
    } catch (...) {
    }
    return;
  }
  std::size_t cap = std::min<std::size_t>(fds, INT_MAX);
  if (lim.rlim_cur != RLIM_INFINITY) cap = std::min<std::size_t>(cap, lim.rlim_cur);
  if (cap == 0) return;
  const int top = static_cast<int>(cap - 1);
  // Taken: the table already reaches it. Free: the lowest free fd from
  // `top` on lands inside the table when the table reaches it (no cost),
  // else the table grows to fit it, once.
  if (::fcntl(top, F_GETFD) != -1) return;
  const int fd = ::fcntl(source_fd, F_DUPFD_CLOEXEC, top);
  if (fd < 0) {
    const int e = errno;
    try {
      logger()->debug("fd table not reserved for {} descriptors: {}", cap, errno_text(e));
    } catch (...) {
    }
    return;
  }
  ::close(fd);
}

}  // namespace payloadrun::detail
