// Consumer-side evaluation of Deferred payloads: the extractor (run through a
// Supervisor of its own), hints, universal checks, bounds, default checks.
#include "detail/deferred.hpp"

#include <signal.h>

#include <cmath>
#include <exception>
#include <unordered_map>

#include <fmt/format.h>

#include "payloadrun/evaluate.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/payload.hpp"
#include "payloadrun/supervisor.hpp"

namespace payloadrun::detail {
namespace {

AssertDetail detail_of(DetailKind k, std::string m) { return AssertDetail{k, std::move(m)}; }

// The extractor's completions go nowhere (not to $PAYLOADRUN_RING).
class NoEmitter final : public Emitter {
 public:
  void emit_metrics(const Completion&) override {}
  void emit_raw(const RawPayloadOutput&) override {}
};

// argv for messages: words joined by spaces, a word with a space quoted.
std::string describe(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a.empty() || a.find_first_of(" \t\n'\"") != std::string::npos ? fmt::format("'{}'", a) : a;
  }
  return s;
}

// The last bytes of the extractor's stderr, for a failure message.
std::string stderr_tail(const std::string& err) {
  constexpr std::size_t keep = 512;
  std::string_view t(err);
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.remove_suffix(1);
  if (t.empty()) return {};
  if (t.size() > keep) return fmt::format("; stderr ends: ...{}", t.substr(t.size() - keep));
  return fmt::format("; stderr: {}", t);
}

// A write to an extractor that exited without reading all of its stdin
// raises SIGPIPE in this thread: keep it blocked while the extractor runs and
// discard one it raised (unless one was pending already).
class SigpipeBlock {
 public:
  SigpipeBlock() noexcept {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_ && sigismember(&old_, SIGPIPE) != 1) {
      sigset_t pipe_only;
      sigemptyset(&pipe_only);
      sigaddset(&pipe_only, SIGPIPE);
      const timespec zero{0, 0};
      while (::sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace

DeferredEvaluator::DeferredEvaluator(const DrainOptions& options)
    : argv_(options.extractor),
      timeout_(options.extractor_timeout),
      output_limit_(options.extractor_output_limit) {}

DeferredEvaluator::~DeferredEvaluator() = default;

ExtractorRun DeferredEvaluator::run_extractor(std::string_view input) {
  ExtractorRun run;
  const std::string what = describe(argv_);
  try {
    if (argv_.empty() || argv_[0].empty()) {
      run.error = "the extractor command is empty";
      return run;
    }
    if (!extractor_) {
      Payload p = Payload::binary_payload("extractor", argv_[0]);
      p.default_args.assign(argv_.begin() + 1, argv_.end());
      extractor_ = std::make_shared<const Payload>(std::move(p));
    }
    if (!supervisor_) {
      SupervisorOptions so;
      so.capture_limit = output_limit_;
      so.emitter = std::make_shared<NoEmitter>();
      so.reserve_fds = 0;  // one extractor at a time: its few fds need no reserved table
      supervisor_ = std::make_unique<Supervisor>(std::move(so));
    }
    const SigpipeBlock no_sigpipe;
    Completion c =
        supervisor_->payload(extractor_).stdin_bytes(std::string(input)).timeout(timeout_).run();
    const PayloadMetrics& m = c.metrics;
    if (m.timed_out) {
      run.error = fmt::format("'{}' did not finish within {} ms; its process group was killed{}", what,
                              timeout_.count(), stderr_tail(c.stderr_text));
    } else if (c.error) {
      run.error = fmt::format("'{}': {}", what, *c.error);
    } else if (m.killed_by_signal) {
      run.error = fmt::format("'{}' was killed by signal {}{}", what, *m.killed_by_signal,
                              stderr_tail(c.stderr_text));
    } else if (m.exit_code == 127) {
      run.error = fmt::format("'{}' could not be executed (exit 127){}", what, stderr_tail(c.stderr_text));
    } else if (m.exit_code != 0) {
      run.error = fmt::format("'{}' failed (exit {}){}", what, m.exit_code, stderr_tail(c.stderr_text));
    } else if (m.stdout_truncated) {
      run.error = fmt::format("'{}' wrote more than the {} bytes of output kept (extractor_output_limit)",
                              what, output_limit_);
    } else {
      run.ok = true;
      run.output = std::move(c.stdout_text);
    }
  } catch (const std::exception& e) {  // Error (spawn failed: e.g. no such program), bad_alloc
    run.error = fmt::format("'{}' could not be run: {}", what, e.what());
  }
  return run;
}

AssertResult DeferredEvaluator::evaluate(const RawPayloadOutput& raw, PayloadMetrics& out) {
  AssertResult res;
  const auto extract_from = [&](const std::string& text, MetricStream stream) -> std::size_t {
    if (argv_.empty()) return extract_metrics(text, MetricSource::deferred, stream, out);
    ExtractorRun run = run_extractor(text);
    if (!run.ok) {
      res.merge(AssertResult::fail(detail_of(
          DetailKind::extraction, fmt::format("payload '{}': extractor on {}: {}", raw.payload_name,
                                              to_string(stream), run.error))));
      return 0;
    }
    return extract_metrics(run.output, MetricSource::deferred, stream, out);
  };
  std::size_t n = extract_from(raw.stdout_text, MetricStream::stdout_stream);
  if (n == 0 && !raw.stderr_text.empty()) n = extract_from(raw.stderr_text, MetricStream::stderr_stream);
  const bool extracted = n > 0;
  if (!extracted) {
    res.merge(AssertResult::fail(detail_of(
        DetailKind::extraction,
        fmt::format("payload '{}': deferred extraction yielded no metrics (stdout {} bytes, "
                    "stderr {} bytes)",
                    raw.payload_name, raw.stdout_text.size(), raw.stderr_text.size()))));
  }
  apply_hints(out, raw.metric_hints);

  // Universal checks: one failure per duplicated name, non-finite value,
  // and metric with the wrong source.
  std::unordered_map<std::string_view, std::size_t> seen;
  for (const Metric m : out) ++seen[m.name];
  std::unordered_map<std::string_view, bool> reported;
  for (const Metric m : out) {
    if (seen[m.name] > 1 && !reported[m.name]) {
      reported[m.name] = true;
      res.merge(AssertResult::fail(detail_of(
          DetailKind::extraction,
          fmt::format("duplicate metric name '{}' ({} times)", m.name, seen[m.name]))));
    }
    if (!std::isfinite(m.value)) {
      res.merge(AssertResult::fail(detail_of(
          DetailKind::extraction,
          fmt::format("metric '{}' has a non-finite value {}", m.name, format_value(m.value)))));
    }
    if (m.source != MetricSource::deferred) {
      res.merge(AssertResult::fail(detail_of(
          DetailKind::extraction,
          fmt::format("metric '{}' has source {} (expected deferred)", m.name, to_string(m.source)))));
    }
  }
  if (extracted && raw.metric_bounds) {
    const MetricBounds& b = *raw.metric_bounds;
    if (out.size() < b.min_count) {
      res.merge(AssertResult::fail(detail_of(
          DetailKind::bounds, fmt::format("{} metrics extracted, fewer than the minimum {}",
                                          out.size(), b.min_count))));
    }
    for (const Metric m : out) {
      if (b.value_min && m.value < *b.value_min) {
        res.merge(AssertResult::fail(detail_of(
            DetailKind::bounds, fmt::format("metric '{}' = {} is below the bound {}", m.name,
                                            format_value(m.value), format_value(*b.value_min)))));
      }
      if (b.value_max && m.value > *b.value_max) {
        res.merge(AssertResult::fail(detail_of(
            DetailKind::bounds, fmt::format("metric '{}' = {} is above the bound {}", m.name,
                                            format_value(m.value), format_value(*b.value_max)))));
      }
    }
  }
  out.payload_index = raw.payload_index;
  out.exit_code = raw.exit_code;
  out.timed_out = raw.timed_out;
  res.merge(evaluate_checks(raw.checks, out, raw.stderr_text));
  return res;
}

}  // namespace payloadrun::detail
