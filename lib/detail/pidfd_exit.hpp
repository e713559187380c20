// Exit status through a pidfd after the kernel reaped the child
// (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux >= 6.15): exact exit codes
// whatever the host does with SIGCHLD.
#pragma once

#include <optional>

namespace payloadrun::detail {

/// True when this kernel reports exit status through pidfds (probed once
/// per process with a child that exits at once).
bool pidfd_exit_info_supported() noexcept;

/// The wait status (as waitpid gives it) of the reaped process behind
/// `pidfd`, or nullopt when the kernel cannot tell (or it is a zombie not
/// yet reaped: the pidfd gets its status at release).
std::optional<int> pidfd_exit_status(int pidfd) noexcept;

}  // namespace payloadrun::detail
