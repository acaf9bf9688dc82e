/**
 * The reference evaluator: ipfw_chk's loops over the prepared ruleset, one command at a time.
 * The compiled evaluator (compile.ts) must agree with it on every packet (verdict, arg, deciding
 * rule, counters, states, tags); the fuzz test checks that.
 *
 * Control flow, as ip_fw2.c:
 * - rules in order; rules of disabled sets are skipped; `prob` is drawn first;
 * - commands ANDed, `not` inverts one, F_OR chains (see rule.ts);
 * - tablearg is reset at each rule reached by falling through, kept across skipto/call/return
 *   (ipfw re-enters its inner loop there without re-initialising it);
 * - probe-state / check-state: one state lookup per packet; a hit runs the parent rule's action
 *   part (its tag and action) as if that rule had matched;
 * - count, skipto, call, return, setdscp count the rule and go on; terminal actions count the
 *   rule and end; call/return use a 16-deep stack of rule numbers, an overflow or underflow
 *   going on with the next rule uncounted.
 */
import { fail } from '../errors.js';
import type { Cmd } from './rule.js';
import {
  Runtime, type PCmd, type PRule, V_DENY,
  A_COUNT, A_SKIPTO, A_CALL, A_RETURN, A_CHECK_STATE, A_SETDSCP,
  CK_PROTO, CK_IP_ADDR, CK_PORTS, CK_PROBE, CK_INSTALL,
} from './runtime.js';

function inRanges(x: number, ranges: [number, number][]): boolean {
  for (let i = 0; i < ranges.length; i++) if (x >= ranges[i]![0] && x <= ranges[i]![1]) return true;
  return false;
}

const CONTINUE = -1; // next rule
const JUMP = -2; // go to `pcNext`
const LOOP = -3; // the jump bound was exceeded

/**
 * The most jumps (skipto, call, return, state hits) one packet may take before it is denied.
 * skipto only goes forward, but call may jump backwards, and ipfw bounds nothing: a ruleset can
 * make a packet bounce between calls and returns for a long time. Denying past this bound keeps
 * the data path bounded; both evaluators count the same events, so they agree on where it trips.
 */
export function jumpLimit(rules: number): number {
  return 64 + 20 * rules;
}

export class Interpreter {
  readonly R: Runtime;
  private pcNext = 0;
  private ta = 0;
  constructor(R: Runtime) { this.R = R; }

  /** Evaluates from rule index `start`; returns a verdict (R.arg, R.ruleIndex set). */
  run(start: number): number {
    const rules = this.R.prep.rules;
    const n = rules.length;
    const limit = jumpLimit(n);
    let pc = start;
    this.ta = 0;
    this.iterations = 1;
    let reentered = false; // true when pc was set by skipto/call/return: tablearg is kept
    while (pc < n) {
      const r = rules[pc]!;
      if (!reentered) this.ta = 0;
      reentered = false;
      if (!r.enabled) { pc++; reentered = true; continue; } // disabled rules neither run nor reset tablearg
      const res = this.rule(r);
      if (res >= 0) return res;
      if (res === LOOP) return this.loopDeny();
      if (res === JUMP) {
        if (++this.iterations > limit) return this.loopDeny();
        pc = this.pcNext; reentered = true; continue;
      }
      pc = r.index + 1;
      if (this.jumpedFrom >= 0) {
        if (++this.iterations > limit) return this.loopDeny();
        pc = this.jumpedFrom + 1; this.jumpedFrom = -1;
      }
    }
    this.R.ruleIndex = -1;
    return V_DENY; // "ouch!, skip past end of rules, denying packet"
  }

  private loopDeny(): number {
    this.R.ruleIndex = -1;
    this.jumpedFrom = -1;
    return V_DENY;
  }

  /** Set when a state hit ran another rule's action that continued: go on after that rule. */
  private jumpedFrom = -1;

  /** Jumps taken for this packet (the compiled code counts the same events: see jumpLimit). */
  private iterations = 0;

  /** One rule: a verdict, CONTINUE or JUMP. */
  private rule(r: PRule): number {
    const R = this.R;
    const rule = r.rule;
    if (rule.prob < 1 && !(R.rand() < rule.prob)) return CONTINUE;
    const cmds = r.cmds;
    let skipOr = false;
    for (let k = 0; k < cmds.length; k++) {
      const pc = cmds[k]!;
      if (skipOr) { if (!pc.or) skipOr = false; continue; }
      const kind = pc.kind;
      if (kind === CK_PROBE) {
        const j = R.probe(pc.nameId);
        if (j >= 0) return this.parentAction(j);
        continue;
      }
      if (kind === CK_INSTALL) {
        if (!R.install(r.index, pc, this.ta)) return R.terminal(r.index, 1 /* A_DENY */, 0);
        continue;
      }
      let m = this.match(r, pc);
      if (pc.neg) m = !m;
      if (pc.or) { if (m) skipOr = true; continue; }
      if (!m) return CONTINUE;
    }
    return this.action(r);
  }

  /** A state hit: run parent rule j's action part; if it continues, continue after j. */
  private parentAction(j: number): number {
    if (++this.iterations > jumpLimit(this.R.prep.rules.length)) return LOOP;
    const res = this.action(this.R.prep.rules[j]!);
    if (res === CONTINUE) this.jumpedFrom = j;
    return res;
  }

  /** The action part of rule r: tag, then the action. */
  private action(r: PRule): number {
    const R = this.R;
    const rule = r.rule;
    const ta = this.ta;
    if (rule.log) R.log(r.index);
    if (rule.tag !== null) {
      const v = rule.tag.tablearg ? ta : rule.tag.value;
      if (rule.tag.untag) R.untag(v); else R.tag(v);
    }
    const arg = rule.action.tablearg ? ta : rule.action.arg;
    switch (r.action) {
      case A_COUNT: R.count(r.index); return CONTINUE;
      case A_SKIPTO:
        R.count(r.index);
        this.pcNext = r.target >= 0 ? r.target : R.skipTarget(r.index, arg);
        return JUMP;
      case A_CALL:
        if (R.sp >= R.stack.length) return CONTINUE;
        R.count(r.index);
        R.stack[R.sp++] = rule.number;
        this.pcNext = r.target >= 0 ? r.target : R.findRule(arg);
        return JUMP;
      case A_RETURN:
        if (R.sp === 0) return CONTINUE;
        R.count(r.index);
        this.pcNext = R.findRule(R.stack[--R.sp]! + 1);
        return JUMP;
      case A_CHECK_STATE: {
        const j = R.probe(r.stateNameId);
        if (j >= 0) return this.parentAction(j);
        return CONTINUE;
      }
      case A_SETDSCP: R.setDscp(r.index, arg); return CONTINUE;
      default: return R.terminal(r.index, r.action, arg);
    }
  }

  /** One match command, before `not`: the commonest ones from the prepared operands, the rest below. */
  private match(r: PRule, pc: PCmd): boolean {
    const p = this.R.p;
    switch (pc.kind) {
      case CK_PROTO: return p.ipVersion !== 0 && p.proto === pc.proto;
      case CK_IP_ADDR: {
        if (p.ipVersion !== 4) return false;
        const a = pc.src ? p.src4 : p.dst4, list = pc.list4!;
        for (let k = 0; k < list.length; k += 2) if (((a & list[k + 1]!) >>> 0) === list[k]) return true;
        return false;
      }
      case CK_PORTS: {
        if ((p.proto !== 6 && p.proto !== 17) || p.fragOffset !== 0 || p.l4 < 0) return false;
        const x = pc.src ? p.srcPort : p.dstPort, ranges = pc.ranges!;
        for (let k = 0; k < ranges.length; k += 2) if (x >= ranges[k]! && x <= ranges[k + 1]!) return true;
        return false;
      }
      default: return this.matchOther(r, pc);
    }
  }

  private matchOther(r: PRule, pc: PCmd): boolean {
    const R = this.R, p = R.p;
    const cmd: Cmd = pc.cmd;
    const tcpOk = p.proto === 6 && p.fragOffset === 0 && p.l4 >= 0;
    switch (cmd.op) {
      case 'proto': return p.ipVersion !== 0 && p.proto === cmd.proto;
      case 'ip4': return p.ipVersion === 4;
      case 'ip6': return p.ipVersion === 6;
      case 'ipversion': return p.ipVersion === 4 && cmd.version === 4;
      case 'ip-addr': {
        if (p.ipVersion !== 4) return false;
        const a = cmd.dir === 'src' ? p.src4 : p.dst4;
        for (const e of cmd.list) if (((a & e.mask) >>> 0) === ((e.addr & e.mask) >>> 0)) return true;
        return false;
      }
      case 'ip-set': {
        if (p.ipVersion !== 4) return false;
        const a = (cmd.dir === 'src' ? p.src4 : p.dst4) - (cmd.base >>> 0);
        return a >= 0 && a < cmd.bits && (pc.bitmap![a >> 5]! & (1 << (a & 31))) !== 0;
      }
      case 'ip6-addr': {
        if (p.ipVersion !== 6) return false;
        const a = cmd.dir === 'src' ? p.src6 : p.dst6;
        for (const e of cmd.list) {
          let ok = true;
          for (let w = 0; w < 4 && ok; w++) ok = ((a[w]! & e.mask[w]!) >>> 0) === ((e.addr[w]! & e.mask[w]!) >>> 0);
          if (ok) return true;
        }
        return false;
      }
      case 'me': return false;
      case 'table': {
        const v = R.tableAddr(pc.table!, cmd.dir === 'src');
        if (v < 0 || (cmd.value !== null && v !== cmd.value)) return false;
        this.ta = v;
        return true;
      }
      case 'ports': {
        if ((p.proto !== 6 && p.proto !== 17) || p.fragOffset !== 0 || p.l4 < 0) return false;
        return inRanges(cmd.dir === 'src' ? p.srcPort : p.dstPort, cmd.ranges);
      }
      case 'in': return R.dirIn;
      case 'iface': {
        const which = cmd.which === 'recv' ? 0 : cmd.which === 'xmit' ? 1 : 2;
        if (!R.iface(pc, which)) return false;
        if (cmd.table !== null) this.ta = R.lastValue;
        return true;
      }
      case 'layer2': return true;
      case 'mac': return R.mac(pc);
      case 'mac-type': return p.len >= 14 && inRanges(p.etype, cmd.ranges);
      case 'iplen': return p.ipVersion === 4 && inRanges(p.ipLen, cmd.ranges);
      case 'ipttl': return p.ipVersion === 4 && inRanges(p.ttl, cmd.ranges);
      case 'ipid': return p.ipVersion === 4 && inRanges(p.ipId, cmd.ranges);
      case 'iptos': return p.ipVersion === 4 && (p.tos & cmd.set) === cmd.set && (p.tos & cmd.clear) === 0;
      case 'dscp': return p.ipVersion !== 0 && cmd.codes.includes(p.tos >> 2);
      case 'ipprecedence': return p.ipVersion === 4 && (p.tos & 0xe0) === cmd.value;
      case 'ipoptions': {
        if (p.ipVersion !== 4) return false;
        const bits = p.ipOptionBits();
        return bits >= 0 && (bits & cmd.set) === cmd.set && (bits & cmd.clear) === 0;
      }
      case 'frag': return p.fragOffset !== 0;
      case 'flow-id': return p.ipVersion === 6 && cmd.labels.includes(p.flow6);
      case 'ext6hdr': return p.ipVersion === 6 && (cmd.set === 0 || (p.ext6 & cmd.set) !== 0) && (p.ext6 & cmd.clear) === 0;
      case 'tcpflags': return tcpOk && (p.tcpFlags & cmd.set) === cmd.set && (p.tcpFlags & cmd.clear) === 0;
      case 'established': return tcpOk && (p.tcpFlags & 0x16) !== 0x02;
      case 'tcpoptions': {
        if (!tcpOk) return false;
        const bits = p.tcpOptionBits();
        return (bits & cmd.set) === cmd.set && (bits & cmd.clear) === 0;
      }
      case 'tcpseq': return tcpOk && p.tcpSeq === cmd.value >>> 0;
      case 'tcpack': return tcpOk && p.tcpAck === cmd.value >>> 0;
      case 'tcpwin': return tcpOk && inRanges(p.tcpWin, cmd.ranges);
      case 'tcpdatalen': return tcpOk && inRanges(p.tcpDataLen(), cmd.ranges);
      case 'icmptypes': return p.proto === 1 && p.ipVersion !== 0 && p.fragOffset === 0 && p.l4 >= 0 && cmd.types.includes(p.icmpType);
      case 'icmp6types': return p.ipVersion === 6 && p.proto === 58 && p.fragOffset === 0 && p.l4 >= 0 && cmd.types.includes(p.icmpType);
      case 'tagged': return R.tagged(pc.ranges!);
      case 'lookup': {
        R.ruleIndexForLookup = r.index;
        const v = R.lookupKey(pc);
        if (v < 0) return false;
        this.ta = v;
        return true;
      }
      default: fail('EINVAL', `rule ${r.rule.number}: command ${cmd.op} cannot be evaluated here`);
    }
  }
}
