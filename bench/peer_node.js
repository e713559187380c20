#!/usr/bin/env node
// Node.js peer for bench/compare (same work as the C++ programs, same checks).
//   spawn    --n N --k K [--max-seconds T] [--cmd /bin/true]
//            N spawns, K in flight, stdout piped and drained; every exit code
//            must be 0 and stdout empty. Prints {"mode","spawns","seconds","rate"}.
//   sleep    --n N [--sleep S] [--sleep-cmd sleep]   N `sleep S` children in
//            flight: CPU% while idle, RSS growth per child, wall time to reap
//            all, reap tail; with --sleep-cmd sleep_stamp (prints its
//            CLOCK_MONOTONIC end in ns) the tail is measured from the last
//            real end and each child's exit-to-close latency is reported.
//   deadline --n N --cmd ignore_term [--deadline-ms D] [--per-tick P] [--tick-ms T]: children that ignore
//            SIGTERM, killed by spawn's `timeout` option with SIGKILL;
//            lateness of the completion after the deadline (p50/p99 ms).
//   lag      --n N: a 1 ms setInterval runs; 50 ms in, N `/bin/true` children
//            are spawned at once (stdout, stderr piped); the interval's worst
//            lateness (and p99) until the last one closed.
// Any wrong result exits 1.
'use strict';
const { spawn } = require('child_process');

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const k = a.slice(2);
      if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[k] = argv[++i];
      else out[k] = true;
    } else out._.push(a);
  }
  return out;
}
const args = parseArgs(process.argv.slice(2));
const mode = args._[0] || 'spawn';
const smoke = !!args.smoke;
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const nowNs = () => process.hrtime.bigint();
const secsSince = (t0) => Number(nowNs() - t0) / 1e9;

function fail(why) {
  process.stderr.write(`BENCH CHECK FAILED: ${why}\n`);
  process.exit(1);
}

function percentile(v, p) {
  const s = [...v].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1];
}

function runSpawn() {
  const n = num('n', smoke ? 40 : 2000);
  const k = num('k', 8);
  const maxS = num('max-seconds', 1e9);
  const cmd = args.cmd || '/bin/true';
  let launched = 0;
  let done = 0;
  const t0 = nowNs();
  const launch = () => {
    launched++;
    const child = spawn(cmd, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', (e) => fail(`spawn error ${e}`));
    child.on('close', (code, signal) => {
      if (code !== 0 || signal !== null) fail(`exit code ${code} signal ${signal}`);
      if (out !== '') fail(`unexpected stdout ${out}`);
      done++;
      if (launched < n && secsSince(t0) < maxS) launch();
      else if (done === launched) {
        const s = secsSince(t0);
        console.log(JSON.stringify({ mode: 'node', k, spawns: done, seconds: s, rate: done / s }));
      }
    });
  };
  for (let i = 0; i < Math.min(k, n); i++) launch();
}

function runSleep() {
  const n = num('n', smoke ? 50 : 1000);
  const sleepS = num('sleep', smoke ? 1 : 3);
  const rss0 = process.memoryUsage().rss;
  const children = [];
  let done = 0;
  const t0 = nowNs();
  let lastSpawn = t0;
  let lastDone = t0;
  const sleepCmd = args['sleep-cmd'] || 'sleep';
  const stamped = require('path').basename(sleepCmd) === 'sleep_stamp';
  const ends = []; // [end stamped by the child, close seen here], ns
  for (let i = 0; i < n; i++) {
    const child = spawn(sleepCmd, [String(sleepS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', () => {});
    child.on('error', (e) => fail(`spawn error ${e}`));
    child.on('close', (code) => {
      const closed = nowNs();
      if (code !== 0) fail(`sleep exited ${code}`);
      if (stamped) {
        if (!/^\d+\n$/.test(out)) fail(`sleep_stamp printed ${JSON.stringify(out)}, not its end time`);
        ends.push([BigInt(out.trim()), closed]);
      }
      done++;
      if (done === n) {
        lastDone = nowNs();
        report();
      }
    });
    children.push(child);
  }
  lastSpawn = nowNs();
  const spawnS = secsSince(t0);
  let idle = null;
  // Idle window (the same rule as supervise_bench): from 100 ms after the
  // last spawn to 100 ms before the first sleep can end (it started spawnS
  // before the last spawn); none if spawning outlasted the sleep.
  const windowLen = sleepS - 0.1 - spawnS - 0.1;
  const rssSpawned = { v: process.memoryUsage().rss };
  if (windowLen > 0.05) {
    setTimeout(() => {
      const c0 = process.cpuUsage();
      const w0 = nowNs();
      rssSpawned.v = process.memoryUsage().rss;
      setTimeout(() => {
        const c1 = process.cpuUsage(c0);
        const w = secsSince(w0);
        idle = { cpu_pct: ((c1.user + c1.system) / 1e6 / w) * 100, window_s: w };
      }, windowLen * 1000);
    }, 100);
  }
  function report() {
    // Spawning took longer than the sleep: no idle window exists; report null
    // (a measurement condition of a loaded machine, not a wrong result).
    if (idle === null) idle = { cpu_pct: null, window_s: 0 };
    const res = {
      mode: 'node_sleep', n, spawn_seconds: spawnS,
      idle_cpu_pct: idle.cpu_pct, idle_window_s: idle.window_s,
      rss_per_payload_kib: (rssSpawned.v - rss0) / 1024 / n,
      reap_tail_ms: (Number(lastDone - lastSpawn) / 1e6) - sleepS * 1000,
      wall_seconds: Number(lastDone - t0) / 1e9,
    };
    if (stamped) {
      const lat = ends.map(([e, d]) => Number(d - e) / 1e6);
      if (Math.min(...lat) < 0) fail('a close came before its child\'s end stamp');
      const lastEnd = ends.reduce((m, [e]) => (e > m ? e : m), 0n);
      res.reap_tail_ms = Number(lastDone - lastEnd) / 1e6;
      res.exit_to_done_p50_ms = percentile(lat, 50);
      res.exit_to_done_p99_ms = percentile(lat, 99);
    }
    console.log(JSON.stringify(res));
  }
}

function runDeadline() {
  const n = num('n', smoke ? 20 : 1000);
  const deadlineMs = num('deadline-ms', 100);
  const perTick = num('per-tick', 4);
  const tickMs = num('tick-ms', 2);
  const cmd = args.cmd;
  const late = [];
  let launched = 0;
  let firstSpawn = 0n;
  let lastSpawn = 0n;
  const launchOne = () => {
    launched++;
    const t = nowNs();
    if (launched === 1) firstSpawn = t;
    lastSpawn = t;
    const child = cmd
      ? spawn(cmd, [], { stdio: ['ignore', 'pipe', 'pipe'], timeout: deadlineMs, killSignal: 'SIGKILL' })
      : spawn('sh', ['-c', 'trap "" TERM; sleep 10'],
        { stdio: ['ignore', 'pipe', 'pipe'], timeout: deadlineMs, killSignal: 'SIGKILL' });
    child.stdout.on('data', () => {});
    child.stderr.on('data', () => {});
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') fail(`expected a kill at the deadline, got code ${code} signal ${signal}`);
      late.push(Number(nowNs() - t) / 1e6 - deadlineMs);
      if (late.length === n) {
        clearInterval(timer);
        console.log(JSON.stringify({
          mode: 'node_deadline', n, p50_ms: percentile(late, 50), p99_ms: percentile(late, 99),
          max_ms: Math.max(...late), spawn_seconds: Number(lastSpawn - firstSpawn) / 1e9,
        }));
      }
    });
  };
  const timer = setInterval(() => {
    for (let i = 0; i < perTick && launched < n; i++) launchOne();
  }, tickMs);
}

function runLag() {
  const n = num('n', smoke ? 40 : 1000);
  const gaps = [];
  let last = nowNs();
  let armed = false;
  let done = 0;
  let tBurst = 0n;
  let burstCallMs = 0;
  const tick = setInterval(() => {
    const now = nowNs();
    if (armed) gaps.push(Number(now - last) / 1e6 - 1);
    last = now;
  }, 1);
  setTimeout(() => {
    tBurst = nowNs();
    last = tBurst;
    for (let i = 0; i < n; i++) {
      const child = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', () => {});
      child.stderr.on('data', () => {});
      child.on('close', (code) => {
        if (code !== 0) fail(`/bin/true exited ${code}`);
        if (++done === n) {
          clearInterval(tick);
          console.log(JSON.stringify({
            mode: 'node_lag', n, lag_max_ms: Math.max(0, ...gaps), lag_p99_ms: percentile(gaps, 99),
            ticks: gaps.length, burst_seconds: secsSince(tBurst), burst_call_ms: burstCallMs,
          }));
        }
      });
    }
    burstCallMs = Number(nowNs() - tBurst) / 1e6; // the synchronous spawn loop, on its own
    armed = true;
  }, 50);
}

if (mode === 'spawn') runSpawn();
else if (mode === 'lag') runLag();
else if (mode === 'sleep') runSleep();
else if (mode === 'deadline') runDeadline();
else fail(`unknown mode ${mode}`);
