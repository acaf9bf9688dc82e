/**
 * The data-path loop of one kipfw thread (the main thread with -p 1, each worker with -p N): a
 * pass of the path, then, when nothing moved, a short re-check or a sleep on the ports, never
 * past dummynet's next due time minus the spin margin. With `spin` the loop never sleeps while
 * dummynet holds packets (a busy-wait: the thread keeps a CPU, and a packet leaves as soon as the
 * clock reaches its time instead of after a kernel wake-up).
 */
import type { Port } from '../ports/port.js';
import { waitPorts } from '../interfaces/bridge.js';
import * as native from '../native/index.js';
import type { FirewallPath } from './path.js';
import type { DnHandoff } from './handoff.js';

/** How long an idle data path re-checks its rings before it sleeps. */
export const IDLE_SPIN_MS = 0.05;
/** Default margin (µs) before a due packet that is spent re-checking instead of sleeping. */
export const DUE_SPIN_US = 200;

export interface LoopOptions {
  /** Re-check instead of sleeping when dummynet has a packet due within this many ns. */
  spinNs: number;
  /** Never sleep while dummynet holds packets (`kipfw --spin`). */
  spin: boolean;
  /** The owner of dummynet with workers: also wake on the hand-off doorbell. */
  bell: DnHandoff | null;
}

export class PathLoop {
  private idle = 0;
  private idleSince = 0;

  constructor(private readonly path: FirewallPath, private readonly ports: Port[], private readonly o: LoopOptions) {}

  /**
   * Turns until the monotonic clock passes `untilNs` or `stopped()` says so. A plain synchronous
   * loop, kept out of the caller's async function: there its clock readings lived in the
   * generator's frame as boxed numbers, garbage on every turn (a minor GC every ~150 ms at
   * 20 kpps, each a pause that released dummynet packets late).
   */
  turnUntil(untilNs: number, stopped: () => boolean): void {
    do this.turn(); while (!stopped() && (native.readClockNs(), native.clockNs[0]!) < untilNs);
  }

  /** One pass and, when nothing moved, a re-check or a bounded sleep. Returns what the pass moved. */
  turn(): number {
    const moved = this.path.step();
    if (moved > 0) { this.idle = 0; this.idleSince = 0; return moved; }
    // re-check for a few tens of microseconds before sleeping: a sender's next batch is usually
    // that close, and a sleeper costs the sender a futex wake per batch
    // clocks read into a typed array, never returned: a returned double the compiler did not
    // inline is a heap number, garbage on every idle pass
    native.readClockNs();
    const t = native.clockNs[0]! * 1e-6;
    if (this.idleSince === 0) this.idleSince = t;
    if (t - this.idleSince < IDLE_SPIN_MS) return 0;
    const due = this.path.nextDue[0]!;
    if (due !== Infinity && this.o.spin) return 0;
    native.readClockNs();
    const dueIn = due - native.clockNs[0]!;
    if (dueIn <= this.o.spinNs) return 0; // due soon: keep re-checking
    this.idle++;
    let timeoutMs = this.idle > 2 ? 20 : 1;
    const dueMs = (dueIn - this.o.spinNs) / 1e6;
    if (dueMs < timeoutMs) timeoutMs = dueMs;
    const bell = this.o.bell;
    if (bell === null) {
      waitPorts(this.ports, timeoutMs);
    } else {
      // announce the sleep, then look once more: a producer that posted before seeing the
      // announcement is seen here, one that posts after it rings the bell
      const word = bell.sleeping();
      if (!bell.anyPending()) waitPorts(this.ports, timeoutMs, word);
      bell.awake();
    }
    return 0;
  }
}
