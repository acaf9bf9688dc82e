/**
 * The firewall's evaluation API: buildEvaluator() turns one ruleset version into an Evaluator
 * for one thread (compiled, or the reference interpreter), working on the shared counters and
 * dynamic-state table. A new ruleset is a new Evaluator; the caller swaps it in between batches.
 */
import { Runtime, prepare, type Interfaces, type SharedState, V_DENY, V_PASS, DECODE_FULL, DECODE_BASIC, DECODE_LENGTH } from './runtime.js';
import { Interpreter } from './interp.js';
import { compileRuleset, MAX_COMPILED_RULES, type RunFunction } from './compile.js';
import type { FirewallConfig } from './rule.js';

export { V_PASS, V_DENY, V_REJECT, V_RESET, V_PIPE, V_QUEUE, type Interfaces, type SharedState } from './runtime.js';

export interface Evaluator {
  /** One packet. dirIn: `in` (kipfw: always true; VALE: false = forwarded packet on its output path).
   * recvIf/xmitIf: interface ids (-1 none). nowMs: a clock read once per batch.
   * Returns a V_* verdict; details in the fields below (valid until the next call). */
  check(u8: Uint8Array, off: number, len: number, dirIn: boolean, recvIf: number, xmitIf: number, nowMs: number): number;
  /** unreach code (V_REJECT; `reject` = host unreachable 1; v6 packets get ICMPv6 codes), pipe/queue number (V_PIPE/V_QUEUE). */
  readonly arg: number;
  /** index into config.rules of the rule that decided (for one_pass=0 re-entry); -1 when no rule did (pullup failure, end of rules). */
  readonly ruleIndex: number;
  /** Re-enter after a dummynet pipe (one_pass = 0): like check but starting after rule index `after`. */
  resume(u8: Uint8Array, off: number, len: number, dirIn: boolean, recvIf: number, xmitIf: number, nowMs: number, after: number): number;
  /**
   * A batch of forwarded packets from interface `recvIf` (dirIn false: a VALE switch's lookup):
   * packet i is off[i], len[i], going to interface dst[i]; dst[i] === `flood` stands for no
   * interface (xmitIf -1) and dst[i] === `drop` is skipped. Each packet whose verdict is not
   * V_PASS gets dst[i] = drop. The same verdicts, counters and states as check() per packet,
   * with the per-batch work (clock, interface names) done once.
   */
  filterBatch(u8: Uint8Array, off: Float64Array, len: Int32Array, dst: Int32Array, n: number, recvIf: number, nowMs: number, flood: number, drop: number): void;
  // setdscp: the evaluator rewrites the DSCP bits of the frame in place (keeping ECN) and fixes
  // the IPv4 header checksum itself; the caller forwards the frame as it is.
  /** Whether this evaluator runs compiled code (false: the interpreter, asked for or because the ruleset is too large). */
  readonly compiled: boolean;
  /** The configuration version it was built from. */
  readonly version: number;
}

class EvaluatorImpl implements Evaluator {
  private readonly R: Runtime;
  private readonly run: RunFunction;
  readonly compiled: boolean;
  readonly version: number;
  constructor(R: Runtime, run: RunFunction, compiled: boolean, version: number) {
    this.R = R; this.run = run; this.compiled = compiled; this.version = version;
  }
  get arg(): number { return this.R.arg; }
  get ruleIndex(): number { return this.R.ruleIndex; }

  check(u8: Uint8Array, off: number, len: number, dirIn: boolean, recvIf: number, xmitIf: number, nowMs: number): number {
    if (!this.R.begin(u8, off, len, dirIn, recvIf, xmitIf, nowMs)) return V_DENY; // ipfw "pullup failed"
    return this.run(0);
  }

  filterBatch(u8: Uint8Array, off: Float64Array, len: Int32Array, dst: Int32Array, n: number, recvIf: number, nowMs: number, flood: number, drop: number): void {
    const R = this.R, run = this.run;
    R.beginBatch(nowMs);
    R.dirIn = false; R.recvIf = recvIf;
    for (let i = 0; i < n; i++) {
      const d = dst[i]!;
      if (d === drop) continue;
      R.xmitIf = d === flood ? -1 : d;
      if (!R.beginPacket(u8, off[i]!, len[i]!) || run(0) !== V_PASS) dst[i] = drop;
    }
  }

  resume(u8: Uint8Array, off: number, len: number, dirIn: boolean, recvIf: number, xmitIf: number, nowMs: number, after: number): number {
    if (!this.R.begin(u8, off, len, dirIn, recvIf, xmitIf, nowMs)) return V_DENY;
    const start = after + 1;
    if (start < 0 || start >= this.R.prep.rules.length) { this.R.ruleIndex = -1; return V_DENY; }
    return this.run(start);
  }
}

export interface EvaluatorOptions {
  compiled: boolean;
  /** Seed of the `prob` generator (tests cross-checking two evaluators give both the same). */
  seed?: number;
  /** Rules per compiled function (tests use small chunks to exercise the jumps between them). */
  chunkRules?: number;
}

export function buildEvaluator(config: FirewallConfig, shared: SharedState, ifaces: Interfaces, opts: EvaluatorOptions): Evaluator {
  const prep = prepare(config, shared.dyn);
  const R = new Runtime(prep, shared, ifaces, opts.seed ?? ((Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0));
  const compiled = opts.compiled && prep.rules.length <= MAX_COMPILED_RULES;
  let run: RunFunction;
  if (compiled) {
    run = compileRuleset(prep, R, opts.chunkRules);
    R.decodeLevel = prep.lengthDecode ? DECODE_LENGTH : prep.basicDecode ? DECODE_BASIC : DECODE_FULL;
  }
  else {
    const interp = new Interpreter(R);
    run = (start: number) => interp.run(start);
  }
  return new EvaluatorImpl(R, run, compiled, config.version);
}
