/**
 * pkt-gen -R: a rate a receiver can follow. The limiter's schedule (unit), and the end-to-end
 * figure of issue 18: 100k frames at 200 kpps between two persistent VALE ports, counted by the
 * switch (`vale-ctl -s`), must all arrive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { RateLimiter, SPIN_TAIL_MIN_PERIOD_MS, SPIN_TAIL_MS, WAKE_LATE_MS, clipBurst } from '../../src/generator/rate.js';
import { freshDir, jsonOf, removeDir, run, start } from './helpers.js';

const haveVale = fs.existsSync(new URL('../../src/switch/index.js', import.meta.url));

test('RateLimiter: batches go on schedule; after a stall at most the backlog goes at once (a test clock)', () => {
  const pps = 200_000, batch = 64, backlog = 512, perBatchMs = (batch * 1000) / pps;
  let t = 1000, waits = 0;
  const tails = new Set<number>();
  const clock = { now: () => t, sleepUntil: (until: number, spinTailMs: number) => { tails.add(spinTailMs); if (until > t) { waits++; t = until; } } };
  const lim = new RateLimiter(pps, backlog, clock);
  // on schedule: batch k goes at start + k * 0.32 ms, each after a wait of its own
  for (let k = 0; k < 40; k++) lim.take(batch);
  assert.equal(waits, 39);
  assert.ok(Math.abs(t - (1000 + 39 * perBatchMs)) < 1e-9, `40 batches ended at ${t}`);
  // a 30 ms stall puts the sender 6000 packets behind: what goes without a wait afterwards
  // is the backlog and the batch that was due anyway, then each batch waits for its time again
  t += 30;
  const before = waits;
  let released = 0;
  while (waits === before) { lim.take(batch); if (waits === before) released += batch; }
  assert.equal(released, backlog + batch, `after a 30 ms stall ${released} packets went at once`);
  assert.ok(Math.abs(lim.maxLateMs - (30 - perBatchMs)) < 1e-6, `the stall is reported (${lim.maxLateMs} ms late at worst)`);
  assert.equal(lim.slippedPackets, Math.round(((30 - perBatchMs) * pps) / 1000) - backlog);
  // and the rate holds from there: 100 more batches take 100 periods (each waits its own)
  const t0 = t;
  for (let k = 0; k < 100; k++) lim.take(batch);
  assert.ok(Math.abs(t - t0 - 100 * perBatchMs) < 1e-6, `100 batches after the catch-up took ${t - t0} ms`);
  assert.equal(clipBurst(64, pps), 64);
  // batches 0.32 ms apart are paced by sleeping alone: a spin would fill the whole gap
  assert.deepEqual([...tails], [0], 'no spin between batches 0.32 ms apart');
});

test('RateLimiter: only batches at least 1 ms apart spin the end of their wait (SPIN_TAIL_MS); above 3.4 Mpps every wait spins', () => {
  // and rates whose catch-up bound (512 packets) lasts less than a late wake-up spin out every wait
  for (const [pps, batch, tail] of [[64_000, 64, SPIN_TAIL_MS], [64_001, 64, 0], [1000, 1, SPIN_TAIL_MS], [3_400_000, 64, 0], [3_500_000, 64, Infinity], [10_000_000, 512, Infinity]] as const) {
    let t = 0;
    const tails = new Set<number>();
    const lim = new RateLimiter(pps, 512, { now: () => t, sleepUntil: (until: number, spinTailMs: number) => { tails.add(spinTailMs); t = Math.max(t, until); } });
    for (let k = 0; k < 4; k++) lim.take(batch);
    assert.deepEqual([...tails], [tail], `${pps} pps in batches of ${batch}: spin tail ${[...tails]}`);
  }
  assert.equal(SPIN_TAIL_MIN_PERIOD_MS, 1);
  assert.equal(WAKE_LATE_MS, 0.15);
});

test('RateLimiter on the real clock: 40 batches of 64 at 200 kpps take at least 12.48 ms', () => {
  const lim = new RateLimiter(200_000, 512);
  const t0 = performance.now();
  for (let k = 0; k < 40; k++) lim.take(64);
  const took = performance.now() - t0;
  assert.ok(took >= 12.47, `40 batches took ${took.toFixed(3)} ms`);
});

test('a paced sender leaves its CPU idle between close batches: -R 2M -b 64 for 1 s uses at most half a core', { skip: haveVale ? false : 'src/switch is not in this build', timeout: 30_000 }, async (t) => {
  // Spinning out every wait (before 2026-12-03) kept the sender on its CPU for the whole run
  // (1.27 s of CPU in 1.28 s at 2.35 Mpps), pushing V8's compiler threads onto the receiver's.
  const dir = freshDir('pace-cpu');
  try {
    const r = await run(['pkt-gen', '-i', 'valepacecpu:a', '-f', 'tx', '-R', '2M', '-b', '64', '-n', '2M', '--json', '-T', '0'], dir, 20_000);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r.stdout);
    const share = (s.cpu_ms as number) / ((s.seconds as number) * 1000);
    t.diagnostic(`${s.packets} packets in ${s.seconds} s at ${Math.round(s.pps as number)} pps, ${s.cpu_ms} ms of CPU (${(share * 100).toFixed(0)}% of a core)`);
    assert.equal(s.packets, 2_000_000);
    assert.ok((s.pps as number) > 1_900_000 && (s.pps as number) < 2_050_000, `paced at ${s.pps} pps`);
    assert.ok(share <= 0.5, `the sender was on its CPU ${(share * 100).toFixed(0)}% of the run`);
  } finally {
    removeDir(dir);
  }
});

/** Per-port counters of one switch, from `vale-ctl -s`. */
async function switchCounters(dir: string, sw: string): Promise<Map<string, Record<string, number>>> {
  const r = await run(['vale-ctl', '-s', sw], dir);
  assert.equal(r.code, 0, r.stderr);
  const out = new Map<string, Record<string, number>>();
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3) continue;
    const c: Record<string, number> = {};
    for (let i = 1; i + 1 < f.length; i += 2) c[f[i]!] = Number(f[i + 1]);
    out.set(f[0]!, c);
  }
  return out;
}

/*
 * The busy-machine tolerance. A switch drops what does not fit in the receiver's ring: 1024
 * slots hold 5.1 ms of traffic at 200 kpps, and a sender that fell behind may add half a ring at
 * once (its catch-up bound), so a receiver kept off the CPU for w ms can lose up to
 * rate * w - slots / 2 frames however well the sender paces. The receiver reports its longest
 * waits for a CPU (Linux's run delay, in windows of about 2 ms while traffic flows:
 * `cpu_waits_ms`, the 8 longest). A run without drops passes. Otherwise the run is repeated, up
 * to ATTEMPTS runs; drops within the sum of that bound over those waits are the machine's. Drops
 * beyond it in every run fail the test: the receiver was not kept away long enough to lose them,
 * so the sender sent too much at once (before issue 18 a late sender caught up its whole backlog
 * back to back: 8% of the frames were lost on a quiet machine, in every run). One such run is
 * tolerated, because on this kind of VM a thread can also be stopped for 2-7 ms without any run
 * delay being accounted (the vCPU itself stops when both are busy: src/generator/README.md).
 */
const ATTEMPTS = 3;

test('VALE persistent ports: 100k frames at 200 kpps all arrive (vale-ctl -s: 0 rx drops)', { skip: haveVale ? false : 'src/switch is not in this build', timeout: 60_000 }, async (t) => {
  const dir = freshDir('pace');
  const sw = 'valepace0';
  const rate = 200_000, n = 100_000;
  const { VALE_DEFAULT_SLOTS: slots } = await import('../../src/switch/control.js'); // the receive ring of pb
  try {
    for (const p of ['pa', 'pb']) {
      const c = await run(['vale-ctl', '-n', p], dir);
      assert.equal(c.code, 0, c.stderr);
      const a = await run(['vale-ctl', '-a', `${sw}:${p}`], dir);
      assert.equal(a.code, 0, a.stderr);
    }
    let unexplained = 0;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = (await switchCounters(dir, sw)).get(`${sw}:pb`)!;
      const rx = start(['pkt-gen', '-i', `${sw}:pb`, '-f', 'rx', '-n', String(n), '-W', '--json', '-T', '0'], dir, 30_000);
      await rx.waitFor('"type":"start"');
      const tx = await run(['pkt-gen', '-i', `${sw}:pa`, '-f', 'tx', '-R', '200k', '-b', '64', '-n', String(n), '--json', '-T', '0'], dir, 30_000);
      const r = await rx.done;
      assert.equal(tx.code, 0, tx.stderr);
      assert.equal(r.code, 0, r.stderr);
      const ts = jsonOf(tx.stdout), rs = jsonOf(r.stdout);
      const after = (await switchCounters(dir, sw)).get(`${sw}:pb`)!;
      const drops = after.rx_drops! - before.rx_drops!;
      const received = after.rx_packets! - before.rx_packets!;
      assert.equal(ts.packets, n);
      assert.equal(received + drops, n, `the switch accounts for every frame (${received} + ${drops})`);
      assert.equal(rs.packets, received, 'pkt-gen rx counted what the switch delivered');
      const waits = rs.cpu_waits_ms as unknown as number[];
      assert.ok(Array.isArray(waits), 'pkt-gen rx reports its longest waits for a CPU');
      const machines = Math.floor(waits.reduce((s, w) => s + Math.max(0, (rate * w) / 1000 - slots / 2), 0));
      const facts = `${drops} rx drops; receiver waited ${rs.cpu_wait_ms} ms for a CPU in all, longest [${waits.join(', ')}] ms (up to ${machines} drops from that); ` +
        `sender at worst ${ts.late_max_ms} ms behind schedule`;
      if (drops === 0) { t.diagnostic(`attempt ${attempt}: ${facts}`); return; }
      if (drops > machines) unexplained++;
      t.diagnostic(`attempt ${attempt}: ${drops > machines ? 'drops beyond the run delay (a stall of the VM itself?)' : 'busy machine'}: ${facts}`);
    }
    assert.ok(unexplained < ATTEMPTS, `in every one of ${ATTEMPTS} runs frames were lost beyond what the receiver's waits for a CPU explain`);
    t.diagnostic(`no run without drops in ${ATTEMPTS}, accepted as the machine's (${unexplained} beyond the run delay)`);
  } finally {
    removeDir(dir);
  }
});

const isRoot = process.getuid?.() === 0;

/** The scheduling policy (stat field 41) of each thread of `pid`. */
function threadPolicies(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
  });
}

test('pkt-gen --rt: the receiver\'s packet thread alone is SCHED_FIFO, and it follows 2 Mpps with at most 1% lost', { skip: !haveVale ? 'src/switch is not in this build' : !isRoot ? 'needs root (SCHED_FIFO)' : false, timeout: 90_000 }, async (t) => {
  const dir = freshDir('rt');
  const n = 1_000_000, rate = '2M';
  try {
    // Without --rt such a run loses 3-10% on 2 vCPUs (V8's compiler threads of both processes take
    // the receiver's CPU for 1-4 ms at a time in their first half second). With it, 0.01-0.02%.
    // Three attempts: the bound must hold in one of them.
    const losses: string[] = [];
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const sw = `valert${attempt}`;
      const rx = start(['pkt-gen', '-i', `${sw}:b`, '-f', 'rx', '--rt', '10', '-n', String(n), '-W', '--json', '-T', '0'], dir, 60_000);
      await rx.waitFor('"type":"start"');
      const policies = threadPolicies(rx.proc.pid!);
      assert.equal(policies.filter((p) => p === 1).length, 1, `one SCHED_FIFO thread (policies ${policies.join(' ')})`);
      assert.match(fs.readFileSync(`/proc/${rx.proc.pid!}/cmdline`, 'utf8'), /--single-threaded-gc/, 'node re-executed with --single-threaded-gc');
      const tx = await run(['pkt-gen', '-i', `${sw}:a`, '-f', 'tx', '-R', rate, '-b', '64', '-n', String(n), '--json', '-T', '0'], dir, 60_000);
      assert.equal(tx.code, 0, tx.stderr);
      // -W ends the receiver 1 s after the last frame if not all arrive
      const r = await rx.done;
      assert.equal(r.code, 0, r.stderr);
      const lost = n - (jsonOf(r.stdout).packets as number);
      losses.push(String(lost));
      if (lost <= n / 100) { t.diagnostic(`attempt ${attempt}: ${lost} of ${n} lost at ${rate}pps`); return; }
    }
    assert.fail(`more than 1% lost in every attempt: ${losses.join(', ')} of ${n}`);
  } finally {
    removeDir(dir);
  }
});

test('pkt-gen --rt with -R on a sender is refused (EINVAL): it would take the receiver\'s CPU', async () => {
  const dir = freshDir('rt-tx');
  try {
    const r = await run(['pkt-gen', '-i', 'valertx:a', '-f', 'tx', '-R', '1M', '--rt', '10', '-n', '10'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--rt with -R: .*takes the receiver's CPU .*give --rt to the receiver \(EINVAL\)/);
  } finally {
    removeDir(dir);
  }
});
