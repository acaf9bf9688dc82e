/**
 * A guest's memory table (SET_MEM_TABLE): each region's guest physical address, size, address in
 * QEMU's process and offset in the descriptor QEMU sent, mapped into this thread's address space
 * (space().mapLocal) so that guest buffers and netmap buffers are indices of one byte view and a
 * copy between them is one copyWithin. Every address a guest gives goes through translate(): the
 * whole range must lie inside one mapped region, else -1.
 */
import { space } from '../memory/space.js';
import * as native from '../native/index.js';
import { NetmapError } from '../errors.js';
import { MAX_REGIONS } from './protocol.js';

const PAGE = 4096;

export interface Region {
  /** Guest physical address. */
  readonly gpa: number;
  readonly size: number;
  /** Address in QEMU's process (ring addresses are given this way). */
  readonly uva: number;
  /** Space offset of the region's first byte. */
  readonly at: number;
  /** The mapping (page aligned), to unmap. */
  readonly mapAt: number;
  readonly mapLen: number;
}

/** Reads a u64 as a number; NaN when it does not fit in 53 bits. */
function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? NaN : Number(v);
}

export class GuestMemory {
  private regions: Region[] = [];
  /** Flat copies for the lookups (no object access on the hot path). */
  private gpa = new Float64Array(MAX_REGIONS);
  private uva = new Float64Array(MAX_REGIONS);
  private size = new Float64Array(MAX_REGIONS);
  private at = new Float64Array(MAX_REGIONS);
  private count = 0;

  get mapped(): boolean {
    return this.count > 0;
  }

  /**
   * Replaces the table by the one in `payload` (u32 count, u32 padding, then per region gpa,
   * size, uva, mmap offset as u64), mapping region k from `fds[k]`. The descriptors are closed
   * here in every case (a mapping keeps what it needs). Throws EINVAL on a malformed table.
   */
  set(payload: Buffer, size: number, fds: number[]): void {
    try {
      this.clear();
      if (size < 8) throw new NetmapError('EINVAL', `SET_MEM_TABLE of ${size} bytes`);
      const n = payload.readUInt32LE(0);
      if (n < 1 || n > MAX_REGIONS || size < 8 + n * 32) throw new NetmapError('EINVAL', `SET_MEM_TABLE with ${n} regions in ${size} bytes`);
      if (fds.length !== n) throw new NetmapError('EINVAL', `SET_MEM_TABLE with ${n} regions came with ${fds.length} descriptors`);
      const sp = space();
      for (let k = 0; k < n; k++) {
        const o = 8 + k * 32;
        const gpa = u64(payload, o), len = u64(payload, o + 8), uva = u64(payload, o + 16), off = u64(payload, o + 24);
        if (!Number.isFinite(gpa + len + uva + off) || len === 0 || gpa + len > 2 ** 52 || uva + len > 2 ** 52) {
          throw new NetmapError('EINVAL', `memory region ${k} (guest 0x${gpa.toString(16)}, ${len} bytes, offset ${off}) is out of range`);
        }
        const pageOff = off % PAGE;
        const mapLen = Math.ceil((len + pageOff) / PAGE) * PAGE;
        const mapAt = sp.mapLocal(fds[k]!, mapLen, off - pageOff);
        const region: Region = { gpa, size: len, uva, at: mapAt + pageOff, mapAt, mapLen };
        this.regions.push(region);
        this.gpa[k] = gpa; this.uva[k] = uva; this.size[k] = len; this.at[k] = region.at;
        this.count = k + 1;
      }
    } catch (e) {
      this.clear();
      throw e;
    } finally {
      for (const fd of fds) native.closeFd(fd);
    }
  }

  /** The regions, for logs. */
  describe(): string {
    return this.regions.map((r) => `0x${r.gpa.toString(16)}+${r.size >>> 20} MiB`).join(', ');
  }

  /** Space offset of guest physical [addr, addr+len) when it lies inside one region, else -1. */
  translate(addr: number, len: number): number {
    for (let k = 0; k < this.count; k++) {
      const base = this.gpa[k]!;
      if (addr >= base && addr + len <= base + this.size[k]!) return this.at[k]! + (addr - base);
    }
    return -1;
  }

  /** Space offset of QEMU's address [addr, addr+len) (ring addresses) when inside one region, else -1. */
  translateUser(addr: number, len: number): number {
    for (let k = 0; k < this.count; k++) {
      const base = this.uva[k]!;
      if (addr >= base && addr + len <= base + this.size[k]!) return this.at[k]! + (addr - base);
    }
    return -1;
  }

  /** Unmaps every region. */
  clear(): void {
    const sp = space();
    for (const r of this.regions) sp.unmapLocal(r.mapAt, r.mapLen);
    this.regions = [];
    this.count = 0;
  }
}
