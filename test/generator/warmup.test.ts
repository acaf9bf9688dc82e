/**
 * A VALE receiver's warm-up (src/generator/job.ts) leaves its receive path compiled for what
 * traffic brings: once its start line is out, V8 sends none of the loop's code back to the
 * interpreter (`node --trace-deopt`). Before the warm-up covered every branch, traffic's first
 * batches deoptimized Port.poll, sumLengths and the loop itself, and the loop's first compile was
 * dropped ("dependency change"): it ran interpreted for 100-200 ms of traffic.
 * VALE's rxsync is included: its check for a lease a sender left outstanding (which the warm-up,
 * in one thread, never has) is written without a branch that only traffic takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI, freshDir, removeDir, run } from './helpers.js';

/** The receive path's functions (loops.ts, ports/port.ts, rings/slot.ts). */
const HOT = /(?:\[bailout .*<JSFunction (rxLoop|pollSpin|poll|pollOnce|syncRing|runSync|rxsync|sumLengths|sumStrided|slotAfter) |\[aborted optimizing .*<JSFunction (rxLoop) )/;
const FRAMES = 300_000;

test('pkt-gen rx on VALE: after its start line, no code of the receive path is deoptimized or dropped', async () => {
  const dir = freshDir('warm');
  try {
    // -W: no frame count (a dropped frame would leave it waiting), it ends 1 s after the traffic
    const rx = spawn(process.execPath, ['--trace-opt', '--trace-deopt', CLI, 'pkt-gen', '-f', 'rx', '-i', 'valewu:r', '-W', '--json', '-T', '0'],
      { env: { ...process.env, NETMAP_TS_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    rx.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    rx.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => rx.kill('SIGKILL'), 30_000);
    const exited = new Promise<number | null>((resolve) => rx.on('close', (code) => { clearTimeout(timer); resolve(code); }));
    for (let waited = 0; !out.includes('"type":"start"'); waited += 20) {
      assert.ok(waited < 20_000, `no start line: ${out.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // paced, so that the receiver both spins and sleeps, and batches vary
    const tx = await run(['pkt-gen', '-f', 'tx', '-i', 'valewu:t', '-R', '1M', '-b', '64', '-n', String(FRAMES)], dir, 20_000);
    assert.equal(tx.code, 0, tx.stderr);
    assert.equal(await exited, 0, out.slice(-1000));
    // (V8's trace and the JSON lines share stdout through two buffers: lines may interleave)
    const after = out.slice(out.indexOf('"type":"start"'));
    const packets = /"verb":"Received","packets":(\d+)/.exec(after), drops = /"drops":(\d+)/.exec(after);
    assert.ok(packets !== null && drops !== null, `no summary: ${after.slice(-600)}`);
    assert.equal(Number(packets[1]) + Number(drops[1]), FRAMES, 'every frame received or counted as dropped');
    const bad = after.split('\n').filter((l) => HOT.test(l)).map((l) => l.slice(0, 160));
    assert.deepEqual(bad, [], 'receive-path code deoptimized or dropped under traffic');
  } finally {
    removeDir(dir);
  }
});
