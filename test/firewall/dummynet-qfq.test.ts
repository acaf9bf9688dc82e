/**
 * QFQ (qfq.ts) on a virtual clock: its group index, and its service against WF2Q+'s and the fluid
 * ideal. QFQ's guarantee (Checconi, Rizzo, Valente): a continuously backlogged flow k of weight
 * share φk = wk/Σw and largest packet σk receives, over any interval, at least φk·W − (3σk + 2φk·L)
 * bytes when the link sends W (L = the largest packet of all flows). The tests feed the same
 * backlogged flows (packet sizes from one seeded stream per flow) to QFQ and WF2Q+ and check the
 * bound on every prefix of the output: QFQ against the fluid share, and QFQ against WF2Q+.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dummynet, FlowKey, DROP } from '../../src/firewall/dummynet/index.js';
import { qfqIndex, QFQ_ONE_FP, QFQ_MAX_INDEX } from '../../src/firewall/dummynet/qfq.js';
import { rng } from '../helpers/prng.js';

test('qfq group index: ⌈log2(lmax/weight)⌉ on QFQ\'s fixed point, 0 for the smallest slots, at most 19', () => {
  const idx = (w: number, lmax: number): number => qfqIndex(Math.floor(QFQ_ONE_FP / w), lmax);
  assert.equal(idx(1, 1500), 19);              // 1500·2^30 > 2^40: the largest group
  assert.equal(idx(1, 2000), QFQ_MAX_INDEX);
  assert.equal(idx(65536, 1), 0);
  assert.equal(idx(1024, 4096), 10);           // slot size exactly 2^32 = 2^(10+22): group 10
  assert.equal(idx(1024, 4097), 11);
  assert.equal(idx(65536, 256), 0);            // 2^22: the smallest slot
  assert.equal(idx(2, 1024), 17);              // 2^39 = 2^(17+22)
  assert.equal(idx(3, 1024), 17);
});

interface Flow { weight: number; lmax: number }

/** Serves `total` packets of always-backlogged flows through `type`; the output order as [flow, len]. */
function serve(type: 'qfq' | 'wf2q+', flows: Flow[], total: number, seed: number): Array<[number, number]> {
  const d = new Dummynet({ maxPackets: 4096 });
  const must = (cmd: string): void => { const r = d.command(cmd.split(' ')); assert.equal(r.status, 0, `${cmd}: ${r.stderr}`); };
  must('pipe 1 config bw 1Gbit/s');
  if (type === 'qfq') must('sched 1 config type qfq');
  flows.forEach((f, k) => must(`queue ${k + 1} config sched 1 weight ${f.weight}${type === 'qfq' ? ` lmax ${f.lmax}` : ''}`));
  const keys = flows.map((_, k) => new FlowKey().setV4(17, 0xc6120001, 1000 + k, 0xc6120002, 2000));
  const sizes = flows.map((f, k) => { const r = rng(seed + k); return (): number => 64 + Math.floor(r() * (f.lmax - 63)); });
  const lenOf: number[] = [], flowOf: number[] = [];
  const add = (k: number, now: number): void => {
    const h = lenOf.length;
    lenOf.push(sizes[k]!()); flowOf.push(k);
    assert.equal(d.enqueue('queue', k + 1, h, lenOf[h]!, keys[k]!, 0, now), 0, 'enqueued');
  };
  for (let k = 0; k < flows.length; k++) for (let i = 0; i < 20; i++) add(k, 0);
  const out: Array<[number, number]> = [];
  const H = new Int32Array(64), R = new Int32Array(64);
  while (out.length < total) {
    const t = d.nextEventNs();
    assert.ok(Number.isFinite(t), 'backlogged flows always have a next event');
    const n = d.dequeueDue(t, H, R);
    for (let i = 0; i < n; i++) {
      const h = H[i]!;
      out.push([flowOf[h]!, lenOf[h]!]);
      add(flowOf[h]!, t); // keep the flow backlogged
    }
  }
  return out;
}

/** Bytes served to each flow after each packet of `order`. */
function cumulative(order: Array<[number, number]>, flows: number): Float64Array[] {
  const served = new Float64Array(flows);
  return order.map(([k, len]) => { served[k] = served[k]! + len; return Float64Array.from(served); });
}

function check(flows: Flow[], total: number, seed: number, compareWf2q: boolean): void {
  const wsum = flows.reduce((a, f) => a + f.weight, 0);
  const L = Math.max(...flows.map((f) => f.lmax));
  const bound = flows.map((f) => 3 * f.lmax + 2 * (f.weight / wsum) * L);
  const qfq = serve('qfq', flows, total, seed);
  const q = cumulative(qfq, flows.length);
  const maxLag = new Float64Array(flows.length);
  let W = 0;
  for (let n = 0; n < qfq.length; n++) {
    W += qfq[n]![1];
    for (let k = 0; k < flows.length; k++) {
      const lag = (flows[k]!.weight / wsum) * W - q[n]![k]!;
      if (lag > maxLag[k]!) maxLag[k] = lag;
    }
  }
  console.log(`qfq lag behind the fluid share (bytes; bound 3σ+2φL): ${flows.map((f, k) => `w${f.weight}/σ${f.lmax}: ${maxLag[k]!.toFixed(0)} ≤ ${bound[k]!.toFixed(0)}`).join(', ')}`);
  for (let k = 0; k < flows.length; k++) assert.ok(maxLag[k]! <= bound[k]!, `flow ${k} (weight ${flows[k]!.weight}) lags ${maxLag[k]} > ${bound[k]}`);
  // every flow got its share over the run: within its bound of φ·W
  const end = q.at(-1)!;
  for (let k = 0; k < flows.length; k++) assert.ok(Math.abs(end[k]! - (flows[k]!.weight / wsum) * W) <= bound[k]! + L, `flow ${k} share over the run`);
  if (!compareWf2q) return;
  const wfOrder = serve('wf2q+', flows, total, seed);
  const wf = cumulative(wfOrder, flows.length);
  // the same bytes in the same order of flows' packets: compare each flow after the same total sent
  const maxDiff = new Float64Array(flows.length);
  let Wq = 0, Ww = 0, j = -1;
  for (let n = 0; n < qfq.length; n++) {
    Wq += qfq[n]![1];
    while (j + 1 < wfOrder.length && Ww + wfOrder[j + 1]![1] <= Wq) { j++; Ww += wfOrder[j]![1]; }
    if (j < 0) continue;
    for (let k = 0; k < flows.length; k++) {
      // WF2Q+ has sent Ww ≤ Wq bytes: credit each flow its share of the difference
      const diff = Math.abs(q[n]![k]! - (wf[j]![k]! + (flows[k]!.weight / wsum) * (Wq - Ww)));
      if (diff > maxDiff[k]!) maxDiff[k] = diff;
    }
  }
  console.log(`qfq vs wf2q+ (bytes, same total sent): ${flows.map((f, k) => `w${f.weight}: ${maxDiff[k]!.toFixed(0)} ≤ ${bound[k]!.toFixed(0)}`).join(', ')}`);
  for (let k = 0; k < flows.length; k++) assert.ok(maxDiff[k]! <= bound[k]!, `flow ${k}: QFQ and WF2Q+ differ by ${maxDiff[k]} > ${bound[k]}`);
}

test('qfq: six backlogged flows, weights 1..100 and packets 64..1500 bytes: within QFQ\'s bound of the fluid share and of WF2Q+', () => {
  check([
    { weight: 1, lmax: 1500 }, { weight: 3, lmax: 600 }, { weight: 7, lmax: 1500 },
    { weight: 20, lmax: 128 }, { weight: 50, lmax: 1000 }, { weight: 100, lmax: 300 },
  ], 20_000, 7, true);
});

test('qfq: weights up to 60000 (beyond WF2Q+\'s 100), classes in groups 0..19: within QFQ\'s bound of the fluid share', () => {
  check([
    { weight: 1, lmax: 2000 }, { weight: 10, lmax: 1500 }, { weight: 300, lmax: 64 },
    { weight: 5000, lmax: 1500 }, { weight: 60000, lmax: 1000 },
  ], 20_000, 21, false);
});

test('qfq: a long run with small weights moves its timestamps down (past 2^51) without a change in service', () => {
  // Σw = 4: V grows by ≈ len·2^28 per packet, so 30,000 packets pass 2^51 several times
  check([{ weight: 1, lmax: 2000 }, { weight: 2, lmax: 1500 }, { weight: 1, lmax: 64 }], 30_000, 5, true);
});

test('qfq: the weights of an instance\'s queues may not pass 131072 (dn_sched_qfq.c: EINVAL): the next queue is refused and counted', () => {
  const d = new Dummynet();
  for (const c of ['pipe 1 config bw 1Mbit/s', 'sched 1 config type qfq', 'queue 1 config sched 1 weight 65536', 'queue 2 config sched 1 weight 65536', 'queue 3 config sched 1 weight 1']) {
    assert.equal(d.command(c.split(' ')).status, 0, c);
  }
  const key = (p: number): FlowKey => new FlowKey().setV4(17, 1, p, 2, 3);
  // two packets each: the first leaves at once, the second keeps the queue (and its weight) alive
  for (const h of [1, 2]) assert.equal(d.enqueue('queue', 1, h, 100, key(1), 0, 0), 0);
  for (const h of [3, 4]) assert.equal(d.enqueue('queue', 2, h, 100, key(2), 0, 0), 0);
  assert.equal(d.enqueue('queue', 3, 5, 100, key(3), 0, 0), DROP.TABLE_FULL, 'a third class would pass the weight sum');
  // no queue 3 exists: the drop is counted on the scheduler instance (sched show's flow row)
  const row = d.command(['sched', '1', 'show']).stdout.trim().split('\n').at(-1)!.trim().split(/\s+/);
  assert.deepEqual([row[4], row[8]], ['5', '1'], `5 packets, 1 dropped: ${row.join(' ')}`);
});
