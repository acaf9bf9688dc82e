/**
 * Precise waiting for the dummynet output loop. setTimeout has a 1 ms grain and Node adds jitter,
 * so we block the calling thread instead: Atomics.wait on a private SharedArrayBuffer (it takes a
 * fractional millisecond timeout and sleeps in the kernel, no CPU burnt) for all but the last
 * `busyWaitNs`, then spin on the monotonic clock for the remainder. busyWaitNs = Infinity spins
 * for the whole wait (lowest error, one core busy).
 */
import { monotonicNs } from '../../native/index.js';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Monotonic time in nanoseconds as a float64 (exact to the ns for about 104 days of uptime); allocates nothing. */
export const nowNs = monotonicNs;

/** Default spin tail: covers the kernel's wake-up latency seen on this machine (dummynet/README.md). */
export const DEFAULT_BUSY_WAIT_NS = 300_000;

/**
 * Blocks until the monotonic clock (nowNs) reaches deadlineNs. Returns the lateness in ns
 * (>= 0; 0 or a few hundred ns when the busy tail absorbed the wake-up latency).
 */
export function sleepUntilNs(deadlineNs: number, busyWaitNs: number = DEFAULT_BUSY_WAIT_NS): number {
  let now = nowNs();
  const sleepNs = deadlineNs - now - busyWaitNs;
  if (sleepNs > 0) {
    Atomics.wait(sleeper, 0, 0, sleepNs / 1e6);
    now = nowNs();
  }
  while (now < deadlineNs) now = nowNs();
  return now - deadlineNs;
}
