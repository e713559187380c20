// payloadrun-drain: drain a payloadrun result ring into a JSON-lines sidecar.
//
//   payloadrun-drain --ring NAME --out SIDECAR.jsonl [--extractor PROGRAM [--extractor-arg ARG]...]
//                    [--capacity BYTES] [--fsync] [--spill-dir DIR]
//
// Creates the ring if no producer has yet. Spill journals of the ring are
// imported first. A record leaves the ring only after the sidecar's write(2)
// of its line returned (and, with --fsync, fdatasync); a restarted drain
// cuts a torn last line off the sidecar and skips messages whose lines it
// already holds, so every invocation is written exactly once. On
// SIGTERM/SIGINT it reads every committed record, writes it, prints a
// summary and exits: 0 when nothing was lost or corrupt, 1 otherwise, 2 on a
// usage or setup error, 3 when writing the sidecar failed (what was not
// written stays in the ring for the next drain). Deferred payloads are
// extracted here: by PROGRAM, run with each --extractor-arg as one argument
// (raw stdout on its stdin, no shell; DrainOptions::extractor) or, without
// --extractor, from the raw text itself.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/cfg/env.h>
#include <spdlog/spdlog.h>

#include "payloadrun/error.hpp"
#include "payloadrun/drain.hpp"
#include "payloadrun/ring_consumer.hpp"

#include "drain_sidecar.hpp"

namespace {

std::atomic<bool> stop_requested{false};

void on_signal(int) { stop_requested.store(true); }

constexpr const char* usage_text =
    "usage: payloadrun-drain --ring NAME --out SIDECAR.jsonl [--extractor PROGRAM [--extractor-arg ARG]...] "
    "[--capacity BYTES] [--fsync] [--spill-dir DIR]\n";

int usage(const std::string& why) {
  std::fprintf(stderr, "payloadrun-drain: %s\n%s", why.c_str(), usage_text);
  return 2;
}

constexpr int exit_write_failed = 3;

struct Args {
  std::string ring;
  std::string out_path;
  bool fsync = false;
  payloadrun::DrainOptions drain_options;
  payloadrun::RingOptions ring_options;
};

// The command line (CLI11); an exit status when there is nothing to run
// (--help: 0; a usage error, printed: 2).
std::optional<int> parse_args(int argc, char** argv, Args& a) {
  a.ring_options.auto_commit = false;
  std::string extractor, capacity;
  std::vector<std::string> extractor_args;
  CLI::App app("payloadrun-drain: drain a payloadrun result ring into a JSON-lines sidecar", "payloadrun-drain");
  app.add_option("--ring", a.ring, "the ring's name (created if no producer has yet)")->type_name("NAME")->required();
  app.add_option("--out", a.out_path, "the sidecar, appended to")->type_name("SIDECAR.jsonl")->required();
  app.add_option("--extractor", extractor, "extract Deferred payloads with PROGRAM (no shell)")
      ->type_name("PROGRAM");
  app.add_option("--extractor-arg", extractor_args, "one argument for the extractor (repeatable)")
      ->type_name("ARG")->allow_extra_args(false);
  app.add_option("--capacity", capacity, "the ring's size when this drain creates it")->type_name("BYTES");
  app.add_flag("--fsync", a.fsync, "fdatasync the sidecar before committing")->disable_flag_override();
  app.add_option("--spill-dir", a.ring_options.spill_dir, "where producers' spill journals are")->type_name("DIR");
  app.footer(usage_text);
  app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  if (!app.remaining().empty()) {
    const std::string x = app.remaining().front();
    return usage(x.size() > 1 && x[0] == '-' ? "unknown option " + x : "unexpected argument \"" + x + "\"");
  }
  if (a.ring.empty()) return usage("--ring needs a name");
  if (a.out_path.empty()) return usage("--out needs a path");
  if (app.count("--extractor") != 0 && extractor.empty()) return usage("--extractor needs a program");
  if (extractor.empty() && !extractor_args.empty()) return usage("--extractor-arg needs --extractor");
  if (!extractor.empty()) {
    a.drain_options.extractor.push_back(extractor);
    a.drain_options.extractor.insert(a.drain_options.extractor.end(), extractor_args.begin(),
                                     extractor_args.end());
  }
  if (app.count("--capacity") != 0) {
    char* end = nullptr;
    const unsigned long long c = std::strtoull(capacity.c_str(), &end, 10);
    if (capacity.empty() || capacity[0] == '-' || *end != '\0' || c == 0) {
      return usage(fmt::format("--capacity takes a byte count, got \"{}\"", capacity));
    }
    a.ring_options.capacity = static_cast<std::size_t>(c);
  }
  return std::nullopt;
}


}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the program's default: warnings and errors
  spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL: the library's logger "payloadrun" included
  Args args;
  if (const std::optional<int> status = parse_args(argc, argv, args)) return *status;
  const std::string& ring = args.ring;
  const std::string& out_path = args.out_path;
  const bool fsync = args.fsync;
  payloadrun::DrainOptions& drain_options = args.drain_options;
  const payloadrun::RingOptions& ring_options = args.ring_options;

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: the futex wait returns early
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a vanished reader is a write error, not a death

  const auto say = [](const std::string& s) { std::fprintf(stderr, "payloadrun-drain: %s\n", s.c_str()); };
  try {
    drain::Sidecar out(out_path);
    if (const std::uint64_t cut = out.repair(); cut != 0) {
      say(fmt::format("{}: removed a torn last line of {} bytes (a drain was killed while writing it; "
                      "its record is still in the ring)",
                      out_path, cut));
    }
    payloadrun::RingConsumer consumer(ring, ring_options);
    drain_options.already_written = out.redeliverable(consumer.ring_id(), consumer.committed_position());
    payloadrun::Drain drain([&](std::string_view line) { out.append(line); }, drain_options);
    const auto print_reports = [&] {
      for (const auto& r : consumer.take_reports()) say(r);
      for (const auto& r : drain.take_reports()) say(r);
    };
    bool write_failed = false;
    // Write what is queued, then give its records back to the producers.
    const auto flush_and_commit = [&] {
      if (!out.flush(fsync)) {
        write_failed = true;
        return false;
      }
      consumer.commit(drain.hold());
      return true;
    };
    using std::chrono::milliseconds;
    constexpr std::size_t batch_bytes = 1u << 20;
    std::size_t batch = 0;
    while (!stop_requested.load()) {
      if (auto m = consumer.next(out.has_pending() ? milliseconds(0) : milliseconds(100))) {
        drain.consume(*m);
        if (++batch < 1024 && out.pending_bytes() < batch_bytes) continue;
      } else {
        drain.expire();
        print_reports();
      }
      batch = 0;
      if (!flush_and_commit()) break;
    }
    if (!write_failed) {
      // Stop: take every committed record; give in-flight reservations and
      // fragmented messages a bounded grace to complete.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      auto quiet_since = std::chrono::steady_clock::now();
      for (;;) {
        if (auto m = consumer.next(milliseconds(10))) {
          drain.consume(*m);
          quiet_since = std::chrono::steady_clock::now();
          if (out.pending_bytes() >= batch_bytes && !flush_and_commit()) break;
          continue;
        }
        const auto now = std::chrono::steady_clock::now();
        const bool waiting_for_more = consumer.has_partial() || !consumer.empty();
        if (!waiting_for_more && now - quiet_since > milliseconds(20)) break;
        if (now > deadline) break;
      }
      if (!write_failed) {
        // What waits for its pair (or its last fragments) stays in the ring
        // or its journal for the next drain: nothing is resolved early.
        drain.expire();
        consumer.abandon_partials();
        flush_and_commit();
        if (const std::size_t held = drain.pending(); held != 0) {
          say(fmt::format("{} halves of Deferred pairs wait for their other half; left in the ring "
                          "for the next drain (a pairing failure after {} ms)",
                          held, drain_options.pairing_timeout.count()));
        }
      }
    }
    print_reports();
    const payloadrun::RingStats& s = consumer.stats();
    const payloadrun::DrainSummary& d = drain.summary();
    say(fmt::format("ring '{}': {} records, {} messages ({} from spill journals), {} invocations, {} bytes; "
                    "{} corrupt, {} abandoned, {} incomplete, {} undecodable, {} pairing failures, {} "
                    "already in the sidecar",
                    ring, s.records, s.messages, s.spilled, d.invocations, s.bytes, s.corrupt, s.abandoned,
                    s.incomplete, d.decode_failures, d.pairing_failures, d.duplicates));
    if (write_failed) {
      say(fmt::format("{}; stopped consuming: what was not written stays in the ring (and its spill "
                      "journals) for the next drain",
                      out.error()));
      return exit_write_failed;
    }
    const bool lost = s.corrupt || s.abandoned || s.incomplete || d.decode_failures || d.pairing_failures;
    return lost ? 1 : 0;
  } catch (const payloadrun::Error& e) {
    say(e.what());
    return 2;
  } catch (const std::exception& e) {
    say(e.what());
    return 2;
  }
}
