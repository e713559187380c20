#!/usr/bin/env python3
"""Python asyncio peer for bench/compare: N spawns of a command (default
/bin/true) with stdout piped and drained, K in flight, via
asyncio.create_subprocess_exec. Every exit code must be 0 and stdout empty,
else exit 1. Prints {"mode","k","spawns","seconds","rate"}."""
import argparse
import asyncio
import json
import subprocess
import sys
import time


async def main(args):
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
                sys.exit(f"BENCH CHECK FAILED: exit code {proc.returncode}")
            if out != b"":
                sys.exit(f"BENCH CHECK FAILED: unexpected stdout {out!r}")
            done += 1

    await asyncio.gather(*(worker() for _ in range(min(args.k, args.n))))
    secs = time.monotonic() - t0
    if done != launched:
        sys.exit("BENCH CHECK FAILED: completed fewer than launched")
    print(json.dumps({"mode": "asyncio", "k": args.k, "spawns": done,
                      "seconds": secs, "rate": done / secs}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="spawn")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=1e9)
    p.add_argument("--cmd", default="/bin/true")
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    if a.smoke:
        a.n = min(a.n, 40)
    asyncio.run(main(a))
