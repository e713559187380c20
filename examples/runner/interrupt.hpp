// payloadrun runner: SIGINT and SIGTERM, blocked and read through a
// signalfd. A blocked signal stays pending until read, so an interrupt that
// arrives while the last payloads are being reaped (scancel signals the
// payloads and payloadrun at once) is never lost, whatever the loop did.
#pragma once

namespace runner {

class InterruptWatch {
 public:
  /// Blocks SIGINT and SIGTERM in this thread (prepare_process already has,
  /// for the program) and opens the signalfd. Throws payloadrun::Error.
  InterruptWatch();
  /// Consumes what is pending and restores the previous signal mask.
  ~InterruptWatch();
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  int fd() const noexcept { return fd_; }
  /// The interrupt that arrived (SIGINT or SIGTERM), read off the signalfd
  /// without blocking; 0 when none is pending.
  int take() noexcept;

 private:
  int fd_ = -1;
  bool restore_ = false;
};

/// SIGINT or SIGTERM if one is pending for this process (blocked and not
/// yet taken), else 0.
int pending_interrupt() noexcept;

/// "SIGINT", "SIGTERM", or "a signal".
const char* interrupt_name(int signum) noexcept;

}  // namespace runner
