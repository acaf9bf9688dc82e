/**
 * Internet checksums (RFC 1071) for the frames pkt-gen builds and checks: one's-complement sums of
 * big-endian 16-bit words, kept unfolded while adding (a JS number holds any realistic sum
 * exactly) and folded once at the end. Nothing here allocates.
 */

/** One's-complement sum of u8[from, to) as big-endian words, not folded; an odd tail byte is padded. */
export function sum16(u8: Uint8Array, from: number, to: number): number {
  if (to - from >= WIDE_MIN && ((from ^ u8.byteOffset) & 1) === 0) return sum16Wide(u8, from, to);
  let s = 0;
  let i = from;
  const even = to - ((to - from) & 1);
  for (; i < even; i += 2) s += (u8[i]! << 8) | u8[i + 1]!;
  if (i < to) s += u8[i]! << 8;
  return s;
}

/** Below this many bytes the word-by-word loop is as fast as setting up the wide one. */
const WIDE_MIN = 64;
let wideBuffer: ArrayBufferLike | null = null;
let wideU32: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * sum16 for long ranges that start at an even address: adds little-endian 32-bit words (eight
 * per iteration) instead of big-endian 16-bit ones, about four times faster in V8. The one's-
 * complement sum does not care about grouping (2^16 ≡ 1 mod 0xffff) and byte order only swaps
 * the folded result, so the wide part is folded, byte-swapped and added to the rest.
 */
function sum16Wide(u8: Uint8Array, from: number, to: number): number {
  if (u8.buffer !== wideBuffer) {
    wideBuffer = u8.buffer;
    wideU32 = new Uint32Array(u8.buffer, 0, Math.floor(u8.buffer.byteLength / 4));
  }
  const base = u8.byteOffset;
  let s = 0;
  let i = from;
  while (((base + i) & 3) !== 0) { s += (u8[i]! << 8) | u8[i + 1]!; i += 2; } // to a 4-byte boundary
  const words = (to - i) >>> 2;
  let k = (base + i) >>> 2;
  const end = k + words, end8 = end - 7;
  let le = 0;
  const u32 = wideU32;
  for (; k < end8; k += 8) le += u32[k]! + u32[k + 1]! + u32[k + 2]! + u32[k + 3]! + u32[k + 4]! + u32[k + 5]! + u32[k + 6]! + u32[k + 7]!;
  for (; k < end; k++) le += u32[k]!;
  i += 4 * words;
  // fold to 16 bits (le < 2^53: exact), then swap the bytes back to big-endian order
  let r = le % 0xffff;
  if (r === 0 && le !== 0) r = 0xffff;
  s += ((r & 0xff) << 8) | (r >>> 8);
  const even = to - ((to - i) & 1);
  for (; i < even; i += 2) s += (u8[i]! << 8) | u8[i + 1]!;
  if (i < to) s += u8[i]! << 8;
  return s;
}

/** Folds an unfolded sum into 16 bits (end-around carry). */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); // sums here stay below 2^32
  return s;
}

/** The checksum field value for an unfolded sum: ~fold(s). */
export function complement(s: number): number {
  return ~fold(s) & 0xffff;
}

/** Sum of the IPv4 pseudo-header (addresses, protocol, L4 length) of the IPv4 header at `ip`. */
export function pseudoSum(u8: Uint8Array, ip: number, proto: number, l4len: number): number {
  return sum16(u8, ip + 12, ip + 20) + proto + l4len;
}

/** Whether the IPv4 header at `ip` has a correct header checksum. */
export function ipv4ChecksumOk(u8: Uint8Array, ip: number): boolean {
  const ihl = (u8[ip]! & 0x0f) * 4;
  return ihl >= 20 && fold(sum16(u8, ip, ip + ihl)) === 0xffff;
}

/**
 * Whether the UDP datagram of the IPv4 packet at `ip` (header length from the packet, datagram
 * length from the UDP header) has a correct checksum. A zero checksum means "none" in IPv4 and is
 * reported as false here: pkt-gen always fills it.
 */
export function udpChecksumOk(u8: Uint8Array, ip: number): boolean {
  const ihl = (u8[ip]! & 0x0f) * 4;
  const udp = ip + ihl;
  const len = (u8[udp + 4]! << 8) | u8[udp + 5]!;
  if (len < 8) return false;
  if (((u8[udp + 6]! << 8) | u8[udp + 7]!) === 0) return false;
  return fold(pseudoSum(u8, ip, 17, len) + sum16(u8, udp, udp + len)) === 0xffff;
}

/** What is wrong with an Ethernet/IPv4/UDP frame, or null when it is valid. */
export function checkUdpFrame(u8: Uint8Array, at: number, len: number): string | null {
  if (len < 42) return `frame of ${len} bytes is too short for Ethernet/IPv4/UDP`;
  if (u8[at + 12] !== 0x08 || u8[at + 13] !== 0x00) return 'ethertype is not IPv4';
  const ip = at + 14;
  if ((u8[ip]! >>> 4) !== 4) return 'IP version is not 4';
  const ihl = (u8[ip]! & 0x0f) * 4;
  const total = (u8[ip + 2]! << 8) | u8[ip + 3]!;
  if (ihl < 20 || total < ihl + 8 || 14 + total > len) return `IPv4 lengths are inconsistent (ihl ${ihl}, total ${total}, frame ${len})`;
  if (u8[ip + 9] !== 17) return 'IP protocol is not UDP';
  if (!ipv4ChecksumOk(u8, ip)) return 'bad IPv4 header checksum';
  const udp = ip + ihl;
  const ulen = (u8[udp + 4]! << 8) | u8[udp + 5]!;
  if (ulen !== total - ihl) return `UDP length ${ulen} does not match the IP payload ${total - ihl}`;
  if (!udpChecksumOk(u8, ip)) return 'bad UDP checksum';
  return null;
}
