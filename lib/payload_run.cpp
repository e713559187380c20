// The PayloadRun builder: what to run and how (and how it is stopped),
// checked before any process exists; the spawn forms (throwing and not).
#include <csignal>
#include <new>

#include <fmt/format.h>

#include "detail/cgroup.hpp"
#include "detail/invocation.hpp"

namespace payloadrun {

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
  try {
    cgroup_ = detail::validate_cgroup_name(name);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("payload '{}': {}", payload_->name, e.what()), e.sys_errno());
  }
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

PayloadRun& PayloadRun::stop_signal(int signal) {
  if (signal <= 0 || signal > SIGRTMAX || signal == SIGSTOP) {
    throw Error(Errc::invalid_argument,
                fmt::format("payload '{}': stop signal {} is not a signal to stop with (1 to {}, "
                            "not SIGSTOP)",
                            payload_->name, signal, SIGRTMAX));
  }
  stop_signal_ = signal;
  return *this;
}

PayloadRun& PayloadRun::stop_grace(std::chrono::milliseconds grace) {
  if (grace.count() < 0) {
    throw Error(Errc::invalid_argument, fmt::format("payload '{}': stop grace of {} ms is negative",
                                                    payload_->name, grace.count()));
  }
  stop_grace_ = grace;
  return *this;
}

int PayloadRun::effective_stop_signal() const noexcept {
  if (stop_signal_) return *stop_signal_;
  return stop_grace_ ? SIGTERM : SIGKILL;
}

std::chrono::milliseconds PayloadRun::effective_stop_grace() const noexcept {
  if (effective_stop_signal() == SIGKILL) return std::chrono::milliseconds(0);
  return stop_grace_.value_or(default_stop_grace);
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
  inv->delivery = detail::Delivery::callback;
}

namespace {

// The non-throwing forms: the throwing one's Error as data.
template <class Body>
bool without_throwing(std::error_code& ec, std::string* message, Body&& body) noexcept {
  try {
    try {
      body();
      ec.clear();
      return true;
    } catch (const Error& e) {
      ec = e.error_code();
      if (message != nullptr) *message = e.what();
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
      if (message != nullptr) *message = "out of memory";
    } catch (const std::exception& e) {
      ec = make_error_code(Errc::spawn_failed);
      if (message != nullptr) *message = e.what();
    }
  } catch (...) {  // assigning the message ran out of memory
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return false;
}

}  // namespace

std::optional<PayloadHandle> PayloadRun::spawn(std::error_code& ec, std::string* message) noexcept {
  std::optional<PayloadHandle> handle;
  without_throwing(ec, message, [&] { handle.emplace(spawn()); });
  return handle;
}

bool PayloadRun::spawn(CompletionCallback on_done, std::error_code& ec, std::string* message) noexcept {
  return without_throwing(ec, message, [&] { spawn(std::move(on_done)); });
}

Completion PayloadRun::run() {
  if (detail::in_loop_callback(*supervisor_->impl_)) {
    throw Error(Errc::in_callback,
                fmt::format("payload '{}': run() blocks and cannot be called from inside a loop "
                            "callback (uv_run is not reentrant); use spawn(callback) there",
                            payload_->name));
  }
  return spawn().wait();
}

}  // namespace payloadrun
