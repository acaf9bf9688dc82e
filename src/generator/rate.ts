/**
 * Rate limiting for pkt-gen -R: batches are released on a schedule of `batch / pps` seconds each.
 * Waits longer than a millisecond sleep (Atomics.wait on a private word); the last stretch spins
 * on the clock, as pkt-gen's wait_time() does, to keep sub-millisecond precision.
 */
import { performance } from 'node:perf_hooks';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Milliseconds since the epoch with sub-millisecond resolution (comparable across threads). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Sleeps (blocking the thread) for `ms` milliseconds, spinning for the last 0.3 ms. */
export function sleepMs(ms: number): void {
  const until = performance.now() + ms;
  if (ms > 1) Atomics.wait(sleeper, 0, 0, ms - 0.3);
  while (performance.now() < until) { /* spin */ }
}

/** pkt-gen clips the batch to rate/300 packets (at least 1) when a rate is set. */
export function clipBurst(burst: number, pps: number): number {
  if (pps <= 0) return burst;
  return Math.max(1, Math.min(burst, Math.floor(pps / 300)));
}

export class RateLimiter {
  private next = 0;
  private readonly perPacketMs: number;

  /** `pps` > 0. */
  constructor(pps: number) {
    this.perPacketMs = 1000 / pps;
  }

  /** Waits until `n` more packets may go, then books them. */
  take(n: number): void {
    const now = performance.now();
    if (this.next === 0 || now - this.next > 1000) this.next = now; // start, or far behind: no catch-up burst
    else if (this.next > now) sleepMs(this.next - now);
    this.next += n * this.perPacketMs;
  }
}
