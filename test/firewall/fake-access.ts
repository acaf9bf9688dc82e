/**
 * A FirewallAccess for tests: counters and states held in maps, with a log of every call so a
 * test can check which side effects a command had (and that a failed one had none).
 */
import type { FirewallAccess, DynStateView, RuleCounters } from '../../src/firewall/commands.js';

export class FakeAccess implements FirewallAccess {
  readonly counterBySlot = new Map<number, RuleCounters>();
  readonly logCounts = new Map<number, number>();
  statesList: DynStateView[] = [];
  readonly calls: string[] = [];

  counters(slot: number): RuleCounters {
    return this.counterBySlot.get(slot) ?? { packets: 0, bytes: 0, lastMatch: 0 };
  }
  zeroCounters(slot: number): void {
    this.calls.push(`zero ${slot}`);
    this.counterBySlot.set(slot, { packets: 0, bytes: 0, lastMatch: 0 });
  }
  resetLog(slot: number): void {
    this.calls.push(`resetlog ${slot}`);
    this.logCounts.set(slot, 0);
  }
  states(includeExpired: boolean): DynStateView[] {
    return this.statesList.filter((s) => includeExpired || !s.expired);
  }
  removeStatesOf(slot: number): void {
    this.calls.push(`unstate ${slot}`);
  }
  flushStates(): void {
    this.calls.push('flushstates');
    this.statesList = [];
  }
  /** Sets the counters of the rule in this slot, as traffic would. */
  set(slot: number, packets: number, bytes: number, lastMatch = 0): void {
    this.counterBySlot.set(slot, { packets, bytes, lastMatch });
  }
}
