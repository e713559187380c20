"""The rows of bench/compare: running one benchmark program, medians and
paired ratios of its rounds, the row record (--json) and the printed table.
Imported by bench/compare only (see BENCHMARKS.md)."""
import json
import statistics
import subprocess
import sys


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_times():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before, after):
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def run_json_lines(cmd, timeout=900):
    """Run a benchmark program; return its stdout JSON objects. Non-zero exit: fail."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"benchmark failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def rotated(names, r):
    """Round r's order: each implementation leads in turn (A B C, B C A, ...),
    so none always runs right after the same neighbour (a peer's exit, a
    GC's unmapping, can weigh on whoever runs next)."""
    k = r % len(names)
    return names[k:] + names[:k]


def med(values):
    return statistics.median(values) if values else float("nan")


def paired_ratio(a, b):
    """Median over rounds of a[i] / b[i] (samples of the same round)."""
    return med([x / y for x, y in zip(a, b) if y])


# --json "peer": the short ids; the table shows the label.
GUARDED = "C loop with payloadrun's guarantees"

PEER_IDS = {
    "posix_spawn loop": "posix_spawn",
    GUARDED: "posix_spawn_guarded",
    "libuv uv_spawn loop": "uv_spawn",
    "payloadrun uv_spawn backend": "payloadrun_uv_spawn",
    "Python asyncio": "python_asyncio",
    "payloadrun, spawn_slice 0 (default: in-loop clone)": "payloadrun_unpaced",
    "payloadrun, spawn_slice 500 us": "payloadrun_slice_500us",
    "spawn helper process (prototype), 2 requests in flight": "forkserver_window2",
    "floor: this process spawns nothing, another spawns the N": "floor_external",
    "Python asyncio wait_for + kill": "python_asyncio",
    "Node.js child_process": "node",
    "Node.js spawn timeout": "node",
    "simdjson bare DOM parse": "simdjson",
    "RapidJSON flatten, same sink": "rapidjson",
    "RapidJSON flatten, textbook": "rapidjson_textbook",
    "nlohmann::json flatten, same sink": "nlohmann",
    "nlohmann::json flatten, textbook": "nlohmann_textbook",
    "naive O(N*M) lookup": "naive_linear_scan",
    "pipe": "pipe",
    "unix_socket": "unix_socket",
    "bare shared-memory copy": "bare",
    "(absolute target)": None,
    "(not exposed by the peers)": None,
}


class Spread:
    """A figure a program summarised itself: its median, fastest and slowest round."""
    def __init__(self, median, lo, hi):
        self.median, self.lo, self.hi = median, lo, hi


def summary(x):
    """(median, min, max, samples) of a figure: a list of per-round samples,
    a Spread, or one number (a figure derived from medians: no spread)."""
    if x is None:
        return None, None, None, 0
    if isinstance(x, Spread):
        return x.median, x.lo, x.hi, None
    if isinstance(x, (list, tuple)):
        vals = [v for v in x if v is not None]
        if not vals:
            return None, None, None, 0
        return med(vals), min(vals), max(vals), len(vals)
    return x, None, None, None


def row(name, peer, ours, theirs, unit, higher_better, target=None, met=None):
    """One comparison row. ours/theirs: per-round samples (the row shows
    their median and min..max), a Spread, or a single derived number."""
    ours, ours_lo, ours_hi, ours_n = summary(ours)
    theirs, theirs_lo, theirs_hi, theirs_n = summary(theirs)
    if ours is None or theirs is None:
        ratio = None
    elif higher_better:
        ratio = ours / theirs if theirs else None
    else:
        ratio = theirs / ours if ours else None
    return {"name": name, "peer": PEER_IDS[peer], "peer_label": peer, "payloadrun": ours,
            "payloadrun_min": ours_lo, "payloadrun_max": ours_hi, "payloadrun_samples": ours_n,
            "peer_value": theirs, "peer_min": theirs_lo, "peer_max": theirs_hi, "peer_samples": theirs_n,
            "unit": unit, "ratio": ratio, "target": target, "met": met}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def fmt_spread(value, lo, hi):
    """median, then [min..max] of the rounds when there was more than one value."""
    if value is None or lo is None or hi is None or lo == hi:
        return fmt(value)
    return f"{fmt(value)} [{fmt(lo)}..{fmt(hi)}]"


def print_table(rows):
    head = ["comparison", "peer", "payloadrun median [min..max]", "peer median [min..max]", "unit", "ratio",
            "target", "met"]
    body = [[r["name"], r["peer_label"], fmt_spread(r["payloadrun"], r["payloadrun_min"], r["payloadrun_max"]),
             fmt_spread(r["peer_value"], r["peer_min"], r["peer_max"]), r["unit"],
             fmt(r["ratio"]), r["target"] or "", {True: "yes", False: "NO", None: ""}[r["met"]]]
            for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |")
