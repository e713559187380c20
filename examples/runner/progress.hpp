// payloadrun runner: the progress display. On a terminal one status line is
// redrawn in place (like ninja); otherwise plain lines, at most one a second.
// Failures are printed as they happen in both modes.
#pragma once

#include <chrono>
#include <cstdio>

#include "run.hpp"

namespace runner {

class Progress {
 public:
  /// `terminal`: redraw in place (isatty). `enabled` false: print nothing.
  Progress(std::FILE* out, bool terminal, bool enabled = true);

  /// The observer hooks that feed this display.
  RunObserver observer();

  void on_done(const InvocationRecord& record, const RunCounters& counters);
  void on_tick(const RunCounters& counters);
  /// Final status line (and the newline ending the redrawn one).
  void finish(const RunCounters& counters);

  /// The status text, e.g. "[120/640] running 200, failed 3, 1.2s, 98.1/s".
  static std::string status(const RunCounters& counters);

 private:
  void draw(const RunCounters& counters);
  std::FILE* out_;
  bool terminal_;
  bool enabled_;
  bool line_drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace runner
