// Drain: ring messages to sidecar lines (pairing of a Deferred payload's
// raw output with its metrics record, holds, deduplication by origin); the
// Deferred evaluation itself is deferred.cpp.
#include "payloadrun/drain.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "detail/deferred.hpp"
#include "detail/log.hpp"
#include "detail/ring_json.hpp"
#include "detail/ring_layout.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun {
namespace {

AssertDetail detail_of(DetailKind k, std::string m) { return AssertDetail{k, std::move(m)}; }

}  // namespace

struct __attribute__((visibility("hidden"))) Drain::Impl {
  LineSink sink;
  DrainOptions options;
  std::unique_ptr<detail::DeferredEvaluator> deferred;  // after `options` is set
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
    AssertResult res = deferred->evaluate(raw, m);
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
  impl_->deferred = std::make_unique<detail::DeferredEvaluator>(impl_->options);
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
