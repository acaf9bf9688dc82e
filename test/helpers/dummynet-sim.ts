/**
 * A virtual-clock driver for dummynet tests: arrivals at given times, dequeueDue called exactly at
 * every nextEventNs(), outputs recorded with the time they left. No real time passes.
 */
import { type Dummynet, FlowKey } from '../../src/firewall/dummynet/index.js';

export interface Arrival { t: number; kind: 'pipe' | 'queue'; n: number; len: number; key: FlowKey; tag: number }
export interface Output { handle: number; t: number; rule: number }
export interface SimResult { outputs: Output[]; refused: Map<number, number>; arrivals: Arrival[]; enqueueTime: Float64Array }

/** A constant-rate source: `bps` of `len`-byte frames from tStart for `durationNs`. */
export function cbr(kind: 'pipe' | 'queue', n: number, bps: number, len: number, tStart: number, durationNs: number, key: FlowKey, tag: number, jitter?: () => number): Arrival[] {
  const gap = len * 8 * 1e9 / bps;
  const out: Arrival[] = [];
  // jitter (uniform in [0,1) from a seeded PRNG) moves each departure by up to one gap: strictly
  // periodic sources phase-lock on a shared tail-drop queue, which real traffic does not.
  for (let t = tStart; t < tStart + durationNs; t += gap) out.push({ t: jitter ? t + jitter() * gap : t, kind, n, len, key, tag });
  return out;
}

export function v4key(proto: number, src: number, sport: number, dst: number, dport: number): FlowKey {
  return new FlowKey().setV4(proto, src, sport, dst, dport);
}

/** Runs arrivals (any order) through d until endNs; the handle of arrival i is i. */
export function simulate(d: Dummynet, arrivalsIn: Arrival[], endNs: number): SimResult {
  const arrivals = [...arrivalsIn].sort((a, b) => a.t - b.t);
  const outputs: Output[] = [];
  const refused = new Map<number, number>();
  const enqueueTime = new Float64Array(arrivals.length);
  const H = new Int32Array(256), R = new Int32Array(256);
  let i = 0;
  let now = 0;
  for (let guard = 0; guard < 50_000_000; guard++) {
    const nextArr = i < arrivals.length ? arrivals[i]!.t : Infinity;
    const nextEv = d.nextEventNs();
    const t = Math.max(now, Math.min(nextArr, nextEv));
    if (t > endNs || t === Infinity) break;
    now = t;
    if (nextEv <= nextArr) {
      const n = d.dequeueDue(now, H, R);
      for (let k = 0; k < n; k++) outputs.push({ handle: H[k]!, t: now, rule: R[k]! });
      if (n === 0 && d.nextEventNs() <= now) throw new Error('dummynet reports an event due but delivers nothing');
    } else {
      const a = arrivals[i]!;
      enqueueTime[i] = now;
      const r = d.enqueue(a.kind, a.n, i, a.len, a.key, a.tag, now);
      if (r !== 0) refused.set(i, r);
      i++;
    }
  }
  return { outputs, refused, arrivals, enqueueTime };
}

/** Bits per second delivered for arrivals with `tag`, counting outputs in [t0, t1). */
export function rateOf(res: SimResult, tag: number, t0: number, t1: number): number {
  let bytes = 0;
  for (const o of res.outputs) {
    if (o.rule < 0 || o.t < t0 || o.t >= t1) continue;
    const a = res.arrivals[o.handle]!;
    if (a.tag === tag) bytes += a.len;
  }
  return bytes * 8 * 1e9 / (t1 - t0);
}
