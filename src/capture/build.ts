/**
 * Packet builders: Ethernet, 802.1Q/802.1ad tags, MPLS, ARP, IPv4 (options, fragments), IPv6
 * (extension headers), TCP (options), UDP, ICMP, ICMPv6. Used by tests, benchmarks and tools
 * that need well-formed frames; they allocate freely and are not meant for hot paths.
 */

export type Bytes = number[];

export function mac(text: string): Bytes {
  return text.split(':').map((b) => parseInt(b, 16));
}

export function ipv4(text: string): Bytes {
  return text.split('.').map(Number);
}

export function ipv6(text: string): Bytes {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

const u16 = (v: number): Bytes => [(v >> 8) & 0xff, v & 0xff];
const u32 = (v: number): Bytes => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

function checksum(bytes: Bytes): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ether(dst: string, src: string, type: number, payload: Bytes): Bytes {
  return [...mac(dst), ...mac(src), ...u16(type), ...payload];
}

/** An 802.3 frame with a length field and an LLC header (DSAP, SSAP, control 3). */
export function llc(dst: string, src: string, dsap: number, ssap: number, payload: Bytes): Bytes {
  const body = [dsap, ssap, 3, ...payload];
  return [...mac(dst), ...mac(src), ...u16(body.length), ...body];
}

/** A VLAN tag (TPID 0x8100, 0x88a8 or 0x9100) followed by the inner ethertype and payload. */
export function vlanTag(tpid: number, vid: number, pcp: number, innerType: number, payload: Bytes): { type: number; bytes: Bytes } {
  return { type: tpid, bytes: [...u16(((pcp & 7) << 13) | (vid & 0xfff)), ...u16(innerType), ...payload] };
}

/** An MPLS label stack entry list (bottom of stack set on the last). */
export function mplsStack(labels: number[], payload: Bytes, ttl = 64): Bytes {
  const out: Bytes = [];
  labels.forEach((label, i) => {
    const bos = i === labels.length - 1 ? 1 : 0;
    out.push(...u32(((label << 12) | (bos << 8) | ttl) >>> 0));
  });
  return [...out, ...payload];
}

export function arp(op: number, sha: string, spa: string, tha: string, tpa: string): Bytes {
  return [...u16(1), ...u16(0x0800), 6, 4, ...u16(op), ...mac(sha), ...ipv4(spa), ...mac(tha), ...ipv4(tpa)];
}

export interface Ip4Options {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  tos?: number;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  /** IP options bytes (padded to 4 with end-of-options). */
  options?: Bytes;
}

export function ip4(o: Ip4Options, payload: Bytes): Bytes {
  const opts = [...(o.options ?? [])];
  while (opts.length % 4 !== 0) opts.push(0);
  const hl = 20 + opts.length;
  const flags = (o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | ((o.fragOffset ?? 0) & 0x1fff);
  const hdr = [0x40 | (hl >> 2), o.tos ?? 0, ...u16(hl + payload.length), ...u16(o.id ?? 1), ...u16(flags), o.ttl ?? 64, o.proto, 0, 0,
    ...ipv4(o.src), ...ipv4(o.dst), ...opts];
  const c = checksum(hdr);
  hdr[10] = c >> 8;
  hdr[11] = c & 0xff;
  return [...hdr, ...payload];
}

export interface Ip6Options {
  src: string;
  dst: string;
  /** Next header of the first header after the fixed header. */
  nh: number;
  hlim?: number;
  flow?: number;
}

export function ip6(o: Ip6Options, payload: Bytes): Bytes {
  const flow = o.flow ?? 0;
  return [0x60, (flow >> 16) & 0x0f, (flow >> 8) & 0xff, flow & 0xff, ...u16(payload.length), o.nh, o.hlim ?? 64,
    ...ipv6(o.src), ...ipv6(o.dst), ...payload];
}

/** IPv6 extension header (hop-by-hop 0, routing 43, destination options 60) padded to 8 bytes. */
export function ip6Ext(nh: number, body: Bytes, payload: Bytes): Bytes {
  const b = [...body];
  while ((b.length + 2) % 8 !== 0) b.push(0);
  return [nh, (b.length + 2) / 8 - 1, ...b, ...payload];
}

/** IPv6 fragment header (8 bytes). */
export function ip6Frag(nh: number, offset: number, more: boolean, id: number, payload: Bytes): Bytes {
  return [nh, 0, ...u16((offset << 3) | (more ? 1 : 0)), ...u32(id), ...payload];
}

export const TCP_FIN = 1, TCP_SYN = 2, TCP_RST = 4, TCP_PSH = 8, TCP_ACK = 16, TCP_URG = 32, TCP_ECE = 64, TCP_CWR = 128;

export interface TcpOptions {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: number;
  win?: number;
  /** Raw TCP option bytes (padded with NOPs... end to 4). */
  options?: Bytes;
}

export function tcp(o: TcpOptions, payload: Bytes = []): Bytes {
  const opts = [...(o.options ?? [])];
  while (opts.length % 4 !== 0) opts.push(0);
  const off = (20 + opts.length) / 4;
  return [...u16(o.sport), ...u16(o.dport), ...u32(o.seq ?? 1), ...u32(o.ack ?? 0), off << 4, o.flags ?? TCP_ACK,
    ...u16(o.win ?? 512), 0, 0, 0, 0, ...opts, ...payload];
}

export function udp(sport: number, dport: number, payload: Bytes = []): Bytes {
  return [...u16(sport), ...u16(dport), ...u16(8 + payload.length), 0, 0, ...payload];
}

export function icmp(type: number, code: number, rest: Bytes = [0, 1, 0, 1], payload: Bytes = []): Bytes {
  const body = [type, code, 0, 0, ...rest, ...payload];
  const c = checksum(body);
  body[2] = c >> 8;
  body[3] = c & 0xff;
  return body;
}

export function icmp6(type: number, code: number, rest: Bytes = [0, 0, 0, 0], payload: Bytes = []): Bytes {
  return [type, code, 0, 0, ...rest, ...payload];
}

/** Deterministic byte pattern of length n. */
export function filler(n: number, seed = 0): Bytes {
  const out: Bytes = [];
  for (let i = 0; i < n; i++) out.push((i * 7 + seed * 13 + 1) & 0xff);
  return out;
}

/** Pads a frame to the Ethernet minimum of 60 bytes (without FCS). */
export function padFrame(frame: Bytes): Bytes {
  return frame.length >= 60 ? frame : [...frame, ...new Array<number>(60 - frame.length).fill(0)];
}
