/**
 * Dummynet's data path on a virtual clock: the arithmetic of ref §3.4 (latency, rate, queue cap,
 * plr, dynamic pipes, weights, priority, burst, rr/qfq shares, fq_codel) and its bounds (pool,
 * instance table, garbage collection, reconfiguration).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dummynet, DROP } from '../../src/firewall/dummynet/index.js';
import { cbr, rateOf, simulate, v4key, type Arrival } from '../helpers/dummynet-sim.js';
import { rng } from '../helpers/prng.js';

const A = 0xc6120001, B = 0xc6120101, C = 0xc6120002;
const MS = 1e6, S = 1e9;

function dn(cmds: string[], opts = {}): Dummynet {
  const d = new Dummynet(opts);
  for (const c of cmds) {
    const r = d.command(c.split(' '));
    assert.equal(r.status, 0, `${c}: ${r.stderr}`);
  }
  return d;
}

test('a lone packet leaves after D + 8L/B (10 Mbit/s, 20 ms, 98-byte frame)', () => {
  const d = dn(['pipe 1 config bw 10Mbit/s delay 20']);
  const t0 = 1.234567 * S;
  const res = simulate(d, [{ t: t0, kind: 'pipe', n: 1, len: 98, key: v4key(1, A, 0, B, 0), tag: 7 }], 10 * S);
  assert.equal(res.outputs.length, 1);
  assert.equal(res.outputs[0]!.rule, 7);
  const latency = res.outputs[0]!.t - t0;
  assert.ok(Math.abs(latency - (20 * MS + 98 * 8 * 1e9 / 10e6)) <= 1, `latency ${latency} ns`);
});

test('unlimited bw and no delay: the packet is due at once', () => {
  const d = dn(['pipe 3 config']);
  const res = simulate(d, [{ t: 5, kind: 'pipe', n: 3, len: 60, key: v4key(17, A, 1, B, 2), tag: 1 }], S);
  assert.deepEqual(res.outputs.map((o) => o.t), [5]);
});

test('long-run rate equals bw in counted bytes; 50 Mbit/s into 10 loses ~80% and caps queueing delay at qsize*L*8/B', () => {
  const d = dn(['pipe 1 config bw 10Mbit/s']);
  const len = 1514;
  const res = simulate(d, cbr('pipe', 1, 50e6, len, 0, 3 * S, v4key(17, A, 5000, B, 5001), 1), 4 * S);
  const rate = rateOf(res, 1, 0.5 * S, 2.5 * S);
  assert.ok(Math.abs(rate - 10e6) / 10e6 < 0.005, `rate ${rate}`);
  const loss = res.refused.size / res.arrivals.length;
  assert.ok(Math.abs(loss - 0.8) < 0.02, `loss ${loss}`);
  for (const code of res.refused.values()) assert.equal(code, DROP.QUEUE_FULL);
  let maxDelay = 0;
  for (const o of res.outputs) maxDelay = Math.max(maxDelay, o.t - res.enqueueTime[o.handle]!);
  const cap = 50 * len * 8 / 10e6 * S;
  assert.ok(Math.abs(maxDelay - cap) / cap < 0.1, `max queueing delay ${maxDelay / MS} ms vs ${cap / MS}`);
  const show = d.command(['pipe', 'show']).stdout.trim().split('\n').pop()!.trim().split(/\s+/);
  // awk '{print $5,$6,$9}': total packets, bytes, drops equal the offered load.
  assert.equal(Number(show[4]), res.arrivals.length);
  assert.equal(Number(show[5]), res.arrivals.length * len);
  assert.equal(Number(show[8]), res.refused.size);
});

test('plr 0.1 over 10,000 frames is within 3 sigma', () => {
  const d = dn(['pipe 1 config plr 0.1'], { seed: 99 });
  const res = simulate(d, cbr('pipe', 1, 1e6, 100, 0, 10000 * 800 * 1000, v4key(1, A, 0, B, 0), 1), 100 * S);
  assert.equal(res.arrivals.length, 10000);
  const lost = [...res.refused.values()].filter((c) => c === DROP.PLR).length;
  const sigma = Math.sqrt(10000 * 0.1 * 0.9);
  console.log(`plr 0.1: ${lost} of 10000 lost (3 sigma = ${(3 * sigma).toFixed(0)})`);
  assert.ok(Math.abs(lost - 1000) <= 3 * sigma, `lost ${lost}`);
  assert.equal(res.outputs.length, 10000 - lost);
});

test('mask src-ip gives every sender the full bw; without it they share', () => {
  for (const masked of [true, false]) {
    const d = dn([`pipe 1 config bw 1Mbit/s${masked ? ' mask src-ip 0xffffffff' : ''}`]);
    const jitter = rng(5);
    const arr = [...cbr('pipe', 1, 2e6, 1000, 0, 4 * S, v4key(17, A, 1, B, 2), 1, jitter), ...cbr('pipe', 1, 2e6, 1000, 0.3 * 1e6, 4 * S, v4key(17, C, 1, B, 2), 2, jitter)];
    const res = simulate(d, arr, 5 * S);
    const r1 = rateOf(res, 1, 1 * S, 4 * S), r2 = rateOf(res, 2, 1 * S, 4 * S);
    const want = masked ? 1e6 : 0.5e6;
    // A shared tail-drop FIFO splits only statistically: 10% per flow, and the sum is exact.
    const tol = masked ? 0.05 : 0.1;
    assert.ok(Math.abs(r1 - want) / want < tol && Math.abs(r2 - want) / want < tol, `masked=${masked}: ${r1} ${r2}`);
    if (!masked) assert.ok(Math.abs(r1 + r2 - 1e6) / 1e6 < 0.01);
    if (masked) assert.match(d.command(['pipe', 'show']).stdout, /flags 0x1 64 buckets 2 active/);
  }
});

function shares(sched: string, w1: number, w2: number, extra = ''): [number, number] {
  const d = dn(['pipe 1 config bw 4Mbit/s', ...(sched ? [`sched 1 config type ${sched}`] : []), `queue 1 config pipe 1 weight ${w1}${extra}`, `queue 2 config pipe 1 weight ${w2}${extra}`]);
  const arr = [...cbr('queue', 1, 4e6, 1500, 0, 5 * S, v4key(6, A, 1, B, 2), 1), ...cbr('queue', 2, 4e6, 1000, 0.1 * 1e6, 5 * S, v4key(6, C, 1, B, 2), 2)];
  const res = simulate(d, arr, 6 * S);
  return [rateOf(res, 1, 1 * S, 5 * S), rateOf(res, 2, 1 * S, 5 * S)];
}

test('wf2q+ (default for queues): weights 1 and 3 share 1:3 within 10%', () => {
  const [r1, r2] = shares('', 1, 3);
  console.log(`wf2q+ 1:3 -> ${(r1 / 1e6).toFixed(3)} / ${(r2 / 1e6).toFixed(3)} Mbit/s`);
  assert.ok(Math.abs(r2 / r1 - 3) / 3 < 0.1, `${r1} ${r2}`);
  assert.ok(Math.abs(r1 + r2 - 4e6) / 4e6 < 0.01);
});

test('rr: quantum = weight x 1500 bytes, weights 1 and 2 share 1:2 within 10%', () => {
  const [r1, r2] = shares('rr', 1, 2);
  console.log(`rr 1:2 -> ${(r1 / 1e6).toFixed(3)} / ${(r2 / 1e6).toFixed(3)} Mbit/s`);
  assert.ok(Math.abs(r2 / r1 - 2) / 2 < 0.1, `${r1} ${r2}`);
});

test('qfq: weights 1 and 3 share 1:3 within 10%', () => {
  const [r1, r2] = shares('qfq', 1, 3);
  console.log(`qfq 1:3 -> ${(r1 / 1e6).toFixed(3)} / ${(r2 / 1e6).toFixed(3)} Mbit/s`);
  assert.ok(Math.abs(r2 / r1 - 3) / 3 < 0.1, `${r1} ${r2}`);
});

test('prio is strict: the level-0 queue takes all it wants, level 5 gets the rest', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s', 'sched 1 config type prio', 'queue 1 config pipe 1 weight 0', 'queue 2 config pipe 1 weight 5']);
  const arr = [...cbr('queue', 2, 2e6, 1000, 0, 4 * S, v4key(6, C, 1, B, 2), 2), ...cbr('queue', 1, 0.6e6, 1000, 0.01 * 1e6, 4 * S, v4key(6, A, 1, B, 2), 1)];
  const res = simulate(d, arr, 5 * S);
  const r1 = rateOf(res, 1, 1 * S, 4 * S), r2 = rateOf(res, 2, 1 * S, 4 * S);
  assert.ok(Math.abs(r1 - 0.6e6) / 0.6e6 < 0.03, `high ${r1}`);
  assert.ok(Math.abs(r2 - 0.4e6) / 0.4e6 < 0.05, `low ${r2}`);
  // Saturating the high level starves the low one completely.
  const d2 = dn(['pipe 1 config bw 1Mbit/s', 'sched 1 config type prio', 'queue 1 config pipe 1 weight 0', 'queue 2 config pipe 1 weight 5']);
  const res2 = simulate(d2, [...cbr('queue', 2, 2e6, 1000, 0, 3 * S, v4key(6, C, 1, B, 2), 2), ...cbr('queue', 1, 2e6, 1000, 0.01 * 1e6, 3 * S, v4key(6, A, 1, B, 2), 1)], 3 * S);
  assert.equal(rateOf(res2, 2, 1 * S, 3 * S), 0);
});

test('burst: after a long idle the first burst bytes leave at once, then bw', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s burst 500K queue 1000KB']);
  const arr: Arrival[] = [];
  for (let i = 0; i < 1000; i++) arr.push({ t: 5 * S, kind: 'pipe', n: 1, len: 1000, key: v4key(17, A, 1, B, 2), tag: 1 });
  const res = simulate(d, arr, 20 * S);
  assert.equal(res.refused.size, 0);
  const immediate = res.outputs.filter((o) => o.t === 5 * S).length;
  assert.equal(immediate, 500 * 1024 / 1000 | 0, `immediate ${immediate}`);
  // After the burst, one 1000-byte frame per 8 ms.
  const later = res.outputs.filter((o) => o.t > 5 * S).map((o) => o.t);
  for (let i = 1; i < later.length; i++) assert.ok(Math.abs(later[i]! - later[i - 1]! - 8 * MS) < 1, `gap ${later[i]! - later[i - 1]!}`);
});

test('burst: a paced sender gets the burst through at its own speed, then bw (the credit survives gaps)', () => {
  // 20 Mbit/s of 1000-byte frames (one per 0.4 ms) into 1 Mbit/s with a 100K burst: between two
  // arrivals the link is idle with credit left; that credit must carry over, not be reset.
  const d = dn(['pipe 1 config bw 1Mbit/s burst 100K']);
  const res = simulate(d, cbr('pipe', 1, 20e6, 1000, 0, 0.5 * S, v4key(17, A, 1, B, 2), 1), 3 * S);
  const fast = res.outputs.filter((o) => o.rule >= 0 && o.t - res.enqueueTime[o.handle]! === 0).length;
  // credit spent after burst·8 / (8000 − 1e6·0.4 ms) frames: 819200 / 7600 = 107.8
  assert.ok(fast >= 107 && fast <= 108, `frames through at arrival speed: ${fast}`);
  const late = res.outputs.filter((o) => o.rule >= 0 && o.t > 0.2 * S).map((o) => o.t);
  for (let i = 1; i < late.length; i++) assert.ok(Math.abs(late[i]! - late[i - 1]! - 8 * MS) < 1, `gap ${late[i]! - late[i - 1]!}`);
});

test('fq_codel keeps a standing queue short by dropping', () => {
  const d = dn(['pipe 1 config bw 10Mbit/s', 'sched 1 config type fq_codel', 'queue 1 config sched 1']);
  // 10% overload from one unresponsive flow: without AQM the queue would grow by 1 Mbit/s (400 ms after 4 s).
  const res = simulate(d, cbr('queue', 1, 11e6, 1500, 0, 4 * S, v4key(17, A, 1, B, 2), 1), 5 * S);
  const dropped = res.outputs.filter((o) => o.rule === -1).length;
  let maxLate = 0;
  for (const o of res.outputs) if (o.rule >= 0 && o.t > 3 * S && o.t < 4 * S) maxLate = Math.max(maxLate, o.t - res.enqueueTime[o.handle]!);
  console.log(`fq_codel: ${dropped} CoDel drops, sojourn in the 4th second <= ${(maxLate / MS).toFixed(1)} ms`);
  assert.ok(dropped > 50, `dropped ${dropped}`);
  assert.ok(maxLate < 100 * MS, `standing queue ${maxLate / MS} ms`);
  assert.ok(Math.abs(rateOf(res, 1, 1 * S, 4 * S) - 10e6) / 10e6 < 0.02);
  assert.match(d.command(['sched', 'show']).stdout, /type FQ_CODEL/);
});

test('memory is bounded: a full packet pool refuses and counts', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s queue 100', 'pipe 2 config bw 1Mbit/s queue 100'], { maxPackets: 150 });
  const key = v4key(17, A, 1, B, 2);
  let pool = 0;
  for (let i = 0; i < 300; i++) if (d.enqueue(i % 2 ? 'pipe' : 'pipe', 1 + (i % 2), i, 1000, key, 0, 0) === DROP.POOL_FULL) pool++;
  assert.equal(d.counters().waiting, 150);
  assert.equal(pool, 150);
  assert.equal(d.counters().drops['pool-full'], 150);
});

test('dynamic instances: table full is counted; idle ones are collected', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s mask src-ip 0xffffffff'], { maxInstances: 10, gcIntervalNs: S });
  let full = 0;
  for (let i = 0; i < 20; i++) if (d.enqueue('pipe', 1, i, 100, v4key(17, A + i, 1, B, 2), 0, 0) === DROP.TABLE_FULL) full++;
  assert.equal(full, 10);
  assert.equal(d.counters().instances, 10);
  const H = new Int32Array(64), R = new Int32Array(64);
  assert.equal(d.dequeueDue(10 * MS, H, R), 10);
  d.dequeueDue(3 * S, H, R);
  assert.equal(d.counters().instances, 0);
  assert.match(d.command(['pipe', 'show']).stdout, /0 active/);
});

test('unknown pipe is refused and counted; reconfiguring hands waiting packets back as drops; flushAll releases all', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s delay 100']);
  const key = v4key(17, A, 1, B, 2);
  assert.equal(d.enqueue('pipe', 9, 1, 100, key, 0, 0), DROP.NO_SUCH_FLOWSET);
  assert.equal(d.enqueue('queue', 9, 1, 100, key, 0, 0), DROP.NO_SUCH_FLOWSET);
  for (let i = 0; i < 5; i++) assert.equal(d.enqueue('pipe', 1, 100 + i, 1000, key, 3, 0), 0);
  d.command(['pipe', '1', 'config', 'bw', '2Mbit/s']);
  assert.equal(d.nextEventNs(), 0);
  const H = new Int32Array(16), R = new Int32Array(16);
  const n = d.dequeueDue(1, H, R);
  assert.deepEqual([...H.slice(0, n)].sort(), [100, 101, 102, 103, 104]);
  assert.ok([...R.slice(0, n)].every((r) => r === -1));
  for (let i = 0; i < 7; i++) d.enqueue('pipe', 1, 200 + i, 1000, key, 3, 10);
  const released: number[] = [];
  d.flushAll((h) => released.push(h));
  assert.equal(released.length, 7);
  assert.equal(d.counters().waiting, 0);
  assert.equal(d.nextEventNs(), Infinity);
});

test('a queue whose pipe is deleted refuses packets; re-creating the pipe re-attaches it', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s', 'queue 4 config pipe 1 weight 10']);
  const key = v4key(17, A, 1, B, 2);
  assert.equal(d.command(['pipe', '1', 'delete']).status, 0);
  assert.equal(d.enqueue('queue', 4, 1, 100, key, 0, 0), DROP.NO_SCHEDULER);
  d.command(['pipe', '1', 'config', 'bw', '1Mbit/s']);
  assert.equal(d.enqueue('queue', 4, 1, 100, key, 0, 0), 0);
});

test('RED drops early and keeps the average queue below max_th; with ecn and a marker it marks instead', () => {
  const offered = (d: Dummynet) => simulate(d, cbr('pipe', 1, 1.5e6, 1000, 0, 6 * S, v4key(17, A, 1, B, 2), 1, rng(3)), 7 * S);
  const red = offered(dn(['pipe 1 config bw 1Mbit/s queue 50 red 0.02/5/15/0.1']));
  const redDrops = [...red.refused.values()].filter((c) => c === DROP.RED).length;
  let maxDelay = 0;
  for (const o of red.outputs) maxDelay = Math.max(maxDelay, o.t - red.enqueueTime[o.handle]!);
  const tail = offered(dn(['pipe 1 config bw 1Mbit/s queue 50']));
  let tailDelay = 0;
  for (const o of tail.outputs) tailDelay = Math.max(tailDelay, o.t - tail.enqueueTime[o.handle]!);
  console.log(`RED: ${redDrops} early drops, max delay ${(maxDelay / MS).toFixed(0)} ms (droptail ${(tailDelay / MS).toFixed(0)} ms)`);
  assert.ok(redDrops > 100, `RED drops ${redDrops}`);
  assert.ok(maxDelay < 0.6 * tailDelay, 'RED keeps the queue shorter than droptail');
  assert.ok(Math.abs(rateOf(red, 1, 1 * S, 6 * S) - 1e6) / 1e6 < 0.03, 'RED still fills the link');
  const ecn = dn(['pipe 1 config bw 1Mbit/s queue 50 red 0.02/5/15/0.1 ecn']);
  let marked = 0;
  ecn.setEcnMarker(() => { marked++; return true; });
  const e = offered(ecn);
  assert.equal([...e.refused.values()].filter((c) => c === DROP.RED).length, 0);
  assert.ok(marked > 100, `marked ${marked}`);
  assert.match(ecn.command(['pipe', 'show']).stdout, /\n\t  RED w_q 0\.019989 min_th 5 max_th 15 max_p 0\.099991 \(ecn\)\n/);
});

test('profile: extra airtime slows the link, packets past loss-level are lost after using it', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'dn-prof-'));
  try {
    writeFileSync(join(dir, 'p'), 'name half\nsamples 100\nloss-level 0.5\ndelay prob\n5 0\n5 1\n');
    const d = dn([`pipe 1 config bw 1Mbit/s profile ${join(dir, 'p')}`], { seed: 4 });
    const arr: Arrival[] = [];
    for (let i = 0; i < 40; i++) arr.push({ t: 0, kind: 'pipe', n: 1, len: 1000, key: v4key(17, A, 1, B, 2), tag: 1 });
    const res = simulate(d, arr, 10 * S);
    assert.equal(res.outputs.length, 40);
    // 8 ms of transmission + 5 ms of extra airtime per packet.
    const times = res.outputs.map((o) => o.t);
    for (let i = 1; i < times.length; i++) assert.ok(Math.abs(times[i]! - times[i - 1]! - 13 * MS) < 1, `spacing ${times[i]! - times[i - 1]!}`);
    const lost = res.outputs.filter((o) => o.rule === -1).length;
    assert.ok(lost >= 10 && lost <= 30, `lost ${lost} of 40 at loss-level 0.5`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('io_fast: an idle pipe gives a lone packet one tick of credit, so it leaves without waiting for its transmission', () => {
  const d = dn(['pipe 1 config bw 10Mbit/s delay 5']);
  d.settings.ioFast = true;
  const res = simulate(d, [{ t: 1000, kind: 'pipe', n: 1, len: 1000, key: v4key(17, A, 1, B, 2), tag: 1 }], S);
  assert.equal(res.outputs[0]!.t, 1000 + 5 * MS);
});

test('conservation under random traffic and reconfiguration: every accepted handle comes back exactly once', () => {
  const r = rng(77);
  const d = new Dummynet({ maxPackets: 300, maxInstances: 40, maxQueues: 60, gcIntervalNs: 50 * MS, seed: 9 });
  const configs = [
    'pipe 1 config bw 2Mbit/s delay 3 queue 20 plr 0.05', 'pipe 2 config bw 1Mbit/s mask src-ip 0xffffffff queue 5',
    'pipe 3 config bw 5Mbit/s', 'sched 3 config type rr', 'queue 10 config pipe 3 weight 2 mask dst-port 0xffff',
    'queue 11 config pipe 3 weight 1 red 0.02/3/9/0.2', 'sched 3 config type qfq', 'sched 3 config type prio',
    'sched 3 config type fq_codel limit 30', 'sched 3 config type wf2q+', 'pipe 1 config bw 500Kbit/s burst 10K',
    'pipe 2 delete', 'pipe 2 config bw 3Mbit/s mask dst-ip 0xffffffff profile-less', 'pipe 3 delete', 'pipe 3 config bw 4Mbit/s',
  ];
  const outstanding = new Set<number>();
  const H = new Int32Array(16), R = new Int32Array(16);
  let now = 0, handle = 0, returned = 0;
  for (let step = 0; step < 30000; step++) {
    now += r() * 200_000;
    const x = r();
    if (x < 0.002) d.command(configs[Math.floor(r() * configs.length)]!.split(' '));
    else if (x < 0.6) {
      const kind = r() < 0.6 ? 'pipe' : 'queue';
      const n = kind === 'pipe' ? 1 + Math.floor(r() * 4) : 10 + Math.floor(r() * 3);
      const key = v4key(r() < 0.5 ? 6 : 17, A + Math.floor(r() * 50), 1, B + Math.floor(r() * 3), 1000 + Math.floor(r() * 20));
      const h = handle++;
      if (d.enqueue(kind, n, h, 60 + Math.floor(r() * 1440), key, 5, now) === 0) outstanding.add(h);
    } else {
      const n = d.dequeueDue(now, H, R);
      for (let i = 0; i < n; i++) {
        assert.ok(outstanding.delete(H[i]!), `handle ${H[i]} returned twice or never accepted`);
        returned++;
      }
    }
    assert.ok(d.counters().waiting <= 300);
  }
  // Drain: everything left comes out by time, then a flush releases nothing more.
  for (let guard = 0; guard < 100000 && d.nextEventNs() !== Infinity; guard++) {
    const t = Math.max(now, d.nextEventNs());
    now = t;
    const n = d.dequeueDue(now, H, R);
    for (let i = 0; i < n; i++) assert.ok(outstanding.delete(H[i]!));
  }
  const released: number[] = [];
  d.flushAll((h) => released.push(h));
  for (const h of released) assert.ok(outstanding.delete(h));
  assert.equal(outstanding.size, 0, `${outstanding.size} handles lost`);
  assert.equal(d.counters().waiting, 0);
  assert.ok(returned > 1000);
});

test('a full queue table collects idle queues without freeing the instance being served', () => {
  const d = dn(['pipe 1 config bw 1Mbit/s', 'sched 1 config mask src-ip 0xffffffff', 'queue 1 config pipe 1 mask dst-port 0xffff'], { maxQueues: 4, gcIntervalNs: 1e12 });
  const H = new Int32Array(64), R = new Int32Array(64);
  let now = 0;
  for (let i = 0; i < 200; i++) {
    now += 50 * MS;
    // A new source address and port each time: every packet needs a new instance and queue.
    const r = d.enqueue('queue', 1, i, 100, v4key(17, A + (i % 7), 1, B, 1000 + i), 0, now);
    assert.equal(r, 0, `packet ${i}: ${r}`);
    d.dequeueDue(now + 10 * MS, H, R);
  }
  assert.ok(d.counters().queues <= 4);
});
