// The supervisor's watch set: every live payload's pidfd and output pipes
// in one epoll fd, which one uv_poll watches on the loop. Costs one
// epoll_ctl to add and one to remove per fd, where a libuv handle per fd
// costs five or six system calls more (uv_poll_init's probe, F_GETFL,
// FIONBIO) plus a close callback.
#pragma once

#include <cstdint>

namespace payloadrun::detail {

struct Invocation;

enum class WatchKind : std::uint8_t { exit, out, err, deadline };

/// What an event on a watched fd is about; lives in the Invocation (the
/// deadline timer's, with no invocation, in the supervisor).
struct WatchTag {
  Invocation* inv = nullptr;
  WatchKind kind = WatchKind::exit;
  bool watched = false;
};

}  // namespace payloadrun::detail
