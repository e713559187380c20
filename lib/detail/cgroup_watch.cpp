// The own cgroup's "populated" flag: an invocation placed in a cgroup of its
// own completes only once nothing is left alive in it (kernfs notifies
// pollers of cgroup.events with POLLPRI when the flag flips to 0).
#include <poll.h>
#include <unistd.h>

#include "detail/invocation.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {
namespace {

void on_cgroup_event(uv_poll_t* p, int status, int /*events*/) {
  auto* inv = static_cast<Invocation*>(p->data);
  dispatch(inv->impl, "cgroup.events", [&] {
    if (status < 0) {
      logger()->warn("payload '{}': watching cgroup.events failed: {}", inv->payload->name,
                     uv_strerror(status));
    }
    refresh_cgroup_empty(*inv);
    maybe_complete(*inv);
  });
}

}  // namespace

void start_cgroup_watch(Invocation& inv) {
  if (!inv.cgroup || !inv.cgroup_owned) return;
  inv.cgroup_events = inv.cgroup->open_events();
  inv.cgroup_empty = false;
  const int rc =
      uv_poll_init(inv.impl->loop, &rare_handles(inv).cgroup_poll.handle, inv.cgroup_events.get());
  if (rc != 0) {
    logger()->warn("payload '{}': cannot watch {}/cgroup.events: {}", inv.payload->name,
                   inv.cgroup->path(), uv_strerror(rc));
    inv.cgroup_empty = true;
    return;
  }
  slot_opened(inv, inv.rare->cgroup_poll);
  uv_poll_start(&inv.rare->cgroup_poll.handle, UV_PRIORITIZED, on_cgroup_event);
}

void refresh_cgroup_empty(Invocation& inv) noexcept {
  if (inv.cgroup_empty || !inv.cgroup) return;
  try {
    inv.cgroup_empty = !inv.cgroup->populated();
  } catch (const std::exception& e) {
    logger()->warn("payload '{}': reading {}/cgroup.events failed: {}", inv.payload->name,
                   inv.cgroup->path(), e.what());
    inv.cgroup_empty = true;  // cannot watch it: do not wait forever
  }
  if (inv.cgroup_empty && inv.rare) close_slot(inv, inv.rare->cgroup_poll);
}

void give_up_cgroup(Invocation& inv) noexcept {
  if (!inv.cgroup_empty) {
    logger()->warn("payload '{}': {} did not empty in time; leaving it", inv.payload->name,
                   inv.cgroup->path());
    inv.cgroup_empty = true;
  }
  if (inv.rare) close_slot(inv, inv.rare->cgroup_poll);
}

void wait_cgroup_empty_blocking(Invocation& inv) noexcept {
  if (!inv.cgroup || !inv.cgroup_owned || inv.cgroup_empty) return;
  const auto until = Clock::now() + std::chrono::seconds(5);
  try {
    while (inv.cgroup->populated() && Clock::now() < until) {
      if (inv.cgroup_events) {
        pollfd pfd{inv.cgroup_events.get(), POLLPRI, 0};
        ::poll(&pfd, 1, 10);
      } else {
        ::usleep(1000);
      }
    }
    inv.cgroup_empty = !inv.cgroup->populated();
  } catch (...) {
    inv.cgroup_empty = true;
  }
}

}  // namespace payloadrun::detail
