/**
 * TCP segment coalescing for the attach daemon (what the kernel's GRO does on a receiving NIC):
 * consecutive segments of one TCP/IPv4 flow in a received batch become one GSO super-frame with
 * a virtio-net header, which ValeAdapter.injectWhole sends whole to another attached interface
 * (the receiving stack then handles one large packet instead of dozens; a real wire cuts it back
 * into the same segments). Whatever is not merged, or whose destination cannot take a
 * super-frame, is forwarded as it came, in order.
 *
 * The rules are GRO's (net/ipv4/tcp_offload.c): IPv4 without options, DF set, not a fragment;
 * TCP with only ACK (and PSH on the last segment); same addresses, ports, TOS, TTL, ACK number,
 * window and options; each segment starts where the previous one ended, all but the last carry
 * the first one's payload size; a run ends after PSH or a shorter segment. Each segment's IPv4
 * and TCP checksums are verified before it is merged (a bad one is forwarded unmerged, for the
 * receiver to drop). The super-frame's TCP checksum is left partial (virtio-net NEEDS_CSUM), as
 * a local sender's is.
 */
import { space, type AddressSpace } from '../memory/space.js';
import { mapScratch, VNET_HDR_LEN } from '../interfaces/packet.js';

/** Largest super-frame: IPv4's 64 KiB less what cannot be payload. */
const MAX_SUPER = 65535 + 14;
const SCRATCH = 1 << 17;
const ETH = 14, IP = 20;
const TCP_ACK = 0x10, TCP_PSH = 0x08;

/** Forwards `n` frames from index `from` one by one (ValeAdapter.inject). */
export type ForwardFrames = (offs: Float64Array, lens: Uint16Array, n: number, from: number) => void;
/** Forwards one super-frame whole; false if its destination cannot take it (injectWhole). */
export type ForwardWhole = (at: number, len: number, hdrAt: number) => boolean;

/**
 * Sum of the 16-bit halves of `n` words from index `w`: 32-bit integer accumulators, eight words
 * an iteration into four of them (each adds under 2^18 an iteration; a frame has at most 2^14
 * words, so none passes 2^29). A double accumulator made this loop three times slower; unrolled,
 * it sums 5.2 GB/s against 4.0 one word at a time (Node 20, this VM).
 */
function sum32(u32: Uint32Array, w: number, n: number): number {
  let a = 0, b = 0, c = 0, d = 0;
  const end = w + n;
  let q = w;
  for (; q + 7 < end; q += 8) {
    const x0 = u32[q]!, x1 = u32[q + 1]!, x2 = u32[q + 2]!, x3 = u32[q + 3]!;
    const x4 = u32[q + 4]!, x5 = u32[q + 5]!, x6 = u32[q + 6]!, x7 = u32[q + 7]!;
    a = (a + (x0 & 0xffff) + (x1 & 0xffff) + (x2 & 0xffff) + (x3 & 0xffff)) | 0;
    b = (b + (x0 >>> 16) + (x1 >>> 16) + (x2 >>> 16) + (x3 >>> 16)) | 0;
    c = (c + (x4 & 0xffff) + (x5 & 0xffff) + (x6 & 0xffff) + (x7 & 0xffff)) | 0;
    d = (d + (x4 >>> 16) + (x5 >>> 16) + (x6 >>> 16) + (x7 >>> 16)) | 0;
  }
  for (; q < end; q++) {
    const x = u32[q]!;
    a = (a + (x & 0xffff)) | 0;
    b = (b + (x >>> 16)) | 0;
  }
  return a + b + c + d;
}

export class TcpCoalescer {
  private readonly sp: AddressSpace;
  private readonly u8: Uint8Array;
  private readonly u32: Uint32Array;
  /** Scratch where a super-frame is built: virtio-net header at `hdr`, the frame right after. */
  private readonly scratch: number;
  private readonly hdr: number;
  private readonly frame: number;
  /** Length of the super-frame build() made last. */
  private superLen = 0;
  /** Runs merged and frames they held (for tests and tools). */
  merged = 0;
  mergedFrames = 0;

  constructor(private readonly each: ForwardFrames, private readonly whole: ForwardWhole) {
    this.sp = space();
    this.u8 = this.sp.u8;
    this.u32 = this.sp.u32;
    this.scratch = mapScratch(SCRATCH);
    // the frame on a 4-byte boundary, as kernel rings place theirs (AF_PACKET with virtio-net
    // headers at 12 mod 16, AF_XDP at a buffer's start)
    this.frame = this.scratch + 64;
    this.hdr = this.frame - VNET_HDR_LEN;
  }

  close(): void {
    this.sp.unmapLocal(this.scratch, SCRATCH);
  }

  /** Forwards frames [0, n): runs of mergeable segments as super-frames, the rest as they are. */
  forward(offs: Float64Array, lens: Uint16Array, n: number): void {
    let done = 0; // frames before this index are forwarded
    let i = 0;
    while (i < n) {
      const end = this.run(offs, lens, i, n);
      if (end - i >= 2 && this.build(offs, lens, i, end)) {
        if (i > done) this.each(offs, lens, i - done, done);
        if (this.whole(this.frame, this.superLen, this.hdr)) {
          done = end;
          this.merged++;
          this.mergedFrames += end - i;
        } else {
          this.each(offs, lens, end - i, i); // no taker: as they came
          done = end;
        }
        i = end;
      } else {
        i = Math.max(end, i + 1);
      }
    }
    if (n > done) this.each(offs, lens, n - done, done);
  }

  /** TCP header length of frame `at` (`len` bytes) if it may start or join a run, else 0. */
  private segment(at: number, len: number): number {
    const u8 = this.u8;
    if (len < ETH + IP + 20 || u8[at + 12] !== 0x08 || u8[at + 13] !== 0x00) return 0;
    const ip = at + ETH;
    if (u8[ip] !== 0x45 || u8[ip + 9] !== 6) return 0; // IPv4 without options, TCP
    if (((u8[ip + 2]! << 8) | u8[ip + 3]!) !== len - ETH) return 0; // no padding, not cut
    if (u8[ip + 6] !== 0x40 || u8[ip + 7] !== 0) return 0; // DF; not a fragment
    const tcp = ip + IP;
    const thl = (u8[tcp + 12]! >>> 4) * 4;
    if (thl < 20 || ETH + IP + thl >= len) return 0; // carries payload
    const flags = u8[tcp + 13]!;
    if ((flags & ~TCP_PSH) !== TCP_ACK || (u8[tcp + 12]! & 0x0f) !== 0) return 0;
    return thl;
  }

  /** End (exclusive) of the run of mergeable segments starting at `i`. */
  private run(offs: Float64Array, lens: Uint16Array, i: number, n: number): number {
    const u8 = this.u8;
    const a = offs[i]!, alen = lens[i]!;
    const thl = this.segment(a, alen);
    if (thl === 0) return i + 1;
    const mss = alen - ETH - IP - thl;
    const hl = ETH + IP + thl;
    let seq = (this.seq(a) + mss) >>> 0;
    let total = alen;
    let prev = a, prevPay = mss;
    let j = i + 1;
    while (j < n) {
      if ((u8[prev + ETH + IP + 13]! & TCP_PSH) !== 0 || prevPay !== mss) break;
      const b = offs[j]!, blen = lens[j]!;
      if (this.segment(b, blen) !== thl) break;
      const pay = blen - hl;
      if (pay > mss || total + pay > MAX_SUPER || this.seq(b) !== seq) break;
      // same MACs, TOS, TTL, protocol, addresses, ports, ACK, window and options (the bytes
      // that may differ: IPv4 length, ID and checksum, TCP sequence, flags and checksum)
      if (!this.same(a, b, 0, 12) || u8[a + ETH + 1] !== u8[b + ETH + 1] || u8[a + ETH + 8] !== u8[b + ETH + 8]
        || !this.same(a, b, ETH + 12, ETH + IP + 4) || !this.same(a, b, ETH + IP + 8, ETH + IP + 13)
        || !this.same(a, b, ETH + IP + 14, ETH + IP + 16) || !this.same(a, b, ETH + IP + 18, hl)) break;
      seq = (seq + pay) >>> 0;
      total += pay;
      prev = b;
      prevPay = pay;
      j++;
    }
    return j;
  }

  private seq(at: number): number {
    const u8 = this.u8, t = at + ETH + IP + 4;
    return ((u8[t]! << 24) | (u8[t + 1]! << 16) | (u8[t + 2]! << 8) | u8[t + 3]!) >>> 0;
  }

  /**
   * Whether frames `a` and `b` hold the same bytes in [from, to). Frames of one kernel ring lie
   * alike in their 32-bit words (a fixed stride), so most of a range is compared a word at a
   * time (the byte loop was a tenth of the daemon's time under iperf3).
   */
  private same(a: number, b: number, from: number, to: number): boolean {
    const u8 = this.u8;
    let k = from;
    if (((a ^ b) & 3) === 0) {
      for (; k < to && ((a + k) & 3) !== 0; k++) if (u8[a + k] !== u8[b + k]) return false;
      const u32 = this.u32;
      for (; k + 3 < to; k += 4) if (u32[(a + k) >>> 2] !== u32[(b + k) >>> 2]) return false;
    }
    for (; k < to; k++) if (u8[a + k] !== u8[b + k]) return false;
    return true;
  }

  /**
   * Builds the super-frame of segments [i, end) in the scratch area, checking each segment's
   * IPv4 and TCP checksums as its payload is copied; false if one is bad or they do not fit.
   */
  private build(offs: Float64Array, lens: Uint16Array, i: number, end: number): boolean {
    const u8 = this.u8;
    const a = offs[i]!;
    const thl = (u8[a + ETH + IP + 12]! >>> 4) * 4;
    const hl = ETH + IP + thl;
    const mss = lens[i]! - hl;
    const f = this.frame;
    this.sp.copy(f, a, hl, SCRATCH - 128);
    let at = f + hl;
    for (let k = i; k < end; k++) {
      const s = offs[k]!, len = lens[k]!;
      const pay = len - hl;
      if (at + pay > f + MAX_SUPER) return false;
      const ip = s + ETH;
      if (this.fold(this.sum(ip, IP)) !== 0xffff) return false;
      const tcpLen = len - ETH - IP;
      // pseudo-header, TCP header, then the payload (at an even offset from the TCP header: its
      // 16-bit words pair up alike wherever they are summed)
      const sum = this.sum(ip + 12, 8) + 0x0600 + (((tcpLen & 0xff) << 8) | (tcpLen >>> 8)) + this.sum(ip + IP, thl) + this.copyThenSum(at, s + hl, pay);
      if (this.fold(sum) !== 0xffff) return false;
      at += pay;
    }
    const len = at - f;
    const ip = f + ETH, tcp = ip + IP;
    const ipLen = len - ETH;
    u8[ip + 2] = ipLen >>> 8; u8[ip + 3] = ipLen & 0xff;
    u8[ip + 10] = 0; u8[ip + 11] = 0;
    const ic = ~this.fold(this.sum(ip, IP)) & 0xffff;
    u8[ip + 10] = ic & 0xff; u8[ip + 11] = ic >>> 8; // a little-endian sum stored little-endian
    u8[tcp + 13] = u8[offs[end - 1]! + ETH + IP + 13]!; // the last segment's flags (PSH)
    // partial checksum: the pseudo-header's sum, for whoever completes it
    const tcpLen = len - ETH - IP;
    const ps = this.fold(this.sum(ip + 12, 8) + 0x0600 + (((tcpLen & 0xff) << 8) | (tcpLen >>> 8)));
    u8[tcp + 16] = ps & 0xff; u8[tcp + 17] = ps >>> 8;
    // virtio-net header: NEEDS_CSUM, GSO TCPv4, hdr_len, gso_size, csum_start, csum_offset (LE)
    const h = this.hdr;
    u8[h] = 1; u8[h + 1] = 1;
    u8[h + 2] = hl & 0xff; u8[h + 3] = hl >>> 8;
    u8[h + 4] = mss & 0xff; u8[h + 5] = mss >>> 8;
    u8[h + 6] = ETH + IP; u8[h + 7] = 0;
    u8[h + 8] = 16; u8[h + 9] = 0;
    this.superLen = len;
    return true;
  }

  /**
   * Copies `len` bytes from `src` to `dst` (in the private scratch) and returns sum() of the copy:
   * what is checked is what is sent, whatever another process writes into the ring meanwhile.
   * Two passes, a native copy then sum32 over bytes the copy left in the cache: 5.3 GB/s against
   * 3.7 for one JavaScript loop that copies and sums each word (Node 20, this VM, 2026-12-03;
   * the one pass won while copyWithin boxed offsets above 2^30, before the layout change).
   */
  private copyThenSum(dst: number, src: number, len: number): number {
    this.sp.copy(dst, src, len, SCRATCH);
    return this.sum(dst, len);
  }

  /**
   * One's-complement sum of `len` bytes at `at`, taken as little-endian 16-bit words (the sum of
   * the big-endian words, byte-swapped: stored little-endian it gives the right bytes). Not folded.
   */
  private sum(at: number, len: number): number {
    const u8 = this.u8;
    let s = 0, k = at;
    const end = at + len;
    // in a kernel ring with virtio-net headers the IPv4 header starts 10 bytes into a 16-byte
    // line, so the TCP header is 2 bytes off a 4-byte boundary: one 16-bit word first, then 32-bit
    if ((k & 3) === 2 && k + 2 <= end) {
      s += u8[k]! | (u8[k + 1]! << 8);
      k += 2;
    }
    if ((k & 3) === 0) {
      const w32 = (end - k) >>> 2;
      s += sum32(this.u32, k >>> 2, w32);
      k += w32 << 2;
    }
    for (; k + 1 < end; k += 2) s += u8[k]! | (u8[k + 1]! << 8);
    if (k < end) s += u8[k]!;
    return s;
  }

  private fold(s: number): number {
    // s < 2^53: fold the high part down until 16 bits remain
    let x = (s % 0x10000) + Math.floor(s / 0x10000);
    while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
    return x;
  }
}
