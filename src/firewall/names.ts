/**
 * Name databases the ipfw language reads, as the C library would: /etc/protocols
 * (getprotobyname/getprotobynumber), /etc/services (getservbyname/getservbyport) and /etc/hosts
 * (gethostbyname/gethostbyaddr restricted to the hosts file: a rule never waits on DNS).
 * Each file is read once, synchronously, when first needed; a missing file falls back to a small
 * built-in table so rules like `allow tcp from any to any http` work on any machine.
 * Also the address text conversions ipfw relies on: inet_aton (v4), inet_pton/inet_ntop (v6).
 */
import { readFileSync } from 'node:fs';

interface ProtoDb { byName: Map<string, number>; byNumber: Map<number, string> }
interface ServEntry { name: string; port: number; proto: string }
interface ServDb { byName: Map<string, ServEntry[]>; byPort: Map<number, ServEntry[]> }
interface HostDb { v4: Map<string, number>; v6: Map<string, number[]>; v4Names: Map<number, string>; v6Names: Map<string, string> }

const BUILTIN_PROTOCOLS = 'ip 0 IP\nicmp 1 ICMP\nigmp 2 IGMP\nipencap 4 IP-ENCAP\ntcp 6 TCP\nudp 17 UDP\nipv6 41 IPv6\n' +
  'ipv6-route 43 IPv6-Route\nipv6-frag 44 IPv6-Frag\ngre 47 GRE\nesp 50 IPSEC-ESP\nah 51 IPSEC-AH\n' +
  'ipv6-icmp 58 IPv6-ICMP\nipv6-nonxt 59 IPv6-NoNxt\nipv6-opts 60 IPv6-Opts\nospf 89 OSPFIGP\npim 103 PIM\n' +
  'vrrp 112 VRRP\nsctp 132 SCTP\nudplite 136 UDPLite\n';
const BUILTIN_SERVICES = 'ftp-data 20/tcp\nftp 21/tcp\nssh 22/tcp\ntelnet 23/tcp\nsmtp 25/tcp\ndomain 53/tcp\n' +
  'domain 53/udp\nbootps 67/udp\nbootpc 68/udp\ntftp 69/udp\nhttp 80/tcp www\npop3 110/tcp\nntp 123/udp\n' +
  'imap2 143/tcp imap\nsnmp 161/udp\nhttps 443/tcp\nhttps 443/udp\n';

let protoDb: ProtoDb | null = null;
let servDb: ServDb | null = null;
let hostDb: HostDb | null = null;

function readOr(path: string, fallback: string): string {
  try { return readFileSync(path, 'utf8'); } catch { return fallback; }
}

/** Lines of a name database without comments, split into words. */
function entries(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const words = (hash >= 0 ? raw.slice(0, hash) : raw).trim().split(/\s+/).filter((w) => w !== '');
    if (words.length >= 2) out.push(words);
  }
  return out;
}

function protocols(): ProtoDb {
  if (protoDb !== null) return protoDb;
  const db: ProtoDb = { byName: new Map(), byNumber: new Map() };
  for (const [name, num, ...aliases] of entries(readOr('/etc/protocols', BUILTIN_PROTOCOLS))) {
    const n = Number(num);
    if (!Number.isInteger(n) || n < 0 || n > 255) continue;
    // The first entry of a number is the official one, as getprotobynumber returns it.
    if (!db.byNumber.has(n)) db.byNumber.set(n, name!);
    for (const key of [name!, ...aliases]) if (!db.byName.has(key)) db.byName.set(key, n);
  }
  protoDb = db;
  return db;
}

function services(): ServDb {
  if (servDb !== null) return servDb;
  const db: ServDb = { byName: new Map(), byPort: new Map() };
  for (const [name, portProto, ...aliases] of entries(readOr('/etc/services', BUILTIN_SERVICES))) {
    const slash = portProto!.indexOf('/');
    if (slash < 0) continue;
    const port = Number(portProto!.slice(0, slash));
    if (!Number.isInteger(port) || port < 0 || port > 65535) continue;
    const entry: ServEntry = { name: name!, port, proto: portProto!.slice(slash + 1) };
    for (const key of [name!, ...aliases]) {
      const list = db.byName.get(key) ?? [];
      list.push(entry);
      db.byName.set(key, list);
    }
    const list = db.byPort.get(port) ?? [];
    list.push(entry);
    db.byPort.set(port, list);
  }
  servDb = db;
  return db;
}

function hosts(): HostDb {
  if (hostDb !== null) return hostDb;
  const db: HostDb = { v4: new Map(), v6: new Map(), v4Names: new Map(), v6Names: new Map() };
  for (const [addr, ...names] of entries(readOr('/etc/hosts', '127.0.0.1 localhost\n::1 localhost\n'))) {
    const v4 = inetAton(addr!);
    const v6 = v4 === null ? inetPton6(addr!) : null;
    for (const name of names) {
      if (v4 !== null) { if (!db.v4.has(name)) db.v4.set(name, v4); }
      else if (v6 !== null && !db.v6.has(name)) db.v6.set(name, v6);
    }
    if (v4 !== null && !db.v4Names.has(v4)) db.v4Names.set(v4, names[0]!);
    if (v6 !== null && !db.v6Names.has(v6.join(','))) db.v6Names.set(v6.join(','), names[0]!);
  }
  hostDb = db;
  return db;
}

/** getprotobyname: official names and aliases. */
export function protoByName(name: string): number | null {
  return protocols().byName.get(name) ?? null;
}

/** getprotobynumber: the official name. */
export function protoName(proto: number): string | null {
  return protocols().byNumber.get(proto) ?? null;
}

/** getservbyname(name, proto): proto null means any protocol. */
export function serviceByName(name: string, proto: string | null): number | null {
  const list = services().byName.get(name);
  if (list === undefined) return null;
  for (const e of list) if (proto === null || e.proto === proto) return e.port;
  return null;
}

/** getservbyport(port, proto): the official name, or null. */
export function serviceName(port: number, proto: string | null): string | null {
  const list = services().byPort.get(port);
  if (list === undefined) return null;
  for (const e of list) if (proto === null || e.proto === proto) return e.name;
  return null;
}

/** gethostbyname for IPv4, from /etc/hosts only. */
export function hostV4(name: string): number | null {
  return hosts().v4.get(name) ?? null;
}

/** gethostbyname2(AF_INET6), from /etc/hosts only. */
export function hostV6(name: string): number[] | null {
  return hosts().v6.get(name) ?? null;
}

/** gethostbyaddr for -N listings, from /etc/hosts only. */
export function hostNameV4(addr: number): string | null {
  return hosts().v4Names.get(addr >>> 0) ?? null;
}

export function hostNameV6(words: readonly number[]): string | null {
  return hosts().v6Names.get(words.join(',')) ?? null;
}

/**
 * strtoul with base 0 over the longest valid prefix, as C does: returns the value and how many
 * characters were used (0 when there is no number). Values beyond 2^32-1 saturate like ULONG on a
 * 32-bit cast would not; callers truncate as the C field they emulate does.
 */
export function strtoul(s: string, base = 0): { value: number; used: number } {
  let i = 0;
  let b = base;
  if (b === 0) {
    if (s.startsWith('0x') || s.startsWith('0X')) { if (/^0[xX][0-9a-fA-F]/.test(s)) { b = 16; i = 2; } else b = 10; }
    else if (s.startsWith('0')) b = 8;
    else b = 10;
  } else if (b === 16 && /^0[xX][0-9a-fA-F]/.test(s)) i = 2;
  const start = i;
  let value = 0;
  for (; i < s.length; i++) {
    const d = parseInt(s[i]!, 36);
    if (Number.isNaN(d) || d >= b) break;
    value = value * b + d;
  }
  if (i === start) return { value: 0, used: b === 8 ? (s.startsWith('0') ? 1 : 0) : 0 };
  return { value: Math.min(value, Number.MAX_SAFE_INTEGER), used: i };
}

/** inet_aton: 1 to 4 parts, each decimal, octal (0...) or hex (0x...); the last part fills the rest. */
export function inetAton(s: string): number | null {
  if (s === '' || !/^[0-9a-fA-FxX.]+$/.test(s)) return null;
  const parts = s.split('.');
  if (parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    if (p === '') return null;
    const r = strtoul(p);
    if (r.used !== p.length) return null;
    nums.push(r.value);
  }
  const limits = [0xffffffff, 0xffffff, 0xffff, 0xff];
  const last = nums[nums.length - 1]!;
  if (last > limits[nums.length - 1]!) return null;
  let addr = 0;
  for (let k = 0; k < nums.length - 1; k++) {
    if (nums[k]! > 255) return null;
    addr += nums[k]! * 2 ** (24 - 8 * k);
  }
  return (addr + last) >>> 0;
}

/** Dotted-quad text of a host-order IPv4 address (inet_ntoa). */
export function inetNtoa(addr: number): string {
  const a = addr >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** inet_pton(AF_INET6): 8 16-bit words, or null. Accepts `::`, embedded dotted quads. */
export function inetPton6(s: string): number[] | null {
  if (s.length === 0 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string, allowV4: boolean): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let k = 0; k < groups.length; k++) {
      const g = groups[k]!;
      if (g.includes('.')) {
        if (!allowV4 || k !== groups.length - 1) return null;
        if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(g)) return null;
        const o = g.split('.').map(Number);
        if (o.some((x) => x > 255)) return null;
        words.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        words.push(parseInt(g, 16));
      }
    }
    return words;
  };
  if (halves.length === 1) {
    const w = parse(halves[0]!, true);
    return w !== null && w.length === 8 ? w : null;
  }
  const head = parse(halves[0]!, false);
  const tail = parse(halves[1]!, true);
  if (head === null || tail === null || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** inet_ntop(AF_INET6) as BSD libc prints: longest zero run (2+ words) as `::`, v4-mapped/compatible tails dotted. */
export function inetNtop6(words: readonly number[]): string {
  let bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
  for (let k = 0; k < 8; k++) {
    if (words[k] === 0) {
      if (curBase < 0) { curBase = k; curLen = 1; } else curLen++;
      if (curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
    } else curBase = -1;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let k = 0; k < 8; k++) {
    if (bestBase >= 0 && k >= bestBase && k < bestBase + bestLen) {
      if (k === bestBase) out += ':';
      continue;
    }
    if (k !== 0) out += ':';
    if (k === 6 && bestBase === 0 &&
        (bestLen === 6 || (bestLen === 7 && words[7] !== 0x0001) || (bestLen === 5 && words[5] === 0xffff))) {
      out += `${words[6]! >>> 8}.${words[6]! & 0xff}.${words[7]! >>> 8}.${words[7]! & 0xff}`;
      return out;
    }
    out += words[k]!.toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** Converts 8 16-bit words to the contract's 4 32-bit words, most significant first. */
export function wordsTo32(words: readonly number[]): [number, number, number, number] {
  return [0, 1, 2, 3].map((k) => ((words[2 * k]! << 16) | words[2 * k + 1]!) >>> 0) as [number, number, number, number];
}

export function words32To16(w: readonly number[]): number[] {
  const out: number[] = [];
  for (const x of w) out.push((x >>> 16) & 0xffff, x & 0xffff);
  return out;
}
