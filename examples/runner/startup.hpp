// payloadrun runner: the process setup done first in main, before any file
// is opened, and the fd budget that bounds the concurrency.
#pragma once

#include <cstddef>
#include <string>

namespace runner {

/// What start-up found and did.
struct StartupState {
  std::size_t nofile_soft = 0;  ///< RLIMIT_NOFILE soft limit after raising it
  std::size_t nofile_hard = 0;
  int stdio_reopened = 0;       ///< how many of fds 0-2 were closed (now /dev/null)
};

/// Reopen any of fds 0-2 that is closed onto /dev/null (so no report file
/// takes fd 1 or 2); ignore SIGPIPE (a vanished reader of stdout/stderr is
/// not fatal); with `block_interrupts` (`run`), block SIGINT and SIGTERM
/// for good (run.cpp reads them from a signalfd, so one that arrives while
/// the last payloads are reaped is still seen); raise the soft
/// RLIMIT_NOFILE to the hard limit.
StartupState prepare_process(bool block_interrupts);

/// File descriptors one running payload holds in the runner (pidfd, stdout
/// and stderr pipes), and those kept free for everything else (the loop,
/// the ring, a spawn's transient pipe ends, report files).
inline constexpr std::size_t fds_per_payload = 3;
inline constexpr std::size_t fds_reserved = 32;

/// How many payloads fit in `nofile` fds when `open_now` are already open.
std::size_t concurrency_that_fits(std::size_t nofile, std::size_t open_now);

/// The fds this process has open now.
std::size_t count_open_fds();

}  // namespace runner
