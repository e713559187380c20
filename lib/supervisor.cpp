// The public face: Supervisor (loop, SIGCHLD watcher, shared buffers,
// teardown) and PayloadHandle (the terminal calls).
#include <fcntl.h>
#include <signal.h>

#include <fmt/format.h>

#include "detail/pidfd_exit.hpp"
#include "detail/cgroup.hpp"
#include "detail/errno_text.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/ring.hpp"

namespace payloadrun {

using detail::Invocation;
using detail::Phase;
using detail::SupervisorImpl;

// ------------------------------------------------------------- PayloadHandle

PayloadHandle::PayloadHandle(std::shared_ptr<Invocation> inv) : inv_(std::move(inv)) {}
PayloadHandle::PayloadHandle(PayloadHandle&&) noexcept = default;

PayloadHandle& PayloadHandle::operator=(PayloadHandle&& o) noexcept {
  if (this != &o) {
    PayloadHandle dropped(std::move(*this));
    inv_ = std::move(o.inv_);
  }
  return *this;
}

PayloadHandle::~PayloadHandle() {
  if (!inv_ || detail::is_consumed(*inv_)) return;
  if (inv_->phase == Phase::completed) {
    const bool recorded = inv_->recorded;  // at the Supervisor's destruction
    detail::drop_result(*inv_);
    if (recorded) return;
    detail::logger()->warn(
        "PayloadHandle for '{}' dropped after its payload ended but before wait/kill/try_wait; "
        "metrics not recorded.",
        inv_->payload->name);
    return;
  }
  if (inv_->phase == Phase::abandoned) return;  // the Supervisor's destruction said so
  detail::abandon_invocation(*inv_);
  detail::logger()->warn(
      "PayloadHandle for '{}' dropped without wait/kill; process group SIGKILLed, metrics not "
      "recorded.",
      inv_->payload->name);
}

const std::string& PayloadHandle::payload_name() const noexcept { return inv_->payload->name; }

std::optional<int> PayloadHandle::pid() const noexcept {
  if (!inv_ || detail::is_consumed(*inv_) || inv_->phase == Phase::queued) return std::nullopt;
  return inv_->pid;
}

bool PayloadHandle::done() const noexcept { return inv_ && detail::is_complete(*inv_); }

namespace {

[[noreturn]] void throw_consumed(const Invocation& inv) {
  throw Error(Errc::already_consumed,
              fmt::format("PayloadHandle for '{}' already consumed by a prior "
                          "wait/kill/try_wait/on_exit call; each handle can only produce one "
                          "(AssertResult, PayloadMetrics) pair",
                          inv.payload->name));
}

void ensure_usable(const std::shared_ptr<Invocation>& inv) {
  if (!inv) throw Error(Errc::already_consumed, "PayloadHandle is empty (moved from)");
  if (detail::is_consumed(*inv)) throw_consumed(*inv);
}

[[noreturn]] void throw_abandoned(const Invocation& inv) {
  throw Error(Errc::shut_down,
              fmt::format("payload '{}': the supervisor was destroyed while it ran; it was killed "
                          "and its metrics are lost",
                          inv.payload->name));
}

[[noreturn]] void throw_in_callback(const std::string& what) {
  throw Error(Errc::in_callback,
              fmt::format("{} blocks and cannot be called from inside a loop callback (uv_run is "
                          "not reentrant); use spawn(callback) or on_exit() there",
                          what));
}

// One turn of the loop from a blocking call: `impl` stays alive whatever
// a callback destroys meanwhile.
void drive_once(SupervisorImpl& impl, uv_run_mode mode) {
  const std::shared_ptr<SupervisorImpl> pin = impl.shared_from_this();
  ++pin->drive_depth;
  uv_run(pin->loop, mode);
  --pin->drive_depth;
}

void drive_until_done(Invocation& inv, const char* what) {
  while (!detail::is_complete(inv)) {
    if (inv.impl == nullptr || inv.phase == Phase::abandoned) throw_abandoned(inv);
    if (detail::in_loop_callback(*inv.impl)) {
      throw_in_callback(fmt::format("PayloadHandle for '{}': {}()", inv.payload->name, what));
    }
    drive_once(*inv.impl, UV_RUN_ONCE);
  }
}

}  // namespace

Completion PayloadHandle::wait() {
  ensure_usable(inv_);
  drive_until_done(*inv_, "wait");
  return detail::take_result(*inv_);
}

Completion PayloadHandle::kill() {
  ensure_usable(inv_);
  detail::request_kill(*inv_);
  drive_until_done(*inv_, "kill");
  return detail::take_result(*inv_);
}

std::optional<Completion> PayloadHandle::try_wait() {
  ensure_usable(inv_);
  if (!detail::is_complete(*inv_) && inv_->impl != nullptr && !detail::in_loop_callback(*inv_->impl)) {
    drive_once(*inv_->impl, UV_RUN_NOWAIT);
  }
  if (detail::is_complete(*inv_)) return detail::take_result(*inv_);
  if (inv_->impl == nullptr || inv_->phase == Phase::abandoned) throw_abandoned(*inv_);
  return std::nullopt;
}

void PayloadHandle::on_exit(CompletionCallback cb) {
  ensure_usable(inv_);
  if (detail::is_complete(*inv_)) {
    Completion c = detail::take_result(*inv_);
    cb(std::move(c));
    return;
  }
  if (inv_->impl == nullptr || inv_->phase == Phase::abandoned) throw_abandoned(*inv_);
  inv_->callback = std::move(cb);
  inv_->delivery = detail::Delivery::callback;
}

void PayloadHandle::kill_async() {
  ensure_usable(inv_);
  detail::request_kill(*inv_);
}

// ---------------------------------------------------------------- Supervisor

namespace {

void on_sigchld(uv_signal_t* /*h*/, int /*signum*/) {
  // Exits are seen through pidfds; this watcher exists so SIGCHLD is never
  // SIG_IGN while we have children (the kernel would reap them for us).
}

void init_impl(SupervisorImpl& impl) {
  if (impl.options.index_stride == 0 || impl.options.index_offset >= impl.options.index_stride) {
    throw Error(Errc::invalid_argument,
                fmt::format("Supervisor: index_offset ({}) must be below index_stride ({}); "
                            "slice I of N uses offset I and stride N",
                            impl.options.index_offset, impl.options.index_stride));
  }
  impl.emitter = impl.options.emitter;
  if (!impl.emitter) {  // a ring: options.ring, else $PAYLOADRUN_RING (ring.cpp)
    const char* env = std::getenv("PAYLOADRUN_RING");
    std::string ring = !impl.options.ring.empty() ? impl.options.ring : env != nullptr ? env : "";
    if (!ring.empty()) impl.emitter = std::make_shared<RingEmitter>(impl.loop, ring);
  }
  if (!impl.options.cgroup_parent.empty()) {
    impl.cgroup_parent = detail::resolve_cgroup_parent(impl.options.cgroup_parent);
    detail::sweep_stale_cgroups(impl.cgroup_parent);
    impl.swept_cgroup_bases.insert(impl.cgroup_parent);
  }
  impl.dev_null = detail::UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!impl.dev_null) {
    const int e = errno;
    throw Error(Errc::io, fmt::format("Supervisor: cannot open /dev/null: {}", detail::errno_text(e)), e);
  }
  detail::reserve_fd_table(impl.dev_null.get(), impl.options.reserve_fds);
  impl.read_buffer = std::make_unique<char[]>(SupervisorImpl::read_buffer_size);
  impl.child_stack = std::make_unique<char[]>(SupervisorImpl::child_stack_size);
  detail::init_spawn_slots(impl);
  detail::init_watch_set(impl);

  detail::ensure_exit_status_kept(impl);
}

void on_sigchld_closed(uv_handle_t* h) {
  // Reclaim the handle's memory now that libuv is done with it.
  std::unique_ptr<uv_signal_t> owned(reinterpret_cast<uv_signal_t*>(h));
}

}  // namespace

namespace detail {

// SIGCHLD set to SIG_IGN (or SA_NOCLDWAIT) makes the kernel reap our
// children itself and hide their exit status from waitid. On Linux >= 6.15
// the pidfd keeps it: then nothing is installed and the disposition is
// never touched, whatever the host does with SIGCHLD, whenever. Older
// kernels: checked at construction and at every spawn (the seed's per-run
// guard); anything but plain SIG_DFL gets a libuv watcher, which keeps a
// handler installed for as long as we live (libuv shares it among
// watchers; it may be another Supervisor's, which may go first).
void ensure_exit_status_kept(SupervisorImpl& impl) {
  if (impl.shut_down) return;
  if (impl.sigchld || pidfd_exit_info_supported()) return;
  struct sigaction current {};
  ::sigaction(SIGCHLD, nullptr, &current);
  if (current.sa_handler == SIG_DFL && (current.sa_flags & SA_NOCLDWAIT) == 0) return;
  impl.sigchld_original = current;
  // Restore at the end only a disposition (SIG_IGN, SA_NOCLDWAIT), never a
  // handler function: that one belongs to whoever installed it.
  impl.sigchld_restore = current.sa_handler == SIG_IGN || current.sa_handler == SIG_DFL;
  impl.sigchld = std::make_unique<uv_signal_t>();
  uv_signal_init(impl.loop, impl.sigchld.get());
  uv_signal_start(impl.sigchld.get(), on_sigchld, SIGCHLD);
  uv_unref(reinterpret_cast<uv_handle_t*>(impl.sigchld.get()));
}

void close_sigchld(SupervisorImpl& impl) noexcept {
  if (!impl.sigchld) return;
  uv_signal_stop(impl.sigchld.get());
  uv_close(reinterpret_cast<uv_handle_t*>(impl.sigchld.release()), on_sigchld_closed);
  // Restore the host's disposition unless another watcher still needs
  // SIGCHLD (libuv leaves SIG_DFL once its last watcher stopped).
  struct sigaction current {};
  ::sigaction(SIGCHLD, nullptr, &current);
  if (impl.sigchld_restore && current.sa_handler == SIG_DFL) {
    ::sigaction(SIGCHLD, &impl.sigchld_original, nullptr);
  }
}

void finish_shutdown_if_idle(SupervisorImpl& impl) noexcept {
  if (!impl.shut_down || !impl.live.empty()) return;
  close_spawn_queue(impl);
  close_clock_refresh(impl);
  close_watch_set(impl);
  close_sigchld(impl);
}

SupervisorImpl::~SupervisorImpl() {
  if (!own_loop) return;
  if (loop_busy) {
    // The last reference went inside a uv_run of someone else's on our own
    // loop: closing it now would pull the loop from under that uv_run.
    try {
      logger()->error("Supervisor destroyed inside a callback of a uv_run it did not start on its "
                      "own loop; the loop cannot be closed and is left open");
    } catch (...) {
    }
    (void)own_loop.release();  // NOLINT: deliberately left for the running uv_run
    return;
  }
  // Let every close callback run, then close the loop.
  for (int i = 0; i < 1000 && uv_loop_alive(loop) != 0; ++i) uv_run(loop, UV_RUN_NOWAIT);
  if (uv_loop_close(loop) != 0) {
    try {
      logger()->error("Supervisor: its own loop still has handles (not ours) after shutdown");
    } catch (...) {
    }
  }
}

}  // namespace detail

Supervisor::Supervisor(SupervisorOptions options) : impl_(std::make_shared<SupervisorImpl>()) {
  impl_->options = std::move(options);
  auto loop = std::make_unique<uv_loop_t>();
  const int rc = uv_loop_init(loop.get());
  if (rc != 0) {
    throw Error(Errc::io, fmt::format("Supervisor: uv_loop_init failed: {}", uv_strerror(rc)), -rc);
  }
  impl_->loop = loop.get();
  impl_->own_loop = std::move(loop);
  init_impl(*impl_);  // on a throw, ~SupervisorImpl closes the loop
}

Supervisor::Supervisor(uv_loop_s* loop, SupervisorOptions options)
    : impl_(std::make_shared<SupervisorImpl>()) {
  if (loop == nullptr) throw Error(Errc::invalid_argument, "Supervisor: the loop is null");
  impl_->options = std::move(options);
  impl_->loop = loop;
  init_impl(*impl_);
}

Supervisor::~Supervisor() {
  SupervisorImpl& impl = *impl_;
  impl.shut_down = true;
  impl.destroyed = true;
  // Pin every invocation we know of: abandoning one destroys its callback,
  // which may hold (and so drop) handles of others.
  std::vector<std::shared_ptr<Invocation>> pins;
  pins.reserve(impl.live.size() + impl.awaiting_take.size());
  for (Invocation* inv : impl.live) pins.push_back(inv->shared_from_this());
  for (Invocation* inv : impl.awaiting_take) pins.push_back(inv->shared_from_this());
  for (auto& inv : pins) {
    if (inv->phase == Phase::completed || inv->phase == Phase::finished ||
        inv->phase == Phase::abandoned) {
      continue;
    }
    detail::abandon_invocation(*inv);
    detail::logger()->warn("Supervisor destroyed while payload '{}' ran; killed, metrics lost",
                           inv->payload->name);
  }
  for (auto& inv : pins) detail::detach_invocation(*inv);
  impl.live.clear();
  impl.awaiting_take.clear();
  impl.deadlines.clear();
  detail::close_spawn_queue(impl);
  detail::close_clock_refresh(impl);
  detail::close_watch_set(impl);
  detail::close_sigchld(impl);
  pins.clear();
  // The state goes with the last pin: here, or when the callback (or the
  // blocking call) that destroyed us returns.
  impl_.reset();
}
PayloadRun Supervisor::payload(const Payload& p) {
  return PayloadRun(*this, std::make_shared<const Payload>(p));
}

PayloadRun Supervisor::payload(std::shared_ptr<const Payload> p) {
  return PayloadRun(*this, std::move(p));
}

uv_loop_s* Supervisor::loop() const noexcept { return impl_->loop; }
const SupervisorOptions& Supervisor::options() const noexcept { return impl_->options; }
std::size_t Supervisor::live() const noexcept { return impl_->live.size(); }

void Supervisor::run() {
  if (detail::in_loop_callback(*impl_)) throw_in_callback("Supervisor::run()");
  const std::shared_ptr<SupervisorImpl> pin = impl_;  // a callback may destroy *this
  while (!pin->live.empty() && !pin->destroyed) drive_once(*pin, UV_RUN_ONCE);
}

void Supervisor::shutdown() {
  impl_->shut_down = true;
  std::vector<std::shared_ptr<Invocation>> live;
  live.reserve(impl_->live.size());
  for (Invocation* inv : impl_->live) live.push_back(inv->shared_from_this());
  for (auto& inv : live) detail::request_kill(*inv);
  detail::finish_shutdown_if_idle(*impl_);
}

}  // namespace payloadrun
