/**
 * Wake-ups for interface ports. Port.poll() sleeps on the rings' futex words and relies on the
 * side that makes progress to call notify(); for an interface that side is the kernel. One
 * worker thread per process (started with the first watched ring, stopped with the last) polls
 * the descriptors of the rings that somebody sleeps on and notifies those rings. The worker maps
 * the ring memory itself (same offsets in every thread's address space).
 */
import { Worker } from 'node:worker_threads';
import { shmDirectory } from '../memory/space.js';

export const MAX_WATCH = 512;
export const C_GEN = 0, C_COUNT = 1, C_STOP = 2, C_DONE = 3, C_ENTRIES = 4, ENTRY_WORDS = 4;
/** How long stop() waits for the worker to leave its loop. */
const STOP_WAIT_MS = 2000;

export interface Watch { fd: number; events: number; ringOffset: number; memId: number }

const watched = new Map<number, Watch[]>();
let nextKey = 1;
let worker: Worker | null = null;
let ctrl: Int32Array | null = null;

function publish(): void {
  const all: Watch[] = [];
  for (const list of watched.values()) all.push(...list);
  if (all.length === 0) {
    stop();
    return;
  }
  if (worker === null || ctrl === null) {
    ctrl = new Int32Array(new SharedArrayBuffer(4 * (C_ENTRIES + MAX_WATCH * ENTRY_WORDS)));
    worker = new Worker(new URL('./notifier-worker.js', import.meta.url), {
      workerData: { dir: shmDirectory(), ctrl: ctrl.buffer },
    });
    worker.unref();
    worker.on('error', () => { worker = null; ctrl = null; });
  }
  const c = ctrl;
  const n = Math.min(all.length, MAX_WATCH);
  for (let i = 0; i < n; i++) {
    const e = C_ENTRIES + i * ENTRY_WORDS;
    c[e] = all[i]!.fd;
    c[e + 1] = all[i]!.events;
    c[e + 2] = all[i]!.ringOffset;
    c[e + 3] = all[i]!.memId;
  }
  Atomics.store(c, C_COUNT, n);
  Atomics.add(c, C_GEN, 1);
  Atomics.notify(c, C_GEN);
}

function stop(): void {
  if (ctrl !== null) {
    Atomics.store(ctrl, C_STOP, 1);
    Atomics.add(ctrl, C_GEN, 1);
    Atomics.notify(ctrl, C_GEN);
    // Wait until the worker has left its loop (it sees C_STOP within a few ms, or right after
    // loading its modules if it is still starting). A thread that ends terminates its workers,
    // and a worker terminated in the middle of koffi's set-up aborts the whole process.
    Atomics.wait(ctrl, C_DONE, 0, STOP_WAIT_MS);
  }
  // The worker is unref'ed, so it never holds the process open. Descriptors it may still poll
  // are only read, never closed by it.
  worker = null;
  ctrl = null;
}

/** Starts watching `list`; returns a key for unwatch(). */
export function watch(list: Watch[]): number {
  const key = nextKey++;
  watched.set(key, list);
  publish();
  return key;
}

export function unwatch(key: number): void {
  if (watched.delete(key)) publish();
}
