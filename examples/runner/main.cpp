// payloadrun: run a scenario of payloads (see README "Scenario format"), or
// one slice of it, and merge the slices' reports (README "Scale-out").
//
//   payloadrun run [SCENARIO.json] [--concurrency N] [--json REPORT.json]
//                  [--junit REPORT.xml] [--ring NAME] [--cgroup-parent PATH]
//                  [--create-cgroups] [--shard I/N] [--shard-count N] [--quiet]
//   payloadrun merge OUT.json IN.json... [--junit OUT.xml]
//                    [--sidecar OUT.jsonl IN.jsonl...] [--quiet]
//
// Exit status: 0 every invocation passed, 1 any failed, 2 bad usage or bad
// scenario (nothing run), 4 results did not reach the --ring (nor its spill
// journal), 74 a report could not be written, 130 interrupted.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include <fmt/format.h>
#include <payloadrun/error.hpp>
#include <spdlog/cfg/env.h>
#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "files.hpp"
#include "interrupt.hpp"
#include "merge.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "run.hpp"
#include "say.hpp"
#include "scenario.hpp"
#include "shard.hpp"
#include "startup.hpp"

namespace {

constexpr int exit_results_undelivered = 4;

struct UsageError {
  std::string message;
};

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string exe_dir() {
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return ".";
  buf.resize(static_cast<std::size_t>(n));
  return buf.substr(0, buf.find_last_of('/'));
}

std::string normal(const std::string& path) { return std::filesystem::path(path).lexically_normal().string(); }

// The bundled demo, found relative to this program: next to it (the build
// tree: build/examples/demo holds the programs and the scenarios), then the
// installed layout (bindir/../share/payloadrun/demo for the scenarios,
// bindir/../libexec/payloadrun/demo for the programs, as configured).
runner::Scenario load_demo() {
  struct Candidate {
    std::string file, base_dir;
  };
  const std::string dir = exe_dir();
  const std::string here = dir + "/demo";
  const std::vector<Candidate> candidates = {
      {here + "/demo.json", here},
      {normal(dir + "/" PAYLOADRUN_DEMO_DATA_FROM_BINDIR "/demo.json"), normal(dir + "/" PAYLOADRUN_DEMO_EXEC_FROM_BINDIR)},
  };
  std::string tried;
  for (const auto& c : candidates) {
    if (is_file(c.file)) return runner::load_scenario(c.file, c.base_dir);
    tried += "\n  " + c.file;
  }
  throw runner::ScenarioError("the bundled demo scenario was not found; tried:" + tried);
}

// Outputs must not name the scenario or each other (./x and x, a symlink
// included); each must be creatable. Nothing is written yet.
void check_outputs(const runner::RunArgs& args, const runner::Scenario& scenario) {
  std::vector<runner::NamedPath> outputs;
  if (args.json_path) outputs.push_back({"--json", *args.json_path});
  if (args.junit_path) outputs.push_back({"--junit", *args.junit_path});
  const std::string aliased = runner::find_aliased_output({{"the scenario file", scenario.file}}, outputs);
  if (!aliased.empty()) throw UsageError{aliased};
  try {
    for (const auto& o : outputs) runner::probe_output(o.path);
  } catch (const runner::OutputError& e) {
    throw UsageError{e.what()};
  }
}

// The concurrency the fd limit can hold (prepare_process raised it to the
// hard limit): lowered with one warning rather than thousands of EMFILEs.
std::size_t fitted_concurrency(std::size_t requested, const runner::StartupState& startup) {
  const std::size_t fits = std::max<std::size_t>(1, runner::concurrency_that_fits(startup.nofile_soft,
                                                                                  runner::count_open_fds()));
  if (startup.nofile_soft == 0 || requested <= fits) return requested;
  runner::say(stderr,
              "payloadrun: warning: concurrency lowered from {} to {}: RLIMIT_NOFILE is {} (hard limit {}) and "
              "each running payload holds {} fds; raise the hard limit (ulimit -Hn, LimitNOFILE=) to run {} at "
              "once\n",
              requested, fits, startup.nofile_soft, startup.nofile_hard, runner::fds_per_payload, requested);
  return fits;
}

int run_command(const runner::RunArgs& args, const runner::StartupState& startup) {
  runner::Scenario scenario;
  runner::Shard shard;
  const runner::EnvLookup env = [](const char* name) { return static_cast<const char*>(std::getenv(name)); };
  try {
    shard = runner::resolve_shard(args.shard, args.shard_count, env);
    scenario = args.scenario ? runner::load_scenario(*args.scenario) : load_demo();
    check_outputs(args, scenario);
    runner::acknowledge_shard(shard, env);  // Bazel: "this test honours sharding"
  } catch (const UsageError& e) {
    runner::say(stderr, "payloadrun: {}\n{}", e.message, runner::run_usage);
    return 2;
  } catch (const runner::ShardError& e) {
    runner::say(stderr, "payloadrun: {}\n", e.what());
    return 2;
  } catch (const runner::ScenarioError& e) {
    runner::say(stderr, "payloadrun: bad scenario: {}\n", e.what());
    return 2;
  }
  runner::RunOptions options;
  options.concurrency = fitted_concurrency(args.concurrency.value_or(scenario.concurrency), startup);
  options.ring = args.ring;
  options.cgroup_parent = args.cgroup_parent;
  options.create_cgroups = args.create_cgroups;
  options.shard = shard;
  const std::size_t planned = runner::shard_invocations(scenario, shard);

  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  runner::Progress progress(stderr, terminal, !args.quiet);
  if (!args.quiet && shard.source == "none") {
    runner::say(stderr, "payloadrun: {}: {} invocations of {} payloads, concurrency {}\n", scenario.file,
                scenario.total_invocations(), scenario.payloads.size(), options.concurrency);
  } else if (!args.quiet) {
    runner::say(stderr, "payloadrun: {}: {} of {} invocations of {} payloads, {}, concurrency {}\n", scenario.file,
                planned, scenario.total_invocations(), scenario.payloads.size(), runner::describe(shard),
                options.concurrency);
  }
  runner::RunResult result;
  try {
    result = runner::run_scenario(scenario, options, progress.observer());
  } catch (const payloadrun::Error& e) {
    runner::say(stderr, "payloadrun: {}\n", e.what());
    return 2;
  }
  if (const int late = runner::pending_interrupt(); late != 0 && !result.interrupted) {
    result.interrupted = true;  // after the last reap, before the report: still an interrupted run
    result.interrupt_signal = late;
  }
  std::size_t failed = 0;
  for (const auto& r : result.records) failed += !r.passed;
  progress.finish({planned, result.records.size(), 0, failed, result.elapsed});

  if (!args.quiet) {
    std::fputs("\n", stdout);
    runner::print_table(stdout, scenario, result);
  }
  runner::print_failures(stdout, result);
  std::fflush(stdout);

  int status = result.all_passed() ? 0 : 1;
  std::vector<std::pair<std::string, std::string>> reports;
  if (args.json_path) {
    reports.emplace_back(*args.json_path, runner::json_report_text(scenario, result));
  }
  if (args.junit_path) {
    reports.emplace_back(*args.junit_path, runner::junit_report_text(scenario, result));
  }
  bool written = true;
  try {
    runner::write_reports(reports);
  } catch (const runner::OutputError& e) {
    runner::say(stderr, "payloadrun: {}; no report was written (any previous one is unchanged)\n", e.what());
    written = false;
  }
  if (result.undelivered_results != 0) {
    runner::say(stderr,
                "payloadrun: {} of {} results did not reach the ring '{}' (it stayed full and its spill "
                "journal could not be written; see the log above)\n",
                result.undelivered_results, result.records.size(), args.ring);
    if (written) return exit_results_undelivered;
  }
  if (result.interrupted) {
    runner::say(stderr,
                "payloadrun: interrupted by {}: {} of {} invocations completed, {} interrupted, {} never started\n",
                runner::interrupt_name(result.interrupt_signal), result.completed(), planned,
                result.interrupted_invocations(), result.never_started());
    return written ? 130 : runner::exit_report_write_failed;
  }
  if (!args.quiet) {
    runner::say(stderr, "payloadrun: {} of {} invocations passed in {:.2f}s\n", result.records.size() - failed,
                result.records.size(), std::chrono::duration<double>(result.elapsed).count());
  }
  return written ? status : runner::exit_report_write_failed;
}

}  // namespace

int main(int argc, char** argv) {
  // First, before any file is opened: fds 0-2, SIGPIPE, RLIMIT_NOFILE, and
  // for `run` SIGINT/SIGTERM (merge stays interruptible by Ctrl-C).
  const bool merge = argc >= 2 && std::string_view(argv[1]) == "merge";
  const runner::StartupState startup = runner::prepare_process(!merge);
  spdlog::set_level(spdlog::level::warn);  // the program's default: warnings and errors
  spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL: the library's logger "payloadrun" included
  try {
    const runner::CommandLine cl = runner::parse_command_line(argc, argv, stdout, stderr);
    switch (cl.command) {
      case runner::CommandLine::Command::done: return cl.status;
      case runner::CommandLine::Command::merge: return runner::merge_command(cl.merge, stdout, stderr);
      case runner::CommandLine::Command::run: return run_command(cl.run, startup);
    }
  } catch (const std::bad_alloc&) {
    runner::say(stderr, "payloadrun: out of memory (std::bad_alloc); nothing more could be done\n");
  } catch (const std::exception& e) {
    runner::say(stderr, "payloadrun: internal error: {}\n", e.what());
  }
  return 2;
}
