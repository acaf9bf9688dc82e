/**
 * One region = one netmap allocator (a mem_id): a header, an object area of 4 KiB pages holding
 * netmap_if and ring objects, and a pool of fixed-size packet buffers addressed by index.
 * Indices 0 and 1 are reserved, as in netmap: 0 terminates lists and marks "no buffer".
 * All sizes are fixed when the region is created. Callers hold the registry lock.
 */
import type { AddressSpace } from './space.js';
import { assert, fail } from '../errors.js';
import {
  MAGIC_REGION, LAYOUT_VERSION, PAGE_SIZE, RH_MAGIC, RH_LAYOUT, RH_MEM_ID, RH_SIZE, RH_PAGES_OFFSET,
  RH_NUM_PAGES, RH_BUF_OFFSET, RH_NUM_BUFS, RH_BUF_SIZE, RH_FREE_TOP, RH_FREE_STACK, RH_PAGE_MAP,
  RH_HEADER_SIZE, RH_FREE_BITS,
} from './layout.js';

export interface RegionGeometry { numPages: number; numBufs: number; bufSize: number }

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Bytes a region of this geometry occupies (a multiple of the page size). */
export function regionBytes(g: RegionGeometry): number {
  const stack = roundUp(4 * g.numBufs, PAGE_SIZE);
  const pageMap = roundUp(g.numPages, PAGE_SIZE);
  const bits = roundUp(Math.ceil(g.numBufs / 8), PAGE_SIZE);
  return RH_HEADER_SIZE + stack + bits + pageMap + g.numPages * PAGE_SIZE + roundUp(g.numBufs * g.bufSize, PAGE_SIZE);
}

/** Where a region's parts start: free stack, free bits, page map, object pages, buffer pool. */
function regionParts(g: RegionGeometry): { stackOffset: number; bitsOffset: number; pageMapOffset: number; pagesOffset: number; bufOffset: number } {
  const stackOffset = RH_HEADER_SIZE;
  const bitsOffset = stackOffset + roundUp(4 * g.numBufs, PAGE_SIZE);
  const pageMapOffset = bitsOffset + roundUp(Math.ceil(g.numBufs / 8), PAGE_SIZE);
  const pagesOffset = pageMapOffset + roundUp(g.numPages, PAGE_SIZE);
  return { stackOffset, bitsOffset, pageMapOffset, pagesOffset, bufOffset: pagesOffset + g.numPages * PAGE_SIZE };
}

/** Bytes before a region's buffer pool: its header, free lists and object pages (rings, netmap_if). */
export function regionMetadataBytes(g: RegionGeometry): number {
  return regionParts(g).bufOffset;
}

/** Writes a fresh header and free lists into a region at space offset `base` whose metadata (regionMetadataBytes) is zero-filled. */
export function initRegion(sp: AddressSpace, base: number, memId: number, g: RegionGeometry): void {
  assert(g.numBufs >= 2 && g.bufSize % 64 === 0, 'bad region geometry');
  const u32 = sp.u32;
  const h = base >>> 2;
  const { stackOffset, bitsOffset, pageMapOffset, pagesOffset, bufOffset } = regionParts(g);
  u32[h + RH_LAYOUT / 4] = LAYOUT_VERSION;
  u32[h + RH_MEM_ID / 4] = memId;
  u32[h + RH_SIZE / 4] = regionBytes(g);
  u32[h + RH_PAGES_OFFSET / 4] = pagesOffset;
  u32[h + RH_NUM_PAGES / 4] = g.numPages;
  u32[h + RH_BUF_OFFSET / 4] = bufOffset;
  u32[h + RH_NUM_BUFS / 4] = g.numBufs;
  u32[h + RH_BUF_SIZE / 4] = g.bufSize;
  u32[h + RH_FREE_STACK / 4] = stackOffset;
  u32[h + RH_PAGE_MAP / 4] = pageMapOffset;
  u32[h + RH_FREE_BITS / 4] = bitsOffset;
  // Free stack: lowest indices on top, so a fresh port gets buffers 2, 3, 4, ...
  const s = (base + stackOffset) >>> 2;
  const top = g.numBufs - 2;
  for (let k = 0, idx = g.numBufs - 1; k < top; k++, idx--) u32[s + k] = idx;
  // every index free but the reserved 0 and 1: whole bytes at once (a bit at a time, this ran
  // interpreted for most of its 65536 turns in a fresh process)
  const u8 = sp.u8, bits = base + bitsOffset, full = g.numBufs >>> 3;
  u8.fill(0xff, bits, bits + full);
  if ((g.numBufs & 7) !== 0) u8[bits + full] = (1 << (g.numBufs & 7)) - 1;
  u8[bits] = u8[bits]! & ~3;
  u32[h + RH_FREE_TOP / 4] = top;
  Atomics.store(sp.i32, h + RH_MAGIC / 4, MAGIC_REGION);
}

export function checkRegion(sp: AddressSpace, base: number, name: string): void {
  const magic = sp.u32[(base + RH_MAGIC) >>> 2];
  const layout = sp.u32[(base + RH_LAYOUT) >>> 2];
  if (magic !== MAGIC_REGION) fail('EINVAL', `${name} is not a netmap-ts memory region (bad magic)`);
  if (layout !== LAYOUT_VERSION) fail('EINVAL', `${name} has layout version ${layout}, this netmap-ts uses ${LAYOUT_VERSION}`);
}

export class Region {
  readonly base: number;
  readonly bufBase: number;
  readonly numBufs: number;
  readonly bufSize: number;
  readonly memId: number;
  readonly numPages: number;
  readonly pagesBase: number;
  private readonly bitsBase: number;
  private readonly sp: AddressSpace;

  constructor(sp: AddressSpace, base: number) {
    this.sp = sp;
    this.base = base;
    const u32 = sp.u32;
    const h = base >>> 2;
    this.memId = u32[h + RH_MEM_ID / 4]!;
    this.bufBase = base + u32[h + RH_BUF_OFFSET / 4]!;
    this.numBufs = u32[h + RH_NUM_BUFS / 4]!;
    this.bufSize = u32[h + RH_BUF_SIZE / 4]!;
    this.numPages = u32[h + RH_NUM_PAGES / 4]!;
    this.pagesBase = base + u32[h + RH_PAGES_OFFSET / 4]!;
    this.bitsBase = base + u32[h + RH_FREE_BITS / 4]!;
  }

  /** True when buffer `idx` is in the free pool. */
  isFree(idx: number): boolean {
    return idx >= 2 && idx < this.numBufs && (this.sp.u8[this.bitsBase + (idx >>> 3)]! & (1 << (idx & 7))) !== 0;
  }

  /**
   * The highest buffer index not in the free pool (held by a ring slot, a user's extra buffers,
   * or reserved: at least 1). A fresh region hands out its lowest indices first, so this is the
   * extent of what is in use.
   */
  highestInUse(): number {
    const u8 = this.sp.u8, bits = this.bitsBase;
    let idx = this.numBufs - 1;
    while (idx >= 2) {
      if ((idx & 7) === 7 && u8[bits + (idx >>> 3)] === 0xff) { idx -= 8; continue; }
      if ((u8[bits + (idx >>> 3)]! & (1 << (idx & 7))) === 0) return idx;
      idx--;
    }
    return 1;
  }

  freeBuffers(): number {
    return this.sp.u32[(this.base + RH_FREE_TOP) >>> 2]!;
  }

  /** Takes one buffer index off the free stack; 0 when the pool is empty. */
  allocBuf(): number {
    const u32 = this.sp.u32;
    const topWord = (this.base + RH_FREE_TOP) >>> 2;
    const top = u32[topWord]!;
    if (top === 0) return 0;
    const stack = (this.base + u32[(this.base + RH_FREE_STACK) >>> 2]!) >>> 2;
    u32[topWord] = top - 1;
    const idx = u32[stack + top - 1]!;
    this.sp.u8[this.bitsBase + (idx >>> 3)]! &= ~(1 << (idx & 7));
    return idx;
  }

  /** Returns a buffer to the pool; invalid indices (<2, out of range) are ignored. */
  freeBuf(idx: number): void {
    if (idx < 2 || idx >= this.numBufs) return;
    const u8 = this.sp.u8;
    const bit = 1 << (idx & 7);
    if ((u8[this.bitsBase + (idx >>> 3)]! & bit) !== 0) return; // already free: a double free, ignore it
    u8[this.bitsBase + (idx >>> 3)]! |= bit;
    const u32 = this.sp.u32;
    const topWord = (this.base + RH_FREE_TOP) >>> 2;
    const top = u32[topWord]!;
    const stack = (this.base + u32[(this.base + RH_FREE_STACK) >>> 2]!) >>> 2;
    u32[stack + top] = idx;
    u32[topWord] = top + 1;
  }

  /** Space offset of buffer `idx`. */
  bufOffset(idx: number): number {
    return this.bufBase + idx * this.bufSize;
  }

  /** Allocates `bytes` of zeroed object memory (whole pages); returns its space offset. */
  allocObject(bytes: number): number {
    const pages = Math.ceil(bytes / PAGE_SIZE);
    const u8 = this.sp.u8;
    const map = this.base + this.sp.u32[(this.base + RH_PAGE_MAP) >>> 2]!;
    let run = 0;
    for (let p = 0; p < this.numPages; p++) {
      if (u8[map + p] !== 0) { run = 0; continue; }
      run++;
      if (run === pages) {
        const first = p - pages + 1;
        u8[map + first] = 2; // first page of an object
        for (let q = first + 1; q <= p; q++) u8[map + q] = 1;
        const offset = this.pagesBase + first * PAGE_SIZE;
        u8.fill(0, offset, offset + pages * PAGE_SIZE);
        return offset;
      }
    }
    return fail('ENOMEM', `memory region ${this.memId} has no room for a ${bytes}-byte object`);
  }

  freeObject(offset: number): void {
    const u8 = this.sp.u8;
    const map = this.base + this.sp.u32[(this.base + RH_PAGE_MAP) >>> 2]!;
    let p = (offset - this.pagesBase) / PAGE_SIZE;
    if (!Number.isInteger(p) || p < 0 || p >= this.numPages || u8[map + p] !== 2) return;
    u8[map + p] = 0;
    for (p++; p < this.numPages && u8[map + p] === 1; p++) u8[map + p] = 0;
  }
}
