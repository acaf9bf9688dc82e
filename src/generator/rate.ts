/**
 * Rate limiting for pkt-gen -R. Every batch has its own target time on a fixed schedule (batch k
 * of n packets each is due at start + k * n / pps), as netmap's pkt-gen waits for each burst's
 * own time, so waking late never shifts the schedule nor lowers the average rate.
 *
 * What this adds to netmap's pkt-gen: a sender that fell behind (descheduled, stopped by a full
 * ring) catches up at most `maxBacklog` packets at once. Without that bound a sender that lost
 * 30 ms at 200 kpps sends 6000 frames back to back, which overflows a 1024-slot receive ring
 * that was keeping up perfectly well (VALE drops what does not fit); beyond the bound the schedule
 * moves forward instead, and the run takes that much longer.
 *
 * Waiting sleeps (Atomics.wait on a private word). Only when batches are at least
 * SPIN_TAIL_MIN_PERIOD_MS apart does the wait spin on the clock for its last SPIN_TAIL_MS, for
 * precise spacing at a cost of at most a tenth of a core. At rates where the catch-up bound
 * lasts less than a late wake-up (WAKE_LATE_MS: from 3 Mpps with pkt-gen's 448 packets) every wait is
 * spun out, or the rate would fall short. Between, close batches are not worth a spin:
 * the spin would fill the whole gap, and a sender that never leaves its CPU pushes everything
 * else the machine runs (V8's compiler threads of both processes above all) onto the
 * receiver's CPU, where each takes a whole time slice. Sleeping, a wake-up is late by up to
 * ~0.1 ms (the timer slack), the schedule then sends the batches that fell due together, and the
 * sender leaves its CPU idle most of the time. Measured on 2 vCPUs at -R 2.35M -b 64 (3 M
 * frames, four runs each, 2026-12-03): the sender used 0.57-0.61 s of CPU instead of 1.27, and
 * the receiver lost 1.4-2.1% instead of 2.7-3.7%.
 */
import { assert } from '../errors.js';
import { clock, monotonicMs, readClock, realtimeMs } from '../native/index.js';

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** The last part of a wait may be spent spinning: a sleep's wake-up is late by up to ~0.1 ms. */
export const SPIN_TAIL_MS = 0.1;
/** Batches closer than this are paced by sleeping alone (the spin would cost over 10% of a core). */
export const SPIN_TAIL_MIN_PERIOD_MS = 1;
/**
 * How late a short sleep wakes (Atomics.wait of 20 µs returned after 102 µs at the median, 141
 * at p99 here: the 50 µs timer slack and the wake-up). A sender whose catch-up bound covers less
 * time than this spins out its waits instead: each late wake-up would give up schedule, and
 * the rate would fall short (-R 10M gave 6.7 Mpps when it slept).
 */
export const WAKE_LATE_MS = 0.15;

/**
 * Milliseconds since the epoch with sub-millisecond resolution (comparable across threads, as
 * gettimeofday() is for netmap's pkt-gen). Allocates nothing: the loops read it per batch.
 */
export const nowMs = realtimeMs;

/**
 * Sleeps (blocking the thread) until the monotonic clock (monotonicMs) reaches `until`, spinning
 * for the last `spinTailMs` (default SPIN_TAIL_MS) and whatever the sleep left. That clock
 * allocates nothing: performance.now() made garbage on every read of the spin, and the minor
 * GCs it caused stopped the thread for milliseconds.
 */
export function sleepUntil(until: number, spinTailMs: number = SPIN_TAIL_MS): void {
  const ms = until - monotonicMs();
  if (ms > spinTailMs) Atomics.wait(sleeper, 0, 0, ms - spinTailMs);
  do readClock(); while (clock[0]! < until); // (a Float64Array read: never a boxed number)
}

/** Sleeps (blocking the thread) for `ms` milliseconds. */
export function sleepMs(ms: number): void {
  sleepUntil(monotonicMs() + ms);
}

/** pkt-gen clips the batch to rate/300 packets (at least 1) when a rate is set. */
export function clipBurst(burst: number, pps: number): number {
  if (pps <= 0) return burst;
  return Math.max(1, Math.min(burst, Math.floor(pps / 300)));
}

/** The time source of a RateLimiter: monotonicMs() and sleepUntil(), or a test's own. */
export interface Clock {
  now(): number;
  /** Returns at `until` or later; may spin for the last `spinTailMs` of the wait. */
  sleepUntil(until: number, spinTailMs: number): void;
}

const realClock: Clock = { now: monotonicMs, sleepUntil };

export class RateLimiter {
  /** When the next batch is due (clock ms); NaN before the first. */
  private due = NaN;
  private readonly clock: Clock;
  private readonly perPacketMs: number;
  private readonly maxBacklogMs: number;
  /** The spin tail of waits between batches under 1 ms apart: 0 (sleep alone) or Infinity (spin). */
  private readonly shortWaitSpinMs: number;
  /** How far the schedule moved forward (in packets' time) because the sender fell too far behind. */
  slippedPackets = 0;
  /** Largest lateness seen at a batch's start, in ms (how far behind the sender fell). */
  maxLateMs = 0;

  /**
   * `pps` > 0; `maxBacklog` (packets, at least 1): the most a late sender sends beyond its
   * schedule at once.
   */
  constructor(pps: number, maxBacklog: number, clock: Clock = realClock) {
    assert(pps > 0 && maxBacklog >= 1, 'RateLimiter: pps > 0 and maxBacklog >= 1');
    this.clock = clock;
    this.perPacketMs = 1000 / pps;
    this.maxBacklogMs = maxBacklog * this.perPacketMs;
    this.shortWaitSpinMs = this.maxBacklogMs >= WAKE_LATE_MS ? 0 : Infinity;
  }

  /** Waits until the next `n` packets are due, then books them. */
  take(n: number): void {
    const now = this.clock.now();
    if (Number.isNaN(this.due)) this.due = now;
    const late = now - this.due;
    if (late > 0) {
      if (late > this.maxLateMs) this.maxLateMs = late;
      // Behind by more than the backlog allows: forget the difference (the schedule moves on).
      if (late > this.maxBacklogMs) {
        this.slippedPackets += Math.round((late - this.maxBacklogMs) / this.perPacketMs);
        this.due = now - this.maxBacklogMs;
      }
    } else {
      this.clock.sleepUntil(this.due, n * this.perPacketMs >= SPIN_TAIL_MIN_PERIOD_MS ? SPIN_TAIL_MS : this.shortWaitSpinMs);
    }
    this.due += n * this.perPacketMs;
  }
}
