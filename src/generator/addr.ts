/**
 * Addresses for pkt-gen: IPv4 addresses, MAC addresses and the `-s`/`-d` range syntax
 * `ip[:port][-[ip][:port]]` (netmap pkt-gen's `a.b.c.d[:port][-a.b.c.d[:port]]`), and the walk
 * over a range pair that pkt-gen does per packet (sequential odometer, or random with -z/-Z).
 */
import { fail } from '../errors.js';

export const DEFAULT_PORT = 1234;

export interface AddrRange {
  /** First and last IPv4 address, as unsigned 32-bit numbers. */
  ipStart: number;
  ipEnd: number;
  port0: number;
  port1: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted-quad IPv4 address; `what` names the option in the error. */
export function parseIPv4(text: string, what: string): number {
  const m = IPV4.exec(text);
  if (m === null) fail('EINVAL', `${what}: '${text}' is not an IPv4 address (a.b.c.d)`);
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) fail('EINVAL', `${what}: '${text}' has a byte above 255`);
    v = v * 256 + b;
  }
  return v;
}

export function formatIPv4(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) fail('EINVAL', `${what}: '${text}' is not a UDP port (0..65535)`);
  return Number(text);
}

/** Parses `ip[:port][-[ip][:port]]`; the end defaults to the start, the port to 1234. */
export function parseRange(text: string, what: string): AddrRange {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) fail('EINVAL', `${what}: expected ip[:port][-ip[:port]], got '${String(text)}'`);
  const dash = text.indexOf('-');
  const left = dash < 0 ? text : text.slice(0, dash);
  const right = dash < 0 ? null : text.slice(dash + 1);
  const colon = left.indexOf(':');
  const ipStart = parseIPv4(colon < 0 ? left : left.slice(0, colon), what);
  const port0 = colon < 0 ? DEFAULT_PORT : parsePort(left.slice(colon + 1), what);
  let ipEnd = ipStart, port1 = port0;
  if (right !== null) {
    if (right.length === 0) fail('EINVAL', `${what}: '${text}' has nothing after '-'`);
    const c = right.indexOf(':');
    const ipText = c < 0 ? right : right.slice(0, c);
    if (ipText.length > 0) ipEnd = parseIPv4(ipText, what);
    if (c >= 0) port1 = parsePort(right.slice(c + 1), what);
  }
  if (ipEnd < ipStart) fail('EINVAL', `${what}: range '${text}' ends (${formatIPv4(ipEnd)}) before it starts (${formatIPv4(ipStart)})`);
  if (port1 < port0) fail('EINVAL', `${what}: port range '${text}' ends (${port1}) before it starts (${port0})`);
  return { ipStart, ipEnd, port0, port1 };
}

export function formatRange(r: AddrRange): string {
  let s = formatIPv4(r.ipStart);
  if (r.port0 !== DEFAULT_PORT || r.port1 !== r.port0) s += `:${r.port0}`;
  if (r.ipEnd !== r.ipStart || r.port1 !== r.port0) s += `-${formatIPv4(r.ipEnd)}:${r.port1}`;
  return s;
}

export function rangeIsSingle(r: AddrRange): boolean {
  return r.ipStart === r.ipEnd && r.port0 === r.port1;
}

/** Parses `aa:bb:cc:dd:ee:ff` (also with '-') into 6 bytes. */
export function parseMac(text: string, what: string): number[] {
  const parts = typeof text === 'string' ? text.split(/[:-]/) : [];
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) fail('EINVAL', `${what}: '${String(text)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return parts.map((p) => parseInt(p, 16));
}

export function formatMac(b: ArrayLike<number>): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push((b[i]! & 255).toString(16).padStart(2, '0'));
  return out.join(':');
}

/**
 * The current addresses of a generator and their per-packet walk. Sequential mode is pkt-gen's
 * odometer: source port first, then source address, then destination port, then destination
 * address, each wrapping to its start. Random mode (-z source, -Z destination) picks uniformly
 * in the range with a xorshift generator. No allocation per step.
 */
export class AddrWalker {
  srcIp: number;
  dstIp: number;
  sport: number;
  dport: number;
  private readonly s: AddrRange;
  private readonly d: AddrRange;
  private readonly randSrc: boolean;
  private readonly randDst: boolean;
  private seed: number;
  /** Whether anything ever changes (false: one fixed address pair). */
  readonly varies: boolean;

  constructor(src: AddrRange, dst: AddrRange, randomSrc: boolean, randomDst: boolean, seed = 0x9e3779b9) {
    this.s = src; this.d = dst;
    this.srcIp = src.ipStart; this.dstIp = dst.ipStart; this.sport = src.port0; this.dport = dst.port0;
    this.randSrc = randomSrc && !rangeIsSingle(src);
    this.randDst = randomDst && !rangeIsSingle(dst);
    this.seed = (seed | 0) === 0 ? 1 : seed | 0;
    this.varies = !rangeIsSingle(src) || !rangeIsSingle(dst);
  }

  private rand(): number {
    let x = this.seed;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.seed = x;
    return x >>> 0;
  }

  private pick(lo: number, hi: number): number {
    const span = hi - lo + 1;
    return lo + (span >= 0x100000000 ? this.rand() : this.rand() % span);
  }

  /** Moves to the addresses of the next packet. */
  step(): void {
    const s = this.s, d = this.d;
    if (this.randSrc || this.randDst) {
      if (this.randSrc) { this.srcIp = this.pick(s.ipStart, s.ipEnd); this.sport = this.pick(s.port0, s.port1); }
      if (this.randDst) { this.dstIp = this.pick(d.ipStart, d.ipEnd); this.dport = this.pick(d.port0, d.port1); }
      if (this.randSrc && this.randDst) return;
      if (this.randSrc) { this.stepDst(); return; }
      this.stepSrc();
      return;
    }
    if (!this.stepSrc()) this.stepDst();
  }

  /** Advances the source; returns false when it wrapped around. */
  private stepSrc(): boolean {
    const s = this.s;
    if (this.sport < s.port1) { this.sport++; return true; }
    this.sport = s.port0;
    if (this.srcIp < s.ipEnd) { this.srcIp++; return true; }
    this.srcIp = s.ipStart;
    return false;
  }

  private stepDst(): boolean {
    const d = this.d;
    if (this.dport < d.port1) { this.dport++; return true; }
    this.dport = d.port0;
    if (this.dstIp < d.ipEnd) { this.dstIp++; return true; }
    this.dstIp = d.ipStart;
    return false;
  }
}
