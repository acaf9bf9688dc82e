/**
 * The monitored side of monitor ports: what the thread that moves a port's frames does for the
 * monitors watching that port (netmap_monitor.c's parent-side hooks).
 *
 * A `Taps` object belongs to one thread and one monitored port. `present()` is the only thing
 * the data path does when no monitor is open: one load of the port's PE_MONITORS word. When it is
 * not 0 the thread refreshes its view of the port's monitors (their RX rings, regions mapped in
 * this thread) whenever PE_MON_GEN moved, then either copies the frames into every copy monitor
 * of the ring (`begin`/`put`/`end`, or `copySlots` for a ring segment), or swaps buffers with
 * the zero-copy monitor (`swapSlots`).
 *
 * A monitor RX ring is fed like a pipe's RX ring: the monitored side writes slots from
 * KR_SHADOW_TAIL on and publishes the new value; the monitor's rxsync releases up to KR_HWCUR.
 * Several threads may feed one monitor ring (a VALE port's senders, its own txsync), so writers
 * take the ring's KR_MON_LOCK; a writer that finds it held spins for a moment and then drops
 * its frames (counted): the monitored port never waits for a monitor. A writer killed holding
 * the lock is taken over (thread-id liveness, as every lock here).
 */
import { registry, type Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';
import * as sync from '../rings/sync.js';
import { ownerAlive, selfTid } from '../memory/lock.js';
import type { AddressSpace } from '../memory/space.js';
import type { Ring } from '../rings/ring.js';
import { SMALL_COPY, copyBlocks, SLOT_WORDS, SLOT_WORD_BUF_IDX as BUF, SLOT_WORD_LEN_FLAGS as LEN_FLAGS, SLOT_LEN_HALF, SLOT_FLAGS_HALF } from '../rings/slot.js';

const W_HWCUR = L.KR_HWCUR >>> 2, W_SHADOW = L.KR_SHADOW_TAIL >>> 2, W_LOCK = L.KR_MON_LOCK >>> 2;
/** Spins on a held writer lock before the frames are dropped instead. */
const LOCK_SPINS = 4000;

/** One monitor RX ring fed from one ring of the monitored port. */
interface Target {
  /** Space offset of the monitor's RX ring. */
  ring: number;
  numSlots: number;
  bufBase: number;
  bufSize: number;
  numBufs: number;
  /** Ring of the monitored port: direction (L.RING_DIR_*) and netmap-order index in that direction. */
  dir: number;
  parentRing: number;
  zcopy: boolean;
  /** Buffers word aligned, whole 64-byte blocks: copyBlocks' rounding stays inside them. */
  blocks: boolean;
}

/** Maps a parent ring (direction, index NIC then host) to the monitor RX ring that mirrors it. */
export function monitorRingOf(reg: Registry, parent: number, dir: number, k: number): number {
  const nic = dir === L.RING_DIR_TX ? reg.portGet(parent, L.PE_NUM_TX) : reg.portGet(parent, L.PE_NUM_RX);
  if (k < nic) return k;
  return Math.max(reg.portGet(parent, L.PE_NUM_TX), reg.portGet(parent, L.PE_NUM_RX)) + (k - nic);
}

export class Taps {
  private readonly reg: Registry;
  private readonly sp: AddressSpace;
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly countWord: number;
  private readonly genWord: number;
  private readonly portGenWord: number;
  private portGen = -1;
  private readonly me = selfTid();
  private gen = -1;
  private targets: Target[] = [];
  /** Copy targets and the zero-copy target per parent ring: [dir][ring] -> target indices. */
  private copyOf: number[][][] = [[], []];
  private zcopyOf: number[][] = [[], []];

  // the batch being written by begin/put/end
  private t: Target | null = null;
  private pos = 0;
  private room = 0;
  private wrote = 0;
  private bytes = 0;
  private dropped = 0;
  private lastWord = -1;

  constructor(readonly portIndex: number) {
    this.reg = registry();
    this.sp = this.reg.sp;
    this.u8 = this.sp.u8;
    this.u16 = this.sp.u16;
    this.u32 = this.sp.u32;
    this.i32 = this.sp.i32;
    this.f64 = this.sp.f64;
    this.countWord = this.reg.portWord(portIndex, L.PE_MONITORS);
    this.genWord = this.reg.portWord(portIndex, L.PE_MON_GEN);
    this.portGenWord = this.reg.portWord(portIndex, L.PE_GENERATION);
  }

  /** Whether any monitor watches the port (one load when none does). */
  present(): boolean {
    if (this.u32[this.countWord] === 0) return false;
    if (Atomics.load(this.u32, this.genWord) !== this.gen || this.u32[this.portGenWord] !== this.portGen) this.refresh();
    return this.targets.length > 0;
  }

  /** Copy monitors of parent ring (dir, k): indices for begin(); empty when none. */
  copyTargets(dir: number, k: number): readonly number[] {
    return this.copyOf[dir]![k] ?? NONE;
  }

  /** The zero-copy monitor of parent ring (dir, k), -1 none. */
  zcopyTarget(dir: number, k: number): number {
    return this.zcopyOf[dir]![k] ?? -1;
  }

  /** Re-reads the port's monitors from the registry (under its lock). */
  private refresh(): void {
    const reg = this.reg;
    reg.locked(() => {
      this.gen = Atomics.load(this.u32, this.genWord);
      this.portGen = this.u32[this.portGenWord]!;
      this.targets = [];
      this.copyOf = [[], []];
      this.zcopyOf = [[], []];
      const parent = this.portIndex;
      if (!reg.portLive(parent)) return;
      const ntx = reg.portGet(parent, L.PE_NUM_TX) + reg.portGet(parent, L.PE_NUM_HOST_TX);
      const nrx = reg.portGet(parent, L.PE_NUM_RX) + reg.portGet(parent, L.PE_NUM_HOST_RX);
      const parentGen = reg.portGet(parent, L.PE_GENERATION);
      for (let m = 0; m < L.MAX_PORTS; m++) {
        if (reg.portGet(m, L.PE_STATE) !== L.PORT_STATE_LIVE || reg.portGet(m, L.PE_KIND) !== L.PORT_KIND_MONITOR) continue;
        if (reg.portGet(m, L.PE_PARENT) !== parent + 1 || reg.portGet(m, L.PE_MON_PARENT_GEN) !== parentGen) continue;
        let region;
        try { region = reg.region(reg.portGet(m, L.PE_MEM_ID)); } catch { continue; }
        const flags = reg.portGet(m, L.PE_MON_FLAGS);
        const range = reg.portGet(m, L.PE_MON_RANGE);
        const first = range & 0xffff, end = range >>> 16;
        const monRx = reg.portGet(m, L.PE_NUM_RX) + reg.portGet(m, L.PE_NUM_HOST_RX);
        const zcopy = (flags & L.MON_FLAG_ZCOPY) !== 0;
        for (const [dir, count, want] of [[L.RING_DIR_TX, ntx, L.MON_FLAG_TX], [L.RING_DIR_RX, nrx, L.MON_FLAG_RX]] as const) {
          if ((flags & want) === 0) continue;
          for (let k = 0; k < count; k++) {
            const mk = monitorRingOf(reg, parent, dir, k);
            if (mk < first || mk >= end || mk >= monRx) continue;
            // monitor rings are RX rings only: ring table index = mk
            const ring = reg.ringOffset(m, mk);
            const t: Target = {
              ring, numSlots: this.u32[(ring + L.RING_NUM_SLOTS) >>> 2]!,
              bufBase: region.bufBase, bufSize: region.bufSize, numBufs: region.numBufs,
              dir, parentRing: k, zcopy,
              blocks: (region.bufBase & 7) === 0 && (region.bufSize & 63) === 0,
            };
            const id = this.targets.push(t) - 1;
            if (zcopy) this.zcopyOf[dir]![k] = id;
            else (this.copyOf[dir]![k] ??= []).push(id);
          }
        }
      }
    });
  }

  // ---- copies ------------------------------------------------------------------------------------

  /**
   * Starts a batch of up to `slots` slots into target `id`: takes the writer lock (or drops the
   * batch, counted, if another writer holds it too long) and returns how many fit; what does not
   * is counted as dropped by end().
   */
  begin(id: number, slots: number): number {
    const t = this.targets[id]!;
    this.t = t;
    this.wrote = 0;
    this.bytes = 0;
    this.lastWord = -1;
    const i32 = this.i32, w = (t.ring >>> 2) + W_LOCK;
    let owner = Atomics.compareExchange(i32, w, 0, this.me);
    for (let spins = 0; owner !== 0; spins++) {
      if (owner === -1 || spins >= LOCK_SPINS) { // -1: the monitor is going away
        if (owner === -1) spins = LOCK_SPINS;
        if (owner === this.me || ownerAlive(owner) || Atomics.compareExchange(i32, w, owner, this.me) !== owner) {
          this.room = 0;
          this.dropped = slots;
          this.t = null;
          sync.count(this.sp, t.ring, 0, 0, slots);
          return 0;
        }
        break;
      }
      owner = Atomics.compareExchange(i32, w, 0, this.me);
    }
    const u32 = this.u32, rw = t.ring >>> 2, n = t.numSlots;
    let pos = u32[rw + W_SHADOW]!;
    let hwcur = Atomics.load(u32, rw + W_HWCUR);
    if (pos >= n) pos = 0;
    if (hwcur >= n) hwcur = pos;
    // free: from pos up to (not including) the slot before hwcur (one slot stays empty)
    const space = (hwcur + n - 1 - pos) % n;
    this.pos = pos;
    this.room = Math.min(space, slots);
    this.dropped = slots - this.room;
    return this.room;
  }

  /**
   * Copies one slot's bytes (`len` at space offset `src`) into the batch; `flags` become the
   * slot's flags (NS_MOREFRAG, NS_TXMON). Lengths beyond the monitor's buffers are truncated.
   */
  put(src: number, len: number, flags: number): void {
    const t = this.t;
    if (t === null || this.wrote >= this.room) return;
    const u32 = this.u32;
    const word = ((t.ring + L.RING_SLOTS) >>> 2) + SLOT_WORDS * this.pos;
    const idx = u32[word + BUF]!;
    if (idx < 2 || idx >= t.numBufs || src < 0) len = 0;
    else {
      if (len > t.bufSize) len = t.bufSize;
      const dst = t.bufBase + idx * t.bufSize;
      // (sources are netmap buffers, or frames a VALE sender may read 64 bytes past: see forward.ts)
      if (t.blocks && len <= SMALL_COPY && (src & 7) === 0) copyBlocks(this.f64, src >>> 3, dst >>> 3, len);
      else this.u8.copyWithin(dst, src, src + len);
    }
    u32[word + LEN_FLAGS] = len | (flags << 16);
    this.lastWord = word;
    this.bytes += len;
    this.wrote++;
    this.pos = this.pos + 1 === t.numSlots ? 0 : this.pos + 1;
  }

  /**
   * Copies a batch of `count` frames into target `id` (begin, the copies, end): frame k is entry
   * `e = list[k] >>> 1` of `off`/`len` (its space offset, -1 none, and length), a fragment
   * followed by more when `list[k] & 1`; `flags` (NS_TXMON or 0) go on every slot. The VALE
   * forwarder's path: one tight loop of locals per batch (no call per frame), frames up to
   * SMALL_COPY bytes copied with copyBlocks as the forwarder's own delivery does.
   */
  copyEntries(id: number, count: number, list: Int32Array, off: Float64Array, len: Uint16Array, flags: number): void {
    const room = this.begin(id, count);
    const t = this.t;
    if (t !== null && room > 0) {
      const u8 = this.u8, u32 = this.u32, f64 = this.f64;
      const slots = (t.ring + L.RING_SLOTS) >>> 2, n = t.numSlots;
      const base = t.bufBase, size = t.bufSize, numBufs = t.numBufs, blocks = t.blocks;
      let pos = this.pos, bytes = 0, word = -1;
      for (let k = 0; k < room; k++) {
        const v = list[k]!, e = v >>> 1;
        word = slots + SLOT_WORDS * pos;
        const idx = u32[word + BUF]!, src = off[e]!;
        let l = len[e]!;
        if (idx < 2 || idx >= numBufs || src < 0) l = 0;
        else {
          if (l > size) l = size;
          const dst = base + idx * size;
          if (blocks && l <= SMALL_COPY && (src & 7) === 0) copyBlocks(f64, src >>> 3, dst >>> 3, l);
          else u8.copyWithin(dst, src, src + l);
        }
        u32[word + LEN_FLAGS] = l | ((flags | ((v & 1) * L.NS_MOREFRAG)) << 16);
        bytes += l;
        pos = pos + 1 === n ? 0 : pos + 1;
      }
      this.pos = pos;
      this.wrote = room;
      this.bytes = bytes;
      this.lastWord = word;
    }
    this.end();
  }

  /** Publishes the batch, counts it and what was dropped, wakes the monitor's poller. */
  end(): void {
    const t = this.t;
    if (t === null) return;
    this.t = null;
    // a fragment chain cut by a full ring must not run into whatever comes next
    if (this.wrote < this.room + this.dropped && this.lastWord >= 0) {
      this.u16[2 * this.lastWord + SLOT_FLAGS_HALF] = this.u16[2 * this.lastWord + SLOT_FLAGS_HALF]! & ~L.NS_MOREFRAG;
    }
    const rw = t.ring >>> 2;
    if (this.wrote > 0) Atomics.store(this.u32, rw + W_SHADOW, this.pos);
    Atomics.store(this.i32, rw + W_LOCK, 0);
    sync.count(this.sp, t.ring, this.wrote, this.bytes, this.dropped + (this.room - this.wrote));
    if (this.wrote > 0) sync.notify(this.sp, t.ring);
  }

  /**
   * Copies slots [from, to) of parent ring `ring` into every copy monitor of that ring. Used
   * after the ring's own sync: for TX the slots it just handed over, for RX those it just
   * published, while their buffers are still untouched by the user.
   */
  copySlots(ring: Ring, from: number, to: number): void {
    const ids = this.copyTargets(ring.dir, ring.id);
    if (ids.length === 0 || from === to) return;
    const n = ring.numSlots;
    const count = to >= from ? to - from : to + n - from;
    const u32 = this.u32, slots = (ring.offset + L.RING_SLOTS) >>> 2;
    const txmon = ring.dir === L.RING_DIR_TX ? L.NS_TXMON : 0;
    const numBufs = ring.numBufs, bufSize = ring.bufSize, bufBase = ring.bufBase;
    for (let j = 0; j < ids.length; j++) {
      this.begin(ids[j]!, count);
      for (let i = from, c = 0; c < count; c++) {
        const w = slots + SLOT_WORDS * i;
        const idx = u32[w + BUF]!, lf = u32[w + LEN_FLAGS]!;
        const len = lf & 0xffff;
        const ok = idx >= 2 && idx < numBufs && len <= bufSize;
        this.put(ok ? bufBase + idx * bufSize : -1, len, ((lf >>> 16) & L.NS_MOREFRAG) | txmon);
        i = i + 1 === n ? 0 : i + 1;
      }
      this.end();
    }
  }

  // ---- zero copy ---------------------------------------------------------------------------------

  /**
   * Hands the buffers of slots [from, to) of parent ring `ring` (slots the port is done with:
   * transmitted TX slots, RX slots the user released) to its zero-copy monitor, taking free
   * buffers of the monitor in exchange (NS_BUF_CHANGED on the parent's slot). When the monitor
   * ring is full the rest keep their buffers and count as the monitor's drops.
   */
  swapSlots(ring: Ring, from: number, to: number): void {
    const id = this.zcopyTarget(ring.dir, ring.id);
    if (id < 0 || from === to) return;
    const n = ring.numSlots;
    const count = to >= from ? to - from : to + n - from;
    const room = this.begin(id, count);
    const t = this.targets[id]!;
    const u32 = this.u32, u16 = this.u16;
    const pSlots = (ring.offset + L.RING_SLOTS) >>> 2, mSlots = (t.ring + L.RING_SLOTS) >>> 2;
    const txmon = ring.dir === L.RING_DIR_TX ? L.NS_TXMON : 0;
    const numBufs = ring.numBufs;
    let i = from;
    for (let c = 0; c < room; c++) {
      const pw = pSlots + SLOT_WORDS * i, mw = mSlots + SLOT_WORDS * this.pos;
      const pIdx = u32[pw + BUF]!, mIdx = u32[mw + BUF]!;
      const len = u16[2 * pw + SLOT_LEN_HALF]!, pFlags = u16[2 * pw + SLOT_FLAGS_HALF]!;
      if (pIdx >= 2 && pIdx < numBufs && mIdx >= 2 && mIdx < numBufs && len <= ring.bufSize) {
        u32[mw + BUF] = pIdx;
        u32[mw + LEN_FLAGS] = len | (((pFlags & L.NS_MOREFRAG) | txmon | L.NS_BUF_CHANGED) << 16);
        u32[pw + BUF] = mIdx;
        u16[2 * pw + SLOT_FLAGS_HALF] = pFlags | L.NS_BUF_CHANGED;
        this.bytes += len;
      } else {
        u32[mw + LEN_FLAGS] = (txmon << 16); // nothing to hand over: an empty slot keeps the count
      }
      this.lastWord = mw;
      this.wrote++;
      this.pos = this.pos + 1 === t.numSlots ? 0 : this.pos + 1;
      i = i + 1 === n ? 0 : i + 1;
    }
    this.end();
  }
}

const NONE: readonly number[] = [];

/** This thread's Taps of port `index` (one per port and thread, made on first use). */
const tapsByPort = new Map<number, Taps>();
export function tapsOf(index: number): Taps {
  let t = tapsByPort.get(index);
  if (t === undefined) { t = new Taps(index); tapsByPort.set(index, t); }
  return t;
}
