#!/usr/bin/env python3
"""Python asyncio peer for bench/compare (same work as the C++ programs, same
checks), using asyncio.create_subprocess_exec as its documentation shows
(the default event loop and child watcher of the running Python).

  spawn    --n N --k K [--max-seconds T] [--cmd /bin/true]
           N spawns, K in flight, stdout piped and drained; every exit code
           must be 0 and stdout empty. Prints {"mode","k","spawns","seconds","rate"}.
  sleep    --n N [--sleep S] [--sleep-cmd sleep]   N `sleep S` children in
           flight (stdout and stderr piped): CPU% of this process over an idle
           window while they sleep, RSS growth per child, reap tail. With
           --sleep-cmd sleep_stamp (which prints its CLOCK_MONOTONIC end in ns)
           the reap tail is the last completion minus the last real end, and
           each child's exit-to-completion latency is reported (p50/p99);
           else it is estimated as last completion minus (last spawn + S).
           Same window rule as supervise_bench.
  deadline --n N --cmd ignore_term [--deadline-ms D] [--per-tick P] [--tick-ms T]
           children that ignore SIGTERM, spawned P every T ms, each killed
           with SIGKILL once D ms have passed (asyncio.wait_for, then
           Process.kill); lateness of the completion after the deadline.
Any wrong result exits 1 with "BENCH CHECK FAILED".
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def fail(why):
    sys.exit(f"BENCH CHECK FAILED: {why}")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentile(values, p):
    s = sorted(values)
    rank = min(len(s), max(1, -(-p * len(s) // 100)))
    return s[int(rank) - 1]


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run_spawn(args):
    launched = 0
    done = 0
    t0 = time.monotonic()

    async def worker():
        nonlocal launched, done
        while launched < args.n and time.monotonic() - t0 < args.max_seconds:
            launched += 1
            proc = await asyncio.create_subprocess_exec(
                args.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                fail(f"exit code {proc.returncode}")
            if out != b"":
                fail(f"unexpected stdout {out!r}")
            done += 1

    await asyncio.gather(*(worker() for _ in range(min(args.k, args.n))))
    secs = time.monotonic() - t0
    if done != launched:
        fail("completed fewer than launched")
    print(json.dumps({"mode": "asyncio", "k": args.k, "spawns": done,
                      "seconds": secs, "rate": done / secs}))


async def run_sleep(args):
    n = args.n
    sleep_s = args.sleep
    raise_nofile(n * 4 + 1024)
    last_done = 0.0
    ends = []  # (end stamped by the child, completion seen here), s
    stamped = os.path.basename(args.sleep_cmd) == "sleep_stamp"

    async def finish(proc):
        nonlocal last_done
        out, err = await proc.communicate()
        done = time.monotonic()
        if proc.returncode != 0:
            fail(f"sleep exited {proc.returncode}: {err!r}")
        if stamped:
            try:
                ends.append((int(out) / 1e9, done))
            except ValueError:
                fail(f"sleep_stamp printed {out!r}, not its end time")
        last_done = max(last_done, done)

    rss0 = rss_bytes()
    t0 = time.monotonic()
    tasks = []
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(
            args.sleep_cmd, f"{sleep_s:g}", stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        tasks.append(asyncio.ensure_future(finish(proc)))
    t_last_spawn = time.monotonic()
    spawn_s = t_last_spawn - t0
    # Idle window: from 100 ms after the last spawn to 100 ms before the
    # first sleep can end. None when spawning outlasted the sleep.
    window_len = sleep_s - 0.1 - spawn_s - 0.1
    idle_cpu = None
    window_s = 0.0
    rss_spawned = rss_bytes()
    if window_len > 0.05:
        await asyncio.sleep(0.1)
        c0 = cpu_seconds()
        w0 = time.monotonic()
        rss_spawned = rss_bytes()
        await asyncio.sleep(window_len)
        window_s = time.monotonic() - w0
        idle_cpu = (cpu_seconds() - c0) / window_s * 100.0
    await asyncio.gather(*tasks)
    out = {
        "mode": "asyncio_sleep", "n": n, "spawn_seconds": spawn_s,
        "idle_cpu_pct": idle_cpu, "idle_window_s": window_s,
        "rss_per_payload_kib": (rss_spawned - rss0) / 1024 / n,
        "reap_tail_ms": (last_done - t_last_spawn) * 1000 - sleep_s * 1000,
        "wall_seconds": last_done - t0}
    if stamped:
        if len(ends) != n:
            fail(f"{len(ends)} of {n} end stamps")
        lat = sorted((d - e) * 1000 for e, d in ends)
        if lat[0] < 0:
            fail(f"a completion came {lat[0]:.3f} ms before its child's end stamp")
        out["reap_tail_ms"] = (last_done - max(e for e, _ in ends)) * 1000
        out["exit_to_done_p50_ms"] = percentile(lat, 50)
        out["exit_to_done_p99_ms"] = percentile(lat, 99)
    print(json.dumps(out))


async def run_deadline(args):
    if not args.cmd or args.cmd == "/bin/true":
        fail("--cmd (the ignore_term helper) is required")
    n = args.n
    deadline_s = args.deadline_ms / 1000.0
    raise_nofile(n * 4 + 1024)
    late = []
    spawned = []  # when each spawn began

    async def one():
        t = time.monotonic()
        spawned.append(t)
        proc = await asyncio.create_subprocess_exec(
            args.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            await asyncio.wait_for(proc.wait(), deadline_s - (time.monotonic() - t))
        except asyncio.TimeoutError:
            proc.kill()
        await proc.communicate()
        if proc.returncode != -signal.SIGKILL:
            fail(f"expected a kill at the deadline, got {proc.returncode}")
        late.append((time.monotonic() - t - deadline_s) * 1000)

    tasks = []
    while len(tasks) < n:
        for _ in range(min(args.per_tick, n - len(tasks))):
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.sleep(args.tick_ms / 1000.0)
    await asyncio.gather(*tasks)
    if len(late) != n:
        fail("not every payload completed")
    if min(late) < -0.5:
        fail("a payload completed before its deadline")
    print(json.dumps({"mode": "asyncio_deadline", "n": n, "p50_ms": percentile(late, 50),
                      "p99_ms": percentile(late, 99), "max_ms": max(late),
                      "spawn_seconds": max(spawned) - min(spawned)}))


async def run_lag(args):
    """A 1 ms ticker runs; 50 ms in, N /bin/true children are started at once
    (stdout, stderr piped); the ticker's worst lateness until the last exit."""
    n = args.n
    loop = asyncio.get_running_loop()
    gaps = []
    state = {"last": time.perf_counter(), "armed": False, "stop": False}

    def tick():
        now = time.perf_counter()
        if state["armed"]:
            gaps.append((now - state["last"]) * 1000 - 1)
        state["last"] = now
        if not state["stop"]:
            loop.call_later(0.001, tick)

    loop.call_later(0.001, tick)
    await asyncio.sleep(0.05)

    async def one():
        proc = await asyncio.create_subprocess_exec("/bin/true", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await proc.communicate()
        if proc.returncode != 0:
            fail(f"/bin/true exited {proc.returncode}")

    t0 = time.perf_counter()
    state["last"] = t0
    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    state["armed"] = True
    await asyncio.gather(*tasks)
    state["stop"] = True
    print(json.dumps({"mode": "asyncio_lag", "n": n, "lag_max_ms": max(gaps or [0]),
                      "lag_p99_ms": percentile(gaps, 99) if gaps else 0, "ticks": len(gaps),
                      "burst_seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="spawn", choices=["spawn", "sleep", "deadline", "lag"])
    p.add_argument("--n", type=int)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=1e9)
    p.add_argument("--cmd", default="/bin/true")
    p.add_argument("--sleep", type=float)
    p.add_argument("--sleep-cmd", default="sleep")
    p.add_argument("--deadline-ms", type=float, default=100)
    p.add_argument("--per-tick", type=int, default=4)
    p.add_argument("--tick-ms", type=float, default=2)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    defaults = {"spawn": (40, 2000), "sleep": (50, 1000), "deadline": (20, 1000), "lag": (40, 1000)}[a.mode]
    if a.n is None:
        a.n = defaults[0] if a.smoke else defaults[1]
    if a.sleep is None:
        a.sleep = 1.0 if a.smoke else 3.0
    asyncio.run({"spawn": run_spawn, "sleep": run_sleep, "deadline": run_deadline,
                 "lag": run_lag}[a.mode](a))
