/**
 * Tokenizer of the pcap-filter language. Like libpcap's scanner it takes the longest match:
 * `tcp-syn` is one named constant, `80-90` one word (a port range), `len-1` one (unknown) word;
 * on equal length numbers and addresses win over words.
 */
import { fail } from '../errors.js';

export type TokKind =
  | 'num' // number or named constant: value
  | 'v4' // dotted IPv4 address or prefix (1 to 4 parts): text
  | 'v6' // IPv6 address: text
  | 'mac' // Ethernet address: text
  | 'kw' // keyword: text (canonical)
  | 'id' // other word (host, port or protocol name): text
  | 'op' // punctuation / operator: text
  | 'eof';

export interface Token {
  kind: TokKind;
  text: string;
  value: number;
  /** 0-based character position in the expression. */
  pos: number;
}

/** Keywords, mapped to a canonical spelling. */
const KEYWORDS: Record<string, string> = {
  dst: 'dst', src: 'src', host: 'host', net: 'net', mask: 'mask', port: 'port', portrange: 'portrange',
  less: 'less', greater: 'greater', proto: 'proto', protochain: 'protochain', gateway: 'gateway',
  link: 'link', ether: 'link', fddi: 'link', tr: 'link', wlan: 'link', ppp: 'link', slip: 'link',
  arp: 'arp', rarp: 'rarp', ip: 'ip', ip6: 'ip6', sctp: 'sctp', tcp: 'tcp', udp: 'udp', icmp: 'icmp',
  icmp6: 'icmp6', igmp: 'igmp', igrp: 'igrp', pim: 'pim', vrrp: 'vrrp', carp: 'carp', ah: 'ah', esp: 'esp',
  broadcast: 'broadcast', multicast: 'multicast',
  and: 'and', or: 'or', not: 'not', len: 'len', length: 'len',
  vlan: 'vlan', mpls: 'mpls',
  // Recognised but not supported: a clear error rather than "unknown host".
  byte: 'byte', radio: 'radio', decnet: 'decnet', atalk: 'atalk', aarp: 'aarp',
  iso: 'iso', esis: 'esis', 'es-is': 'esis', isis: 'isis', 'is-is': 'isis', clnp: 'clnp', stp: 'stp',
  ipx: 'ipx', netbeui: 'netbeui', lat: 'lat', sca: 'sca', moprc: 'moprc', mopdl: 'mopdl',
  inbound: 'inbound', outbound: 'outbound', ifindex: 'ifindex', pppoed: 'pppoed', pppoes: 'pppoes',
  geneve: 'geneve', llc: 'llc', lane: 'lane', type: 'type', subtype: 'subtype', dir: 'dir',
  addr1: 'addr1', addr2: 'addr2', addr3: 'addr3', addr4: 'addr4', ra: 'ra', ta: 'ta',
  on: 'on', ifname: 'ifname', rnr: 'rnr', rulenum: 'rnr', reason: 'reason', rset: 'rset', ruleset: 'rset',
  srnr: 'srnr', subrulenum: 'srnr', action: 'action', l1: 'l1', l2: 'l2', iih: 'iih', lsp: 'lsp', snp: 'snp',
  csnp: 'csnp', psnp: 'psnp',
};

/** Named numeric constants (libpcap's scanner turns these into numbers). */
export const NAMED_CONSTANTS: Record<string, number> = {
  icmptype: 0, icmpcode: 1, icmp6type: 0, icmp6code: 1, tcpflags: 13,
  'icmp-echoreply': 0, 'icmp-unreach': 3, 'icmp-sourcequench': 4, 'icmp-redirect': 5, 'icmp-echo': 8,
  'icmp-routeradvert': 9, 'icmp-routersolicit': 10, 'icmp-timxceed': 11, 'icmp-paramprob': 12,
  'icmp-tstamp': 13, 'icmp-tstampreply': 14, 'icmp-ireq': 15, 'icmp-ireqreply': 16, 'icmp-maskreq': 17,
  'icmp-maskreply': 18,
  'icmp6-destinationunreach': 1, 'icmp6-packettoobig': 2, 'icmp6-timeexceeded': 3, 'icmp6-parameterproblem': 4,
  'icmp6-echo': 128, 'icmp6-echoreply': 129, 'icmp6-multicastlistenerquery': 130,
  'icmp6-multicastlistenerreportv1': 131, 'icmp6-multicastlistenerdone': 132, 'icmp6-routersolicit': 133,
  'icmp6-routeradvert': 134, 'icmp6-neighborsolicit': 135, 'icmp6-neighboradvert': 136, 'icmp6-redirect': 137,
  'icmp6-routerrenum': 138, 'icmp6-nodeinformationquery': 139, 'icmp6-nodeinformationresponse': 140,
  'icmp6-ineighbordiscoverysolicit': 141, 'icmp6-ineighbordiscoveryadvert': 142,
  'icmp6-multicastlistenerreportv2': 143, 'icmp6-homeagentdiscoveryrequest': 144,
  'icmp6-homeagentdiscoveryreply': 145, 'icmp6-mobileprefixsolicit': 146, 'icmp6-mobileprefixadvert': 147,
  'icmp6-certpathsolicit': 148, 'icmp6-certpathadvert': 149, 'icmp6-multicastrouteradvert': 151,
  'icmp6-multicastroutersolicit': 152, 'icmp6-multicastrouterterm': 153,
  'tcp-fin': 0x01, 'tcp-syn': 0x02, 'tcp-rst': 0x04, 'tcp-push': 0x08, 'tcp-ack': 0x10, 'tcp-urg': 0x20,
  'tcp-ece': 0x40, 'tcp-cwr': 0x80,
};

const RE_ID = /[A-Za-z0-9](?:[-_.A-Za-z0-9]*[.A-Za-z0-9])?/y;
const RE_NUM = /0[xX][0-9A-Fa-f]+|[0-9]+/y;
const RE_V4 = /[0-9]+(?:\.[0-9]+){1,3}/y;
const RE_MAC = /[0-9A-Fa-f]{1,2}([:.-])[0-9A-Fa-f]{1,2}\1[0-9A-Fa-f]{1,2}\1[0-9A-Fa-f]{1,2}\1[0-9A-Fa-f]{1,2}\1[0-9A-Fa-f]{1,2}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12}(?![-_.A-Za-z0-9])/y;
const RE_V6 = /[0-9A-Fa-f:][0-9A-Fa-f:.]*/y;
const OPERATORS = ['&&', '||', '!=', '==', '<=', '>=', '<<', '>>', '(', ')', '[', ']', ':', '!', '=', '<', '>', '&', '|', '+', '-', '*', '/', '%', '^'];

function matchAt(re: RegExp, s: string, pos: number): string {
  re.lastIndex = pos;
  const m = re.exec(s);
  return m === null ? '' : m[0];
}

const V4_PART = /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const V6_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Whether `text` is an IPv6 address in text form: groups of 1 to 4 hex digits, at most one `::`,
 * a dotted IPv4 address as the last two groups allowed (what node:net's isIPv6 accepts, without
 * zone ids, which the lexer never hands over; node:net itself is not imported: it loads Node's
 * whole stream stack, a few milliseconds of every filter's start-up).
 */
export function isIPv6Text(text: string): boolean {
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return false;
  const sides = gap === -1 ? [text] : [text.slice(0, gap), text.slice(gap + 2)];
  let groups = 0;
  for (let side = 0; side < sides.length; side++) {
    if (sides[side] === '') continue;
    const parts = sides[side]!.split(':');
    for (let i = 0; i < parts.length; i++) {
      const g = parts[i]!;
      if (V6_GROUP.test(g)) { groups++; continue; }
      // An IPv4 tail: only the address's last group.
      if (side !== sides.length - 1 || i !== parts.length - 1) return false;
      const bytes = g.split('.');
      if (bytes.length !== 4 || !bytes.every((b) => V4_PART.test(b))) return false;
      groups += 2;
    }
  }
  return gap === -1 ? groups === 8 : groups <= 7;
}

/** Longest prefix of `text` (cut at ':' or '.' boundaries) that is a valid IPv6 address. */
function longestV6(text: string): string {
  if (!text.includes(':')) return '';
  for (let end = text.length; end > 1; end--) {
    const cand = text.slice(0, end);
    if (cand.includes(':') && isIPv6Text(cand)) return cand;
  }
  return '';
}

/** Parses a C integer literal (decimal, 0x hex, 0 octal) to an unsigned 32-bit number. */
export function parseNumber(text: string, pos: number): number {
  let v: number;
  if (/^0[xX]/.test(text)) v = parseInt(text.slice(2), 16);
  else if (/^0[0-7]*$/.test(text)) v = text.length > 1 ? parseInt(text.slice(1), 8) : 0;
  else if (/^[0-9]+$/.test(text)) v = parseInt(text, 10);
  else fail('EINVAL', `filter: bad number '${text}' at position ${pos}`);
  if (!(v <= 0xffffffff)) fail('EINVAL', `filter: number '${text}' at position ${pos} is larger than 32 bits`);
  return v;
}

export function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = expr.length;
  while (i < n) {
    const ch = expr[i];
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') { i++; continue; }
    if (ch === '\\') {
      // Backslash-escaped word: always a name (e.g. `ether proto \ip`).
      let j = i + 1;
      while (j < n && !' \t\n\r!()'.includes(expr[j]!)) j++;
      if (j === i + 1) fail('EINVAL', `filter: syntax error at position ${i}: '\\' must be followed by a name`);
      out.push({ kind: 'id', text: expr.slice(i + 1, j), value: 0, pos: i });
      i = j;
      continue;
    }
    const id = matchAt(RE_ID, expr, i);
    const num = matchAt(RE_NUM, expr, i);
    const v4 = matchAt(RE_V4, expr, i);
    const mac = matchAt(RE_MAC, expr, i);
    const v6 = longestV6(matchAt(RE_V6, expr, i));
    const best = Math.max(id.length, num.length, v4.length, mac.length, v6.length);
    if (best > 0) {
      // Priority on equal length: twelve hex digits (a MAC without separators, as libpcap's
      // scanner lists that rule before numbers), number, IPv4, MAC, IPv6, then word.
      if (mac.length === best && mac.length === 12 && !/[:.-]/.test(mac)) out.push({ kind: 'mac', text: mac, value: 0, pos: i });
      else if (num.length === best) out.push({ kind: 'num', text: num, value: parseNumber(num, i), pos: i });
      else if (v4.length === best) out.push({ kind: 'v4', text: v4, value: 0, pos: i });
      else if (mac.length === best) out.push({ kind: 'mac', text: mac, value: 0, pos: i });
      else if (v6.length === best) out.push({ kind: 'v6', text: v6, value: 0, pos: i });
      else {
        const lower = id;
        const kw = Object.prototype.hasOwnProperty.call(KEYWORDS, lower) ? KEYWORDS[lower] : undefined;
        const named = Object.prototype.hasOwnProperty.call(NAMED_CONSTANTS, lower) ? NAMED_CONSTANTS[lower] : undefined;
        if (kw !== undefined) out.push({ kind: 'kw', text: kw, value: 0, pos: i });
        else if (named !== undefined) out.push({ kind: 'num', text: id, value: named, pos: i });
        else out.push({ kind: 'id', text: id, value: 0, pos: i });
      }
      i += best;
      continue;
    }
    const op = OPERATORS.find((o) => expr.startsWith(o, i));
    if (op === undefined) fail('EINVAL', `filter: syntax error at position ${i}: unexpected character '${ch}'`);
    out.push({ kind: 'op', text: op === '&&' ? 'and' : op === '||' ? 'or' : op === '!' ? 'not' : op === '==' ? '=' : op, value: 0, pos: i });
    if (op === '&&' || op === '||' || op === '!') out[out.length - 1]!.kind = 'kw';
    i += op.length;
  }
  out.push({ kind: 'eof', text: '', value: 0, pos: n });
  return out;
}
