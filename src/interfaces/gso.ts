/**
 * Software segmentation of GSO super-frames. A local stack sending through a veth (or any device
 * with TSO/USO) hands the packet socket one frame of up to 64 KiB plus a virtio-net header that
 * says how to cut it (gso_type, gso_size). netmap rings carry wire-sized frames, so the receiver
 * cuts it as a NIC would: same headers on every segment, IP length/id/checksum fixed, TCP sequence
 * advanced (FIN/PSH on the last segment only, CWR on the first only), UDP length set, and every
 * segment's TCP/UDP checksum computed.
 */
import { completeChecksum } from './csum.js';
import { fold } from '../packet/checksum.js';

export const VNET_HDR_LEN = 10;
export const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_UDP_L4 = 5, GSO_ECN = 0x80;

/** Cuts one super-frame into segments; begin() parses, emit(i) writes segment i. */
export class GsoSplitter {
  private u8: Uint8Array = new Uint8Array(0);
  private src = 0;
  private len = 0;
  private mss = 0;
  private l3 = 0;
  private l4 = 0;
  private hdrEnd = 0;
  private v6 = false;
  private tcp = false;
  private seq0 = 0;
  private id0 = 0;
  /** Number of segments of the frame given to begin(). */
  count = 0;

  /**
   * Parses the Ethernet frame u8[src, src+len) (no VLAN tag: the driver keeps it aside) for
   * segmentation into payloads of `gsoSize`. Returns false when it cannot be cut (then drop it).
   */
  begin(u8: Uint8Array, src: number, len: number, gsoType: number, gsoSize: number): boolean {
    const type = gsoType & ~GSO_ECN;
    if (gsoSize <= 0 || len < 14) return false;
    const eth = (u8[src + 12]! << 8) | u8[src + 13]!;
    const l3 = src + 14;
    let l4: number, proto: number;
    if (eth === 0x0800) {
      if (l3 + 20 > src + len) return false;
      l4 = l3 + (u8[l3]! & 0x0f) * 4;
      proto = u8[l3 + 9]!;
      this.v6 = false;
      this.id0 = (u8[l3 + 4]! << 8) | u8[l3 + 5]!;
    } else if (eth === 0x86dd) {
      if (l3 + 40 > src + len) return false;
      l4 = l3 + 40;
      proto = u8[l3 + 6]!;
      this.v6 = true;
    } else {
      return false;
    }
    if (proto === 6 && (type === GSO_TCPV4 || type === GSO_TCPV6)) {
      if (l4 + 20 > src + len) return false;
      this.tcp = true;
      this.hdrEnd = l4 + (u8[l4 + 12]! >>> 4) * 4;
      this.seq0 = ((u8[l4 + 4]! << 24) | (u8[l4 + 5]! << 16) | (u8[l4 + 6]! << 8) | u8[l4 + 7]!) >>> 0;
    } else if (proto === 17 && type === GSO_UDP_L4) {
      this.tcp = false;
      this.hdrEnd = l4 + 8;
    } else {
      return false;
    }
    if (this.hdrEnd > src + len) return false;
    this.u8 = u8;
    this.src = src;
    this.len = len;
    this.mss = gsoSize;
    this.l3 = l3;
    this.l4 = l4;
    const payload = src + len - this.hdrEnd;
    this.count = Math.max(1, Math.ceil(payload / gsoSize));
    return true;
  }

  /** Bytes of Ethernet, IP and TCP/UDP headers every segment repeats (after begin()). */
  get headerLength(): number {
    return this.hdrEnd - this.src;
  }

  /** Length segment `i` will have. */
  segmentLength(i: number): number {
    const payload = this.src + this.len - this.hdrEnd;
    const chunk = Math.min(this.mss, payload - i * this.mss);
    return this.hdrEnd - this.src + Math.max(0, chunk);
  }

  /** Writes segment `i` at u8[dst, ...); returns its length. */
  emit(i: number, dst: number): number {
    const u8 = this.u8;
    const hdr = this.hdrEnd - this.src;
    const segLen = this.segmentLength(i);
    const from = this.hdrEnd + i * this.mss;
    u8.copyWithin(dst, this.src, this.hdrEnd);
    u8.copyWithin(dst + hdr, from, from + segLen - hdr);
    const l3 = dst + (this.l3 - this.src), l4 = dst + (this.l4 - this.src);
    const l4len = segLen - (this.l4 - this.src);
    const last = i === this.count - 1;
    let pseudo = 0;
    if (!this.v6) {
      const tot = segLen - 14;
      u8[l3 + 2] = tot >>> 8; u8[l3 + 3] = tot & 0xff;
      const id = (this.id0 + i) & 0xffff;
      u8[l3 + 4] = id >>> 8; u8[l3 + 5] = id & 0xff;
      u8[l3 + 10] = 0; u8[l3 + 11] = 0;
      const ihl = (u8[l3]! & 0x0f) * 4;
      let s = 0;
      for (let k = 0; k < ihl; k += 2) s += (u8[l3 + k]! << 8) | u8[l3 + k + 1]!;
      const c = ~fold(s) & 0xffff;
      u8[l3 + 10] = c >>> 8; u8[l3 + 11] = c & 0xff;
      for (let k = 12; k < 20; k += 2) pseudo += (u8[l3 + k]! << 8) | u8[l3 + k + 1]!;
    } else {
      const pl = segLen - 14 - 40;
      u8[l3 + 4] = pl >>> 8; u8[l3 + 5] = pl & 0xff;
      for (let k = 8; k < 40; k += 2) pseudo += (u8[l3 + k]! << 8) | u8[l3 + k + 1]!;
    }
    pseudo += (this.tcp ? 6 : 17) + l4len;
    let field: number;
    if (this.tcp) {
      const seq = (this.seq0 + i * this.mss) >>> 0;
      u8[l4 + 4] = seq >>> 24; u8[l4 + 5] = (seq >>> 16) & 0xff; u8[l4 + 6] = (seq >>> 8) & 0xff; u8[l4 + 7] = seq & 0xff;
      let flags = u8[l4 + 13]!;
      if (!last) flags &= ~0x09; // FIN, PSH only on the last segment
      if (i !== 0) flags &= ~0x80; // CWR only on the first
      u8[l4 + 13] = flags;
      field = l4 + 16;
    } else {
      u8[l4 + 4] = l4len >>> 8; u8[l4 + 5] = l4len & 0xff;
      field = l4 + 6;
    }
    const p = fold(pseudo);
    u8[field] = p >>> 8; u8[field + 1] = p & 0xff;
    completeChecksum(u8, dst, segLen);
    return segLen;
  }
}
