// Interrupts through a signalfd (interrupt.hpp).
#include "interrupt.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include <payloadrun/error.hpp>

#include "detail/errno_text.hpp"

namespace runner {
namespace {

sigset_t interrupt_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

InterruptWatch::InterruptWatch() {
  const sigset_t set = interrupt_set();
  sigset_t old;
  ::pthread_sigmask(SIG_BLOCK, &set, &old);
  restore_ = !sigismember(&old, SIGINT) || !sigismember(&old, SIGTERM);
  fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    const int e = errno;
    if (restore_) ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    throw payloadrun::Error(payloadrun::Errc::io, "signalfd for SIGINT/SIGTERM failed: " +
                                                      payloadrun::detail::errno_text(e));
  }
}

InterruptWatch::~InterruptWatch() {
  while (take() != 0) {
  }
  ::close(fd_);
  if (restore_) {
    const sigset_t set = interrupt_set();
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
}

int InterruptWatch::take() noexcept {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(fd_, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

int pending_interrupt() noexcept {
  sigset_t pending;
  sigemptyset(&pending);
  if (::sigpending(&pending) != 0) return 0;
  if (sigismember(&pending, SIGTERM)) return SIGTERM;
  if (sigismember(&pending, SIGINT)) return SIGINT;
  return 0;
}

const char* interrupt_name(int signum) noexcept {
  switch (signum) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "a signal";
  }
}

}  // namespace runner
