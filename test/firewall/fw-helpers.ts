/**
 * Helpers for the evaluation tests: hand-built frames (Ethernet + IPv4/IPv6 + TCP/UDP/ICMP),
 * hand-built rules (the parser is another module's), and shared state over a SharedArrayBuffer.
 */
import {
  type Cmd, type CmdBody, type Rule, type FirewallConfig, type TableConfig, type Action, type Settings,
  DEFAULT_SETTINGS, defaultRule,
} from '../../src/firewall/rule.js';
import { Counters, DynTable } from '../../src/firewall/state.js';
import { buildEvaluator, type Evaluator, type Interfaces, type SharedState } from '../../src/firewall/engine.js';
import { parseIp4, parseIp6 } from '../../src/firewall/tables.js';

// ----- frames

export interface L4 {
  kind: 'tcp' | 'udp' | 'icmp' | 'icmp6' | 'raw';
  sport?: number; dport?: number; flags?: number; seq?: number; ack?: number; win?: number;
  tcpOptions?: number[]; type?: number; code?: number; payload?: number; proto?: number;
}

function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function ipv4Checksum(frame: Uint8Array, l3 = 14): number {
  const ihl = (frame[l3]! & 0x0f) * 4;
  return checksum(frame, l3, l3 + ihl);
}

function l4Bytes(l4: L4): number[] {
  const payload = new Array<number>(l4.payload ?? 0).fill(0x61);
  switch (l4.kind) {
    case 'tcp': {
      const opts = l4.tcpOptions ?? [];
      while (opts.length % 4 !== 0) opts.push(1);
      const off = (20 + opts.length) / 4;
      const seq = l4.seq ?? 1000, ack = l4.ack ?? 0, win = l4.win ?? 65535;
      return [l4.sport! >> 8, l4.sport! & 255, l4.dport! >> 8, l4.dport! & 255,
        seq >>> 24, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255,
        ack >>> 24, (ack >>> 16) & 255, (ack >>> 8) & 255, ack & 255,
        off << 4, l4.flags ?? 0x02, win >> 8, win & 255, 0, 0, 0, 0, ...opts, ...payload];
    }
    case 'udp': {
      const len = 8 + payload.length;
      return [l4.sport! >> 8, l4.sport! & 255, l4.dport! >> 8, l4.dport! & 255, len >> 8, len & 255, 0, 0, ...payload];
    }
    case 'icmp': case 'icmp6':
      return [l4.type ?? 8, l4.code ?? 0, 0, 0, 0, 1, 0, 1, ...payload];
    case 'raw': return payload;
  }
}

function protoOf(l4: L4): number {
  return l4.kind === 'tcp' ? 6 : l4.kind === 'udp' ? 17 : l4.kind === 'icmp' ? 1 : l4.kind === 'icmp6' ? 58 : (l4.proto ?? 253);
}

export interface Ip4Opts { ttl?: number; tos?: number; id?: number; fragOffset?: number; mf?: boolean; options?: number[]; ihl?: number; dstMac?: number[] }

const SRC_MAC = [0x02, 0, 0, 0, 0, 1];
const DST_MAC = [0x02, 0, 0, 0, 0, 2];

export function eth(type: number, body: number[], dstMac = DST_MAC, srcMac = SRC_MAC): Uint8Array {
  return Uint8Array.from([...dstMac, ...srcMac, type >> 8, type & 255, ...body]);
}

export function ip4(src: string, dst: string, l4: L4, o: Ip4Opts = {}): Uint8Array {
  const opts = [...(o.options ?? [])];
  while (opts.length % 4 !== 0) opts.push(0);
  const hl = 20 + opts.length;
  const body = (o.fragOffset ?? 0) !== 0 ? new Array<number>(l4.payload ?? 8).fill(0x62) : l4Bytes(l4);
  const total = hl + body.length;
  const s = parseIp4(src), d = parseIp4(dst);
  const off = (o.fragOffset ?? 0) | (o.mf ? 0x2000 : 0);
  const id = o.id ?? 0x1234;
  const hdr = [0x40 | (o.ihl ?? hl / 4), o.tos ?? 0, total >> 8, total & 255, id >> 8, id & 255, off >> 8, off & 255,
    o.ttl ?? 64, protoOf(l4), 0, 0, s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255,
    d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255, ...opts];
  const f = eth(0x0800, [...hdr, ...body], o.dstMac);
  const ck = ipv4Checksum(f);
  f[24] = ck >> 8; f[25] = ck & 255;
  return f;
}

export interface Ip6Opts { hlim?: number; tclass?: number; flow?: number; ext?: Array<{ type: number; fragOffset?: number; mf?: boolean }> }

export function ip6(src: string, dst: string, l4: L4, o: Ip6Opts = {}): Uint8Array {
  const words = (t: string): number[] => parseIp6(t)!.flatMap((w) => [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255]);
  let payload = l4Bytes(l4);
  let next = protoOf(l4);
  for (const ext of [...(o.ext ?? [])].reverse()) {
    if (ext.type === 44) {
      const off = (ext.fragOffset ?? 0) | (ext.mf ? 1 : 0);
      payload = [next, 0, off >> 8, off & 255, 0, 0, 0, 7, ...((ext.fragOffset ?? 0) !== 0 ? new Array<number>(16).fill(0x63) : payload)];
    } else {
      payload = [next, 0, ext.type === 43 ? 0 : 1, ext.type === 43 ? 0 : 4, 0, 0, 0, 0, ...payload];
    }
    next = ext.type;
  }
  const tc = o.tclass ?? 0, flow = o.flow ?? 0;
  const hdr = [0x60 | (tc >> 4), ((tc & 15) << 4) | (flow >> 16), (flow >> 8) & 255, flow & 255,
    payload.length >> 8, payload.length & 255, next, o.hlim ?? 64, ...words(src), ...words(dst)];
  return eth(0x86dd, [...hdr, ...payload]);
}

export const TH = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32 };

// ----- rules

export function c(body: CmdBody, opts: { neg?: boolean; or?: boolean } = {}): Cmd {
  return { neg: opts.neg ?? false, or: opts.or ?? false, ...body } as Cmd;
}

export function addr4(text: string): { addr: number; mask: number } {
  const [a = '', len] = text.split('/');
  const l = len === undefined ? 32 : Number(len);
  return { addr: parseIp4(a), mask: l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0 };
}

export interface RuleOpts { set?: number; prob?: number; tag?: Rule['tag']; tablearg?: boolean; stateName?: string; log?: boolean }

export function rule(number: number, kind: Action['kind'], arg: number, cmds: Cmd[], o: RuleOpts = {}): Rule {
  return {
    number, slot: -1, set: o.set ?? 0, prob: o.prob ?? 1,
    action: { kind, arg, tablearg: o.tablearg ?? false, ...(o.stateName ? { stateName: o.stateName } : {}) },
    log: o.log ?? false, logAmount: 0, tag: o.tag ?? null, cmds, comment: null,
  };
}

/** A configuration: the rules (sorted stably by number, slots 1.. in order) and the default rule (slot 0). */
export function config(rules: Rule[], o: { tables?: TableConfig[]; settings?: Partial<Settings>; disabledSets?: number; defaultAccept?: boolean } = {}): FirewallConfig {
  const sorted = rules.map((r, i) => ({ r, i })).sort((a, b) => a.r.number - b.r.number || a.i - b.i).map(({ r }) => r);
  sorted.forEach((r, i) => { if (r.slot < 0) r.slot = i + 1; });
  return {
    version: 1, rules: [...sorted, defaultRule(o.defaultAccept ?? true)], disabledSets: o.disabledSets ?? 0,
    tables: o.tables ?? [], settings: { ...DEFAULT_SETTINGS, ...(o.settings ?? {}) }, dummynet: null,
  };
}

// ----- shared state

export function makeShared(capacity = 1024, stripes = 4): SharedState {
  const cBytes = Counters.bytesNeeded(stripes);
  const dBytes = DynTable.bytesNeeded(capacity);
  const sab = new SharedArrayBuffer(8 + cBytes + dBytes + 8);
  // Deliberately not at offset 0: production regions sit inside a larger mapping.
  const counters = new Counters(sab, 8, cBytes, stripes);
  const dyn = new DynTable(sab, 8 + ((cBytes + 7) & ~7), dBytes, capacity);
  return { counters, dyn, stripe: counters.acquireStripe() };
}

export class Names implements Interfaces {
  generation = 1;
  constructor(public names: string[]) {}
  name(id: number): string | null { return this.names[id] ?? null; }
  rename(id: number, name: string): void { this.names[id] = name; this.generation++; }
}

export interface Fw { ev: Evaluator; shared: SharedState; cfg: FirewallConfig }

export function build(cfg: FirewallConfig, compiled: boolean, o: { shared?: SharedState; ifaces?: Interfaces; seed?: number; chunkRules?: number } = {}): Fw {
  const shared = o.shared ?? makeShared();
  const ev = buildEvaluator(cfg, shared, o.ifaces ?? new Names(['veth0', 'veth1', 'valeA:p0']), { compiled, seed: o.seed ?? 1, chunkRules: o.chunkRules });
  return { ev, shared, cfg };
}

/** Runs one frame through evaluator `ev`: kipfw's way (in, received on port 0) unless told. */
export function verdict(ev: Evaluator, frame: Uint8Array, o: { dirIn?: boolean; recvIf?: number; xmitIf?: number; now?: number } = {}): number {
  return ev.check(frame, 0, frame.length, o.dirIn ?? true, o.recvIf ?? 0, o.xmitIf ?? -1, o.now ?? 1_000_000);
}
