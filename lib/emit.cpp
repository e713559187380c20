// Completion pipeline, on the loop thread when an invocation has ended:
// extract (stdout first, stderr fallback) -> hints -> checks; then, at
// completion for callbacks and at the terminal call for handles,
// payload_index -> emit; then the callback.
#include <atomic>

#include <fmt/format.h>

#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/evaluate.hpp"

namespace payloadrun::detail {
namespace {

// The one piece of global mutable state: unique indices per process.
std::atomic<std::uint64_t> payload_invocation_counter{0};

void emit_safely(Emitter& emitter, const char* what, const std::string& payload,
                 const auto& record, auto call) noexcept {
  try {
    call(emitter, record);
  } catch (const std::exception& e) {
    try {
      logger()->error("payload '{}': emitting its {} failed, the record is lost: {}", payload, what,
                      e.what());
    } catch (...) {
    }
  } catch (...) {
  }
}

}  // namespace

std::uint64_t next_payload_index(std::uint64_t stride, std::uint64_t offset) noexcept {
  const std::uint64_t k = payload_invocation_counter.fetch_add(1, std::memory_order_relaxed);
  return k * stride + offset;
}

Completion evaluate_invocation(SupervisorImpl& impl, Invocation& inv) {
  const Payload& p = *inv.payload;
  const ExitOutcome& o = inv.outcome;
  Completion c;
  c.payload_name = p.name;
  c.pid = inv.pid;
  c.stdout_text = utf8_lossy(inv.out.data);
  c.stderr_text = utf8_lossy(inv.err.data);
  std::string().swap(inv.out.data);
  std::string().swap(inv.err.data);

  if (o.status_error) {
    // A lost status must never pass for an exit code or a death by signal.
    c.error = *o.status_error;
    c.result.merge(AssertResult::fail(AssertDetail{DetailKind::other, *o.status_error}));
  }
  PayloadMetrics& m = c.metrics;
  m.exit_code = o.exit_code;
  m.timed_out = o.timed_out;
  m.killed = o.killed;
  m.killed_by_signal = o.term_signal;
  m.stdout_truncated = inv.out.discarded > 0;
  m.stderr_truncated = inv.err.discarded > 0;
  m.drain_cut_short = o.drain_cut_short;
  m.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - inv.start);
  if (inv.cgroup && inv.cgroup_owned) {
    const CgroupStats st = inv.cgroup->stats();
    m.cgroup_memory_peak_bytes = st.memory_peak_bytes;
    m.cgroup_cpu_usage_usec = st.cpu_usage_usec;
    m.cgroup_pids_peak = st.pids_peak;
  }

  if (std::holds_alternative<output::Deferred>(p.output)) {
    // Raw output ships for consumer-side extraction (record_invocation).
    // Only exit_code_eq can be judged here.
    if (auto d = exit_code_mismatch_detail(inv.checks, m.exit_code, c.stderr_text)) {
      c.result.merge(AssertResult::fail(std::move(*d)));
    }
    explain_lost_output(inv, c);
    return c;
  }
  if (std::holds_alternative<output::Json>(p.output)) {
    impl.extractor.extract(c.stdout_text, MetricSource::json, MetricStream::stdout_stream, m);
    if (m.empty() && !c.stderr_text.empty()) {
      impl.extractor.extract(c.stderr_text, MetricSource::json, MetricStream::stderr_stream, m);
    }
  }
  apply_hints(m, p.metrics);
  AssertResult checked = evaluate_checks(inv.checks, m, CapturedOutput{c.stdout_text, c.stderr_text});
  checked.merge(std::move(c.result));  // a lost status (above) stays a failure
  c.result = std::move(checked);
  explain_lost_output(inv, c);
  return c;
}

void record_invocation(Invocation& inv, Emitter* emitter, Completion& c) noexcept {
  if (inv.recorded) return;
  inv.recorded = true;
  const Payload& p = *inv.payload;
  c.metrics.payload_index = next_payload_index(inv.index_stride, inv.index_offset);
  if (emitter == nullptr) return;
  if (const auto* deferred = std::get_if<output::Deferred>(&p.output)) {
    // Both records share one index; the consumer pairs them.
    try {
      RawPayloadOutput raw;
      raw.payload_index = c.metrics.payload_index;
      raw.payload_name = p.name;
      raw.stdout_text = c.stdout_text;
      raw.stderr_text = c.stderr_text;
      raw.hint = deferred->hint;
      raw.metric_hints = p.metrics;
      raw.metric_bounds = p.metric_bounds;
      raw.exit_code = c.metrics.exit_code;
      raw.timed_out = c.metrics.timed_out;
      raw.checks = inv.checks;
      emit_safely(*emitter, "raw output", p.name, raw,
                  [](Emitter& e, const RawPayloadOutput& r) { e.emit_raw(r); });
    } catch (...) {
      try {
        logger()->error("payload '{}': building its raw output record failed; it is lost", p.name);
      } catch (...) {
      }
    }
  }
  emit_safely(*emitter, "metrics", p.name, c,
              [](Emitter& e, const Completion& r) { e.emit_metrics(r); });
}

void deliver(Invocation& inv, Completion c) noexcept {
  CompletionCallback cb = std::move(inv.callback);
  inv.callback = nullptr;
  if (!cb) return;
  const std::shared_ptr<const Payload> payload = inv.payload;  // the callback may free `inv`
  try {
    cb(std::move(c));
  } catch (const std::exception& e) {
    try {
      logger()->error("payload '{}': the completion callback threw: {}", payload->name, e.what());
    } catch (...) {
    }
  } catch (...) {
    try {
      logger()->error("payload '{}': the completion callback threw", payload->name);
    } catch (...) {
    }
  }
}

}  // namespace payloadrun::detail
