// payloadrun runner: the command line with CLI11 (cli.hpp). CLI11 owns the
// structure (subcommands, options and their values, --help); the checks of
// values and the messages the README documents stay here.
#include "cli.hpp"

#include <charconv>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "say.hpp"

namespace runner {

const char* const run_usage =
    "usage: payloadrun run [SCENARIO.json] [--concurrency N] [--json REPORT.json]\n"
    "                      [--junit REPORT.xml] [--ring NAME] [--cgroup-parent PATH]\n"
    "                      [--create-cgroups] [--shard I/N] [--shard-count N] [--quiet]\n"
    "Without SCENARIO.json the bundled demo scenario runs. --shard I/N runs slice I of N\n"
    "(0-based); without it JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or TEST_SHARD_INDEX\n"
    "select the slice (--shard-count or PAYLOADRUN_SHARD_COUNT give a Kubernetes job's count).\n"
    "Exit status: 0 all passed, 1 any invocation failed, 2 bad usage or scenario (nothing ran),\n"
    "4 results did not reach the --ring, 74 a report could not be written,\n"
    "130 interrupted (SIGINT/SIGTERM).\n";

const char* const merge_usage =
    "usage: payloadrun merge OUT.json IN.json... [--junit OUT.xml]\n"
    "                        [--sidecar OUT.jsonl IN.jsonl...] [--quiet]\n"
    "Joins the reports that `payloadrun run --shard I/N --json IN.json` wrote for each slice;\n"
    "--sidecar's inputs are the arguments after OUT.jsonl up to the next option.\n"
    "Exit status: 0 the whole scenario passed, 1 an invocation failed or a shard is missing,\n"
    "2 bad usage or inputs that cannot be merged, 74 an output could not be written,\n"
    "130 a slice was interrupted.\n";

namespace {

struct UsageError {
  std::string message;
};

// What CLI11 left over: an unknown option, or an extra positional argument.
void refuse_extras(const CLI::App& app, const char* command) {
  for (const std::string& x : app.remaining()) {
    if (x.size() > 1 && x[0] == '-') throw UsageError{fmt::format("unknown option {} for {}", x, command)};
  }
}

std::size_t positive_count(const std::string& flag, const std::string& v) {
  std::size_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || ptr != v.data() + v.size() || n == 0) {
    throw UsageError{fmt::format("{} needs a positive integer, got \"{}\"", flag, v)};
  }
  return n;
}

void add_run(CLI::App& app, RunArgs& a, std::vector<std::string>& positionals, std::string& concurrency) {
  app.add_option("scenario", positionals, "scenario file (default: the bundled demo)")->type_name("SCENARIO.json");
  app.add_option("--concurrency", concurrency, "payloads running at once (default: the scenario's)")
      ->type_name("N");
  app.add_option("--json", a.json_path, "write the JSON report here")->type_name("REPORT.json");
  app.add_option("--junit", a.junit_path, "write the JUnit XML report here")->type_name("REPORT.xml");
  // 0..1 values: `--ring`, `--ring=` and `--ring ""` all get the one message below.
  app.add_option("--ring", a.ring, "also emit every result into this shared-memory ring")
      ->type_name("NAME")
      ->expected(0, 1);
  app.add_option("--cgroup-parent", a.cgroup_parent, "cgroup v2 directory for the payloads' cgroups")
      ->type_name("PATH");
  app.add_flag("--create-cgroups", a.create_cgroups, "create --cgroup-parent if missing")
      ->disable_flag_override();
  app.add_option("--shard", a.shard, "run slice I of N (0-based)")->type_name("I/N");
  app.add_option("--shard-count", a.shard_count, "the shard count for an index from the environment")
      ->type_name("N");
  app.add_flag("-q,--quiet", a.quiet, "no progress, table or summary")->disable_flag_override();
  app.footer(run_usage);
  app.allow_extras();
}

void check_run(const CLI::App& app, RunArgs& a, const std::vector<std::string>& positionals,
               const std::string& concurrency) {
  refuse_extras(app, "run");
  std::vector<std::string> all = positionals;
  for (const std::string& x : app.remaining()) all.push_back(x);
  if (all.size() > 1) throw UsageError{fmt::format("one scenario at a time (got \"{}\" and \"{}\")", all[0], all[1])};
  if (!all.empty()) a.scenario = all[0];
  if (app.count("--concurrency") != 0) a.concurrency = positive_count("--concurrency", concurrency);
  if (app.count("--ring") != 0 && a.ring.empty()) throw UsageError{"--ring needs a ring name, got an empty one"};
}

void add_merge(CLI::App& app, MergeArgs& m, std::vector<std::string>& positionals,
               std::vector<std::string>& sidecar, std::size_t& sidecar_given) {
  app.add_option("reports", positionals, "where the merged report goes, then the slices' reports")
      ->type_name("OUT.json IN.json...");
  app.add_option("--junit", m.junit, "also write the merged JUnit XML report")->type_name("OUT.xml");
  app.add_option_function<std::vector<std::string>>(
         "--sidecar",
         [&](const std::vector<std::string>& v) {
           ++sidecar_given;
           sidecar = v;
         },
         "merge the slices' sidecars (payloadrun-drain) into OUT.jsonl")
      ->type_name("OUT.jsonl IN.jsonl...")
      ->expected(1, CLI::detail::expected_max_vector_size)
      ->trigger_on_parse();
  app.add_flag("-q,--quiet", m.quiet, "no summary")->disable_flag_override();
  app.footer(merge_usage);
  app.allow_extras();
}

void check_merge(const CLI::App& app, MergeArgs& m, std::vector<std::string> positionals,
                 const std::vector<std::string>& sidecar, std::size_t sidecar_given) {
  refuse_extras(app, "merge");
  for (const std::string& x : app.remaining()) positionals.push_back(x);
  if (positionals.empty()) throw UsageError{"missing OUT.json (where the merged report goes)"};
  m.out_json = positionals[0];
  m.inputs.assign(positionals.begin() + 1, positionals.end());
  if (m.inputs.empty()) throw UsageError{"no slice reports to merge: give IN.json... after OUT.json"};
  if (sidecar_given > 1) throw UsageError{"--sidecar is given twice"};
  if (!sidecar.empty()) {
    m.sidecar_out = sidecar[0];
    m.sidecar_inputs.assign(sidecar.begin() + 1, sidecar.end());
    if (m.sidecar_inputs.empty()) {
      throw UsageError{fmt::format("--sidecar {} needs the slices' sidecars after it", *m.sidecar_out)};
    }
  }
}

}  // namespace

CommandLine parse_command_line(int argc, const char* const* argv, std::FILE* out, std::FILE* err) {
  CommandLine cl;
  CLI::App app("payloadrun: run a scenario of payloads, or one slice of it; merge the slices' reports",
               "payloadrun");
  app.footer(fmt::format("{}{}", run_usage, merge_usage));
  app.require_subcommand(0, 1);
  app.allow_extras();
  CLI::App* run = app.add_subcommand("run", "run a scenario (or one slice of it)");
  CLI::App* merge = app.add_subcommand("merge", "merge the slices' reports (and sidecars)");
  std::vector<std::string> run_positionals, merge_positionals, sidecar;
  std::string concurrency;
  std::size_t sidecar_given = 0;
  add_run(*run, cl.run, run_positionals, concurrency);
  add_merge(*merge, cl.merge, merge_positionals, sidecar, sidecar_given);
  const char* prefix = "payloadrun";
  const char* usage = run_usage;
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      CLI::App* shown = run->parsed() ? run : merge->parsed() ? merge : &app;
      say(out, "{}", shown->help());
      cl.status = 0;
      return cl;
    } catch (const CLI::ParseError& e) {
      if (merge->parsed()) {
        prefix = "payloadrun merge";
        usage = merge_usage;
      }
      throw UsageError{e.what()};
    }
    if (run->parsed()) {
      check_run(*run, cl.run, run_positionals, concurrency);
      cl.command = CommandLine::Command::run;
    } else if (merge->parsed()) {
      prefix = "payloadrun merge";
      usage = merge_usage;
      check_merge(*merge, cl.merge, merge_positionals, sidecar, sidecar_given);
      cl.command = CommandLine::Command::merge;
    } else if (app.remaining().empty()) {
      throw UsageError{"missing command (\"run\" or \"merge\")"};
    } else {
      throw UsageError{fmt::format("unknown command \"{}\" (\"run\" or \"merge\")", app.remaining().front())};
    }
  } catch (const UsageError& e) {
    say(err, "{}: {}\n{}", prefix, e.message, usage);
    cl.command = CommandLine::Command::done;
    cl.status = 2;
  }
  return cl;
}

}  // namespace runner
