// payloadrun: the error model.
//
// Synchronous failures (bad input, spawn errors, misuse of a handle) are
// thrown as payloadrun::Error from the call that caused them. Outcomes of a
// payload (its exit code, a timeout, failed checks) are never errors: they
// are data in the Completion the terminal call returns.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

#include "payloadrun/export.hpp"

namespace payloadrun {

/// What kind of synchronous failure an Error reports.
enum class Errc {
  invalid_argument,   ///< bad input to a builder or option (reversed range, bad cgroup name, ...)
  scheduler_kind,     ///< run/spawn of a Scheduler-kind payload
  forbidden_check,    ///< metric-level runtime check on a Deferred payload
  not_found,          ///< binary (or a `#!` interpreter) not found
  spawn_failed,       ///< the spawn itself failed (EMFILE, EACCES, ENOEXEC, chdir, ...)
  cgroup,             ///< cgroup placement / creation / removal failed
  already_consumed,   ///< a second terminal call on one PayloadHandle
  in_callback,        ///< a blocking call from inside a loop callback
  io,                 ///< an I/O failure while supervising (read, wait)
  ring,               ///< shared-memory ring failure
  shut_down,          ///< the Supervisor was shut down
};

/// The one exception type payloadrun throws. `what()` is a complete,
/// actionable sentence; `sys_errno()` is the underlying errno (0 if none).
class PAYLOADRUN_API Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message, int sys_errno = 0)
      : std::runtime_error(message), code_(code), sys_errno_(sys_errno) {}

  Errc code() const noexcept { return code_; }
  int sys_errno() const noexcept { return sys_errno_; }
  /// code() as a std::error_code (category payloadrun::error_category()).
  std::error_code error_code() const noexcept;

 private:
  Errc code_;
  int sys_errno_;
};

/// Stable lowercase name of an error code ("spawn_failed", ...).
PAYLOADRUN_API const char* to_string(Errc code) noexcept;

/// The std::error_category of Errc values (name "payloadrun"): an Errc
/// converts to a std::error_code and compares equal to one.
PAYLOADRUN_API const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(Errc code) noexcept {
  // Offset by one: a value of 0 means success in std::error_code.
  return {static_cast<int>(code) + 1, error_category()};
}

inline std::error_code Error::error_code() const noexcept { return make_error_code(code_); }

}  // namespace payloadrun

template <>
struct std::is_error_code_enum<payloadrun::Errc> : std::true_type {};
