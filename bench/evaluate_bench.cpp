// Check evaluation and hint resolution at scale: N metrics x M checks (and M
// hints), doubling N and M from --n/--m for --doublings steps. payloadrun's
// evaluate_checks/apply_hints are O(N + M), so time should ~2x per
// doubling; the peer is the seed's straightforward shape (each check/hint
// looked up by a linear scan of the metrics: O(N * M), ~4x per doubling).
// Both must agree (same verdict, same number of failure details, same
// polarity and unit on every metric), else exit 1.
// Prints one JSON object per (size, op, impl): {"n","m","op","impl","ns",
// "ns_min","ns_max"} (ns per call: the median round, the fastest, the slowest).
#include <algorithm>
#include <cmath>
#include <functional>

#include "common.hpp"
#include "payloadrun/payloadrun.hpp"

namespace {

using payloadrun::MetricCheck;

struct Fixture {
  payloadrun::PayloadMetrics metrics;
  std::vector<MetricCheck> checks;
  std::vector<payloadrun::MetricHint> hints;
  std::size_t expected_failures = 0;
};

const char* const units[] = {"iops", "ns", "us", "KiB/s", "%", "ops", "B", ""};

Fixture make_fixture(std::size_t n, std::size_t m) {
  Fixture f;
  f.metrics.reserve(n, n * 32);
  for (std::size_t i = 0; i < n; ++i) {
    f.metrics.add("jobs." + std::to_string(i / 64) + ".read.clat_ns.percentile." + std::to_string(i % 64),
                  static_cast<double>(i));
  }
  for (std::size_t j = 0; j < m; ++j) {
    // Spread the targets over the whole metric set (late ones included).
    const std::size_t i = (j * 7919 + n / 2) % n;
    const std::string name = "jobs." + std::to_string(i / 64) + ".read.clat_ns.percentile." +
                             std::to_string(i % 64);
    const double v = static_cast<double>(i);
    switch (j % 10) {
      case 0: f.checks.push_back(MetricCheck::min(name, v + 1)); ++f.expected_failures; break;  // fails
      case 1: f.checks.push_back(MetricCheck::exists("absent." + std::to_string(j))); ++f.expected_failures; break;
      case 2: case 3: f.checks.push_back(MetricCheck::max(name, v)); break;
      case 4: case 5: f.checks.push_back(MetricCheck::range(name, v - 1, v + 1)); break;
      case 6: f.checks.push_back(MetricCheck::exists(name)); break;
      default: f.checks.push_back(MetricCheck::min(name, v)); break;
    }
    f.hints.push_back({name, j % 2 ? payloadrun::Polarity::lower_better : payloadrun::Polarity::higher_better,
                       units[j % std::size(units)]});
  }
  return f;
}

// --- the O(N * M) peer ---------------------------------------------------------

// Reports every failure with a message, as evaluate_checks does.
std::size_t naive_evaluate(std::span<const MetricCheck> checks, const payloadrun::PayloadMetrics& metrics) {
  payloadrun::AssertResult result;
  for (const MetricCheck& c : checks) {
    if (!c.is_metric_level()) continue;
    const auto i = metrics.find(c.metric());  // linear scan
    if (!i) {
      result.passed = false;
      result.details.push_back({payloadrun::DetailKind::other,
                                "metric '" + c.metric() + "' not found in payload output"});
      continue;
    }
    const double v = metrics[*i].value;
    bool ok = !std::isnan(v);
    switch (c.kind()) {
      case MetricCheck::Kind::min: ok = ok && v >= c.lo(); break;
      case MetricCheck::Kind::max: ok = ok && v <= c.hi(); break;
      case MetricCheck::Kind::range: ok = ok && v >= c.lo() && v <= c.hi(); break;
      default: break;
    }
    if (!ok) {
      result.passed = false;
      result.details.push_back({payloadrun::DetailKind::other,
                                "metric '" + c.metric() + "' = " + payloadrun::format_value(v) +
                                    " fails " + c.describe()});
    }
  }
  return result.details.size();
}

void naive_apply_hints(payloadrun::PayloadMetrics& metrics, std::span<const payloadrun::MetricHint> hints) {
  for (const auto& h : hints) {  // later hints overwrite: last wins
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      if (metrics[i].name == h.name) metrics.set_hint(i, h.polarity, h.unit);
    }
  }
}

/// Median ns per call over `rounds` samples of >= min_seconds each;
/// `impls` are interleaved.
// Per implementation: {median, fastest, slowest} ns per call over the rounds.
struct Timing {
  double median, min, max;
};

std::vector<Timing> time_interleaved(std::vector<std::function<void()>> impls, long rounds, double min_seconds) {
  std::vector<std::vector<double>> samples(impls.size());
  for (long r = 0; r < rounds; ++r) {
    for (std::size_t k = 0; k < impls.size(); ++k) {
      long iters = 0;
      const auto t0 = bench::clock::now();
      double secs = 0;
      do {
        impls[k]();
        ++iters;
        secs = bench::seconds_since(t0);
      } while (secs < min_seconds);
      samples[k].push_back(secs * 1e9 / static_cast<double>(iters));
    }
  }
  std::vector<Timing> out;
  for (auto& s : samples) {
    out.push_back({bench::median(s), *std::min_element(s.begin(), s.end()), *std::max_element(s.begin(), s.end())});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::Args args(argc, argv);
    const bool smoke = args.has("smoke");
    std::size_t n = static_cast<std::size_t>(args.integer("n", smoke ? 1000 : 10000));
    std::size_t m = static_cast<std::size_t>(args.integer("m", smoke ? 10 : 100));
    const long doublings = args.integer("doublings", smoke ? 1 : 3);
    const long rounds = args.integer("rounds", smoke ? 2 : 7);
    const double min_seconds = args.num("min-seconds", smoke ? 0.005 : 0.05);
    for (long d = 0; d <= doublings; ++d, n *= 2, m *= 2) {
      Fixture f = make_fixture(n, m);
      // Agreement first.
      const auto verdict = payloadrun::evaluate_checks(f.checks, f.metrics, "");
      const std::size_t naive_failures = naive_evaluate(f.checks, f.metrics);
      if (verdict.passed || verdict.details.size() != f.expected_failures ||
          naive_failures != f.expected_failures) {
        bench::fail("verdicts differ at n=" + std::to_string(n) + ": payloadrun " +
                    std::to_string(verdict.details.size()) + " details, naive " +
                    std::to_string(naive_failures) + ", expected " + std::to_string(f.expected_failures));
      }
      payloadrun::PayloadMetrics hinted = f.metrics;
      payloadrun::PayloadMetrics naive_hinted = f.metrics;
      payloadrun::apply_hints(hinted, f.hints);
      naive_apply_hints(naive_hinted, f.hints);
      std::size_t hinted_count = 0;
      for (std::size_t i = 0; i < hinted.size(); ++i) {
        if (hinted[i].polarity != naive_hinted[i].polarity || hinted[i].unit != naive_hinted[i].unit) {
          bench::fail("hint results differ at metric " + std::string(hinted[i].name));
        }
        hinted_count += hinted[i].polarity != payloadrun::Polarity::unknown;
      }
      if (hinted_count == 0) bench::fail("no metric received a hint");

      std::size_t sink = 0;
      const auto eval = time_interleaved(
          {[&] { sink += payloadrun::evaluate_checks(f.checks, f.metrics, "").details.size(); },
           [&] { sink += naive_evaluate(f.checks, f.metrics); }},
          rounds, min_seconds);
      const auto hint = time_interleaved({[&] { payloadrun::apply_hints(hinted, f.hints); },
                                          [&] { naive_apply_hints(naive_hinted, f.hints); }},
                                         rounds, min_seconds);
      if (sink == 0) bench::fail("evaluation produced nothing");
      const char* fmt =
          "{\"n\":%zu,\"m\":%zu,\"op\":\"%s\",\"impl\":\"%s\",\"ns\":%.1f,\"ns_min\":%.1f,\"ns_max\":%.1f}\n";
      auto print = [&](const char* op, const char* impl, const Timing& t) {
        std::printf(fmt, n, m, op, impl, t.median, t.min, t.max);
      };
      print("evaluate_checks", "payloadrun", eval[0]);
      print("evaluate_checks", "naive", eval[1]);
      print("apply_hints", "payloadrun", hint[0]);
      print("apply_hints", "naive", hint[1]);
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate_bench: %s\n", e.what());
    return 1;
  }
}
