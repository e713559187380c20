#!/usr/bin/env python3
"""The Slurm example (examples/slurm/payloadrun-demo-array.sh) on a real
single-node Slurm, brought up here from Debian's packages (issue 17).

  slurm_test.py PAYLOADRUN SCRIPT

munged (as the munge user), slurmctld and slurmd are started without systemd,
their key, state, spool, logs and slurm.conf in a temporary directory, on free
ports; no slurmdbd. Then, with `sbatch --array ... --wait` and the script's
dependent merge job:
  * --array=0-3: the merged report equals an unsharded run, invocation by
    invocation;
  * a re-run into the same results directory with task 1's payloadrun
    SIGKILLed mid-run: shard 1 is missing (no stale slice merged), no report
    or 0-byte file is left, the rest is merged;
  * --array=5-8: a non-zero base, the same merged report;
  * tasks 1 and 3 scancel'd mid-run: their reports say interrupted, their
    killed payloads are interrupted (not plain failures), the merge exits 130;
  * --array=0-6:2 and --array=1,3,7: refused in every task, naming the
    variables; nothing to merge.
The cluster is brought down at the end and nothing of it is left running
(zombies count as stopped: PID 1 may reap them late).

Exit 77 (skipped, with the reason) only where slurmd cannot run: not root, or
the packages are missing (apt-get install slurmctld slurmd slurm-client
munge). With PAYLOADRUN_REQUIRE_SLURM=1 (set by .ci/run) those are failures.
"""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PAYLOADRUN, SCRIPT = (os.path.abspath(a) for a in sys.argv[1:3])
REQUIRED = os.environ.get("PAYLOADRUN_REQUIRE_SLURM") == "1"
MARKER = "PAYLOADRUN_SLURM_TEST"  # in the environment of every process of our cluster
T0 = time.monotonic()

SCENARIO = {
    "concurrency": 3,
    "payloads": [
        {"name": "metric", "binary": "sh", "args": ["-c", "echo '{\"v\": 7, \"w\": 2.5}'"], "output": "json",
         "metrics": [{"name": "v", "polarity": "higher_better", "unit": "ops"},
                     {"name": "w", "polarity": "lower_better", "unit": "ms"}],
         "checks": [{"min": {"metric": "v", "value": 5}}], "count": 40},
        {"name": "fails", "binary": "sh", "args": ["-c", "echo oops >&2; exit 3"], "checks": [{"exit_code": 0}],
         "count": 6},
        {"name": "slow", "binary": "sleep", "args": ["2"], "count": 8},
    ],
}
TOTAL = sum(p["count"] for p in SCENARIO["payloads"])

failures = []


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def check(cond, what, detail=""):
    if cond:
        print(f"  ok: {what}", flush=True)
    else:
        print(f"  FAILED: {what}\n{detail}", flush=True)
        failures.append(what)
    return cond


def skip(why):
    if REQUIRED:
        print(f"FAILED: the slurm suite must run here (PAYLOADRUN_REQUIRE_SLURM=1) but: {why}", flush=True)
        sys.exit(1)
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked_processes(marker_value):
    """pid -> (state, cmdline) of every process whose environment has our marker."""
    needle = f"{MARKER}={marker_value}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found[int(entry)] = (state, cmd)
    return found


class Cluster:
    def __init__(self):
        for tool in ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "sinfo", "runuser"):
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
                skip(f"{tool} is not installed (Debian: apt-get install slurmctld slurmd slurm-client munge)")
        if os.geteuid() != 0:
            skip("slurmd must run as root to start jobs; this test runs as uid %d" % os.geteuid())
        try:
            self.munge_user = pwd.getpwnam("munge")
        except KeyError:
            skip("no munge user (the munge package creates it)")
        self.dir = tempfile.mkdtemp(prefix="payloadrun-slurm-")
        os.chmod(self.dir, 0o755)
        self.host = socket.gethostname().split(".")[0]
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "PAYLOADRUN_", "JOB_COMPLETION_INDEX",
                                         "TEST_SHARD", "TEST_TOTAL_SHARDS"))}
        self.env.update({"SLURM_CONF": self.path("slurm.conf"), MARKER: self.dir})
        self.pidfiles = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, argv, timeout=60, **kw):
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, **kw)

    def up(self):
        started = time.monotonic()
        munge_dir = self.path("munge")
        os.mkdir(munge_dir, 0o755)  # munged wants the socket's directory searchable by all
        key = os.path.join(munge_dir, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(128))
        os.chmod(key, 0o600)
        for p in (munge_dir, key):
            os.chown(p, self.munge_user.pw_uid, self.munge_user.pw_gid)
        self.socket = os.path.join(munge_dir, "munge.socket")
        munged = shutil.which("munged") or "/usr/sbin/munged"
        r = self.run(["runuser", "-u", "munge", "--", munged, f"--socket={self.socket}", f"--key-file={key}",
                      f"--pid-file={munge_dir}/munged.pid", f"--log-file={munge_dir}/munged.log",
                      f"--seed-file={munge_dir}/munged.seed"])
        self.pidfiles.append(f"{munge_dir}/munged.pid")
        if r.returncode != 0:
            raise RuntimeError(f"munged did not start: {r.stderr}{self.tail(munge_dir + '/munged.log')}")
        for d in ("state", "spool", "log"):
            os.mkdir(self.path(d), 0o755)
        ctld_port, d_port = free_port(), free_port()
        conf = f"""# written by tests/slurm_test.py
ClusterName=payloadrun-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={self.path('state')}
SlurmdSpoolDir={self.path('spool')}
SlurmctldPidFile={self.path('slurmctld.pid')}
SlurmdPidFile={self.path('slurmd.pid')}
SlurmctldLogFile={self.path('log', 'slurmctld.log')}
SlurmdLogFile={self.path('log', 'slurmd.log')}
# No cgroup delegation here: track processes by parentage, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
ReturnToService=2
# scancel: SIGTERM, then SIGKILL after 10 s (payloadrun needs well under 1 s).
KillWait=10
# Job records kept 4 s after their end: sbatch --wait then polls every 2 s.
MinJobAge=4
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
# The 4 tasks of an array run at once, also on 2 CPUs.
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""
        with open(self.path("slurm.conf"), "w") as f:
            f.write(conf)
        for daemon, pidfile in (("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
            self.pidfiles.append(self.path(pidfile))
            r = self.run([shutil.which(daemon) or f"/usr/sbin/{daemon}", "-f", self.path("slurm.conf")])
            if r.returncode != 0:
                self.cannot_run(f"{daemon} exited {r.returncode}: {r.stderr.strip()}")
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            r = self.run(["sinfo", "-h", "-n", self.host, "-o", "%T"])
            state = r.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.2)
        else:
            self.cannot_run(f"the node never became idle (sinfo: {state!r} {r.stderr.strip()})")
        log(f"Slurm up in {time.monotonic() - started:.1f} s: node {self.host}, CPUs {os.cpu_count()}, "
            f"ports {ctld_port}/{d_port}, in {self.dir}")
        # The bring-down's "nothing left running" sees the daemons by the marker.
        seen = " ".join(cmd for _, cmd in marked_processes(self.dir).values())
        if not all(d in seen for d in ("munged", "slurmctld", "slurmd")):
            raise RuntimeError(f"the daemons do not carry {MARKER} in their environment: {seen!r}")

    def cannot_run(self, why):
        detail = self.tail(self.path("log", "slurmd.log")) + self.tail(self.path("log", "slurmctld.log"))
        self.down()
        skip(f"Slurm cannot run here: {why}\n{detail}")

    @staticmethod
    def tail(path, n=15):
        try:
            with open(path, errors="replace") as f:
                return f"--- {path}:\n" + "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def down(self):
        """Cancel every job, stop the daemons, kill whatever of ours is left; True when nothing runs."""
        if os.path.exists(self.path("slurm.conf")):
            try:
                self.run(["scancel", "--user=root"], timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for pidfile in reversed(self.pidfiles):
            try:
                with open(pidfile) as f:
                    os.kill(int(f.read().split()[0]), signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                pass
        deadline = time.monotonic() + 15
        killed = False
        while True:
            alive = {p: v for p, v in marked_processes(self.dir).items() if v[0] != "Z"}
            if not alive:
                break
            if time.monotonic() > deadline:
                print(f"  still running after the bring-down: {alive}", flush=True)
                return False
            if time.monotonic() > deadline - 10 and not killed:
                for p in alive:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                killed = True
            time.sleep(0.1)
        zombies = marked_processes(self.dir)
        log(f"Slurm down: no process of the cluster running ({len(zombies)} zombie(s) left for PID 1 to reap)")
        return True


def invocations(report):
    """(payload, invocation) -> what must agree between a merged and an unsharded run."""
    out = {}
    for inv in report["invocations"]:
        out[(inv["payload"], inv["invocation"])] = (
            inv["passed"], inv["exit_code"], inv["timed_out"], inv["payload_index"] is not None,
            tuple((d["kind"], d["message"]) for d in inv["details"]),
            tuple((m["name"], m["value"], m["polarity"], m["unit"], m["source"]) for m in inv["metrics"]))
    return out


def load(path):
    with open(path) as f:
        return json.load(f)


class Submit:
    """The example's submit mode with --wait, in the background; its array job id."""

    def __init__(self, cluster, workdir, results, sbatch_options):
        self.cluster = cluster
        self.proc = subprocess.Popen(
            ["bash", SCRIPT, "--payloadrun", PAYLOADRUN, "--results", results, "--wait",
             os.path.join(workdir, "scenario.json"), "--"] + sbatch_options,
            cwd=workdir, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.proc.stdout.readline()
        self.output = first
        m = re.search(r"submitted array job (\d+);", first)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the script did not submit: {first}{self.proc.stdout.read()}")
        self.job = m.group(1)

    def wait(self, timeout=120):
        """The script's status; meanwhile Slurm's view of every task (state and
        exit code, as last seen before slurmctld forgets the job) in self.tasks."""
        self.tasks = {}
        deadline = time.monotonic() + timeout
        reader = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.PIPE, text=True)
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"the script did not end within {timeout} s")
            r = self.cluster.run(["scontrol", "-o", "show", "job", self.job], timeout=20)
            for line in r.stdout.splitlines():
                f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                if f.get("ArrayJobId") == self.job and f.get("ArrayTaskId", "").isdigit():
                    self.tasks[int(f["ArrayTaskId"])] = (f.get("JobState"), f.get("ExitCode"))
            time.sleep(0.3)
        self.output += reader.communicate(timeout=30)[0]
        return self.proc.returncode


def running_binary(pid, name):
    """Whether process `pid` runs a binary called `name`."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == name
    except OSError:
        return False


def payloadrun_of_task(job, task, binary=None):
    """pid of task `task`'s payloadrun (of array job `job`) once it has a payload running (one running
    `binary`, if given), else None."""
    want = {f"SLURM_ARRAY_JOB_ID={job}".encode(), f"SLURM_ARRAY_TASK_ID={task}".encode()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/exe") != os.path.realpath(PAYLOADRUN):
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if not want <= set(f.read().split(b"\0")):
                    continue
            with open(f"/proc/{entry}/task/{entry}/children") as f:
                children = f.read().split()
            if children and (binary is None or any(running_binary(c, binary) for c in children)):
                return int(entry)
        except OSError:
            continue
    return None


def wait_for_task(job, task, timeout=60, binary=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = payloadrun_of_task(job, task, binary)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise RuntimeError(f"task {task} of array job {job} never had a payload running")


def task_log(workdir, job, task):
    with open(os.path.join(workdir, f"payloadrun-array-{job}_{task}.out"), errors="replace") as f:
        return f.read()


def merge_log(workdir, submit):
    m = re.search(r"merge job (\d+) exited", submit.output)
    if not m:
        return f"(no merge job in the script's output: {submit.output})"
    with open(os.path.join(workdir, f"payloadrun-merge-{m.group(1)}.out"), errors="replace") as f:
        return f.read()


def main():
    cluster = Cluster()
    try:
        cluster.up()
        scenarios(cluster)
    finally:
        ok_down = cluster.down()
        check(ok_down, "the cluster is down: munged, slurmctld, slurmd and every job process stopped")
        if ok_down:
            shutil.rmtree(cluster.dir, ignore_errors=True)
    log(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


def scenarios(cluster):
    work = cluster.path("submit")  # the submit directory: task and merge logs land here
    os.mkdir(work)
    with open(os.path.join(work, "scenario.json"), "w") as f:
        json.dump(SCENARIO, f)
    results = os.path.join(work, "results")

    log("unsharded run of the scenario (the reference)")
    r = subprocess.run([PAYLOADRUN, "run", os.path.join(work, "scenario.json"), "--quiet", "--concurrency", "16",
                        "--json",
                        os.path.join(work, "whole.json")], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in cluster.env.items() if k != MARKER})
    check(r.returncode == 1, f"the unsharded run exits 1 (6 invocations fail by design): {r.returncode}")
    whole = invocations(load(os.path.join(work, "whole.json")))
    check(len(whole) == TOTAL, f"the unsharded run has {TOTAL} invocations: {len(whole)}")

    # 1. --array=0-3 (the script's own #SBATCH --array): the merged report is the unsharded one.
    log("--array=0-3 --wait: array and merge")
    s = Submit(cluster, work, results, ["--cpus-per-task=1"])
    status = s.wait()
    first_job = s.job
    check(status == 1, f"the merge job's status is the scenario's (1: invocations failed): {status}", s.output)
    merged = load(os.path.join(results, s.job, "merged.json"))
    check(invocations(merged) == whole, "merged report == unsharded run, invocation by invocation "
          f"({len(merged['invocations'])} of {TOTAL})")
    check(merged["merged"]["missing_shards"] == [] and merged["merged"]["count"] == 4, "4 of 4 shards merged")
    check(s.tasks == {t: ("COMPLETED", "0:0") for t in range(4)},
          f"Slurm: every task COMPLETED with exit code 0 (1 is the merge's verdict): {s.tasks}")
    for task in range(4):
        text = task_log(work, s.job, task)
        check(f"array job {s.job} task {task} (shard {task} of 4)" in text and "task exits 0" in text,
              f"task {task}'s log names its shard (despite --quiet) and exit 1 maps to 0")

    # 2. A re-run into the same results directory; task 1's payloadrun SIGKILLed mid-run.
    log("re-run into the same results directory, task 1 SIGKILLed mid-run")
    s = Submit(cluster, work, results, ["--cpus-per-task=1"])
    pid = wait_for_task(s.job, 1)
    os.kill(pid, signal.SIGKILL)
    status = s.wait()
    check(status == 1, f"the merge exits 1 (a missing shard): {status}")
    out = load(os.path.join(results, s.job, "merged.json"))
    check(out["merged"]["missing_shards"] == [1], f"shard 1 is missing: {out['merged']['missing_shards']}")
    mine = invocations(out)
    check(mine and all(whole[k] == v for k, v in mine.items()) and len(mine) < TOTAL,
          f"the other 3 slices are merged and agree with the unsharded run ({len(mine)} invocations)")
    left = sorted(os.listdir(os.path.join(results, s.job)))
    check(not any(n.startswith(("shard-1.", ".shard-1.")) for n in left),
          f"the killed slice left no report, temporary or 0-byte file: {left}")
    check(os.path.exists(os.path.join(results, first_job, "shard-1.json")),
          "the earlier run's shard-1.json exists but was not merged (results are per array job)")
    text = task_log(work, s.job, 1)
    check("payloadrun exited 137: killed by signal 9, no report; task exits 137" in text,
          f"task 1's log says it was killed: {text.strip().splitlines()[-1:]}")
    check(s.tasks.get(1) == ("FAILED", "137:0"), f"Slurm: task 1 FAILED with exit code 137: {s.tasks}")
    text = merge_log(work, s)
    check("missing shard(s) 1 of 4" in text, "the merge job's log names the missing shard", text)
    print("  the merge job's log ends: " + " | ".join(text.strip().splitlines()[-2:]))

    # 3. A non-zero array base.
    log("--array=5-8")
    s = Submit(cluster, work, results, ["--cpus-per-task=1", "--array=5-8"])
    status = s.wait()
    check(status == 1, f"the merge job's status is the scenario's: {status}")
    merged = load(os.path.join(results, s.job, "merged.json"))
    check(invocations(merged) == whole, "base 5: merged report == unsharded run, invocation by invocation")
    check(sorted(n for n in os.listdir(os.path.join(results, s.job)) if n.endswith(".json")) ==
          ["merged.json", "shard-0.json", "shard-1.json", "shard-2.json", "shard-3.json"],
          "slices are named by shard (task id - SLURM_ARRAY_TASK_MIN)")
    check("array job %s task 6 (shard 1 of 4)" % s.job in task_log(work, s.job, 6), "task 6 says shard 1 of 4")

    # 4. scancel of two running tasks: interrupted reports, interrupted payloads.
    log("tasks 1 and 3 scancel'd mid-run")
    s = Submit(cluster, work, results, ["--cpus-per-task=1"])
    for task in (1, 3):
        # Until a `slow` payload runs: cancelled while only quick ones ran, a
        # slice has no slow payload to cut short (seen under ASan).
        wait_for_task(s.job, task, binary="sleep")
        r = cluster.run(["scancel", f"{s.job}_{task}"])
        check(r.returncode == 0, f"scancel {s.job}_{task}: {r.stderr.strip()}")
    status = s.wait()
    check(status == 130, f"the merge exits 130 (a slice was interrupted): {status}")
    text = merge_log(work, s)
    for task in (1, 3):
        report = load(os.path.join(results, s.job, f"shard-{task}.json"))
        check(report["interrupted"] is True and report["passed"] is False,
              f"shard {task}'s report says interrupted: {report['interrupted']}")
        slow = [i for i in report["invocations"] if i["payload"] == "slow"]
        plain = [i for i in slow if not i["passed"] and not any(d["kind"] == "interrupted" for d in i["details"])]
        cut = [i for i in slow if any(d["kind"] == "interrupted" for d in i["details"])]
        check(cut and not plain, f"shard {task}: {len(cut)} payload(s) interrupted, none a plain failure "
              f"({[i['details'] for i in plain]})")
        check("payloadrun exited 130" in task_log(work, s.job, task), f"task {task}'s log says exit 130")
        every = report["invocations"]
        n_cut = sum(any(d["kind"] == "interrupted" for d in i["details"]) for i in every)
        line = (f"shard {task} of 4 ({os.path.join(results, s.job, f'shard-{task}.json')}) was interrupted: "
                f"{len(every) - n_cut} of {report['shard']['invocations']} invocations completed, {n_cut} "
                f"interrupted, {report['shard']['invocations'] - len(every)} never started")
        check(line in text, f"the merge job's log: {line}", text)
    out = load(os.path.join(results, s.job, "merged.json"))
    check(out["interrupted"] is True and not out["passed"], "the merged report is interrupted")
    check(s.tasks.get(1, ("",))[0] == "CANCELLED" and s.tasks.get(3, ("",))[0] == "CANCELLED",
          f"Slurm: tasks 1 and 3 CANCELLED: {s.tasks}")


    # 5. Arrays that are not contiguous with step 1: every task refuses.
    for spec, tasks, names in (("0-6:2", (0, 2, 4, 6), "SLURM_ARRAY_TASK_MAX=6, SLURM_ARRAY_TASK_COUNT=4, "
                                                          "SLURM_ARRAY_TASK_STEP=2"),
                               ("1,3,7", (1, 3, 7), "SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_MAX=7, "
                                                    "SLURM_ARRAY_TASK_COUNT=3")):
        log(f"--array={spec}")
        s = Submit(cluster, work, results, ["--cpus-per-task=1", f"--array={spec}"])
        status = s.wait()
        check(status == 2, f"--array={spec}: the merge has nothing to merge (2): {status}")
        for task in tasks:
            text = task_log(work, s.job, task)
            check(names in text and "the array must be contiguous with step 1" in text and "task exits 2" in text,
                  f"--array={spec} task {task} refuses, naming the variables")
        job_dir = os.path.join(results, s.job)
        check(not os.path.isdir(job_dir) or not [n for n in os.listdir(job_dir) if n.startswith("shard-")],
              f"--array={spec}: no slice ran")
        check(f"no slice report of array job {s.job}" in merge_log(work, s), "the merge job's log says why")
        check(sorted(s.tasks) == list(tasks) and all(v == ("FAILED", "2:0") for v in s.tasks.values()),
              f"Slurm: every task FAILED with exit code 2: {s.tasks}")


if __name__ == "__main__":
    main()
