/**
 * A mutex in shared memory that survives its owner's death. The lock word holds the owner's
 * thread id (Linux thread ids are unique system-wide, so kill(tid, 0) tells whether it lives);
 * a waiter that finds the owner dead takes the lock over. Used for control operations only
 * (creating ports, attaching to switches, allocating buffers); the packet paths are lock-free.
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { fail } from '../errors.js';

const pauseWord = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the calling thread for `ms` milliseconds (no spinning): for waits in control paths. */
export function pause(ms: number): void {
  Atomics.wait(pauseWord, 0, 0, ms);
}

let myTid = 0;
/** Thread id of the calling thread (cached). */
export function selfTid(): number {
  if (myTid === 0) myTid = native.gettid();
  return myTid;
}

/**
 * Whether thread `tid` still runs. A zombie (killed, not yet reaped by its parent) still answers
 * kill(tid, 0) but holds nothing any more: it counts as dead, or a parent that kills a child and
 * then takes a lock in the same synchronous step would wait on it until the timeout.
 */
export function ownerAlive(tid: number): boolean {
  if (!native.processAlive(tid)) return false;
  try {
    const stat = fs.readFileSync(`/proc/${tid}/stat`, 'latin1');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc: trust kill()
  }
}

/**
 * Acquires the lock at word index `word` (an Int32Array index) of `i32`. `absolute` is the word's
 * address for the futex. Waits at most `timeoutMs`, then fails with EBUSY.
 * Returns true if the lock was taken over from a dead owner (the caller may need to repair).
 */
export function lock(i32: Int32Array, word: number, absolute: number, timeoutMs = 10000): boolean {
  const me = selfTid();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const owner = Atomics.compareExchange(i32, word, 0, me);
    if (owner === 0) return false;
    if (owner === me) fail('EBUSY', 'lock already held by this thread (recursive use is a bug)');
    if (!ownerAlive(owner)) {
      if (Atomics.compareExchange(i32, word, owner, me) === owner) return true;
      continue;
    }
    if (Date.now() > deadline) fail('EBUSY', `timed out waiting for a lock held by thread ${owner}`);
    native.futexWait(absolute, owner, 5);
  }
}

export function unlock(i32: Int32Array, word: number, absolute: number): void {
  Atomics.store(i32, word, 0);
  native.futexWake(absolute, 1);
}

/** Non-blocking attempt; a dead owner's lock is taken over. */
export function tryLock(i32: Int32Array, word: number): boolean {
  const me = selfTid();
  const owner = Atomics.compareExchange(i32, word, 0, me);
  if (owner === 0) return true;
  if (owner !== me && !ownerAlive(owner)) return Atomics.compareExchange(i32, word, owner, me) === owner;
  return false;
}

export function tryUnlock(i32: Int32Array, word: number): void {
  Atomics.store(i32, word, 0);
}
