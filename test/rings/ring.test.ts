/**
 * Ring API (head/cur/tail ownership, any num_slots, helpers, flags, timestamps, zero copy) and
 * txsync/rxsync validation (reinit on illegal head/cur, slot repair, others untouched).
 */
import { dir } from '../helpers/ports/env.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openPort, POLLIN, POLLOUT, POLLERR, layout as L } from '../helpers/ports/lib.js';
import type { Port } from '../../src/ports/port.js';

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function pair(name: string, conf = ''): [Port, Port] {
  return [openPort(`netmap:${name}{1${conf}`), openPort(`netmap:${name}}1${conf}`)];
}

/** Sends `count` packets (len 60 + k%7, first byte k) from m, receiving on s in bursts. */
function sendAndCheck(m: Port, s: Port, count: number, burst: number): void {
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const u8 = m.mem.u8;
  let sent = 0, got = 0;
  for (let rounds = 0; got < count && rounds < 100000; rounds++) {
    let i = tx.head;
    for (let k = 0; k < burst && sent < count && tx.space() > k; k++) {
      u8[tx.slotBufOffset(i)] = sent & 0xff;
      tx.setSlotLen(i, 60 + (sent % 7));
      tx.setSlotFlags(i, 0);
      i = tx.next(i);
      sent++;
    }
    tx.advance(i);
    m.txsync();
    s.rxsync();
    let j = rx.head;
    while (j !== rx.tail) {
      assert.equal(rx.slotLen(j), 60 + (got % 7), `length of packet ${got}`);
      assert.equal(u8[rx.slotBufOffset(j)], got & 0xff, `payload of packet ${got}`);
      got++;
      j = rx.next(j);
    }
    rx.advance(j);
    s.rxsync();
  }
  assert.equal(got, count);
}

test('rings of any size, not only powers of two: helpers and wrap-around', () => {
  for (const slots of [2, 7, 100, 1000]) {
    const [m, s] = pair(`np${slots}`, `@conf:slots=${slots}`);
    const tx = m.txRings[0]!, rx = s.rxRings[0]!;
    assert.equal(tx.numSlots, slots);
    assert.equal(rx.numSlots, slots);
    assert.equal(tx.next(slots - 1), 0);
    assert.equal(tx.next(0), slots === 1 ? 0 : 1);
    // A fresh TX ring: the user owns every slot but one (tail = head - 1).
    assert.equal(tx.head, 0);
    assert.equal(tx.cur, 0);
    assert.equal(tx.tail, slots - 1);
    assert.equal(tx.space(), slots - 1);
    assert.equal(tx.txPending(), false);
    assert.equal(rx.empty(), true);
    assert.equal(rx.space(), 0);
    sendAndCheck(m, s, slots * 5 + 3, Math.max(1, Math.floor(slots / 3)));
    m.close();
    s.close();
  }
});

test('ownership: the sender gets slots back only when the receiver releases them (send 10, receive 7)', () => {
  const [m, s] = pair('own');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const n = tx.numSlots;
  let i = tx.head;
  for (let k = 0; k < 10; k++) { tx.setSlotLen(i, 60); i = tx.next(i); }
  tx.advance(i);
  m.txsync();
  assert.equal(tx.tail, n - 1, 'tail does not move before the receiver releases');
  assert.equal(tx.txPending(), true);
  s.rxsync();
  assert.equal(rx.space(), 10);
  rx.advance(7);
  s.rxsync();
  m.txsync();
  assert.equal(tx.tail, 6);
  assert.equal(n - 1 - tx.space(), 3, 'exactly 3 packets pending');
  // cur may be held back to wait for more (netmap's rule: ready when tail passes cur)
  rx.cur = rx.tail;
  assert.equal(s.pollOnce(POLLIN) & POLLIN, 0);
  rx.cur = rx.head;
  assert.equal(s.pollOnce(POLLIN) & POLLIN, POLLIN);
  m.close();
  s.close();
});

test('zero copy: a packet keeps its buffer; the payload is never copied', () => {
  const [m, s] = pair('zc');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const idx = tx.slotBufIdx(tx.head);
  assert.ok(tx.validBuf(idx));
  const off = tx.slotBufOffset(tx.head);
  m.mem.u8[off] = 0xab;
  tx.setSlotLen(tx.head, 64);
  tx.advance(tx.next(tx.head));
  m.txsync();
  s.rxsync();
  assert.equal(rx.slotBufIdx(rx.head), idx, 'the receiver sees the sender\'s buffer');
  assert.equal(rx.slotBufOffset(rx.head), off);
  assert.equal(rx.bufIndex(off), idx);
  assert.equal(s.mem.u8[rx.slotBufOffset(rx.head)], 0xab);
  m.close();
  s.close();
});

test('NS_BUF_CHANGED: a buffer swapped in by the receiver goes back to the sender', () => {
  const [m, s] = pair('swap', '@conf:extra-bufs=1');
  assert.equal(s.extraBuffers, 1);
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const sent = tx.slotBufIdx(0);
  tx.setSlotLen(0, 60);
  tx.setSlotFlags(0, L.NS_BUF_CHANGED);
  tx.advance(1);
  m.txsync();
  assert.equal(tx.slotFlags(0) & L.NS_BUF_CHANGED, 0, 'NS_BUF_CHANGED is cleared on the source side');
  s.rxsync();
  assert.equal(rx.slotFlags(0) & L.NS_BUF_CHANGED, 0);
  // keep the received buffer, give an extra buffer in exchange
  const extra = s.bufsHead;
  s.bufsHead = s.mem.u32[s.bufOffset(extra) >>> 2]!;
  s.mem.u32[s.bufOffset(sent) >>> 2] = s.bufsHead;
  s.bufsHead = sent;
  rx.setSlotBufIdx(0, extra);
  rx.setSlotFlags(0, L.NS_BUF_CHANGED);
  rx.advance(1);
  s.rxsync();
  m.txsync();
  assert.equal(tx.slotBufIdx(0), extra, 'the sender\'s slot now holds the swapped-in buffer');
  assert.notEqual(tx.slotFlags(0) & L.NS_BUF_CHANGED, 0, 'and says so (NS_BUF_CHANGED), as netmap\'s pipes do');
  assert.equal(rx.slotFlags(0) & L.NS_BUF_CHANGED, 0, 'the receiver\'s copy of the flag is cleared');
  m.close();
  s.close();
});

test('NS_MOREFRAG: a multi-slot packet becomes visible only whole', () => {
  const [m, s] = pair('frag');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  for (let k = 0; k < 2; k++) { tx.setSlotLen(k, 100); tx.setSlotFlags(k, L.NS_MOREFRAG); }
  tx.advance(2);
  m.txsync();
  s.rxsync();
  assert.equal(rx.space(), 0, 'no fragment is visible before the last one');
  assert.equal(s.pollOnce(POLLIN) & POLLIN, 0);
  tx.setSlotLen(2, 50);
  tx.setSlotFlags(2, 0);
  tx.advance(3);
  m.txsync();
  s.rxsync();
  assert.equal(rx.space(), 3);
  assert.equal(rx.slotFlags(0) & L.NS_MOREFRAG, L.NS_MOREFRAG);
  assert.equal(rx.slotFlags(1) & L.NS_MOREFRAG, L.NS_MOREFRAG);
  assert.equal(rx.slotFlags(2) & L.NS_MOREFRAG, 0);
  // inject() splits a large packet into fragments
  const big = new Uint8Array(5000).fill(7);
  assert.equal(m.inject(big, 0, 5000), 5000);
  m.txsync();
  s.rxsync();
  assert.equal(rx.space(), 6);
  let total = 0;
  for (let i = 3; i < 6; i++) total += rx.slotLen(i);
  assert.equal(total, 5000);
  m.close();
  s.close();
});

test('ring flags are kept; timestamps are set by rxsync, not by txsync', () => {
  const [m, s] = pair('ts');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  rx.flags = L.NR_TIMESTAMP | L.NR_FORWARD;
  assert.equal(tx.tsSec, 0);
  m.txsync();
  assert.equal(tx.tsSec, 0, 'txsync does not stamp');
  const before = Math.floor(Date.now() / 1000);
  s.rxsync();
  const after = Math.ceil(Date.now() / 1000);
  assert.ok(rx.tsSec >= before && rx.tsSec <= after, `ts ${rx.tsSec} within [${before}, ${after}]`);
  assert.ok(rx.tsUsec >= 0 && rx.tsUsec < 1e6);
  // microsecond resolution: two stamps a little apart differ below the millisecond
  const seen = new Set<number>();
  for (let k = 0; k < 50; k++) { s.rxsync(); seen.add(rx.tsUsec % 1000); }
  assert.ok(seen.size > 1, 'timestamps carry microseconds');
  assert.equal(rx.flags, L.NR_TIMESTAMP | L.NR_FORWARD);
  m.close();
  s.close();
});

test('without NR_TIMESTAMP, rxsync stamps the ring when it brings packets, not when it finds none', async () => {
  const [m, s] = pair('ts2');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  s.rxsync();
  assert.equal(rx.tsSec, 0, 'an rxsync that found nothing leaves ts alone');
  tx.setSlotLen(tx.head, 60);
  tx.advance(tx.next(tx.head));
  m.txsync();
  s.rxsync();
  const first = rx.tsSec * 1e6 + rx.tsUsec;
  assert.ok(Math.abs(first / 1000 - Date.now()) < 5000, 'stamped with the time of the fetch');
  await new Promise((r) => setTimeout(r, 5));
  s.rxsync();
  assert.equal(rx.tsSec * 1e6 + rx.tsUsec, first, 'no new packets: the stamp stays the fetch time');
  m.close();
  s.close();
});

test('txsync validation: illegal head/cur reinitialise the ring and report POLLERR', () => {
  const [m, s] = pair('val');
  const tx = m.txRings[0]!;
  const n = tx.numSlots;
  // send 5 so that hwcur is 5 and tail stays at n-1
  tx.advance(5);
  m.txsync();
  // head out of range: indices are reset to the kernel's
  tx.head = n + 3;
  assert.equal(m.pollOnce(POLLOUT) & POLLERR, POLLERR);
  assert.equal(tx.head, 5);
  assert.equal(tx.cur, 5);
  assert.equal(tx.tail, n - 1);
  // head moved backwards but in range: not rewritten (netmap), but nothing is handed over
  tx.head = 2; tx.cur = 2;
  assert.equal(m.pollOnce(POLLOUT) & POLLERR, POLLERR);
  assert.equal(tx.head, 2);
  assert.equal(m.pollOnce(POLLOUT) & POLLERR, POLLERR, 'still illegal on the next sync');
  s.rxsync();
  assert.equal(s.rxRings[0]!.space(), 5, 'the peer saw nothing more than the 5 legal packets');
  // cur beyond tail
  tx.head = 5; tx.cur = n - 1 === 5 ? 0 : (tx.tail + 1) % n;
  assert.equal(m.pollOnce(POLLOUT) & POLLERR, POLLERR);
  // repaired by the user: works again
  tx.head = 5; tx.cur = 5;
  assert.equal(m.pollOnce(POLLOUT) & POLLERR, 0);
  // an overwritten tail is silently restored
  (m.mem.u32)[(tx.offset + L.RING_TAIL) >>> 2] = 17;
  m.txsync();
  assert.equal(tx.tail, n - 1);
  // txsync() itself never throws on a violation (NIOCTXSYNC returns 0)
  tx.head = 0xffffffff;
  m.txsync();
  assert.equal(tx.head, 5);
  m.close();
  s.close();
});

test('rxsync validation: head/cur outside [hwcur, hwtail] reinitialise the ring', () => {
  const [m, s] = pair('rval');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  tx.advance(4);
  m.txsync();
  s.rxsync();
  assert.equal(rx.tail, 4);
  rx.head = 6; // beyond tail
  assert.equal(s.pollOnce(POLLIN) & POLLERR, POLLERR);
  rx.head = 0; rx.cur = 9999;
  assert.equal(s.pollOnce(POLLIN) & POLLERR, POLLERR);
  assert.equal(rx.head, 0);
  assert.equal(rx.cur, 0);
  assert.equal(rx.tail, 4);
  assert.equal(s.pollOnce(POLLIN) & (POLLIN | POLLERR), POLLIN);
  m.close();
  s.close();
});

test('slots with an invalid buffer index or length are repaired; other ports are untouched', () => {
  const [m, s] = pair('rep');
  const [m2, s2] = pair('rep2');
  const u8 = m.mem.u8;
  // snapshot the other pair's rings
  const snap = (p: Port) => [...p.txRings, ...p.rxRings].map((r) => u8.slice(r.offset, r.offset + L.ringBytes(r.numSlots)));
  const before = [...snap(m2), ...snap(s2)];
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const bufSize = tx.bufSize;
  tx.setSlotBufIdx(0, 0); tx.setSlotLen(0, 60); // no buffer
  tx.setSlotBufIdx(1, tx.numBufs + 5); tx.setSlotLen(1, 60); // out of range
  tx.setSlotLen(2, bufSize + 1); // too long
  tx.setSlotLen(3, 60); // fine
  tx.advance(4);
  m.txsync();
  s.rxsync();
  assert.equal(rx.space(), 4);
  assert.equal(rx.slotBufIdx(0), 0); assert.equal(rx.slotLen(0), 0);
  assert.equal(rx.slotBufIdx(1), 0); assert.equal(rx.slotLen(1), 0);
  assert.equal(rx.slotLen(2), 0);
  assert.equal(rx.slotLen(3), 60);
  // a reinit repairs the TX ring's own slots
  tx.setSlotBufIdx(10, 1); tx.setSlotLen(11, bufSize * 2);
  tx.head = 0xfffff;
  m.txsync();
  assert.equal(tx.slotBufIdx(10), 0);
  assert.equal(tx.slotLen(11), 0);
  const afterSnap = [...snap(m2), ...snap(s2)];
  for (let k = 0; k < before.length; k++) assert.deepEqual(afterSnap[k], before[k], `ring ${k} of the other pipe unchanged`);
  for (const p of [m, s, m2, s2]) p.close();
});

test('poll() with nothing to do sleeps until the timeout; poll(POLLOUT) on a full pipe blocks', () => {
  const [m, s] = pair('pl', '@conf:slots=8');
  const t0 = Date.now();
  assert.equal(s.poll(POLLIN, 100), 0);
  assert.ok(Date.now() - t0 >= 95);
  const tx = m.txRings[0]!;
  tx.advance(7); // fill: 7 of 8 slots
  m.txsync();
  assert.equal(tx.space(), 0);
  const t1 = Date.now();
  assert.equal(m.poll(POLLOUT, 100) & POLLOUT, 0, 'a full pipe never drops: the sender waits');
  assert.ok(Date.now() - t1 >= 95);
  // the receiver frees slots: the sender becomes writable
  s.rxsync();
  s.rxRings[0]!.advance(3);
  s.rxsync();
  assert.equal(m.poll(POLLOUT, 100) & POLLOUT, POLLOUT);
  assert.equal(tx.space(), 3);
  m.close();
  s.close();
});

test('no allocation per packet: two million packets through a pipe cause no garbage collection', async () => {
  const { PerformanceObserver } = await import('node:perf_hooks');
  const [m, s] = pair('noalloc', '@conf:slots=512');
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const u8 = m.mem.u8;
  const run = (total: number): number => {
    let got = 0, sum = 0;
    while (got < total) {
      let i = tx.head;
      for (let k = tx.space(); k > 0; k--) { tx.setSlotLen(i, 60); i = tx.next(i); }
      tx.advance(i);
      m.pollOnce(POLLOUT);
      s.pollOnce(POLLIN);
      let j = rx.head;
      while (j !== rx.tail) { sum += rx.slotLen(j) + u8[rx.slotBufOffset(j)]!; got++; j = rx.next(j); }
      rx.advance(j);
    }
    return sum;
  };
  run(200_000); // warm up (compilation allocates)
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setImmediate(r));
  gcs = 0;
  assert.ok(run(2_000_000) > 0);
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  // 16 bytes per packet would be 32 MB: several scavenges. One may come from what earlier
  // tests left in the young generation.
  assert.ok(gcs <= 1, `${gcs} garbage collections while moving packets`);
  m.close();
  s.close();
});
