// The Kubernetes and Slurm examples (examples/k8s, examples/slurm) without
// a cluster: the manifests parsed and checked offline against the Job
// schema, the Slurm script's tasks and merge under a faked array
// environment. tests/slurm_test.py runs the script on a real Slurm.
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <regex>

#include <fmt/format.h>

#include "test_runner_util.hpp"

using namespace runner_test;
using ::testing::HasSubstr;

namespace {

TEST(Examples, KubernetesAndSlurmExamplesParseAndNameTheVariables) {
  const std::string k8s = examples_source_dir() + "/k8s", slurm = examples_source_dir() + "/slurm";
  TempDir dir;
  write_file(dir.file("check.py"), R"PY(
import sys
try:
    import yaml
except ImportError:
    sys.exit("python3's yaml module is missing (Debian: apt-get install python3-yaml)")
k8s = sys.argv[1]
job = [d for d in yaml.safe_load_all(open(k8s + "/demo-indexed-job.yaml")) if d["kind"] == "Job"][0]
merge = list(yaml.safe_load_all(open(k8s + "/demo-merge-job.yaml")))
assert len(merge) == 1 and merge[0]["kind"] == "Job", merge
spec = job["spec"]
assert spec["completionMode"] == "Indexed", spec
assert spec["completions"] == 4 and spec["parallelism"] == 4, spec
c = spec["template"]["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in c["env"]}
assert env["PAYLOADRUN_SHARD_COUNT"] == str(spec["completions"]), env
cmd = " ".join(c["command"])
assert "payloadrun run" in cmd and "${JOB_COMPLETION_INDEX}" in cmd, cmd
assert c["volumeMounts"][0]["mountPath"] == "/results"
mc = merge[0]["spec"]["template"]["spec"]["containers"][0]
mcmd = " ".join(mc["command"])
assert "payloadrun merge /results/demo.json /results/shard-*.json" in mcmd, mcmd
print("ok")
)PY");
  ProgramResult r = run_process({"python3", dir.file("check.py"), k8s}, std::chrono::seconds(60));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok\n") << r.err;

  const std::string script = slurm + "/payloadrun-demo-array.sh";
  r = run_process({"bash", "-n", script}, std::chrono::seconds(30));
  EXPECT_EQ(r.status, 0) << r.err;
  const std::string text = read_file(script);
  for (const char* needle : {"#SBATCH --array=0-3", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_JOB_ID", "payloadrun\" merge",
                             "afterany:", "sbatch --parsable", "sbatch --wait", "trap "}) {
    EXPECT_THAT(text, HasSubstr(needle));
  }
  EXPECT_EQ(::access(script.c_str(), X_OK), 0) << "the script is executable";
}

// Issue 17: the manifests against the Job schema, offline. kubectl is not
// in Debian 12 (kubernetes-client's kubectl 1.20 needs a server even for
// --dry-run=client); Debian's python3-kubernetes (22.6, the 1.22 API) models
// every kind: reading a manifest into V1Job / V1PersistentVolumeClaim checks
// types and required fields, and writing it back loses every field the
// schema does not have (a typo). Debian's python, where its modules are.
TEST(Examples, KubernetesManifestsMatchTheJobSchemaOffline) {
  TempDir dir;
  write_file(dir.file("schema.py"), R"PY(
import json, sys
try:
    import yaml
    from kubernetes import client
except ImportError as e:
    sys.exit(f"{e}: Debian: apt-get install python3-yaml python3-kubernetes")
api = client.ApiClient()
class Response:  # what ApiClient.deserialize reads
    def __init__(self, doc): self.data = json.dumps(doc)
def without_none(x):
    if isinstance(x, dict): return {k: without_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list): return [without_none(v) for v in x]
    return x
def lost(a, b, path):
    if isinstance(a, dict):
        for k, v in a.items():
            if not isinstance(b, dict) or k not in b: yield f"{path}.{k}: not a field of the schema"
            else: yield from lost(v, b[k], f"{path}.{k}")
    elif isinstance(a, list):
        for i, v in enumerate(a):
            yield from lost(v, b[i] if isinstance(b, list) and i < len(b) else None, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {a!r} reads back as {b!r}"
models = {"Job": "V1Job", "PersistentVolumeClaim": "V1PersistentVolumeClaim"}
bad = []
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        where = f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        try:
            back = without_none(api.sanitize_for_serialization(api.deserialize(Response(doc), models[doc["kind"]])))
        except (KeyError, ValueError, TypeError) as e:
            bad.append(f"{where}: {type(e).__name__}: {e}")
            continue
        bad += [f"{where}: {p}" for p in lost(doc, back, "")]
        print(where, "ok")
if bad: sys.exit("\n".join(bad))
)PY");
  const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  const std::string k8s = examples_source_dir() + "/k8s";
  ProgramResult r = run_process({python, dir.file("schema.py"), k8s + "/demo-indexed-job.yaml",
                                 k8s + "/demo-merge-job.yaml"},
                                std::chrono::seconds(60));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, k8s + "/demo-indexed-job.yaml: PersistentVolumeClaim payloadrun-demo-results ok\n" + k8s +
                       "/demo-indexed-job.yaml: Job payloadrun-demo ok\n" + k8s +
                       "/demo-merge-job.yaml: Job payloadrun-demo-merge ok\n")
      << r.err;
  // The check can fail: a misspelt field, a wrong type, a missing name.
  const std::string job = read_file(k8s + "/demo-indexed-job.yaml");
  const std::vector<std::pair<std::string, std::string>> broken = {
      {std::regex_replace(job, std::regex("completionMode: Indexed"), "completionmode: Indexed"), ".spec.completionmode: not a field"},
      {std::regex_replace(job, std::regex("completions: 4"), "completions: four"), "ValueError"},
      {std::regex_replace(job, std::regex("- name: slice"), "- nme: slice"), "must not be `None`"},
  };
  for (const auto& [text, message] : broken) {
    write_file(dir.file("broken.yaml"), text);
    r = run_process({python, dir.file("schema.py"), dir.file("broken.yaml")}, std::chrono::seconds(60));
    EXPECT_NE(r.status, 0) << message;
    EXPECT_THAT(r.err, HasSubstr(message));
  }
}

// The script's tasks and merge under a faked array environment (the real
// Slurm runs it in the "slurm" suite, tests/slurm_test.py): results per
// array job, a line per task naming its shard despite --quiet, exit 1 of a
// task mapped to 0, a re-run into the same directory merging only its own
// slices.
TEST(Examples, SlurmScriptRunsFourSlicesAndMergesUnderAFakeArray) {
  TempDir dir;
  const std::string script = examples_source_dir() + "/slurm/payloadrun-demo-array.sh";
  write_file(dir.file("s.json"), R"({"payloads": [{"name": "echo", "binary": "sh", "args": ["-c", "echo hi"], "count": 9},
    {"name": "ok", "binary": "true", "count": 5}]})");
  // The same, with 5 failing invocations.
  write_file(dir.file("f.json"), R"({"payloads": [{"name": "echo", "binary": "sh", "args": ["-c", "echo hi"], "count": 9},
    {"name": "ok", "binary": "false", "checks": [{"exit_code": 0}], "count": 5}]})");
  const std::vector<std::string> common = {"PAYLOADRUN=" + runner_exe(), "PAYLOADRUN_RESULTS=" + dir.file("results")};
  const auto task = [&](const std::string& job, int id, int min, const std::string& scenario) {
    std::vector<std::string> env = common;
    env.insert(env.end(), {"SLURM_ARRAY_JOB_ID=" + job, fmt::format("SLURM_ARRAY_TASK_ID={}", id + min),
                           fmt::format("SLURM_ARRAY_TASK_MIN={}", min), fmt::format("SLURM_ARRAY_TASK_MAX={}", min + 3),
                           "SLURM_ARRAY_TASK_COUNT=4", "SLURM_ARRAY_TASK_STEP=1"});
    return run_process({"bash", script, scenario}, std::chrono::seconds(90), env);
  };
  for (int id = 0; id < 4; ++id) {
    const ProgramResult r = task("41", id, 0, dir.file("s.json"));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(fmt::format("array job 41 task {} (shard {} of 4)", id, id)));
    EXPECT_THAT(r.err, HasSubstr("payloadrun exited 0: all invocations passed; task exits 0"));
  }
  ProgramResult r = run_process({"bash", script, "merge", "41"}, std::chrono::seconds(60), common);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("14 of 14 invocations passed (4 of 4 shard(s)"));
  simdjson::dom::parser parser;
  simdjson::dom::element merged = parser.load(dir.file("results/41/merged.json"));
  EXPECT_TRUE(merged["passed"].get_bool().value());
  EXPECT_EQ(merged["invocations"].get_array().size(), 14u);
  EXPECT_EQ(xml_parse_error(dir.file("results/41/merged.xml")), "");

  // A re-run into the same results directory, array base 5, failing
  // invocations, task 2 never ran: its own three slices only.
  for (int id : {0, 1, 3}) {
    r = task("42", id, 5, dir.file("f.json"));
    ASSERT_EQ(r.status, 0) << "exit 1 of payloadrun is the merge's verdict: " << r.err;
    EXPECT_THAT(r.err, HasSubstr(fmt::format("array job 42 task {} (shard {} of 4)", id + 5, id)));
  }
  r = run_process({"bash", script, "merge", "42"}, std::chrono::seconds(60), common);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("missing shard(s) 2 of 4"));
  simdjson::dom::element rerun = parser.load(dir.file("results/42/merged.json"));
  EXPECT_EQ(rerun["merged"]["slices"].get_array().size(), 3u);
  EXPECT_TRUE(std::filesystem::exists(dir.file("results/41/shard-2.json"))) << "the earlier run's slice is kept apart";

  // No slice at all: exit 2, saying where it looked.
  r = run_process({"bash", script, "merge", "43"}, std::chrono::seconds(60), common);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("no slice report of array job 43 in " + dir.file("results/43")));
}

}  // namespace
