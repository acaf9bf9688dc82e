/**
 * virtio-net headers on VALE ports (netmap_offloadings.c's "mismatch" data path). A port opened
 * with `@conf:vnet-hdr=10|12` carries a virtio-net header before every frame; the switch copies
 * frames between ports of the same header length as they are (forward.ts, super-frames of up to
 * 64 KiB as NS_MOREFRAG chains of 2 KiB buffers), and converts here when the lengths differ:
 *  - into a port with a header: the header is rebuilt at the destination's length (from a port
 *    without one: zeroed; 10 -> 12: the 10 bytes and num_buffers 0; 12 -> 10: the first 10);
 *    GSO super-frames stay whole;
 *  - into a port without one, from a port with one: the header is checked (unknown flag bits or
 *    GSO type: dropped); a GSO super-frame (TCPV4, TCPV6, UDP_L4) is cut into segments of
 *    gso_size payload bytes by the interfaces layer's GsoSplitter (every segment's checksums
 *    computed); a frame with NEEDS_CSUM gets its checksum completed (csum.ts); the header goes.
 * A converted packet is first gathered into a scratch area of this thread (its fragments are in
 * separate buffers), then written into the destination's slots: two copies, on this path only.
 */
import * as L from '../memory/layout.js';
import { SLOT_WORDS, SLOT_LEN_HALF, SLOT_FLAGS_HALF } from '../rings/slot.js';
import { GsoSplitter, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, GSO_ECN } from '../interfaces/gso.js';
import { completeChecksumAt } from '../interfaces/csum.js';
import { mapScratch } from '../interfaces/packet-socket.js';
import { space } from '../memory/space.js';

/** virtio-net header flags. */
export const VNET_F_NEEDS_CSUM = 1, VNET_F_DATA_VALID = 2;
/** Header offsets: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset (u16 LE), num_buffers (12-byte form). */
export const VH_FLAGS = 0, VH_GSO_TYPE = 1, VH_HDR_LEN = 2, VH_GSO_SIZE = 4, VH_CSUM_START = 6, VH_CSUM_OFFSET = 8, VH_NUM_BUFFERS = 10;

/** Scratch: room for the longest chain (64 fragments of 2 KiB) after a header's room. */
const SCRATCH_BYTES = 64 * 2048 + 4096;
const FRAME_AT = 128;
const FRAME_MAX = SCRATCH_BYTES - FRAME_AT - 64;
/** Most segments one super-frame is cut into (a 64 KiB frame with an MSS of 128 bytes). */
export const MAX_SEGMENTS = 512;

export class VnetConverter {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly gso = new GsoSplitter();
  /** Space offset of the scratch area (made on first use: ports that never convert map nothing). */
  private scratch = -1;
  /** Frames written and their bytes by the last convert(). */
  packets = 0;
  bytes = 0;

  constructor(u8: Uint8Array, u16: Uint16Array) {
    this.u8 = u8;
    this.u16 = u16;
  }

  /**
   * Destination slots packet `p` (`frags` entries of `ftOff`/`ftLen`) takes when it goes from a
   * port with a `srcHdr`-byte header to one with `dstHdr` bytes and `dSize`-byte buffers; 0 when
   * it is dropped (malformed header, a super-frame that cannot be cut, too long).
   */
  plan(ftOff: Float64Array, ftLen: Uint16Array, p: number, frags: number, srcHdr: number, dstHdr: number, dSize: number): number {
    let total = 0;
    for (let e = p; e < p + frags; e++) {
      if (ftOff[e]! < 0) return 0;
      total += ftLen[e]!;
    }
    const first = ftOff[p]!, firstLen = ftLen[p]!;
    const frameLen = total - srcHdr;
    if (frameLen < 14 || frameLen > FRAME_MAX || firstLen < srcHdr) return 0;
    if (srcHdr !== 0 && dstHdr === 0) {
      const u8 = this.u8;
      const flags = u8[first + VH_FLAGS]!, type = u8[first + VH_GSO_TYPE]! & ~GSO_ECN;
      if ((flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0) return 0;
      if (type !== GSO_NONE) {
        if (type !== GSO_TCPV4 && type !== GSO_TCPV6 && type !== GSO_UDP_L4) return 0; // UFO (3) and unknown types
        const g = this.gso;
        // the headers must lie in the first fragment: they are parsed where they are
        if (!g.begin(u8, first + srcHdr, frameLen, type, u8[first + VH_GSO_SIZE]! | (u8[first + VH_GSO_SIZE + 1]! << 8))) return 0;
        if (g.headerLength > firstLen - srcHdr || g.segmentLength(0) > dSize || g.count > MAX_SEGMENTS) return 0;
        return g.count;
      }
      if ((flags & VNET_F_NEEDS_CSUM) !== 0) {
        const start = u8[first + VH_CSUM_START]! | (u8[first + VH_CSUM_START + 1]! << 8);
        const offset = u8[first + VH_CSUM_OFFSET]! | (u8[first + VH_CSUM_OFFSET + 1]! << 8);
        if (start >= frameLen || start + offset + 2 > frameLen) return 0;
      }
    }
    const slots = Math.ceil((dstHdr + frameLen) / dSize);
    return slots <= L.NETMAP_MAX_FRAGS ? slots : 0;
  }

  /**
   * Writes packet `p` (as planned: `slots` destination slots) into the destination RX ring whose
   * slot array starts at word `slotsWord` (`n` slots), from slot `pos`, buffers `dBase + idx *
   * dSize` (indices below `dNum`). Every one of the `slots` slots is written (an invalid buffer
   * index gives an empty slot). Sets `packets` and `bytes`.
   */
  convert(ftOff: Float64Array, ftLen: Uint16Array, p: number, frags: number, srcHdr: number, dstHdr: number,
    slots: number, slotsWord: number, pos: number, n: number, dBase: number, dSize: number, dNum: number, u32: Uint32Array): void {
    const u8 = this.u8, u16 = this.u16;
    if (this.scratch < 0) this.scratch = mapScratch(SCRATCH_BYTES);
    const frame = this.scratch + FRAME_AT;
    // gather the frame, without the source's header
    let len = 0;
    for (let e = p; e < p + frags; e++) {
      const skip = e === p ? srcHdr : 0;
      const from = ftOff[e]! + skip, l = ftLen[e]! - skip;
      u8.copyWithin(frame + len, from, from + l);
      len += l;
    }
    const h = ftOff[p]!; // the source header, still in the source buffer
    const flags = srcHdr !== 0 ? u8[h + VH_FLAGS]! : 0;
    const type = srcHdr !== 0 ? u8[h + VH_GSO_TYPE]! & ~GSO_ECN : GSO_NONE;
    this.packets = 0;
    this.bytes = 0;
    if (dstHdr === 0 && type !== GSO_NONE) {
      // cut into segments, each a packet of one slot
      const g = this.gso;
      g.begin(u8, frame, len, type, u8[h + VH_GSO_SIZE]! | (u8[h + VH_GSO_SIZE + 1]! << 8));
      for (let i = 0; i < slots; i++) {
        const slotWord = slotsWord + SLOT_WORDS * pos;
        const idx = u32[slotWord]!;
        let out = 0;
        if (idx >= 2 && idx < dNum && i < g.count && g.segmentLength(i) <= dSize) out = g.emit(i, dBase + idx * dSize);
        u16[2 * slotWord + SLOT_LEN_HALF] = out;
        u16[2 * slotWord + SLOT_FLAGS_HALF] = 1 << 8;
        this.packets++;
        this.bytes += out;
        pos = pos + 1 === n ? 0 : pos + 1;
      }
      return;
    }
    if (dstHdr === 0 && (flags & VNET_F_NEEDS_CSUM) !== 0) {
      completeChecksumAt(u8, frame, len, u8[h + VH_CSUM_START]! | (u8[h + VH_CSUM_START + 1]! << 8), u8[h + VH_CSUM_OFFSET]! | (u8[h + VH_CSUM_OFFSET + 1]! << 8));
    }
    // the destination's header just before the frame
    const out = frame - dstHdr;
    if (dstHdr !== 0) {
      if (srcHdr === 0) u8.fill(0, out, frame);
      else {
        u8.copyWithin(out, h, h + VH_NUM_BUFFERS);
        if (dstHdr > VH_NUM_BUFFERS) { u8[out + VH_NUM_BUFFERS] = 0; u8[out + VH_NUM_BUFFERS + 1] = 0; }
      }
    }
    const total = dstHdr + len;
    let done = 0;
    for (let f = 0; f < slots; f++) {
      const slotWord = slotsWord + SLOT_WORDS * pos;
      const idx = u32[slotWord]!;
      const piece = Math.min(dSize, total - done);
      let written = 0;
      if (idx >= 2 && idx < dNum && piece > 0) {
        u8.copyWithin(dBase + idx * dSize, out + done, out + done + piece);
        written = piece;
      }
      done += piece > 0 ? piece : 0;
      u16[2 * slotWord + SLOT_LEN_HALF] = written;
      u16[2 * slotWord + SLOT_FLAGS_HALF] = f + 1 < slots ? (slots << 8) | L.NS_MOREFRAG : slots << 8;
      this.bytes += written;
      pos = pos + 1 === n ? 0 : pos + 1;
    }
    this.packets = 1;
  }

  /** Gives the scratch mapping back. */
  close(): void {
    if (this.scratch >= 0) space().unmapLocal(this.scratch, SCRATCH_BYTES);
    this.scratch = -1;
  }
}
