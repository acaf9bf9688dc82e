/**
 * One-line packet summaries in the style of `tcpdump -n` (numeric addresses, absolute TCP
 * sequence numbers as with -S): Ethernet (-e), VLAN/QinQ, MPLS, ARP/RARP, IPv4, IPv6 (extension
 * headers skipped), TCP (flags, seq/ack, win, options), UDP, ICMP and ICMPv6 (echo, neighbour
 * discovery, errors). A header cut by the capture length prints `[|proto]` as tcpdump does.
 * Printing allocates strings: it is for human output, not for the filtering fast path.
 */

export interface PrintOptions {
  /** -e: print the link-level header. */
  ether?: boolean;
  /** -q: quieter protocol lines (`tcp 10` instead of the flags). */
  quick?: boolean;
  /** Print nanoseconds instead of microseconds. */
  nano?: boolean;
  /** -x: hex dump of the packet without its link header; -xx (2): with it. */
  hex?: 0 | 1 | 2;
  /** Print times in UTC instead of local time. */
  utc?: boolean;
}

const ETHERTYPES: Record<number, string> = {
  0x0800: 'IPv4', 0x86dd: 'IPv6', 0x0806: 'ARP', 0x8035: 'Reverse ARP', 0x8100: '802.1Q', 0x88a8: '802.1Q-QinQ',
  0x9100: '802.1Q-9100', 0x8847: 'MPLS unicast', 0x8848: 'MPLS multicast', 0x88cc: 'LLDP', 0x9000: 'Loopback',
  0x8863: 'PPPoE D', 0x8864: 'PPPoE S', 0x88e5: 'MACsec',
};

const hex2 = (v: number): string => v.toString(16).padStart(2, '0');

export function formatMac(u8: Uint8Array, o: number): string {
  return `${hex2(u8[o]!)}:${hex2(u8[o + 1]!)}:${hex2(u8[o + 2]!)}:${hex2(u8[o + 3]!)}:${hex2(u8[o + 4]!)}:${hex2(u8[o + 5]!)}`;
}

export function formatIp4(u8: Uint8Array, o: number): string {
  return `${u8[o]}.${u8[o + 1]}.${u8[o + 2]}.${u8[o + 3]}`;
}

/** RFC 5952 text of the IPv6 address at o (longest zero run of 2+ groups compressed). */
export function formatIp6(u8: Uint8Array, o: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((u8[o + 2 * i]! << 8) | u8[o + 2 * i + 1]!);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped / compatible forms print the last 32 bits dotted, as inet_ntop does.
  if (bestStart === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${formatIp4(u8, o + 12)}`;
  }
  const parts = g.map((x) => x.toString(16));
  if (bestStart < 0) return parts.join(':');
  const head = parts.slice(0, bestStart).join(':');
  const tail = parts.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** `HH:MM:SS.ffffff` (or 9 digits with nano). */
export function formatTime(tsSec: number, tsNsec: number, nano = false, utc = false): string {
  const d = new Date(tsSec * 1000);
  const h = utc ? d.getUTCHours() : d.getHours();
  const m = utc ? d.getUTCMinutes() : d.getMinutes();
  const s = utc ? d.getUTCSeconds() : d.getSeconds();
  const frac = nano ? String(tsNsec).padStart(9, '0') : String(Math.floor(tsNsec / 1000)).padStart(6, '0');
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${frac}`;
}

/** tcpdump -x style hex lines: `\t0x0000:  4500 0054 ...`, 16 bytes a line. */
export function hexLines(u8: Uint8Array, o: number, len: number): string {
  const lines: string[] = [];
  for (let i = 0; i < len; i += 16) {
    const groups: string[] = [];
    for (let j = i; j < Math.min(i + 16, len); j += 2) groups.push(j + 1 < len ? hex2(u8[o + j]!) + hex2(u8[o + j + 1]!) : hex2(u8[o + j]!));
    lines.push(`\t0x${i.toString(16).padStart(4, '0')}:  ${groups.join(' ')}`);
  }
  return lines.join('\n');
}

const be16 = (u8: Uint8Array, o: number): number => (u8[o]! << 8) | u8[o + 1]!;
const be32 = (u8: Uint8Array, o: number): number => ((u8[o]! << 24) | (u8[o + 1]! << 16) | (u8[o + 2]! << 8) | u8[o + 3]!) >>> 0;

/** A packet view: bytes [o, end) are captured; `len` is the original length of this layer. */
interface Layer { u8: Uint8Array; o: number; end: number; len: number }

function tcpFlags(f: number): string {
  let s = '';
  if (f & 0x01) s += 'F';
  if (f & 0x02) s += 'S';
  if (f & 0x04) s += 'R';
  if (f & 0x08) s += 'P';
  if (f & 0x20) s += 'U';
  if (f & 0x40) s += 'E';
  if (f & 0x80) s += 'W';
  if (f & 0x10) s += '.';
  return s === '' ? 'none' : s;
}

function tcpOptions(u8: Uint8Array, o: number, end: number): string {
  const out: string[] = [];
  let i = o;
  while (i < end) {
    const kind = u8[i];
    if (kind === 0) { out.push('eol'); break; }
    if (kind === 1) { out.push('nop'); i++; continue; }
    if (i + 1 >= end) { out.push(`opt-${kind}`); break; }
    const len = u8[i + 1]!;
    if (len < 2 || i + len > end) { out.push(`opt-${kind}:bad length ${len}`); break; }
    switch (kind) {
      case 2: out.push(len === 4 ? `mss ${be16(u8, i + 2)}` : 'mss'); break;
      case 3: out.push(len === 3 ? `wscale ${u8[i + 2]}` : 'wscale'); break;
      case 4: out.push('sackOK'); break;
      case 5: {
        const blocks: string[] = [];
        for (let b = i + 2; b + 8 <= i + len; b += 8) blocks.push(`{${be32(u8, b)}:${be32(u8, b + 4)}}`);
        out.push(`sack ${blocks.length} ${blocks.join('')}`);
        break;
      }
      case 8: out.push(len === 10 ? `TS val ${be32(u8, i + 2)} ecr ${be32(u8, i + 6)}` : 'TS'); break;
      default: out.push(`unknown-${kind}`);
    }
    i += len;
  }
  return out.join(',');
}

function printTcp(l: Layer, src: string, dst: string, quick: boolean): string {
  const { u8, o, end } = l;
  if (end - o < 4) return `${src} > ${dst}: [|tcp]`;
  const sport = be16(u8, o), dport = be16(u8, o + 2);
  const head = `${src}.${sport} > ${dst}.${dport}:`;
  if (end - o < 20) return `${head} [|tcp]`;
  const hl = (u8[o + 12]! >> 4) * 4;
  const payload = l.len - hl;
  if (quick) return `${head} tcp ${Math.max(0, payload)}`;
  if (hl < 20) return `${head} tcp ${payload} [bad hdr length ${hl} - too short, < 20]`;
  const flags = u8[o + 13]!;
  const seq = be32(u8, o + 4), ack = be32(u8, o + 8), win = be16(u8, o + 14), urp = be16(u8, o + 18);
  let s = `${head} Flags [${tcpFlags(flags)}]`;
  if (payload > 0 || (flags & 0x07) !== 0) {
    s += `, seq ${seq}`;
    if (payload > 0) s += `:${(seq + payload) >>> 0}`;
  }
  if (flags & 0x10) s += `, ack ${ack}`;
  s += `, win ${win}`;
  if (flags & 0x20) s += `, urg ${urp}`;
  if (hl > 20) {
    if (o + hl > end) return `${s}, options [|tcp]`;
    s += `, options [${tcpOptions(u8, o + 20, o + hl)}]`;
  }
  return `${s}, length ${payload}`;
}

function printUdp(l: Layer, src: string, dst: string): string {
  const { u8, o, end } = l;
  if (end - o < 8) return end - o >= 4 ? `${src}.${be16(u8, o)} > ${dst}.${be16(u8, o + 2)}: [|udp]` : `${src} > ${dst}: [|udp]`;
  const ulen = be16(u8, o + 4);
  return `${src}.${be16(u8, o)} > ${dst}.${be16(u8, o + 2)}: UDP, length ${ulen - 8}`;
}

const ICMP_TYPES: Record<number, string> = {
  0: 'echo reply', 8: 'echo request', 3: 'unreachable', 4: 'source quench', 5: 'redirect', 11: 'time exceeded',
  12: 'parameter problem', 13: 'time stamp query', 14: 'time stamp reply', 9: 'router advertisement', 10: 'router solicitation',
};

function printIcmp(l: Layer, src: string, dst: string): string {
  const { u8, o, end } = l;
  if (end - o < 4) return `${src} > ${dst}:  [|icmp]`;
  const type = u8[o]!, code = u8[o + 1];
  let what: string;
  if ((type === 0 || type === 8) && end - o >= 8) what = `${ICMP_TYPES[type]}, id ${be16(u8, o + 4)}, seq ${be16(u8, o + 6)}`;
  else if (type === 3 || type === 11 || type === 5) what = `${ICMP_TYPES[type]} code ${code}`;
  else what = ICMP_TYPES[type] ?? `type-#${type}`;
  return `${src} > ${dst}: ICMP ${what}, length ${l.len}`;
}

const ICMP6_TYPES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded in-transit', 4: 'parameter problem',
  128: 'echo request', 129: 'echo reply', 133: 'router solicitation', 134: 'router advertisement',
  135: 'neighbor solicitation', 136: 'neighbor advertisement', 137: 'redirect',
  130: 'multicast listener query', 131: 'multicast listener report', 132: 'multicast listener done', 143: 'multicast listener report v2',
};

function printIcmp6(l: Layer, src: string, dst: string): string {
  const { u8, o, end } = l;
  if (end - o < 1) return `${src} > ${dst}: ICMP6 [|icmp6]`;
  const type = u8[o]!;
  const name = ICMP6_TYPES[type];
  let what = name === undefined ? `unknown icmp6 type (${type})` : name;
  if ((type === 128 || type === 129) && end - o >= 8) what += `, id ${be16(u8, o + 4)}, seq ${be16(u8, o + 6)}`;
  else if (type === 135 && end - o >= 24) what += `, who has ${formatIp6(u8, o + 8)}`;
  else if (type === 136 && end - o >= 24) what += `, tgt is ${formatIp6(u8, o + 8)}`;
  return `${src} > ${dst}: ICMP6, ${what}, length ${l.len}`;
}

function printTransport(proto: number, l: Layer, src: string, dst: string, quick: boolean): string {
  switch (proto) {
    case 6: return printTcp(l, src, dst, quick);
    case 17: return printUdp(l, src, dst);
    case 1: return printIcmp(l, src, dst);
    case 58: return printIcmp6(l, src, dst);
    case 132: return `${src} > ${dst}: sctp`;
    case 2: return `${src} > ${dst}: igmp`;
    case 47: return `${src} > ${dst}: GREv0, length ${l.len}`;
    case 50: return `${src} > ${dst}: ESP, length ${l.len}`;
    default: return `${src} > ${dst}: ip-proto-${proto} ${l.len}`;
  }
}

function printIp4(l: Layer, quick: boolean): string {
  const { u8, o, end } = l;
  if (end - o < 20) return ' [|ip]';
  const hl = (u8[o]! & 0x0f) * 4;
  const total = be16(u8, o + 2);
  const src = formatIp4(u8, o + 12), dst = formatIp4(u8, o + 16);
  if (hl < 20) return ` ${src} > ${dst}: [bad hdr length ${hl} - too short, < 20]`;
  const frag = be16(u8, o + 6) & 0x1fff;
  const proto = u8[o + 9]!;
  if (frag !== 0) return ` ${src} > ${dst}: ip-proto-${proto}`;
  const len = Math.max(0, Math.min(total, l.len) - hl);
  return ' ' + printTransport(proto, { u8, o: o + hl, end, len }, src, dst, quick);
}

function printIp6(l: Layer, quick: boolean): string {
  const { u8, o, end } = l;
  if (end - o < 40) return ' [|ip6]';
  const src = formatIp6(u8, o + 8), dst = formatIp6(u8, o + 24);
  let nh = u8[o + 6]!;
  let p = o + 40;
  let len = be16(u8, o + 4);
  const prefix: string[] = [];
  // Skip hop-by-hop, routing, destination options; stop at a fragment header.
  for (let guard = 0; guard < 8 && (nh === 0 || nh === 43 || nh === 60 || nh === 44); guard++) {
    if (p + 8 > end) return ` ${src} > ${dst}: [|ip6]`;
    if (nh === 44) {
      const off = be16(u8, p + 2);
      prefix.push(`frag (${(off >> 3) * 8}|${len - 8})`);
      if ((off >> 3) !== 0) return ` ${src} > ${dst}: ${prefix.join(' ')}`;
      nh = u8[p]!;
      p += 8;
      len -= 8;
      continue;
    }
    const hlen = (u8[p + 1]! + 1) * 8;
    prefix.push(nh === 0 ? 'HBH' : nh === 43 ? 'RT6' : 'DSTOPT');
    nh = u8[p]!;
    p += hlen;
    len -= hlen;
  }
  const body = printTransport(nh, { u8, o: p, end, len: Math.max(0, len) }, src, dst, quick);
  if (prefix.length === 0) return ' ' + body;
  return ` ${src} > ${dst}: ${prefix.join(' ')} ${body.slice(body.indexOf(': ') + 2)}`;
}

function printArp(l: Layer): string {
  const { u8, o, end } = l;
  if (end - o < 28) return ' [|ARP]';
  const op = be16(u8, o + 6);
  const sha = formatMac(u8, o + 8), spa = formatIp4(u8, o + 14), tha = formatMac(u8, o + 18), tpa = formatIp4(u8, o + 24);
  switch (op) {
    case 1: return ` Request who-has ${tpa} tell ${spa}, length ${l.len}`;
    case 2: return ` Reply ${spa} is-at ${sha}, length ${l.len}`;
    case 3: return ` Reverse Request who-is ${tha} tell ${sha}, length ${l.len}`;
    case 4: return ` Reverse Reply ${tha} at ${tpa}, length ${l.len}`;
    default: return ` Unknown opcode ${op}, length ${l.len}`;
  }
}

function etherTypeName(t: number): string {
  return `${ETHERTYPES[t] ?? 'Unknown'} (0x${t.toString(16).padStart(4, '0')})`;
}

/** Summary of an Ethernet frame, without the timestamp. */
export function summarizeEthernet(u8: Uint8Array, o: number, caplen: number, wirelen: number, opts: PrintOptions = {}): string {
  const end = o + caplen;
  if (caplen < 14) return caplen >= 12 && opts.ether ? `${formatMac(u8, o + 6)} > ${formatMac(u8, o)}, [|ether]` : ' [|ether]';
  let type = be16(u8, o + 12);
  let p = o + 14;
  let len = wirelen - 14;
  let s = opts.ether ? `${formatMac(u8, o + 6)} > ${formatMac(u8, o)}, ` : '';
  if (type <= 1500) return `${s}802.3, length ${wirelen}: LLC, dsap 0x${hex2(u8[p] ?? 0)}, ssap 0x${hex2(u8[p + 1] ?? 0)}`;
  if (opts.ether) s += `ethertype ${etherTypeName(type)}, length ${wirelen}: `;
  // VLAN tags (any depth).
  while (type === 0x8100 || type === 0x88a8 || type === 0x9100) {
    if (p + 4 > end) return `${s}[|vlan]`;
    const tci = be16(u8, p);
    type = be16(u8, p + 2);
    if (opts.ether) s += `vlan ${tci & 0xfff}, p ${tci >> 13}${tci & 0x1000 ? ', DEI' : ''}, ethertype ${etherTypeName(type)}, `;
    p += 4;
    len -= 4;
  }
  const l: Layer = { u8, o: p, end, len };
  const named = !opts.ether;
  switch (type) {
    case 0x0800: return `${s}${named ? 'IP' : ''}${printIp4(l, opts.quick === true).slice(named ? 0 : 1)}`;
    case 0x86dd: return `${s}${named ? 'IP6' : ''}${printIp6(l, opts.quick === true).slice(named ? 0 : 1)}`;
    case 0x0806: case 0x8035: return `${s}${named ? 'ARP,' : ''}${printArp(l).slice(named ? 0 : 1)}`;
    case 0x8847: case 0x8848: {
      let q = p;
      const labels: string[] = [];
      for (let guard = 0; guard < 16; guard++) {
        if (q + 4 > end) return `${s}MPLS ${labels.join(' ')} [|MPLS]`;
        const e = be32(u8, q);
        const bos = (e >>> 8) & 1;
        labels.push(`(label ${e >>> 12}, tc ${(e >>> 9) & 7}, ${bos ? '[S], ' : ''}ttl ${e & 0xff})`);
        q += 4;
        if (bos) break;
      }
      const v = u8[q]! >> 4;
      const inner: Layer = { u8, o: q, end, len: len - (q - p) };
      const body = v === 4 ? `IP${printIp4(inner, opts.quick === true)}` : v === 6 ? `IP6${printIp6(inner, opts.quick === true)}` : 'unknown payload';
      return `${s}MPLS ${labels.join(' ')} ${body}`;
    }
    default:
      return opts.ether ? s.replace(/, $/, '') : `${s}ethertype ${etherTypeName(type)}, length ${wirelen}: `;
  }
}

/** A full tcpdump-like line (timestamp, summary, optional hex dump) for an Ethernet frame. */
export function formatPacket(
  u8: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number, opts: PrintOptions = {},
): string {
  let line = `${formatTime(tsSec, tsNsec, opts.nano, opts.utc)} ${summarizeEthernet(u8, o, caplen, wirelen, opts)}`;
  if (opts.hex === 1) {
    // Without the link header, which includes any VLAN tags.
    let p = 14;
    while (p + 4 <= caplen && [0x8100, 0x88a8, 0x9100].includes(be16(u8, o + p - 2))) p += 4;
    if (caplen > p) line += '\n' + hexLines(u8, o + p, caplen - p);
  }
  else if (opts.hex === 2) line += '\n' + hexLines(u8, o, caplen);
  return line;
}
