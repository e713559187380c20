// The supervisor's watch set (see watch_set.hpp): one epoll fd holding every
// live payload's pidfd and output pipes, watched by one uv_poll.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "detail/errno_text.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun::detail {
namespace {

#ifndef RWF_NOWAIT
constexpr int rwf_nowait = 0x00000008;
#else
constexpr int rwf_nowait = RWF_NOWAIT;
#endif

// Whether pipes honour preadv2(RWF_NOWAIT) here (Linux >= 5.10 or so): then
// no fd needs O_NONBLOCK set, one fcntl less per pipe.
bool probe_read_nowait() noexcept {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  char c = 0;
  iovec iov{&c, 1};
  const bool ok = ::preadv2(p[0], &iov, 1, -1, rwf_nowait) < 0 && errno == EAGAIN;
  ::close(p[0]);
  ::close(p[1]);
  return ok;
}

// Every event of a batch is pinned (its invocation's keepalive, set while
// any fd of it is watched) before any is handled, so handling one (which
// may abandon another) cannot free the next under us.
void on_set_readable(uv_poll_t* p, int status, int /*events*/) {
  auto* impl = static_cast<SupervisorImpl*>(p->data);
  dispatch(impl, "watch set", [&] {  // pins *impl: a callback may destroy the Supervisor
    if (status < 0) logger()->warn("polling the watch set failed: {}", uv_strerror(status));
    // At most four batches a turn and, with spawn pacing on, what is left
    // of this turn's spawn_slice (spawn_queue.cpp; the first event always
    // goes): the set is level-triggered, so what is left, even of a batch
    // already fetched, comes back next turn, after the loop has run its
    // timers and signals. (Unpaced, no time bound: a loop saturated with
    // spawns and kills falls behind on completions when they get a slice
    // per turn, measured: deadline lateness p99 0.1 s -> 0.3-0.6 s at 2,000
    // spawns/s.)
    constexpr int batch = 64;
    const bool timed = impl->options.spawn_slice.count() > 0;
    const Clock::time_point t0 = timed ? Clock::now() : Clock::time_point{};
    const Clock::duration spent_before = impl->turn_spent;
    const Clock::duration budget =
        timed ? std::max(Clock::duration::zero(), Clock::duration(impl->options.spawn_slice) - spent_before)
              : Clock::duration::zero();
    bool out_of_time = false;
    epoll_event evs[batch];
    int n = 0;
    int turns = 0;
    do {
      n = ::epoll_wait(impl->watch_set.get(), evs, batch, 0);
      std::shared_ptr<Invocation> pins[batch];
      for (int i = 0; i < n; ++i) {
        const auto* tag = static_cast<WatchTag*>(evs[i].data.ptr);
        if (tag->inv != nullptr) pins[i] = tag->inv->keepalive;
      }
      for (int i = 0; i < n; ++i) {
        auto* tag = static_cast<WatchTag*>(evs[i].data.ptr);
        if (!tag->watched) continue;  // closed earlier in this batch
        Invocation* inv = tag->inv;  // (none for the deadline timer)
        switch (tag->kind) {
          case WatchKind::exit: dispatch(impl, "pidfd", [&] { on_pidfd_ready(*inv); }); break;
          case WatchKind::out: dispatch(impl, "stdout", [&] { on_stream_ready(*inv, inv->out); }); break;
          case WatchKind::err: dispatch(impl, "stderr", [&] { on_stream_ready(*inv, inv->err); }); break;
          case WatchKind::deadline: dispatch(impl, "deadline timer", [&] { on_deadline_timer(*impl); }); break;
        }
        if (impl->destroyed || (timed && Clock::now() - t0 >= budget)) {
          out_of_time = true;
          break;
        }
      }
      release_pins(*impl);  // nothing of this batch refers to them any more
    } while (n == batch && !out_of_time && ++turns < 4 && !impl->destroyed);
    // Our own time: starts made by callbacks in here charged theirs.
    if (timed && !impl->destroyed) {
      const Clock::duration own = (Clock::now() - t0) - (impl->turn_spent - spent_before);
      if (own > Clock::duration::zero()) charge_turn(*impl, own);
    }
  });
}

}  // namespace

void init_watch_set(SupervisorImpl& impl) {
  impl.watch_set = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl.watch_set) {
    const int e = errno;
    throw Error(Errc::io, fmt::format("Supervisor: epoll_create1 failed: {}", errno_text(e)), e);
  }
  auto poll = std::make_unique<uv_poll_t>();
  const int rc = uv_poll_init(impl.loop, poll.get(), impl.watch_set.get());
  if (rc != 0) {
    throw Error(Errc::io, fmt::format("Supervisor: cannot watch its epoll fd: {}", uv_strerror(rc)), -rc);
  }
  poll->data = &impl;
  // Started once and referenced only while it watches something: stopping
  // and restarting it whenever the set empties (every payload at K=1) cost
  // libuv three epoll_ctl calls a payload. An empty epoll fd never reports.
  uv_poll_start(poll.get(), UV_READABLE, on_set_readable);
  uv_unref(reinterpret_cast<uv_handle_t*>(poll.get()));
  impl.watch_set_poll = std::move(poll);
  impl.read_nowait = probe_read_nowait();
  // The deadline timer (exit.cpp). Without it deadlines still hold, to the
  // millisecond, through each invocation's libuv timer.
  impl.deadline_timer = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  impl.deadline_tag.kind = WatchKind::deadline;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &impl.deadline_tag;
  if (!impl.deadline_timer ||
      ::epoll_ctl(impl.watch_set.get(), EPOLL_CTL_ADD, impl.deadline_timer.get(), &ev) != 0) {
    const int e = errno;
    logger()->warn("Supervisor: no deadline timerfd ({}); deadlines are enforced to the millisecond",
                   errno_text(e));
    impl.deadline_timer.reset();
  } else {
    impl.deadline_tag.watched = true;
  }
}

void release_pins(SupervisorImpl& impl) noexcept {
  // Freeing one may free more (a callback that was never delivered may hold
  // a PayloadHandle, whose drop abandons another): never clear the vector
  // while it can grow.
  while (!impl.released_pins.empty()) {
    auto batch = std::move(impl.released_pins);
    impl.released_pins.clear();
    batch.clear();
  }
}

void close_watch_set(SupervisorImpl& impl) noexcept {
  release_pins(impl);
  if (!impl.watch_set_poll) return;
  uv_poll_stop(impl.watch_set_poll.get());
  // Freed in its close callback; the epoll fd itself closes with the Impl.
  uv_close(reinterpret_cast<uv_handle_t*>(impl.watch_set_poll.release()), [](uv_handle_t* h) {
    std::unique_ptr<uv_poll_t> owned(reinterpret_cast<uv_poll_t*>(h));
  });
}

void close_deadline_timer(SupervisorImpl& impl) noexcept {
  if (!impl.deadline_timer) return;
  ::epoll_ctl(impl.watch_set.get(), EPOLL_CTL_DEL, impl.deadline_timer.get(), nullptr);
  impl.deadline_tag.watched = false;
  impl.deadline_timer.reset();
}

void watch_fd(Invocation& inv, int fd, WatchTag& tag, const char* what) {
  SupervisorImpl& impl = *inv.impl;
  if (!impl.read_nowait && tag.kind != WatchKind::exit) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      const int e = errno;
      throw Error(Errc::io,
                  fmt::format("spawn payload '{}': cannot make its {} non-blocking: {}",
                              inv.payload->name, what, errno_text(e)),
                  e);
    }
  }
  tag.inv = &inv;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &tag;
  if (::epoll_ctl(impl.watch_set.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int e = errno;
    throw Error(Errc::io,
                fmt::format("spawn payload '{}': cannot watch its {}: {}", inv.payload->name, what,
                            errno_text(e)),
                e);
  }
  tag.watched = true;
  if (inv.watched_fds++ == 0) hold(inv);  // pinned while watched
  if (impl.watched_fds++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(impl.watch_set_poll.get()));
}

void unwatch_fd(Invocation& inv, int fd, WatchTag& tag) noexcept {
  if (!tag.watched) return;
  tag.watched = false;
  SupervisorImpl* impl = inv.impl;
  if (impl == nullptr) return;  // cannot happen: the supervisor unwatches all before it goes
  if (::epoll_ctl(impl->watch_set.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
    const int e = errno;
    logger()->warn("payload '{}': removing fd {} from the watch set failed: {}", inv.payload->name,
                   fd, errno_text(e));
  }
  if (--impl->watched_fds == 0 && impl->watch_set_poll) {
    uv_unref(reinterpret_cast<uv_handle_t*>(impl->watch_set_poll.get()));
  }
  if (--inv.watched_fds == 0) release_later(inv);  // freed at a safe point
}

long read_nowait(const SupervisorImpl& impl, int fd, char* buf, std::size_t size) noexcept {
  ssize_t n;
  do {
    if (impl.read_nowait) {
      iovec iov{buf, size};
      n = ::preadv2(fd, &iov, 1, -1, rwf_nowait);
    } else {
      n = ::read(fd, buf, size);
    }
  } while (n < 0 && errno == EINTR);
  return static_cast<long>(n);
}

}  // namespace payloadrun::detail
