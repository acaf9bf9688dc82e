/**
 * Rule → text, as FreeBSD's 2014 ipfw prints it (show_static_rule, show_dyn_state).
 *
 * The body printer is ipfw's state machine: it walks the instructions in stored order and keeps
 * the flags HAVE_PROTO / HAVE_SRCIP / HAVE_DSTIP / HAVE_IP / HAVE_OPTIONS, filling in
 * ` ip`, ` from any`, ` to any` when an instruction needs them printed first. Once the source
 * and destination addresses are out, later address and port instructions print as options
 * (`to any dst-port 80`). The result is ipfw's canonical form, independent of how the rule was
 * written (aliases, `{ a or b }` spacing, masks applied to addresses).
 */
import { type Cmd, type Rule, type Range, TCP_FLAGS, TCP_OPTIONS, IP_OPTIONS, IP_TOS, EXT6_HEADERS, UNREACH_CODES, UNREACH6_CODES } from './rule.js';
import { DSCP_NAMES, ETHER_TYPES, TCPFLAG_ORDER, TCPOPT_ORDER, IPOPT_ORDER, IPTOS_ORDER, TABLEARG, prefixLen } from './parse.js';
import { protoName, serviceName, hostNameV4, hostNameV6, inetNtoa, inetNtop6, words32To16 } from './names.js';

/** Listing options: ipfw's -c -N -S -t -T and the counter columns of `show`. */
export interface PrintOptions {
  /** -c: omit ` ip from any to any` of option-only rules. */
  compact?: boolean;
  /** -N: names for addresses (/etc/hosts), ports (/etc/services), ethernet types. */
  resolve?: boolean;
  /** -S: print `set N ` and list disabled rules with `# DISABLED `. */
  showSets?: boolean;
  /** 1 = -t (ctime), 2 = -T (unix seconds). */
  time?: 0 | 1 | 2;
}

/** Counter columns of one line: widths 0 = no counter columns (list). */
export interface CounterColumns { packetWidth: number; byteWidth: number; packets: number; bytes: number; lastMatch: number }

const HAVE_PROTO = 0x0001, HAVE_SRCIP = 0x0002, HAVE_DSTIP = 0x0004, HAVE_PROTO4 = 0x0008, HAVE_PROTO6 = 0x0010,
  HAVE_IP = 0x0100, HAVE_OPTIONS = 0x8000;

/** Decimal width of a counter (pr_u64 with width 0). */
export function counterWidth(n: number): number {
  return String(Math.max(0, Math.trunc(n))).length;
}

/** ctime(3) without the newline, in local time: `Wed Dec  2 06:37:31 2026`. */
export function ctime(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/** bprint_uint_arg: the number, or `tablearg`. */
function uintArg(prefix: string, value: number, tablearg: boolean): string {
  return prefix + (tablearg || value === TABLEARG ? 'tablearg' : String(value >>> 0));
}

function actionText(rule: Rule): string {
  const a = rule.action;
  switch (a.kind) {
    case 'allow': return 'allow';
    case 'deny': return 'deny';
    case 'count': return 'count';
    case 'return': return 'return';
    case 'reset': return 'reset';
    case 'reset6': return 'reset6';
    case 'check-state': return a.stateName !== undefined && a.stateName !== 'default' ? `check-state :${a.stateName}` : 'check-state';
    case 'reject': case 'unreach': {
      if (a.arg === UNREACH_CODES.host) return 'reject';
      const name = Object.keys(UNREACH_CODES).find((k) => UNREACH_CODES[k] === a.arg);
      return `unreach ${name ?? String(a.arg)}`;
    }
    case 'unreach6': {
      const name = Object.keys(UNREACH6_CODES).find((k) => UNREACH6_CODES[k] === a.arg);
      return `unreach6 ${name ?? String(a.arg)}`;
    }
    case 'skipto': case 'pipe': case 'queue': case 'call': return uintArg(`${a.kind} `, a.arg, a.tablearg);
    case 'setdscp': {
      if (a.tablearg) return 'setdscp tablearg';
      const v = a.arg & 0x3f;
      const name = DSCP_NAMES.find(([, c]) => c === v);
      return name !== undefined ? `setdscp ${name[0]}` : `setdscp ${v}`;
    }
  }
}

function portText(port: number, proto: number, resolve: boolean, ether: boolean): string {
  if (ether) {
    const name = resolve ? ETHER_TYPES.find(([, v]) => v === port) : undefined;
    return name !== undefined ? name[0] : `0x${port.toString(16).padStart(4, '0')}`;
  }
  if (resolve) {
    const s = serviceName(port, protoName(proto));
    if (s !== null) return s;
  }
  return String(port);
}

/** print_newports: ` NAME a,b-c` (NAME omitted for positional ports). */
function rangesText(name: string | null, ranges: readonly Range[], proto: number, resolve: boolean, ether = false): string {
  let out = name !== null ? ` ${name}` : '';
  let sep = ' ';
  for (const [lo, hi] of ranges) {
    out += sep + portText(lo, proto, resolve, ether);
    if (lo !== hi) out += '-' + portText(hi, proto, resolve, ether);
    sep = ',';
  }
  return out;
}

/** print_flags: names in ipfw's table order, `!name` for cleared bits; tcpflags syn,!ack prints `setup`. */
function flagsText(name: string, order: readonly string[], table: Record<string, number>, set: number, clear: number): string {
  if (name === 'tcpflags' && set === TCP_FLAGS.syn && clear === TCP_FLAGS.ack) return ' setup';
  let out = ` ${name} `;
  let comma = '';
  let s = set, c = clear;
  for (const flag of order) {
    const bit = table[flag]!;
    if ((s & bit) !== 0) { s &= ~bit; out += `${comma}${flag}`; comma = ','; }
    if ((c & bit) !== 0) { c &= ~bit; out += `${comma}!${flag}`; comma = ','; }
  }
  return out;
}

function ip4Text(addr: number, mask: number, single: boolean, resolve: boolean): string {
  const mb = single ? 32 : prefixLen(mask);
  if (mb === 32 && resolve) {
    const name = hostNameV4(addr);
    if (name !== null) return name;
  }
  if (mb === 0) return 'any';
  let out = inetNtoa(addr);
  if (mb < 0) out += `:${inetNtoa(addr)}`;
  else if (mb < 32) out += `/${mb}`;
  return out;
}

function prefixLen128(mask: readonly number[]): number {
  let total = 0;
  let k = 0;
  for (; k < 4; k++) {
    const l = prefixLen(mask[k]!);
    if (l < 0) return -1;
    total += l;
    if (l < 32) break;
  }
  for (k++; k < 4; k++) if (mask[k] !== 0) return -1;
  return total;
}

/** print_ip for the v4 address instructions (list, set, me, table). */
function addressText(cmd: Cmd, prefix: string, resolve: boolean): string {
  let out = `${cmd.neg ? ' not' : ''}${prefix} `;
  switch (cmd.op) {
    case 'me': return out + (cmd.v6 ? 'me6' : 'me');
    case 'table': return out + `table(${cmd.table}${cmd.value !== null ? `,${cmd.value >>> 0}` : ''})`;
    case 'ip-set': {
      out += `${inetNtoa(cmd.base)}/${cmd.bits}`;
      const members = new Set(cmd.members);
      const low = cmd.base & 0xff;
      const size = 2 ** (32 - cmd.bits);
      let comma = '{';
      for (let i = 0; i < size; i++) {
        if (!members.has(i + low)) continue;
        let j = i + 1;
        while (j < size && members.has(j + low)) j++;
        out += `${comma}${i + low}`;
        if (j > i + 2) { out += `-${j - 1 + low}`; i = j - 1; }
        comma = ',';
      }
      return out + '}';
    }
    case 'ip-addr': {
      const single = cmd.list.length === 1 && cmd.list[0]!.mask === 0xffffffff;
      return out + cmd.list.map((e) => ip4Text(e.addr, e.mask, single, resolve)).join(',');
    }
    case 'ip6-addr': {
      return out + cmd.list.map((e) => {
        const mb = prefixLen128(e.mask);
        const words = words32To16(e.addr);
        if (mb === 128 && resolve) {
          const name = hostNameV6(words);
          if (name !== null) return name;
        }
        if (mb === 0) return 'any';
        let t = inetNtop6(words);
        if (mb < 0) t += `:${inetNtop6(words32To16(e.mask))}`;
        else if (mb < 128) t += `/${mb}`;
        return t;
      }).join(',');
    }
    default: return out;
  }
}

/** Option text of the instructions ipfw prints in its `default:` branch. */
function optionText(cmd: Cmd, resolve: boolean): string {
  switch (cmd.op) {
    case 'mac': return ` MAC${macText(cmd.dst, cmd.dstMask)}${macText(cmd.src, cmd.srcMask)}`;
    case 'mac-type': return rangesText('mac-type', cmd.ranges, 0, resolve, true);
    case 'frag': return ' frag';
    case 'in': return cmd.neg ? ' out' : ' in';
    case 'layer2': return ' layer2';
    case 'iface': {
      const what = cmd.which;
      if (cmd.table !== null) return ` ${what} table(${cmd.table})`;
      if (cmd.name !== null) return ` ${what} ${cmd.name}`;
      return ` ${what} ${inetNtoa(cmd.addr ?? 0)}`;
    }
    case 'ipid': case 'ipttl': case 'iplen': case 'tcpdatalen': case 'tcpwin':
      return rangesText(cmd.op, cmd.ranges, 0, false);
    case 'ipversion': return ` ipver ${cmd.version}`;
    case 'ipprecedence': return ` ipprecedence ${cmd.value & 7}`;
    case 'dscp': {
      let out = ' dscp';
      let sep = ' ';
      for (const c of [...cmd.codes].sort((x, y) => x - y)) {
        const name = DSCP_NAMES.find(([, v]) => v === c);
        out += sep + (name !== undefined ? name[0] : String(c));
        sep = ',';
      }
      return out;
    }
    case 'ipoptions': return flagsText('ipoptions', IPOPT_ORDER, IP_OPTIONS, cmd.set, cmd.clear);
    case 'iptos': return flagsText('iptos', IPTOS_ORDER, IP_TOS, cmd.set, cmd.clear);
    case 'tcpflags': return flagsText('tcpflags', TCPFLAG_ORDER, TCP_FLAGS, cmd.set, cmd.clear);
    case 'tcpoptions': return flagsText('tcpoptions', TCPOPT_ORDER, TCP_OPTIONS, cmd.set, cmd.clear);
    case 'icmptypes': return ' icmptypes' + [...cmd.types].sort((x, y) => x - y).map((t, k) => (k === 0 ? ' ' : ',') + t).join('');
    case 'icmp6types': return ' ip6 icmp6types' + [...cmd.types].sort((x, y) => x - y).map((t, k) => (k === 0 ? ' ' : ',') + t).join('');
    case 'established': return ' established';
    // ipfw prints these two with %d of the network-order word: values above 2^31 print negative.
    case 'tcpack': return ` tcpack ${cmd.value | 0}`;
    case 'tcpseq': return ` tcpseq ${cmd.value | 0}`;
    case 'keep-state': return (cmd.record ? ' record-state' : ' keep-state') + (cmd.name !== 'default' ? ` :${cmd.name}` : '');
    case 'limit': {
      let out = ' limit';
      let comma = ' ';
      const m = cmd.mask;
      if (m.srcAddr && m.srcPort && m.dstAddr && m.dstPort) { out += ' all'; }
      else {
        for (const [name, on] of [['src-addr', m.srcAddr], ['src-port', m.srcPort], ['dst-addr', m.dstAddr], ['dst-port', m.dstPort]] as const) {
          if (on) { out += comma + name; comma = ','; }
        }
      }
      out += uintArg(' ', cmd.limit, false);
      return out + (cmd.name !== 'default' ? ` :${cmd.name}` : '');
    }
    case 'ip6': return ' ip6';
    case 'ip4': return ' ip4';
    case 'ext6hdr': {
      const parts: string[] = [];
      const b = cmd.set;
      if (b & EXT6_HEADERS.frag!) parts.push('fragmentation');
      if (b & EXT6_HEADERS.hopopt!) parts.push('hop options');
      if (b & EXT6_HEADERS.route!) parts.push('routing options');
      if (b & EXT6_HEADERS.rthdr0!) parts.push('rthdr0');
      if (b & EXT6_HEADERS.rthdr2!) parts.push('rthdr2');
      if (b & EXT6_HEADERS.dstopt!) parts.push('destination options');
      if (b & EXT6_HEADERS.ah!) parts.push('authentication header');
      if (b & EXT6_HEADERS.esp!) parts.push('encapsulated security payload');
      return ' extension header:' + (parts.length > 0 ? ' ' + parts.join(',') : '');
    }
    // print_flow6id leaves a trailing blank after the last label.
    case 'flow-id': return ' flow-id ' + cmd.labels.join(',') + ' ';
    case 'tagged':
      if (cmd.ranges.length === 1 && cmd.ranges[0]![0] === cmd.ranges[0]![1]) return uintArg(' tagged ', cmd.ranges[0]![0], false);
      return rangesText('tagged', cmd.ranges, 0, false);
    case 'lookup': return ` lookup ${cmd.key} ${cmd.table}`;
    default: return ` [opcode ${cmd.op}]`;
  }
}

function macText(addr: string, mask: string): string {
  const bytes = mask.split(':').map((x) => parseInt(x, 16));
  // contigmask over 48 bits
  let l = 0;
  while (l < 48 && (bytes[l >> 3]! & (1 << (7 - (l & 7)))) !== 0) l++;
  for (let n = l + 1; n < 48; n++) if ((bytes[n >> 3]! & (1 << (7 - (n & 7)))) !== 0) { l = -1; break; }
  if (l === 0) return ' any';
  let out = ` ${addr}`;
  if (l === -1) out += `&${mask}`;
  else if (l < 48) out += `/${l}`;
  return out;
}

function isSrcAddr(cmd: Cmd): boolean {
  return (cmd.op === 'ip-addr' || cmd.op === 'ip-set' || cmd.op === 'table' || (cmd.op === 'me' && !cmd.v6)) && cmd.dir === 'src';
}
function isDstAddr(cmd: Cmd): boolean {
  return (cmd.op === 'ip-addr' || cmd.op === 'ip-set' || cmd.op === 'table' || (cmd.op === 'me' && !cmd.v6)) && cmd.dir === 'dst';
}
function isSrc6(cmd: Cmd): boolean { return (cmd.op === 'ip6-addr' || (cmd.op === 'me' && cmd.v6)) && cmd.dir === 'src'; }
function isDst6(cmd: Cmd): boolean { return (cmd.op === 'ip6-addr' || (cmd.op === 'me' && cmd.v6)) && cmd.dir === 'dst'; }

/** The body: ` PROTO from SRC to DST OPTIONS [// comment]` as show_static_rule builds it. */
export function bodyText(rule: Rule, opts: PrintOptions = {}): string {
  const resolve = opts.resolve === true;
  let out = '';
  let flags = 0;
  let proto = 0;
  let orBlock = false;
  const prereq = (want: number): void => {
    if ((flags & HAVE_IP) === HAVE_IP) flags |= HAVE_OPTIONS;
    if ((flags & HAVE_OPTIONS) === 0) {
      if ((flags & HAVE_PROTO) === 0 && (want & HAVE_PROTO) !== 0) {
        out += (flags & HAVE_PROTO4) !== 0 ? ' ip4' : (flags & HAVE_PROTO6) !== 0 ? ' ip6' : ' ip';
      }
      if ((flags & HAVE_SRCIP) === 0 && (want & HAVE_SRCIP) !== 0) out += ' from any';
      if ((flags & HAVE_DSTIP) === 0 && (want & HAVE_DSTIP) !== 0) out += ' to any';
    }
    flags |= want;
  };
  if (rule.action.kind === 'check-state') flags = HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP | HAVE_IP;
  for (const cmd of rule.cmds) {
    if (cmd.or || cmd.neg) continue;
    if (cmd.op === 'ip4') { flags |= HAVE_PROTO4; break; }
    if (cmd.op === 'ip6') { flags |= HAVE_PROTO6; break; }
  }
  if (rule.optionsOnly === true) {
    if (opts.compact !== true) {
      prereq(HAVE_PROTO);
      out += ' from any to any';
    }
    flags |= HAVE_IP | HAVE_OPTIONS | HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP;
  }
  const cmds = rule.action.kind === 'check-state' ? [] : rule.cmds;
  for (const cmd of cmds) {
    prereq(0);
    const brace = cmd.or && !orBlock ? ' {' : '';
    if (cmd.op === 'probe-state') {
      // nothing printed
    } else if (isSrcAddr(cmd) || isSrc6(cmd)) {
      prereq(HAVE_PROTO);
      if ((flags & HAVE_SRCIP) === 0) out += ' from';
      out += brace;
      const v6 = isSrc6(cmd);
      out += addressText(cmd, (flags & HAVE_OPTIONS) !== 0 ? (v6 ? ' src-ip6' : ' src-ip') : '', resolve);
      flags |= HAVE_SRCIP | (v6 ? HAVE_PROTO : 0);
    } else if (isDstAddr(cmd) || isDst6(cmd)) {
      prereq(HAVE_PROTO | HAVE_SRCIP);
      if ((flags & HAVE_DSTIP) === 0) out += ' to';
      out += brace;
      const v6 = isDst6(cmd);
      out += addressText(cmd, (flags & HAVE_OPTIONS) !== 0 ? (v6 ? ' dst-ip6' : ' dst-ip') : '', resolve);
      flags |= HAVE_DSTIP;
    } else if (cmd.op === 'flow-id') {
      out += optionText(cmd, resolve);
      flags |= HAVE_OPTIONS;
    } else if (cmd.op === 'ports') {
      if (cmd.dir === 'dst') prereq(HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP | HAVE_IP);
      if ((flags & HAVE_DSTIP) !== 0) flags |= HAVE_IP;
      prereq(HAVE_PROTO | HAVE_SRCIP);
      out += brace;
      if (cmd.neg) out += ' not';
      const name = (flags & HAVE_OPTIONS) !== 0 ? (cmd.dir === 'dst' ? 'dst-port' : 'src-port') : null;
      out += rangesText(name, cmd.ranges, proto, resolve);
    } else if (cmd.op === 'proto') {
      out += brace;
      if (cmd.neg) out += ' not';
      proto = cmd.proto;
      if ((flags & (HAVE_PROTO4 | HAVE_PROTO6)) !== 0 && (flags & HAVE_PROTO) === 0) {
        prereq(HAVE_PROTO | HAVE_IP | HAVE_SRCIP | HAVE_DSTIP | HAVE_OPTIONS);
      }
      if ((flags & HAVE_OPTIONS) !== 0) out += ' proto';
      const name = protoName(cmd.proto);
      out += name !== null ? ` ${name}` : ` ${cmd.proto}`;
      flags |= HAVE_PROTO;
    } else {
      const skip = !cmd.or && !cmd.neg &&
        ((cmd.op === 'ip6' && (flags & HAVE_PROTO6) !== 0) || (cmd.op === 'ip4' && (flags & HAVE_PROTO4) !== 0));
      if (!skip) {
        prereq(HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP | HAVE_IP | HAVE_OPTIONS);
        out += brace;
        if (cmd.neg && cmd.op !== 'in') out += ' not';
        out += optionText(cmd, resolve);
      }
    }
    if (cmd.or) { out += ' or'; orBlock = true; }
    else if (orBlock) { out += ' }'; orBlock = false; }
  }
  if (rule.comment !== null && rule.action.kind !== 'check-state') {
    // ipfw's O_NOP goes through the options branch: it forces the head out before the comment.
    prereq(HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP | HAVE_IP | HAVE_OPTIONS);
  }
  prereq(HAVE_PROTO | HAVE_SRCIP | HAVE_DSTIP | HAVE_IP);
  if (rule.comment !== null) out += ` // ${rule.comment}`;
  return out;
}

/**
 * One `list`/`show` line without its newline; null when ipfw would not print it (a rule of a
 * disabled set without -S).
 */
export function ruleLine(rule: Rule, disabled: boolean, opts: PrintOptions = {}, counters: CounterColumns | null = null): string | null {
  let out = '';
  if (disabled) {
    if (opts.showSets !== true) return null;
    out += '# DISABLED ';
  }
  out += String(rule.number).padStart(5, '0') + ' ';
  if (counters !== null && (counters.packetWidth > 0 || counters.byteWidth > 0)) {
    out += String(counters.packets).padStart(counters.packetWidth, ' ') + ' ';
    out += String(counters.bytes).padStart(counters.byteWidth, ' ') + ' ';
  }
  const last = counters?.lastMatch ?? 0;
  if (opts.time === 2) out += String(last >>> 0).padStart(10, ' ') + ' ';
  else if (opts.time === 1) {
    // ipfw pads a never-matched rule with the width of ctime's text only, one less than a stamp + blank.
    out += last > 0 ? ctime(last) + ' ' : ' '.repeat(ctime(0).length);
  }
  if (opts.showSets === true) out += `set ${rule.set} `;
  if (rule.prob !== 1) {
    const stored = Math.trunc(rule.prob * 0x7fffffff);
    out += `prob ${(stored / 0x7fffffff).toFixed(6)} `;
  }
  out += actionText(rule);
  if (rule.log) out += rule.logAmount > 0 ? ` log logamount ${rule.logAmount}` : ' log';
  if (rule.tag !== null) out += uintArg(rule.tag.untag ? ' untag ' : ' tag ', rule.tag.value, rule.tag.tablearg);
  out += bodyText(rule, opts);
  return out;
}

/** A dynamic state as show_dyn_state prints it (the view is the daemon's). */
export interface StateLine {
  ruleNumber: number; packets: number; bytes: number; remaining: number; kind: 'STATE' | 'LIMIT' | 'PARENT';
  parentCount?: number; proto: number; src: string; srcPort: number; dst: string; dstPort: number; name: string;
}

export function stateLine(s: StateLine, counters: { packetWidth: number; byteWidth: number } | null): string {
  let out = String(s.ruleNumber).padStart(5, '0');
  if (counters !== null && (counters.packetWidth > 0 || counters.byteWidth > 0)) {
    out += ' ' + String(s.packets).padStart(counters.packetWidth, ' ') + ' ';
    out += String(s.bytes).padStart(counters.byteWidth, ' ') + ' ';
    out += `(${Math.max(0, Math.trunc(s.remaining))}s)`;
  }
  out += s.kind === 'PARENT' ? ` PARENT ${s.parentCount ?? 0}` : ` ${s.kind}`;
  const pn = protoName(s.proto);
  out += pn !== null ? ` ${pn}` : ` proto ${s.proto}`;
  out += ` ${s.src} ${s.srcPort} <-> ${s.dst} ${s.dstPort}`;
  if (s.name !== 'default' && s.name !== '') out += ` :${s.name}`;
  return out;
}
