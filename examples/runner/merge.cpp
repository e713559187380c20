// `payloadrun merge`: check that the inputs are slices of one scenario cut
// one way, join their records, and report the whole scenario.
#include "merge.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "detail/errno_text.hpp"

#include "files.hpp"
#include "say.hpp"

namespace runner {


namespace {

struct UsageError {
  std::string message;
};

std::string short_digest(const std::string& digest) { return digest.substr(0, 7 + 12); }

bool same_skeleton(const Scenario& a, const Scenario& b) {
  if (a.payloads.size() != b.payloads.size()) return false;
  for (std::size_t i = 0; i < a.payloads.size(); ++i) {
    const auto& pa = a.payloads[i];
    const auto& pb = b.payloads[i];
    if (pa.count != pb.count || pa.payload->name != pb.payload->name || pa.payload->metrics != pb.payload->metrics) {
      return false;
    }
  }
  return true;
}

// Every input is a slice of the first one's scenario, cut by our rule into
// the same number of shards.
void check_compatible(const std::vector<LoadedReport>& reports) {
  const LoadedReport& first = reports.front();
  for (const auto& r : reports) {
    if (r.scenario.digest != first.scenario.digest) {
      throw MergeError(fmt::format(
          "{} and {} are slices of different scenarios ({} is {} of {}, {} is {} of {}); refusing to merge them",
          first.path, r.path, first.path, short_digest(first.scenario.digest), first.scenario.file, r.path,
          short_digest(r.scenario.digest), r.scenario.file));
    }
    if (r.rule != assignment_rule) {
      throw MergeError(fmt::format(
          "{}: sliced by the assignment rule \"{}\" but this payloadrun assigns by \"{}\"; merge with the "
          "payloadrun version that ran the slices",
          r.path, r.rule, assignment_rule));
    }
    if (!same_skeleton(first.scenario, r.scenario)) {
      throw MergeError(fmt::format(
          "{} and {} carry the same scenario digest but list different payloads (names, counts or metric "
          "hints); was a report edited?",
          first.path, r.path));
    }
    if (r.result.shard.count != first.result.shard.count) {
      throw MergeError(fmt::format(
          "{} is shard {} of {} but {} is shard {} of {}: the slices of one run must all be cut into the same "
          "number of shards",
          first.path, first.result.shard.index, first.result.shard.count, r.path, r.result.shard.index,
          r.result.shard.count));
    }
  }
}

// The records of `r` are exactly within its slice, each once, with
// shard-qualified payload indices.
void check_slice(const LoadedReport& r, const Scenario& scenario) {
  const Shard& s = r.result.shard;
  const std::size_t planned = shard_schedule(scenario, s).size();
  if (r.result.planned != planned) {
    throw MergeError(fmt::format("{}: shard.invocations is {} but the assignment rule gives shard {} of {} {} "
                                 "invocations",
                                 r.path, r.result.planned, s.index, s.count, planned));
  }
  std::set<std::pair<std::size_t, std::size_t>> seen;
  std::set<std::uint64_t> indices;
  for (const auto& rec : r.result.records) {
    const std::size_t owner = shard_of(rec.payload, rec.invocation, s.count);
    if (owner != s.index) {
      throw MergeError(fmt::format("{}: {}#{} belongs to shard {} of {} by the assignment rule, not to shard {} "
                                   "(the report's)",
                                   r.path, rec.payload, rec.invocation, owner, s.count, s.index));
    }
    if (!seen.emplace(rec.scenario_index, rec.invocation).second) {
      throw MergeError(fmt::format("{}: {}#{} (payloads[{}]) is listed twice", r.path, rec.payload, rec.invocation,
                                   rec.scenario_index));
    }
    if (!rec.spawned) continue;
    if (rec.payload_index % s.count != s.index) {
      throw MergeError(fmt::format("{}: {}#{} has payload_index {}, which is not of shard {} of {} (that shard's "
                                   "indices are k * {} + {})",
                                   r.path, rec.payload, rec.invocation, rec.payload_index, s.index, s.count,
                                   s.count, s.index));
    }
    if (!indices.insert(rec.payload_index).second) {
      throw MergeError(fmt::format("{}: payload_index {} is used twice", r.path, rec.payload_index));
    }
  }
}

std::string numbers(const std::vector<std::size_t>& v) {
  return fmt::format("{}", fmt::join(v, ", "));
}

}  // namespace

MergedRun merge_reports(std::vector<LoadedReport> reports) {
  if (reports.empty()) throw MergeError("no slice reports to merge");
  check_compatible(reports);
  const std::size_t n = reports.front().result.shard.count;
  std::vector<LoadedReport*> by_index(n, nullptr);
  for (auto& r : reports) {
    LoadedReport*& slot = by_index[r.result.shard.index];
    if (slot != nullptr) {
      throw MergeError(fmt::format("shard {} of {} appears twice: {} and {}; give each slice's report once",
                                   r.result.shard.index, n, slot->path, r.path));
    }
    slot = &r;
  }
  MergedRun m;
  m.scenario = reports.front().scenario;
  for (const auto& r : reports) check_slice(r, m.scenario);
  m.result.shard = Shard{0, 1, "merge"};
  m.result.planned = m.scenario.total_invocations();
  m.info.shard_count = n;
  for (std::size_t i = 0; i < n; ++i) {
    LoadedReport* r = by_index[i];
    if (r == nullptr) {
      m.info.missing_shards.push_back(i);
      continue;
    }
    RunResult& s = r->result;
    m.info.slices.push_back({r->path, s.shard, s.planned, s.records.size(), s.passed(), s.interrupted,
                             std::chrono::duration<double, std::milli>(s.elapsed).count()});
    // Slices run side by side: the whole took as long as the slowest.
    m.result.elapsed = std::max(m.result.elapsed, s.elapsed);
    m.result.interrupted = m.result.interrupted || s.interrupted;
    for (auto& rec : s.records) m.result.records.push_back(std::move(rec));
  }
  std::sort(m.result.records.begin(), m.result.records.end(), [](const auto& a, const auto& b) {
    return std::pair(a.scenario_index, a.invocation) < std::pair(b.scenario_index, b.invocation);
  });
  m.info.missing_invocations = m.result.planned - m.result.records.size();
  return m;
}

SidecarMerge merge_sidecars(const std::vector<std::string>& inputs, const MergedRun* run) {
  struct Line {
    std::string text;
    std::string where;
  };
  std::map<std::uint64_t, Line> by_index;
  SidecarMerge result;
  simdjson::dom::parser parser;
  for (const auto& path : inputs) {
    try {
      check_input_file(path, "sidecar", std::numeric_limits<std::size_t>::max());  // never a FIFO or a directory
    } catch (const InputError& e) {
      throw MergeError(e.what());
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int e = errno;
      throw MergeError(fmt::format("{}: cannot open the sidecar: {}", path, payloadrun::detail::errno_text(e)));
    }
    std::string text;
    std::size_t line_no = 0;
    while (std::getline(in, text)) {
      ++line_no;
      if (text.empty()) continue;
      const std::string where = fmt::format("{}:{}", path, line_no);
      simdjson::dom::element root;
      simdjson::dom::object o;
      std::uint64_t index = 0;
      simdjson::dom::element index_e;
      const bool ok = parser.parse(simdjson::padded_string(text)).get(root) == simdjson::SUCCESS &&
                      root.get(o) == simdjson::SUCCESS && o["payload_index"].get(index_e) == simdjson::SUCCESS &&
                      index_e.type() != simdjson::dom::element_type::DOUBLE &&
                      index_e.get(index) == simdjson::SUCCESS;
      if (!ok) {
        throw MergeError(fmt::format("{}: expected a sidecar line (a JSON object with an unsigned "
                                     "\"payload_index\", as payloadrun-drain writes); a truncated last line "
                                     "from a killed drain must be removed by hand",
                                     where));
      }
      auto [it, fresh] = by_index.try_emplace(index, Line{text, where});
      if (fresh) continue;
      if (it->second.text != text) {
        throw MergeError(fmt::format("{} and {} both have payload_index {} but different contents; the "
                                     "sidecars are not of one sharded run",
                                     it->second.where, where, index));
      }
      ++result.duplicates_dropped;
      result.notes.push_back(fmt::format("{} repeats {} (payload_index {}, identical): kept once", where,
                                         it->second.where, index));
    }
    if (in.bad()) throw MergeError(fmt::format("{}: cannot read the sidecar", path));
  }
  for (auto& [index, line] : by_index) result.lines.push_back(std::move(line.text));
  if (run != nullptr) {
    std::set<std::uint64_t> reported;
    for (const auto& rec : run->result.records) {
      if (rec.spawned) reported.insert(rec.payload_index);
    }
    std::size_t unknown = 0, unmatched = 0;
    for (const auto& [index, line] : by_index) unknown += !reported.contains(index);
    for (std::uint64_t index : reported) unmatched += !by_index.contains(index);
    if (unknown) {
      result.notes.push_back(fmt::format("{} sidecar line(s) have a payload_index no merged report lists", unknown));
    }
    if (unmatched && !by_index.empty()) {
      result.notes.push_back(fmt::format("{} reported invocation(s) have no sidecar line", unmatched));
    }
  }
  return result;
}

int merge_command(const MergeArgs& args, std::FILE* out, std::FILE* err) {
  const std::optional<std::string> out_json = args.out_json, junit = args.junit, sidecar_out = args.sidecar_out;
  const std::vector<std::string>& inputs = args.inputs;
  const std::vector<std::string>& sidecar_inputs = args.sidecar_inputs;
  const bool quiet = args.quiet;
  try {
    // Outputs never name an input or each other (./x and x, a symlink included).
    std::vector<NamedPath> in_paths, out_paths{{"OUT.json", *out_json}};
    for (const auto& in : inputs) in_paths.push_back({"input report", in});
    for (const auto& in : sidecar_inputs) in_paths.push_back({"input sidecar", in});
    if (junit) out_paths.push_back({"--junit", *junit});
    if (sidecar_out) out_paths.push_back({"--sidecar", *sidecar_out});
    if (const std::string aliased = find_aliased_output(in_paths, out_paths); !aliased.empty()) {
      throw UsageError{aliased};
    }
    for (const auto& o : out_paths) {
      try {
        probe_output(o.path);
      } catch (const OutputError& e) {
        throw UsageError{e.what()};
      }
    }
  } catch (const UsageError& e) {
    say(err, "payloadrun merge: {}\n{}", e.message, merge_usage);
    return 2;
  }

  MergedRun merged;
  SidecarMerge sidecars;
  std::vector<std::string> unreadable;  // what each unreadable input's error said
  try {
    // A slice's own report as OUT.json is a misplaced argument, not an output.
    std::error_code ec;
    if (std::filesystem::exists(*out_json, ec)) {
      std::optional<LoadedReport> existing;
      try {
        existing = load_report(*out_json);
      } catch (const ReportError&) {
      }
      if (existing && !existing->merged) {
        throw UsageError{fmt::format("{} is the report of shard {} of {}, not an output; the first argument is "
                                     "OUT.json, where the merged report goes",
                                     *out_json, existing->result.shard.index, existing->result.shard.count)};
      }
    }
    // A slice killed while it wrote, or a damaged copy, leaves a report
    // with nothing to read: it is a missing shard (by elimination, named by
    // number below), not a reason to write nothing.
    std::vector<LoadedReport> reports;
    for (const auto& in : inputs) {
      try {
        reports.push_back(load_report(in));
      } catch (const UnreadableReport& e) {
        unreadable.push_back(e.what());
      }
    }
    if (reports.empty()) {
      throw MergeError(fmt::format("none of the {} slice report(s) could be read ({}); nothing to merge",
                                   inputs.size(), fmt::join(unreadable, "; ")));
    }
    merged = merge_reports(std::move(reports));
    if (sidecar_out) sidecars = merge_sidecars(sidecar_inputs, &merged);
  } catch (const UsageError& e) {
    say(err, "payloadrun merge: {}\n{}", e.message, merge_usage);
    return 2;
  } catch (const std::runtime_error& e) {  // ReportError, MergeError
    say(err, "payloadrun merge: {}\n", e.what());
    return 2;
  }

  const RunResult& result = merged.result;
  const MergeInfo& info = merged.info;
  if (!quiet) {
    say(err, "payloadrun: merging {} of {} shard(s) of {} ({})\n", info.slices.size(), info.shard_count,
               merged.scenario.file, short_digest(merged.scenario.digest));
  }
  for (const auto& why : unreadable) {
    say(err, "payloadrun merge: {}: counted as a missing shard (was its slice killed before it wrote its "
             "report?)\n", why);
  }
  for (const auto& note : sidecars.notes) say(err, "payloadrun: {}\n", note);
  if (!quiet) {
    std::fputs("\n", out);
    print_table(out, merged.scenario, result);
  }
  print_failures(out, result);
  std::fflush(out);

  // An input that could not be read fails the whole, even when every shard
  // is there without it (then it was no slice of this run).
  int status = result.passed() && unreadable.empty() ? 0 : 1;
  // Every output is written in full before any is renamed into place.
  std::vector<std::pair<std::string, std::string>> outputs;
  outputs.emplace_back(*out_json, json_report_text(merged.scenario, result, &info));
  if (junit) outputs.emplace_back(*junit, junit_report_text(merged.scenario, result));
  if (sidecar_out) {
    std::string lines;
    for (const auto& line : sidecars.lines) (lines += line) += '\n';
    outputs.emplace_back(*sidecar_out, std::move(lines));
  }
  try {
    write_reports(outputs);
  } catch (const OutputError& e) {
    say(err, "payloadrun merge: {}; no output was written (any previous one is unchanged)\n", e.what());
    status = exit_report_write_failed;
  }

  if (!info.missing_shards.empty()) {
    say(err, "payloadrun: missing shard(s) {} of {}: their invocations did not run\n",
               numbers(info.missing_shards), info.shard_count);
  } else if (!unreadable.empty()) {
    say(err, "payloadrun: every shard of {} is there, but {} input(s) could not be read: failing the merge\n",
        info.shard_count, unreadable.size());
  }
  for (const auto& s : info.slices) {
    if (!s.interrupted) continue;
    // Its records (the merged run has them all), those an interrupt cut short.
    std::size_t reported = 0, cut = 0;
    for (const auto& r : result.records) {
      if (shard_of(r.payload, r.invocation, info.shard_count) != s.shard.index) continue;
      ++reported;
      cut += !r.interrupted.empty();
    }
    say(err,
        "payloadrun: shard {} of {} ({}) was interrupted: {} of {} invocations completed, {} interrupted, {} never "
        "started\n",
        s.shard.index, info.shard_count, s.file, reported - cut, s.planned, cut,
        s.planned > reported ? s.planned - reported : 0);
  }
  std::size_t failed = 0;
  for (const auto& r : result.records) failed += !r.passed;
  if (!quiet || info.missing_invocations) {
    say(err, "payloadrun: {} of {} invocations passed ({} of {} shard(s), slowest {:.2f}s){}\n",
               result.records.size() - failed, result.planned, info.slices.size(), info.shard_count,
               std::chrono::duration<double>(result.elapsed).count(),
               info.missing_invocations ? fmt::format("; {} did not run", info.missing_invocations) : "");
  }
  if (!sidecars.lines.empty() && !quiet) {
    say(err, "payloadrun: {} sidecar line(s) merged into {}\n", sidecars.lines.size(), *sidecar_out);
  }
  if (status == exit_report_write_failed) return status;
  return result.interrupted ? 130 : status;
}

}  // namespace runner
