/**
 * Leases on a VALE RX ring: how several senders (threads or processes) write into one
 * destination ring at once, in parallel, and publish in order (netmap's nkr_hwlease scheme).
 *
 * Shared state of a destination RX ring (hidden ring state, layout.ts):
 *   KR_HWCUR        receiver: first slot it has not released (written by rxsync only)
 *   KR_SHADOW_TAIL  senders: published tail, the end of the completed leases in lease order
 *   KR_LEASE        senders: next slot to lease (nkr_hwlease)
 *   KR_LEASE_LOCK   lease lock word (owner tid); KR_LEASE_SLEEPERS counts threads sleeping on it
 *   KR_LEASE_FIRST  index of the oldest outstanding lease record (first)
 *   KR_LEASE_NEXT   index of the next lease record to hand out (next)
 *   KR_LEASE_TABLE  space offset of LEASE_RECORDS records of 16 bytes:
 *                   state (RECORD_FREE, RECORD_COPYING, RECORD_DONE), pid, tid, start | end << 16
 *
 * Slots [hwcur, shadowTail) belong to the receiver, [shadowTail, lease) to senders that are
 * copying, [lease, hwcur - 1) are free. A sender reserves under the lock (a few loads and stores),
 * copies with the lock released, then re-locks to mark its record done; the records that are done
 * at the front of the table are retired and shadowTail moves to the end of the last of them, so
 * packets appear in lease order however the copies interleave.
 *
 * Crash safety: a record names the thread that holds it. A sender that finds no room, and a
 * receiver whose rxsync sees nothing new while leases are outstanding, look at the owners of the
 * copying records; the slots of a dead owner's lease are emptied (length 0) and the lease is
 * marked done, so the ring moves on. A lock word whose owner died is taken over, and the lease
 * pointer is recomputed from the table (the only field a dying owner may leave inconsistent).
 */
import * as native from '../native/index.js';
import { selfTid } from '../memory/lock.js';
import * as L from '../memory/layout.js';
import { assert } from '../errors.js';
import { SLOT_WORDS, setSlotLenAtWord, setSlotFlagsAtWord } from '../rings/slot.js';

/** Lease records per RX ring: the most senders that may copy into one ring at the same time. */
export const LEASE_RECORDS = 64;
export const LEASE_RECORD_SIZE = 16;
export const LEASE_TABLE_BYTES = LEASE_RECORDS * LEASE_RECORD_SIZE;

const W_HWCUR = L.KR_HWCUR >>> 2;
const W_SHADOW = L.KR_SHADOW_TAIL >>> 2;
const W_LEASE = L.KR_LEASE >>> 2;
const W_LOCK = L.KR_LEASE_LOCK >>> 2;
const W_SLEEPERS = L.KR_LEASE_SLEEPERS >>> 2;
const W_FIRST = L.KR_LEASE_FIRST >>> 2;
const W_NEXT = L.KR_LEASE_NEXT >>> 2;
const W_TABLE = L.KR_LEASE_TABLE >>> 2;
const W_SLOTS = L.RING_SLOTS >>> 2;

/** States of a lease record: FREE -> COPYING (reserve) -> DONE (complete, or reclaimDead) -> FREE (retire). */
const RECORD_FREE = 0, RECORD_COPYING = 1, RECORD_DONE = 2;

/** Sets up the lease state of a fresh RX ring; `table` is a LEASE_TABLE_BYTES object. */
export function initLeases(u32: Uint32Array, ring: number, table: number): void {
  const ringWord = ring >>> 2;
  u32[ringWord + W_LEASE] = 0;
  u32[ringWord + W_SHADOW] = 0;
  u32[ringWord + W_FIRST] = 0;
  u32[ringWord + W_NEXT] = 0;
  u32[ringWord + W_LOCK] = 0;
  u32[ringWord + W_SLEEPERS] = 0;
  u32[ringWord + W_TABLE] = table;
  u32.fill(0, table >>> 2, (table + LEASE_TABLE_BYTES) >>> 2);
}

/** Result of reserve(): first slot, number of slots, record index (-1: nothing reserved). */
export class Lease {
  start = 0;
  count = 0;
  record = -1;
  /** Set by reserve() when reclaiming a dead sender's lease moved the published tail. */
  moved = false;
}

/**
 * The per-process side of the lease protocol. One instance per adapter (no allocation on the
 * packet path).
 */
export class LeaseOps {
  private readonly sp: { u32: Uint32Array; i32: Int32Array; u16: Uint16Array; absolute(o: number): number };
  private readonly me: number;
  private readonly pid: number;
  // the oldest outstanding lease last seen blocking a reservation (see reserve)
  private stuckRing = -1;
  private stuckFirst = -1;
  private stuckSince = 0;

  constructor(sp: { u32: Uint32Array; i32: Int32Array; u16: Uint16Array; absolute(o: number): number }) {
    this.sp = sp;
    this.me = selfTid();
    this.pid = process.pid;
  }

  /**
   * Takes the lease lock of `ring`: spins briefly (the lock is held for a few dozen
   * instructions), then sleeps on the lock word until the holder wakes us (unlock wakes when
   * KR_LEASE_SLEEPERS says someone sleeps) — so a holder that lost its CPU gets it back instead
   * of competing with spinners. A dead holder's lock is taken over (and the table repaired).
   */
  lock(ring: number): void {
    const i32 = this.sp.i32;
    const ringWord = (ring >>> 2) + W_LOCK;
    const me = this.me;
    for (let spins = 0; ; spins++) {
      const owner = Atomics.compareExchange(i32, ringWord, 0, me);
      if (owner === 0 || owner === me) return;
      if (spins < 64) continue;
      if ((spins & 63) === 0 && !native.processAlive(owner)) {
        if (Atomics.compareExchange(i32, ringWord, owner, me) === owner) { this.repair(ring); return; }
        continue;
      }
      Atomics.add(i32, (ring >>> 2) + W_SLEEPERS, 1);
      native.futexWait(this.sp.absolute(ring + L.KR_LEASE_LOCK), owner, 2);
      Atomics.sub(i32, (ring >>> 2) + W_SLEEPERS, 1);
    }
  }

  unlock(ring: number): void {
    const i32 = this.sp.i32;
    this.assertLockHeld(ring);
    Atomics.store(i32, (ring >>> 2) + W_LOCK, 0);
    if (Atomics.load(i32, (ring >>> 2) + W_SLEEPERS) > 0) native.futexWake(this.sp.absolute(ring + L.KR_LEASE_LOCK), 1);
  }

  /**
   * The lease lock of `ring` is ours. (Nobody takes a lock from a live owner: a take-over needs
   * the owner's thread to be gone.)
   */
  private assertLockHeld(ring: number): void {
    assert(Atomics.load(this.sp.i32, (ring >>> 2) + W_LOCK) === this.me, 'lease lock not held');
  }

  /** After taking over a dead owner's lock: make the lease pointer agree with the table. */
  private repair(ring: number): void {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    const n = u32[ringWord + L.RING_NUM_SLOTS / 4]!;
    const table = u32[ringWord + W_TABLE]! >>> 2;
    let first = u32[ringWord + W_FIRST]!, next = u32[ringWord + W_NEXT]!;
    if (((next - first) >>> 0) > LEASE_RECORDS) { first = next; u32[ringWord + W_FIRST] = next; }
    let lease = u32[ringWord + W_SHADOW]!;
    if (lease >= n) lease = 0;
    if (next !== first) {
      const r = table + 4 * ((next - 1) % LEASE_RECORDS);
      const end = u32[r + 3]! >>> 16;
      if (end < n) lease = end;
    }
    u32[ringWord + W_LEASE] = lease;
  }

  /**
   * Reserves up to `needed` slots of destination RX ring `ring` (of `n` slots) into `out`.
   * Never blocks beyond the lock: with no room out.count is 0.
   */
  reserve(ring: number, n: number, needed: number, out: Lease, dropsIfNone = 0, f64: Float64Array | null = null): void {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    out.count = 0;
    out.record = -1;
    out.moved = false;
    this.lock(ring);
    let attempt = 0;
    for (;;) {
      const lease = u32[ringWord + W_LEASE]!;
      const hwcur = Atomics.load(u32, ringWord + W_HWCUR);
      const first = u32[ringWord + W_FIRST]!, next = u32[ringWord + W_NEXT]!;
      let room = hwcur - lease - 1;
      if (room < 0) room += n;
      if (lease >= n || hwcur >= n) room = 0; // corrupt (a user scribbled on the ring): no room
      const tableFull = ((next - first) >>> 0) >= LEASE_RECORDS;
      if ((room === 0 || tableFull) && attempt === 0 && next !== first) {
        // Maybe a dead sender holds the oldest lease. Look (kill(tid, 0) per lease) only when
        // that lease has been the oldest for over a millisecond: live senders finish in
        // microseconds, and a full ring is the normal state of a slow receiver.
        attempt = 1;
        if (this.stuckRing !== ring || this.stuckFirst !== first) {
          native.readClock();
          this.stuckRing = ring; this.stuckFirst = first; this.stuckSince = native.clock[0]!;
        } else if ((native.readClock(), native.clock[0]! - this.stuckSince > 1) && this.reclaimDead(ring, n)) {
          out.moved = true;
          continue;
        }
      }
      if (room === 0 || tableFull) {
        // nothing reserved: count the drops now, so that no second locking is needed
        if (f64 !== null) { const k = (ring + L.KR_DROPS) >>> 3; f64[k] = f64[k]! + dropsIfNone; }
        break;
      }
      const take = needed < room ? needed : room;
      assert(take > 0 && take < n, 'a lease takes 1 to n - 1 slots');
      let end = lease + take;
      if (end >= n) end -= n;
      // The lease [lease, end) lies in the free part of the ring: it never reaches hwcur, the
      // receiver's first slot (the one slot kept free tells a full ring from an empty one).
      assert(end < n && end !== hwcur, 'a lease stops short of the receiver');
      const r = (u32[ringWord + W_TABLE]! >>> 2) + 4 * (next % LEASE_RECORDS);
      u32[r + 1] = this.pid;
      u32[r + 2] = this.me;
      u32[r + 3] = lease | (end << 16);
      u32[r] = RECORD_COPYING;
      u32[ringWord + W_LEASE] = end;
      u32[ringWord + W_NEXT] = (next + 1) >>> 0;
      out.start = lease;
      out.count = take;
      out.record = next;
      break;
    }
    this.unlock(ring);
  }

  /**
   * Completes lease `l` of which `used` slots were filled. Unused slots go back when no one
   * leased after us, else they become empty slots. Publishes every lease done at the front of
   * the table and adds the counters under the lock. Returns true when the tail moved.
   */
  complete(ring: number, n: number, l: Lease, used: number, packets: number, bytes: number, drops: number, f64: Float64Array): boolean {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    assert(used >= 0 && used <= l.count, 'a lease is filled with at most the slots it took');
    this.lock(ring);
    let moved = false;
    if (l.record >= 0) {
      const table = u32[ringWord + W_TABLE]! >>> 2;
      const r = table + 4 * (l.record % LEASE_RECORDS);
      // The record may have been completed by someone who thought us dead (pid reuse aside,
      // that only happens if our thread id is gone, i.e. never while we run): check it is ours.
      if (u32[r] === RECORD_COPYING && u32[r + 2] === this.me) {
        if (used < l.count) {
          let end = l.start + l.count;
          if (end >= n) end -= n;
          let newEnd = l.start + used;
          if (newEnd >= n) newEnd -= n;
          if (u32[ringWord + W_LEASE] === end && ((u32[ringWord + W_NEXT]! - 1) >>> 0) === l.record) {
            u32[ringWord + W_LEASE] = newEnd; // give the slots back
            u32[r + 3] = l.start | (newEnd << 16);
          } else {
            emptySlots(u32, this.sp.u16, ring, n, newEnd, l.count - used);
          }
        }
        u32[r] = RECORD_DONE;
        moved = this.retire(ring);
      }
    }
    const k = (ring + L.KR_PKTS) >>> 3;
    f64[k] = f64[k]! + packets;
    f64[k + 1] = f64[k + 1]! + bytes;
    f64[k + 2] = f64[k + 2]! + drops;
    this.unlock(ring);
    return moved;
  }

  /**
   * Adds to the counters of `ring` under its lease lock, with no lease taken: drops, and
   * packets delivered elsewhere on the port's behalf (straight onto an attached interface).
   */
  countOnly(ring: number, drops: number, f64: Float64Array, packets = 0, bytes = 0): void {
    this.lock(ring);
    const k = (ring + L.KR_PKTS) >>> 3;
    f64[k] = f64[k]! + packets;
    f64[k + 1] = f64[k + 1]! + bytes;
    f64[k + 2] = f64[k + 2]! + drops;
    this.unlock(ring);
  }

  /** Retires the done records at the front; moves the published tail. Lock held. */
  private retire(ring: number): boolean {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    this.assertLockHeld(ring);
    const table = u32[ringWord + W_TABLE]! >>> 2;
    let first = u32[ringWord + W_FIRST]!;
    const next = u32[ringWord + W_NEXT]!;
    let tail = -1;
    while (first !== next) {
      const r = table + 4 * (first % LEASE_RECORDS);
      if (u32[r] !== RECORD_DONE) break;
      tail = u32[r + 3]! >>> 16;
      u32[r] = RECORD_FREE;
      first = (first + 1) >>> 0;
    }
    u32[ringWord + W_FIRST] = first;
    if (tail < 0) return false;
    Atomics.store(u32, ringWord + W_SHADOW, tail);
    return true;
  }

  /**
   * Completes the leases of dead owners as empty slots. Lock held. Returns true if any was
   * found (the published tail may have moved).
   */
  reclaimDead(ring: number, n: number): boolean {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    this.assertLockHeld(ring);
    const table = u32[ringWord + W_TABLE]! >>> 2;
    const next = u32[ringWord + W_NEXT]!;
    let found = false;
    for (let i = u32[ringWord + W_FIRST]!; i !== next; i = (i + 1) >>> 0) {
      const r = table + 4 * (i % LEASE_RECORDS);
      if (u32[r] !== RECORD_COPYING) continue;
      const tid = u32[r + 2]!;
      if (tid === this.me || native.processAlive(tid)) continue;
      const se = u32[r + 3]!;
      const start = se & 0xffff, end = se >>> 16;
      if (start < n && end < n) emptySlots(u32, this.sp.u16, ring, n, start, end >= start ? end - start : end + n - start);
      u32[r] = RECORD_DONE;
      found = true;
    }
    if (found) this.retire(ring);
    return found;
  }

  /**
   * Receiver side: if leases are outstanding, completes those of dead owners. Cheap when there
   * are none (two loads). Returns true if the published tail moved.
   */
  rescue(ring: number, n: number): boolean {
    const u32 = this.sp.u32;
    const ringWord = ring >>> 2;
    if (Atomics.load(u32, ringWord + W_FIRST) === Atomics.load(u32, ringWord + W_NEXT)) return false;
    this.lock(ring);
    const moved = this.reclaimDead(ring, n);
    this.unlock(ring);
    return moved;
  }
}

/** Makes `count` slots from `start` empty packets (length 0, no flags). */
function emptySlots(u32: Uint32Array, u16: Uint16Array, ring: number, n: number, start: number, count: number): void {
  const slots = (ring >>> 2) + W_SLOTS;
  for (let k = 0, i = start; k < count; k++) {
    const slotWord = slots + SLOT_WORDS * i;
    setSlotLenAtWord(u16, slotWord, 0);
    setSlotFlagsAtWord(u16, slotWord, 0);
    i = i + 1 === n ? 0 : i + 1;
  }
}
