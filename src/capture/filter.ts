/**
 * Compiler of the pcap-filter language (tcpdump expressions) into classic BPF, for Ethernet
 * captures (link type 1, tags inline as on netmap ports and in files).
 *
 * It follows libpcap's grammar and code generator for Ethernet: host/net/port/portrange with
 * src/dst, ether host/src/dst/proto/broadcast/multicast, ip ip6 arp rarp tcp udp icmp icmp6 sctp
 * igmp pim vrrp ah esp, the link-level and OSI protocols (atalk aarp decnet lat sca mop iso stp
 * ipx netbeui clnp esis isis and the IS-IS PDU kinds, llc), decnet hosts, byte, proto N,
 * protochain N (a bounded loop), less/greater/len, nested vlan [id], mpls [label], pppoes
 * [session] and geneve [vni] (each moves the offsets of everything parsed after it; after geneve
 * they live in scratch registers), arithmetic with proto[expr:size] accessors, named constants,
 * and/or/not with qualifier carry-over (`tcp dst port 21 or 20`). Constants are folded as
 * libpcap's optimizer folds them. Every expression of libpcap's and tcpdump's test tables that
 * tcpdump 4.99 / libpcap 1.10 compiles on Ethernet compiles here and selects the same records
 * (test/capture/filter-oracle.test.ts). Host and network names are not resolved (no DNS): use
 * addresses.
 *
 * This file is the grammar (libpcap's grammar.y): it reads filter-lexer.ts's tokens and calls the
 * generators of filter-gencode.ts (libpcap's gencode.c) for each primitive; filter-codegen.ts
 * optimizes the resulting tests and lays out the program.
 *
 * Errors are NetmapError EINVAL naming the position in the expression.
 */
import { fail, NetmapError } from '../errors.js';
import {
  type BpfInsn, type BpfProgram, type PacketFilter, stmt, MAXIMUM_SNAPLEN, looksLikeDddProgram, parseDddProgram,
  BPF_LD, BPF_ST, BPF_ALU, BPF_JMP, BPF_MISC, BPF_W, BPF_MEM, BPF_LEN, BPF_IMM, BPF_K, BPF_X, BPF_JEQ, BPF_JGT,
  BPF_JGE, BPF_AND, BPF_NEG, BPF_TAX,
} from './bpf.js';
import { type Cond, TRUE, FALSE, loadsThenTrue, and, or, not, andAll, leaf, generateProgram } from './filter-codegen.js';
import { type Token, tokenize } from './filter-lexer.js';
import { type Proto, type Dir, type Addr, type Qual, type Arith, QERR, PNAMES, UNSUPPORTED, CodeGen, filterError } from './filter-gencode.js';
import { compileProgram } from './jit.js';
import { interpretProgram } from './interp.js';

export interface CompileOptions {
  /** Value returned for accepted packets (tcpdump -s; default 262144). */
  snaplen?: number;
  /** Link type of the packets (only 1, Ethernet, is supported for non-empty expressions). */
  linktype?: number;
  /** IPv4 netmask for `ip broadcast` (default 0, as tcpdump uses on files; 0xffffffff = unknown). */
  netmask?: number;
  /** Jump threading and dead-test removal, as libpcap's optimizer (default true; tcpdump -O turns it off). */
  optimize?: boolean;
}

class ParseFailure extends NetmapError {}

/** The grammar (libpcap's grammar.y): reads the tokens and calls the generators of CodeGen. */
class Parser {
  private readonly toks: Token[];
  private i = 0;
  private lastQ: Qual | null = QERR;
  private readonly gen: CodeGen;

  /** `netmask` and `fold`: see CodeGen. */
  constructor(private readonly expr: string, netmask: number, fold = true) {
    this.toks = tokenize(expr);
    this.gen = new CodeGen(netmask, fold);
  }

  parseProgram(): Cond {
    if (this.peek().kind === 'eof') return TRUE;
    const c = this.parseExpr();
    if (this.peek().kind !== 'eof') this.syntax();
    if (this.gen.spareReg >= 0) this.gen.resolveVirtual(c);
    return c;
  }

  // ---- token helpers ----

  // The lexer ends every token list with an 'eof' token, and `i` never moves past it.
  private peek(n = 0): Token {
    return this.toks[Math.min(this.i + n, this.toks.length - 1)]!;
  }
  private next(): Token {
    const t = this.toks[this.i]!;
    if (this.i < this.toks.length - 1) this.i++;
    return t;
  }
  private isKw(t: Token, ...words: string[]): boolean {
    return t.kind === 'kw' && words.includes(t.text);
  }
  private isOp(t: Token, ...ops: string[]): boolean {
    return t.kind === 'op' && ops.includes(t.text);
  }
  private expectOp(op: string): void {
    if (!this.isOp(this.peek(), op)) this.syntax(`expected '${op}'`);
    this.next();
  }
  private syntax(what = 'syntax error'): never {
    const t = this.peek();
    const near = t.kind === 'eof' ? 'at the end of the expression' : `at position ${t.pos} near '${this.expr.slice(t.pos, t.pos + 20).split(/\s/)[0]}'`;
    throw new ParseFailure('EINVAL', `filter: ${what} ${near}`);
  }

  /** Runs `fn`; on a syntax failure restores the parser state and returns undefined. */
  private attempt<T>(fn: () => T): { value: T } | { failure: ParseFailure; at: number } {
    const saved = { i: this.i, off: { ...this.gen.off }, lastQ: this.lastQ, reg: this.gen.reg, spareReg: this.gen.spareReg };
    try {
      return { value: fn() };
    } catch (e) {
      if (!(e instanceof ParseFailure)) throw e;
      const at = this.i;
      this.i = saved.i;
      this.gen.off = saved.off;
      this.lastQ = saved.lastQ;
      this.gen.reg = saved.reg;
      this.gen.spareReg = saved.spareReg;
      return { failure: e, at };
    }
  }

  // ---- boolean structure ----

  private parseExpr(): Cond {
    let left = this.parseTerm();
    for (;;) {
      const t = this.peek();
      if (!this.isKw(t, 'and', 'or')) return left;
      this.next();
      const right = this.parseTermOrId();
      left = t.text === 'and' ? and(left, right) : or(left, right);
    }
  }

  /** After and/or: a term, or a bare value that reuses the last qualifiers. */
  private parseTermOrId(): Cond {
    const t = this.peek();
    if (this.isKw(t, 'not')) {
      this.next();
      return not(this.parseTermOrId());
    }
    if (this.startsBareValue()) return this.parseId(this.requireQual(t));
    if (this.isOp(t, '(')) {
      const q = this.lastQ;
      if (q !== null && this.startsBareValue(1)) {
        const r = this.attempt(() => {
          this.next();
          const c = this.parsePid(q);
          this.expectOp(')');
          return c;
        });
        if ('value' in r) return r.value;
      }
    }
    return this.parseTerm();
  }

  private requireQual(t: Token): Qual {
    if (this.lastQ === null) {
      this.i = this.toks.indexOf(t);
      this.syntax();
    }
    return this.lastQ;
  }

  /** True when the token at +n starts a bare value (not the left side of a relation). */
  private startsBareValue(n = 0): boolean {
    const t = this.peek(n);
    if (t.kind === 'v4' || t.kind === 'v6' || t.kind === 'mac' || t.kind === 'id') return true;
    if (t.kind === 'num') {
      const u = this.peek(n + 1);
      return !(u.kind === 'op' && ['+', '-', '*', '/', '%', '&', '|', '^', '<<', '>>', '=', '!=', '<', '<=', '>', '>='].includes(u.text));
    }
    return false;
  }

  /** `( pid )` contents: bare values joined by and/or, all with qualifiers q. */
  private parsePid(q: Qual): Cond {
    let left = this.parseBare(q);
    while (this.isKw(this.peek(), 'and', 'or')) {
      const op = this.next().text;
      const right = this.parseBare(q);
      left = op === 'and' ? and(left, right) : or(left, right);
    }
    return left;
  }

  private parseBare(q: Qual): Cond {
    const t = this.peek();
    if (this.isKw(t, 'not')) {
      this.next();
      return not(this.parseBare(q));
    }
    if (this.isOp(t, '(')) {
      this.next();
      const c = this.parsePid(q);
      this.expectOp(')');
      return c;
    }
    if (!this.startsBareValue()) this.syntax();
    return this.parseId(q);
  }

  private parseTerm(): Cond {
    if (this.isKw(this.peek(), 'not')) {
      this.next();
      return not(this.parseTerm());
    }
    return this.parseRterm();
  }

  private parseRterm(): Cond {
    const t = this.peek();
    if (this.isOp(t, '(')) {
      // A parenthesised arithmetic value compared with something, or a parenthesised expression.
      const rel = this.attempt(() => this.parseRelation());
      if ('value' in rel) return rel.value;
      const before = this.lastQ;
      const grp = this.attempt(() => {
        this.next();
        const c = this.parseExpr();
        this.expectOp(')');
        return c;
      });
      if ('value' in grp) {
        this.lastQ = before;
        return grp.value;
      }
      throw rel.at > grp.at ? rel.failure : grp.failure;
    }
    if (t.kind === 'kw') {
      if (UNSUPPORTED.has(t.text)) filterError(t, `'${this.expr.slice(t.pos).split(/[\s[(]/)[0]}' is not supported by this compiler`);
      if (PNAMES.has(t.text)) {
        const u = this.peek(1);
        if (this.isOp(u, '[')) return this.parseRelationQ();
        if (this.isKw(u, 'src', 'dst', 'host', 'net', 'port', 'portrange', 'proto', 'protochain', 'gateway')) return this.parseHeadId();
        if (this.isKw(u, 'broadcast', 'multicast')) {
          this.next();
          this.next();
          this.lastQ = QERR;
          return u.text === 'broadcast' ? this.gen.genBroadcast(t.text as Proto, t) : this.gen.genMulticast(t.text as Proto, t);
        }
        this.next();
        this.lastQ = QERR;
        return this.gen.genProtoAbbrev(t.text as Proto, t) ?? this.syntax();
      }
      switch (t.text) {
        case 'src': case 'dst': case 'host': case 'net': case 'port': case 'portrange': case 'proto': case 'protochain':
          return this.parseHeadId();
        case 'broadcast': case 'multicast':
          this.next();
          this.lastQ = QERR;
          return t.text === 'broadcast' ? this.gen.genBroadcast('default', t) : this.gen.genMulticast('default', t);
        case 'less': case 'greater': {
          this.next();
          const n = this.peek();
          if (n.kind !== 'num') this.syntax();
          this.next();
          this.lastQ = QERR;
          const l = leaf([stmt(BPF_LD | BPF_W | BPF_LEN, 0)], BPF_JMP | (t.text === 'less' ? BPF_JGT : BPF_JGE) | BPF_K, n.value);
          return t.text === 'less' ? not(l) : l;
        }
        case 'llc': {
          this.next();
          this.lastQ = QERR;
          const kind = this.peek();
          return this.gen.genLlc(t, kind.kind === 'id' || this.isKw(kind, 'rnr') ? this.next() : null);
        }
        case 'byte': {
          this.next();
          this.lastQ = QERR;
          const index = this.peek();
          if (index.kind !== 'num') this.syntax();
          this.next();
          const op = this.peek();
          if (!this.isOp(op, '=', '<', '>', '|', '&')) this.syntax();
          this.next();
          const value = this.peek();
          if (value.kind !== 'num') this.syntax();
          this.next();
          return this.gen.genByte(index.value, op.text, value.value);
        }
        case 'pppoed': case 'pppoes': {
          this.next();
          const n = t.text === 'pppoes' ? this.parseOptionalPnum() : undefined;
          this.lastQ = QERR;
          if (this.gen.off.mplsDepth > 0) filterError(t, 'unsupported protocol over mpls');
          return this.gen.genPppoe(t.text, n, t);
        }
        case 'geneve': {
          this.next();
          const n = this.parseOptionalPnum();
          this.lastQ = QERR;
          return this.gen.genGeneve(n, t);
        }
        case 'vlan': case 'mpls': {
          this.next();
          const n = this.parseOptionalPnum();
          this.lastQ = QERR;
          return t.text === 'vlan' ? this.gen.genVlan(n, t) : this.gen.genMpls(n, t);
        }
        case 'len':
          return this.parseRelationQ();
        default:
          this.syntax();
      }
    }
    if (t.kind === 'num' || this.isOp(t, '-')) return this.parseRelationQ();
    this.syntax();
  }

  private parseOptionalPnum(): number | undefined {
    const t = this.peek();
    if (t.kind === 'num') {
      this.next();
      return t.value;
    }
    if (this.isOp(t, '(')) {
      let depth = 0;
      while (this.isOp(this.peek(depth), '(')) depth++;
      if (this.peek(depth).kind === 'num' && this.isOp(this.peek(depth + 1), ')')) {
        for (let k = 0; k < depth; k++) this.next();
        const v = this.next().value;
        for (let k = 0; k < depth; k++) this.expectOp(')');
        return v;
      }
    }
    return undefined;
  }

  private parseRelationQ(): Cond {
    return this.parseRelation();
  }

  // ---- head id ----

  private parseHeadId(): Cond {
    const q: Qual = { proto: 'default', dir: 'default', addr: 'default' };
    let t = this.peek();
    if (t.kind === 'kw' && PNAMES.has(t.text)) {
      q.proto = t.text as Proto;
      this.next();
      t = this.peek();
    }
    let hadDir = false;
    if (this.isKw(t, 'src', 'dst')) {
      hadDir = true;
      this.next();
      const first = t.text;
      const u = this.peek(), w = this.peek(1);
      if (this.isKw(u, 'or', 'and') && this.isKw(w, first === 'src' ? 'dst' : 'src')) {
        this.next();
        this.next();
        q.dir = u.text === 'or' ? 'or' : 'and';
      } else {
        q.dir = first as Dir;
      }
      t = this.peek();
    }
    if (this.isKw(t, 'host', 'net', 'port', 'portrange', 'gateway')) {
      q.addr = t.text as Addr;
      this.next();
    } else if (!hadDir && this.isKw(t, 'proto', 'protochain')) {
      q.addr = t.text as Addr;
      this.next();
    } else if (!hadDir) {
      this.syntax();
    }
    if (q.addr === 'gateway') filterError(t, "'gateway' needs host name lookups, which this compiler does not do");
    const c = this.parseIdValue(q);
    this.lastQ = q;
    return c;
  }

  /** A value after a complete head, or `not`/parenthesised values. */
  private parseIdValue(q: Qual): Cond {
    const t = this.peek();
    if (this.isKw(t, 'not')) {
      this.next();
      return not(this.parseIdValue(q));
    }
    if (this.isOp(t, '(')) {
      this.next();
      const c = this.parsePid(q);
      this.expectOp(')');
      return c;
    }
    if (!this.startsBareValue()) {
      if (t.kind === 'num') this.syntax();
      this.syntax();
    }
    return this.parseId(q);
  }

  /** One value (number, address, name) interpreted with qualifiers q. */
  private parseId(q: Qual): Cond {
    const t = this.next();
    switch (t.kind) {
      case 'num':
        return this.gen.genNcode(null, t.value, q, t);
      case 'v4': {
        if (this.isOp(this.peek(), '/')) {
          this.next();
          const n = this.peek();
          if (n.kind !== 'num') this.syntax();
          this.next();
          return this.gen.genMcode(t, null, n.value, q);
        }
        if (this.isKw(this.peek(), 'mask')) {
          this.next();
          const m = this.peek();
          if (m.kind !== 'v4') this.syntax();
          this.next();
          return this.gen.genMcode(t, m, 0, q);
        }
        return this.gen.genNcode(t.text, 0, q, t);
      }
      case 'v6': {
        let len = 128;
        if (this.isOp(this.peek(), '/')) {
          this.next();
          const n = this.peek();
          if (n.kind !== 'num') this.syntax();
          this.next();
          len = n.value;
        }
        return this.gen.genMcode6(t, len, q);
      }
      case 'mac':
        return this.gen.genEcode(t, q);
      case 'id':
        return this.gen.genScode(t, q);
      default:
        this.i--;
        this.syntax();
    }
  }

  // ---- arithmetic ----

  private parseRelation(): Cond {
    const a0 = this.parseArith();
    const t = this.peek();
    if (!this.isOp(t, '=', '!=', '<', '<=', '>', '>=')) this.syntax('expected a comparison');
    this.next();
    const a1 = this.parseArith();
    this.lastQ = QERR;
    let jop: number;
    let reversed = false;
    switch (t.text) {
      case '=': jop = BPF_JEQ; break;
      case '!=': jop = BPF_JEQ; reversed = true; break;
      case '>': jop = BPF_JGT; break;
      case '>=': jop = BPF_JGE; break;
      case '<': jop = BPF_JGE; reversed = true; break;
      default: jop = BPF_JGT; reversed = true; break; // <=
    }
    let code: BpfInsn[];
    let jcode: number;
    let k = 0;
    if (a1.literal !== undefined) {
      code = [...a0.code];
      jcode = BPF_JMP | jop | BPF_K;
      k = a1.literal;
    } else {
      const r = this.gen.allocReg(t);
      code = [...a0.code, stmt(BPF_ST, r), ...this.gen.shiftRegs(a1.code, r + 1), stmt(BPF_MISC | BPF_TAX, 0), stmt(BPF_LD | BPF_MEM, r)];
      this.gen.reg--;
      jcode = BPF_JMP | jop | BPF_X;
    }
    const conds = [...a0.conds, ...a1.conds];
    if (this.gen.fold && a0.literal !== undefined && a1.literal !== undefined) {
      const l = a0.literal, r = a1.literal;
      const holds = jop === BPF_JEQ ? l === r : jop === BPF_JGT ? l > r : l >= r;
      const c = (holds !== reversed) ? TRUE : FALSE;
      return conds.length > 0 ? and(andAll(conds), c) : c;
    }
    const last = a0.code[a0.code.length - 1]!;
    if (this.gen.fold && jop === BPF_JEQ && a1.literal === 0 && last.code === (BPF_ALU | BPF_AND | BPF_K) && last.k === 0xffffffff) {
      // libpcap 1.10's optimizer turns `x & 0xffffffff == 0` into `jset #0xffffffff` with the
      // branches swapped, then takes that jset as always true: so `= 0` never matches and `!= 0`
      // always does, once x's loads succeeded (they stay). The installed tcpdump behaves so; we
      // select the same records.
      const sure = loadsThenTrue(a0.code.slice(0, -1));
      const c = reversed ? sure : not(sure);
      return conds.length > 0 ? and(andAll(conds), c) : c;
    }
    let c = leaf(code, jcode, k);
    if (reversed) c = not(c);
    return conds.length > 0 ? and(andAll(conds), c) : c;
  }


  private static readonly LEVELS: string[][] = [['|'], ['&'], ['<<', '>>'], ['+', '-'], ['*', '/', '%']];

  /** Arithmetic with libpcap's precedences; '^' has none (bison shifts), so it takes all to its right. */
  private parseArith(level = 0): Arith {
    if (level === Parser.LEVELS.length) return this.parseUnary();
    let left = this.parseArith(level + 1);
    for (;;) {
      const t = this.peek();
      if (!(t.kind === 'op' && Parser.LEVELS[level]!.includes(t.text))) return left;
      this.next();
      const right = this.parseArith(level + 1);
      left = this.gen.genArth(t, left, right);
    }
  }

  private parseUnary(): Arith {
    const t = this.peek();
    if (this.isOp(t, '-')) {
      this.next();
      const v = this.parseUnary();
      if (this.gen.fold && v.literal !== undefined) return this.gen.constant((-v.literal) >>> 0, v.conds, v.firstImm);
      return { code: [...v.code, stmt(BPF_ALU | BPF_NEG, 0)], conds: v.conds, firstImm: v.firstImm };
    }
    const p = this.parsePrimary();
    const x = this.peek();
    if (this.isOp(x, '^')) {
      this.next();
      return this.gen.genArth(x, p, this.parseArith(0));
    }
    return p;
  }

  private parsePrimary(): Arith {
    const t = this.peek();
    if (t.kind === 'num') {
      this.next();
      return { code: [stmt(BPF_LD | BPF_IMM, t.value)], conds: [], literal: t.value, firstImm: t.value };
    }
    if (this.isKw(t, 'len')) {
      this.next();
      return { code: [stmt(BPF_LD | BPF_W | BPF_LEN, 0)], conds: [] };
    }
    if (this.isOp(t, '(')) {
      this.next();
      const v = this.parseArith();
      this.expectOp(')');
      return v;
    }
    if (t.kind === 'kw' && PNAMES.has(t.text) && this.isOp(this.peek(1), '[')) {
      this.next();
      this.next();
      const idx = this.parseArith();
      let size = 1;
      if (this.isOp(this.peek(), ':')) {
        this.next();
        const s = this.peek();
        if (s.kind !== 'num') this.syntax();
        this.next();
        size = s.value;
        if (size !== 1 && size !== 2 && size !== 4) filterError(s, 'data size must be 1, 2, or 4');
      }
      this.expectOp(']');
      return { ...this.gen.genLoad(t, t.text as Proto, idx, size), firstImm: idx.firstImm };
    }
    if (t.kind === 'kw' && UNSUPPORTED.has(t.text)) filterError(t, `'${t.text}' is not supported by this compiler`);
    this.syntax();
  }

}

export function compileFilter(expression: string, options: CompileOptions = {}): BpfProgram {
  const snaplen = options.snaplen ?? MAXIMUM_SNAPLEN;
  if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 0xffffffff) fail('EINVAL', `filter: snapshot length ${snaplen} is invalid`);
  const linktype = options.linktype ?? 1;
  if (expression.length > 65536) fail('EINVAL', 'filter: expression is longer than 65536 characters');
  try {
    const cond = new Parser(expression, (options.netmask ?? 0) >>> 0, options.optimize ?? true).parseProgram();
    if (linktype !== 1 && cond !== TRUE) fail('EOPNOTSUPP', `filter: expressions are supported on Ethernet captures only (link type ${linktype})`);
    return generateProgram(cond, snaplen, options.optimize ?? true);
  } catch (e) {
    if (e instanceof RangeError) fail('EINVAL', 'filter: expression is nested too deeply');
    throw e;
  }
}

/**
 * Turns a filter argument into a program: a raw program in tcpdump's -ddd format (only
 * numbers) or a pcap-filter expression.
 */
export function programFromText(text: string, options: CompileOptions = {}): BpfProgram {
  if (looksLikeDddProgram(text)) return parseDddProgram(text);
  return compileFilter(text, options);
}

export type FilterMode = 'compiled' | 'interpreted';

/** A ready-to-run filter function for an expression (or -ddd program). */
export function makeFilter(text: string, options: CompileOptions & { mode?: FilterMode } = {}): PacketFilter {
  const prog = programFromText(text, options);
  return options.mode === 'interpreted' ? interpretProgram(prog) : compileProgram(prog);
}
