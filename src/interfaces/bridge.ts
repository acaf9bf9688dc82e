/**
 * Forwarding between two ports, both ways, as netmap's `bridge` application does: every received
 * slot of one port goes to a TX ring of the other. When both ports use the same memory region
 * (two interfaces, an interface and its host rings, a VALE port and its pipes...) buffers are
 * swapped (zero copy, NS_BUF_CHANGED on both slots); otherwise payloads are copied. NS_MOREFRAG is
 * carried over. The loop sleeps on both ports' rings at once when nothing moves.
 */
import { fail } from '../errors.js';
import * as L from '../memory/layout.js';
import * as native from '../native/index.js';
import { POLLIN, POLLOUT, type Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import type { AddressSpace } from '../memory/space.js';

export const BRIDGE_MAX_BURST = 8192;
export const BRIDGE_DEFAULT_BURST = 1024;

export interface BridgeOptions {
  /** Slots moved per ring pair per pass (1..8192, default 1024). */
  burst?: number;
  /** Allow zero copy when possible (default true; netmap bridge -c turns it off). */
  zeroCopy?: boolean;
  /** Only b -> a (the caller takes what a receives itself; default false: both ways). */
  onlyBtoA?: boolean;
}

/**
 * Hands slot `j` of RX ring `rx` to slot `k` of TX ring `tx`: swaps the two buffers (zero copy,
 * NS_BUF_CHANGED on both) or copies the payload (short frames as 16-bit words, AddressSpace.copy);
 * NS_MOREFRAG is carried over. The rings' head/cur are left to the caller.
 */
export function passSlot(rx: Ring, j: number, tx: Ring, k: number, zeroCopy: boolean, sp: AddressSpace): void {
  const len = rx.slotLen(j);
  const rflags = rx.slotFlags(j);
  if (zeroCopy) {
    const idx = tx.slotBufIdx(k);
    tx.setSlotBufIdx(k, rx.slotBufIdx(j));
    rx.setSlotBufIdx(j, idx);
    rx.setSlotFlags(j, rflags | L.NS_BUF_CHANGED);
    tx.setSlotFlags(k, (tx.slotFlags(k) & ~L.NS_MOREFRAG) | (rflags & L.NS_MOREFRAG) | L.NS_BUF_CHANGED);
    tx.setSlotLen(k, len);
  } else {
    const room = tx.bufSize;
    const l = len > room ? room : len;
    sp.copy(tx.slotBufOffset(k), rx.slotBufOffset(j), l, room);
    tx.setSlotLen(k, l);
    tx.setSlotFlags(k, (tx.slotFlags(k) & ~L.NS_MOREFRAG) | (rflags & L.NS_MOREFRAG));
  }
}

/**
 * Moves up to `limit` slots from RX ring `rx` to TX ring `tx` (zero copy: swap buffers). Returns
 * the number of slots moved; advances head/cur of both rings (no sync).
 */
export function moveSlots(rx: Ring, tx: Ring, limit: number, zeroCopy: boolean, sp: AddressSpace): number {
  let m = rx.space();
  const room = tx.space();
  if (m > room) m = room;
  if (m > limit) m = limit;
  if (m <= 0) return 0;
  let j = rx.head, k = tx.head;
  // never split an NS_MOREFRAG chain (a super-frame) between passes: the other side would take
  // its first part for a packet. Trim to the last whole packet; a chain longer than `limit`
  // still goes in parts.
  const n = rx.numSlots;
  if ((rx.slotFlags((j + m - 1) % n) & L.NS_MOREFRAG) !== 0) {
    let whole = m - 1;
    while (whole > 0 && (rx.slotFlags((j + whole - 1) % n) & L.NS_MOREFRAG) !== 0) whole--;
    if (whole > 0) m = whole;
    else if (m < limit) return 0;
  }
  for (let n = 0; n < m; n++) {
    passSlot(rx, j, tx, k, zeroCopy, sp);
    j = rx.next(j);
    k = tx.next(k);
  }
  rx.advance(j);
  tx.advance(k);
  return m;
}

export class Bridge {
  readonly a: Port;
  readonly b: Port;
  readonly zeroCopy: boolean;
  readonly burst: number;
  /** Slots moved a -> b and b -> a. */
  forwardedAB = 0;
  forwardedBA = 0;
  private readonly sp: AddressSpace;
  private readonly onlyBtoA: boolean;

  constructor(a: Port, b: Port, opts: BridgeOptions = {}) {
    const burst = opts.burst ?? BRIDGE_DEFAULT_BURST;
    if (!Number.isInteger(burst) || burst < 1 || burst > BRIDGE_MAX_BURST) fail('EINVAL', `burst must be 1 to ${BRIDGE_MAX_BURST}, not ${burst}`);
    if (a.rxRings.length === 0 || a.txRings.length === 0 || b.rxRings.length === 0 || b.txRings.length === 0) {
      fail('EINVAL', 'both ports of a bridge need RX and TX rings');
    }
    this.a = a;
    this.b = b;
    this.burst = burst;
    this.zeroCopy = (opts.zeroCopy ?? true) && a.memId === b.memId;
    this.sp = a.mem;
    this.onlyBtoA = opts.onlyBtoA === true;
  }

  private forward(src: Port, dst: Port): number {
    let moved = 0;
    const rxs = src.rxRings, txs = dst.txRings;
    let t = 0;
    for (let i = 0; i < rxs.length; i++) {
      const rx = rxs[i]!;
      for (let tries = 0; tries < txs.length && !rx.empty(); tries++) {
        moved += moveSlots(rx, txs[t]!, this.burst, this.zeroCopy, this.sp);
        if (!rx.empty()) t = t + 1 === txs.length ? 0 : t + 1;
      }
    }
    return moved;
  }

  /** One pass: sync both ports, move what arrived, hand it to the other side. Returns slots moved. */
  step(): number {
    this.a.pollOnce(POLLIN);
    this.b.pollOnce(POLLIN);
    const ab = this.onlyBtoA ? 0 : this.forward(this.a, this.b);
    const ba = this.forward(this.b, this.a);
    this.forwardedAB += ab;
    this.forwardedBA += ba;
    if (ab > 0) this.b.txsync();
    if (ba > 0) this.a.txsync();
    return ab + ba;
  }

  /** Sleeps until either port may have something (or `timeoutMs` passes). Blocks the thread. */
  wait(timeoutMs: number): void {
    waitPorts([this.a, this.b], timeoutMs);
  }

}

function txPending(p: Port): boolean {
  for (const r of p.txRings) if (r.txPending()) return true;
  return false;
}

// the sleeper's working arrays, reused: waitPorts runs in data-path loops and allocates nothing
const waitAddrs: number[] = [];
const waitVals: number[] = [];
const waitEvents: number[] = [];

/**
 * Sleeps until any of `ports` may have received something (or may send again, for ports with
 * transmissions pending), at most `timeoutMs`. Arms every port first and checks once more, so a
 * wake-up that comes in between is not lost. Blocks the calling thread. `extra`: one more futex
 * word (absolute address) to wake on when it no longer holds `value` (a doorbell of the caller's).
 */
export function waitPorts(ports: Port[], timeoutMs: number, extra?: { address: number; value: number }): void {
  const events = waitEvents;
  events.length = 0;
  for (let i = 0; i < ports.length; i++) events.push(POLLIN | (txPending(ports[i]!) ? POLLOUT : 0));
  waitAddrs.length = 0;
  waitVals.length = 0;
  let armed = 0;
  try {
    for (; armed < ports.length; armed++) {
      ports[armed]!.armWait(events[armed]!);
      ports[armed]!.appendArmedWords(waitAddrs, waitVals);
    }
    if (extra !== undefined) { waitAddrs.push(extra.address); waitVals.push(extra.value); }
    for (let i = 0; i < ports.length; i++) if ((ports[i]!.pollOnce(POLLIN) & POLLIN) !== 0) return;
    native.futexWaitAny(waitAddrs, waitVals, waitAddrs.length, timeoutMs);
  } finally {
    for (let i = 0; i < armed; i++) ports[i]!.disarmWait(events[i]!);
  }
}
