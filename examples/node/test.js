// Test of the payloadrun Node.js addon (examples/node/README.md), run by
// meson as `node test.js ADDON.node`. It runs itself as child processes:
//   concurrent  100 payloads (plus 6 started from callbacks) on Node's loop
//               next to 20 child_process children and a 5 ms interval
//               timer: every exit code exact, timeouts, JSON metrics, the
//               stdout cap; then it stops its timer and must exit by itself.
//   exit-live   process.exit() with 5 `sleep 30` payloads live: they must be
//               gone (killed and reaped) when the child has exited.
// and checks argument errors in this process.
'use strict';
const assert = require('assert');
const childProcess = require('child_process');
const path = require('path');

const addonPath = path.resolve(process.argv[2] || '');
const mode = process.argv[3] || 'main';
const sh = '/bin/sh';

function concurrent() {
  const t0 = Date.now();
  const payloadrun = require(addonPath);
  const expected = new Map();  // tag -> check(result)
  const seen = new Map();
  // Ticks of a 5 ms timer while payloads run (after the synchronous
  // spawning below), and the longest the loop went without one.
  let ticks = 0;
  let last = 0;
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    if (last !== 0) maxGap = Math.max(maxGap, now - last);
    last = now;
    if (pending > 0) ticks++;
  }, 5);
  let pending = 0;
  let childrenOk = 0;
  let chained = 0;
  const finish = () => {
    if (--pending > 0) return;
    clearInterval(timer);
    assert.strictEqual(payloadrun.live(), 0, 'payloads still live after every callback');
    for (const tag of expected.keys()) assert.ok(seen.has(tag), `no callback for ${tag}`);
    // No process.exit(): Node must exit by itself now (the parent checks).
    console.log(JSON.stringify({payloads: seen.size, chained, children: childrenOk, ticks, maxGap, doneAt: Date.now()}));
  };
  const start = (tag, args, options, check) => {
    pending++;
    expected.set(tag, check);
    const pid = payloadrun.run(sh, ['-c', args], options, (r) => {
      assert.ok(!seen.has(tag), `second callback for ${tag}`);
      seen.set(tag, r);
      try {
        check(r);
      } catch (e) {
        e.message = `${tag}: ${e.message} (result ${JSON.stringify(r).slice(0, 400)})`;
        throw e;
      }
      finish();
    });
    assert.ok(Number.isInteger(pid) && pid > 0, `run() returned pid ${pid}`);
  };

  for (let i = 0; i < 100; i++) {
    const code = (i * 7) % 13;
    if (i % 25 === 3) {  // 4 deadlines
      start(`timeout-${i}`, 'echo started; exec sleep 10', {timeout_ms: 1000}, (r) => {
        assert.strictEqual(r.timed_out, true);
        assert.strictEqual(r.exit_code, -1);
        assert.strictEqual(r.signal, 9);
        assert.strictEqual(r.stdout, 'started\n');
      });
    } else if (i % 4 === 1) {  // JSON metrics
      start(`json-${i}`, `printf '{"n": ${i}, "x": {"y": 2.5}}'; exit ${code}`, {json: true, timeout_ms: 20000},
            (r) => {
              assert.strictEqual(r.exit_code, code);
              assert.strictEqual(r.metrics.n, i);
              assert.strictEqual(r.metrics['x.y'], 2.5);
            });
    } else if (i === 50) {  // stdout capped for JavaScript
      start('capped', 'head -c 200000 /dev/zero | tr "\\0" a', {max_stdout: 1000}, (r) => {
        assert.strictEqual(r.exit_code, 0);
        assert.strictEqual(r.stdout, 'a'.repeat(1000));
        assert.strictEqual(r.stdout_truncated, true);
      });
    } else {
      start(`exit-${i}`, `sleep 0.0${i % 10}; echo ${i}; exit ${code}`, {timeout_ms: 20000}, (r) => {
        assert.strictEqual(r.exit_code, code);
        assert.strictEqual(r.timed_out, false);
        assert.strictEqual(r.passed, true);  // no checks: only supervision could fail it
        assert.strictEqual(r.stdout, `${i}\n`);
        if (i < 10) {  // a payload started from a payload's callback
          chained++;
          start(`chained-${i}`, `exit ${i + 100}`, {}, (c) => assert.strictEqual(c.exit_code, i + 100));
        }
      });
    }
  }
  for (let i = 0; i < 20; i++) {
    pending++;
    const code = (i * 3) % 11;
    const child = childProcess.spawn(sh, ['-c', `sleep 0.0${i % 5}; exit ${code}`]);
    child.on('exit', (c, signal) => {
      assert.strictEqual(c, code, `child_process child ${i} exited ${c} (signal ${signal}), expected ${code}`);
      childrenOk++;
      finish();
    });
  }
  const spawnMs = Date.now() - t0;
  setImmediate(() => console.log(JSON.stringify({spawnMs})));
}

function exitLive() {
  const payloadrun = require(addonPath);
  const pids = [];
  for (let i = 0; i < 5; i++) {
    pids.push(payloadrun.run('/bin/sleep', ['30'], {}, () => console.log('CALLBACK CALLED')));
  }
  console.log(JSON.stringify({pids}));
  setTimeout(() => {
    assert.strictEqual(payloadrun.live(), 5);
    process.exit(3);
  }, 200);
}

function runChild(childMode) {
  const t0 = Date.now();
  const r = childProcess.spawnSync(process.execPath, [__filename, addonPath, childMode],
                                   {timeout: 30000, encoding: 'utf8'});
  const end = Date.now();
  process.stderr.write(r.stderr);
  assert.strictEqual(r.error, undefined, `${childMode}: ${r.error}`);
  assert.strictEqual(r.signal, null,
                     `${childMode}: node was killed by ${r.signal} after ${end - t0} ms (did it not exit by itself?)`);
  return {status: r.status, stdout: r.stdout, end};
}

function main() {
  const payloadrun = require(addonPath);
  assert.throws(() => payloadrun.run(42, [], {}, () => {}), {name: 'TypeError', message: /binary must be a string/});
  assert.throws(() => payloadrun.run(sh, 'x', {}, () => {}), {name: 'TypeError', message: /args must be an array/});
  assert.throws(() => payloadrun.run(sh, [], {timeout_ms: -1}, () => {}), {name: 'TypeError'});
  assert.throws(() => payloadrun.run(sh, [], {}, 7), {name: 'TypeError', message: /callback must be a function/});
  assert.throws(() => payloadrun.run('/nonexistent/payload', [], {}, () => {}), /nonexistent/);
  assert.strictEqual(payloadrun.live(), 0);

  const c = runChild('concurrent');
  assert.strictEqual(c.status, 0, `concurrent: exit status ${c.status}`);
  const lines = c.stdout.trim().split('\n');
  const summary = JSON.parse(lines.pop());
  const {spawnMs} = JSON.parse(lines[0]);
  assert.ok(summary.chained > 0, 'no payload was started from a callback');
  assert.strictEqual(summary.payloads, 100 + summary.chained);
  assert.strictEqual(summary.children, 20);
  assert.ok(summary.ticks > 0, 'the timer never ticked while payloads ran');
  assert.ok(summary.maxGap < 5000, `the loop went ${summary.maxGap} ms without a timer tick`);
  const idleExitMs = c.end - summary.doneAt;
  assert.ok(idleExitMs < 5000, `node took ${idleExitMs} ms to exit once idle`);
  console.log(`concurrent: ${summary.payloads} payloads and ${summary.children} child_process children, ` +
              `every exit code exact; started in ${spawnMs} ms; the 5 ms timer ticked ${summary.ticks} times ` +
              `while they ran, largest gap ${summary.maxGap} ms; ` +
              `node exited by itself ${idleExitMs} ms after the last callback`);

  const e = runChild('exit-live');
  assert.strictEqual(e.status, 3, `exit-live: exit status ${e.status}`);
  assert.ok(!e.stdout.includes('CALLBACK CALLED'), 'a callback ran during process.exit()');
  const {pids} = JSON.parse(e.stdout.trim().split('\n')[0]);
  for (const pid of pids) {
    // Killed and reaped by the addon before node exited: no such process
    // (not even a zombie waiting for init).
    assert.throws(() => process.kill(pid, 0), {code: 'ESRCH'}, `payload ${pid} outlived process.exit()`);
  }
  console.log(`exit-live: process.exit() with ${pids.length} live payloads: all gone when node exited`);
}

if (mode === 'concurrent') concurrent();
else if (mode === 'exit-live') exitLive();
else main();
