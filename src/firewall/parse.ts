/**
 * The ipfw rule language: argv words → Rule, as FreeBSD's 2014 ipfw compile_rule() reads them.
 *
 * The parser walks the words with ipfw's grammar: `[set S] [prob P] ACTION [log [logamount L]]
 * [tag|untag T] [PROTO from SRC [PORTS] to DST [PORTS]] [OPTIONS]`, where every piece that ipfw
 * stores as a microinstruction becomes one Cmd, in ipfw's order. Where ipfw accepts odd input
 * (prefix matches of `any`/`me`/`all`, strtoul without checks on `iplen 12abc`) we accept it
 * the same way, so a rules file that loads on FreeBSD loads here and lists the same. Numbers ipfw
 * would truncate silently (rule 70000 stored as 4464, port 65537 as 1, ipttl 300 as 44, a table
 * value of 2^32 as 0) are refused instead (outOfRange: EX_DATAERR, a NetmapError EINVAL), with a
 * sentence giving the field's range; where ipfw itself refuses, its own message is kept. Errors are IpfwError: ipfw's exact message and exit status; nothing is changed
 * by a failed parse (the parser only builds a new Rule).
 */
import { NetmapError } from '../errors.js';
import {
  type Cmd, type CmdBody, type Rule, type Action, type Range, type Ip4Masked, type Ip6Masked, type LookupKey,
  type LimitMask, type TableType, UNREACH_CODES, UNREACH6_CODES, TCP_FLAGS, TCP_OPTIONS, IP_OPTIONS, IP_TOS,
  EXT6_HEADERS, MAX_PORT_LIST, RESVD_SET,
} from './rule.js';
import {
  protoByName, serviceByName, protoName, hostV4, hostV6, inetAton, inetPton6, strtoul, wordsTo32,
} from './names.js';

/** sysexits.h values ipfw exits with. */
export const EX = { OK: 0, USAGE: 64, DATAERR: 65, NOHOST: 68, UNAVAILABLE: 69, SOFTWARE: 70, OSERR: 71 } as const;

/** A failed ipfw command: `text` is what ipfw prints after `ipfw: `, `status` its exit status. */
export class IpfwError extends NetmapError {
  readonly status: number;
  readonly text: string;
  constructor(status: number, text: string) {
    super('EINVAL', text);
    this.name = 'IpfwError';
    this.status = status;
    this.text = text;
  }
}

export function ipfwFail(status: number, text: string): never {
  throw new IpfwError(status, text);
}

/**
 * A number ipfw would have stored truncated to its field: refused, with the field's range
 * (`rule number 70000 is out of range (1..65534; 65535 is the default rule)`).
 */
export function outOfRange(what: string, text: string, range: string): never {
  return ipfwFail(EX.DATAERR, `${what} ${text} is out of range (${range})`);
}

/** A whole word of decimal digits (or base 0: 0x.., 0..) as a number in lo..hi; refused otherwise. */
export function wholeNumber(word: string, what: string, lo: number, hi: number, base = 10, range = `${lo}..${hi}`): number {
  const r = strtoul(word, base);
  if (r.used !== word.length || word.length === 0) ipfwFail(EX.DATAERR, `${what}: invalid number ${word}`);
  if (r.value < lo || r.value > hi) outOfRange(what, word, range);
  return r.value;
}

/** IP_FW_TARG: the 16-bit value ipfw stores for `tablearg`. */
export const TABLEARG = 65535;

/** DSCP names as ipfw2.c's f_ipdscp; printing takes the first name of a value (0 = be). */
export const DSCP_NAMES: ReadonlyArray<readonly [string, number]> = [
  ['af11', 10], ['af12', 12], ['af13', 14], ['af21', 18], ['af22', 20], ['af23', 22], ['af31', 26], ['af32', 28],
  ['af33', 30], ['af41', 34], ['af42', 36], ['af43', 38], ['be', 0], ['ef', 46], ['cs0', 0], ['cs1', 8],
  ['cs2', 16], ['cs3', 24], ['cs4', 32], ['cs5', 40], ['cs6', 48], ['cs7', 56],
];

/** Ethernet type names as ipfw2.c's ether_types (mac-type); printing with -N takes the first name. */
export const ETHER_TYPES: ReadonlyArray<readonly [string, number]> = [
  ['ip', 0x0800], ['ipv4', 0x0800], ['ipv6', 0x86dd], ['arp', 0x0806], ['rarp', 0x8035], ['vlan', 0x8100],
  ['loop', 0x9000], ['trail', 0x1000], ['at', 0x809b], ['atalk', 0x809b], ['aarp', 0x80f3],
  ['pppoe_disc', 0x8863], ['pppoe_sess', 0x8864], ['ipx_8022', 0x00e0], ['ipx_8023', 0x0000],
  ['ipx_ii', 0x8137], ['ipx_snap', 0x8137], ['ipx', 0x8137], ['ns', 0x0600],
];

/** Flag-name tables in ipfw's print order (print_flags walks them in this order). */
export const TCPFLAG_ORDER = ['syn', 'fin', 'ack', 'psh', 'rst', 'urg'] as const;
export const TCPOPT_ORDER = ['mss', 'window', 'sack', 'ts', 'cc'] as const;
export const IPOPT_ORDER = ['ssrr', 'lsrr', 'rr', 'ts'] as const;
export const IPTOS_ORDER = ['lowdelay', 'throughput', 'reliability', 'mincost', 'congestion'] as const;

const TCPOPT_ALIASES: Record<string, number> = { ...TCP_OPTIONS, maxseg: TCP_OPTIONS.mss!, timestamp: TCP_OPTIONS.ts! };
/** `ecntransport` (ECT0) shares mincost's bit in ipfw's table; it is read as mincost. */
const IPTOS_ALIASES: Record<string, number> = { ...IP_TOS, ecntransport: IP_TOS.mincost! };

/** What a parse needs from the outside. */
export interface ParseEnv {
  /** net.inet.ip.fw.verbose_limit: the logamount of `log` without one. */
  verboseLimit: number;
  /** Warnings ipfw prints on stderr and carries on (DEPRECATED sub-string matches...). */
  warnings: string[];
}

/** A table a rule refers to, with the type its use implies (auto-created when missing). */
export interface TableUse { name: string; type: TableType }

export interface ParsedRule {
  rule: Rule;
  /** The number written after `add`, 0 when none (the executor numbers the rule). */
  number: number;
  tables: TableUse[];
}

/** Words ipfw never reads as a port list (f_reserved_keywords). */
const RESERVED = new Set(['altq', '//', 'diverted', 'dst-port', 'src-port', 'established', 'keep-state', 'frag',
  'icmptypes', 'in', 'out', 'ip6', 'any', 'to', 'via', '{']);

/** Option words (rule_options), mapped to one canonical token. */
const OPTIONS: Record<string, string> = {
  tagged: 'tagged', uid: 'uid', gid: 'gid', jail: 'jail', in: 'in', limit: 'limit', 'keep-state': 'keep-state',
  'record-state': 'record-state', bridged: 'layer2', layer2: 'layer2', out: 'out', diverted: 'diverted',
  'diverted-loopback': 'diverted', 'diverted-output': 'diverted', xmit: 'xmit', recv: 'recv', via: 'via',
  fragment: 'frag', frag: 'frag', fib: 'fib', ipoptions: 'ipoptions', ipopts: 'ipoptions', iplen: 'iplen',
  ipid: 'ipid', ipprecedence: 'ipprecedence', dscp: 'dscp', iptos: 'iptos', ipttl: 'ipttl', ipversion: 'ipver',
  ipver: 'ipver', estab: 'established', established: 'established', setup: 'setup', sockarg: 'sockarg',
  tcpdatalen: 'tcpdatalen', tcpflags: 'tcpflags', tcpflgs: 'tcpflags', tcpoptions: 'tcpoptions',
  tcpopts: 'tcpoptions', tcpseq: 'tcpseq', tcpack: 'tcpack', tcpwin: 'tcpwin', icmptype: 'icmptypes',
  icmptypes: 'icmptypes', 'dst-ip': 'dst-ip', 'src-ip': 'src-ip', 'dst-port': 'dst-port', 'src-port': 'src-port',
  proto: 'proto', MAC: 'mac', mac: 'mac', 'mac-type': 'mac-type', verrevpath: 'verrevpath',
  versrcreach: 'versrcreach', antispoof: 'antispoof', ipsec: 'ipsec', icmp6type: 'icmp6types',
  icmp6types: 'icmp6types', ext6hdr: 'ext6hdr', 'flow-id': 'flow-id', ipv6: 'ip6', ip6: 'ip6', ipv4: 'ip4',
  ip4: 'ip4', 'dst-ipv6': 'dst-ip6', 'dst-ip6': 'dst-ip6', 'src-ipv6': 'src-ip6', 'src-ip6': 'src-ip6',
  lookup: 'lookup', flow: 'flow', '//': '//', not: 'not', '!': 'not', or: 'or', '|': 'or', '{': '{', '(': '{',
  '}': '}', ')': '}',
};

/** ipfw options that need kernel context we do not have; refused with a clear message. */
const UNSUPPORTED_OPTIONS = new Set(['uid', 'gid', 'jail', 'diverted', 'fib', 'sockarg', 'verrevpath', 'versrcreach',
  'antispoof', 'ipsec', 'flow']);

const LOOKUP_KEYS = new Set<LookupKey>(['dst-ip', 'src-ip', 'dst-port', 'src-port', 'uid', 'jail', 'dscp', 'rulenum']);

const LIMIT_MASKS: Record<string, LimitMask> = {
  all: { srcAddr: true, srcPort: true, dstAddr: true, dstPort: true },
  'src-addr': { srcAddr: true, srcPort: false, dstAddr: false, dstPort: false },
  'src-port': { srcAddr: false, srcPort: true, dstAddr: false, dstPort: false },
  'dst-addr': { srcAddr: false, srcPort: false, dstAddr: true, dstPort: false },
  'dst-port': { srcAddr: false, srcPort: false, dstAddr: false, dstPort: true },
};

const IPPROTO_IPV6 = 41;
const ETHERTYPE = -1;
const ICMP6_MAXTYPE = 201;

/** The most entries of an IPv4 address list the kernel accepts (O_IP_SRC_MASK length 31). */
const MAX_V4_LIST = 15;
/** The most entries of an IPv6 address list ipfw's fill_ip6 accepts (63 words). */
const MAX_V6_LIST = 7;

/** What ipfw prints when its kernel's rule check (check_ipfw_rule_body) says EINVAL. */
function kernelRefuses(): never {
  return ipfwFail(EX.UNAVAILABLE, 'getsockopt(IP_FW_XADD): Invalid argument');
}

/** A name table's value, -1 when absent (never a property inherited from Object). */
function ownNumber(table: Record<string, number>, name: string): number {
  return Object.prototype.hasOwnProperty.call(table, name) ? table[name]! : -1;
}

/** table_check_name: [a-zA-Z0-9_.-]{1,63}, not `all`. */
export function validTableName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,63}$/.test(name) && name !== 'all';
}

/** A state name (`:name` of keep-state/limit/check-state): the same alphabet as table names. */
function validStateName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,63}$/.test(name);
}

/** The 2014 ipfw string matcher used for keywords: exact, or a prefix with a DEPRECATED warning. */
function substr(word: string, keyword: string, env: ParseEnv): boolean {
  if (!keyword.startsWith(word)) return false;
  if (word.length !== keyword.length) env.warnings.push(`DEPRECATED: '${word}' matched '${keyword}' as a sub-string`);
  return true;
}

function prefixLen(mask: number): number {
  // contigmask: number of leading ones, or -1 when the mask has holes.
  let i = 0;
  while (i < 32 && ((mask >>> (31 - i)) & 1) === 1) i++;
  for (let n = i + 1; n < 32; n++) if (((mask >>> (31 - n)) & 1) === 1) return -1;
  return i;
}

function lenMask(len: number): number {
  return len <= 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

function mask6(len: number): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) out[k] = lenMask(Math.max(0, Math.min(32, len - 32 * k)));
  return out;
}

/**
 * One rule's parse: ipfw's compile_rule with its cursor over av, its pending F_NOT (a `not`
 * waiting for the next instruction), its `prev` (the instruction an `or` attaches to) and its
 * open-brace flag.
 */
class RuleParser {
  private i = 0;
  private readonly cmds: Cmd[] = [];
  private pendingNot = false;
  private prev: Cmd | null = null;
  private openPar = false;
  private proto = 0;
  private state: Cmd | null = null;
  private readonly tables: TableUse[] = [];

  constructor(private readonly av: string[], private readonly env: ParseEnv) {}

  private get cur(): string | undefined { return this.av[this.i]; }
  private need(msg: string): string {
    const w = this.av[this.i];
    if (w === undefined) ipfwFail(EX.USAGE, msg);
    return w;
  }

  private emit(body: CmdBody): Cmd {
    const cmd = { neg: this.pendingNot, or: false, ...body } as Cmd;
    this.pendingNot = false;
    this.cmds.push(cmd);
    this.prev = cmd;
    return cmd;
  }

  private useTable(name: string, type: TableType): void {
    if (!validTableName(name)) ipfwFail(EX.DATAERR, `Invalid table name: ${name}`);
    if (!this.tables.some((t) => t.name === name)) this.tables.push({ name, type });
  }

  parse(): ParsedRule {
    const av = this.av;
    let number = 0;
    let set = 0;
    let prob = 1;
    if (this.cur !== undefined && /^[0-9]/.test(this.cur)) {
      // 0: numbered by the firewall, as ipfw's; 65535 is the default rule (ipfw masked to 16 bits)
      number = wholeNumber(this.cur, 'rule number', 0, 65535, 10, '1..65534, 0 numbers the rule; 65535 is the default rule');
      this.i++;
    }
    if (this.cur !== undefined && av[this.i + 1] !== undefined && substr(this.cur, 'set', this.env)) {
      const r = strtoul(av[this.i + 1]!, 10);
      const s = r.value;
      if (s > RESVD_SET || r.used !== av[this.i + 1]!.length) ipfwFail(EX.DATAERR, `illegal set ${av[this.i + 1]}`);
      set = s;
      this.i += 2;
    }
    if (this.cur !== undefined && av[this.i + 1] !== undefined && substr(this.cur, 'prob', this.env)) {
      // the whole word (ipfw's strtod read 'prob 0.5x' as 0.5)
      const text = av[this.i + 1]!;
      const v = /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(text) ? Number(text) : 0;
      if (v <= 0 || v > 1) ipfwFail(EX.DATAERR, `illegal match prob. ${av[this.i + 1]}`);
      prob = v;
      this.i += 2;
    }
    const action = this.parseAction();
    let log = false, logAmount = 0;
    let tag: Rule['tag'] = null;
    for (;;) {
      const w = this.cur;
      if (w === 'log') {
        this.i++;
        if (log) ipfwFail(EX.DATAERR, 'log cannot be specified more than once');
        log = true;
        logAmount = this.env.verboseLimit;
        if (this.cur !== undefined && substr(this.cur, 'logamount', this.env)) {
          this.i++;
          const w = this.need('logamount requires argument');
          if (w.startsWith('-')) ipfwFail(EX.DATAERR, 'logamount must be positive');
          logAmount = wholeNumber(w, 'logamount', 0, 0xffffffff);
          this.i++;
        }
      } else if (w === 'tag' || w === 'untag') {
        this.i++;
        if (tag !== null) ipfwFail(EX.USAGE, 'tag and untag cannot be specified more than once');
        const v = this.uintArg(w);
        tag = { untag: w === 'untag', value: v === TABLEARG ? 0 : v, tablearg: v === TABLEARG };
        this.i++;
      } else if (w === 'altq') {
        ipfwFail(EX.USAGE, 'altq is not supported by netmap-ts');
      } else break;
    }
    let optionsOnly = false;
    let comment: string | null = null;
    if (action.kind === 'check-state') {
      // ipfw stops reading here: whatever follows check-state is ignored.
    } else {
      const r = this.parseBody();
      optionsOnly = r.optionsOnly;
      comment = r.comment;
    }
    // ipfw (compile_rule) puts the implicit probe-state first, so that a packet of a known
    // flow (a reply too) hits its state before any other match, and moves the state
    // instruction last.
    let cmds = this.cmds;
    if (this.state !== null) {
      const st = this.state;
      const name = (st as { name: string }).name;
      cmds = [{ neg: false, or: false, op: 'probe-state', name }, ...cmds.filter((c) => c !== st), st];
    }
    const rule: Rule = {
      number, slot: -1, set, prob, action, log, logAmount, tag, cmds, comment,
    };
    if (optionsOnly) rule.optionsOnly = true;
    return { rule, number, tables: this.tables };
  }

  /** GET_UINT_ARG: 1..65534 or tablearg; the word stays current. */
  private uintArg(name: string): number {
    const w = this.cur;
    if (w === undefined) ipfwFail(EX.USAGE, `${name}: missing argument`);
    if (substr(w, 'tablearg', this.env)) return TABLEARG;
    const r = strtoul(w, 10);
    if (!/^[0-9]/.test(w) || r.used !== w.length) ipfwFail(EX.DATAERR, `${name}: invalid argument: ${w}`);
    if (r.value < 1 || r.value > 65534) ipfwFail(EX.DATAERR, `${name}: argument is out of range (1..65534): ${w}`);
    return r.value;
  }

  private parseAction(): Action {
    const w = this.need('missing action');
    this.i++;
    const act = (kind: Action['kind'], arg = 0, tablearg = false): Action => ({ kind, arg, tablearg });
    switch (w) {
      case 'accept': case 'pass': case 'allow': case 'permit': return act('allow');
      case 'deny': case 'drop': return act('deny');
      case 'count': return act('count');
      case 'reject': return act('reject', UNREACH_CODES.host!);
      case 'reset': return act('reset');
      case 'reset6': return act('reset6');
      case 'return': return act('return');
      case '//': this.i--; return act('count');
      case 'check-state': {
        const a = act('check-state');
        a.stateName = 'default';
        const n = this.cur;
        if (n !== undefined && n.startsWith(':')) {
          if (!validStateName(n.slice(1))) ipfwFail(EX.DATAERR, `invalid state name ${n}`);
          a.stateName = n.slice(1);
          this.i++;
        }
        return a;
      }
      case 'unreach': {
        const code = this.need('missing reject code');
        this.i++;
        const r = strtoul(code);
        const v = r.used === code.length && r.used > 0 && r.value < 0x100 ? r.value : ownNumber(UNREACH_CODES, code);
        if (v < 0) ipfwFail(EX.DATAERR, `unknown ICMP unreachable code \`\`${code}''`);
        // ipfw stores `reject` as unreach host: one instruction, one listing.
        return v === UNREACH_CODES.host ? act('reject', v) : act('unreach', v);
      }
      case 'unreach6': {
        const code = this.need('missing unreach code');
        this.i++;
        const r = strtoul(code);
        const v = r.used === code.length && r.used > 0 && r.value < 0x100 ? r.value : ownNumber(UNREACH6_CODES, code);
        if (v < 0) ipfwFail(EX.DATAERR, `unknown ICMPv6 unreachable code \`\`${code}''`);
        return act('unreach6', v);
      }
      case 'pipe': case 'queue': case 'skipto': case 'call': {
        const a = this.cur;
        if (a === undefined) ipfwFail(EX.USAGE, `missing argument for ${w}`);
        this.i++;
        if (/^[0-9]/.test(a)) {
          const r = strtoul(a, 10);
          if (r.used !== a.length) ipfwFail(EX.DATAERR, `illegal argument for ${w}: ${a} is not a number`);
          if (r.value > 0xffff) outOfRange(`illegal argument for ${w}:`, a, `1..65534; ipfw keeps 16 bits`);
          if (r.value <= 0 || r.value >= TABLEARG) ipfwFail(EX.DATAERR, `illegal argument for ${w}`);
          return act(w, r.value);
        }
        if (substr(a, 'tablearg', this.env)) return act(w, 0, true);
        return ipfwFail(EX.DATAERR, `illegal argument for ${w}`);
      }
      case 'setdscp': {
        const a = this.need('missing DSCP code');
        this.i++;
        if (substr(a, 'tablearg', this.env)) return act('setdscp', 0, true);
        if (/^[A-Za-z]/.test(a)) {
          const e = DSCP_NAMES.find(([n]) => n === a);
          if (e === undefined) ipfwFail(EX.DATAERR, 'Unknown DSCP code');
          return act('setdscp', e[1]);
        }
        return act('setdscp', wholeNumber(a, 'setdscp: DSCP value', 0, 63));
      }
      case 'divert': case 'tee': case 'netgraph': case 'ngtee': case 'fwd': case 'forward': case 'nat':
      case 'reass': case 'setfib':
        return ipfwFail(EX.DATAERR, `action ${w} is not supported by netmap-ts`);
      default:
        return ipfwFail(EX.DATAERR, `invalid action ${w}`);
    }
  }

  // ---- the body: PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS] ----------------------------------

  /** OR_START: a `{`/`(` word, or one glued to the next word (`{tcp`). */
  private orStart(): void {
    const w = this.cur;
    if (w !== undefined && (w[0] === '(' || w[0] === '{')) {
      if (this.openPar) ipfwFail(EX.USAGE, 'nested "(" not allowed');
      this.prev = null;
      this.openPar = true;
      if (w.length === 1) this.i++;
      else this.av[this.i] = w.slice(1);
    }
  }

  /** OR_BLOCK + CLOSE_PAR: true when an `or` continues the block. */
  private orBlock(): boolean {
    const w = this.cur;
    if (w !== undefined && substr(w, 'or', this.env)) {
      if (this.prev === null || !this.openPar) ipfwFail(EX.DATAERR, 'invalid OR block');
      this.prev.or = true;
      this.i++;
      return true;
    }
    if (this.openPar) {
      if (w === ')' || w === '}') { this.prev = null; this.openPar = false; this.i++; }
      else ipfwFail(EX.USAGE, 'missing ")"');
    }
    return false;
  }

  private notBlock(): void {
    const w = this.cur;
    if (w !== undefined && substr(w, 'not', this.env)) {
      if (this.pendingNot) ipfwFail(EX.USAGE, 'double "not" not allowed');
      this.pendingNot = true;
      this.i++;
    }
  }

  private parseBody(): { optionsOnly: boolean; comment: string | null } {
    const firstCount = this.cmds.length;
    let head = true;
    // protocol
    do {
      this.orStart();
      this.notBlock();
      const w = this.need('missing protocol');
      const body = this.protoCompat(w);
      if (body !== null) {
        this.i++;
        if (body !== 'none') this.emit(body);
      } else if (this.cmds.length !== firstCount) {
        ipfwFail(EX.DATAERR, `invalid protocol \`\`${w}''`);
      } else { head = false; break; }
    } while (this.orBlock());
    if (head) {
      if (this.cur === undefined || !substr(this.cur, 'from', this.env)) ipfwFail(EX.USAGE, 'missing ``from\'\'');
      this.i++;
      do {
        this.orStart();
        this.notBlock();
        const w = this.need('missing source address');
        this.addAddress('src', w);
        this.i++;
      } while (this.orBlock());
      this.notBlock();
      if (this.cur !== undefined && (substr(this.cur, 'any', this.env) || this.addPorts('src', this.cur, this.proto))) this.i++;
      if (this.cur === undefined || !substr(this.cur, 'to', this.env)) ipfwFail(EX.USAGE, 'missing ``to\'\'');
      this.i++;
      do {
        this.orStart();
        this.notBlock();
        const w = this.need('missing dst address');
        this.addAddress('dst', w);
        this.i++;
      } while (this.orBlock());
      this.notBlock();
      if (this.cur !== undefined && (substr(this.cur, 'any', this.env) || this.addPorts('dst', this.cur, this.proto))) this.i++;
    }
    const optionsOnly = this.cur !== undefined && this.cmds.length === firstCount;
    this.prev = null;
    const comment = this.parseOptions();
    return { optionsOnly, comment };
  }

  /** add_proto_compat: null = not a protocol, 'none' = ip/all (no instruction). */
  private protoCompat(w: string): CmdBody | 'none' | null {
    if (w === 'ip' || substr(w, 'all', this.env)) { this.proto = 0; return 'none'; }
    if (w === 'ipv4' || w === 'ip4') { this.proto = 0; return { op: 'ip4' }; }
    if (w === 'ipv6' || w === 'ip6') { this.proto = IPPROTO_IPV6; return { op: 'ip6' }; }
    return this.proto0(w);
  }

  /** add_proto (the `proto` option): ip4/ip6 by those names only; ipv4/ipv6 are /etc/protocols names here. */
  private protoOption(w: string): CmdBody | 'none' | null {
    if (w === 'ip' || substr(w, 'all', this.env)) { this.proto = 0; return 'none'; }
    if (w === 'ip4') { this.proto = 0; return { op: 'ip4' }; }
    if (w === 'ip6') { this.proto = IPPROTO_IPV6; return { op: 'ip6' }; }
    return this.proto0(w);
  }

  private proto0(w: string): CmdBody | null {
    let p = Number.parseInt(w, 10);
    if (!/^-?[0-9]+$/.test(w) || p <= 0) {
      const byName = protoByName(w);
      if (byName === null) return null;
      p = byName;
    }
    if (p > 0xff) outOfRange('protocol number', w, '1..255');
    this.proto = p;
    return { op: 'proto', proto: p };
  }

  /** add_src/add_dst: IPv6 when the protocol is ip6, for me6, or when the first address is IPv6. */
  private addAddress(dir: 'src' | 'dst', w: string): void {
    const host = w.split(/[/,]/)[0]!;
    if (this.proto === IPPROTO_IPV6 || w === 'me6' || inetPton6(host) !== null) {
      this.fillIp6(dir, w);
      return;
    }
    this.fillIp(dir, w);
  }

  private fillIp(dir: 'src' | 'dst', w: string): void {
    // `any` compiles to no instruction; a pending `not` stays for the next one, as ipfw's F_NOT does.
    if (substr(w, 'any', this.env)) return;
    if (substr(w, 'me', this.env)) { this.emit({ op: 'me', dir, v6: false }); return; }
    if (w.startsWith('table(')) { this.fillTable(dir, w); return; }
    const list: Ip4Masked[] = [];
    let rest: string | null = w;
    while (rest !== null) {
      const sep: number = rest.search(/[/:,{]/);
      const addrText = sep < 0 ? rest : rest.slice(0, sep);
      const md = sep < 0 ? '' : rest[sep]!;
      let after: string = sep < 0 ? '' : rest.slice(sep + 1);
      const addr = inetAton(addrText) ?? hostV4(addrText);
      if (addr === null) ipfwFail(EX.NOHOST, `hostname \`\`${addrText}'' unknown`);
      let mask = 0xffffffff;
      let next: string | null = null;
      if (md === ':' || md === '/') {
        const t = after.search(/[,{]/);
        const maskText = t < 0 ? after : after.slice(0, t);
        if (md === ':') {
          const m = inetAton(maskText);
          if (m === null) ipfwFail(EX.DATAERR, `bad netmask \`\`${maskText}''`);
          mask = m;
        } else {
          // digits only: '/abc' was read as /0, a match of any address
          const len = /^[0-9]+$/.test(maskText) ? Number(maskText) : -1;
          if (len > 32 || len < 0) ipfwFail(EX.DATAERR, `bad width \`\`${maskText}''`);
          mask = lenMask(len < 0 ? 0 : len);
        }
        after = t < 0 ? '' : after.slice(t);
      } else if (md === '{') {
        mask = lenMask(24);
        after = '{' + after;
      } else if (md === ',') {
        after = ',' + after;
      } else after = '';
      const base = (addr & mask) >>> 0;
      if (after.startsWith('{')) {
        if (list.length > 0) ipfwFail(EX.DATAERR, 'address set cannot be in a list');
        this.fillSet(dir, base, mask, after.slice(1));
        return;
      }
      next = after.startsWith(',') ? after.slice(1) : null;
      if (mask === 0) {
        // `any` in a list turns the whole list into no instruction; `not any` alone never matches.
        if (this.pendingNot && next === null && list.length === 0) ipfwFail(EX.DATAERR, 'not any never matches');
        return;
      }
      list.push({ addr: base, mask });
      rest = next;
    }
    // ipfw itself takes 31 address/mask pairs; its kernel refuses more than 15.
    if (list.length > 31) ipfwFail(EX.DATAERR, 'address list too long');
    if (list.length > MAX_V4_LIST) kernelRefuses();
    this.emit({ op: 'ip-addr', dir, list });
  }

  private fillSet(dir: 'src' | 'dst', base: number, mask: number, text: string): void {
    const bits = prefixLen(mask);
    if (bits < 24 || bits > 31) ipfwFail(EX.DATAERR, `invalid set with mask ${bits}`);
    const size = 2 ** (32 - bits);
    const low = base & 0xff;
    const high = low + size - 1;
    const members = new Set<number>();
    let s = text;
    let prevInRange = -1;
    while (/^[0-9]/.test(s)) {
      const r = strtoul(s);
      let a = r.value;
      const after = s.slice(r.used);
      if (a < low || a > high) ipfwFail(EX.DATAERR, `addr ${a} out of range [${low}-${high}]`);
      a -= low;
      let from = a;
      if (prevInRange !== -1) {
        if (prevInRange > a) ipfwFail(EX.DATAERR, `invalid range ${prevInRange + low}-${a + low}`);
        if (after[0] === '-') ipfwFail(EX.DATAERR, 'double \'-\' in range');
        from = prevInRange;
      }
      for (let k = from; k <= a; k++) members.add(k + low);
      prevInRange = -1;
      if (after[0] === '-') prevInRange = a;
      else if (after[0] === '}') break;
      s = after.slice(1);
    }
    this.emit({ op: 'ip-set', dir, base, bits, members: [...members].sort((x, y) => x - y) });
  }

  private fillTable(dir: 'src' | 'dst', w: string): void {
    const close = w.indexOf(')', 6);
    if (close < 0) ipfwFail(EX.DATAERR, `forgotten parenthesis: '${w}'`);
    const inner = w.slice(6, close);
    const comma = inner.indexOf(',');
    const name = comma < 0 ? inner : inner.slice(0, comma);
    this.useTable(name, 'addr');
    const valueText = inner.slice(comma + 1);
    const value = comma < 0 ? null : strtoul(valueText).value;
    if (value !== null && value > 0xffffffff) outOfRange('table value', valueText, '0..4294967295');
    this.emit({ op: 'table', dir, table: name, value });
  }

  private fillIp6(dir: 'src' | 'dst', w: string): void {
    if (w === 'any') return;
    if (w === 'me' || w === 'me6') { this.emit({ op: 'me', dir, v6: true }); return; }
    if (w.startsWith('table(')) { this.fillTable(dir, w.includes(')') ? w : w + ')'); return; }
    const list: Ip6Masked[] = [];
    let rest: string | null = w;
    while (rest !== null) {
      const sep: number = rest.search(/[/,]/);
      const addrText = sep < 0 ? rest : rest.slice(0, sep);
      const md = sep < 0 ? '' : rest[sep]!;
      let p: string | null = sep < 0 ? null : rest.slice(sep + 1);
      const words = inetPton6(addrText) ?? hostV6(addrText);
      if (words === null) ipfwFail(EX.DATAERR, `bad address "${addrText}"`);
      let len = 128;
      if (md === '/') {
        const c: number = p!.indexOf(',');
        const lenText = c < 0 ? p! : p!.slice(0, c);
        len = /^[0-9]+$/.test(lenText) ? Number(lenText) : -1;
        if (len > 128 || len < 0) ipfwFail(EX.DATAERR, `bad width "${lenText}''`);
        p = c < 0 ? null : p!.slice(c + 1);
      }
      rest = p;
      if (len === 0) {
        if (this.pendingNot && rest === null && list.length === 0) ipfwFail(EX.DATAERR, 'not any never matches');
        continue;
      }
      const mask = mask6(len);
      const a = wordsTo32(words);
      list.push({ addr: [0, 1, 2, 3].map((k) => (a[k]! & mask[k]!) >>> 0) as Ip6Masked['addr'], mask });
    }
    if (list.length === 0) return;
    if (list.length > MAX_V6_LIST) ipfwFail(EX.DATAERR, 'address list too long');
    this.emit({ op: 'ip6-addr', dir, list });
  }

  /** add_ports: false (nothing consumed) for reserved words and non-port text. */
  private addPorts(dir: 'src' | 'dst', w: string, proto: number): boolean {
    if (RESERVED.has(w)) return false;
    const ranges = this.portList(w, proto);
    if (ranges === null) return false;
    this.emit({ op: 'ports', dir, ranges });
    return true;
  }

  /** fill_newports: `a[-b][,...]` with numbers (base 0), service names or ethernet type names. */
  private portList(text: string, proto: number, what = 'port', max = 0xffff): Range[] | null {
    const ranges: Range[] = [];
    let s = text;
    while (s.length > 0) {
      const a = this.strtoport(s, proto);
      if (a === null) return null;
      s = s.slice(a.used);
      let hi = a.value;
      if (s[0] === '-') {
        const b = this.strtoport(s.slice(1), proto);
        if (b === null) return null;
        s = s.slice(1 + b.used);
        if (s.length > 0 && s[0] !== ',') return null;
        hi = b.value;
      } else if (s.length > 0 && s[0] !== ',') {
        this.env.warnings.push(`port list: invalid separator <${s[0]}> in <${text}>`);
        return null;
      }
      ranges.push([a.value, hi]);
      s = s.slice(1);
    }
    if (ranges.length === 0) return null;
    // a list that parsed, with a number past its field: refused (ipfw kept 16 bits: 65537 was 1)
    for (const [lo, hi] of ranges) {
      const bad = lo > max ? lo : hi > max ? hi : -1;
      if (bad >= 0) outOfRange(proto === ETHERTYPE ? 'mac-type' : what, String(bad), `0..${max}`);
    }
    // ipfw's instruction holds 62 ranges; its kernel refuses more than 30 (MAX_PORT_LIST).
    if (ranges.length > 62) ipfwFail(EX.DATAERR, 'too many ports/ranges');
    if (ranges.length > MAX_PORT_LIST) kernelRefuses();
    return ranges;
  }

  private strtoport(s: string, proto: number): { value: number; used: number } | null {
    if (s.length === 0) return null;
    if (/^[0-9]/.test(s)) return strtoul(s);
    let end = 0;
    let name = '';
    while (end < s.length && (/[A-Za-z0-9]/.test(s[end]!) || s[end] === '\\')) {
      if (s[end] === '\\' && end + 1 < s.length) { end++; }
      name += s[end]!;
      end++;
    }
    if (name === '') return null;
    if (proto === ETHERTYPE) {
      const e = ETHER_TYPES.find(([n]) => n === name);
      return e === undefined ? null : { value: e[1], used: end };
    }
    const pname = proto !== 0 ? protoName(proto) : null;
    const port = serviceByName(name, pname);
    return port === null ? null : { value: port, used: end };
  }

  /** The single-value-or-list options (iplen, ipttl, ipid, tcpwin, tcpdatalen): strtoul without checks, or a list. */
  private valueList(op: 'iplen' | 'ipttl' | 'ipid' | 'tcpwin' | 'tcpdatalen', w: string, err: string): void {
    const max = op === 'ipttl' ? 0xff : 0xffff;
    if (/[-,]/.test(w)) {
      if (RESERVED.has(w)) ipfwFail(EX.DATAERR, `${err} ${w}`);
      const ranges = this.portList(w, 0, op, max);
      if (ranges === null) ipfwFail(EX.DATAERR, `${err} ${w}`);
      this.emit({ op, ranges });
    } else {
      // (ipfw reads '12abc' as 12, as here; it also kept 16 bits of the value, which we refuse)
      const v = strtoul(w).value;
      if (v > max) outOfRange(op, w, `0..${max}`);
      this.emit({ op, ranges: [[v, v]] });
    }
  }

  private flags(table: Record<string, number>, w: string, what: 'tcpflags' | 'tcpoptions' | 'ipoptions' | 'iptos'): void {
    let set = 0, clear = 0;
    for (const part of w.split(',')) {
      if (part === '' ) break;
      const neg = part[0] === '!';
      const name = neg ? part.slice(1) : part;
      const v = Object.prototype.hasOwnProperty.call(table, name) ? table[name]! : 0;
      if (v <= 0) ipfwFail(EX.DATAERR, `invalid flag ${name}`);
      if (neg) clear |= v; else set |= v;
    }
    this.emit({ op: what, set, clear });
  }

  private parseOptions(): string | null {
    let comment: string | null = null;
    while (this.cur !== undefined) {
      let s = this.cur;
      if (s[0] === '!') {
        if (this.pendingNot) ipfwFail(EX.USAGE, 'double "not" not allowed');
        this.pendingNot = true;
        s = s.slice(1);
      }
      const tok = Object.prototype.hasOwnProperty.call(OPTIONS, s) ? OPTIONS[s]! : null;
      this.i++;
      if (tok !== null && UNSUPPORTED_OPTIONS.has(tok)) ipfwFail(EX.USAGE, `option ${s} is not supported by netmap-ts`);
      switch (tok) {
        case 'not':
          if (this.pendingNot && s === 'not') ipfwFail(EX.USAGE, 'double "not" not allowed');
          this.pendingNot = true;
          break;
        case 'or':
          if (!this.openPar || this.prev === null) ipfwFail(EX.USAGE, 'invalid "or" block');
          this.prev.or = true;
          break;
        case '{':
          if (this.openPar) ipfwFail(EX.USAGE, '+nested "(" not allowed');
          this.openPar = true;
          break;
        case '}':
          if (!this.openPar) ipfwFail(EX.USAGE, '+missing ")"');
          this.openPar = false;
          this.prev = null;
          break;
        case 'in': this.emit({ op: 'in' }); break;
        case 'out': this.pendingNot = !this.pendingNot; this.emit({ op: 'in' }); break;
        case 'frag': this.emit({ op: 'frag' }); break;
        case 'layer2': this.emit({ op: 'layer2' }); break;
        case 'xmit': case 'recv': case 'via': {
          const a = this.need('recv, xmit, via require interface name or address');
          this.i++;
          this.fillIface(tok, a);
          break;
        }
        case 'icmptypes': {
          const a = this.need('icmptypes requires list of types');
          this.i++;
          this.emit({ op: 'icmptypes', types: this.typeList(a, 31, 'invalid ICMP type', 'ICMP type out of range') });
          break;
        }
        case 'icmp6types': {
          const a = this.need('icmptypes requires list of types');
          this.i++;
          this.emit({ op: 'icmp6types', types: this.typeList(a, ICMP6_MAXTYPE, 'invalid ICMP6 type', 'ICMP6 type out of range') });
          break;
        }
        case 'ipttl': this.valueList('ipttl', this.need('ipttl requires TTL'), 'invalid ipttl'); this.i++; break;
        case 'ipid': this.valueList('ipid', this.need('ipid requires id'), 'invalid ipid'); this.i++; break;
        case 'iplen': this.valueList('iplen', this.need('iplen requires length'), 'invalid ip len'); this.i++; break;
        case 'tcpdatalen': this.valueList('tcpdatalen', this.need('tcpdatalen requires length'), 'invalid tcpdata len'); this.i++; break;
        case 'tcpwin': this.valueList('tcpwin', this.need('tcpwin requires length'), 'invalid tcpwin len'); this.i++; break;
        case 'ipver': {
          const a = this.need('ipver requires version');
          this.i++;
          const v = strtoul(a).value;
          if (v > 15) outOfRange('ipver', a, '0..15');
          this.emit({ op: 'ipversion', version: v });
          break;
        }
        case 'ipprecedence': {
          const a = this.need('ipprecedence requires value');
          this.i++;
          const v = strtoul(a).value;
          if (v > 7) outOfRange('ipprecedence', a, '0..7');
          this.emit({ op: 'ipprecedence', value: v });
          break;
        }
        case 'dscp': {
          const a = this.need('missing DSCP code');
          this.i++;
          const codes = new Set<number>();
          for (const part of a.split(',')) {
            if (/^[A-Za-z]/.test(part)) {
              const e = DSCP_NAMES.find(([n]) => n === part);
              if (e === undefined) ipfwFail(EX.DATAERR, 'Unknown DSCP code');
              codes.add(e[1]);
            } else {
              const r = strtoul(part, 10);
              const v = r.value;
              if (v > 63 || r.used !== part.length) ipfwFail(EX.DATAERR, 'Invalid DSCP value');
              codes.add(v);
            }
          }
          this.emit({ op: 'dscp', codes: [...codes].sort((x, y) => x - y) });
          break;
        }
        case 'ipoptions': this.flags(IP_OPTIONS, this.need('missing argument for ipoptions'), 'ipoptions'); this.i++; break;
        case 'iptos': this.flags(IPTOS_ALIASES, this.need('missing argument for iptos'), 'iptos'); this.i++; break;
        case 'tcpflags': this.flags(TCP_FLAGS, this.need('missing argument for tcpflags'), 'tcpflags'); this.i++; break;
        case 'tcpoptions': this.flags(TCPOPT_ALIASES, this.need('missing argument for tcpoptions'), 'tcpoptions'); this.i++; break;
        case 'established': this.emit({ op: 'established' }); break;
        case 'setup': this.emit({ op: 'tcpflags', set: TCP_FLAGS.syn!, clear: TCP_FLAGS.ack! }); break;
        case 'tcpseq': case 'tcpack': {
          const a = this.need('tcpseq/tcpack requires argument');
          this.i++;
          // strtoul takes a sign and wraps, so the negative numbers ipfw lists read back.
          const neg = a.startsWith('-');
          const raw = strtoul(neg ? a.slice(1) : a).value;
          // 32 bits: -2147483648..4294967295 (what ipfw lists reads back); ipfw wrapped the rest
          if (raw > (neg ? 2 ** 31 : 2 ** 32 - 1)) outOfRange(tok, a, '-2147483648..4294967295');
          const m = raw % 2 ** 32;
          const v = neg ? (2 ** 32 - m) % 2 ** 32 : m;
          this.emit(tok === 'tcpseq' ? { op: 'tcpseq', value: v } : { op: 'tcpack', value: v });
          break;
        }
        case 'keep-state': case 'record-state': {
          if (this.openPar) ipfwFail(EX.USAGE, `${tok} cannot be part of an or block`);
          if (this.state !== null) ipfwFail(EX.USAGE, 'only one of keep-state and limit is allowed');
          const name = this.stateName();
          this.state = this.emit({ op: 'keep-state', name, record: tok === 'record-state' });
          break;
        }
        case 'limit': {
          if (this.openPar) ipfwFail(EX.USAGE, 'limit cannot be part of an or block');
          if (this.state !== null) ipfwFail(EX.USAGE, 'only one of keep-state and limit is allowed');
          const mask: LimitMask = { srcAddr: false, srcPort: false, dstAddr: false, dstPort: false };
          let any = false;
          while (this.cur !== undefined && Object.prototype.hasOwnProperty.call(LIMIT_MASKS, this.cur)) {
            const m = LIMIT_MASKS[this.cur]!;
            mask.srcAddr ||= m.srcAddr; mask.srcPort ||= m.srcPort; mask.dstAddr ||= m.dstAddr; mask.dstPort ||= m.dstPort;
            any = true;
            this.i++;
          }
          if (!any) ipfwFail(EX.USAGE, 'limit: missing limit mask');
          const n = this.uintArg('limit');
          this.i++;
          const name = this.stateName();
          this.state = this.emit({ op: 'limit', name, mask, limit: n, record: false });
          break;
        }
        case 'proto': {
          const a = this.need('missing protocol');
          const body = this.protoOption(a);
          if (body === null) ipfwFail(EX.DATAERR, `invalid protocol \`\`${a}''`);
          this.i++;
          if (body !== 'none') this.emit(body);
          break;
        }
        case 'src-ip': case 'dst-ip': {
          const a = this.need(tok === 'src-ip' ? 'missing source IP' : 'missing destination IP');
          this.fillIp(tok === 'src-ip' ? 'src' : 'dst', a);
          this.i++;
          break;
        }
        case 'src-ip6': case 'dst-ip6': {
          const a = this.need(tok === 'src-ip6' ? 'missing source IP6' : 'missing destination IP6');
          this.fillIp6(tok === 'src-ip6' ? 'src' : 'dst', a);
          this.i++;
          break;
        }
        case 'src-port': case 'dst-port': {
          const src = tok === 'src-port';
          const a = this.need(src ? 'missing source port' : 'missing destination port');
          if (substr(a, 'any', this.env) || this.addPorts(src ? 'src' : 'dst', a, this.proto)) this.i++;
          else ipfwFail(EX.DATAERR, `invalid ${src ? 'source' : 'destination'} port ${a}`);
          break;
        }
        case 'mac': {
          const d = this.cur, sr = this.av[this.i + 1];
          if (d === undefined || sr === undefined) ipfwFail(EX.DATAERR, 'MAC dst src');
          const dm = macAddrMask(d), sm = macAddrMask(sr);
          this.emit({ op: 'mac', dst: dm.addr, dstMask: dm.mask, src: sm.addr, srcMask: sm.mask });
          this.i += 2;
          break;
        }
        case 'mac-type': {
          const a = this.need('missing mac type');
          const ranges = a === 'any' ? null : this.portList(a, ETHERTYPE);
          if (ranges === null) ipfwFail(EX.DATAERR, `invalid mac type ${a}`);
          this.emit({ op: 'mac-type', ranges });
          this.i++;
          break;
        }
        case 'ip6': this.emit({ op: 'ip6' }); break;
        case 'ip4': this.emit({ op: 'ip4' }); break;
        case 'ext6hdr': {
          const a = this.cur ?? '';
          let set = 0;
          for (const part of a.split(',')) {
            const v = Object.prototype.hasOwnProperty.call(EXT6_HEADERS, part) ? EXT6_HEADERS[part]! : 0;
            if (v === 0) ipfwFail(EX.DATAERR, 'invalid option for ipv6 exten header');
            set |= v;
          }
          this.emit({ op: 'ext6hdr', set, clear: 0 });
          this.i++;
          break;
        }
        case 'flow-id': {
          if (this.proto !== IPPROTO_IPV6) ipfwFail(EX.USAGE, 'flow-id filter is active only for ipv6 protocol');
          const a = this.cur ?? '';
          const labels: number[] = [];
          for (const part of a.split(',')) {
            const r = strtoul(part);
            if (r.used !== part.length) ipfwFail(EX.DATAERR, `invalid ipv6 flow number ${part.slice(r.used)}`);
            if (r.value > 0xfffff) ipfwFail(EX.DATAERR, `flow number out of range ${part}`);
            labels.push(r.value);
          }
          this.emit({ op: 'flow-id', labels });
          this.i++;
          break;
        }
        case '//': {
          const words = this.av.slice(this.i);
          this.i = this.av.length;
          let l = 0;
          for (const x of words) l += x.length + 1;
          if (l > 84) ipfwFail(EX.DATAERR, 'comment too long (max 80 chars)');
          if (l > 0) comment = words.join(' ');
          break;
        }
        case 'tagged': {
          const a = this.cur;
          if (a !== undefined && /[-,]/.test(a)) {
            const ranges = RESERVED.has(a) ? null : this.portList(a, 0, 'tag', 65534);
            if (ranges === null) ipfwFail(EX.DATAERR, `tagged: invalid tag list: ${a}`);
            this.emit({ op: 'tagged', ranges });
          } else {
            const v = this.uintArg('tagged');
            this.emit({ op: 'tagged', ranges: [[v, v]] });
          }
          this.i++;
          break;
        }
        case 'lookup': {
          const key = this.cur, table = this.av[this.i + 1];
          if (key === undefined || table === undefined) ipfwFail(EX.USAGE, 'format: lookup argument tablenum');
          if (!LOOKUP_KEYS.has(key as LookupKey)) ipfwFail(EX.USAGE, `format: cannot lookup on ${key}`);
          if (key === 'uid' || key === 'jail') ipfwFail(EX.USAGE, `lookup ${key} is not supported by netmap-ts`);
          this.useTable(table, key === 'src-ip' || key === 'dst-ip' ? 'addr' : 'number');
          this.emit({ op: 'lookup', key: key as LookupKey, table });
          this.i += 2;
          break;
        }
        default:
          ipfwFail(EX.USAGE, `unrecognised option [-1] ${s}`);
      }
    }
    if (this.openPar) ipfwFail(EX.USAGE, 'missing ")"');
    return comment;
  }

  /** `:name` after keep-state/record-state/limit (newer ipfw); `default` without. */
  private stateName(): string {
    const w = this.cur;
    if (w === undefined || !w.startsWith(':')) return 'default';
    if (!validStateName(w.slice(1))) ipfwFail(EX.DATAERR, `invalid state name ${w}`);
    this.i++;
    return w.slice(1);
  }

  private typeList(a: string, max: number, bad: string, range: string): number[] {
    const types = new Set<number>();
    let s = a;
    while (s.length > 0) {
      if (s[0] === ',') s = s.slice(1);
      const r = strtoul(s);
      s = s.slice(r.used);
      if (s.length > 0 && s[0] !== ',') ipfwFail(EX.DATAERR, bad);
      if (r.value > 0xff) outOfRange(range.startsWith('ICMP6') ? 'ICMP6 type' : 'ICMP type', String(r.value), `0..${max}`); // ipfw kept 8 bits
      if (r.value > max) ipfwFail(EX.DATAERR, range);
      types.add(r.value);
    }
    return [...types].sort((x, y) => x - y);
  }

  private fillIface(which: 'recv' | 'xmit' | 'via', a: string): void {
    if (a === 'any') return;
    if (a.startsWith('table(')) {
      const close = a.indexOf(')', 6);
      if (close < 0) ipfwFail(EX.DATAERR, `forgotten parenthesis: '${a}'`);
      const name = a.slice(6, close).split(',')[0]!;
      this.useTable(name, 'iface');
      this.emit({ op: 'iface', which, name: null, table: name, addr: null });
      return;
    }
    if (!/^[0-9]/.test(a)) {
      // IFNAMSIZ: ipfw keeps 15 characters of the name.
      this.emit({ op: 'iface', which, name: a.slice(0, 15), table: null, addr: null });
      return;
    }
    const addr = inetAton(a);
    if (addr === null) ipfwFail(EX.DATAERR, `bad ip address \`\`${a}''`);
    this.emit({ op: 'iface', which, name: null, table: null, addr });
  }
}

/** get_mac_addr_mask: `any`, `xx:..:xx`, `/bits` or `&mask`; the address is masked. */
function macAddrMask(p: string): { addr: string; mask: string } {
  const hex = (b: number[]): string => b.map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (p === 'any') return { addr: '00:00:00:00:00:00', mask: '00:00:00:00:00:00' };
  const sep = p.search(/[&/]/);
  const a = sep < 0 ? p : p.slice(0, sep);
  const addr = etherAton(a);
  if (addr === null) ipfwFail(EX.DATAERR, 'Incorrect MAC address');
  let mask = [255, 255, 255, 255, 255, 255];
  if (sep >= 0) {
    const m = p.slice(sep + 1);
    if (p[sep] === '/') {
      if (!/^-?[0-9]+$/.test(m)) ipfwFail(EX.DATAERR, 'Incorrect mask length');
      let ml = Number.parseInt(m, 10);
      if (ml > 48 || ml < 0) ipfwFail(EX.DATAERR, 'Incorrect mask length');
      mask = [0, 0, 0, 0, 0, 0];
      for (let k = 0; ml > 0 && k < 6; ml -= 8, k++) mask[k] = ml >= 8 ? 0xff : (0xff << (8 - ml)) & 0xff;
    } else {
      const mm = etherAton(m);
      if (mm === null) ipfwFail(EX.DATAERR, 'Incorrect mask');
      mask = mm;
    }
  }
  return { addr: hex(addr.map((x, k) => x & mask[k]!)), mask: hex(mask) };
}

function etherAton(s: string): number[] | null {
  if (!/^[0-9a-fA-F:]+$/.test(s)) return null;
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((x) => x.length < 1 || x.length > 2)) return null;
  return parts.map((x) => parseInt(x, 16));
}

/** Parses the words after `add` into a Rule (slot -1, number 0 when not given). */
export function parseRule(av: readonly string[], env: ParseEnv): ParsedRule {
  return new RuleParser([...av], env).parse();
}

export { prefixLen };
