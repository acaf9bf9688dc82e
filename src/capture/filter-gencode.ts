/**
 * Code generation of the pcap-filter compiler, as libpcap's gencode.c: the gen_* functions
 * that filter.ts's parser (the grammar) calls for each primitive, building the tests (Cond, see
 * filter-codegen.ts) against the link, network and transport headers; the tables they use
 * (protocol numbers, EtherTypes, services); and the state they share while one expression is
 * compiled (header offsets moved by vlan/mpls/pppoes/geneve, scratch registers). The parser
 * saves and restores that state when it backtracks. filter-codegen.ts then optimizes the tests
 * and lays out the BPF program.
 */
import * as fs from 'node:fs';
import { fail, NetmapError } from '../errors.js';
import {
  type BpfInsn, stmt,
  BPF_LD, BPF_LDX, BPF_ST, BPF_ALU, BPF_JMP, BPF_MISC, BPF_W, BPF_H, BPF_B, BPF_ABS, BPF_IND, BPF_MEM,
  BPF_MSH, BPF_IMM, BPF_K, BPF_X, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV,
  BPF_MOD, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH, BPF_TAX, BPF_TXA, BPF_MEMWORDS, BPF_STX,
} from './bpf.js';
import { type Cond, type BlockItem, TRUE, FALSE, and, or, not, andAll, orAll, leaf } from './filter-codegen.js';
import { type Token, isIPv6Text } from './filter-lexer.js';

/** A bad expression: EINVAL naming the position of token `t`. */
export function filterError(t: Token, message: string): never {
  throw new NetmapError('EINVAL', `filter: ${message} (at position ${t.pos})`);
}

// ---- qualifiers ------------------------------------------------------------------------

export type Proto =
  | 'default' | 'link' | 'ip' | 'ip6' | 'arp' | 'rarp' | 'tcp' | 'udp' | 'sctp' | 'icmp' | 'icmp6'
  | 'igmp' | 'igrp' | 'pim' | 'vrrp' | 'carp' | 'ah' | 'esp'
  | 'atalk' | 'aarp' | 'decnet' | 'lat' | 'sca' | 'moprc' | 'mopdl' | 'iso' | 'esis' | 'isis' | 'clnp'
  | 'stp' | 'ipx' | 'netbeui' | 'l1' | 'l2' | 'iih' | 'lsp' | 'snp' | 'csnp' | 'psnp';
export type Dir = 'default' | 'src' | 'dst' | 'or' | 'and';
export type Addr = 'default' | 'host' | 'net' | 'port' | 'portrange' | 'proto' | 'protochain' | 'gateway';
export interface Qual { proto: Proto; dir: Dir; addr: Addr }
/** The "no qualifier in force" value: a bare value after it is a syntax error. */
export const QERR: Qual | null = null;

export const PNAMES = new Set<string>([
  'link', 'ip', 'ip6', 'arp', 'rarp', 'tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'igmp', 'igrp', 'pim', 'vrrp', 'carp', 'ah', 'esp',
  'atalk', 'aarp', 'decnet', 'lat', 'sca', 'moprc', 'mopdl', 'iso', 'esis', 'isis', 'clnp', 'stp', 'ipx', 'netbeui',
  'l1', 'l2', 'iih', 'lsp', 'snp', 'csnp', 'psnp',
]);
export const UNSUPPORTED = new Set<string>([
  'radio', 'inbound', 'outbound', 'ifindex', 'lane',
  'type', 'subtype', 'dir', 'addr1', 'addr2', 'addr3', 'addr4', 'ra', 'ta', 'on', 'ifname', 'rnr', 'reason', 'rset',
  'srnr', 'action', 'gateway',
]);

/**
 * After `geneve` the inner frame's offsets are only known at run time: libpcap keeps them in
 * scratch registers. Here such an offset is written as a "virtual" number, VIRTUAL_UNIT * (r + 1)
 * + k for M[r] + k, so that every generator keeps adding constants to it; a final pass turns
 * the loads at virtual offsets into register-relative loads (see Parser.resolveVirtual).
 */
export const VIRTUAL_UNIT = 0x1000000;
export function isVirtual(off: number): boolean {
  return off >= VIRTUAL_UNIT;
}
export function virtualReg(off: number): number {
  return Math.floor(off / VIRTUAL_UNIT) - 1;
}
export const GENEVE_PORT = 6081, ETHERTYPE_TEB = 0x6558;

/** Link-level protocols named by a keyword: EtherType (> 1500) or LLC SAP, as libpcap's gen_linktype takes them. */
export const LINK_ABBREV: Partial<Record<Proto, number>> = {
  atalk: 0x809b, aarp: 0x80f3, decnet: 0x6003, lat: 0x6004, sca: 0x6007, moprc: 0x6002, mopdl: 0x6001,
  iso: 0xfe, stp: 0x42, ipx: 0xe0, netbeui: 0xf0,
};
/** OSI network protocols (the NLPID after an ISO LLC header). */
export const NLPID = { clnp: 0x81, esis: 0x82, isis: 0x83 } as const;
/** IS-IS PDU types that the keywords l1, l2, iih, lsp, snp, csnp and psnp stand for (libpcap's order). */
export const ISIS_PDUS: Partial<Record<Proto, number[]>> = {
  l1: [0x1a, 0x18, 0x12, 0x0f, 0x11], l2: [0x1b, 0x19, 0x14, 0x10, 0x11], iih: [0x11, 0x0f, 0x10],
  lsp: [0x12, 0x14], snp: [0x1b, 0x1a, 0x18, 0x19], csnp: [0x18, 0x19], psnp: [0x1a, 0x1b],
};
/** LLC control-field values for `llc NAME`: [mask, value] (I, S and U formats and their subtypes). */
export const LLC_KINDS: Record<string, [number, number]> = {
  s: [0x03, 0x01], u: [0x03, 0x03],
  rr: [0x0f, 0x01], rnr: [0x0f, 0x05], rej: [0x0f, 0x09],
  ui: [0xef, 0x03], ua: [0xef, 0x63], disc: [0xef, 0x43], dm: [0xef, 0x0f], sabme: [0xef, 0x6f],
  test: [0xef, 0xe3], xid: [0xef, 0xaf], frmr: [0xef, 0x87],
};

export const ETHERTYPE_IP = 0x0800, ETHERTYPE_IPV6 = 0x86dd, ETHERTYPE_ARP = 0x0806, ETHERTYPE_REVARP = 0x8035;
export const ETHERTYPE_PPPOED = 0x8863, ETHERTYPE_PPPOES = 0x8864;
/** EtherTypes and LLC SAPs as PPP protocol numbers (libpcap's ethertype_to_ppptype); others stay as they are. */
export const PPP_PROTOCOLS = new Map<number, number>([
  [0x0800, 0x0021], [0x86dd, 0x0057], [0x6003, 0x0027], [0x809b, 0x0029], [0x0600, 0x0025], [0xfe, 0x0023],
  [0x42, 0x0031], [0xe0, 0x002b], [0x8847, 0x0281],
]);
export const ETHERTYPE_DN = 0x6003, ETHERTYPE_MPLS = 0x8847, ETHERTYPE_IPX = 0x8137, ETHERTYPE_ATALK = 0x809b, ETHERTYPE_AARP = 0x80f3;
export const LLCSAP_ISONS = 0xfe, LLCSAP_IP = 0x06, LLCSAP_NETBEUI = 0xf0, LLCSAP_IPX = 0xe0;
export const IPPROTO = { icmp: 1, igmp: 2, tcp: 6, igrp: 9, udp: 17, esp: 50, ah: 51, icmp6: 58, pim: 103, vrrp: 112, sctp: 132, fragment: 44 } as const;

/** Protocol names for `proto \name` (as /etc/protocols spells them). */
export const PROTOCOL_NAMES: Record<string, number> = {
  ip: 0, icmp: 1, igmp: 2, ggp: 3, ipencap: 4, st: 5, tcp: 6, egp: 8, igp: 9, pup: 12, udp: 17, hmp: 20,
  'xns-idp': 22, rdp: 27, 'iso-tp4': 29, dccp: 33, xtp: 36, ddp: 37, 'idpr-cmtp': 38, ipv6: 41,
  'ipv6-route': 43, 'ipv6-frag': 44, idrp: 45, rsvp: 46, gre: 47, esp: 50, ah: 51, skip: 57, 'ipv6-icmp': 58,
  icmp6: 58, 'ipv6-nonxt': 59, 'ipv6-opts': 60, rspf: 73, vmtp: 81, eigrp: 88, ospf: 89, 'ax.25': 93, ipip: 94,
  etherip: 97, encap: 98, pim: 103, ipcomp: 108, vrrp: 112, l2tp: 115, isis: 124, sctp: 132, fc: 133,
  'mobility-header': 135, udplite: 136, 'mpls-in-ip': 137, manet: 138, hip: 139, shim6: 140, wesp: 141, rohc: 142,
};
/** Ethernet type names for `ether proto \name` (the ones libpcap knows). */
export const ETHERTYPE_NAMES: Record<string, number> = {
  ip: 0x0800, ip6: 0x86dd, arp: 0x0806, rarp: 0x8035, atalk: 0x809b, aarp: 0x80f3, decnet: 0x6003, sca: 0x6007,
  lat: 0x6004, mopdl: 0x6001, moprc: 0x6002, loopback: 0x9000,
};
/** LLC SAP names for `ether proto \name`, the values libpcap uses. */
export const LLC_NAMES: Record<string, number> = { iso: 0xfe, stp: 0x42, ipx: 0xe0, netbeui: 0xf0 };

/** Service names when /etc/services is absent: [port, 'tcp' | 'udp' | 'both']. */
export const FALLBACK_SERVICES: Record<string, [number, string]> = {
  'ftp-data': [20, 'tcp'], ftp: [21, 'tcp'], ssh: [22, 'tcp'], telnet: [23, 'tcp'], smtp: [25, 'tcp'],
  domain: [53, 'both'], bootps: [67, 'udp'], bootpc: [68, 'udp'], tftp: [69, 'udp'], http: [80, 'tcp'],
  www: [80, 'tcp'], pop3: [110, 'tcp'], ntp: [123, 'udp'], imap: [143, 'tcp'], snmp: [161, 'udp'],
  https: [443, 'tcp'], syslog: [514, 'udp'],
};

let servicesCache: Map<string, { tcp?: number; udp?: number; sctp?: number }> | null = null;

export function services(): Map<string, { tcp?: number; udp?: number; sctp?: number }> {
  if (servicesCache !== null) return servicesCache;
  const map = new Map<string, { tcp?: number; udp?: number; sctp?: number }>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/services', 'utf8');
  } catch {
    for (const [name, [port, proto]] of Object.entries(FALLBACK_SERVICES)) {
      map.set(name, proto === 'both' ? { tcp: port, udp: port } : { [proto]: port });
    }
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [name, portProto, ...aliases] = line.split(/\s+/);
    const m = /^(\d+)\/(tcp|udp|sctp)$/.exec(portProto ?? '');
    if (m === null || name === undefined) continue;
    for (const n of [name, ...aliases]) {
      const e = map.get(n) ?? {};
      const key = m[2] as 'tcp' | 'udp' | 'sctp';
      if (e[key] === undefined) e[key] = Number(m[1]);
      map.set(n, e);
    }
  }
  servicesCache = map;
  return map;
}

// ---- arithmetic values -------------------------------------------------------------------

/** An arithmetic value: code leaving it in A, and the protocol checks it requires. */
export interface Arith {
  code: BpfInsn[];
  conds: Cond[];
  /** Set when the value is a literal number. */
  literal?: number;
  /**
   * k of the `ld #k` libpcap's code for this value starts with (a literal, or an accessor whose
   * index starts with one). libpcap checks divisors and shift counts by this first instruction,
   * so `x / ip[0]` is a "division by zero" error there; we do the same.
   */
  firstImm?: number;
}

export interface Offsets {
  /** Offset of the link header (0; after `pppoes`, the PPP header). */
  linkhdr: number;
  /** The link layer is PPP (after `pppoes`): protocol numbers are PPP's, no LLC, no MAC addresses. */
  ppp: boolean;
  /** Offset of an OSI network header from the link payload (3: after the LLC header; 0 on PPP). */
  nlNosnap: number;
  /** Offset of the Ethernet type field (12, +4 per vlan). */
  linktype: number;
  /** Offset of the link-layer payload (14, +4 per vlan). */
  linkpl: number;
  /** Offset of the network header from the link payload (0, +4 per MPLS label). */
  nl: number;
  mplsDepth: number;
}

/** The state of one compilation and the generators of its tests (libpcap's compiler_state and gen_*). */
export class CodeGen {
  off: Offsets = { linkhdr: 0, ppp: false, nlNosnap: 3, linktype: 12, linkpl: 14, nl: 0, mplsDepth: 0 };
  /** Next free scratch register. */
  reg = 0;
  /** Scratch register for saving A while a virtual offset is resolved; -1 until `geneve` is used. */
  spareReg = -1;

  /**
   * @param fold constant folding as libpcap's optimizer does it (`x & 0` and `x * 0` are 0, a
   * comparison of constants is decided): the loads of a folded value are gone, which decides
   * what truncated packets do, so it follows the optimize option.
   */
  constructor(private readonly netmask: number, readonly fold = true) {}

  /**
   * Rewrites the loads at virtual offsets (after `geneve`) of every leaf: `ld [V]` becomes
   * `ldx M[r]; ld [x + k]`; `ldxb 4*([V]&0xf)` computes M[r] + 4*(byte & 0xf) into X (A kept
   * through the spare register); `ld [x + V]` adds M[r] to X first unless X already holds it.
   */
  resolveVirtual(root: Cond): void {
    const seen = new Set<Cond>();
    const walk = (c: Cond): void => {
      if (seen.has(c)) return;
      seen.add(c);
      if (c.kind === 'and' || c.kind === 'or') { walk(c.a); walk(c.b); return; }
      if (c.kind === 'not') { walk(c.a); return; }
      if (c.kind !== 'leaf' || !c.insns.some((s) => isVirtual(s.k) && (s.code & 0x07) <= BPF_LDX)) return;
      const out: BpfInsn[] = [];
      // Which register's value A and X already include (-1: none), so that an indexed load
      // after `ldxb; add x; tax` (tcp[expr]) does not add the base twice.
      let aHolds = -1, xHolds = -1;
      for (const s of c.insns) {
        const cls = s.code & 0x07, mode = s.code & 0xe0;
        if ((cls === BPF_LD || cls === BPF_LDX) && (mode === BPF_ABS || mode === BPF_IND || mode === BPF_MSH) && isVirtual(s.k)) {
          const r = virtualReg(s.k), k = s.k % VIRTUAL_UNIT;
          if (mode === BPF_ABS) {
            out.push(stmt(BPF_LDX | BPF_MEM, r), stmt(BPF_LD | (s.code & 0x18) | BPF_IND, k));
            aHolds = -1;
            xHolds = r;
          } else if (mode === BPF_MSH) {
            out.push(stmt(BPF_ST, this.spareReg), stmt(BPF_LDX | BPF_MEM, r), stmt(BPF_LD | BPF_B | BPF_IND, k),
              stmt(BPF_ALU | BPF_AND | BPF_K, 0xf), stmt(BPF_ALU | BPF_LSH | BPF_K, 2), stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
              stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_LD | BPF_MEM, this.spareReg));
            xHolds = r; // A is restored as it was
          } else {
            if (xHolds !== r) out.push(stmt(BPF_MISC | BPF_TXA, 0), stmt(BPF_LDX | BPF_MEM, r), stmt(BPF_ALU | BPF_ADD | BPF_X, 0), stmt(BPF_MISC | BPF_TAX, 0));
            out.push(stmt(s.code, k));
            aHolds = -1;
            xHolds = r;
          }
          continue;
        }
        out.push(s);
        if (s.code === (BPF_MISC | BPF_TAX)) xHolds = aHolds;
        else if (s.code === (BPF_MISC | BPF_TXA)) aHolds = xHolds;
        else if (s.code === (BPF_ALU | BPF_ADD | BPF_X)) aHolds = aHolds === -1 ? xHolds : -1;
        else if (cls === BPF_ALU && (s.code === (BPF_ALU | BPF_ADD | BPF_K) || s.code === (BPF_ALU | BPF_SUB | BPF_K))) { /* still includes it */ }
        else if (cls === BPF_LD || cls === BPF_ALU) aHolds = -1;
        else if (cls === BPF_LDX) xHolds = -1;
      }
      c.insns = out;
    };
    walk(root);
  }


  allocReg(t: Token): number {
    if (this.reg >= BPF_MEMWORDS) filterError(t, 'expression too complex (more than 16 scratch registers)');
    return this.reg++;
  }

  constant(value: number, conds: Cond[], firstImm: number | undefined): Arith {
    return { code: [stmt(BPF_LD | BPF_IMM, value)], conds, literal: value, firstImm };
  }

  genArth(t: Token, a: Arith, b: Arith): Arith {
    const ops: Record<string, number> = {
      '+': BPF_ADD, '-': BPF_SUB, '*': BPF_MUL, '/': BPF_DIV, '%': BPF_MOD, '&': BPF_AND, '|': BPF_OR,
      '^': BPF_XOR, '<<': BPF_LSH, '>>': BPF_RSH,
    };
    const op = ops[t.text];
    if (op === undefined) filterError(t, `'${t.text}' is not an arithmetic operator`);
    const conds = [...a.conds, ...b.conds];
    const first = a.firstImm;
    if (op === BPF_DIV && b.firstImm === 0) filterError(t, 'division by zero');
    if (op === BPF_MOD && b.firstImm === 0) filterError(t, 'modulus by zero');
    if ((op === BPF_LSH || op === BPF_RSH) && b.firstImm !== undefined && b.firstImm > 31) filterError(t, 'shift by more than 31 bits');
    if (this.fold) {
      // libpcap's optimizer folds constants and the operations that make 0 whatever the other
      // operand is (x & 0, x * 0, 0 & x, 0 * x, 0 / x, 0 % x, 0 << x, 0 >> x).
      if (a.literal !== undefined && b.literal !== undefined) return this.constant(foldAlu(op, a.literal, b.literal), conds, first);
      if (b.literal === 0 && (op === BPF_AND || op === BPF_MUL)) return this.constant(0, conds, first);
      if (a.literal === 0 && (op === BPF_AND || op === BPF_MUL || op === BPF_DIV || op === BPF_MOD || op === BPF_LSH || op === BPF_RSH)) return this.constant(0, conds, first);
    }
    if (b.literal !== undefined) return { code: [...a.code, stmt(BPF_ALU | op | BPF_K, b.literal)], conds, firstImm: first };
    const r = this.allocReg(t);
    this.reg--;
    return {
      code: [...a.code, stmt(BPF_ST, r), ...this.shiftRegs(b.code, r + 1), stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_LD | BPF_MEM, r), stmt(BPF_ALU | op | BPF_X, 0)],
      conds,
      firstImm: first,
    };
  }

  /**
   * Scratch registers are numbered from the innermost expression outwards when code is built
   * bottom-up; renumber the nested code so it does not reuse register `base - 1`.
   */
  shiftRegs(code: BpfInsn[], base: number): BpfInsn[] {
    return code.map((s) => {
      if (s.code === BPF_ST || s.code === (BPF_LD | BPF_MEM)) {
        const k = s.k + base;
        if (k >= BPF_MEMWORDS) fail('EINVAL', 'filter: expression too complex (more than 16 scratch registers)');
        return { ...s, k };
      }
      return s;
    });
  }

  genLoad(t: Token, proto: Proto, idx: Arith, size: number): Arith {
    const ld = (base: number): BpfInsn[] => {
      const sz = size === 1 ? BPF_B : size === 2 ? BPF_H : BPF_W;
      if (idx.literal !== undefined) return [stmt(BPF_LD | sz | BPF_ABS, base + idx.literal)];
      return [...idx.code, stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_LD | sz | BPF_IND, base)];
    };
    const nl = this.off.linkpl + this.off.nl;
    // After geneve an offset is M[r] + k with k kept below VIRTUAL_UNIT (see resolveVirtual).
    if (isVirtual(nl) && idx.literal !== undefined && idx.literal > 0xffff) filterError(t, `index ${idx.literal} is too large after 'geneve'`);
    switch (proto) {
      case 'link':
        return { code: ld(this.off.linkhdr), conds: idx.conds };
      case 'ip': case 'ip6': case 'arp': case 'rarp': case 'atalk': case 'decnet': case 'sca': case 'lat': case 'moprc': case 'mopdl':
        return { code: ld(nl), conds: [...idx.conds, this.genProtoAbbrev(proto, t)!] };
      case 'icmp6':
        return { code: ld(nl + 40), conds: [this.genProtoAbbrev('ip6', t)!, ...idx.conds, this.cmp(nl + 6, BPF_B, IPPROTO.icmp6)] };
      case 'tcp': case 'udp': case 'sctp': case 'icmp': case 'igmp': case 'igrp': case 'pim': case 'vrrp': case 'carp': {
        const hl = stmt(BPF_LDX | BPF_B | BPF_MSH, nl);
        const sz = size === 1 ? BPF_B : size === 2 ? BPF_H : BPF_W;
        const code = idx.literal !== undefined
          ? [hl, stmt(BPF_LD | sz | BPF_IND, nl + idx.literal)]
          : [...idx.code, hl, stmt(BPF_ALU | BPF_ADD | BPF_X, 0), stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_LD | sz | BPF_IND, nl)];
        const v = proto === 'vrrp' || proto === 'carp' ? IPPROTO.vrrp : IPPROTO[proto];
        return { code, conds: [this.linktype(ETHERTYPE_IP, t), ...idx.conds, this.cmp(nl + 9, BPF_B, v), this.notFrag()] };
      }
      default:
        filterError(t, `unsupported index operation '${proto}[...]'`);
    }
  }

  // ---- primitive generators (libpcap gencode semantics) ----

  cmp(off: number, size: number, v: number): Cond {
    return leaf([stmt(BPF_LD | size | BPF_ABS, off)], BPF_JMP | BPF_JEQ | BPF_K, v);
  }
  mcmp(off: number, size: number, v: number, mask: number): Cond {
    // `and #0` makes the loaded value 0: the optimizer decides the test and drops the load.
    if (this.fold && (mask >>> 0) === 0) return (v >>> 0) === 0 ? TRUE : FALSE;
    if ((mask >>> 0) === (size === BPF_W ? 0xffffffff : size === BPF_H ? 0xffff : 0xff)) return this.cmp(off, size, v);
    return leaf([stmt(BPF_LD | size | BPF_ABS, off), stmt(BPF_ALU | BPF_AND | BPF_K, mask)], BPF_JMP | BPF_JEQ | BPF_K, v);
  }
  notFrag(): Cond {
    const nl = this.off.linkpl + this.off.nl;
    return not(leaf([stmt(BPF_LD | BPF_H | BPF_ABS, nl + 6)], BPF_JMP | BPF_JSET | BPF_K, 0x1fff));
  }

  /** `ether proto v` at the current offsets (MPLS-aware, LLC SAPs for v <= 1500). */
  linktype(v: number, t: Token): Cond {
    const o = this.off;
    const nl = o.linkpl + o.nl;
    if (o.ppp && o.mplsDepth === 0) return this.cmp(o.linktype, BPF_H, PPP_PROTOCOLS.get(v) ?? v);
    if (o.mplsDepth > 0) {
      const bos = this.mcmp(nl - 2, BPF_B, 1, 1);
      if (v === ETHERTYPE_IP) return and(bos, this.mcmp(nl, BPF_B, 0x40, 0xf0));
      if (v === ETHERTYPE_IPV6) return and(bos, this.mcmp(nl, BPF_B, 0x60, 0xf0));
      filterError(t, 'unsupported protocol over mpls');
    }
    const isLen = (): Cond => not(leaf([stmt(BPF_LD | BPF_H | BPF_ABS, o.linktype)], BPF_JMP | BPF_JGT | BPF_K, 1500));
    switch (v) {
      case LLCSAP_ISONS: case LLCSAP_IP: case LLCSAP_NETBEUI:
        // Both SAPs (DSAP and SSAP) must be the protocol's.
        return and(isLen(), this.cmp(o.linkpl, BPF_H, (v << 8) | v));
      case LLCSAP_IPX:
        // IPX in an EtherType frame, in 802.3 with SNAP, with the IPX SAP, or "raw" 802.3 (0xffff checksum).
        return or(this.cmp(o.linktype, BPF_H, ETHERTYPE_IPX),
          and(isLen(), or(this.snap(0x000000, ETHERTYPE_IPX), or(this.cmp(o.linkpl, BPF_B, LLCSAP_IPX), this.cmp(o.linkpl, BPF_H, 0xffff)))));
      case ETHERTYPE_ATALK: case ETHERTYPE_AARP:
        // AppleTalk is mostly carried in 802.3 frames with a SNAP header (Apple's OUI for AppleTalk itself).
        return or(this.cmp(o.linktype, BPF_H, v), and(isLen(), this.snap(v === ETHERTYPE_ATALK ? 0x080007 : 0, v)));
    }
    if (v <= 1500) return and(isLen(), this.cmp(o.linkpl, BPF_B, v));
    return this.cmp(o.linktype, BPF_H, v);
  }

  /** An LLC SNAP header (AA AA 03, OUI, type) at the link payload: the last 4 bytes compared first, as libpcap's gen_bcmp. */
  snap(oui: number, type: number): Cond {
    const o = this.off;
    return and(this.cmp(o.linkpl + 4, BPF_W, (((oui & 0xffff) << 16) | type) >>> 0), this.cmp(o.linkpl, BPF_W, (0xaaaa0300 | (oui >>> 16)) >>> 0));
  }

  ipProto(v: number, t: Token): Cond {
    return and(this.linktype(ETHERTYPE_IP, t), this.cmp(this.off.linkpl + this.off.nl + 9, BPF_B, v));
  }
  ip6Proto(v: number, t: Token): Cond {
    const nl = this.off.linkpl + this.off.nl;
    const direct = this.cmp(nl + 6, BPF_B, v);
    const viaFrag = and(this.cmp(nl + 6, BPF_B, IPPROTO.fragment), this.cmp(nl + 40, BPF_B, v));
    return and(this.linktype(ETHERTYPE_IPV6, t), or(direct, viaFrag));
  }

  /** An OSI protocol: ISO LLC SAPs, then the NLPID (the byte after the 3-byte LLC header). */
  isoProto(nlpid: number, t: Token): Cond {
    return and(this.linktype(LLCSAP_ISONS, t), this.cmp(this.off.linkpl + this.off.nlNosnap, BPF_B, nlpid));
  }
  /** An IS-IS PDU type (in the IS-IS header, 4 bytes after the NLPID). */
  isisProto(pdu: number, t: Token): Cond {
    return and(this.isoProto(NLPID.isis, t), this.cmp(this.off.linkpl + this.off.nlNosnap + 4, BPF_B, pdu));
  }

  /**
   * `llc [kind]`: an 802.2 LLC frame (not raw 802.3 IPX), with a control field of that kind;
   * `at` is the `llc` keyword, `kind` the kind's token (null: any LLC frame).
   */
  genLlc(at: Token, kind: Token | null): Cond {
    const o = this.off;
    if (o.ppp) filterError(at, "'llc' not supported for PPP");
    const isLlc = and(not(leaf([stmt(BPF_LD | BPF_H | BPF_ABS, o.linktype)], BPF_JMP | BPF_JGT | BPF_K, 1500)), not(this.cmp(o.linkpl, BPF_H, 0xffff)));
    if (kind === null) return isLlc;
    const name = kind.text.toLowerCase();
    if (name === 'i') return and(isLlc, not(leaf([stmt(BPF_LD | BPF_B | BPF_ABS, o.linkpl + 2)], BPF_JMP | BPF_JSET | BPF_K, 1)));
    const maskValue = Object.prototype.hasOwnProperty.call(LLC_KINDS, name) ? LLC_KINDS[name] : undefined;
    if (maskValue === undefined) filterError(kind, `unknown LLC type name '${kind.text}'`);
    return and(isLlc, this.mcmp(o.linkpl + 2, BPF_B, maskValue[1], maskValue[0]));
  }

  /**
   * `byte N op V`. As libpcap, '|' and '&' apply to whatever the accumulator holds (the byte is
   * not loaded for them), and the other operators compare the byte N of the link header.
   */
  genByte(index: number, op: string, value: number): Cond {
    const ldb = [stmt(BPF_LD | BPF_B | BPF_ABS, this.off.linkhdr + index)];
    switch (op) {
      case '=': return leaf(ldb, BPF_JMP | BPF_JEQ | BPF_K, value);
      case '>': return leaf(ldb, BPF_JMP | BPF_JGT | BPF_K, value);
      case '<': return not(leaf(ldb, BPF_JMP | BPF_JGE | BPF_K, value));
      default:
        return not(leaf([stmt(BPF_ALU | (op === '|' ? BPF_OR : BPF_AND) | BPF_K, value)], BPF_JMP | BPF_JEQ | BPF_K, 0));
    }
  }

  /** DECnet routing header address test (libpcap's gen_dnhostop): 4 header layouts, address little-endian. */
  dnhostop(addr: number, dir: Dir): Cond {
    const lp = this.off.linkpl;
    const swapped = ((addr & 0xff00) >>> 8) | ((addr & 0xff) << 8);
    const side = (shortOff: number, longOff: number): Cond => {
      // Padding 0 or 1 byte (0x81), short (flags & 7 == 2) or long (== 6) header.
      const a = and(this.mcmp(lp + 2, BPF_B, 0x02, 0x07), this.cmp(lp + 2 + shortOff, BPF_H, swapped));
      const b = and(this.mcmp(lp + 2, BPF_H, 0x8102, 0xff07), this.cmp(lp + 2 + 1 + shortOff, BPF_H, swapped));
      const c = and(this.mcmp(lp + 2, BPF_B, 0x06, 0x07), this.cmp(lp + 2 + longOff, BPF_H, swapped));
      const d = and(this.mcmp(lp + 2, BPF_H, 0x8106, 0xff07), this.cmp(lp + 2 + 1 + longOff, BPF_H, swapped));
      return or(or(or(a, b), c), d);
    };
    switch (dir) {
      case 'src': return side(3, 15);
      case 'dst': return side(1, 7);
      case 'and': return and(side(3, 15), side(1, 7));
      default: return or(side(3, 15), side(1, 7));
    }
  }

  /**
   * `protochain v`: follows the IPv6 extension headers (hop-by-hop, routing, fragment,
   * destination options) and AH from the network header until v, "no next header" or another
   * protocol, as libpcap's gen_protochain: a loop (a backward `ja`, bounded by the runner), with
   * the same loads, so truncated chains and libpcap's handling of AH (the AH length replaces
   * the offset instead of adding to it) select the same packets.
   */
  genProtochain(v: number, proto: Proto, t: Token): Cond {
    if (proto === 'default') return or(this.genProtochain(v, 'ip', t), this.genProtochain(v, 'ip6', t));
    if (proto !== 'ip' && proto !== 'ip6') filterError(t, "bad protocol applied for 'protochain'");
    const base = this.off.linkpl + this.off.nl;
    if (isVirtual(base)) filterError(t, "'protochain' not supported with variable length headers");
    const r = this.allocReg(t);
    this.reg--;
    const J = (op: number): number => BPF_JMP | op | BPF_K;
    const LOOP = 0, EXT = 1, AH = 2, END = 3;
    const items: BlockItem[] = [];
    const insn = (code: number, k: number): void => { items.push({ op: 'insn', insn: stmt(code, k) }); };
    const lbl = (id: number): void => { items.push({ op: 'label', id }); };
    let nextFree = 4;
    const cj = (k: number, jt: number | 'T' | 'F', jf: number | 'T' | 'F'): void => { items.push({ op: 'cj', code: J(BPF_JEQ), k, jt, jf }); };
    if (proto === 'ip6') {
      insn(BPF_LD | BPF_B | BPF_ABS, base + 6);
      insn(BPF_LDX | BPF_IMM, 40);
    } else {
      insn(BPF_LD | BPF_B | BPF_ABS, base + 9);
      insn(BPF_LDX | BPF_B | BPF_MSH, base);
    }
    lbl(LOOP);
    let n = nextFree++;
    cj(v, END, n);
    lbl(n);
    n = nextFree++;
    cj(59, END, n); // IPPROTO_NONE
    lbl(n);
    if (proto === 'ip6') {
      for (const ext of [0, 60, 43]) { // hop-by-hop, destination options, routing: then fragment
        n = nextFree++;
        cj(ext, EXT, n);
        lbl(n);
      }
      const ahCheck = nextFree++;
      cj(44, EXT, ahCheck);
      lbl(EXT);
      insn(BPF_LD | BPF_B | BPF_IND, base); // next header
      insn(BPF_ST, r);
      insn(BPF_LD | BPF_B | BPF_IND, base + 1); // header length in 8-byte units, not counting the first 8
      insn(BPF_ALU | BPF_ADD | BPF_K, 1);
      insn(BPF_ALU | BPF_MUL | BPF_K, 8);
      insn(BPF_ALU | BPF_ADD | BPF_X, 0);
      insn(BPF_MISC | BPF_TAX, 0);
      insn(BPF_LD | BPF_MEM, r);
      items.push({ op: 'ja', to: LOOP });
      lbl(ahCheck);
    }
    cj(IPPROTO.ah, AH, END);
    lbl(AH);
    insn(BPF_MISC | BPF_TXA, 0);
    insn(BPF_LD | BPF_B | BPF_IND, base); // next header
    insn(BPF_ST, r);
    insn(BPF_MISC | BPF_TXA, 0);
    insn(BPF_ALU | BPF_ADD | BPF_K, 1);
    insn(BPF_MISC | BPF_TAX, 0);
    insn(BPF_LD | BPF_B | BPF_IND, base); // payload length in 4-byte units, minus 2
    insn(BPF_ALU | BPF_ADD | BPF_K, 2);
    insn(BPF_ALU | BPF_MUL | BPF_K, 4);
    insn(BPF_MISC | BPF_TAX, 0);
    insn(BPF_LD | BPF_MEM, r);
    items.push({ op: 'ja', to: LOOP });
    lbl(END);
    cj(v, 'T', 'F');
    return and(this.linktype(proto === 'ip' ? ETHERTYPE_IP : ETHERTYPE_IPV6, t), { kind: 'block', items });
  }

  genProto(v: number, proto: Proto, t: Token): Cond {
    switch (proto) {
      case 'default': return or(this.ipProto(v, t), this.ip6Proto(v, t));
      case 'link': return this.linktype(v, t);
      case 'ip': return this.ipProto(v, t);
      case 'ip6': return this.ip6Proto(v, t);
      case 'iso': return this.isoProto(v, t);
      case 'isis': return this.isisProto(v, t);
      case 'clnp': filterError(t, "'clnp proto' is not supported");
      case 'decnet': filterError(t, 'DECNET encapsulation is not specifiable');
      case 'arp': case 'rarp': filterError(t, `${proto} does not encapsulate another protocol`);
      default: filterError(t, `'${proto} proto' is bogus`);
    }
  }

  /** The test a protocol keyword alone stands for (`ip`, `tcp`, `isis`...); null when `proto` is none. */
  genProtoAbbrev(proto: Proto, t: Token): Cond | null {
    const ethertypeOrSap = LINK_ABBREV[proto];
    if (ethertypeOrSap !== undefined) return this.linktype(ethertypeOrSap, t);
    const pdus = ISIS_PDUS[proto];
    if (pdus !== undefined) return orAll(pdus.map((p) => this.isisProto(p, t)));
    switch (proto) {
      case 'clnp': case 'esis': case 'isis': return this.isoProto(NLPID[proto], t);
      case 'ip': return this.linktype(ETHERTYPE_IP, t);
      case 'ip6': return this.linktype(ETHERTYPE_IPV6, t);
      case 'arp': return this.linktype(ETHERTYPE_ARP, t);
      case 'rarp': return this.linktype(ETHERTYPE_REVARP, t);
      case 'tcp': case 'udp': case 'sctp': case 'pim': case 'ah': case 'esp':
        return this.genProto(IPPROTO[proto], 'default', t);
      case 'icmp': case 'igmp': case 'igrp': return this.ipProto(IPPROTO[proto], t);
      case 'vrrp': case 'carp': return this.ipProto(IPPROTO.vrrp, t);
      case 'icmp6': return this.ip6Proto(IPPROTO.icmp6, t);
      case 'link': filterError(t, 'link layer applied in wrong context');
      default: return null;
    }
  }

  genBroadcast(proto: Proto, t: Token): Cond {
    if ((proto === 'default' || proto === 'link') && this.off.ppp) filterError(t, 'not a broadcast link');
    if (proto === 'default' || proto === 'link') return this.ehostBytes(0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    if (proto === 'ip') {
      if (this.netmask === 0xffffffff) filterError(t, "netmask not known, so 'ip broadcast' not supported");
      const hostmask = ~this.netmask >>> 0;
      const nl = this.off.linkpl + this.off.nl;
      return and(this.linktype(ETHERTYPE_IP, t), or(this.mcmp(nl + 16, BPF_W, 0, hostmask), this.mcmp(nl + 16, BPF_W, hostmask, hostmask)));
    }
    filterError(t, 'only link-layer/IP broadcast filters supported');
  }

  genMulticast(proto: Proto, t: Token): Cond {
    const nl = this.off.linkpl + this.off.nl;
    if ((proto === 'default' || proto === 'link') && this.off.ppp) {
      filterError(t, 'link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel');
    }
    if (proto === 'default' || proto === 'link') return leaf([stmt(BPF_LD | BPF_B | BPF_ABS, 0)], BPF_JMP | BPF_JSET | BPF_K, 1);
    if (proto === 'ip') return and(this.linktype(ETHERTYPE_IP, t), leaf([stmt(BPF_LD | BPF_B | BPF_ABS, nl + 16)], BPF_JMP | BPF_JGE | BPF_K, 224));
    if (proto === 'ip6') return and(this.linktype(ETHERTYPE_IPV6, t), this.cmp(nl + 24, BPF_B, 255));
    filterError(t, 'link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel');
  }

  /**
   * `geneve [vni]`: UDP to port 6081 over IPv4 (not a fragment) or IPv6, Geneve version 0, the
   * VNI if given. After it, the inner frame's offsets live in three scratch registers (libpcap's
   * layout): the protocol type (Geneve's field, or the inner Ethernet type for 0x6558), the
   * inner frame, and its payload.
   */
  genGeneve(vni: number | undefined, t: Token): Cond {
    if (vni !== undefined && vni > 0xffffff) filterError(t, `Geneve VNI ${vni} greater than maximum 16777215`);
    const o = this.off;
    const nl = o.linkpl + o.nl;
    const geneveHere = (v6: boolean): Cond => {
      // Fields of the Geneve header, 8 bytes after the start of the UDP header.
      const field = (off: number, size: number, value: number, mask: number): Cond => {
        const load = v6 ? [stmt(BPF_LD | size | BPF_ABS, nl + 40 + 8 + off)] : [stmt(BPF_LDX | BPF_B | BPF_MSH, nl), stmt(BPF_LD | size | BPF_IND, nl + 8 + off)];
        return leaf([...load, stmt(BPF_ALU | BPF_AND | BPF_K, mask)], BPF_JMP | BPF_JEQ | BPF_K, value);
      };
      let c = and(this.portop(IPPROTO.udp, 'dst', GENEVE_PORT, GENEVE_PORT, v6, t), field(0, BPF_B, 0, 0xc0));
      if (vni !== undefined) c = and(c, field(4, BPF_W, (vni << 8) >>> 0, 0xffffff00));
      return c;
    };
    if (this.spareReg < 0) this.spareReg = this.allocReg(t);
    const rType = this.allocReg(t), rFrame = this.allocReg(t), rPayload = this.allocReg(t);
    const offsetsBlock = (v6: boolean): Cond => {
      const items: BlockItem[] = [];
      const insn = (code: number, k = 0): void => { items.push({ op: 'insn', insn: stmt(code, k) }); };
      // A = length of the IP header, then the offset of the Geneve header.
      const r = isVirtual(nl) ? virtualReg(nl) : -1, k = nl % VIRTUAL_UNIT;
      if (v6) {
        insn(BPF_LD | BPF_IMM, 40);
      } else if (r < 0) {
        insn(BPF_LDX | BPF_B | BPF_MSH, nl);
        insn(BPF_MISC | BPF_TXA);
      } else {
        insn(BPF_LDX | BPF_MEM, r);
        insn(BPF_LD | BPF_B | BPF_IND, k);
        insn(BPF_ALU | BPF_AND | BPF_K, 0xf);
        insn(BPF_ALU | BPF_LSH | BPF_K, 2);
      }
      if (r >= 0) {
        insn(BPF_LDX | BPF_MEM, r);
        insn(BPF_ALU | BPF_ADD | BPF_X);
      }
      insn(BPF_ALU | BPF_ADD | BPF_K, k + 8);
      insn(BPF_MISC | BPF_TAX); // X = Geneve header
      insn(BPF_ALU | BPF_ADD | BPF_K, 2);
      insn(BPF_ST, rType); // its protocol type field
      insn(BPF_LD | BPF_B | BPF_IND, 0);
      insn(BPF_ALU | BPF_AND | BPF_K, 0x3f); // options length in 4-byte words
      insn(BPF_ALU | BPF_MUL | BPF_K, 4);
      insn(BPF_ALU | BPF_ADD | BPF_K, 8);
      insn(BPF_ALU | BPF_ADD | BPF_X);
      insn(BPF_ST, rFrame); // the inner frame
      insn(BPF_LD | BPF_H | BPF_IND, 2);
      insn(BPF_LDX | BPF_MEM, rFrame);
      items.push({ op: 'cj', code: BPF_JMP | BPF_JEQ | BPF_K, k: ETHERTYPE_TEB, jt: 0, jf: 1 });
      items.push({ op: 'label', id: 0 });
      // An inner Ethernet frame: its type field, then its payload.
      insn(BPF_MISC | BPF_TXA);
      insn(BPF_ALU | BPF_ADD | BPF_K, 12);
      insn(BPF_ST, rType);
      insn(BPF_ALU | BPF_ADD | BPF_K, 2);
      insn(BPF_MISC | BPF_TAX);
      items.push({ op: 'label', id: 1 });
      insn(BPF_STX, rPayload);
      items.push({ op: 'ja', to: 'T' });
      return { kind: 'block', items };
    };
    const c = or(and(geneveHere(false), offsetsBlock(false)), and(geneveHere(true), offsetsBlock(true)));
    o.linktype = VIRTUAL_UNIT * (rType + 1);
    o.linkhdr = VIRTUAL_UNIT * (rFrame + 1);
    o.linkpl = VIRTUAL_UNIT * (rPayload + 1);
    o.nl = 0;
    o.nlNosnap = 0;
    o.mplsDepth = 0;
    o.ppp = false;
    return c;
  }

  /** `pppoed` (discovery) and `pppoes [session]`: after pppoes, the link layer is PPP 6 bytes further. */
  genPppoe(kind: string, session: number | undefined, t: Token): Cond {
    if (kind === 'pppoed') return this.linktype(ETHERTYPE_PPPOED, t);
    if (session !== undefined && session > 0xffff) filterError(t, `PPPoE session number ${session} greater than maximum 65535`);
    const o = this.off;
    let c = this.linktype(ETHERTYPE_PPPOES, t);
    if (session !== undefined) c = and(c, this.mcmp(o.linkpl, BPF_W, session, 0xffff));
    o.linkhdr = o.linkpl + 6;
    o.linktype = o.linkhdr;
    o.linkpl = o.linkhdr + 2;
    o.nl = 0;
    o.nlNosnap = 0;
    o.ppp = true;
    return c;
  }

  genVlan(id: number | undefined, t: Token): Cond {
    if (this.off.ppp) filterError(t, 'no VLAN support for PPP');
    if (this.off.mplsDepth > 0) filterError(t, "'vlan' after 'mpls' is not supported");
    if (id !== undefined && id > 4095) filterError(t, `VLAN tag ${id} greater than maximum 4095`);
    const o = this.off;
    let c = or(or(this.cmp(o.linktype, BPF_H, 0x8100), this.cmp(o.linktype, BPF_H, 0x88a8)), this.cmp(o.linktype, BPF_H, 0x9100));
    if (id !== undefined) c = and(c, this.mcmp(o.linkpl + o.nl, BPF_H, id, 0x0fff));
    o.linktype += 4;
    o.linkpl += 4;
    return c;
  }

  genMpls(label: number | undefined, t: Token): Cond {
    if (label !== undefined && label > 0xfffff) filterError(t, `MPLS label ${label} greater than maximum 1048575`);
    const o = this.off;
    const nl = o.linkpl + o.nl;
    let c = o.mplsDepth > 0 ? this.mcmp(nl - 2, BPF_B, 0, 1) : this.linktype(ETHERTYPE_MPLS, t);
    if (label !== undefined) c = and(c, this.mcmp(nl, BPF_W, (label << 12) >>> 0, 0xfffff000));
    o.nl += 4;
    o.mplsDepth++;
    return c;
  }

  /** Compares 6 bytes at `off` of the link header (4 at off+2 first, then 2 at off, as libpcap). */
  ehostBytes(off: number, mac: number[]): Cond {
    const w = ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0;
    return and(this.cmp(off + 2, BPF_W, w), this.cmp(off, BPF_H, (mac[0]! << 8) | mac[1]!));
  }

  genEhost(mac: number[], dir: Dir, t: Token): Cond {
    switch (dir) {
      case 'src': return this.ehostBytes(6, mac);
      case 'dst': return this.ehostBytes(0, mac);
      case 'and': return and(this.ehostBytes(6, mac), this.ehostBytes(0, mac));
      case 'default': case 'or': return or(this.ehostBytes(6, mac), this.ehostBytes(0, mac));
    }
    filterError(t, 'bad direction for an Ethernet address');
  }

  genEcode(t: Token, q: Qual): Cond {
    if (this.off.ppp) filterError(t, 'ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel');
    if ((q.addr === 'host' || q.addr === 'default') && q.proto === 'link') return this.genEhost(parseMac(t.text), q.dir, t);
    filterError(t, 'ethernet address used in non-ether expression');
  }

  hostop(addr: number, mask: number, dir: Dir, srcOff: number, dstOff: number): Cond {
    const nl = this.off.linkpl + this.off.nl;
    const src = this.mcmp(nl + srcOff, BPF_W, addr, mask);
    const dst = this.mcmp(nl + dstOff, BPF_W, addr, mask);
    switch (dir) {
      case 'src': return src;
      case 'dst': return dst;
      case 'and': return and(src, dst);
      default: return or(src, dst);
    }
  }

  genHost(addr: number, mask: number, q: Qual, t: Token): Cond {
    const typ = q.addr === 'net' ? 'net' : 'host';
    switch (q.proto) {
      case 'default': {
        const ip = this.genHost(addr, mask, { ...q, proto: 'ip' }, t);
        if (this.off.mplsDepth > 0) return ip;
        return or(or(ip, this.genHost(addr, mask, { ...q, proto: 'arp' }, t)), this.genHost(addr, mask, { ...q, proto: 'rarp' }, t));
      }
      case 'ip': return and(this.linktype(ETHERTYPE_IP, t), this.hostop(addr, mask, q.dir, 12, 16));
      case 'arp': return and(this.linktype(ETHERTYPE_ARP, t), this.hostop(addr, mask, q.dir, 14, 24));
      case 'rarp': return and(this.linktype(ETHERTYPE_REVARP, t), this.hostop(addr, mask, q.dir, 14, 24));
      case 'decnet': return and(this.linktype(ETHERTYPE_DN, t), this.dnhostop(addr, q.dir));
      case 'iso': case 'esis': case 'clnp': filterError(t, 'ISO host filtering not implemented');
      case 'atalk': filterError(t, 'AppleTalk host filtering not implemented');
      case 'link': filterError(t, `link-layer modifier applied to ${typ}`);
      case 'ip6': filterError(t, `'ip6' modifier applied to ip ${typ}`);
      default: filterError(t, `'${q.proto}' modifier applied to ${typ}`);
    }
  }

  genHost6(words: number[], maskWords: number[], q: Qual, t: Token): Cond {
    const typ = q.addr === 'net' ? 'net' : 'host';
    if (q.proto === 'ip') filterError(t, `'ip' modifier applied to ip6 ${typ}`);
    if (q.proto !== 'default' && q.proto !== 'ip6') filterError(t, `'${q.proto === 'link' ? 'link-layer' : q.proto}' modifier applied to ip6 ${typ}`);
    const nl = this.off.linkpl + this.off.nl;
    const side = (base: number): Cond => {
      const parts: Cond[] = [];
      for (let w = 0; w < 4; w++) if (maskWords[w] !== 0) parts.push(this.mcmp(nl + base + 4 * w, BPF_W, words[w]!, maskWords[w]!));
      return parts.length === 0 ? TRUE : andAll(parts);
    };
    let c: Cond;
    switch (q.dir) {
      case 'src': c = side(8); break;
      case 'dst': c = side(24); break;
      case 'and': c = and(side(8), side(24)); break;
      default: c = or(side(8), side(24)); break;
    }
    return and(this.linktype(ETHERTYPE_IPV6, t), c);
  }

  portop(proto: number | undefined, dir: Dir, lo: number, hi: number, v6: boolean, t: Token): Cond {
    const nl = this.off.linkpl + this.off.nl;
    const atom = (off: number): Cond => {
      const load = v6 ? [stmt(BPF_LD | BPF_H | BPF_ABS, nl + 40 + off)] : [stmt(BPF_LDX | BPF_B | BPF_MSH, nl), stmt(BPF_LD | BPF_H | BPF_IND, nl + off)];
      if (lo === hi) return leaf(load, BPF_JMP | BPF_JEQ | BPF_K, lo);
      const load2 = load.map((s) => ({ ...s }));
      return and(leaf(load, BPF_JMP | BPF_JGE | BPF_K, lo), not(leaf(load2, BPF_JMP | BPF_JGT | BPF_K, hi)));
    };
    let ports: Cond;
    switch (dir) {
      case 'src': ports = atom(0); break;
      case 'dst': ports = atom(2); break;
      case 'and': ports = and(atom(0), atom(2)); break;
      default: ports = or(atom(0), atom(2)); break;
    }
    const protoOff = v6 ? nl + 6 : nl + 9;
    const protos = proto === undefined ? [IPPROTO.tcp, IPPROTO.udp, IPPROTO.sctp] : [proto];
    const pc = orAll(protos.map((p) => this.cmp(protoOff, BPF_B, p)));
    const l3 = this.linktype(v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP, t);
    return v6 ? and(l3, and(pc, ports)) : and(l3, and(pc, and(this.notFrag(), ports)));
  }

  genPort(lo: number, hi: number, q: Qual, t: Token, realProto?: number): Cond {
    let proto: number | undefined;
    if (q.proto === 'tcp' || q.proto === 'udp' || q.proto === 'sctp') proto = IPPROTO[q.proto];
    else if (q.proto !== 'default') filterError(t, `illegal qualifier of '${q.addr}'`);
    if (realProto !== undefined) proto = realProto;
    if (lo > 65535 || hi > 65535) filterError(t, `illegal port number ${Math.max(lo, hi)} > 65535`);
    if (lo > hi) [lo, hi] = [hi, lo];
    return or(this.portop(proto, q.dir, lo, hi, false, t), this.portop(proto, q.dir, lo, hi, true, t));
  }

  genNcode(text: string | null, v: number, q: Qual, t: Token): Cond {
    let vlen = 32;
    if (q.proto === 'decnet' && (q.addr === 'default' || q.addr === 'host' || q.addr === 'net')) {
      // DECnet addresses are area.node (6 and 10 bits); libpcap reads the first two numbers only.
      if (text !== null) {
        const m = /^(\d+)\.(\d+)/.exec(text);
        if (m === null) filterError(t, `malformed decnet address '${text}'`);
        v = ((Number(m[1]) << 10) & 0xfc00) | (Number(m[2]) & 0x3ff);
      }
      return this.genHost(v, 0xffffffff, q, t);
    }
    if (text !== null && (q.addr === 'proto' || q.addr === 'protochain')) filterError(t, `'${q.addr}' modifier applied to ip host`);
    if (text !== null) {
      const r = parseV4(text);
      if (r === null) filterError(t, `invalid IPv4 address '${text}'`);
      v = r.value;
      vlen = r.bits;
    }
    switch (q.addr) {
      case 'default': case 'host': case 'net': {
        if (q.proto === 'link') filterError(t, 'illegal link layer address');
        let mask = 0xffffffff;
        if (text === null && q.addr === 'net') {
          while (v !== 0 && (v & 0xff000000) === 0) {
            v = (v << 8) >>> 0;
            mask = (mask << 8) >>> 0;
          }
        } else {
          v = vlen === 0 ? 0 : (v << (32 - vlen)) >>> 0;
          mask = vlen === 0 ? 0 : (mask << (32 - vlen)) >>> 0;
        }
        return this.genHost(v, mask, q, t);
      }
      case 'port':
        if (q.proto !== 'default' && q.proto !== 'tcp' && q.proto !== 'udp' && q.proto !== 'sctp') filterError(t, "illegal qualifier of 'port'");
        if (v > 65535) filterError(t, `illegal port number ${v} > 65535`);
        return this.genPort(v, v, q, t);
      case 'portrange':
        if (q.proto !== 'default' && q.proto !== 'tcp' && q.proto !== 'udp' && q.proto !== 'sctp') filterError(t, "illegal qualifier of 'portrange'");
        if (v > 65535) filterError(t, `illegal port number ${v} > 65535`);
        return this.genPort(v, v, q, t);
      case 'proto':
        return this.genProto(v, q.proto, t);
      case 'protochain':
        return this.genProtochain(v, q.proto, t);
      default:
        filterError(t, `'${q.addr}' requires a name`);
    }
  }

  genMcode(t: Token, maskTok: Token | null, masklen: number, q: Qual): Cond {
    const n = parseV4(t.text);
    if (n === null) filterError(t, `invalid IPv4 address '${t.text}'`);
    const addr = n.bits === 0 ? 0 : (n.value << (32 - n.bits)) >>> 0;
    let mask: number;
    let shown: string;
    if (maskTok !== null) {
      const m = parseV4(maskTok.text);
      if (m === null) filterError(maskTok, `invalid IPv4 address '${maskTok.text}'`);
      mask = m.bits === 0 ? 0 : (m.value << (32 - m.bits)) >>> 0;
      shown = `${t.text} mask ${maskTok.text}`;
    } else {
      if (masklen > 32) filterError(t, 'mask length must be <= 32');
      mask = masklen === 0 ? 0 : (0xffffffff << (32 - masklen)) >>> 0;
      shown = `${t.text}/${masklen}`;
    }
    if ((addr & ~mask) !== 0) filterError(t, `non-network bits set in "${shown}"`);
    if (q.addr !== 'net') filterError(t, 'Mask syntax for networks only');
    return this.genHost(addr, mask, q, t);
  }

  genMcode6(t: Token, masklen: number, q: Qual): Cond {
    if (!isIPv6Text(t.text)) filterError(t, `invalid ip6 address ${t.text}`);
    if (masklen > 128) filterError(t, 'mask length must be <= 128');
    const bytes = parseV6(t.text);
    const words: number[] = [];
    const maskWords: number[] = [];
    for (let w = 0; w < 4; w++) {
      words.push(((bytes[4 * w]! << 24) | (bytes[4 * w + 1]! << 16) | (bytes[4 * w + 2]! << 8) | bytes[4 * w + 3]!) >>> 0);
      const bits = Math.max(0, Math.min(32, masklen - 32 * w));
      maskWords.push(bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
      if ((words[w]! & ~maskWords[w]!) !== 0) filterError(t, `non-network bits set in "${t.text}/${masklen}"`);
    }
    if (q.addr === 'default' || q.addr === 'host') {
      if (masklen !== 128) filterError(t, 'Mask syntax for networks only');
    } else if (q.addr !== 'net') {
      filterError(t, 'invalid qualifier against IPv6 address');
    }
    return this.genHost6(words, maskWords, q, t);
  }

  genScode(t: Token, q: Qual): Cond {
    const name = t.text;
    switch (q.addr) {
      case 'net': filterError(t, `unknown network '${name}'`);
      case 'default': case 'host':
        if (q.proto === 'link') filterError(t, `unknown ether host '${name}'`);
        filterError(t, `unknown host '${name}' (host names are not resolved; use an address)`);
      case 'port': {
        if (q.proto !== 'default' && q.proto !== 'tcp' && q.proto !== 'udp' && q.proto !== 'sctp') filterError(t, "illegal qualifier of 'port'");
        const { port, proto } = this.lookupPort(name, q, t, 'port');
        return this.genPort(port, port, q, t, proto);
      }
      case 'portrange': {
        if (q.proto !== 'default' && q.proto !== 'tcp' && q.proto !== 'udp' && q.proto !== 'sctp') filterError(t, "illegal qualifier of 'portrange'");
        const m = /^([^-]+)-([^-]+)$/.exec(name);
        if (m === null) filterError(t, `unknown port in range '${name}'`);
        const a = this.lookupPort(m[1]!, q, t, 'range');
        const b = this.lookupPort(m[2]!, q, t, 'range');
        const proto = a.proto !== undefined && a.proto === b.proto ? a.proto : undefined;
        return this.genPort(a.port, b.port, q, t, proto);
      }
      case 'protochain': {
        const v = PROTOCOL_NAMES[name];
        if (v === undefined) filterError(t, `unknown protocol: ${name}`);
        return this.genProtochain(v, q.proto, t);
      }
      case 'proto': {
        let v: number | undefined;
        if (q.proto === 'link') {
          v = ETHERTYPE_NAMES[name] ?? LLC_NAMES[name];
        } else if (q.proto === 'default' || q.proto === 'ip' || q.proto === 'ip6') {
          v = PROTOCOL_NAMES[name];
        } else if (q.proto === 'iso') {
          v = name === 'clnp' || name === 'esis' || name === 'isis' ? NLPID[name] : undefined;
          if (v === undefined) filterError(t, `unknown osi proto '${name}'`);
        }
        if (v === undefined) filterError(t, `unknown protocol: ${name}`);
        return this.genProto(v, q.proto, t);
      }
      default:
        filterError(t, `'${q.addr}' requires a name that this compiler cannot resolve`);
    }
  }

  lookupPort(name: string, q: Qual, t: Token, what: 'port' | 'range'): { port: number; proto?: number } {
    if (/^\d+$/.test(name)) {
      const v = Number(name);
      if (v > 65535) filterError(t, `illegal port number ${v} > 65535`);
      return { port: v };
    }
    const e = services().get(name);
    if (e === undefined) filterError(t, what === 'port' ? `unknown port '${name}'` : `unknown port in range '${name}'`);
    const want = q.proto;
    if (want === 'tcp' || want === 'udp' || want === 'sctp') {
      const p = e[want];
      if (p === undefined) {
        const other = e.tcp !== undefined ? 'tcp' : e.udp !== undefined ? 'udp' : 'sctp';
        filterError(t, `port '${name}' is ${other}`);
      }
      return { port: p };
    }
    const tcp = e.tcp, udp = e.udp;
    if (tcp !== undefined && udp !== undefined && tcp === udp) return { port: tcp };
    if (tcp !== undefined && udp === undefined) return { port: tcp, proto: IPPROTO.tcp };
    if (udp !== undefined && tcp === undefined) return { port: udp, proto: IPPROTO.udp };
    if (tcp !== undefined) return { port: tcp };
    return { port: e.sctp ?? 0, proto: IPPROTO.sctp };
  }
}

export function foldAlu(op: number, a: number, b: number): number {
  switch (op) {
    case BPF_ADD: return (a + b) >>> 0;
    case BPF_SUB: return (a - b) >>> 0;
    case BPF_MUL: return Math.imul(a, b) >>> 0;
    case BPF_DIV: return b === 0 ? 0 : Math.floor(a / b) >>> 0;
    case BPF_MOD: return b === 0 ? 0 : (a % b) >>> 0;
    case BPF_AND: return (a & b) >>> 0;
    case BPF_OR: return (a | b) >>> 0;
    case BPF_XOR: return (a ^ b) >>> 0;
    case BPF_LSH: return b >= 32 ? 0 : (a << b) >>> 0;
    default: return b >= 32 ? 0 : a >>> b; // BPF_RSH
  }
}

/** libpcap's __pcap_atoin: 1 to 4 dotted parts; value and number of bits given. */
export function parseV4(text: string): { value: number; bits: number } | null {
  const parts = text.split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  let value = 0;
  for (const p of parts) {
    if (!/^\d+$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return { value: value >>> 0, bits: 8 * parts.length };
}

export function parseMac(text: string): number[] {
  if (/^[0-9A-Fa-f]{12}$/.test(text)) return [0, 2, 4, 6, 8, 10].map((i) => parseInt(text.slice(i, i + 2), 16));
  if (/^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/.test(text)) {
    const h = text.replace(/\./g, '');
    return [0, 2, 4, 6, 8, 10].map((i) => parseInt(h.slice(i, i + 2), 16));
  }
  return text.split(/[:.-]/).map((b) => parseInt(b, 16));
}

/** 16 bytes of an IPv6 address (text already checked with isIPv6Text). */
export function parseV6(text: string): number[] {
  let s = text;
  // Embedded IPv4 tail.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4 !== null) {
    const b = v4[1]!.split('.').map(Number);
    s = s.slice(0, v4.index) + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  const out: number[] = [];
  for (const g of groups) {
    const v = parseInt(g, 16);
    out.push(v >> 8, v & 0xff);
  }
  return out;
}

/**
 * Compiles a pcap-filter expression into a classic BPF program. An empty expression accepts
 * everything. Throws NetmapError EINVAL (naming the position) on a bad expression.
 */
