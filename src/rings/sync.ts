/**
 * The kernel side of a ring: netmap's sync prologues (validate what the user wrote), ring
 * reinitialisation after a violation, timestamps, and the wake-up protocol used by poll().
 *
 * Hidden state lives in the ring's opaque `sem` area (see layout.ts, KR_*): hwcur, hwtail and the
 * last head/cur/tail seen. A user who scribbles over it only harms its own port: every value read
 * from it is range-checked before use.
 */
import type { AddressSpace } from '../memory/space.js';
import * as native from '../native/index.js';
import * as L from '../memory/layout.js';
import type { Ring } from './ring.js';

const HEAD = L.RING_HEAD >>> 2, CUR = L.RING_CUR >>> 2, TAIL = L.RING_TAIL >>> 2;
const HWCUR = L.KR_HWCUR >>> 2, HWTAIL = L.KR_HWTAIL >>> 2, RHEAD = L.KR_RHEAD >>> 2, RCUR = L.KR_RCUR >>> 2, RTAIL = L.KR_RTAIL >>> 2;

/** Is x in the circular interval [a, b] of a ring of n slots? */
function within(a: number, x: number, b: number): boolean {
  return a <= b ? a <= x && x <= b : x >= a || x <= b;
}

/**
 * TX prologue (nm_txsync_prologue): head must lie in [rhead, rtail], cur in [head, rtail].
 * Returns the new head, or -1 after a violation (the ring was reinitialised; skip this sync).
 */
export function txPrologue(ring: Ring): number {
  const u32 = ring.sp.u32;
  const w = ring.offset >>> 2;
  const n = ring.numSlots;
  const rhead = u32[w + RHEAD]!, rtail = u32[w + RTAIL]!;
  if (u32[w + TAIL] !== rtail) u32[w + TAIL] = rtail; // the user overwrote tail: restore it
  const head = u32[w + HEAD]!, cur = u32[w + CUR]!;
  if (rhead >= n || rtail >= n || head >= n || cur >= n || !within(rhead, head, rtail) || !within(head, cur, rtail)) {
    reinit(ring);
    return -1;
  }
  // Stores only on change: the kring words share a cache line with the words the peer writes
  // (shadow tail), and a syncing loop that rewrites unchanged values keeps stealing that line.
  if (rhead !== head) u32[w + RHEAD] = head;
  if (u32[w + RCUR] !== cur) u32[w + RCUR] = cur;
  return head;
}

/** RX prologue (nm_rxsync_prologue): head in [hwcur, hwtail], cur in [head, hwtail]. */
export function rxPrologue(ring: Ring): number {
  const u32 = ring.sp.u32;
  const w = ring.offset >>> 2;
  const n = ring.numSlots;
  const hwcur = u32[w + HWCUR]!, hwtail = u32[w + HWTAIL]!;
  if (u32[w + TAIL] !== u32[w + RTAIL]) u32[w + TAIL] = u32[w + RTAIL]!;
  const head = u32[w + HEAD]!, cur = u32[w + CUR]!;
  if (hwcur >= n || hwtail >= n || head >= n || cur >= n || !within(hwcur, head, hwtail) || !within(head, cur, hwtail)) {
    reinit(ring);
    return -1;
  }
  if (u32[w + RHEAD] !== head) u32[w + RHEAD] = head;
  if (u32[w + RCUR] !== cur) u32[w + RCUR] = cur;
  return head;
}

/**
 * netmap_ring_reinit: repair every slot (bad buffer index → 0 with length 0, length beyond the
 * buffer → 0) and, if an index is out of range, put head/cur/tail back where the kernel side
 * has them.
 */
export function reinit(ring: Ring): void {
  const u32 = ring.sp.u32;
  const w = ring.offset >>> 2;
  const n = ring.numSlots;
  for (let i = 0; i < n; i++) {
    const idx = ring.slotBufIdx(i);
    if (ring.dir === L.RING_DIR_TX || idx !== 0) {
      if (idx < 2 || idx >= ring.numBufs) { ring.setSlotBufIdx(i, 0); ring.setSlotLen(i, 0); }
      else if (ring.slotLen(i) > ring.bufSize) ring.setSlotLen(i, 0);
    }
  }
  let hwcur = u32[w + HWCUR]!, hwtail = u32[w + HWTAIL]!;
  if (hwcur >= n) { hwcur = 0; u32[w + HWCUR] = 0; }
  if (hwtail >= n) { hwtail = ring.dir === L.RING_DIR_TX ? n - 1 : 0; u32[w + HWTAIL] = hwtail; }
  if (u32[w + HEAD]! >= n || u32[w + CUR]! >= n || u32[w + TAIL]! >= n) {
    u32[w + HEAD] = hwcur;
    u32[w + CUR] = hwcur;
    u32[w + TAIL] = hwtail;
  }
  // In-range but illegal indices are left as the user wrote them (netmap's behaviour), but the
  // kernel side keeps its own last legal values: adopting a head that moved backwards would make
  // the next txsync hand over [hwcur, head) — slots the peer owns.
  u32[w + RHEAD] = hwcur;
  u32[w + RCUR] = hwcur;
  u32[w + RTAIL] = hwtail;
}

/** Publishes a new tail to the user (both the visible tail and the kernel's copy). */
export function setTail(ring: Ring, tail: number): void {
  const u32 = ring.sp.u32;
  const w = ring.offset >>> 2;
  if (u32[w + TAIL] !== tail) u32[w + TAIL] = tail;
  if (u32[w + RTAIL] !== tail) u32[w + RTAIL] = tail;
  if (u32[w + HWTAIL] !== tail) u32[w + HWTAIL] = tail;
}

export function hwcur(ring: Ring): number {
  return ring.sp.u32[(ring.offset >>> 2) + HWCUR]!;
}

export function setHwcur(ring: Ring, v: number): void {
  ring.sp.u32[(ring.offset >>> 2) + HWCUR] = v;
}

/**
 * The rxsync timestamp rule: ring->ts is set when the rxsync brought new packets, and on every
 * rxsync when the user set NR_TIMESTAMP in ring->flags. (netmap stamps every rxsync by default;
 * reading a clock costs 75-85 ns on a VM, more than a whole batch's sync, and an rxsync that
 * found nothing has nothing to date.)
 */
export function stampRx(ring: Ring, fetched: boolean): void {
  if (fetched || (ring.sp.u32[(ring.offset + L.RING_FLAGS) >>> 2]! & L.NR_TIMESTAMP) !== 0) stamp(ring);
}

/** Sets ring->ts to now (struct timeval). */
export function stamp(ring: Ring): void {
  // wall-clock seconds and microseconds, as gettimeofday() gives (Date.now() has milliseconds
  // only; performance.now() made garbage on every receive sync)
  native.realtimeUs(stampWords);
  const u32 = ring.sp.u32;
  u32[(ring.offset + L.RING_TS_SEC) >>> 2] = stampWords[0]!;
  u32[(ring.offset + L.RING_TS_USEC) >>> 2] = stampWords[1]!;
}
const stampWords = new Uint32Array(2);

// ---- wake-ups ----------------------------------------------------------------------------------
// Whoever makes progress for a ring's owner (a peer publishing packets, a receiver freeing slots)
// calls notify(); a poller announces itself in KR_WAITERS before its last check, then sleeps on
// KR_WAKE. The futex syscall is only made when someone sleeps.

/** Wakes sleepers of ring at space offset `ringOffset`, if any (no syscall otherwise). */
export function notify(sp: AddressSpace, ringOffset: number): void {
  const i32 = sp.i32;
  // A plain load: callers publish progress with a sequentially consistent store (Atomics.store,
  // a full fence on x86), which orders it against this load; the waiter increments KR_WAITERS
  // atomically and re-checks before sleeping.
  if (i32[(ringOffset + L.KR_WAITERS) >>> 2] === 0) return;
  Atomics.add(i32, (ringOffset + L.KR_WAKE) >>> 2, 1);
  native.futexWake(sp.absolute(ringOffset + L.KR_WAKE));
}

export function addWaiter(sp: AddressSpace, ringOffset: number, delta: number): void {
  Atomics.add(sp.i32, (ringOffset + L.KR_WAITERS) >>> 2, delta);
}

export function wakeSeq(sp: AddressSpace, ringOffset: number): number {
  return Atomics.load(sp.i32, (ringOffset + L.KR_WAKE) >>> 2);
}

/** Adds to the f64 counters of the hidden ring state. */
export function count(sp: AddressSpace, ringOffset: number, packets: number, bytes: number, drops: number): void {
  const f = sp.f64;
  const k = (ringOffset + L.KR_PKTS) >>> 3;
  f[k] = f[k]! + packets;
  f[k + 1] = f[k + 1]! + bytes;
  f[k + 2] = f[k + 2]! + drops;
}
