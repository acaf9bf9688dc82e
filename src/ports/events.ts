/**
 * Event-loop readiness for ports: netmap's kqueue/epoll counterpart for a thread that must never
 * block (the main thread of a Node.js process).
 *
 *   const revents = await waitPort(port, POLLIN, 1000);   // or port.wait(POLLIN, 1000)
 *   for await (const ev of portEvents(port, POLLIN)) { ... }
 *
 * How: one lazily created worker thread per thread that uses this API blocks in futex_waitv on the
 * wake words (KR_WAKE) of the rings the pending waits concern, plus a control word living in a
 * private shared page of this thread (absolute addresses are valid in every thread of a process).
 * When woken it posts a message; the owning thread re-polls with Port.pollOnce() and resolves what
 * is ready. Changing the set of waits bumps the control word, which releases the worker at once.
 * Timeouts are timers of the owning thread. The worker is referenced only while waits are pending,
 * so an idle port never keeps the process alive.
 */
import { Worker } from 'node:worker_threads';
import * as native from '../native/index.js';
import { space, type AddressSpace } from '../memory/space.js';
import { NetmapError } from '../errors.js';
import { Port, POLLIN, POLLOUT, POLLERR } from './port.js';
import { offPinnedCpu, pinnedCpuOfThread } from './placement.js';

/** futex_waitv takes at most 128 words; beyond that the waiter also wakes on this period. */
const MAX_WORDS = 128;
const DEGRADED_PERIOD_MS = 10;
/** The worker never sleeps longer than this (so process exit never waits on it for long). */
const WORKER_CAP_MS = 1000;

interface Pending {
  port: Port;
  events: number;
  resolve: (revents: number) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | null;
  signal: AbortSignal | null;
  onAbort: (() => void) | null;
  done: boolean;
}

class Waiter {
  readonly sp: AddressSpace;
  readonly worker: Worker;
  /** Space offset and absolute address of the control word. */
  readonly ctl: number;
  readonly ctlAddress: number;
  readonly pending = new Set<Pending>();
  /** Ports armed for the request in flight, with the events they were armed for. */
  readonly armed = new Map<Port, number>();
  busy = false;
  dead = false;
  refd = false;

  constructor() {
    this.sp = space();
    const fd = native.openFile('/dev/zero', native.O_RDWR);
    try {
      this.ctl = this.sp.mapLocal(fd, 4096);
    } finally {
      native.closeFd(fd);
    }
    this.ctlAddress = this.sp.absolute(this.ctl);
    // started off a pinned thread's CPU, then onto it (placement.ts)
    this.worker = offPinnedCpu(() => new Worker(new URL('./events-worker.js', import.meta.url), { workerData: { joinCpu: pinnedCpuOfThread() } }));
    this.worker.on('message', () => this.onWake());
    this.worker.on('error', (e) => this.onDeath(e));
    this.worker.on('exit', () => this.onDeath(new Error('the event-loop waiter thread exited')));
    // After the listeners: adding the first 'message' listener refs the worker's message port, so
    // an unref() before it is undone, and a waiter that was never needed (its first look found
    // the wait ready, setRef never ran) kept the process alive for good (nodejs/node#53036; seen
    // as `netmap extcap` lingering after its capture ended, 1 test run in 8).
    this.worker.unref();
  }

  /** Releases the worker from its futex wait (no-op if it is idle). */
  kick(): void {
    Atomics.add(this.sp.i32, this.ctl >>> 2, 1);
    native.futexWake(this.ctlAddress);
  }

  add(p: Pending): void {
    this.pending.add(p);
    this.schedule();
  }

  /** After waits were settled from outside a re-poll: let an idle waiter go. */
  idleCheck(): void {
    if (this.pending.size === 0) this.schedule();
  }

  /** Disarms every armed port (before re-polling or before one of them closes). */
  disarmAll(): void {
    for (const [port, events] of this.armed) {
      if (!port.isClosed) port.disarmWait(events);
    }
    this.armed.clear();
  }

  disarmPort(port: Port): void {
    const events = this.armed.get(port);
    if (events === undefined) return;
    port.disarmWait(events);
    this.armed.delete(port);
  }

  /** Re-polls every pending wait and resolves the ready ones; returns how many stay pending. */
  checkAll(): number {
    for (const p of this.pending) {
      if (p.done) { this.pending.delete(p); continue; }
      let revents: number;
      try {
        revents = p.port.isClosed ? POLLERR : p.port.pollOnce(p.events);
      } catch {
        revents = POLLERR;
      }
      if ((revents & (p.events | POLLERR)) !== 0) settle(p, revents);
    }
    return this.pending.size;
  }

  schedule(): void {
    if (this.dead) return;
    if (this.busy) {
      // A request is in flight: release the worker, onWake() re-arms with the new set.
      this.kick();
      return;
    }
    if (this.checkAll() === 0) { this.setRef(false); return; }
    // Arm: announce ourselves on each port's rings, then check once more (a peer may have made
    // progress between the check above and the arming), then hand the words to the worker.
    const union = new Map<Port, number>();
    for (const p of this.pending) union.set(p.port, (union.get(p.port) ?? 0) | p.events);
    const addresses: number[] = [this.ctlAddress];
    const values: number[] = [Atomics.load(this.sp.i32, this.ctl >>> 2)];
    for (const [port, events] of union) {
      port.armWait(events);
      this.armed.set(port, events);
      port.appendArmedWords(addresses, values);
    }
    if (this.checkAll() === 0) { this.disarmAll(); this.setRef(false); return; }
    let capMs = WORKER_CAP_MS;
    if (addresses.length > MAX_WORDS) { addresses.length = MAX_WORDS; values.length = MAX_WORDS; capMs = DEGRADED_PERIOD_MS; }
    this.busy = true;
    this.setRef(true);
    this.worker.postMessage({ addresses, values, capMs });
  }

  onWake(): void {
    this.busy = false;
    this.disarmAll();
    this.schedule();
  }

  setRef(on: boolean): void {
    if (on === this.refd) return;
    this.refd = on;
    if (on) this.worker.ref(); else this.worker.unref();
  }

  onDeath(e: unknown): void {
    if (this.dead) return;
    this.dead = true;
    if (waiter === this) waiter = null;
    for (const p of this.pending) {
      if (p.done) continue;
      p.done = true;
      cleanup(p);
      p.reject(e);
    }
    this.pending.clear();
    this.armed.clear();
    this.sp.unmapLocal(this.ctl, 4096);
  }
}

let waiter: Waiter | null = null;
let exitHookInstalled = false;

function getWaiter(): Waiter {
  if (waiter === null || waiter.dead) {
    waiter = new Waiter();
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // Release a worker sleeping in the kernel so that process exit never waits on it.
      process.on('exit', () => { if (waiter !== null && !waiter.dead) waiter.kick(); });
    }
  }
  return waiter;
}

function cleanup(p: Pending): void {
  if (p.timer !== null) { clearTimeout(p.timer); p.timer = null; }
  if (p.signal !== null && p.onAbort !== null) p.signal.removeEventListener('abort', p.onAbort);
}

/** Resolves a wait. Never re-schedules (it runs inside checkAll); callers outside call idleCheck(). */
function settle(p: Pending, revents: number): void {
  if (p.done) return;
  p.done = true;
  cleanup(p);
  if (waiter !== null) waiter.pending.delete(p);
  p.resolve(revents);
}

// Disarm before a port closes: its rings may be unmapped by the close.
const originalClose = Port.prototype.close;
Port.prototype.close = function close(this: Port): void {
  const w = waiter;
  if (w !== null && !w.dead && !this.isClosed) {
    w.disarmPort(this);
    originalClose.call(this);
    for (const p of w.pending) if (p.port === this) settle(p, POLLERR);
    if (w.busy) w.kick(); else w.idleCheck();
    return;
  }
  originalClose.call(this);
};

export interface WaitOptions {
  /** Aborting rejects the wait with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * netmap's poll() for the event loop: resolves with the ready events (POLLIN, POLLOUT, POLLERR)
 * as soon as one asked for is ready, or with 0 after `timeoutMs` (negative: no limit; 0: just
 * check). Syncs the rings like poll() does. Never blocks the calling thread. A port closed while
 * waited on resolves with POLLERR.
 */
export function waitPort(port: Port, events: number, timeoutMs: number, opts: WaitOptions = {}): Promise<number> {
  if (!(port instanceof Port)) return Promise.reject(new TypeError('waitPort: not a Port'));
  if (typeof events !== 'number' || (events & ~(POLLIN | POLLOUT)) !== 0 || events === 0) {
    return Promise.reject(new NetmapError('EINVAL', `waitPort: events must be POLLIN and/or POLLOUT, not ${String(events)}`));
  }
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) {
    return Promise.reject(new NetmapError('EINVAL', `waitPort: bad timeout ${String(timeoutMs)}`));
  }
  const signal = opts.signal ?? null;
  if (signal !== null && signal.aborted) return Promise.reject(signal.reason);
  let first: number;
  try {
    first = port.isClosed ? POLLERR : port.pollOnce(events);
  } catch (e) {
    return Promise.reject(e);
  }
  if ((first & (events | POLLERR)) !== 0 || timeoutMs === 0) return Promise.resolve(first);
  return new Promise<number>((resolve, reject) => {
    const p: Pending = { port, events, resolve, reject, timer: null, signal, onAbort: null, done: false };
    if (timeoutMs > 0) {
      p.timer = setTimeout(() => {
        let revents = 0;
        try { revents = port.isClosed ? POLLERR : port.pollOnce(events); } catch { revents = POLLERR; }
        settle(p, revents & (events | POLLERR));
        waiter?.idleCheck();
      }, timeoutMs);
    }
    if (signal !== null) {
      p.onAbort = () => {
        if (p.done) return;
        p.done = true;
        cleanup(p);
        if (waiter !== null) { waiter.pending.delete(p); waiter.idleCheck(); }
        reject(signal.reason);
      };
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    try {
      getWaiter().add(p);
    } catch (e) {
      p.done = true;
      cleanup(p);
      reject(e);
    }
  });
}

/**
 * Async iterator of readiness: yields the ready events each time `events` is ready (level
 * triggered, as poll(): consume the ring before the next iteration or it yields at once again).
 * Ends when the port is closed or the signal aborts.
 */
export async function* portEvents(port: Port, events: number, opts: WaitOptions = {}): AsyncGenerator<number, void, void> {
  for (;;) {
    if (port.isClosed) return;
    let revents: number;
    try {
      revents = await waitPort(port, events, -1, opts);
    } catch (e) {
      if (opts.signal?.aborted === true) return;
      throw e;
    }
    if (port.isClosed) return;
    yield revents;
  }
}

/** How many waits are pending in this thread (tests, leak checks). */
export function pendingWaits(): number {
  return waiter === null ? 0 : waiter.pending.size;
}

declare module './port.js' {
  interface Port {
    /** Event-loop poll(): see waitPort(). */
    wait(events: number, timeoutMs: number, opts?: WaitOptions): Promise<number>;
    /** Async iterator of readiness: see portEvents(). */
    events(events: number, opts?: WaitOptions): AsyncGenerator<number, void, void>;
  }
}

Port.prototype.wait = function wait(this: Port, events: number, timeoutMs: number, opts?: WaitOptions): Promise<number> {
  return waitPort(this, events, timeoutMs, opts);
};
Port.prototype.events = function events(this: Port, ev: number, opts?: WaitOptions): AsyncGenerator<number, void, void> {
  return portEvents(this, ev, opts);
};
