// Extraction throughput (Google Benchmark) on a deterministic, real-shaped
// fio --output-format=json document (pretty-printed like fio, thousands of
// numeric leaves): payloadrun's Extractor vs the same flattening written with
// RapidJSON and nlohmann::json, vs simdjson's bare DOM parse (no flattening:
// the practical limit). Each peer is written twice: into the same
// PayloadMetrics sink with one reused path buffer (as well as we can write
// it), and "textbook" (a new std::string per node, prefix + "." + key, into
// a vector of (name, value) pairs: the flatten most code does).
// Repetitions run in random interleaved order (Google Benchmark's
// --benchmark_enable_random_interleaving), --rounds of them, each at least
// --min-seconds. Before timing, every flattening must yield exactly the
// generator's leaf count and value sum, else exit 1.
// Google Benchmark's table goes to stderr (its --benchmark_* flags work, e.g.
// --benchmark_out=f.json); stdout gets one JSON object per implementation,
// the median over repetitions and the slowest and fastest one:
// {"impl","mb_per_s","mb_per_s_min","mb_per_s_max","bytes","leaves","rounds"}.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <utility>

#include "common.hpp"
#include "payloadrun/payloadrun.hpp"

#if defined(HAVE_RAPIDJSON)
#include <rapidjson/document.h>
#endif
#if defined(HAVE_NLOHMANN_JSON)
#include <nlohmann/json.hpp>
#endif

namespace {

// --- deterministic fio-shaped generator ---------------------------------------

class FioWriter {
 public:
  explicit FioWriter(std::uint64_t seed) : rng_(seed) {}
  std::string out;
  std::size_t leaves = 0;
  double sum = 0;

  void open(const std::string& key, char c) {
    comma();
    indent();
    if (!key.empty()) out += "\"" + key + "\" : ";
    out += c;
    out += '\n';
    ++depth_;
    first_ = true;
  }
  void close(char c) {
    out += '\n';
    --depth_;
    indent();
    out += c;
    first_ = false;
  }
  void integer(const std::string& key, std::int64_t v) {
    field(key);
    out += std::to_string(v);
    count(static_cast<double>(v));
  }
  void real(const std::string& key, double v) {
    field(key);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    out += buf;
    count(std::strtod(buf, nullptr));
  }
  void text(const std::string& key, const std::string& v) {
    field(key);
    out += "\"" + v + "\"";
  }
  std::int64_t rnd(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }
  double rndf(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }

 private:
  void comma() {
    if (!first_) out += ",\n";
    first_ = false;
  }
  void indent() { out.append(static_cast<std::size_t>(depth_) * 2, ' '); }
  void field(const std::string& key) {
    comma();
    indent();
    out += "\"" + key + "\" : ";
  }
  void count(double v) {
    ++leaves;
    sum += v;
  }
  std::mt19937_64 rng_;
  int depth_ = 0;
  bool first_ = true;
};

void lat_block(FioWriter& w, const std::string& name, bool percentiles) {
  w.open(name, '{');
  const std::int64_t mn = w.rnd(1000, 20000);
  w.integer("min", mn);
  w.integer("max", mn * w.rnd(20, 400));
  w.real("mean", w.rndf(20000, 90000));
  w.real("stddev", w.rndf(1000, 40000));
  w.integer("N", w.rnd(100000, 9000000));
  if (percentiles) {
    w.open("percentile", '{');
    for (const char* p : {"1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
                          "50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000",
                          "99.000000", "99.500000", "99.900000", "99.950000", "99.990000"}) {
      w.integer(p, w.rnd(1000, 5000000));
    }
    w.close('}');
  }
  w.close('}');
}

void dir_block(FioWriter& w, const std::string& dir) {
  w.open(dir, '{');
  for (const char* k : {"io_bytes", "io_kbytes", "bw_bytes", "bw"}) w.integer(k, w.rnd(0, 1ll << 40));
  w.real("iops", w.rndf(0, 900000));
  for (const char* k : {"runtime", "total_ios", "short_ios", "drop_ios"}) w.integer(k, w.rnd(0, 100000000));
  lat_block(w, "slat_ns", false);
  lat_block(w, "clat_ns", true);
  lat_block(w, "lat_ns", false);
  w.integer("bw_min", w.rnd(0, 1000000));
  w.integer("bw_max", w.rnd(0, 1000000));
  w.real("bw_agg", w.rndf(0, 100));
  w.real("bw_mean", w.rndf(0, 1000000));
  w.real("bw_dev", w.rndf(0, 10000));
  w.integer("bw_samples", w.rnd(0, 10000));
  w.integer("iops_min", w.rnd(0, 100000));
  w.integer("iops_max", w.rnd(0, 100000));
  w.real("iops_mean", w.rndf(0, 100000));
  w.real("iops_stddev", w.rndf(0, 1000));
  w.integer("iops_samples", w.rnd(0, 10000));
  w.close('}');
}

void depth_block(FioWriter& w, const std::string& name, std::initializer_list<const char*> keys) {
  w.open(name, '{');
  for (const char* k : keys) w.real(k, w.rndf(0, 100));
  w.close('}');
}

/// A fio 3.33-shaped JSON document of at least `min_bytes`.
FioWriter fio_document(std::size_t min_bytes) {
  FioWriter w(20240601);
  w.open("", '{');
  w.text("fio version", "fio-3.33");
  w.integer("timestamp", 1717200000);
  w.integer("timestamp_ms", 1717200000123);
  w.text("time", "Sat Jun  1 00:00:00 2024");
  w.open("global options", '{');
  w.text("ioengine", "io_uring");
  w.text("direct", "1");
  w.text("runtime", "60");
  w.close('}');
  w.open("jobs", '[');
  for (int job = 0; w.out.size() < min_bytes; ++job) {
    w.open("", '{');
    w.text("jobname", "job" + std::to_string(job));
    w.integer("groupid", 0);
    w.integer("error", 0);
    w.integer("eta", 0);
    w.integer("elapsed", 61);
    w.open("job options", '{');
    w.text("rw", "randrw");
    w.text("bs", "4k");
    w.text("iodepth", "32");
    w.close('}');
    dir_block(w, "read");
    dir_block(w, "write");
    dir_block(w, "trim");
    w.open("sync", '{');
    w.integer("total_ios", 0);
    lat_block(w, "lat_ns", false);
    w.close('}');
    w.integer("job_runtime", w.rnd(59000, 61000));
    w.real("usr_cpu", w.rndf(0, 50));
    w.real("sys_cpu", w.rndf(0, 50));
    for (const char* k : {"ctx", "majf", "minf"}) w.integer(k, w.rnd(0, 10000000));
    depth_block(w, "iodepth_level", {"1", "2", "4", "8", "16", "32", ">=64"});
    depth_block(w, "iodepth_submit", {"0", "4", "8", "16", "32", "64", ">=64"});
    depth_block(w, "iodepth_complete", {"0", "4", "8", "16", "32", "64", ">=64"});
    depth_block(w, "latency_ns", {"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"});
    depth_block(w, "latency_us", {"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"});
    depth_block(w, "latency_ms", {"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000", ">=2000"});
    w.integer("latency_depth", 32);
    w.integer("latency_target", 0);
    w.real("latency_percentile", 100.0);
    w.integer("latency_window", 0);
    w.close('}');
  }
  w.close(']');
  w.open("disk_util", '[');
  w.open("", '{');
  w.text("name", "nvme0n1");
  for (const char* k : {"read_ios", "write_ios", "read_merges", "write_merges", "read_ticks", "write_ticks",
                        "in_queue"}) {
    w.integer(k, w.rnd(0, 100000000));
  }
  w.real("util", w.rndf(0, 100));
  w.close('}');
  w.close(']');
  w.close('}');
  w.out += '\n';
  return w;
}

// --- peers: the same flattening (finite numbers, dotted paths) -----------------

#if defined(HAVE_RAPIDJSON)
void rapid_walk(const rapidjson::Value& v, std::string& path, payloadrun::PayloadMetrics& out) {
  const std::size_t base = path.size();
  auto child = [&](std::string_view key) {
    if (base != 0) path += '.';
    path.append(key);
  };
  if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      child({it->name.GetString(), it->name.GetStringLength()});
      rapid_walk(it->value, path, out);
      path.resize(base);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      child(std::to_string(i));
      rapid_walk(v[i], path, out);
      path.resize(base);
    }
  } else if (v.IsNumber()) {
    const double d = v.GetDouble();
    if (std::isfinite(d)) out.add(path, d);
  }
}
std::size_t rapid_flatten(std::string_view text, payloadrun::PayloadMetrics& out) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) return 0;
  std::string path;
  rapid_walk(doc, path, out);
  return out.size();
}
#endif

#if defined(HAVE_NLOHMANN_JSON)
void nlohmann_walk(const nlohmann::json& v, std::string& path, payloadrun::PayloadMetrics& out) {
  const std::size_t base = path.size();
  auto child = [&](std::string_view key) {
    if (base != 0) path += '.';
    path.append(key);
  };
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      child(key);
      nlohmann_walk(value, path, out);
      path.resize(base);
    }
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      child(std::to_string(i));
      nlohmann_walk(v[i], path, out);
      path.resize(base);
    }
  } else if (v.is_number()) {
    const double d = v.get<double>();
    if (std::isfinite(d)) out.add(path, d);
  }
}
std::size_t nlohmann_flatten(std::string_view text, payloadrun::PayloadMetrics& out) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return 0;
  std::string path;
  nlohmann_walk(doc, path, out);
  return out.size();
}
#endif

// --- textbook peers: a new std::string per node, pairs in a vector ----------

using NamedValues = std::vector<std::pair<std::string, double>>;

std::string join(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

#if defined(HAVE_RAPIDJSON)
void rapid_textbook_walk(const rapidjson::Value& v, const std::string& prefix, NamedValues& out) {
  if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      rapid_textbook_walk(it->value, join(prefix, {it->name.GetString(), it->name.GetStringLength()}), out);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) rapid_textbook_walk(v[i], join(prefix, std::to_string(i)), out);
  } else if (v.IsNumber() && std::isfinite(v.GetDouble())) {
    out.emplace_back(prefix, v.GetDouble());
  }
}
std::size_t rapid_textbook(std::string_view text, NamedValues& out) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) return 0;
  rapid_textbook_walk(doc, "", out);
  return out.size();
}
#endif

#if defined(HAVE_NLOHMANN_JSON)
void nlohmann_textbook_walk(const nlohmann::json& v, const std::string& prefix, NamedValues& out) {
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) nlohmann_textbook_walk(value, join(prefix, key), out);
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) nlohmann_textbook_walk(v[i], join(prefix, std::to_string(i)), out);
  } else if (v.is_number() && std::isfinite(v.get<double>())) {
    out.emplace_back(prefix, v.get<double>());
  }
}
std::size_t nlohmann_textbook(std::string_view text, NamedValues& out) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return 0;
  nlohmann_textbook_walk(doc, "", out);
  return out.size();
}
#endif

struct Impl {
  std::string name;
  std::function<std::size_t()> run;  // one full pass; returns metrics found (or 1 for bare parse)
  enum Check { sink, pairs, parse } check = sink;
};

// Collects bytes_per_second of every repetition; shows the usual table.
class Collector : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, std::vector<double>> mbps;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) mbps[r.run_name.function_name].push_back(it->second.value / 1e6);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::Args args(argc, argv);
    const bool smoke = args.has("smoke");
    const long rounds = args.integer("rounds", smoke ? 2 : 7);
    const double min_seconds = args.num("min-seconds", smoke ? 0.01 : 0.2);
    const auto kib = static_cast<std::size_t>(args.integer("kib", 150));
    const FioWriter doc = fio_document(kib * 1024);
    const std::string& text = doc.out;
    if (args.has("dump")) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }

    payloadrun::PayloadMetrics out;
    NamedValues pairs;
    payloadrun::Extractor extractor;
    simdjson::dom::parser parser;
    const simdjson::padded_string padded(text);
    std::vector<Impl> impls;
    impls.push_back({"payloadrun", [&] {
                       out.clear();
                       return extractor.extract(text, payloadrun::MetricSource::json,
                                                payloadrun::MetricStream::stdout_stream, out);
                     }});
    impls.push_back({"simdjson_parse", [&]() -> std::size_t {
                       simdjson::dom::element e;
                       return parser.parse(padded).get(e) == simdjson::SUCCESS ? 1 : 0;
                     }, Impl::parse});
#if defined(HAVE_RAPIDJSON)
    impls.push_back({"rapidjson", [&] {
                       out.clear();
                       return rapid_flatten(text, out);
                     }});
    impls.push_back({"rapidjson_textbook", [&] {
                       pairs.clear();
                       return rapid_textbook(text, pairs);
                     }, Impl::pairs});
#endif
#if defined(HAVE_NLOHMANN_JSON)
    impls.push_back({"nlohmann", [&] {
                       out.clear();
                       return nlohmann_flatten(text, out);
                     }});
    impls.push_back({"nlohmann_textbook", [&] {
                       pairs.clear();
                       return nlohmann_textbook(text, pairs);
                     }, Impl::pairs});
#endif

    // Correctness first: every flattening yields the generator's leaves and
    // sum, and finds a percentile key with dots in it.
    for (auto& impl : impls) {
      const std::size_t got = impl.run();
      if (impl.check == Impl::parse) {
        if (got != 1) bench::fail(impl.name + " could not parse the document");
        continue;
      }
      double sum = 0;
      bool has_percentile = false;
      const std::string key = "jobs.0.read.clat_ns.percentile.99.900000";
      if (impl.check == Impl::sink) {
        if (out.size() != doc.leaves) bench::fail(impl.name + ": the sink holds " + std::to_string(out.size()) + " metrics");
        for (const auto& m : out) sum += m.value;
        has_percentile = out.get(key).has_value();
      } else {
        for (const auto& [name, value] : pairs) {
          sum += value;
          has_percentile = has_percentile || name == key;
        }
      }
      if (got != doc.leaves) {
        bench::fail(impl.name + " found " + std::to_string(got) + " metrics, expected " +
                    std::to_string(doc.leaves));
      }
      if (std::abs(sum - doc.sum) > 1e-9 * std::abs(doc.sum)) bench::fail(impl.name + ": value sum differs");
      if (!has_percentile) bench::fail(impl.name + ": missing " + key);
    }

    for (auto& impl : impls) {
      benchmark::RegisterBenchmark(impl.name.c_str(), [&impl, &text](benchmark::State& state) {
        for (auto _ : state) {
          if (impl.run() == 0) {
            state.SkipWithError("failed mid-run");
            break;
          }
        }
        state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
      })->Repetitions(static_cast<int>(rounds))->MinTime(min_seconds)->ReportAggregatesOnly(false);
    }
    // Google Benchmark parses its own --benchmark_* flags; ours were read above.
    std::vector<char*> gb_argv{argv[0]};
    std::string interleave = "--benchmark_enable_random_interleaving=true";
    std::string no_color = "--benchmark_color=false";  // the log is not a terminal (yours may override)
    gb_argv.push_back(interleave.data());
    gb_argv.push_back(no_color.data());
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]).rfind("--benchmark_", 0) == 0) gb_argv.push_back(argv[i]);
    }
    int gb_argc = static_cast<int>(gb_argv.size());
    benchmark::Initialize(&gb_argc, gb_argv.data());
    Collector collector;
    collector.SetOutputStream(&std::cerr);
    collector.SetErrorStream(&std::cerr);
    benchmark::RunSpecifiedBenchmarks(&collector);
    benchmark::Shutdown();
    for (const auto& impl : impls) {
      const auto& v = collector.mbps[impl.name];
      if (static_cast<long>(v.size()) != rounds) {
        bench::fail(impl.name + ": " + std::to_string(v.size()) + " of " + std::to_string(rounds) +
                    " repetitions reported");
      }
      std::printf(
          "{\"impl\":\"%s\",\"mb_per_s\":%.2f,\"mb_per_s_min\":%.2f,\"mb_per_s_max\":%.2f,"
          "\"bytes\":%zu,\"leaves\":%zu,\"rounds\":%ld}\n",
          impl.name.c_str(), bench::median(v), *std::min_element(v.begin(), v.end()),
          *std::max_element(v.begin(), v.end()), text.size(), doc.leaves, rounds);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "extract_bench: %s\n", e.what());
    return 1;
  }
}
