// The progress display.
#include "progress.hpp"

#include <string>
#include <string_view>

#include <fmt/format.h>
#include <payloadrun/check.hpp>

#include "report.hpp"
#include "say.hpp"

namespace runner {

Progress::Progress(std::FILE* out, bool terminal, bool enabled)
    : out_(out), terminal_(terminal), enabled_(enabled), last_draw_(std::chrono::steady_clock::now()) {}

RunObserver Progress::observer() {
  RunObserver o;
  if (!enabled_) return o;
  o.on_done = [this](const InvocationRecord& r, const RunCounters& c) { on_done(r, c); };
  o.on_tick = [this](const RunCounters& c) { on_tick(c); };
  o.tick = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
  return o;
}

std::string Progress::status(const RunCounters& c) {
  const double secs = std::chrono::duration<double>(c.elapsed).count();
  const double rate = secs > 0 ? static_cast<double>(c.done) / secs : 0.0;
  return fmt::format("[{}/{}] running {}, failed {}, {:.1f}s, {:.1f}/s", c.done, c.total, c.running, c.failed,
                     secs, rate);
}

void Progress::draw(const RunCounters& c) {
  if (terminal_) {
    say(out_, "\r{}\x1b[K", status(c));
    line_drawn_ = true;
  } else {
    say(out_, "{}\n", status(c));
  }
  last_draw_ = std::chrono::steady_clock::now();
  std::fflush(out_);
}

void Progress::on_done(const InvocationRecord& r, const RunCounters& c) {
  if (!enabled_) return;
  if (!r.passed && r.interrupted.empty()) {  // the interrupted: counted at the end
    std::string first = r.details.empty() ? (r.timed_out ? "timed out" : "failed") : r.details.front().message;
    first = cut_utf8(detail_line(first), 240);  // the stderr's last line, not its first
    const char* kind = r.details.empty() ? "other" : payloadrun::to_string(r.details.front().kind);
    if (terminal_ && line_drawn_) say(out_, "\r\x1b[K");
    say(out_, "FAILED {}#{}: [{}] {}\n", r.payload, r.invocation, kind, first);
    line_drawn_ = false;
    if (terminal_) draw(c);
    return;
  }
  on_tick(c);
}

void Progress::on_tick(const RunCounters& c) {
  if (!enabled_) return;
  // Terminal: at most 20 redraws a second; plain: at most one line a second.
  const auto interval = terminal_ ? std::chrono::milliseconds(50) : std::chrono::milliseconds(1000);
  if (std::chrono::steady_clock::now() - last_draw_ >= interval) draw(c);
}

void Progress::finish(const RunCounters& c) {
  if (!enabled_) return;
  if (terminal_) {
    say(out_, "\r{}\x1b[K\n", status(c));
  } else {
    say(out_, "{}\n", status(c));
  }
  std::fflush(out_);
}

}  // namespace runner
