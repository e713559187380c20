// payloadrun-drain: drain a payloadrun result ring into a JSON-lines sidecar.
//
//   payloadrun-drain --ring NAME --out SIDECAR.jsonl [--extractor CMD] [--capacity BYTES]
//
// Creates the ring if no producer has yet. On SIGTERM/SIGINT it reads every
// committed record, writes it, prints a summary and exits: 0 when nothing
// was lost or corrupt, 1 otherwise, 2 on a usage or setup error. Deferred
// payloads are extracted here: by CMD (raw stdout on its stdin, argv split
// on spaces, no shell) or, without --extractor, from the raw text itself.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "payloadrun/error.hpp"
#include "payloadrun/ring.hpp"

namespace {

std::atomic<bool> stop_requested{false};

void on_signal(int) { stop_requested.store(true); }

int usage(const char* why) {
  std::fprintf(stderr,
               "payloadrun-drain: %s\nusage: payloadrun-drain --ring NAME --out SIDECAR.jsonl "
               "[--extractor CMD] [--capacity BYTES]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ring;
  std::string out_path;
  payloadrun::DrainOptions drain_options;
  payloadrun::RingOptions ring_options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    if (a == "--ring") {
      ring = v;
    } else if (a == "--out") {
      out_path = v;
    } else if (a == "--extractor") {
      drain_options.extractor = v;
    } else if (a == "--capacity") {
      char* end = nullptr;
      const unsigned long long c = std::strtoull(v, &end, 10);
      if (end == v || *end != '\0' || c == 0) return usage("--capacity takes a byte count");
      ring_options.capacity = static_cast<std::size_t>(c);
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }
  if (ring.empty() || out_path.empty()) return usage("--ring and --out are required");

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: the futex wait returns early
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::ofstream out(out_path, std::ios::app | std::ios::binary);
  if (!out) {
    std::fprintf(stderr, "payloadrun-drain: cannot open %s for appending: %s\n", out_path.c_str(),
                 std::strerror(errno));
    return 2;
  }
  try {
    payloadrun::RingConsumer consumer(ring, ring_options);
    payloadrun::Drain drain([&](std::string_view line) { out << line << '\n'; }, drain_options);
    const auto print_reports = [&] {
      for (const auto& r : consumer.take_reports()) std::fprintf(stderr, "payloadrun-drain: %s\n", r.c_str());
      for (const auto& r : drain.take_reports()) std::fprintf(stderr, "payloadrun-drain: %s\n", r.c_str());
    };
    using std::chrono::milliseconds;
    while (!stop_requested.load()) {
      if (auto m = consumer.next(milliseconds(100))) {
        drain.consume(*m);
      } else {
        out.flush();
        print_reports();
      }
    }
    // Stop: take every committed record; give in-flight reservations and
    // fragmented messages a bounded grace to complete.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto quiet_since = std::chrono::steady_clock::now();
    for (;;) {
      if (auto m = consumer.next(milliseconds(10))) {
        drain.consume(*m);
        quiet_since = std::chrono::steady_clock::now();
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      const bool waiting_for_more = consumer.has_partial() || !consumer.empty();
      if (!waiting_for_more && now - quiet_since > milliseconds(20)) break;
      if (now > deadline) break;
    }
    consumer.abandon_partials();
    drain.finish();
    out.flush();
    print_reports();
    const payloadrun::RingStats& s = consumer.stats();
    const payloadrun::DrainSummary& d = drain.summary();
    std::fprintf(stderr,
                 "payloadrun-drain: ring '%s': %llu records, %llu messages, %llu invocations, "
                 "%llu bytes; %llu corrupt, %llu abandoned, %llu incomplete, %llu undecodable, "
                 "%llu pairing failures\n",
                 ring.c_str(), static_cast<unsigned long long>(s.records),
                 static_cast<unsigned long long>(s.messages),
                 static_cast<unsigned long long>(d.invocations),
                 static_cast<unsigned long long>(s.bytes), static_cast<unsigned long long>(s.corrupt),
                 static_cast<unsigned long long>(s.abandoned),
                 static_cast<unsigned long long>(s.incomplete),
                 static_cast<unsigned long long>(d.decode_failures),
                 static_cast<unsigned long long>(d.pairing_failures));
    if (!out) {
      std::fprintf(stderr, "payloadrun-drain: writing %s failed\n", out_path.c_str());
      return 1;
    }
    const bool lost = s.corrupt || s.abandoned || s.incomplete || d.decode_failures || d.pairing_failures;
    return lost ? 1 : 0;
  } catch (const payloadrun::Error& e) {
    std::fprintf(stderr, "payloadrun-drain: %s\n", e.what());
    return 2;
  }
}
