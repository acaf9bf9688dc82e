/**
 * The precise sleep of the dummynet output loop: lateness distribution measured and printed for
 * the three modes (kernel sleep only, sleep + busy tail, busy only). The bound is generous enough
 * for a shared 2-core machine but fails if the wait degrades to timer ticks (1 ms and more).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleepUntilNs, nowNs, DEFAULT_BUSY_WAIT_NS } from '../../src/firewall/dummynet/index.js';
import { rng } from '../helpers/prng.js';

function measure(busyWaitNs: number, n: number, seed: number): { p50: number; p90: number; p99: number; max: number; early: number } {
  const r = rng(seed);
  const late: number[] = [];
  let early = 0;
  for (let i = 0; i < n; i++) {
    const deadline = nowNs() + 100_000 + r() * 2_900_000; // 0.1 .. 3 ms ahead
    sleepUntilNs(deadline, busyWaitNs);
    const l = nowNs() - deadline;
    if (l < 0) early++;
    late.push(l);
  }
  late.sort((a, b) => a - b);
  const q = (p: number) => late[Math.min(late.length - 1, Math.floor(p * late.length))]!;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: late[late.length - 1]!, early };
}

const us = (ns: number) => (ns / 1000).toFixed(1);

test('sleepUntilNs never returns early and is late by well under 50 us in the median', () => {
  const modes: Array<[string, number]> = [['kernel sleep only', 0], [`sleep + ${DEFAULT_BUSY_WAIT_NS / 1000} us busy tail (default)`, DEFAULT_BUSY_WAIT_NS], ['busy-wait only', Infinity]];
  const results = new Map<string, ReturnType<typeof measure>>();
  for (const [name, busy] of modes) {
    const m = measure(busy, 400, 11);
    results.set(name, m);
    console.log(`sleepUntilNs ${name}: lateness p50 ${us(m.p50)} us, p90 ${us(m.p90)} us, p99 ${us(m.p99)} us, max ${us(m.max)} us (400 waits of 0.1-3 ms)`);
    assert.equal(m.early, 0, `${name}: returned before the deadline`);
  }
  const def = results.get(modes[1]![0])!;
  assert.ok(def.p50 < 50_000, `default mode median lateness ${us(def.p50)} us`);
  // The tail is preemption by other jobs on this shared 2-core machine (seen up to tens of ms);
  // only a broken wait (never waking, or a coarse timer) would push p90 past 20 ms.
  assert.ok(def.p90 < 20_000_000, `default mode p90 lateness ${us(def.p90)} us`);
  const busy = results.get(modes[2]![0])!;
  assert.ok(busy.p50 < 50_000, `busy mode median lateness ${us(busy.p50)} us`);
});

test('sleepUntilNs in a real-time thread (SCHED_FIFO, what kipfw --rt does): lateness printed', { skip: process.getuid?.() !== 0 ? 'needs root (SCHED_FIFO)' : false }, async () => {
  const native = await import('../../src/native/index.js');
  native.setTimerSlack(1);
  native.setRealtime(10);
  let m: ReturnType<typeof measure>;
  try {
    m = measure(DEFAULT_BUSY_WAIT_NS, 400, 12);
  } finally {
    native.setRealtime(0);
  }
  console.log(`sleepUntilNs SCHED_FIFO, ${DEFAULT_BUSY_WAIT_NS / 1000} us busy tail: lateness p50 ${us(m.p50)} us, p90 ${us(m.p90)} us, p99 ${us(m.p99)} us, max ${us(m.max)} us (400 waits of 0.1-3 ms)`);
  assert.equal(m.early, 0, 'never early');
  assert.ok(m.p50 < 50_000, `median lateness ${us(m.p50)} us`);
});

test('sleepUntilNs returns at once for a deadline in the past', () => {
  const t = nowNs();
  sleepUntilNs(t - 1e6);
  assert.ok(nowNs() - t < 1e6);
});

test('real clock: packets leave a 10 Mbit/s, 5 ms pipe at their computed time (error distribution printed)', async () => {
  const { Dummynet, FlowKey } = await import('../../src/firewall/dummynet/index.js');
  const d = new Dummynet();
  assert.equal(d.command('pipe 1 config bw 10Mbit/s delay 5'.split(' ')).status, 0);
  const key = new FlowKey().setV4(17, 0xc6120001, 1, 0xc6120002, 2);
  const N = 300, len = 1250; // 1 ms of transmission each, one every 2 ms: never queued
  const H = new Int32Array(64), R = new Int32Array(64);
  const start = nowNs() + 2e6;
  const arrival = new Float64Array(N);
  const serviceEnd = new Float64Array(N);
  const errors: number[] = [];
  let next = 0;
  const deadline = start + N * 2e6 + 50e6;
  while (errors.length < N && nowNs() < deadline) {
    const tArr = next < N ? start + next * 2e6 : Infinity;
    const tEv = d.nextEventNs();
    sleepUntilNs(Math.min(tArr, tEv));
    const now = nowNs();
    if (next < N && now >= tArr) {
      arrival[next] = now;
      assert.equal(d.enqueue('pipe', 1, next, len, key, 0, now), 0);
      next++;
    }
    const n = d.dequeueDue(now, H, R);
    for (let i = 0; i < n; i++) {
      // The model's output time: a late arrival may queue behind the previous packet, so
      // service ends at max(arrival, previous end) + 8L/B, and the packet leaves `delay` later.
      const k = H[i]!;
      serviceEnd[k] = Math.max(arrival[k]!, k > 0 ? serviceEnd[k - 1]! : 0) + len * 8 * 1e9 / 10e6;
      errors.push(now - (serviceEnd[k]! + 5e6));
    }
  }
  assert.equal(errors.length, N);
  assert.ok(errors.every((e) => e >= -1), 'no packet leaves before its time');
  errors.sort((a, b) => a - b);
  const q = (p: number) => errors[Math.min(N - 1, Math.floor(p * N))]!;
  console.log(`real clock, ${N} packets: release error p50 ${us(q(0.5))} us, p90 ${us(q(0.9))} us, p99 ${us(q(0.99))} us, max ${us(errors[N - 1]!)} us`);
  // Generous: on this shared 2-core machine a sleeping process is sometimes woken milliseconds late.
  assert.ok(q(0.5) < 1_000_000, `median release error ${us(q(0.5))} us`);
});
