/**
 * The frames pkt-gen sends: Ethernet + IPv4 + UDP + payload ("netmap pkt-gen DIRECT payload\n"
 * repeated), with correct IPv4 header and UDP checksums. A FrameTemplate is built once; per packet
 * only the fields that change are written (addresses and ports for ranges, a sequence number or
 * ping stamp in the payload) and both checksums are recomputed arithmetically from precomputed
 * sums of the constant parts — no pass over the payload, no allocation.
 */
import { fail } from '../errors.js';
import { complement, sum16 } from '../packet/checksum.js';

export const ETH_HLEN = 14;
export const IP_OFF = 14;
export const UDP_OFF = 34;
export const PAYLOAD_OFF = 42;
/** Smallest frame: the three headers. */
export const MIN_FRAME = 42;
/** Largest frame we build (IPv4 total length limit and the 16-bit slot length). */
export const MAX_FRAME = 65535;
export const PAYLOAD_TEXT = 'netmap pkt-gen DIRECT payload\n';
/** txseq: 32-bit big-endian sequence number in the first payload bytes. */
export const SEQ_OFF = PAYLOAD_OFF;
/** ping: 32-bit counter at 42, then a {sec, nsec} stamp at 46 (as pkt-gen lays them out). */
export const PING_COUNTER_OFF = 42;
export const PING_TS_OFF = 46;
export const PING_MIN_FRAME = 54;

export interface FrameParams {
  size: number;
  srcMac: ArrayLike<number>;
  dstMac: ArrayLike<number>;
  srcIp: number;
  dstIp: number;
  sport: number;
  dport: number;
  /** Payload bytes at the start left zero (written per packet): 0, 4 (txseq) or 12 (ping). */
  variableBytes: number;
}

export function put16(u8: Uint8Array, at: number, v: number): void {
  u8[at] = (v >>> 8) & 0xff;
  u8[at + 1] = v & 0xff;
}

export function put32(u8: Uint8Array, at: number, v: number): void {
  u8[at] = (v >>> 24) & 0xff;
  u8[at + 1] = (v >>> 16) & 0xff;
  u8[at + 2] = (v >>> 8) & 0xff;
  u8[at + 3] = v & 0xff;
}

export function get32(u8: Uint8Array, at: number): number {
  return ((u8[at]! << 24) | (u8[at + 1]! << 16) | (u8[at + 2]! << 8) | u8[at + 3]!) >>> 0;
}

export class FrameTemplate {
  readonly size: number;
  /** The complete frame for the first addresses (checksums filled). */
  readonly bytes: Uint8Array;
  readonly variableBytes: number;
  /** Sum of the IPv4 header words except addresses and checksum. */
  private readonly ipBase: number;
  /** Sum of the UDP pseudo-header proto/length, UDP length and the constant payload. */
  private readonly udpBase: number;

  constructor(p: FrameParams) {
    if (!Number.isInteger(p.size) || p.size < MIN_FRAME || p.size > MAX_FRAME) fail('EINVAL', `frame size ${p.size} is out of range (${MIN_FRAME}..${MAX_FRAME})`);
    if (p.variableBytes + PAYLOAD_OFF > p.size) fail('EINVAL', `frame size ${p.size} is too small: this function needs at least ${p.variableBytes + PAYLOAD_OFF} bytes`);
    this.size = p.size;
    this.variableBytes = p.variableBytes;
    const u8 = new Uint8Array(p.size);
    for (let i = 0; i < 6; i++) { u8[i] = p.dstMac[i]! & 0xff; u8[6 + i] = p.srcMac[i]! & 0xff; }
    put16(u8, 12, 0x0800);
    const ipLen = p.size - ETH_HLEN, udpLen = ipLen - 20;
    const ip = IP_OFF;
    u8[ip] = 0x45; u8[ip + 1] = 0;
    put16(u8, ip + 2, ipLen);
    put16(u8, ip + 4, 0); // id
    put16(u8, ip + 6, 0x4000); // DF
    u8[ip + 8] = 64; u8[ip + 9] = 17;
    this.ipBase = sum16(u8, ip, ip + 10);
    const udp = UDP_OFF;
    put16(u8, udp + 4, udpLen);
    const text = PAYLOAD_TEXT;
    const plen = p.size - PAYLOAD_OFF;
    // NUL-terminated repeated text, as pkt-gen fills it
    for (let i = 0; i < plen; i++) u8[PAYLOAD_OFF + i] = text.charCodeAt(i % text.length);
    if (plen > 0) u8[p.size - 1] = 0;
    for (let i = 0; i < p.variableBytes; i++) u8[PAYLOAD_OFF + i] = 0;
    this.udpBase = 17 + udpLen + udpLen + sum16(u8, PAYLOAD_OFF, p.size);
    this.bytes = u8;
    this.writeHeaders(u8, 0, p.srcIp, p.dstIp, p.sport, p.dport, 0);
  }

  /**
   * Writes addresses, ports and both checksums of the frame at u8[at...]; `extraSum` is the
   * unfolded sum of the variable payload words the caller wrote (0 when none).
   */
  writeHeaders(u8: Uint8Array, at: number, srcIp: number, dstIp: number, sport: number, dport: number, extraSum: number): void {
    const ip = at + IP_OFF, udp = at + UDP_OFF;
    put32(u8, ip + 12, srcIp);
    put32(u8, ip + 16, dstIp);
    const addrSum = (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff);
    put16(u8, ip + 10, complement(this.ipBase + addrSum));
    put16(u8, udp, sport);
    put16(u8, udp + 2, dport);
    let c = complement(this.udpBase + addrSum + sport + dport + extraSum);
    if (c === 0) c = 0xffff;
    put16(u8, udp + 6, c);
  }

  /**
   * Only the UDP checksum, for a frame whose addresses were fixed at `addrSum` (see sumOfAddrs):
   * the txseq and ping fast path.
   */
  udpChecksum(addrPortSum: number, extraSum: number): number {
    const c = complement(this.udpBase + addrPortSum + extraSum);
    return c === 0 ? 0xffff : c;
  }
}

/** Unfolded sum of addresses and ports, as FrameTemplate.udpChecksum wants it. */
export function sumOfAddrs(srcIp: number, dstIp: number, sport: number, dport: number): number {
  return (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + sport + dport;
}

/** Swaps what pong swaps: MAC addresses and, for IPv4/UDP frames, addresses and ports. */
export function swapForReply(u8: Uint8Array, at: number, len: number): void {
  if (len < 12) return;
  for (let i = 0; i < 6; i++) { const t = u8[at + i]!; u8[at + i] = u8[at + 6 + i]!; u8[at + 6 + i] = t; }
  if (len < MIN_FRAME || u8[at + 12] !== 0x08 || u8[at + 13] !== 0x00 || u8[at + IP_OFF] !== 0x45) return;
  for (let i = 0; i < 4; i++) { const t = u8[at + IP_OFF + 12 + i]!; u8[at + IP_OFF + 12 + i] = u8[at + IP_OFF + 16 + i]!; u8[at + IP_OFF + 16 + i] = t; }
  if (u8[at + IP_OFF + 9] !== 17) return;
  for (let i = 0; i < 2; i++) { const t = u8[at + UDP_OFF + i]!; u8[at + UDP_OFF + i] = u8[at + UDP_OFF + 2 + i]!; u8[at + UDP_OFF + 2 + i] = t; }
}
