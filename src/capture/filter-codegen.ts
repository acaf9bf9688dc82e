/**
 * Boolean intermediate form of a compiled filter and its translation to classic BPF.
 *
 * A filter is a tree of and/or/not over leaves; a leaf is a few self-contained instructions
 * that compute the accumulator (every leaf loads what it uses), then one conditional jump.
 * Code generation is the short-circuit scheme (gen(node, ifTrue, ifFalse)) over a graph of
 * tests, so every jump goes forward; the graph is then optimised by jump threading.
 * Conditional jumps farther than 255 instructions are routed through `ja` trampolines.
 */
import { fail } from '../errors.js';
import { type BpfInsn, type BpfProgram, BPF_JMP, BPF_JA, BPF_JGE, BPF_RET, BPF_K, BPF_MAXINSNS } from './bpf.js';

/** Where a jump inside a block goes: one of its labels, or its true ('T') or false ('F') exit. */
export type BlockTarget = number | 'T' | 'F';
/** Code of a block: instructions, jumps (`ja` may go back to a label: a loop) and labels. */
export type BlockItem =
  | { op: 'insn'; insn: BpfInsn }
  | { op: 'cj'; code: number; k: number; jt: BlockTarget; jf: BlockTarget }
  | { op: 'ja'; to: BlockTarget }
  | { op: 'label'; id: number };

export type Cond =
  | { kind: 'block'; items: BlockItem[] }
  | { kind: 'and'; a: Cond; b: Cond }
  | { kind: 'or'; a: Cond; b: Cond }
  | { kind: 'not'; a: Cond }
  | { kind: 'const'; value: boolean }
  | { kind: 'leaf'; insns: BpfInsn[]; jcode: number; k: number; alwaysTrue?: boolean };

export const TRUE: Cond = { kind: 'const', value: true };
export const FALSE: Cond = { kind: 'const', value: false };

export function and(a: Cond, b: Cond): Cond {
  return { kind: 'and', a, b };
}
export function or(a: Cond, b: Cond): Cond {
  return { kind: 'or', a, b };
}
export function not(a: Cond): Cond {
  return { kind: 'not', a };
}
export function andAll(items: Cond[]): Cond {
  return items.reduce((acc, c) => and(acc, c));
}
export function orAll(items: Cond[]): Cond {
  return items.reduce((acc, c) => or(acc, c));
}
/** A leaf: run `insns`, then jump on `jcode` (BPF_JMP|op|src) against k. */
export function leaf(insns: BpfInsn[], jcode: number, k: number): Cond {
  return { kind: 'leaf', insns, jcode, k: k >>> 0 };
}
/**
 * A test that always succeeds but keeps its loads (so a truncated packet is still rejected by
 * them): `jge #0` after `insns`. The check for filters that reject everything knows its outcome.
 */
export function loadsThenTrue(insns: BpfInsn[]): Cond {
  return { kind: 'leaf', insns, jcode: BPF_JMP | BPF_JGE | BPF_K, k: 0, alwaysTrue: true };
}

// Symbolic code: instructions with label ids for jump targets, and label definitions.
type Item =
  | { t: 'insn'; insn: BpfInsn }
  | { t: 'cj'; code: number; k: number; lt: number; lf: number } // conditional jump
  | { t: 'ja'; label: number }
  | { t: 'label'; id: number };

const ACCEPT = -1, REJECT = -2;

/** A test node of the control-flow graph: a leaf with its two successors (node ids or ACCEPT/REJECT). */
interface Node {
  /** Set for an opaque block (its own control flow, exits to t and f); insns/jcode/k unused. */
  block?: BlockItem[];
  insns: BpfInsn[];
  jcode: number;
  k: number;
  t: number;
  f: number;
  /** Signature of the computation (the instructions), to recognise repeated tests. */
  sig: string;
  /** Always goes to t (loadsThenTrue). */
  alwaysTrue?: boolean;
}

/**
 * Translates a condition into a BPF program returning `snaplen` on accept and 0 on reject.
 * With `optimize` (the default), tests whose outcome is already known on every path to them
 * are bypassed, and tests whose two outcomes lead to the same place are removed, as libpcap's
 * optimizer does (this also removes their loads, which is what makes `ip[100] = 1 or ip`
 * accept short IP packets in tcpdump).
 */
export function generateProgram(root: Cond, snaplen: number, optimize = true): BpfProgram {
  const nodes: Node[] = [];
  const sigs = new Map<BpfInsn[], string>();
  // Built backwards: a node's successors exist before it, so ids decrease along every path.
  const gen = (c: Cond, lt: number, lf: number): number => {
    switch (c.kind) {
      case 'const': return c.value ? lt : lf;
      case 'not': return gen(c.a, lf, lt);
      case 'and': return gen(c.a, gen(c.b, lt, lf), lf);
      case 'or': return gen(c.a, lt, gen(c.b, lt, lf));
      case 'block':
        // Opaque to the optimizer: a unique signature, and a jump code that states no fact.
        nodes.push({ block: c.items, insns: [], jcode: BPF_JMP | BPF_JA, k: 0, t: lt, f: lf, sig: `block#${nodes.length}` });
        return nodes.length - 1;
      case 'leaf': {
        let sig = sigs.get(c.insns);
        if (sig === undefined) {
          sig = c.insns.map((i) => `${i.code},${i.k}`).join(';');
          sigs.set(c.insns, sig);
        }
        nodes.push({ insns: c.insns, jcode: c.jcode, k: c.k, t: lt, f: lf, sig, alwaysTrue: c.alwaysTrue });
        return nodes.length - 1;
      }
    }
  };
  let entry = gen(root, ACCEPT, REJECT);
  if (optimize) entry = optimizeGraph(nodes, entry);
  // libpcap 1.10 refuses a filter that its optimizer proves can never match.
  if (optimize && !acceptReachable(nodes, entry)) fail('EINVAL', 'filter: expression rejects all packets');

  // Layout in decreasing id order (a topological order), keeping only reachable nodes.
  const reachable = new Uint8Array(nodes.length);
  const mark = (id: number): void => {
    const stack = [id];
    while (stack.length > 0) {
      const n = stack.pop() as number;
      if (n < 0 || reachable[n]) continue;
      reachable[n] = 1;
      stack.push(nodes[n]!.t, nodes[n]!.f);
    }
  };
  mark(entry);
  const items: Item[] = [];
  const label = (id: number): number => (id === ACCEPT ? nodes.length : id === REJECT ? nodes.length + 1 : id);
  // A test that computes the same thing as the one jumping to it is entered after its loads:
  // the registers already hold that value (jumps do not change them).
  const afterLoads = (id: number): number => nodes.length + 2 + id;
  const edge = (from: Node, to: number): number => (optimize && to >= 0 && nodes[to]!.sig === from.sig ? afterLoads(to) : label(to));
  // Whether some edge (or the entry) enters a test at its start, i.e. its loads are needed.
  const enteredAtStart = new Uint8Array(nodes.length);
  if (entry >= 0) enteredAtStart[entry] = 1;
  for (let id = 0; id < nodes.length; id++) {
    if (!reachable[id]) continue;
    for (const to of [nodes[id]!.t, nodes[id]!.f]) if (to >= 0 && edge(nodes[id]!, to) === to) enteredAtStart[to] = 1;
  }
  if (entry < 0) items.push({ t: 'ja', label: label(entry) });
  let nextLabel = 2 * nodes.length + 2; // labels inside blocks
  for (let id = nodes.length - 1; id >= 0; id--) {
    if (!reachable[id]) continue;
    const n = nodes[id]!;
    items.push({ t: 'label', id });
    if (n.block !== undefined) {
      const base = nextLabel;
      let maxId = -1;
      const to = (b: BlockTarget): number => (b === 'T' ? label(n.t) : b === 'F' ? label(n.f) : base + b);
      for (const it of n.block) {
        if (it.op === 'insn') items.push({ t: 'insn', insn: it.insn });
        else if (it.op === 'cj') items.push({ t: 'cj', code: it.code, k: it.k, lt: to(it.jt), lf: to(it.jf) });
        else if (it.op === 'ja') items.push({ t: 'ja', label: to(it.to) });
        else { items.push({ t: 'label', id: base + it.id }); maxId = Math.max(maxId, it.id); }
      }
      nextLabel = base + maxId + 1;
      continue;
    }
    if (enteredAtStart[id]) for (const insn of n.insns) items.push({ t: 'insn', insn });
    items.push({ t: 'label', id: afterLoads(id) });
    items.push({ t: 'cj', code: n.jcode, k: n.k, lt: edge(n, n.t), lf: edge(n, n.f) });
  }
  items.push({ t: 'label', id: nodes.length });
  items.push({ t: 'insn', insn: { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: snaplen >>> 0 } });
  items.push({ t: 'label', id: nodes.length + 1 });
  items.push({ t: 'insn', insn: { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: 0 } });
  return layout(items, nextLabel);
}

/** Whether some path from `entry` reaches ACCEPT (an alwaysTrue test only goes to its t). */
function acceptReachable(nodes: Node[], entry: number): boolean {
  const seen = new Uint8Array(nodes.length);
  const stack = [entry];
  while (stack.length > 0) {
    const id = stack.pop() as number;
    if (id === ACCEPT) return true;
    if (id < 0 || seen[id]) continue;
    seen[id] = 1;
    const n = nodes[id]!;
    stack.push(n.t);
    if (n.alwaysTrue !== true) stack.push(n.f);
  }
  return false;
}

/** Known outcomes of tests on a path: key `sig|jcode|k` -> result; `sig` -> known value of A. */
interface Facts {
  results: Map<string, boolean>;
  values: Map<string, number>;
}

const MAX_FACTS = 256;

function known(facts: Facts, n: Node): boolean | undefined {
  const r = facts.results.get(`${n.sig}|${n.jcode}|${n.k}`);
  if (r !== undefined) return r;
  const v = facts.values.get(n.sig);
  if (v === undefined || (n.jcode & 0x08) !== 0) return undefined; // unknown, or compares with X
  switch (n.jcode & 0xf0) {
    case 0x10: return v === n.k;
    case 0x20: return v > n.k;
    case 0x30: return v >= n.k;
    case 0x40: return (v & n.k) !== 0;
  }
  return undefined;
}

function withOutcome(facts: Facts, n: Node, outcome: boolean): Facts {
  const results = new Map(facts.results);
  const values = new Map(facts.values);
  if (results.size < MAX_FACTS) results.set(`${n.sig}|${n.jcode}|${n.k}`, outcome);
  if (outcome && (n.jcode & 0xf8) === 0x10 && values.size < MAX_FACTS) values.set(n.sig, n.k >>> 0);
  return { results, values };
}

function intersect(a: Facts, b: Facts): Facts {
  const results = new Map<string, boolean>();
  for (const [key, v] of a.results) if (b.results.get(key) === v) results.set(key, v);
  const values = new Map<string, number>();
  for (const [key, v] of a.values) if (b.values.get(key) === v) values.set(key, v);
  return { results, values };
}

/**
 * Jump threading over the test graph (ids decrease along edges): an edge into a test whose
 * outcome is known from the facts on that edge goes straight to the matching successor, and a
 * test whose successors are equal is bypassed. Repeated until nothing changes.
 */
function optimizeGraph(nodes: Node[], entry: number): number {
  for (let round = 0; round < 16; round++) {
    let changed = false;
    const inFacts: (Facts | undefined)[] = new Array(nodes.length);
    const empty: Facts = { results: new Map(), values: new Map() };
    const thread = (target: number, facts: Facts): number => {
      let guard = 0;
      while (target >= 0 && guard++ < nodes.length) {
        const m = nodes[target]!;
        if (m.t === m.f) { target = m.t; continue; }
        const r = known(facts, m);
        if (r === undefined) break;
        target = r ? m.t : m.f;
      }
      return target;
    };
    const newEntry = thread(entry, empty);
    if (newEntry !== entry) { entry = newEntry; changed = true; }
    if (entry >= 0) inFacts[entry] = empty;
    for (let id = nodes.length - 1; id >= 0; id--) {
      const facts = inFacts[id];
      if (facts === undefined) continue; // unreachable in this round
      const n = nodes[id]!;
      const ft = withOutcome(facts, n, true);
      const ff = withOutcome(facts, n, false);
      const nt = thread(n.t, ft);
      const nf = thread(n.f, ff);
      if (nt !== n.t || nf !== n.f) { n.t = nt; n.f = nf; changed = true; }
      for (const [succ, f] of [[n.t, ft], [n.f, ff]] as [number, Facts][]) {
        if (succ < 0) continue;
        const prev = inFacts[succ];
        inFacts[succ] = prev === undefined ? f : intersect(prev, f);
      }
    }
    if (!changed) break;
  }
  return entry;
}

/**
 * Assigns addresses. A conditional jump whose target is farther than 255 is expanded into
 * `jcond 0,1; ja T; ja F` (the expansion is sticky, so the loop converges).
 */
function layout(items: Item[], labels: number): BpfProgram {
  const far = new Set<number>(); // indexes of cj items that need trampolines
  const pos = new Int32Array(labels);
  for (let round = 0; round < 64; round++) {
    let pc = 0;
    const at = new Int32Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      at[i] = pc;
      if (it.t === 'label') pos[it.id] = pc;
      else if (it.t === 'cj') pc += far.has(i) ? 3 : 1;
      else pc++;
    }
    let changed = false;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.t !== 'cj' || far.has(i)) continue;
      const from = at[i]! + 1;
      if (pos[it.lt]! < from || pos[it.lf]! < from) fail('EINVAL', 'filter: internal error: a conditional jump goes backward');
      if (pos[it.lt]! - from > 255 || pos[it.lf]! - from > 255) {
        far.add(i);
        changed = true;
      }
    }
    if (changed) continue;
    if (pc > BPF_MAXINSNS) fail('E2BIG', `filter compiles to ${pc} BPF instructions, more than the limit of ${BPF_MAXINSNS}`);
    const prog: BpfProgram = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const here = prog.length;
      if (it.t === 'insn') prog.push(it.insn);
      else if (it.t === 'ja') prog.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: (pos[it.label]! - here - 1) >>> 0 }); // backward: negative k
      else if (it.t === 'cj') {
        if (far.has(i)) {
          prog.push({ code: it.code, jt: 0, jf: 1, k: it.k });
          prog.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: pos[it.lt]! - here - 2 });
          prog.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: pos[it.lf]! - here - 3 });
        } else {
          prog.push({ code: it.code, jt: pos[it.lt]! - here - 1, jf: pos[it.lf]! - here - 1, k: it.k });
        }
      }
    }
    return prog;
  }
  fail('E2BIG', 'filter is too large to lay out');
}
