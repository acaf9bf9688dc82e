/** Frame builders for the interfaces tests (Ethernet + IPv4 + UDP, addresses in 198.18.0.0/15). */
import { space } from '../../src/memory/space.js';

export function mac(s: string): number[] {
  return s.split(':').map((x) => parseInt(x, 16));
}

/**
 * Writes a 60-byte UDP frame at address-space offset `at`: src 198.18.<flow>.1 -> 198.18.<flow>.2,
 * ports 1000+flow -> 2000, payload starting with the 32-bit sequence `seq` and a 'NMTS' marker.
 */
export function udpFrame(at: number, dst: number[], src: number[], flow: number, seq: number, len = 60): number {
  const u8 = space().u8;
  const v = space().view;
  u8.fill(0, at, at + len);
  u8.set(dst, at);
  u8.set(src, at + 6);
  v.setUint16(at + 12, 0x0800);
  const ip = at + 14;
  u8[ip] = 0x45;
  v.setUint16(ip + 2, len - 14);
  u8[ip + 8] = 64;
  u8[ip + 9] = 17;
  u8.set([198, 18, flow & 0xff, 1], ip + 12);
  u8.set([198, 18, flow & 0xff, 2], ip + 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += v.getUint16(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(ip + 10, ~sum & 0xffff);
  const udp = ip + 20;
  v.setUint16(udp, 1000 + flow);
  v.setUint16(udp + 2, 2000);
  v.setUint16(udp + 4, len - 34);
  v.setUint32(udp + 8, seq);
  v.setUint32(udp + 12, 0x4e4d5453);
  return len;
}

/** Reads back (flow, seq) from a frame made by udpFrame, or null when it is not one. */
export function parseUdpFrame(at: number, len: number): { flow: number; seq: number } | null {
  const v = space().view;
  if (len < 50 || v.getUint16(at + 12) !== 0x0800 || v.getUint32(at + 14 + 20 + 12) !== 0x4e4d5453) return null;
  return { flow: v.getUint16(at + 34) - 1000, seq: v.getUint32(at + 42) };
}

/** An ARP request "who has `target`? tell `sender`" from `src` at `at`; returns its length. */
export function arpRequest(at: number, src: number[], sender: number[], target: number[]): number {
  const u8 = space().u8;
  const v = space().view;
  u8.fill(0, at, at + 60);
  u8.fill(0xff, at, at + 6);
  u8.set(src, at + 6);
  v.setUint16(at + 12, 0x0806);
  v.setUint16(at + 14, 1);
  v.setUint16(at + 16, 0x0800);
  u8[at + 18] = 6;
  u8[at + 19] = 4;
  v.setUint16(at + 20, 1);
  u8.set(src, at + 22);
  u8.set(sender, at + 28);
  u8.set(target, at + 38);
  return 60;
}
