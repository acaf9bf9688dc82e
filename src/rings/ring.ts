/**
 * A netmap ring as seen by its user: a view over a `struct netmap_ring` in shared memory.
 * head, cur and tail are read and written straight in shared memory; the helpers mirror
 * netmap_user.h (nm_ring_next, nm_ring_space, nm_ring_empty, NETMAP_BUF). Everything here is a
 * few typed-array operations, meant to be inlined in per-packet loops.
 */
import type { AddressSpace } from '../memory/space.js';
import * as L from '../memory/layout.js';

export class Ring {
  readonly sp: AddressSpace;
  /** Space offset of the netmap_ring. */
  readonly offset: number;
  readonly numSlots: number;
  readonly bufSize: number;
  /** Space offset of buffer 0 of this ring's allocator. */
  readonly bufBase: number;
  /** Ring index; host rings are numbered after NIC rings, as in netmap. */
  readonly id: number;
  /** 0 TX, 1 RX. */
  readonly dir: number;
  /** Number of buffers of the allocator (valid indices are 2 .. numBufs-1). */
  readonly numBufs: number;
  /** Whether this is a host ring. */
  readonly host: boolean;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private readonly w: number;
  /**
   * Index into sp.u32 of slot 0 (netmap's ring->slot[]): slot i is the four words from
   * slotWord + 4 * i: buf_idx, len | flags << 16, ptr (low), ptr (high). For loops over many
   * slots, which then need no method call and no wrap test per slot (see bench/pipes.ts).
   */
  readonly slotWord: number;

  constructor(sp: AddressSpace, offset: number, numBufs: number, host: boolean) {
    this.sp = sp;
    this.offset = offset;
    this.u32 = sp.u32;
    this.u16 = sp.u16;
    this.w = offset >>> 2;
    this.slotWord = (offset + L.RING_SLOTS) >>> 2;
    this.numSlots = sp.u32[this.w + L.RING_NUM_SLOTS / 4]!;
    this.bufSize = sp.u32[this.w + L.RING_BUF_SIZE / 4]!;
    this.bufBase = offset + Number(sp.view.getBigInt64(offset + L.RING_BUF_OFS, true));
    this.id = sp.u16[(offset + L.RING_ID) >>> 1]!;
    this.dir = sp.u16[(offset + L.RING_DIR) >>> 1]!;
    this.numBufs = numBufs;
    this.host = host;
  }

  get head(): number { return this.u32[this.w + 5]!; }
  set head(v: number) { this.u32[this.w + 5] = v; }
  get cur(): number { return this.u32[this.w + 6]!; }
  set cur(v: number) { this.u32[this.w + 6] = v; }
  get tail(): number { return this.u32[this.w + 7]!; }
  get flags(): number { return this.u32[this.w + 8]!; }
  set flags(v: number) { this.u32[this.w + 8] = v; }

  /** Time of the last rxsync (struct timeval), as seconds and microseconds. */
  get tsSec(): number { return this.u32[(this.offset + L.RING_TS_SEC) >>> 2]!; }
  get tsUsec(): number { return this.u32[(this.offset + L.RING_TS_USEC) >>> 2]!; }

  /** nm_ring_next */
  next(i: number): number {
    return i + 1 === this.numSlots ? 0 : i + 1;
  }

  /** nm_ring_space: slots between head and tail. */
  space(): number {
    const d = this.u32[this.w + 7]! - this.u32[this.w + 5]!;
    return d < 0 ? d + this.numSlots : d;
  }

  /** nm_ring_empty */
  empty(): boolean {
    return this.u32[this.w + 5] === this.u32[this.w + 7];
  }

  /** nm_tx_pending: slots handed over but not yet completed. */
  txPending(): boolean {
    return this.next(this.u32[this.w + 7]!) !== this.u32[this.w + 5];
  }

  /** Moves head and cur together to `i` (the common case: release everything before i). */
  advance(i: number): void {
    this.u32[this.w + 5] = i;
    this.u32[this.w + 6] = i;
  }

  slotBufIdx(i: number): number { return this.u32[this.slotWord + 4 * i]!; }
  setSlotBufIdx(i: number, idx: number): void { this.u32[this.slotWord + 4 * i] = idx; }
  slotLen(i: number): number { return this.u16[(this.slotWord + 4 * i) * 2 + 2]!; }
  setSlotLen(i: number, len: number): void { this.u16[(this.slotWord + 4 * i) * 2 + 2] = len; }
  slotFlags(i: number): number { return this.u16[(this.slotWord + 4 * i) * 2 + 3]!; }
  setSlotFlags(i: number, flags: number): void { this.u16[(this.slotWord + 4 * i) * 2 + 3] = flags; }

  /** Space offset (index into sp.u8) of buffer `idx` (NETMAP_BUF). */
  bufOffset(idx: number): number {
    return this.bufBase + idx * this.bufSize;
  }

  /** Space offset of the buffer of slot `i`. Invalid indices give the offset of buffer 0. */
  slotBufOffset(i: number): number {
    const idx = this.u32[this.slotWord + 4 * i]!;
    return this.bufBase + (idx < this.numBufs ? idx : 0) * this.bufSize;
  }

  /** Inverse of bufOffset (NETMAP_BUF_IDX). */
  bufIndex(offset: number): number {
    return Math.floor((offset - this.bufBase) / this.bufSize);
  }

  /** Whether buffer index `idx` may be put in a slot of this ring. */
  validBuf(idx: number): boolean {
    return idx >= 2 && idx < this.numBufs;
  }

  // Counters kept in the hidden ring state (packets/bytes/drops through this ring).
  get packets(): number { return this.sp.f64[(this.offset + L.KR_PKTS) >>> 3]!; }
  get bytes(): number { return this.sp.f64[(this.offset + L.KR_BYTES) >>> 3]!; }
  get drops(): number { return this.sp.f64[(this.offset + L.KR_DROPS) >>> 3]!; }
}
