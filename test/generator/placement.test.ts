/**
 * Thread placement (src/ports/placement.ts): a receiver (pkt-gen rx, netmap dump) reserves a CPU
 * for its packet thread and keeps its other threads off it; a sender keeps all its threads off
 * it; the reservation goes with the receiver; and an ordinary receiver then follows a paced sender.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { getAffinity } from '../../src/native/index.js';
import { reservedCpus } from '../../src/ports/placement.js';
import { freshDir, jsonOf, removeDir, run, start } from './helpers.js';

const haveVale = fs.existsSync(new URL('../../src/switch/index.js', import.meta.url));
const cpus = getAffinity(0);
const canList = ((): boolean => { try { fs.readdirSync('/proc/self/task'); return true; } catch { return false; } })();
const skip = !haveVale ? 'src/switch is not in this build'
  : cpus.length < 2 ? `this process may use ${cpus.length} CPU: placement needs two`
    : !canList ? '/proc/self/task is unreadable here (no thread to place)' : false;

/** Each thread of `pid`: its name and the CPUs it may run on. */
function threadCpus(pid: number): { tid: number; cpus: number[] }[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)![1]!;
    const out: number[] = [];
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a!; c <= (b ?? a!); c++) out.push(c);
    }
    return { tid: Number(tid), cpus: out };
  });
}

function reservationFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith('cpu-'));
}

test('a receiver reserves a CPU for its packet thread; its other threads and a sender\'s stay off it; the reservation ends with it', { skip, timeout: 60_000 }, async () => {
  const dir = freshDir('place');
  try {
    // a dead receiver's reservation is ignored and removed
    fs.writeFileSync(path.join(dir, `cpu-${cpus[0]}-999999999`), '');
    const rx = start(['pkt-gen', '-i', 'valeplace0:b', '-f', 'rx', '-W', '--json', '-T', '0', '-v'], dir, 40_000);
    await rx.waitFor('"type":"start"');
    const files = reservationFiles(dir);
    assert.equal(files.length, 1, `one reservation (${files.join(' ')})`);
    const [, cpuText, pidText] = /^cpu-(\d+)-(\d+)$/.exec(files[0]!)!;
    const cpu = Number(cpuText);
    assert.equal(Number(pidText), rx.proc.pid);
    assert.equal(cpu, cpus[cpus.length - 1], 'the highest CPU this process may use');
    const rxThreads = threadCpus(rx.proc.pid!);
    const pinned = rxThreads.filter((t) => t.cpus.length === 1 && t.cpus[0] === cpu);
    assert.equal(pinned.length, 1, `one thread on CPU ${cpu} alone (${JSON.stringify(rxThreads)})`);
    for (const t of rxThreads) if (t !== pinned[0]) assert.ok(!t.cpus.includes(cpu), `receiver thread ${t.tid} may run on the reserved CPU ${cpu}: ${t.cpus}`);
    assert.deepEqual([...reservedCpus(dir)], [cpu]);
    // the receiver warmed its path on a private switch (job.ts): nothing of it is left
    const listing = await run(['vale-ctl'], dir);
    assert.equal(listing.code, 0, listing.stderr);
    assert.deepEqual(listing.stdout.trim().split('\n').map((l) => l.split(' ')[0]), ['valeplace0:b'], `only the receiver's port is listed:\n${listing.stdout}`);

    const tx = start(['pkt-gen', '-i', 'valeplace0:a', '-f', 'tx', '-R', '100k', '-n', '150k', '--json', '-T', '0', '-v'], dir, 30_000);
    await tx.waitFor('"type":"start"');
    for (const t of threadCpus(tx.proc.pid!)) assert.ok(!t.cpus.includes(cpu), `sender thread ${t.tid} may run on the reserved CPU ${cpu}: ${t.cpus}`);
    const txDone = await tx.done;
    assert.equal(txDone.code, 0, txDone.stderr);
    assert.match(txDone.stderr, new RegExp(`Placement: threads kept off CPU ${cpu} \\(reserved by receivers\\)`));
    const rxDone = await rx.done;
    assert.equal(rxDone.code, 0, rxDone.stderr);
    assert.match(rxDone.stderr, new RegExp(`Placement: CPU ${cpu} reserved for the packet thread`));
    assert.equal(jsonOf(rxDone.stdout).packets, 150_000);
    assert.deepEqual(reservationFiles(dir), [], 'the receiver removed its reservation (and the dead one\'s is gone)');

    // --no-reserve: nothing reserved, nothing moved
    const plain = start(['pkt-gen', '-i', 'valeplace1:b', '-f', 'rx', '-n', '1', '--json', '-T', '0', '--no-reserve'], dir, 20_000);
    await plain.waitFor('"type":"start"');
    assert.deepEqual(reservationFiles(dir), []);
    for (const t of threadCpus(plain.proc.pid!)) assert.deepEqual(t.cpus, cpus);
    plain.proc.kill('SIGINT');
    await plain.done;
  } finally {
    removeDir(dir);
  }
});

/*
 * Measured on 2 vCPUs (2026-12-03, quiet): nothing lost (3 M frames at 2 and 2.35 Mpps, five
 * runs); before the receiver spun on its reserved CPU 0.08-0.24%; with --no-reserve on both sides
 * 1.1-4.2%, V8's helper threads of both processes taking the receiver's CPU for 1-7 ms. The
 * busy-machine tolerance: a run without loss passes; if none of 3 has one, the best run may lose
 * what arrived while the receiver waited for a CPU beyond its ring's depth (the waits it reports:
 * each wait w took (w - ring) x rate frames) and 0.5% more, accepted as the machine's, with a
 * diagnostic. On 2026-12-04's VM every attempt of some runs had one wait of 3.8-4.4 ms (one
 * 250 Hz tick; perf sched: kdamond, the sandbox's own agent and RCU on the reserved CPU, none of
 * ours), which costs 6.6-7.8 k frames at 2 Mpps beyond the ring's 0.5 ms.
 */
const BUSY_TOLERANCE = 0.005;
/** The receiving VALE port's ring (slots: VALE_DEFAULT_SLOTS) and the sender's rate (frames/ms) of the test below. */
const RX_RING_SLOTS = 1024, RATE_PER_MS = 2000;

test('netmap dump reserves a CPU for its capture loop (the main thread) and keeps its other threads off it', { skip, timeout: 30_000 }, async () => {
  const dir = freshDir('place-dump');
  try {
    const d = start(['dump', '-i', 'valeplacedump:b', '-w', '/dev/null', '-v'], dir, 20_000);
    // The reservation file appears before the threads are moved and the main thread pinned
    // (the file claims the CPU first); the listening line comes after both.
    await d.waitFor('listening on', 'stderr');
    const files = reservationFiles(dir);
    assert.equal(files.length, 1, `one reservation (${files.join(' ')})`);
    const cpu = Number(/^cpu-(\d+)-(\d+)$/.exec(files[0]!)![1]);
    for (const t of threadCpus(d.proc.pid!)) {
      if (t.tid === d.proc.pid) assert.deepEqual(t.cpus, [cpu], 'the main thread runs the capture loop on the reserved CPU');
      else assert.ok(!t.cpus.includes(cpu), `thread ${t.tid} may run on the reserved CPU ${cpu}: ${t.cpus}`);
    }
    d.proc.kill('SIGINT');
    const r = await d.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`placement: CPU ${cpu} reserved`));
    assert.deepEqual(reservationFiles(dir), [], 'released at the end');
  } finally {
    removeDir(dir);
  }
});

test('an ordinary receiver follows a paced sender: -R 2M, 1 M frames, nothing lost (busy machine: what came while it waited for a CPU, and 0.5%)', { skip, timeout: 90_000 }, async (t) => {
  const dir = freshDir('place-loss');
  const n = 1_000_000;
  const losses: string[] = [];
  let best = Infinity; // the least loss beyond what the receiver's CPU waits explain
  try {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const sw = `valeplloss${attempt}`;
      const rx = start(['pkt-gen', '-i', `${sw}:b`, '-f', 'rx', '-n', String(n), '-W', '--json', '-T', '0'], dir, 60_000);
      await rx.waitFor('"type":"start"');
      const tx = await run(['pkt-gen', '-i', `${sw}:a`, '-f', 'tx', '-R', '2M', '-b', '64', '-n', String(n), '--json', '-T', '0'], dir, 60_000);
      assert.equal(tx.code, 0, tx.stderr);
      const r = await rx.done;
      assert.equal(r.code, 0, r.stderr);
      const lost = n - (jsonOf(r.stdout).packets as number);
      const waits = (jsonOf(r.stdout).cpu_waits_ms as unknown as number[] | undefined) ?? [];
      const ringMs = RX_RING_SLOTS / RATE_PER_MS;
      const explained = Math.round(waits.reduce((sum, w) => sum + Math.max(0, w - ringMs), 0) * RATE_PER_MS);
      losses.push(`${lost} (waits for a CPU: ${JSON.stringify(waits)} ms, explaining ${explained})`);
      best = Math.min(best, lost - explained);
      if (lost === 0) { t.diagnostic(`attempt ${attempt}: nothing lost (before: ${losses.join('; ')})`); return; }
    }
    assert.ok(best <= n * BUSY_TOLERANCE, `more than 0.5% lost beyond the CPU waits in every attempt: ${losses.join('; ')}`);
    t.diagnostic(`frames lost in every attempt, accepted as a busy machine's: ${losses.join('; ')}`);
  } finally {
    removeDir(dir);
  }
});
