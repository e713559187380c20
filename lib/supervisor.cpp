// The public face: Supervisor (loop, SIGCHLD watcher, shared buffers),
// the PayloadRun builder and PayloadHandle.
#include <fcntl.h>
#include <signal.h>

#include <fmt/format.h>

#include "detail/pidfd_exit.hpp"
#include "detail/cgroup.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/ring.hpp"

namespace payloadrun {

using detail::Invocation;

// ---------------------------------------------------------------- PayloadRun

PayloadRun::PayloadRun(Supervisor& supervisor, std::shared_ptr<const Payload> payload)
    : supervisor_(&supervisor), payload_(std::move(payload)) {
  if (!payload_) throw Error(Errc::invalid_argument, "PayloadRun: the payload is null");
  args_ = payload_->default_args;
  checks_ = payload_->default_checks;
}

PayloadRun& PayloadRun::arg(std::string a) {
  args_.push_back(std::move(a));
  return *this;
}

PayloadRun& PayloadRun::args(std::vector<std::string> as) {
  for (auto& a : as) args_.push_back(std::move(a));
  return *this;
}

PayloadRun& PayloadRun::clear_args() {
  args_.clear();
  return *this;
}

namespace {

bool is_deferred(const Payload& p) { return std::holds_alternative<output::Deferred>(p.output); }

[[noreturn]] void throw_forbidden(const Payload& p, const std::vector<const MetricCheck*>& bad) {
  std::string list;
  for (const MetricCheck* c : bad) {
    if (!list.empty()) list += ", ";
    list += c->describe();
  }
  throw Error(Errc::forbidden_check,
              fmt::format("payload '{}': metric-level checks on a Deferred payload cannot be "
                          "evaluated in the supervisor; declare these as default_checks on the "
                          "Payload instead (the ring consumer evaluates them). Forbidden: [{}]",
                          p.name, list));
}

}  // namespace

PayloadRun& PayloadRun::check(MetricCheck c) {
  if (is_deferred(*payload_) && c.is_metric_level()) throw_forbidden(*payload_, {&c});
  checks_.push_back(std::move(c));
  return *this;
}

PayloadRun& PayloadRun::clear_checks() {
  checks_.clear();
  return *this;
}

PayloadRun& PayloadRun::in_cgroup(std::string name) {
  cgroup_ = detail::validate_cgroup_name(name);
  return *this;
}

PayloadRun& PayloadRun::own_cgroup(bool on) {
  own_cgroup_ = on;
  return *this;
}

PayloadRun& PayloadRun::timeout(std::chrono::milliseconds d) {
  if (d.count() < 0) {
    throw Error(Errc::invalid_argument,
                fmt::format("payload '{}': timeout of {} ms is negative", payload_->name, d.count()));
  }
  timeout_ = d;
  return *this;
}

PayloadRun& PayloadRun::env(std::string key, std::string value) {
  env_.emplace_back(std::move(key), std::move(value));
  return *this;
}

PayloadRun& PayloadRun::env_remove(std::string key) {
  env_.emplace_back(std::move(key), std::nullopt);
  return *this;
}

PayloadRun& PayloadRun::clear_env() {
  clear_env_ = true;
  env_.clear();
  return *this;
}

PayloadRun& PayloadRun::working_dir(std::string dir) {
  working_dir_ = std::move(dir);
  return *this;
}

PayloadRun& PayloadRun::stdin_bytes(std::string bytes) {
  stdin_ = std::move(bytes);
  return *this;
}

namespace {

// Refuse what the seed refuses, before any process exists.
void check_runnable(const PayloadRun& run) {
  const Payload& p = run.payload();
  if (p.kind == PayloadKind::scheduler) {
    throw Error(Errc::scheduler_kind,
                fmt::format("payload({}) called on a scheduler-kind payload; schedulers are "
                            "launched by the test framework, not from the test body. Use a "
                            "binary payload instead.",
                            p.name));
  }
  if (is_deferred(p)) {
    std::vector<const MetricCheck*> bad;
    for (const auto& c : run.effective_checks()) {
      if (c.is_metric_level()) bad.push_back(&c);
    }
    // Default checks are the consumer's to evaluate: only runtime additions
    // are forbidden, and those were refused by check(). Here we only guard
    // defaults that were cleared and re-added by hand.
    std::vector<const MetricCheck*> runtime_bad;
    for (const MetricCheck* c : bad) {
      bool is_default = false;
      for (const auto& d : p.default_checks) is_default = is_default || d == *c;
      if (!is_default) runtime_bad.push_back(c);
    }
    if (!runtime_bad.empty()) throw_forbidden(p, runtime_bad);
  }
}

}  // namespace

PayloadHandle PayloadRun::spawn() {
  check_runnable(*this);
  return PayloadHandle(detail::spawn_invocation(*supervisor_->impl_, *this));
}

void PayloadRun::spawn(CompletionCallback on_done) {
  check_runnable(*this);
  auto inv = detail::spawn_invocation(*supervisor_->impl_, *this);
  inv->callback = std::move(on_done);
  inv->consumed = true;
}

Completion PayloadRun::run() {
  if (supervisor_->impl_->dispatch_depth > 0) {
    throw Error(Errc::in_callback,
                fmt::format("payload '{}': run() blocks and cannot be called from inside a loop "
                            "callback; use spawn(callback) there",
                            payload_->name));
  }
  return spawn().wait();
}

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
  if (!inv_ || inv_->consumed) return;
  if (inv_->completed) {
    detail::logger()->debug("PayloadHandle for '{}' dropped with an unread result",
                            inv_->payload->name);
    return;
  }
  detail::abandon_invocation(*inv_);
  detail::logger()->warn(
      "PayloadHandle for '{}' dropped without wait/kill; process group SIGKILLed, metrics not "
      "recorded.",
      inv_->payload->name);
}

const std::string& PayloadHandle::payload_name() const noexcept { return inv_->payload->name; }

std::optional<int> PayloadHandle::pid() const noexcept {
  if (!inv_ || inv_->consumed) return std::nullopt;
  return inv_->pid;
}

bool PayloadHandle::done() const noexcept { return inv_ && inv_->completed; }

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
  if (inv->consumed) throw_consumed(*inv);
}

[[noreturn]] void throw_abandoned(const Invocation& inv) {
  throw Error(Errc::shut_down,
              fmt::format("payload '{}': the supervisor was destroyed while it ran; it was killed "
                          "and its metrics are lost",
                          inv.payload->name));
}

Completion take_result(Invocation& inv) {
  inv.consumed = true;
  Completion c = std::move(*inv.result);
  inv.result.reset();
  return c;
}

void drive_until_done(Invocation& inv, const char* what) {
  while (!inv.completed) {
    if (inv.impl == nullptr) throw_abandoned(inv);
    if (inv.impl->dispatch_depth > 0) {
      throw Error(Errc::in_callback,
                  fmt::format("PayloadHandle for '{}': {}() blocks and cannot be called from "
                              "inside a loop callback; use on_exit() there",
                              inv.payload->name, what));
    }
    uv_run(inv.impl->loop, UV_RUN_ONCE);
  }
  if (!inv.result) throw_abandoned(inv);
}

}  // namespace

Completion PayloadHandle::wait() {
  ensure_usable(inv_);
  drive_until_done(*inv_, "wait");
  return take_result(*inv_);
}

Completion PayloadHandle::kill() {
  ensure_usable(inv_);
  detail::kill_invocation(*inv_);
  drive_until_done(*inv_, "kill");
  return take_result(*inv_);
}

std::optional<Completion> PayloadHandle::try_wait() {
  ensure_usable(inv_);
  if (!inv_->completed && inv_->impl != nullptr && inv_->impl->dispatch_depth == 0) {
    uv_run(inv_->impl->loop, UV_RUN_NOWAIT);
  }
  if (!inv_->completed) {
    if (inv_->impl == nullptr) throw_abandoned(*inv_);
    return std::nullopt;
  }
  if (!inv_->result) throw_abandoned(*inv_);
  return take_result(*inv_);
}

void PayloadHandle::on_exit(CompletionCallback cb) {
  ensure_usable(inv_);
  inv_->consumed = true;
  if (inv_->completed) {
    if (!inv_->result) throw_abandoned(*inv_);
    Completion c = take_result(*inv_);
    cb(std::move(c));
    return;
  }
  inv_->callback = std::move(cb);
}

void PayloadHandle::kill_async() {
  ensure_usable(inv_);
  detail::kill_invocation(*inv_);
}

// ---------------------------------------------------------------- Supervisor

namespace {

void on_sigchld(uv_signal_t* /*h*/, int /*signum*/) {
  // Exits are seen through pidfds; this watcher exists so SIGCHLD is never
  // SIG_IGN while we have children (the kernel would reap them for us).
}

void init_impl(Supervisor::Impl& impl) {
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
    throw Error(Errc::io, fmt::format("Supervisor: cannot open /dev/null: {}", std::strerror(errno)),
                errno);
  }
  impl.read_buffer = std::make_unique<char[]>(Supervisor::Impl::read_buffer_size);
  impl.child_stack = std::make_unique<char[]>(Supervisor::Impl::child_stack_size);
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
void ensure_exit_status_kept(Supervisor::Impl& impl) {
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

}  // namespace detail

Supervisor::Supervisor(SupervisorOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->own_loop = std::make_unique<uv_loop_t>();
  const int rc = uv_loop_init(impl_->own_loop.get());
  if (rc != 0) {
    impl_->own_loop.reset();
    throw Error(Errc::io, fmt::format("Supervisor: uv_loop_init failed: {}", uv_strerror(rc)), -rc);
  }
  impl_->loop = impl_->own_loop.get();
  try {
    init_impl(*impl_);
  } catch (...) {
    uv_loop_close(impl_->loop);
    throw;
  }
}

Supervisor::Supervisor(uv_loop_s* loop, SupervisorOptions options) : impl_(std::make_shared<Impl>()) {
  if (loop == nullptr) throw Error(Errc::invalid_argument, "Supervisor: the loop is null");
  impl_->options = std::move(options);
  impl_->loop = loop;
  init_impl(*impl_);
}

Supervisor::~Supervisor() {
  Impl& impl = *impl_;
  impl.shut_down = true;
  // Kill and reap every live payload now; their handles close below.
  std::vector<Invocation*> live(impl.live.begin(), impl.live.end());
  for (Invocation* inv : live) {
    const bool had_result_wanted = !inv->abandoned;
    detail::abandon_invocation(*inv);
    if (had_result_wanted) {
      detail::logger()->warn("Supervisor destroyed while payload '{}' ran; killed, metrics lost",
                             inv->payload->name);
    }
  }
  // Completed invocations may still have handles closing; detach them all.
  for (Invocation* inv : live) inv->impl = nullptr;
  impl.live.clear();
  detail::close_watch_set(impl);
  if (impl.sigchld) {
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
  if (impl.own_loop) {
    // Let every close callback run, then close the loop.
    uv_run(impl.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(impl.loop) != 0) {
      detail::logger()->error("Supervisor: its loop still has handles after shutdown");
    }
  }
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
  if (impl_->dispatch_depth > 0) {
    throw Error(Errc::in_callback,
                "Supervisor::run() blocks and cannot be called from inside a loop callback");
  }
  while (!impl_->live.empty()) uv_run(impl_->loop, UV_RUN_ONCE);
}

void Supervisor::shutdown() {
  impl_->shut_down = true;
  std::vector<Invocation*> live(impl_->live.begin(), impl_->live.end());
  for (Invocation* inv : live) detail::kill_invocation(*inv);
}

}  // namespace payloadrun
