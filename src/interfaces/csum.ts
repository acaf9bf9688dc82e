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


// Where locate() found the L4 header of the last frame it looked at (no allocation per frame).
let l4At = 0, fieldAt = 0, l4Proto = 0, ipAt = 0, ipv6 = false;

/**
 * Finds the TCP or UDP header of the Ethernet frame at u8[at, at+len) (up to two VLAN tags, IPv4
 * without fragments, IPv6 with up to four hop-by-hop/routing/destination-options headers). Returns
 * false when the frame is anything else; sets l4At, fieldAt (its checksum field), l4Proto, ipAt.
 */
function locate(u8: Uint8Array, at: number, len: number): boolean {
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
  l4At = l4; fieldAt = field; l4Proto = proto; ipAt = p; ipv6 = type === ETH_P_IPV6;
  return true;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Writes the complete checksum of the located segment u8[l4At, end), its field holding the partial sum. */
function finish(u8: Uint8Array, end: number): void {
  let c = ~fold(sum16(u8, l4At, end)) & 0xffff;
  if (c === 0 && l4Proto === IPPROTO_UDP) c = 0xffff;
  u8[fieldAt] = c >>> 8;
  u8[fieldAt + 1] = c & 0xff;
}

/**
 * Finishes the TCP or UDP checksum of the Ethernet frame at u8[at, at+len) in place. Returns true
 * when a checksum was written, false when the frame is not TCP/UDP over IPv4/IPv6 (left as is).
 */
export function completeChecksum(u8: Uint8Array, at: number, len: number): boolean {
  if (!locate(u8, at, len)) return false;
  finish(u8, at + len);
  return true;
}

/**
 * For frames that come with no word on their checksum state (AF_XDP): completes the TCP/UDP
 * checksum of the frame at u8[at, at+len) if its field holds exactly the pseudo-header sum that a
 * stack leaves for the device to finish (CHECKSUM_PARTIAL), unless the checksum is right as it
 * stands (a complete checksum equal to that sum by chance). Returns true when it wrote one. A
 * frame that is not of that form is left alone, whatever its checksum.
 */
export function completePartialChecksum(u8: Uint8Array, at: number, len: number): boolean {
  if (!locate(u8, at, len)) return false;
  const end = at + len;
  const l4len = end - l4At;
  let pseudo = l4Proto + l4len;
  if (ipv6) pseudo += sum16(u8, ipAt + 8, ipAt + 40);
  else pseudo += sum16(u8, ipAt + 12, ipAt + 20);
  pseudo = fold(fold(pseudo));
  const field = (u8[fieldAt]! << 8) | u8[fieldAt + 1]!;
  if (field !== pseudo && !(field === 0 && pseudo === 0xffff) && !(field === 0xffff && pseudo === 0)) return false;
  if (fold(fold(sum16(u8, l4At, end) + pseudo)) === 0xffff) return false; // already right
  finish(u8, end);
  return true;
}

/**
 * Finishes a checksum left partial as a virtio-net header describes it (VIRTIO_NET_HDR_F_NEEDS_CSUM,
 * Linux's CHECKSUM_PARTIAL): the one's-complement sum of the frame u8[at, at+len) from `csumStart`
 * to its end (the field holds the pseudo-header sum already), complemented, stored at
 * `csumStart + csumOffset`. A UDP result of 0 (csumOffset 6) is sent as 0xffff. Returns false,
 * writing nothing, when the offsets do not fit the frame.
 */
export function completeChecksumAt(u8: Uint8Array, at: number, len: number, csumStart: number, csumOffset: number): boolean {
  if (csumStart >= len || csumStart + csumOffset + 2 > len) return false;
  const field = at + csumStart + csumOffset;
  let c = ~fold(sum16(u8, at + csumStart, at + len)) & 0xffff;
  if (c === 0 && csumOffset === 6) c = 0xffff;
  u8[field] = c >>> 8;
  u8[field + 1] = c & 0xff;
  return true;
}
