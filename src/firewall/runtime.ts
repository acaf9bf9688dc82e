/**
 * What the interpreter and the compiled code share: the prepared ruleset (rules with their
 * tables, interface caches, state-name ids and jump targets resolved once per ruleset version)
 * and the per-thread runtime (the decoded packet, its tags, call stack, tablearg, the clock of
 * the batch, and the helpers for the matches that are not one expression: tables, interfaces,
 * MAC addresses, states, terminal actions). Both evaluators call the same helpers, so they can
 * only differ in the control flow, which is what the cross-check tests.
 */
import { fail } from '../errors.js';
import { CALL_STACK, MAX_RULES, type Cmd, type FirewallConfig, type Rule, type Settings, type Range } from './rule.js';
import { PacketInfo, rewriteDscp } from './packet.js';
import { LookupTable, buildTables } from './tables.js';
import type { Counters, DynTable } from './state.js';

export const V_PASS = 0, V_DENY = 1, V_REJECT = 2, V_RESET = 3, V_PIPE = 4, V_QUEUE = 5;

/** Port names by small id; generation bumps when names change. */
export interface Interfaces { name(id: number): string | null; readonly generation: number }

export interface SharedState { counters: Counters; dyn: DynTable; stripe: number }

/** Action codes of prepared rules. */
export const A_ALLOW = 0, A_DENY = 1, A_REJECT = 2, A_UNREACH6 = 3, A_RESET = 4, A_RESET6 = 5, A_COUNT = 6,
  A_SKIPTO = 7, A_CALL = 8, A_RETURN = 9, A_CHECK_STATE = 10, A_SETDSCP = 11, A_PIPE = 12, A_QUEUE = 13;

const ACTION_CODES: Record<string, number> = {
  allow: A_ALLOW, deny: A_DENY, reject: A_REJECT, unreach: A_REJECT, unreach6: A_UNREACH6, reset: A_RESET, reset6: A_RESET6,
  count: A_COUNT, skipto: A_SKIPTO, call: A_CALL, return: A_RETURN, 'check-state': A_CHECK_STATE, setdscp: A_SETDSCP,
  pipe: A_PIPE, queue: A_QUEUE,
};

/** Tags one packet can carry at once (ipfw: unbounded mbuf tags); more are ignored, as a failed m_tag_alloc. */
export const MAX_TAGS = 16;
/** Interfaces whose match results are cached per command (ids beyond are matched by name each time). */
const IFACE_CACHE = 256;
/** Runtime.decodeLevel values: PacketInfo.decode, decodeBasic, decodeLength. */
export const DECODE_FULL = 0, DECODE_BASIC = 1, DECODE_LENGTH = 2;
/** dynDir values. */
export const DYN_UNKNOWN = 0, DYN_NONE = 1, DYN_HIT = 2;

/** A command with what evaluation needs resolved. */
export interface PCmd {
  cmd: Cmd;
  /** cmd's op, neg and or copied here: every PCmd has one shape, so the interpreter's loads of
   * them stay monomorphic (Cmd objects have a shape per op). */
  op: Cmd['op'];
  neg: boolean;
  or: boolean;
  table: LookupTable | null;
  /** iface commands: per interface id, 0 unknown, -1 no match, value + 1 on a match. */
  cache: Float64Array | null;
  pattern: RegExp | null;
  /** ip-set bitmap; tagged / mac-type ranges as a flat [lo, hi, ...] list; MAC want+mask (12 + 12 bytes). */
  bitmap: Uint32Array | null;
  ranges: Int32Array | null;
  mac: Uint8Array | null;
  nameId: number;
  maskBits: number;
  /** lookup key code: 0 dst-ip, 1 src-ip, 2 dst-port, 3 src-port, 6 dscp, 7 rulenum, -1 never matches. */
  keyCode: number;
  /** The commonest commands' operands in the same shape for every command (the interpreter's
   * fast path): proto number; `ports` ranges (in `ranges`); ip-addr [addr & mask, mask] pairs;
   * source (true) or destination. */
  proto: number;
  list4: Uint32Array | null;
  src: boolean;
  /** Numeric dispatch for the interpreter (comparing op strings costs a string-equality check
   * per command): CK_* below. */
  kind: number;
}

/** PCmd.kind values. */
export const CK_OTHER = 0, CK_PROTO = 1, CK_IP_ADDR = 2, CK_PORTS = 3, CK_PROBE = 4, CK_INSTALL = 5;

export interface PRule {
  rule: Rule;
  index: number;
  enabled: boolean;
  action: number;
  /** skipto/call target index when the argument is a constant. */
  target: number;
  stateNameId: number;
  cmds: PCmd[];
}

export interface Prepared {
  config: FirewallConfig;
  /** The ruleset reads no packet field beyond PacketInfo.decodeBasic's. */
  basicDecode: boolean;
  /** The ruleset reads no packet field at all: PacketInfo.decodeLength suffices. */
  lengthDecode: boolean;
  rules: PRule[];
  numbers: Int32Array;
  slots: Int32Array;
  slotToIndex: Int32Array;
}

function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

function parseMac(text: string, out: Uint8Array, at: number): void {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) fail('EINVAL', `bad MAC address "${text}"`);
  for (let i = 0; i < 6; i++) out[at + i] = parseInt(parts[i]!, 16);
}

function flatRanges(ranges: Range[]): Int32Array {
  const out = new Int32Array(ranges.length * 2);
  ranges.forEach(([lo, hi], i) => { out[2 * i] = lo; out[2 * i + 1] = hi; });
  return out;
}

/** First index in `numbers` whose rule number is ≥ num (the last rule, the default, when none). */
export function findRuleIndex(numbers: Int32Array, num: number): number {
  let lo = 0, hi = numbers.length - 1;
  if (hi < 0) return 0;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (numbers[mid]! < num) lo = mid + 1; else hi = mid;
  }
  return lo;
}

const KEY_CODES: Record<string, number> = { 'dst-ip': 0, 'src-ip': 1, 'dst-port': 2, 'src-port': 3, dscp: 6, rulenum: 7, uid: -1, jail: -1 };

/** Resolves a configuration once per ruleset version. `dyn` registers the state names. */
export function prepare(config: FirewallConfig, dyn: DynTable): Prepared {
  const rules = config.rules;
  if (rules.length === 0) fail('EINVAL', 'a ruleset holds at least the default rule');
  if (rules.length > MAX_RULES) fail('E2BIG', `${rules.length} rules, more than ${MAX_RULES}`);
  const numbers = Int32Array.from(rules.map((r) => r.number));
  for (let i = 1; i < numbers.length; i++) if (numbers[i]! < numbers[i - 1]!) fail('EINVAL', 'rules are not sorted by number');
  const slots = Int32Array.from(rules.map((r) => r.slot));
  const slotToIndex = new Int32Array(MAX_RULES).fill(-1);
  rules.forEach((r, i) => {
    if (r.slot < 0 || r.slot >= MAX_RULES || !Number.isInteger(r.slot)) fail('EINVAL', `rule ${r.number}: counter slot ${r.slot} out of range`);
    if (slotToIndex[r.slot]! >= 0) fail('EINVAL', `rule ${r.number}: counter slot ${r.slot} used twice`);
    slotToIndex[r.slot] = i;
  });
  const tables = buildTables(config.tables);
  const emptyTable = new LookupTable({ name: '', type: 'addr', entries: [] });
  const tableOf = (name: string): LookupTable => tables.get(name) ?? emptyTable; // a missing table is empty (2014 ipfw)
  const prepared: PRule[] = rules.map((rule, index) => {
    const action = ACTION_CODES[rule.action.kind];
    if (action === undefined) fail('EINVAL', `rule ${rule.number}: unknown action ${rule.action.kind}`);
    let target = -1;
    if ((action === A_SKIPTO || action === A_CALL) && !rule.action.tablearg) {
      let num = rule.action.arg;
      if (action === A_SKIPTO && num <= rule.number) num = rule.number + 1; // skipto never goes backwards
      target = findRuleIndex(numbers, num);
    }
    const stateNameId = action === A_CHECK_STATE ? dyn.nameId(rule.action.stateName ?? 'default') : 0;
    const cmds = rule.cmds.map((cmd): PCmd => {
      const pc: PCmd = {
        cmd, op: cmd.op, neg: cmd.neg, or: cmd.or, table: null, cache: null, pattern: null, bitmap: null, ranges: null, mac: null,
        nameId: 0, maskBits: 0, keyCode: -1, proto: -1, list4: null, src: 'dir' in cmd && cmd.dir === 'src',
        kind: cmd.op === 'proto' ? CK_PROTO : cmd.op === 'ip-addr' ? CK_IP_ADDR : cmd.op === 'ports' ? CK_PORTS
          : cmd.op === 'probe-state' ? CK_PROBE : cmd.op === 'keep-state' || cmd.op === 'limit' ? CK_INSTALL : CK_OTHER,
      };
      switch (cmd.op) {
        case 'table': pc.table = tableOf(cmd.table); break;
        case 'lookup': pc.table = tableOf(cmd.table); pc.keyCode = KEY_CODES[cmd.key] ?? -1; break;
        case 'iface':
          pc.cache = new Float64Array(IFACE_CACHE);
          if (cmd.table !== null) pc.table = tableOf(cmd.table);
          else if (cmd.name !== null) pc.pattern = globToRegExp(cmd.name);
          break;
        case 'ip-set': {
          const bm = new Uint32Array(Math.max(1, Math.ceil(cmd.bits / 32)));
          for (const m of cmd.members) if (m >= 0 && m < cmd.bits) bm[m >> 5]! |= 1 << (m & 31);
          pc.bitmap = bm;
          break;
        }
        case 'tagged': case 'mac-type': case 'ports': pc.ranges = flatRanges(cmd.ranges); break;
        case 'proto': pc.proto = cmd.proto; break;
        case 'ip-addr': pc.list4 = Uint32Array.from(cmd.list.flatMap((e) => [(e.addr & e.mask) >>> 0, e.mask >>> 0])); break;
        case 'mac': {
          const m = new Uint8Array(24);
          parseMac(cmd.dst, m, 0); parseMac(cmd.src, m, 6); parseMac(cmd.dstMask, m, 12); parseMac(cmd.srcMask, m, 18);
          pc.mac = m;
          break;
        }
        case 'probe-state': case 'keep-state': pc.nameId = dyn.nameId(cmd.name); break;
        case 'limit':
          pc.nameId = dyn.nameId(cmd.name);
          pc.maskBits = (cmd.mask.srcAddr ? 1 : 0) | (cmd.mask.srcPort ? 2 : 0) | (cmd.mask.dstAddr ? 4 : 0) | (cmd.mask.dstPort ? 8 : 0);
          break;
        default: break;
      }
      return pc;
    });
    rule.cmds.forEach((cmd, k) => {
      const isState = cmd.op === 'probe-state' || cmd.op === 'keep-state' || cmd.op === 'limit';
      if (isState && (cmd.neg || cmd.or || (k > 0 && rule.cmds[k - 1]!.or))) {
        fail('EINVAL', `rule ${rule.number}: ${cmd.op} cannot be negated or in an or-block`);
      }
    });
    return { rule, index, enabled: (config.disabledSets & (1 << rule.set)) === 0 || rule.set === 31, action, target, stateNameId, cmds };
  });
  return {
    config, rules: prepared, numbers, slots, slotToIndex,
    basicDecode: prepared.every(basicDecodeSuffices), lengthDecode: prepared.every(lengthDecodeSuffices),
  };
}

/** Commands and actions that read only what decodeBasic fills in (or the frame bytes themselves). */
const BASIC_OPS = new Set<string>(['proto', 'ip4', 'ip6', 'in', 'layer2', 'iface', 'mac', 'mac-type', 'frag', 'tagged',
  'ip-addr', 'ip-set', 'ip6-addr', 'me', 'table', 'ports', 'tcpflags', 'established', 'icmptypes', 'icmp6types',
  'probe-state', 'keep-state', 'limit']);
const BASIC_ACTIONS = new Set<number>([A_ALLOW, A_DENY, A_COUNT, A_SKIPTO, A_CALL, A_RETURN, A_PIPE, A_QUEUE, A_SETDSCP,
  A_REJECT, A_UNREACH6, A_RESET, A_RESET6, A_CHECK_STATE]);

export function basicDecodeSuffices(r: PRule): boolean {
  return BASIC_ACTIONS.has(r.action) && r.cmds.every((c) => BASIC_OPS.has(c.op));
}

/**
 * Commands and actions that read no packet field (the frame's own bytes for `mac`, the byte
 * count for the counters): setdscp, reject/reset (they look at the IP header) and the states
 * are not among them.
 */
const LENGTH_OPS = new Set<string>(['in', 'layer2', 'iface', 'mac', 'tagged']);
const LENGTH_ACTIONS = new Set<number>([A_ALLOW, A_DENY, A_COUNT, A_SKIPTO, A_CALL, A_RETURN, A_PIPE, A_QUEUE]);

export function lengthDecodeSuffices(r: PRule): boolean {
  return LENGTH_ACTIONS.has(r.action) && r.cmds.every((c) => LENGTH_OPS.has(c.op));
}

/** The ICMPv6 code a `reject`/`unreach CODE` rule sends to an IPv6 packet (see README-eval.md). */
export function unreachCodeV6(code: number): number {
  switch (code) {
    case 0: return 0;          // net → no route
    case 1: return 3;          // host → address unreachable
    case 3: return 4;          // port → port unreachable
    case 9: case 10: case 13: return 1; // prohibited → administratively prohibited
    default: return 3;
  }
}

/** The per-thread runtime: one per evaluator. */
export class Runtime {
  readonly p = new PacketInfo();
  readonly prep: Prepared;
  readonly counters: Counters;
  readonly stripe: number;
  /** Counters index of slot 0 in this runtime's stripe. */
  private readonly counterBase: number;
  readonly dyn: DynTable;
  readonly settings: Settings;
  readonly ifaces: Interfaces;
  private ifaceGeneration = -1;
  readonly tags = new Int32Array(MAX_TAGS);
  ntags = 0;
  readonly stack = new Int32Array(CALL_STACK);
  sp = 0;
  dynDir = DYN_UNKNOWN;
  nowMs = 0;
  nowSec = 0;
  dirIn = true;
  recvIf = -1;
  xmitIf = -1;
  /** Value of the last table/interface-table match (tablearg candidate). */
  lastValue = 0;
  /**
   * Decode only what the ruleset reads (compiled evaluators; the interpreter decodes everything,
   * so the fuzz test cross-checks the two): DECODE_FULL, DECODE_BASIC or DECODE_LENGTH.
   */
  decodeLevel = DECODE_FULL;
  /** xorshift32 state for `prob`. */
  private rng: number;
  arg = 0;
  ruleIndex = -1;
  /** Compiled code: the pc and tablearg handed from one chunk function to the next, and the jumps taken. */
  pc = 0;
  ta = 0;
  guard = 0;

  constructor(prep: Prepared, shared: SharedState, ifaces: Interfaces, seed: number) {
    this.prep = prep;
    this.counters = shared.counters;
    this.stripe = shared.stripe;
    this.counterBase = shared.counters.indexOf(shared.stripe, 0);
    this.dyn = shared.dyn;
    this.settings = prep.config.settings;
    this.ifaces = ifaces;
    this.rng = (seed >>> 0) || 0x9e3779b9;
  }

  /** Per-packet reset; returns false when the packet is denied before any rule (pullup failed). */
  begin(u8: Uint8Array, off: number, len: number, dirIn: boolean, recvIf: number, xmitIf: number, nowMs: number): boolean {
    this.beginBatch(nowMs);
    this.dirIn = dirIn; this.recvIf = recvIf; this.xmitIf = xmitIf;
    return this.beginPacket(u8, off, len);
  }

  /** What stays the same for a batch of packets: the clock, the interfaces' names. */
  beginBatch(nowMs: number): void {
    if (nowMs !== this.nowMs) { this.nowMs = nowMs; this.nowSec = Math.floor(nowMs / 1000) >>> 0; }
    const gen = this.ifaces.generation;
    if (gen !== this.ifaceGeneration) {
      this.ifaceGeneration = gen;
      for (const r of this.prep.rules) for (const c of r.cmds) if (c.cache !== null) c.cache.fill(0);
    }
  }

  /** begin() after beginBatch() and with dirIn, recvIf, xmitIf already set. */
  beginPacket(u8: Uint8Array, off: number, len: number): boolean {
    const level = this.decodeLevel;
    if (level === DECODE_LENGTH) this.p.decodeLength(u8, off, len);
    else if (level === DECODE_BASIC) this.p.decodeBasic(u8, off, len);
    else this.p.decode(u8, off, len);
    this.ntags = 0; this.sp = 0; this.dynDir = DYN_UNKNOWN;
    this.arg = 0; this.ruleIndex = -1;
    return !this.p.pullupFailed;
  }

  /** [0, 1) */
  rand(): number {
    let x = this.rng;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.rng = x;
    return (x >>> 0) / 4294967296;
  }

  /** `log`: counts the logged packet against logamount (nothing is printed; see README-eval.md). */
  log(i: number): void {
    const r = this.prep.rules[i]!.rule;
    this.counters.logOne(this.prep.slots[i]!, r.logAmount > 0 ? r.logAmount : this.settings.verboseLimit);
  }

  count(i: number): void {
    this.counters.addAt(this.counterBase + this.prep.slots[i]!, this.p.pktlen, this.nowSec);
  }

  /** A terminal action of rule i: counts it and returns the verdict (arg and ruleIndex set). */
  terminal(i: number, action: number, arg: number): number {
    this.count(i);
    this.ruleIndex = i;
    const p = this.p;
    switch (action) {
      case A_ALLOW: return V_PASS;
      case A_PIPE: this.arg = arg; return V_PIPE;
      case A_QUEUE: this.arg = arg; return V_QUEUE;
      case A_REJECT:
        if (p.ipVersion === 4 && this.mayReply4()) { this.arg = arg; return V_REJECT; }
        if (p.ipVersion === 6 && this.mayReply6()) { this.arg = unreachCodeV6(arg); return V_REJECT; }
        return V_DENY;
      case A_UNREACH6:
        if (p.ipVersion === 6 && this.mayReply6()) { this.arg = arg; return V_REJECT; }
        return V_DENY;
      case A_RESET:
        if (p.proto === 6 && p.l4 >= 0 && (p.tcpFlags & 0x04) === 0 && (p.ipVersion === 4 ? this.mayReply4() : p.ipVersion === 6 && this.mayReply6())) return V_RESET;
        return V_DENY;
      case A_RESET6:
        if (p.proto === 6 && p.l4 >= 0 && (p.tcpFlags & 0x04) === 0 && p.ipVersion === 6 && this.mayReply6()) return V_RESET;
        return V_DENY;
      default: return V_DENY;
    }
  }

  /** send_reject's conditions: first fragment, not an ICMP error, not broadcast/multicast. */
  private mayReply4(): boolean {
    const p = this.p;
    if (p.fragOffset !== 0) return false;
    if (p.proto === 1) {
      if (p.l4 < 0) return false;
      const t = p.icmpType;
      if (t !== 8 && t !== 10 && t !== 13 && t !== 15 && t !== 17) return false;
    }
    if ((p.u8[p.off]! & 1) !== 0) return false; // Ethernet broadcast/multicast (M_BCAST|M_MCAST)
    return (p.dst4 >>> 28) !== 0xe;
  }

  private mayReply6(): boolean {
    const p = this.p;
    if (p.fragOffset !== 0) return false;
    if (p.proto === 58) {
      if (p.l4 < 0) return false;
      const t = p.icmpType;
      if (t !== 128 && t !== 130 && t !== 139) return false;
    }
    if ((p.u8[p.off]! & 1) !== 0) return false;
    return (p.dst6[0]! >>> 24) !== 0xff;
  }

  /** setdscp: rewrites IP packets and counts the rule; non-IP packets are left alone, uncounted (as ipfw). */
  setDscp(i: number, code: number): void {
    if (this.p.ipVersion === 0) return;
    rewriteDscp(this.p, code);
    this.count(i);
  }

  tag(value: number): void {
    for (let k = 0; k < this.ntags; k++) if (this.tags[k] === value) return;
    if (this.ntags < MAX_TAGS) this.tags[this.ntags++] = value;
  }

  untag(value: number): void {
    for (let k = 0; k < this.ntags; k++) {
      if (this.tags[k] === value) { this.tags[k] = this.tags[--this.ntags]!; return; }
    }
  }

  tagged(ranges: Int32Array): boolean {
    for (let k = 0; k < this.ntags; k++) {
      const t = this.tags[k]!;
      for (let r = 0; r < ranges.length; r += 2) if (t >= ranges[r]! && t <= ranges[r + 1]!) return true;
    }
    return false;
  }

  /** skipto tablearg / return: the first enabled-or-not rule index with number ≥ num. */
  findRule(num: number): number { return findRuleIndex(this.prep.numbers, num); }

  skipTarget(i: number, num: number): number {
    const cur = this.prep.numbers[i]!;
    return findRuleIndex(this.prep.numbers, num <= cur ? cur + 1 : num);
  }

  /** probe-state / check-state: the parent rule's index on a hit, -1 otherwise (looked up once per packet). */
  probe(nameId: number): number {
    if (this.dynDir !== DYN_UNKNOWN) return -1;
    const q = this.dyn.lookupPacket(this.p, nameId, this.nowMs, this.settings);
    if (q < 0) { this.dynDir = DYN_NONE; return -1; }
    this.dynDir = DYN_HIT;
    const idx = this.prep.slotToIndex[this.dyn.lastSlot]!;
    if (idx < 0 || this.prep.numbers[idx] !== this.dyn.lastRule) return -1; // parent gone: removeRule pending
    return idx;
  }

  /** keep-state / limit of rule i; false: deny the packet. */
  install(i: number, pc: PCmd, tablearg: number): boolean {
    const cmd = pc.cmd;
    let limit = 0;
    if (cmd.op === 'limit') limit = cmd.limit === 0 ? tablearg : cmd.limit; // limit 0 stands for tablearg
    if (cmd.op === 'limit' && limit <= 0) return false;
    return this.dyn.install(this.p, this.prep.slots[i]!, this.prep.numbers[i]!, pc.nameId, limit, pc.maskBits, this.nowMs, this.settings);
  }

  /** from/to table(T): the value, or -1. */
  tableAddr(t: LookupTable, src: boolean): number {
    const p = this.p;
    if (p.ipVersion === 4) return t.lookup4(src ? p.src4 : p.dst4);
    if (p.ipVersion === 6) return t.lookup6(src ? p.src6 : p.dst6);
    return -1;
  }

  /** lookup KEY T: the value, or -1. */
  lookupKey(pc: PCmd): number {
    const p = this.p, t = pc.table!;
    switch (pc.keyCode) {
      case 0: return this.tableAddr(t, false);
      case 1: return this.tableAddr(t, true);
      case 6: return p.ipVersion === 0 ? -1 : t.lookupNumber(p.tos >> 2);
      case 7: return t.lookupNumber(this.prep.numbers[this.ruleIndexForLookup]!);
      case 2: case 3:
        if (p.ipVersion === 0 || p.fragOffset !== 0 || p.l4 < 0 || (p.proto !== 6 && p.proto !== 17)) return -1;
        return t.lookupNumber(pc.keyCode === 2 ? p.dstPort : p.srcPort);
      default: return -1;
    }
  }
  /** The rule being evaluated, for `lookup rulenum` (set by the evaluators before a lookup). */
  ruleIndexForLookup = 0;

  /** recv/xmit/via: whether the interface matches; lastValue = the table value. */
  iface(pc: PCmd, which: number): boolean {
    const id = which === 0 ? this.recvIf : which === 1 ? this.xmitIf : (this.xmitIf >= 0 ? this.xmitIf : this.recvIf);
    if (id < 0) return false;
    const cache = pc.cache!;
    if (id < IFACE_CACHE) {
      const c = cache[id]!;
      if (c !== 0) { if (c < 0) return false; this.lastValue = c - 1; return true; }
    }
    const v = this.ifaceSlow(pc, id);
    if (id < IFACE_CACHE) cache[id] = v < 0 ? -1 : v + 1;
    if (v < 0) return false;
    this.lastValue = v;
    return true;
  }

  private ifaceSlow(pc: PCmd, id: number): number {
    const name = this.ifaces.name(id);
    if (name === null) return -1;
    if (pc.table !== null) return pc.table.lookupName(name);
    if (pc.pattern !== null) return pc.pattern.test(name) ? 0 : -1;
    const cmd = pc.cmd;
    if (cmd.op === 'iface' && cmd.addr !== null) return -1; // no interface addresses in userspace
    return 0; // `any`: an interface is there
  }

  /** MAC dst src with masks. */
  mac(pc: PCmd): boolean {
    const p = this.p, m = pc.mac!;
    if (p.len < 12) return false;
    for (let k = 0; k < 12; k++) if ((p.u8[p.off + k]! & m[12 + k]!) !== (m[k]! & m[12 + k]!)) return false;
    return true;
  }
}
