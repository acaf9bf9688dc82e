/**
 * A firewall instance as one thread or process sees it: its store (store.ts), the counters and
 * dynamic-state table inside it (state.ts), and an evaluator rebuilt whenever the published
 * configuration changes (engine.ts). kipfw's threads and every VALE sender process build one of
 * these on the same store; each takes its own counter stripe, so counters add up exactly.
 */
import { FirewallStore } from './store.js';
import { Counters, DynTable } from './state.js';
import { buildEvaluator, type Evaluator, type Interfaces } from './engine.js';
import { runCommand, runFile, emptyConfig, type FirewallAccess, type CommandResult } from './commands.js';
import { MAX_RULES, type FirewallConfig } from './rule.js';

/** Dynamic states a store has room for (dyn_max may be set up to this). */
export const DYN_CAPACITY = 65536;
/** Counter stripes: threads and processes evaluating one firewall at once. */
export const COUNTER_STRIPES = 32;

export interface FirewallOptions {
  /** Rule 65535 accepts (netmap-ipfw's default) unless false. */
  defaultAccept?: boolean;
  /** Compile rulesets to JavaScript (default) or interpret them. */
  compiled?: boolean;
}

export class Firewall {
  readonly store: FirewallStore;
  readonly counters: Counters;
  readonly dyn: DynTable;
  readonly stripe: number;
  private readonly compiled: boolean;
  private cachedGen = -1;
  private cached: { evaluator: Evaluator; config: FirewallConfig } | null = null;

  private constructor(store: FirewallStore, compiled: boolean) {
    this.store = store;
    const buf = store.sp.buffer;
    // the regions initialise themselves when first mapped (their magic word is still 0)
    this.counters = new Counters(buf, store.countersOffset, store.countersBytes, COUNTER_STRIPES, MAX_RULES);
    this.dyn = new DynTable(buf, store.dynOffset, store.dynBytes, DYN_CAPACITY);
    this.stripe = this.counters.acquireStripe();
    this.compiled = compiled;
  }

  /** Creates firewall `name` (replacing a stale store left by a dead daemon). */
  static create(name: string, opts: FirewallOptions = {}): Firewall {
    const config = emptyConfig(opts.defaultAccept ?? true);
    const geometry = { countersBytes: Counters.bytesNeeded(COUNTER_STRIPES, MAX_RULES), dynBytes: DynTable.bytesNeeded(DYN_CAPACITY) };
    const store = FirewallStore.create(name, geometry, config);
    return new Firewall(store, opts.compiled ?? true);
  }

  static open(name: string, opts: FirewallOptions = {}): Firewall {
    return new Firewall(FirewallStore.open(name), opts.compiled ?? true);
  }

  generation(): number {
    return this.store.generation();
  }

  /** The evaluator of the current configuration (rebuilt when the generation moved). */
  evaluator(ifaces: Interfaces): { evaluator: Evaluator; config: FirewallConfig } {
    const gen = this.store.generation();
    if (this.cached === null || gen !== this.cachedGen) {
      const config = this.store.readConfig();
      this.cached = { evaluator: buildEvaluator(config, { counters: this.counters, dyn: this.dyn, stripe: this.stripe }, ifaces, { compiled: this.compiled }), config };
      this.cachedGen = gen;
    }
    return this.cached;
  }

  /** What commands.ts needs to read and reset counters and states. */
  access(dummynet?: FirewallAccess['dummynet'], dummynetCheck?: FirewallAccess['dummynetCheck']): FirewallAccess {
    const a: FirewallAccess = {
      counters: (slot) => this.counters.read(slot),
      zeroCounters: (slot) => this.counters.zero(slot),
      resetLog: (slot) => this.counters.resetLog(slot),
      states: (includeExpired) => this.dyn.list(Date.now())
        .filter((v) => includeExpired || !v.expired)
        .map((v) => ({ ...v, parentCount: v.count })),
      removeStatesOf: (slot) => this.dyn.removeRule(slot),
      flushStates: () => this.dyn.flush(),
    };
    if (dummynet !== undefined) a.dummynet = dummynet;
    if (dummynetCheck !== undefined) a.dummynetCheck = dummynetCheck;
    return a;
  }

  /** Applies one ipfw command line under the store's lock; publishes the result if it changed. */
  command(argv: string[], dummynet?: FirewallAccess['dummynet'], tty = false): CommandResult {
    return this.apply((config, access) => runCommand(argv, config, access, { tty }), dummynet);
  }

  /**
   * Applies a rules file, all or nothing: with a dummynet that keeps state of its own (a
   * daemon's), pass `dummynetCheck` too, where the file's dummynet lines are tried first.
   */
  file(text: string, dummynet?: FirewallAccess['dummynet'], dummynetCheck?: FirewallAccess['dummynetCheck']): CommandResult {
    return this.apply((config, access) => runFile(text, config, access), dummynet, dummynetCheck);
  }

  private apply(fn: (config: FirewallConfig, access: FirewallAccess) => CommandResult, dummynet?: FirewallAccess['dummynet'], dummynetCheck?: FirewallAccess['dummynetCheck']): CommandResult {
    return this.store.withLock(() => {
      const config = this.store.readConfig();
      const r = fn(config, this.access(dummynet, dummynetCheck));
      if (r.config !== config) {
        r.config.version = config.version + 1;
        this.store.publish(r.config);
      }
      return r;
    });
  }

  /** Expires dynamic states whose lifetime ran out. */
  expire(nowMs: number): void {
    this.dyn.expire(nowMs);
  }

  close(): void {
    this.counters.releaseStripe(this.stripe);
    this.store.close();
  }
}
