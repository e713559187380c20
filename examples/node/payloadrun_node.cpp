// payloadrun in Node.js: an N-API addon whose Supervisor runs on Node's own
// libuv loop (napi_get_uv_event_loop), next to child_process, timers and
// sockets, on the one JavaScript thread. See examples/node/README.md.
//
//   const payloadrun = require('./payloadrun_node.node');
//   const pid = payloadrun.run('/usr/bin/fio', ['--output-format=json', 'job.fio'],
//                              {timeout_ms: 60000, json: true}, (r) => {
//     // r: {name, exit_code, timed_out, signal, passed, stdout, stdout_truncated, stderr,
//     //     duration_ms, metrics: {name: value}, error}
//   });
//   payloadrun.live();  // payloads not yet completed
//
// run() throws at once when the payload cannot be started (bad arguments, a
// missing binary); everything about a started payload arrives in the
// callback. A payload keeps Node's loop alive while it runs; an idle
// Supervisor holds no active handle, so Node exits by itself when done.
// Exiting with payloads live (process.exit(), or the end of the environment):
// the addon destroys the Supervisor from a process.on('exit') listener and an
// environment cleanup hook, which kill and reap every live payload at once
// (their callbacks are not called). If Node is SIGKILLed, the payloads die
// with its thread (Payload::survives_supervisor is false).
#define NAPI_VERSION 8
#include <node_api.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <payloadrun/payloadrun.hpp>

namespace {

// A failed napi call leaves a pending JS exception (or it is raised here);
// the caller then returns nullptr to JavaScript.
struct NapiFailed {};

void check(napi_env env, napi_status status, const char* what) {
  if (status == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, (std::string("payloadrun: napi call failed: ") + what).c_str());
  throw NapiFailed{};
}

void throw_type_error(napi_env env, const std::string& message) {
  napi_throw_type_error(env, nullptr, ("payloadrun.run: " + message).c_str());
  throw NapiFailed{};
}

std::string get_string(napi_env env, napi_value v, const std::string& what) {
  napi_valuetype type;
  check(env, napi_typeof(env, v, &type), "typeof");
  if (type != napi_string) throw_type_error(env, what + " must be a string");
  std::size_t len = 0;
  check(env, napi_get_value_string_utf8(env, v, nullptr, 0, &len), "string length");
  std::string s(len, '\0');
  check(env, napi_get_value_string_utf8(env, v, s.data(), len + 1, &len), "string");
  return s;
}

napi_value make_string(napi_env env, std::string_view s) {
  napi_value v;
  check(env, napi_create_string_utf8(env, s.data(), s.size(), &v), "create string");
  return v;
}

napi_value make_number(napi_env env, double d) {
  napi_value v;
  check(env, napi_create_double(env, d, &v), "create number");
  return v;
}

napi_value make_bool(napi_env env, bool b) {
  napi_value v;
  check(env, napi_get_boolean(env, b, &v), "create boolean");
  return v;
}

napi_value make_null(napi_env env) {
  napi_value v;
  check(env, napi_get_null(env, &v), "null");
  return v;
}

void set(napi_env env, napi_value obj, const char* key, napi_value value) {
  check(env, napi_set_named_property(env, obj, key, value), key);
}

// An optional property of `options`: nullopt when absent or undefined.
std::optional<napi_value> property(napi_env env, napi_value options, const char* key) {
  bool has = false;
  check(env, napi_has_named_property(env, options, key, &has), key);
  if (!has) return std::nullopt;
  napi_value v;
  check(env, napi_get_named_property(env, options, key, &v), key);
  napi_valuetype type;
  check(env, napi_typeof(env, v, &type), key);
  if (type == napi_undefined) return std::nullopt;
  return v;
}

std::optional<double> number_option(napi_env env, napi_value options, const char* key) {
  const auto v = property(env, options, key);
  if (!v) return std::nullopt;
  napi_valuetype type;
  check(env, napi_typeof(env, *v, &type), key);
  double d = 0;
  if (type != napi_number || napi_get_value_double(env, *v, &d) != napi_ok || !(d >= 0) || d > 1e15) {
    throw_type_error(env, std::string("options.") + key + " must be a non-negative number");
  }
  return d;
}

bool bool_option(napi_env env, napi_value options, const char* key) {
  const auto v = property(env, options, key);
  if (!v) return false;
  bool b = false;
  if (napi_get_value_bool(env, *v, &b) != napi_ok) {
    throw_type_error(env, std::string("options.") + key + " must be a boolean");
  }
  return b;
}

// One run()'s JavaScript callback, held until its completion arrives (or
// the Supervisor is destroyed, which drops it uncalled).
class PendingCallback {
 public:
  PendingCallback(napi_env env, napi_value callback, std::size_t max_stdout)
      : env_(env), max_stdout_(max_stdout) {
    check(env, napi_create_reference(env, callback, 1, &callback_), "reference the callback");
    napi_value resource_name = make_string(env, "payloadrun");
    check(env, napi_async_init(env, nullptr, resource_name, &async_), "async context");
  }
  PendingCallback(const PendingCallback&) = delete;
  PendingCallback& operator=(const PendingCallback&) = delete;
  ~PendingCallback() {
    napi_async_destroy(env_, async_);
    napi_delete_reference(env_, callback_);
  }

  // On Node's loop thread, from a libuv callback: no JavaScript frame is
  // on the stack, so the call goes through napi_make_callback (microtasks
  // and process.nextTick run after it), and an exception the callback
  // throws becomes Node's uncaught exception.
  void deliver(const payloadrun::Completion& c) noexcept {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
    try {
      napi_value result = to_js(c);
      napi_value fn;
      napi_value global;
      check(env_, napi_get_reference_value(env_, callback_, &fn), "callback");
      check(env_, napi_get_global(env_, &global), "global");
      napi_value ignored;
      napi_make_callback(env_, async_, global, fn, 1, &result, &ignored);
    } catch (const NapiFailed&) {
    } catch (const std::exception& e) {
      napi_throw_error(env_, nullptr, (std::string("payloadrun: ") + e.what()).c_str());
    }
    bool pending = false;
    napi_is_exception_pending(env_, &pending);
    if (pending) {
      napi_value error;
      napi_get_and_clear_last_exception(env_, &error);
      napi_fatal_exception(env_, error);
    }
    napi_close_handle_scope(env_, scope);
  }

 private:
  napi_value to_js(const payloadrun::Completion& c) {
    napi_value r;
    check(env_, napi_create_object(env_, &r), "result object");
    const auto& m = c.metrics;
    set(env_, r, "name", make_string(env_, c.payload_name));
    set(env_, r, "exit_code", make_number(env_, m.exit_code));
    set(env_, r, "timed_out", make_bool(env_, m.timed_out));
    set(env_, r, "signal", m.killed_by_signal ? make_number(env_, *m.killed_by_signal) : make_null(env_));
    set(env_, r, "passed", make_bool(env_, c.result.passed));
    const bool cut = c.stdout_text.size() > max_stdout_;
    set(env_, r, "stdout", make_string(env_, std::string_view(c.stdout_text).substr(0, max_stdout_)));
    set(env_, r, "stdout_truncated", make_bool(env_, cut || m.stdout_truncated));
    set(env_, r, "stderr", make_string(env_, std::string_view(c.stderr_text).substr(0, max_stdout_)));
    set(env_, r, "duration_ms",
        make_number(env_, std::chrono::duration<double, std::milli>(m.duration).count()));
    napi_value metrics;
    check(env_, napi_create_object(env_, &metrics), "metrics object");
    for (const payloadrun::Metric metric : m) {
      const std::string name(metric.name);
      bool has = false;
      check(env_, napi_has_named_property(env_, metrics, name.c_str(), &has), "metric");
      if (!has) set(env_, metrics, name.c_str(), make_number(env_, metric.value));  // the first of a name
    }
    set(env_, r, "metrics", metrics);
    set(env_, r, "error", c.error ? make_string(env_, *c.error) : make_null(env_));
    return r;
  }

  napi_env env_;
  std::size_t max_stdout_;
  napi_ref callback_ = nullptr;
  napi_async_context async_ = nullptr;
};

// The addon's state in one Node environment (the main thread or a worker).
struct Addon {
  napi_env env = nullptr;
  std::unique_ptr<payloadrun::Supervisor> supervisor;  // made on the first run()
  bool exiting = false;

  payloadrun::Supervisor& get() {
    if (!supervisor) {
      uv_loop_s* loop = nullptr;
      check(env, napi_get_uv_event_loop(env, &loop), "napi_get_uv_event_loop");
      supervisor = std::make_unique<payloadrun::Supervisor>(loop);
    }
    return *supervisor;
  }
  // Kills and reaps every live payload now (the destructor's teardown);
  // their callbacks are dropped uncalled.
  void stop() {
    exiting = true;
    supervisor.reset();
  }
};

Addon& addon_of(napi_env env, napi_callback_info info, std::size_t* argc, napi_value* argv) {
  void* data = nullptr;
  check(env, napi_get_cb_info(env, info, argc, argv, nullptr, &data), "arguments");
  return *static_cast<Addon*>(data);
}

// run(binary, args, options, callback) -> pid
napi_value run(napi_env env, napi_callback_info info) {
  try {
    std::size_t argc = 4;
    napi_value argv[4];
    Addon& addon = addon_of(env, info, &argc, argv);
    if (argc != 4) throw_type_error(env, "expected (binary, args, options, callback)");
    if (addon.exiting) {
      napi_throw_error(env, nullptr, "payloadrun.run: the process is exiting; no payload can start");
      return nullptr;
    }
    const std::string binary = get_string(env, argv[0], "binary");
    bool is_array = false;
    check(env, napi_is_array(env, argv[1], &is_array), "args");
    if (!is_array) throw_type_error(env, "args must be an array of strings");
    std::uint32_t n = 0;
    check(env, napi_get_array_length(env, argv[1], &n), "args length");
    std::vector<std::string> args;
    for (std::uint32_t i = 0; i < n; ++i) {
      napi_value a;
      check(env, napi_get_element(env, argv[1], i, &a), "args element");
      args.push_back(get_string(env, a, "args[" + std::to_string(i) + "]"));
    }
    napi_valuetype type;
    check(env, napi_typeof(env, argv[2], &type), "options");
    if (type != napi_object) throw_type_error(env, "options must be an object");
    check(env, napi_typeof(env, argv[3], &type), "callback");
    if (type != napi_function) throw_type_error(env, "callback must be a function");

    payloadrun::Payload payload = payloadrun::Payload::binary_payload(binary, binary);
    if (bool_option(env, argv[2], "json")) payload.output = payloadrun::output::Json{};
    const auto max_stdout = number_option(env, argv[2], "max_stdout");
    auto pending = std::make_shared<PendingCallback>(
        env, argv[3], max_stdout ? static_cast<std::size_t>(*max_stdout) : std::size_t{64} * 1024);
    payloadrun::PayloadRun builder = addon.get().payload(payload);
    builder.args(std::move(args));
    if (const auto t = number_option(env, argv[2], "timeout_ms")) {
      builder.timeout(std::chrono::milliseconds(static_cast<std::int64_t>(*t)));
    }
    if (const auto cwd = property(env, argv[2], "cwd")) builder.working_dir(get_string(env, *cwd, "options.cwd"));
    payloadrun::PayloadHandle handle = builder.spawn();
    const int pid = handle.pid().value_or(0);
    handle.on_exit([pending](payloadrun::Completion c) { pending->deliver(c); });
    return make_number(env, pid);
  } catch (const NapiFailed&) {
    return nullptr;
  } catch (const payloadrun::Error& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("payloadrun.run: ") + e.what()).c_str());
    return nullptr;
  }
}

napi_value live(napi_env env, napi_callback_info info) {
  try {
    std::size_t argc = 0;
    Addon& addon = addon_of(env, info, &argc, nullptr);
    return make_number(env, addon.supervisor ? static_cast<double>(addon.supervisor->live()) : 0.0);
  } catch (const NapiFailed&) {
    return nullptr;
  }
}

// process.on('exit') listener: payloads must not outlive process.exit().
napi_value on_process_exit(napi_env env, napi_callback_info info) {
  try {
    std::size_t argc = 0;
    addon_of(env, info, &argc, nullptr).stop();
  } catch (const NapiFailed&) {
  }
  return nullptr;
}

void listen_for_exit(napi_env env, Addon* addon) {
  napi_value global, process, on, listener, args[2];
  check(env, napi_get_global(env, &global), "global");
  check(env, napi_get_named_property(env, global, "process", &process), "process");
  check(env, napi_get_named_property(env, process, "on", &on), "process.on");
  check(env, napi_create_function(env, "payloadrunOnExit", NAPI_AUTO_LENGTH, on_process_exit, addon, &listener),
        "exit listener");
  args[0] = make_string(env, "exit");
  args[1] = listener;
  napi_value ignored;
  check(env, napi_call_function(env, process, on, 2, args, &ignored), "process.on('exit')");
}

napi_value init(napi_env env, napi_value exports) {
  try {
    // The environment's end (Node's exit, a worker's termination) runs the
    // cleanup hook, the owner of the addon's state: it kills what is still
    // live before Node closes its loop, and frees the state.
    auto owned = std::make_unique<Addon>();
    owned->env = env;
    Addon* addon = owned.get();
    check(env,
          napi_add_env_cleanup_hook(
              env,
              [](void* data) {
                const std::unique_ptr<Addon> state(static_cast<Addon*>(data));
                state->stop();
              },
              addon),
          "cleanup hook");
    owned.release();  // the hook owns it now
    listen_for_exit(env, addon);
    napi_value fn;
    check(env, napi_create_function(env, "run", NAPI_AUTO_LENGTH, run, addon, &fn), "run");
    set(env, exports, "run", fn);
    check(env, napi_create_function(env, "live", NAPI_AUTO_LENGTH, live, addon, &fn), "live");
    set(env, exports, "live", fn);
    return exports;
  } catch (const NapiFailed&) {
    return nullptr;
  }
}

}  // namespace

NAPI_MODULE_INIT() { return init(env, exports); }
