/**
 * Dummynet with kipfw -p 2 (issue 11 §1, issue 12): both workers send their pipe frames to the one
 * dummynet in worker 0 (hand-off rings, buffers swapped). On VALE ports in this process: a frame
 * sent on TX ring K of port a reaches kipfw's RX ring K, so worker K; the test stamps what it sends
 * and polls b for the arrivals. Checked: nothing leaves a 20 ms pipe early, the released frames
 * keep the pipe's rate, `pipe show` counts exactly the offered load, both workers handed frames,
 * and the stop takes every buffer back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';

const DIR = `/dev/shm/netmap-ts-test-dnworkers-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { Kipfw } = await import('../../src/firewall/daemon.js');
const { makeDaemonDummynet } = await import('../../src/firewall/dummynet-glue.js');
const { flowRow, quantile, scheduleSlope } = await import('./dn-lab.js');
type Port = ReturnType<typeof openPort>;

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

const load = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');

/** Writes `count` UDP frames of `len` bytes (MAC dst/src last bytes, IPv4 src 10.0.0.src; the frame's sequence number `seq0 + k` at byte 42) into TX ring `ring` of p; returns a time (ms) before they were sent. */
function send(p: Port, ring: number, dst: number, src: number, count: number, len = 60, seq0 = 0): number {
  const r = p.txRings[ring]!;
  const u8 = p.mem.u8;
  for (let k = 0; k < count; k++) {
    const i = r.head;
    const o = r.slotBufOffset(i);
    u8.fill(0, o, o + len);
    const ipLen = len - 14;
    u8.set([2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00, 0x45, 0, ipLen >> 8, ipLen & 255, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, src, 10, 0, 0, dst, 0x13, 0x88, 0x13, 0x89], o);
    new DataView(u8.buffer, u8.byteOffset + o + 42, 4).setUint32(0, seq0 + k);
    r.setSlotLen(i, len);
    r.advance(r.next(i));
  }
  const t = performance.now(); // before the sync: no frame can leave earlier
  p.txsync();
  return t;
}

/** Polls every RX ring of p for up to `ms` or until `want` frames came; returns their arrival times (ms), and in `seqs` their sequence numbers. */
function collect(p: Port, want: number, ms: number, seqs: number[] = []): number[] {
  const times: number[] = [];
  const end = performance.now() + ms;
  const u8 = p.mem.u8;
  while (times.length < want && performance.now() < end) {
    p.rxsync();
    const now = performance.now();
    for (const r of p.rxRings) {
      while (!r.empty()) {
        const o = r.slotBufOffset(r.head);
        seqs.push(new DataView(u8.buffer, u8.byteOffset + o + 42, 4).getUint32(0));
        times.push(now);
        r.advance(r.next(r.head));
      }
    }
  }
  p.rxsync();
  return times;
}

async function withKipfw(tag: string, fn: (k: Awaited<ReturnType<typeof Kipfw.start>>, a: Port, b: Port) => Promise<void>): Promise<void> {
  const a = openPort(`valeW${tag}a:a@conf:rings=2`);
  const b = openPort(`valeW${tag}b:b@conf:rings=2`);
  const k = await Kipfw.start({ name: `dnw${tag}`, ports: [`valeW${tag}a:f@conf:rings=2`, `valeW${tag}b:f@conf:rings=2`], workers: 2, log: () => {} }, makeDaemonDummynet);
  const running = k.run();
  try {
    // b's broadcast from MAC 9 crosses kipfw into a's switch, which learns MAC 9 at kipfw's port
    send(b, 0, 255, 9, 1);
    assert.equal(collect(a, 1, 2000).length, 1, 'the learning frame crossed');
    await fn(k, a, b);
  } finally {
    k.stop();
    await running;
    await k.close();
    a.close(); b.close();
  }
}

test('kipfw -p 2: a 20 ms pipe fed by both workers; none early, pipe show counts the offered load exactly', () => withKipfw('1', async (k, a, b) => {
  const ok = (argv: string[]): string => { const r = k.handle({ argv }); assert.equal(r.status, 0, r.stderr); return r.stdout; };
  ok(['pipe', '1', 'config', 'delay', '20ms']);
  ok(['add', '100', 'pipe', '1', 'udp', 'from', 'any', 'to', 'any']);
  assert.match(ok(['pipe', '1', 'show']), /^00001: +unlimited +20 ms burst 0/);
  const sentAt: number[] = [];
  const got: number[] = [], seqs: number[] = [];
  for (let round = 0; round < 10; round++) {
    // 30 frames on each of a's TX rings: kipfw's RX rings 0 and 1, so both workers
    const t0 = send(a, 0, 9, 1, 30, 60, round * 60);
    const t1 = send(a, 1, 9, 1, 30, 60, round * 60 + 30);
    for (let i = 0; i < 60; i++) sentAt.push(i < 30 ? t0 : t1);
    got.push(...collect(b, 60 * (round + 1) - got.length, 1000, seqs));
  }
  got.push(...collect(b, 600 - got.length, 3000, seqs));
  assert.equal(got.length, 600, 'every frame came through the pipe');
  assert.deepEqual([...seqs].sort((x, y) => x - y), sentAt.map((_, i) => i), 'each frame once');
  const s = k.stats;
  assert.ok(s.handedOff >= 300, `worker 1 handed its frames to worker 0: ${s.handedOff}`);
  assert.equal(s.toDummynet, 600);
  assert.equal(s.fromDummynet, 600);
  assert.equal(s.poolFull + s.handoffFull + s.dummynetLost, 0);
  const per = k.workerReceived();
  assert.ok(per[0]! >= 300 && per[1]! >= 300, `each worker served its ring: ${per.join(' + ')}`);
  // each round's 60 frames were all sent at sent[r] at the latest; none may arrive 20 ms after less than that
  const delays = got.map((t, i) => t - sentAt[seqs[i]!]!);
  const early = delays.filter((d) => d < 20 - 0.05).length;
  console.log(`# -p 2, 20 ms pipe: delay after the last send p50 ${quantile(delays, 0.5).toFixed(3)} ms, max ${Math.max(...delays).toFixed(3)} ms (load ${load()})`);
  if (early > 0) console.log('# early:', got.map((t, i) => [seqs[i]!, +(t - sentAt[seqs[i]!]!).toFixed(3)]).filter((x) => x[1]! < 19.95).slice(0, 40).join(' '));
  assert.equal(early, 0, 'no frame left the 20 ms pipe early');
  const [pkts, bytes, drops] = flowRow(ok(['pipe', '1', 'show']));
  assert.deepEqual([pkts, bytes, drops], [600, 600 * 60, 0], 'pipe show: Tot_pkt, bytes, Drp');
  const late = k.releaseLateness()!;
  assert.equal(late.packets, 600);
}));

test('kipfw -p 2: bw 2 Mbit/s fed by both workers keeps its rate; a queue of 100 drops the excess, counted', () => withKipfw('2', async (k, a, b) => {
  const ok = (argv: string[]): string => { const r = k.handle({ argv }); assert.equal(r.status, 0, r.stderr); return r.stdout; };
  ok(['pipe', '2', 'config', 'bw', '2Mbit/s', 'queue', '100']);
  ok(['add', '100', 'pipe', '2', 'udp', 'from', 'any', 'to', 'any']);
  // 400 frames of 1250 bytes at once, 200 per worker: about 100 fit the queue (a few more, as the
  // link starts sending while the two workers still take frames in), the rest are dropped; what
  // passes leaves one per 5 ms (1250 * 8 / 2 Mbit/s): half a second of backlog, long enough
  // for this thread's own stalls on a loaded machine (it stamps the arrivals) to average out
  send(a, 0, 9, 1, 200, 1250);
  send(a, 1, 9, 1, 200, 1250);
  const got = collect(b, 400, 3000);
  assert.ok(got.length >= 100 && got.length < 300, `${got.length} passed`);
  // the time per frame: the pace that puts the most arrivals on the earliest schedule (this thread
  // stamps them, and a stall of it, or of kipfw's worker, on a loaded machine makes frames late,
  // never early; see scheduleSlope)
  const n = got.length;
  const gap = scheduleSlope(got, 5);
  console.log(`# -p 2, bw 2Mbit/s: ${gap.toFixed(4)} ms per 1250-byte frame (5.0000 expected; ${n} frames over ${(got[n - 1]! - got[0]!).toFixed(2)} ms; load ${load()})`);
  assert.ok(Math.abs(gap - 5) <= 0.1, `gap ${gap} ms within 2% of 5 ms`);
  const [pkts, bytes, drops] = flowRow(ok(['pipe', '2', 'show']));
  assert.deepEqual([pkts, bytes, drops], [400, 400 * 1250, 400 - got.length], `pipe show: the offered load, and the drops; ${JSON.stringify(k.stats)}`);
  assert.equal(k.stats.toDummynet, got.length, 'taken in = passed');
}));

test('kipfw -p 2: dummynet commands reach worker 0; sched and queue too; a bad one changes nothing', () => withKipfw('3', async (k) => {
  const r = k.handle({ argv: ['pipe', '1', 'config', 'bw', 'foo'] });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^ipfw: /);
  assert.equal(k.handle({ argv: ['pipe', 'show'] }).stdout, '');
  assert.equal(k.handle({ argv: ['pipe', '5', 'config', 'bw', '4Mbit/s'] }).status, 0);
  assert.equal(k.handle({ argv: ['queue', '7', 'config', 'pipe', '5', 'weight', '3'] }).status, 0);
  assert.match(k.handle({ argv: ['queue', 'show'] }).stdout, /^q00007 +50 sl\. 0 flows \(1 buckets\) sched 5 weight 3/m);
  // the configuration is published with the rules (what a VALE firewall or a restart would read)
  const conf = k.firewall.store.readConfig();
  assert.ok(JSON.stringify(conf.dummynet).includes('4000000'), 'bw 4 Mbit/s in the published configuration');
  assert.equal(k.handle({ argv: ['pipe', '5', 'delete'] }).status, 0);
}));
