// Consumer-side evaluation of Deferred payloads (extractor subprocess,
// hints, universal checks, bounds, default checks) and the Drain that turns
// ring messages into sidecar lines.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "detail/fd.hpp"
#include "detail/log.hpp"
#include "detail/ring_json.hpp"
#include "detail/ring_layout.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/extract.hpp"
#include "payloadrun/ring.hpp"

namespace payloadrun {
namespace {

struct ExtractorRun {
  bool ok = false;
  std::string output;
  std::string error;  // why it failed
};

std::vector<std::string> split_spaces(const std::string& cmd) {
  std::vector<std::string> argv;
  std::istringstream in(cmd);
  for (std::string w; in >> w;) argv.push_back(std::move(w));
  return argv;
}

// Run `command` with `input` on its stdin; collect its stdout. No shell.
ExtractorRun run_extractor(const std::string& command, std::string_view input,
                           std::chrono::milliseconds timeout) {
  ExtractorRun run;
  const std::vector<std::string> args = split_spaces(command);
  if (args.empty()) {
    run.error = "the extractor command is empty";
    return run;
  }
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    run.error = fmt::format("pipe: {}", std::strerror(errno));
    return run;
  }
  detail::UniqueFd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    run.error = fmt::format("pipe: {}", std::strerror(errno));
    return run;
  }
  detail::UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    run.error = fmt::format("fork: {}", std::strerror(errno));
    return run;
  }
  if (pid == 0) {
    ::dup2(in_r.get(), 0);
    ::dup2(out_w.get(), 1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  in_r.reset();
  out_w.reset();
  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (input.empty()) in_w.reset();
  const std::uint64_t deadline =
      detail::monotonic_ns() + static_cast<std::uint64_t>(timeout.count()) * 1'000'000u;
  bool timed_out = false;
  char buf[65536];
  while (out_r) {
    pollfd fds[2];
    nfds_t n = 0;
    fds[n++] = {out_r.get(), POLLIN, 0};
    if (in_w) fds[n++] = {in_w.get(), POLLOUT, 0};
    const std::uint64_t now = detail::monotonic_ns();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    const int rc = ::poll(fds, n, static_cast<int>(std::min<std::uint64_t>((deadline - now) / 1'000'000u + 1, 1000)));
    if (rc < 0 && errno != EINTR) break;
    if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const ssize_t w = ::write(in_w.get(), input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();  // EPIPE: it stopped reading
      if (written == input.size()) in_w.reset();
    }
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      const ssize_t r = ::read(out_r.get(), buf, sizeof buf);
      if (r > 0) run.output.append(buf, static_cast<std::size_t>(r));
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) out_r.reset();
    }
  }
  in_w.reset();
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    run.error = fmt::format("'{}' did not finish within {} ms and was killed", command, timeout.count());
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    run.error = fmt::format("'{}' could not be executed (exit 127)", command);
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    run.error = fmt::format("'{}' failed ({})", command,
                            WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status))
                                              : fmt::format("signal {}", WTERMSIG(status)));
  } else {
    run.ok = true;
  }
  return run;
}

AssertDetail detail_of(DetailKind k, std::string m) { return AssertDetail{k, std::move(m)}; }

}  // namespace

AssertResult evaluate_deferred(const RawPayloadOutput& raw, const DrainOptions& options,
                               PayloadMetrics& out) {
  AssertResult res;
  const auto extract_from = [&](const std::string& text, MetricStream stream) -> std::size_t {
    if (options.extractor.empty()) {
      return extract_metrics(text, MetricSource::deferred, stream, out);
    }
    ExtractorRun run = run_extractor(options.extractor, text, options.extractor_timeout);
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

// ---------------------------------------------------------------- Drain

struct Drain::Impl {
  LineSink sink;
  DrainOptions options;
  DrainSummary summary;
  std::vector<std::string> reports;
  using Key = std::pair<std::uint32_t, std::uint64_t>;  // (pid, payload_index)
  // Each half of a Deferred pair waits for the other, whichever comes
  // first (a restarted consumer may read a spill journal before the ring).
  struct PendingRaw {
    RawPayloadOutput raw;
    std::string origin;
    RingHold hold;
    std::uint64_t since_ns = 0;
  };
  struct PendingMetrics {
    MetricsRecord rec;
    std::string origin;
    RingHold hold;
    std::uint64_t since_ns = 0;
  };
  std::map<Key, PendingRaw> raws;
  std::map<Key, PendingMetrics> metrics;

  // `origins`: of every message the line is made from, space-separated. A
  // line any of whose origins the sidecar holds already is not written.
  bool already_written(std::string_view origins) const {
    if (options.already_written.empty()) return false;
    while (!origins.empty()) {
      const auto sp = origins.find(' ');
      const std::string_view one = origins.substr(0, sp);
      if (options.already_written.count(std::string(one)) != 0) return true;
      if (sp == std::string_view::npos) break;
      origins.remove_prefix(sp + 1);
    }
    return false;
  }

  void write_line(const std::string& origins, const std::string& payload, std::uint64_t index,
                  std::uint32_t pid, int exit_code, bool timed_out, const AssertResult& result,
                  const PayloadMetrics& m) {
    std::string line;
    line += "{\"payload\":";
    detail::json_string(line, payload);
    fmt::format_to(std::back_inserter(line),
                   ",\"payload_index\":{},\"pid\":{},\"exit_code\":{},\"timed_out\":{},"
                   "\"passed\":{},\"details\":",
                   index, pid, exit_code, timed_out, result.passed);
    detail::json_details(line, result);
    line += ",\"metrics\":";
    detail::json_metrics(line, m);
    if (!origins.empty()) {
      line += ",\"record\":";
      detail::json_string(line, origins);
    }
    line += "}";
    ++summary.invocations;
    sink(line);
  }

  void report(std::string s) {
    try {
      detail::logger()->warn("{}", s);
    } catch (...) {
    }
    reports.push_back(std::move(s));
  }

  static std::string join(const std::string& a, const std::string& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + " " + b;
  }

  void deferred_line(const std::string& origins, const RawPayloadOutput& raw, std::uint32_t pid,
                     const AssertResult* supervisor, std::optional<AssertDetail> pairing) {
    if (already_written(origins)) {
      ++summary.duplicates;  // delivered again after a consumer that did not commit it
      return;                // (not evaluated again: the extractor does not run twice)
    }
    PayloadMetrics m;
    AssertResult res = evaluate_deferred(raw, options, m);
    if (supervisor != nullptr) {
      for (const auto& d : supervisor->details) {
        if (std::find(res.details.begin(), res.details.end(), d) == res.details.end()) {
          res.merge(AssertResult::fail(d));
        }
      }
    }
    if (pairing) {
      ++summary.pairing_failures;
      res.merge(AssertResult::fail(std::move(*pairing)));
    }
    write_line(origins, raw.payload_name, raw.payload_index, pid, raw.exit_code, raw.timed_out, res, m);
  }

  void metrics_line(const std::string& origin, MetricsRecord& rec, std::uint32_t pid,
                    std::optional<AssertDetail> pairing) {
    if (already_written(origin)) {
      ++summary.duplicates;
      return;
    }
    if (pairing) {
      ++summary.pairing_failures;
      rec.result.merge(AssertResult::fail(std::move(*pairing)));
    }
    write_line(origin, rec.payload_name, rec.payload_index, pid, rec.exit_code, rec.timed_out, rec.result,
               rec.metrics);
  }

  void pair(const Key& key, const RawPayloadOutput& raw, const std::string& raw_origin,
            const MetricsRecord& rec, const std::string& metrics_origin) {
    std::optional<AssertDetail> pairing;
    if (!rec.deferred) {
      pairing = detail_of(DetailKind::pairing,
                          "raw output paired with the metrics record of a non-deferred payload");
    }
    deferred_line(join(metrics_origin, raw_origin), raw, key.first, &rec.result, std::move(pairing));
  }

  void unpaired_raw(const Key& key, PendingRaw& p) {
    deferred_line(p.origin, p.raw, key.first, nullptr,
                  detail_of(DetailKind::pairing,
                            fmt::format("raw output of payload '{}' (index {}, pid {}) has no "
                                        "metrics record",
                                        p.raw.payload_name, p.raw.payload_index, key.first)));
  }

  void unpaired_metrics(const Key& key, PendingMetrics& p) {
    metrics_line(p.origin, p.rec, key.first,
                 detail_of(DetailKind::pairing,
                           fmt::format("deferred payload '{}' (index {}, pid {}) has no raw output record",
                                       p.rec.payload_name, p.rec.payload_index, key.first)));
  }

  void consume(const RingMessage& msg) {
    const Key key{msg.pid, msg.payload_index};
    try {
      if (msg.type == RecordType::raw_output) {
        RawPayloadOutput raw = decode_raw(msg.body);
        if (raw.payload_index != msg.payload_index) {
          throw Error(Errc::ring, "the body's payload_index differs from the record's");
        }
        if (auto it = metrics.find(key); it != metrics.end()) {
          PendingMetrics m = std::move(it->second);
          metrics.erase(it);
          pair(key, raw, msg.origin, m.rec, m.origin);
          return;
        }
        auto [it, fresh] = raws.try_emplace(key);
        if (!fresh) {
          // An earlier raw output with the same key never got its metrics.
          PendingRaw old = std::move(it->second);
          unpaired_raw(key, old);
        }
        it->second = PendingRaw{std::move(raw), msg.origin, msg.hold, detail::monotonic_ns()};
        return;
      }
      MetricsRecord rec = decode_metrics(msg.body);
      if (rec.payload_index != msg.payload_index) {
        throw Error(Errc::ring, "the body's payload_index differs from the record's");
      }
      if (auto it = raws.find(key); it != raws.end()) {
        PendingRaw r = std::move(it->second);
        raws.erase(it);
        pair(key, r.raw, r.origin, rec, msg.origin);
        return;
      }
      if (rec.deferred && rec.metrics.empty()) {
        // Its raw output has not come yet: wait for it (held).
        auto [it, fresh] = metrics.try_emplace(key);
        if (!fresh) {
          PendingMetrics old = std::move(it->second);
          unpaired_metrics(key, old);
        }
        it->second = PendingMetrics{std::move(rec), msg.origin, msg.hold, detail::monotonic_ns()};
        return;
      }
      metrics_line(msg.origin, rec, msg.pid, std::nullopt);
    } catch (const Error& e) {
      ++summary.decode_failures;
      report(fmt::format("record {} of pid {} payload index {} ({} bytes) could not be decoded: {}",
                         msg.origin, msg.pid, msg.payload_index, msg.body.size(), e.what()));
    }
  }

  template <class Map, class Resolve>
  void expire_in(Map& map, std::uint64_t now, std::uint64_t older_than_ns, Resolve resolve) {
    for (auto it = map.begin(); it != map.end();) {
      if (now - it->second.since_ns < older_than_ns) {
        ++it;
        continue;
      }
      auto p = std::move(it->second);
      const Key key = it->first;
      it = map.erase(it);
      resolve(key, p);
    }
  }

  void expire(std::uint64_t older_than_ns) {
    const std::uint64_t now = detail::monotonic_ns();
    expire_in(raws, now, older_than_ns, [&](const Key& k, PendingRaw& p) { unpaired_raw(k, p); });
    expire_in(metrics, now, older_than_ns, [&](const Key& k, PendingMetrics& p) { unpaired_metrics(k, p); });
  }

  RingHold hold() const {
    RingHold h;
    for (const auto& [key, p] : raws) h.add(p.hold);
    for (const auto& [key, p] : metrics) h.add(p.hold);
    return h;
  }
};

Drain::Drain(LineSink sink, DrainOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->sink = std::move(sink);
  impl_->options = std::move(options);
}
Drain::~Drain() = default;
Drain::Drain(Drain&&) noexcept = default;
Drain& Drain::operator=(Drain&&) noexcept = default;
void Drain::consume(const RingMessage& message) { impl_->consume(message); }
void Drain::finish() { impl_->expire(0); }
void Drain::expire() {
  impl_->expire(static_cast<std::uint64_t>(std::max<std::int64_t>(0, impl_->options.pairing_timeout.count())) *
                1'000'000u);
}
RingHold Drain::hold() const { return impl_->hold(); }
std::size_t Drain::pending() const noexcept { return impl_->raws.size() + impl_->metrics.size(); }
const DrainSummary& Drain::summary() const noexcept { return impl_->summary; }
std::vector<std::string> Drain::take_reports() { return std::exchange(impl_->reports, {}); }

}  // namespace payloadrun
