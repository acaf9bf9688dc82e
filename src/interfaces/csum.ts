/**
 * Completes TCP/UDP checksums the sender left to "hardware" (CHECKSUM_PARTIAL). A frame that a
 * local stack sends through a veth or TAP is seen by packet sockets before any device computed its
 * checksum (TP_STATUS_CSUMNOTREADY): its checksum field holds only the pseudo-header sum. Frames
 * forwarded elsewhere must carry the real checksum, so we finish the job: sum the L4 segment
 * (including that partial value), fold, complement.
 */

import { sum16 } from '../packet/checksum.js';

const ETH_P_IP = 0x0800, ETH_P_IPV6 = 0x86dd, ETH_P_8021Q = 0x8100, ETH_P_8021AD = 0x88a8;
const IPPROTO_TCP = 6, IPPROTO_UDP = 17;


/**
 * Finishes the TCP or UDP checksum of the Ethernet frame at u8[at, at+len) in place. Returns true
 * when a checksum was written, false when the frame is not TCP/UDP over IPv4/IPv6 (left as is).
 */
export function completeChecksum(u8: Uint8Array, at: number, len: number): boolean {
  const end = at + len;
  let p = at + 12;
  if (p + 2 > end) return false;
  let type = (u8[p]! << 8) | u8[p + 1]!;
  for (let tags = 0; (type === ETH_P_8021Q || type === ETH_P_8021AD) && tags < 2; tags++) {
    p += 4;
    if (p + 2 > end) return false;
    type = (u8[p]! << 8) | u8[p + 1]!;
  }
  p += 2;
  let proto: number;
  let l4: number;
  if (type === ETH_P_IP) {
    if (p + 20 > end) return false;
    const ihl = (u8[p]! & 0x0f) * 4;
    const fragment = ((u8[p + 6]! & 0x3f) << 8) | u8[p + 7]!; // MF flag or offset
    if (ihl < 20 || fragment !== 0) return false;
    proto = u8[p + 9]!;
    l4 = p + ihl;
  } else if (type === ETH_P_IPV6) {
    if (p + 40 > end) return false;
    proto = u8[p + 6]!;
    l4 = p + 40;
    // hop-by-hop (0), routing (43), destination options (60) extension headers
    for (let hops = 0; (proto === 0 || proto === 43 || proto === 60) && hops < 4; hops++) {
      if (l4 + 8 > end) return false;
      proto = u8[l4]!;
      l4 += (u8[l4 + 1]! + 1) * 8;
    }
  } else {
    return false;
  }
  let field: number;
  if (proto === IPPROTO_TCP) field = l4 + 16;
  else if (proto === IPPROTO_UDP) field = l4 + 6;
  else return false;
  if (field + 2 > end) return false;
  let s = sum16(u8, l4, end);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  let c = ~s & 0xffff;
  if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
  u8[field] = c >>> 8;
  u8[field + 1] = c & 0xff;
  return true;
}

/**
 * Finishes a checksum left partial as a virtio-net header describes it (VIRTIO_NET_HDR_F_NEEDS_CSUM,
 * Linux's CHECKSUM_PARTIAL): the one's-complement sum of the frame u8[at, at+len) from `csumStart`
 * to its end (the field holds the pseudo-header sum already), complemented, stored at
 * `csumStart + csumOffset`. A UDP result of 0 (csumOffset 6) is sent as 0xffff. Returns false,
 * writing nothing, when the offsets do not fit the frame.
 */
export function completePartialChecksum(u8: Uint8Array, at: number, len: number, csumStart: number, csumOffset: number): boolean {
  if (csumStart >= len || csumStart + csumOffset + 2 > len) return false;
  const field = at + csumStart + csumOffset;
  let s = sum16(u8, at + csumStart, at + len);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  let c = ~s & 0xffff;
  if (c === 0 && csumOffset === 6) c = 0xffff;
  u8[field] = c >>> 8;
  u8[field + 1] = c & 0xff;
  return true;
}
