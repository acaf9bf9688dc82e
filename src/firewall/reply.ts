/**
 * The packets ipfw sends back for `reject`, `unreach CODE`, `unreach6 CODE` and `reset`
 * (ip_fw2.c send_reject/send_reject6, ipfw_send_pkt): an ICMP or ICMPv6 destination-unreachable
 * quoting the offending datagram, or a TCP RST, addressed back to the sender (MACs and addresses
 * swapped) so that it can leave through the port the packet came in on.
 *
 * As in ipfw, nothing is sent in reply to: a non-first fragment, an ICMP error (types 3, 4, 5,
 * 11, 12) or ICMPv6 error (types < 128), a broadcast or multicast destination, a TCP RST, or a
 * frame too short to hold the headers. `reset` on a packet that is not TCP sends nothing.
 *
 * `buildReply` writes the reply into `out` at `outOff` (room `outRoom` bytes) and returns its
 * length, or 0 when no reply is due. It does not allocate.
 */
import { sum16, complement, pseudoSum } from '../packet/checksum.js';

/** ICMP quotes the IP header and this many payload bytes (RFC 792 asks for 8; FreeBSD sends more). */
const ICMP4_QUOTE_MAX = 548 - 28; // FreeBSD's icmp_error keeps the reply within 576-byte datagrams
/** ICMPv6 errors stay within the IPv6 minimum MTU (RFC 4443 2.4(c)). */
const ICMP6_REPLY_MAX = 1280;
const TTL = 64;

export const REPLY_ICMP_UNREACH = 1;
export const REPLY_ICMP6_UNREACH = 2;
export const REPLY_TCP_RST = 3;

let ipId = (Date.now() & 0xffff) | 1;

function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Builds the reply to the Ethernet frame u8[off, off+len). `kind` is REPLY_TCP_RST or an
 * unreachable (REPLY_ICMP_UNREACH for IPv4; the IPv6 form is chosen from the packet itself, as
 * `reject` and `unreach` on an IPv6 packet send ICMPv6 in ipfw), `code` the ICMP code.
 */
export function buildReply(u8: Uint8Array, off: number, len: number, kind: number, code: number, out: Uint8Array, outOff: number, outRoom: number): number {
  if (len < 14 + 20) return 0;
  // the destination MAC must be unicast (no replies to broadcasts and multicasts)
  if ((u8[off]! & 1) !== 0) return 0;
  const etype = (u8[off + 12]! << 8) | u8[off + 13]!;
  if (etype === 0x0800) return reply4(u8, off, len, kind, code, out, outOff, outRoom);
  if (etype === 0x86dd) return reply6(u8, off, len, kind, code, out, outOff, outRoom);
  return 0;
}

function ethernetBack(u8: Uint8Array, off: number, out: Uint8Array, o: number, etype: number): void {
  for (let i = 0; i < 6; i++) {
    out[o + i] = u8[off + 6 + i]!;
    out[o + 6 + i] = u8[off + i]!;
  }
  out[o + 12] = etype >>> 8;
  out[o + 13] = etype & 0xff;
}

function reply4(u8: Uint8Array, off: number, len: number, kind: number, code: number, out: Uint8Array, outOff: number, outRoom: number): number {
  const ip = off + 14;
  const vihl = u8[ip]!;
  if (vihl >>> 4 !== 4) return 0;
  const ihl = (vihl & 0x0f) * 4;
  const totLen = (u8[ip + 2]! << 8) | u8[ip + 3]!;
  if (ihl < 20 || len < 14 + ihl) return 0;
  const present = Math.min(totLen, len - 14);
  if (present < ihl) return 0;
  const fragOff = ((u8[ip + 6]! & 0x1f) << 8) | u8[ip + 7]!;
  if (fragOff !== 0) return 0;
  const dst0 = u8[ip + 16]!;
  if (dst0 >= 224) return 0; // multicast or class E / broadcast
  if (u8[ip + 16]! === 255 && u8[ip + 17]! === 255 && u8[ip + 18]! === 255 && u8[ip + 19]! === 255) return 0;
  const proto = u8[ip + 9]!;
  if (kind === REPLY_TCP_RST) {
    if (proto !== 6) return 0;
    return rst(u8, off, ip, ihl, present, false, out, outOff, outRoom);
  }
  if (proto === 1 && (present < ihl + 1 || isIcmpError(u8[ip + ihl]!))) return 0;
  const quote = Math.min(present, ihl + ICMP4_QUOTE_MAX);
  const total = 14 + 20 + 8 + quote;
  if (total > outRoom) return 0;
  const o = outOff;
  ethernetBack(u8, off, out, o, 0x0800);
  const r = o + 14;
  writeIp4Header(out, r, 20 + 8 + quote, 1, u8, ip + 16, ip + 12);
  const icmp = r + 20;
  out[icmp] = 3;
  out[icmp + 1] = code;
  out[icmp + 2] = 0; out[icmp + 3] = 0;
  out[icmp + 4] = 0; out[icmp + 5] = 0; out[icmp + 6] = 0; out[icmp + 7] = 0;
  if (code === 4) { out[icmp + 6] = 1500 >>> 8; out[icmp + 7] = 1500 & 0xff; } // needfrag: next-hop MTU
  if (out === u8) out.copyWithin(icmp + 8, ip, ip + quote);
  else for (let i = 0; i < quote; i++) out[icmp + 8 + i] = u8[ip + i]!;
  const c = complement(sum16(out, icmp, icmp + 8 + quote));
  out[icmp + 2] = c >>> 8; out[icmp + 3] = c & 0xff;
  return total;
}

/** An IPv4 header at `r` from the address at `srcAt` of `from` to the one at `dstAt`. */
function writeIp4Header(out: Uint8Array, r: number, totalLen: number, proto: number, from: Uint8Array, srcAt: number, dstAt: number): void {
  out[r] = 0x45; out[r + 1] = 0;
  out[r + 2] = totalLen >>> 8; out[r + 3] = totalLen & 0xff;
  ipId = (ipId + 1) & 0xffff;
  out[r + 4] = ipId >>> 8; out[r + 5] = ipId & 0xff;
  out[r + 6] = 0; out[r + 7] = 0;
  out[r + 8] = TTL; out[r + 9] = proto;
  out[r + 10] = 0; out[r + 11] = 0;
  for (let i = 0; i < 4; i++) {
    out[r + 12 + i] = from[srcAt + i]!;
    out[r + 16 + i] = from[dstAt + i]!;
  }
  const c = complement(sum16(out, r, r + 20));
  out[r + 10] = c >>> 8; out[r + 11] = c & 0xff;
}

/**
 * A TCP RST answering the segment at `l3` (ip_fw2.c ipfw_send_pkt): to a segment with ACK,
 * `seq = its ack`, flags RST; otherwise `ack = its seq + data length (+1 for SYN, +1 for FIN)`,
 * flags RST|ACK, seq 0. Nothing in reply to a RST.
 */
function rst(u8: Uint8Array, off: number, l3: number, l3len: number, present: number, v6: boolean, out: Uint8Array, outOff: number, outRoom: number): number {
  const tcp = l3 + l3len;
  if (present < l3len + 20) return 0;
  const flags = u8[tcp + 13]!;
  if ((flags & 0x04) !== 0) return 0;
  const doff = (u8[tcp + 12]! >>> 4) * 4;
  if (doff < 20) return 0;
  const dataLen = Math.max(0, present - l3len - doff);
  const seq = ((u8[tcp + 4]! << 24) | (u8[tcp + 5]! << 16) | (u8[tcp + 6]! << 8) | u8[tcp + 7]!) >>> 0;
  const ack = ((u8[tcp + 8]! << 24) | (u8[tcp + 9]! << 16) | (u8[tcp + 10]! << 8) | u8[tcp + 11]!) >>> 0;
  const hdr = v6 ? 40 : 20;
  const total = 14 + hdr + 20;
  if (total > outRoom) return 0;
  const o = outOff;
  ethernetBack(u8, off, out, o, v6 ? 0x86dd : 0x0800);
  const r = o + 14;
  if (v6) writeIp6Header(out, r, 20, 6, u8, l3 + 24, l3 + 8);
  else writeIp4Header(out, r, 40, 6, u8, l3 + 16, l3 + 12);
  const t = r + hdr;
  // ports swapped
  out[t] = u8[tcp + 2]!; out[t + 1] = u8[tcp + 3]!;
  out[t + 2] = u8[tcp]!; out[t + 3] = u8[tcp + 1]!;
  let rseq = 0, rack = 0, rflags = 0x04;
  if ((flags & 0x10) !== 0) {
    rseq = ack;
  } else {
    rack = (seq + dataLen + ((flags & 0x02) !== 0 ? 1 : 0) + ((flags & 0x01) !== 0 ? 1 : 0)) >>> 0;
    rflags = 0x14;
  }
  writeU32(out, t + 4, rseq);
  writeU32(out, t + 8, rack);
  out[t + 12] = 5 << 4; out[t + 13] = rflags;
  out[t + 14] = 0; out[t + 15] = 0; // window
  out[t + 16] = 0; out[t + 17] = 0; // checksum
  out[t + 18] = 0; out[t + 19] = 0; // urgent
  const pseudo = v6 ? pseudoSum6(out, r, 6, 20) : pseudoSum(out, r, 6, 20);
  const c = complement(pseudo + sum16(out, t, t + 20));
  out[t + 16] = c >>> 8; out[t + 17] = c & 0xff;
  return total;
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24; out[at + 1] = (v >>> 16) & 0xff; out[at + 2] = (v >>> 8) & 0xff; out[at + 3] = v & 0xff;
}

function writeIp6Header(out: Uint8Array, r: number, payloadLen: number, next: number, from: Uint8Array, srcAt: number, dstAt: number): void {
  out[r] = 0x60; out[r + 1] = 0; out[r + 2] = 0; out[r + 3] = 0;
  out[r + 4] = payloadLen >>> 8; out[r + 5] = payloadLen & 0xff;
  out[r + 6] = next; out[r + 7] = TTL;
  for (let i = 0; i < 16; i++) {
    out[r + 8 + i] = from[srcAt + i]!;
    out[r + 24 + i] = from[dstAt + i]!;
  }
}

/** Sum of the IPv6 pseudo-header of the header at `ip6`. */
function pseudoSum6(u8: Uint8Array, ip6: number, next: number, l4len: number): number {
  return sum16(u8, ip6 + 8, ip6 + 40) + next + l4len;
}

function reply6(u8: Uint8Array, off: number, len: number, kind: number, code: number, out: Uint8Array, outOff: number, outRoom: number): number {
  const ip = off + 14;
  if (len < 14 + 40 || u8[ip]! >>> 4 !== 6) return 0;
  if (u8[ip + 24]! === 0xff) return 0; // multicast destination
  const payload = (u8[ip + 4]! << 8) | u8[ip + 5]!;
  const present = Math.min(40 + payload, len - 14);
  // walk extension headers to the upper layer; a non-first fragment gets no reply
  let next = u8[ip + 6]!, at = ip + 40;
  for (let hops = 0; hops < 8; hops++) {
    if (next === 0 || next === 43 || next === 60) {
      if (at + 8 > ip + present) return 0;
      next = u8[at]!;
      at += (u8[at + 1]! + 1) * 8;
    } else if (next === 44) {
      if (at + 8 > ip + present) return 0;
      const fo = ((u8[at + 2]! << 8) | u8[at + 3]!) & 0xfff8;
      if (fo !== 0) return 0;
      next = u8[at]!;
      at += 8;
    } else {
      break;
    }
  }
  if (kind === REPLY_TCP_RST) {
    if (next !== 6) return 0;
    // an RST after extension headers quotes none of them: rebuild from the TCP header
    return rst(u8, off, ip, at - ip, present, true, out, outOff, outRoom);
  }
  if (next === 58 && (at >= ip + present || u8[at]! < 128)) return 0; // ICMPv6 error
  const quote = Math.min(present, ICMP6_REPLY_MAX - 40 - 8);
  const total = 14 + 40 + 8 + quote;
  if (total > outRoom) return 0;
  const o = outOff;
  ethernetBack(u8, off, out, o, 0x86dd);
  const r = o + 14;
  writeIp6Header(out, r, 8 + quote, 58, u8, ip + 24, ip + 8);
  const icmp = r + 40;
  out[icmp] = 1; out[icmp + 1] = code;
  for (let i = 2; i < 8; i++) out[icmp + i] = 0;
  for (let i = 0; i < quote; i++) out[icmp + 8 + i] = u8[ip + i]!;
  const c = complement(pseudoSum6(out, r, 58, 8 + quote) + sum16(out, icmp, icmp + 8 + quote));
  out[icmp + 2] = c >>> 8; out[icmp + 3] = c & 0xff;
  return total;
}
