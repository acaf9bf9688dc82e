/**
 * The ruleset compiler: JavaScript functions per ruleset version (new Function), as the capture
 * filter compiler does for BPF. Rules are cut into chunks of CHUNK_RULES, one function each
 * (V8 does not optimise very large functions: one function for 300 rules ran 30x slower per
 * rule than for 100); a small dispatcher calls the chunk holding the current rule. A chunk is a
 * `for (;;) switch (pc)` whose cases are its rules in order, each a labelled block of
 * straight-line tests with the constants folded in (addresses, masks, ports, flags); a rule that
 * does not match breaks out of its block and falls through into the next rule's case, so a run
 * of non-matching rules costs no dispatch. Jumps (skipto, call, return, a state hit running its
 * parent's action) set pc and `continue` inside the chunk, or hand pc and tablearg to the
 * dispatcher. Cases n+1+j hold a copy of rule j's action part for the state hits.
 *
 * Semantics are the interpreter's (interp.ts), helpers are the runtime's (runtime.ts); the fuzz
 * test checks that both give the same verdicts, args, rules and counters.
 */
import { fail } from '../errors.js';
import { MAX_RULES, type Range } from './rule.js';
import {
  type Prepared, type PRule, type PCmd, Runtime, V_DENY, V_PASS,
  A_ALLOW, A_DENY, A_COUNT, A_SKIPTO, A_CALL, A_RETURN, A_CHECK_STATE, A_SETDSCP,
} from './runtime.js';
import { jumpLimit } from './interp.js';

/** Rulesets larger than this are interpreted. */
export const MAX_COMPILED_RULES = MAX_RULES;
/** Rules per generated function. */
export const CHUNK_RULES = 32;

export type RunFunction = (start: number) => number;

function u32(x: number): string { return String(x >>> 0); }

function rangesExpr(x: string, ranges: Range[]): string {
  if (ranges.length === 0) return 'false';
  return '(' + ranges.map(([lo, hi]) => (lo === hi ? `${x} === ${lo}` : `(${x} >= ${lo} && ${x} <= ${hi})`)).join(' || ') + ')';
}

function membersExpr(x: string, values: number[]): string {
  if (values.length === 0) return 'false';
  return '(' + [...new Set(values)].map((v) => `${x} === ${v}`).join(' || ') + ')';
}

const TCP_OK = '(p.proto === 6 && p.fragOffset === 0 && p.l4 >= 0)';

/** JavaScript sources of the chunk functions' bodies, and the constants they refer to as C[k]. */
export function rulesetToSource(prep: Prepared, chunkRules = CHUNK_RULES): { chunks: string[]; constants: unknown[] } {
  const constants: unknown[] = [];
  const constant = (v: unknown): string => { constants.push(v); return `C[${constants.length - 1}]`; };
  const rules = prep.rules;
  const n = rules.length;
  const limit = jumpLimit(n);
  let lo = 0, hi = 0; // the chunk being generated: rules [lo, hi)
  const inChunk = (target: number): boolean => (target >= lo && target < hi) || (target >= n + 1 + lo && target < n + 1 + hi);
  const guard = `if (++R.guard > ${limit}) { R.ruleIndex = -1; return ${V_DENY}; }`;
  /** A jump (counted against the bound) to a constant rule/action index. */
  const gotoConst = (target: number): string =>
    `${guard} ${inChunk(target) ? `pc = ${target}; continue;` : `R.pc = ${target}; R.ta = ta; return -1;`}`;
  /** A jump to a computed index. */
  const gotoExpr = (expr: string): string =>
    `${guard} pc = ${expr}; if ((pc >= ${lo} && pc < ${hi}) || (pc >= ${n + 1 + lo} && pc < ${n + 1 + hi})) continue; R.pc = pc; R.ta = ta; return -1;`;

  const matchExpr = (r: PRule, pc: PCmd): string => {
    const cmd = pc.cmd;
    switch (cmd.op) {
      case 'proto': return `(p.ipVersion !== 0 && p.proto === ${cmd.proto})`;
      case 'ip4': return '(p.ipVersion === 4)';
      case 'ip6': return '(p.ipVersion === 6)';
      case 'ipversion': return cmd.version === 4 ? '(p.ipVersion === 4)' : 'false';
      case 'ip-addr': {
        const a = cmd.dir === 'src' ? 'p.src4' : 'p.dst4';
        const alts = cmd.list.map((e) => {
          const m = e.mask >>> 0, v = (e.addr & e.mask) >>> 0;
          if (m === 0) return 'true';
          if (m === 0xffffffff) return `${a} === ${v}`;
          return `((${a} & ${m | 0}) >>> 0) === ${v}`;
        });
        return `(p.ipVersion === 4 && (${alts.length ? alts.join(' || ') : 'false'}))`;
      }
      case 'ip-set': {
        const a = cmd.dir === 'src' ? 'p.src4' : 'p.dst4';
        return `(p.ipVersion === 4 && (t = ${a} - ${u32(cmd.base)}) >= 0 && t < ${cmd.bits} && (${constant(pc.bitmap)}[t >> 5] & (1 << (t & 31))) !== 0)`;
      }
      case 'ip6-addr': {
        const a = cmd.dir === 'src' ? 'p.src6' : 'p.dst6';
        const alts = cmd.list.map((e) => {
          const parts: string[] = [];
          for (let w = 0; w < 4; w++) {
            const m = e.mask[w]! >>> 0, v = (e.addr[w]! & e.mask[w]!) >>> 0;
            if (m === 0) continue;
            parts.push(m === 0xffffffff ? `${a}[${w}] === ${v}` : `((${a}[${w}] & ${m | 0}) >>> 0) === ${v}`);
          }
          return parts.length ? '(' + parts.join(' && ') + ')' : 'true';
        });
        return `(p.ipVersion === 6 && (${alts.length ? alts.join(' || ') : 'false'}))`;
      }
      case 'me': return 'false';
      case 'table': {
        const valueTest = cmd.value === null ? '' : ` && t === ${cmd.value}`;
        return `((t = R.tableAddr(${constant(pc.table)}, ${cmd.dir === 'src'})) >= 0${valueTest} && ((ta = t), true))`;
      }
      case 'ports': {
        const x = cmd.dir === 'src' ? 'p.srcPort' : 'p.dstPort';
        return `((p.proto === 6 || p.proto === 17) && p.fragOffset === 0 && p.l4 >= 0 && ${rangesExpr(x, cmd.ranges)})`;
      }
      case 'in': return 'R.dirIn';
      case 'iface': {
        const which = cmd.which === 'recv' ? 0 : cmd.which === 'xmit' ? 1 : 2;
        const call = `R.iface(${constant(pc)}, ${which})`;
        return cmd.table !== null ? `(${call} && ((ta = R.lastValue), true))` : call;
      }
      case 'layer2': return 'true';
      case 'mac': return `R.mac(${constant(pc)})`;
      case 'mac-type': return `(p.len >= 14 && ${rangesExpr('p.etype', cmd.ranges)})`;
      case 'iplen': return `(p.ipVersion === 4 && ${rangesExpr('p.ipLen', cmd.ranges)})`;
      case 'ipttl': return `(p.ipVersion === 4 && ${rangesExpr('p.ttl', cmd.ranges)})`;
      case 'ipid': return `(p.ipVersion === 4 && ${rangesExpr('p.ipId', cmd.ranges)})`;
      case 'iptos': return `(p.ipVersion === 4 && (p.tos & ${cmd.set}) === ${cmd.set} && (p.tos & ${cmd.clear}) === 0)`;
      case 'dscp': {
        let lo = 0, hi = 0;
        for (const c of cmd.codes) { if (c >= 0 && c < 32) lo |= 1 << c; else if (c >= 32 && c < 64) hi |= 1 << (c - 32); }
        return `(p.ipVersion !== 0 && ((t = p.tos >> 2) < 32 ? (${lo | 0} >>> t) & 1 : (${hi | 0} >>> (t - 32)) & 1) === 1)`;
      }
      case 'ipprecedence': return `(p.ipVersion === 4 && (p.tos & 0xe0) === ${cmd.value})`;
      case 'ipoptions': return `(p.ipVersion === 4 && (t = p.ipOptionBits()) >= 0 && (t & ${cmd.set}) === ${cmd.set} && (t & ${cmd.clear}) === 0)`;
      case 'frag': return '(p.fragOffset !== 0)';
      case 'flow-id': return `(p.ipVersion === 6 && ${membersExpr('p.flow6', cmd.labels)})`;
      case 'ext6hdr': return `(p.ipVersion === 6 && ${cmd.set === 0 ? 'true' : `(p.ext6 & ${cmd.set}) !== 0`} && (p.ext6 & ${cmd.clear}) === 0)`;
      case 'tcpflags': return `(${TCP_OK} && (p.tcpFlags & ${cmd.set}) === ${cmd.set} && (p.tcpFlags & ${cmd.clear}) === 0)`;
      case 'established': return `(${TCP_OK} && (p.tcpFlags & 0x16) !== 0x02)`;
      case 'tcpoptions': return `(${TCP_OK} && ((t = p.tcpOptionBits()) & ${cmd.set}) === ${cmd.set} && (t & ${cmd.clear}) === 0)`;
      case 'tcpseq': return `(${TCP_OK} && p.tcpSeq === ${u32(cmd.value)})`;
      case 'tcpack': return `(${TCP_OK} && p.tcpAck === ${u32(cmd.value)})`;
      case 'tcpwin': return `(${TCP_OK} && ${rangesExpr('p.tcpWin', cmd.ranges)})`;
      case 'tcpdatalen': return `(${TCP_OK} && (t = p.tcpDataLen(), ${rangesExpr('t', cmd.ranges)}))`;
      case 'icmptypes': return `(p.proto === 1 && p.ipVersion !== 0 && p.fragOffset === 0 && p.l4 >= 0 && ${membersExpr('p.icmpType', cmd.types)})`;
      case 'icmp6types': return `(p.ipVersion === 6 && p.proto === 58 && p.fragOffset === 0 && p.l4 >= 0 && ${membersExpr('p.icmpType', cmd.types)})`;
      case 'tagged': return `R.tagged(${constant(pc.ranges)})`;
      case 'lookup': return `((R.ruleIndexForLookup = ${r.index}), (t = R.lookupKey(${constant(pc)})) >= 0 && ((ta = t), true))`;
      default: fail('EINVAL', `rule ${r.rule.number}: command ${cmd.op} cannot be compiled`);
    }
  };

  /** The action part of rule r; `next` is the statement that goes on with the rule after r. */
  const actionCode = (r: PRule, next: string): string => {
    const rule = r.rule;
    const s: string[] = [];
    if (rule.log) s.push(`R.log(${r.index});`);
    if (rule.tag !== null) {
      const v = rule.tag.tablearg ? 'ta' : String(rule.tag.value);
      s.push(rule.tag.untag ? `R.untag(${v});` : `R.tag(${v});`);
    }
    const arg = rule.action.tablearg ? 'ta' : String(rule.action.arg);
    const i = r.index;
    switch (r.action) {
      case A_COUNT: s.push(`R.count(${i}); ${next}`); break;
      case A_SKIPTO: s.push(`R.count(${i}); ${r.target >= 0 ? gotoConst(r.target) : gotoExpr(`R.skipTarget(${i}, ta)`)}`); break;
      case A_CALL:
        s.push(`if (R.sp >= ${CALL_DEPTH}) { ${next} }`);
        s.push(`R.count(${i}); R.stack[R.sp++] = ${rule.number}; ${r.target >= 0 ? gotoConst(r.target) : gotoExpr('R.findRule(ta)')}`);
        break;
      case A_RETURN:
        s.push(`if (R.sp === 0) { ${next} }`);
        s.push(`R.count(${i}); ${gotoExpr('R.findRule(R.stack[--R.sp] + 1)')}`);
        break;
      case A_CHECK_STATE:
        s.push(`t = R.probe(${r.stateNameId}); if (t >= 0) { ${gotoExpr(`${n + 1} + t`)} } ${next}`);
        break;
      case A_SETDSCP: s.push(`R.setDscp(${i}, ${arg}); ${next}`); break;
      // allow and deny inline (terminal()'s other cases make it too large to be inlined)
      case A_ALLOW: s.push(`R.count(${i}); R.ruleIndex = ${i}; return ${V_PASS};`); break;
      case A_DENY: s.push(`R.count(${i}); R.ruleIndex = ${i}; return ${V_DENY};`); break;
      default: s.push(`return R.terminal(${i}, ${r.action}, ${arg});`); break;
    }
    return s.join(' ');
  };

  const chunks: string[] = [];
  for (lo = 0; lo < n; lo = hi) {
    hi = Math.min(n, lo + chunkRules);
    const out: string[] = [];
    out.push('let ta = R.ta, t = 0;');
    out.push('for (;;) {');
    out.push('switch (pc) {');
    // Protocol runs: consecutive rules that all start with the same `proto X` (no prob, not
    // negated, not in an or-block) cannot match a packet of another protocol and have no side
    // effect before that test, so one test at the first rule skips them all (the rules after the
    // first are still entered directly by jumps, and still test their protocol themselves).
    const runEnd = new Int32Array(hi - lo).fill(-1);
    for (let i = lo; i < hi;) {
      const proto = leadingProto(rules[i]!);
      if (proto < 0) { i++; continue; }
      let j = i + 1, enabled = 1;
      while (j < hi && (!rules[j]!.enabled || leadingProto(rules[j]!) === proto)) { if (rules[j]!.enabled) enabled++; j++; }
      while (j > i + 1 && !rules[j - 1]!.enabled) j--; // a run ends on an enabled rule (tablearg is 0 after it)
      if (enabled >= 2) runEnd[i - lo] = j;
      i = j;
    }
    for (let i = lo; i < hi; i++) {
      const r = rules[i]!;
      out.push(`case ${i}:`);
      if (!r.enabled) continue; // disabled: falls through, tablearg kept (as ipfw's skip loop)
      const end = runEnd[i - lo]!;
      if (end >= 0) {
        const skip = end < hi ? `pc = ${end}; ta = 0; continue;` : `R.pc = ${end}; R.ta = 0; return -1;`;
        out.push(`if (!(p.ipVersion !== 0 && p.proto === ${leadingProto(r)})) { ${skip} }`);
      }
      const label = `r${i}`;
      out.push(`${label}: {`);
      if (r.rule.prob < 1) out.push(`if (!(R.rand() < ${r.rule.prob})) break ${label};`);
      // Group commands into or-blocks: a maximal run of `or` commands plus the one after.
      let block: string[] = [];
      for (const pc of r.cmds) {
        const cmd = pc.cmd;
        if (cmd.op === 'probe-state') {
          if (block.length) fail('EINVAL', `rule ${r.rule.number}: probe-state inside an or-block`);
          out.push(`if (R.dynDir === 0) { t = R.probe(${pc.nameId}); if (t >= 0) { ${gotoExpr(`${n + 1} + t`)} } }`);
          continue;
        }
        if (cmd.op === 'keep-state' || cmd.op === 'limit') {
          if (block.length) fail('EINVAL', `rule ${r.rule.number}: ${cmd.op} inside an or-block`);
          out.push(`if (!R.install(${i}, ${constant(pc)}, ta)) return R.terminal(${i}, 1, 0);`);
          continue;
        }
        const e = matchExpr(r, pc);
        block.push(cmd.neg ? `!${e}` : e);
        if (!cmd.or) {
          out.push(`if (!(${block.join(' || ')})) break ${label};`);
          block = [];
        }
      }
      // A rule ending inside an or-block matches whatever the block gives (ipfw: the inner loop
      // just runs out); the commands still run for their side effects (tablearg).
      if (block.length) out.push(`(${block.join(' || ')});`);
      out.push(actionCode(r, `break ${label};`));
      out.push('}');
      out.push('ta = 0;');
    }
    // Off the end of the chunk: on with the next one (not a jump: uncounted).
    out.push(`R.pc = ${hi}; R.ta = ta; return -1;`);
    for (let i = lo; i < hi; i++) {
      const r = rules[i]!;
      const after = `ta = 0; ${gotoConst(r.index + 1)}`;
      out.push(`case ${n + 1 + r.index}: { ${actionCode(r, after)} }`);
      out.push(after);
    }
    out.push(`default: throw new Error('firewall: bad rule index ' + pc);`);
    out.push('}');
    out.push('}');
    chunks.push(out.join('\n'));
  }
  return { chunks, constants };
}

const CALL_DEPTH = 16;

/** The protocol an enabled rule without prob starts by testing (`proto X`, plain), or -1. */
function leadingProto(r: PRule): number {
  if (!r.enabled || r.rule.prob < 1 || r.cmds.length === 0) return -1;
  const first = r.cmds[0]!.cmd;
  return first.op === 'proto' && !first.neg && !first.or ? first.proto : -1;
}

type ChunkFunction = (pc: number) => number;

/** Compiles the prepared ruleset into a run function bound to runtime R. */
export function compileRuleset(prep: Prepared, R: Runtime, chunkRules = CHUNK_RULES): RunFunction {
  const n = prep.rules.length;
  if (n > MAX_COMPILED_RULES) fail('E2BIG', `${n} rules, more than ${MAX_COMPILED_RULES} to compile`);
  if (!Number.isInteger(chunkRules) || chunkRules < 1) fail('EINVAL', `bad chunk size ${chunkRules}`);
  const { chunks, constants } = rulesetToSource(prep, chunkRules);
  const fns: ChunkFunction[] = chunks.map((body, k) => {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const factory = new Function('R', 'p', 'C', `return function chunk${k}(pc) {\n${body}\n};`) as (R: Runtime, p: unknown, C: unknown[]) => ChunkFunction;
    return factory(R, R.p, constants);
  });
  // Which chunk holds each pc: rules 0..n-1, the end n, action copies n+1..2n.
  const chunkOf = new Int32Array(2 * n + 1);
  for (let i = 0; i < n; i++) { chunkOf[i] = Math.floor(i / chunkRules); chunkOf[n + 1 + i] = chunkOf[i]!; }
  chunkOf[n] = -1;
  if (fns.length === 1) {
    const only = fns[0]!;
    return (start: number): number => {
      R.guard = 1; R.ta = 0;
      if (start >= n) { R.ruleIndex = -1; return V_DENY; }
      const v = only(start);
      if (v >= 0) return v;
      R.ruleIndex = -1; // off the end of the rules (or a jump there)
      return V_DENY;
    };
  }
  return (start: number): number => {
    R.guard = 1; R.ta = 0;
    let pc = start;
    for (;;) {
      if (pc === n || pc < 0 || pc > 2 * n) { R.ruleIndex = -1; return V_DENY; } // "skip past end of rules"
      const v = fns[chunkOf[pc]!]!(pc);
      if (v >= 0) return v;
      pc = R.pc;
    }
  };
}
