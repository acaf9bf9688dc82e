/**
 * Wake-ups for interface ports. Port.poll() sleeps on the rings' futex words and relies on the
 * side that makes progress to call notify(); for an interface that side is the kernel. One
 * worker thread per thread that opens interface ports (started when a sleeper first arms a watched
 * ring, stopped with the last watched ring) waits in epoll_wait on the rings' descriptors and notifies a ring whose
 * descriptor became ready while somebody sleeps on it. The worker maps the ring memory itself
 * (same offsets in every thread's address space).
 *
 * A descriptor is in the epoll set only while somebody sleeps on one of its rings: the sleeper
 * adds it after announcing itself on the ring (rearm(), from Port.armWait through the adapter)
 * and takes it out when it wakes (release(), from Port.disarmWait). A descriptor in an epoll set
 * has a waiter on its socket, which makes the kernel take the socket's wait-queue lock and call
 * epoll for every frame received or transmit buffer freed: kept there for good, that cost pkt-gen
 * tx 8-10% of its rate. Registrations are one-shot, so a descriptor that stays readable wakes a
 * sleeper once; the thread never runs while the rings' owners are awake (an earlier design polled
 * and paused 1 ms, a thousand times a second while a forwarder was busy: 4-5% of a CPU each).
 */
import { Worker } from 'node:worker_threads';
import * as native from '../native/index.js';
import { shmDirectory, space } from '../memory/space.js';
import * as L from '../memory/layout.js';
import { offPinnedCpu, pinnedCpuOfThread } from '../ports/placement.js';

export const MAX_WATCH = 512;
export const C_GEN = 0, C_COUNT = 1, C_STOP = 2, C_DONE = 3, C_EPOLL = 4, C_EVENT = 5, C_READY = 6, C_ENTRIES = 8, ENTRY_WORDS = 4;
/** How long stop() waits for the worker to leave its loop. */
const STOP_WAIT_MS = 2000;

export interface Watch { fd: number; events: number; ringOffset: number; memId: number }

/** Watched rings by slot (the worker's table in ctrl is the same); null: free. */
const slots: (Watch | null)[] = new Array<Watch | null>(MAX_WATCH).fill(null);
/** Slots of each watch() call. */
const keys = new Map<number, number[]>();
/** Slots watching each descriptor. */
const byFd = new Map<number, number[]>();
/** Descriptors in the epoll set now. */
const registered = new Set<number>();
let nextKey = 1;
let worker: Worker | null = null;
let ctrl: Int32Array | null = null;
let epfd = -1;
let evfd = -1;
const one = Buffer.alloc(8);
one.writeUInt32LE(1, 0);

/** Copies the slot table into ctrl for the worker, which reloads it before its next events. */
function publish(c: Int32Array): void {
  let high = 0;
  for (let i = 0; i < MAX_WATCH; i++) {
    const w = slots[i] ?? null;
    const e = C_ENTRIES + i * ENTRY_WORDS;
    c[e] = w === null ? -1 : w.fd;
    c[e + 1] = w === null ? 0 : w.events;
    c[e + 2] = w === null ? 0 : w.ringOffset;
    c[e + 3] = w === null ? -1 : w.memId;
    if (w !== null) high = i + 1;
  }
  Atomics.store(c, C_COUNT, high);
  Atomics.add(c, C_GEN, 1);
}

function start(): Int32Array {
  if (worker !== null && ctrl !== null) return ctrl;
  epfd = native.epollCreate();
  evfd = native.eventFd();
  native.epollCtl(epfd, native.EPOLL_CTL_ADD, evfd, native.EPOLLIN, -1);
  const c = new Int32Array(new SharedArrayBuffer(4 * (C_ENTRIES + MAX_WATCH * ENTRY_WORDS)));
  c[C_EPOLL] = epfd;
  c[C_EVENT] = evfd;
  ctrl = c;
  // started off a pinned packet thread's CPU, then onto it (placement.ts)
  worker = offPinnedCpu(() => new Worker(new URL('./notifier-worker.js', import.meta.url), {
    workerData: { dir: shmDirectory(), ctrl: c.buffer, joinCpu: pinnedCpuOfThread() },
  }));
  worker.unref();
  worker.on('error', () => { worker = null; ctrl = null; });
  return c;
}

function stop(): void {
  if (ctrl !== null) {
    Atomics.store(ctrl, C_STOP, 1);
    native.writeAt(evfd, native.bufferAddress(one), 8);
    // Wait until the worker has left its loop (it sees C_STOP at once, or right after loading its
    // modules if it is still starting). A thread that ends terminates its workers, and a worker
    // terminated in the middle of koffi's set-up aborts the whole process.
    Atomics.wait(ctrl, C_DONE, 0, STOP_WAIT_MS);
  }
  // The worker is unref'ed, so it never holds the process open. It closes no descriptor; its two
  // are closed here, once it has left epoll_wait.
  registered.clear();
  if (epfd >= 0) native.closeFd(epfd);
  if (evfd >= 0) native.closeFd(evfd);
  epfd = -1;
  evfd = -1;
  worker = null;
  ctrl = null;
}

const NO_SLOTS: readonly number[] = [];

/** Events of the rings on `fd` that somebody sleeps on. */
function interest(fd: number): number {
  const i32 = space().i32;
  let events = 0;
  // indexed: a for-of here made an array iterator on every sleep of an interface port
  const list = byFd.get(fd) ?? NO_SLOTS;
  for (let k = 0; k < list.length; k++) {
    const w = slots[list[k]!]!;
    if (Atomics.load(i32, (w.ringOffset + L.KR_WAITERS) >>> 2) > 0) events |= w.events;
  }
  return events;
}

/**
 * Whether the notifier thread is in its loop. It starts at the first sleeper and takes tens of
 * milliseconds to load its modules (70 ms and more under load); until then nothing wakes a sleeper
 * on readiness, so Port.poll sleeps in 1 ms slices (InterfaceAdapter.sleepCapMs). A receiver
 * that slept once before traffic came had slept its whole slice, while frames overflowed its
 * ring: pkt-gen rx and `netmap dump` of a veth lost 3-5% of 1 M frames at 1.4 Mpps when the
 * sender started right after their start line (2026-12-03).
 */
export function notifierReady(): boolean {
  return ctrl !== null && Atomics.load(ctrl, C_READY) === 1;
}

/**
 * Starts watching `list`; returns a key for unwatch(). The thread itself starts with the first
 * sleeper (rearm): a port opened and closed without ever sleeping (pkt-gen -n 1) costs no thread,
 * whose start-up, under load, took longer than everything else an open does.
 */
export function watch(list: Watch[]): number {
  const key = nextKey++;
  const mine: number[] = [];
  for (const w of list) {
    const s = slots.indexOf(null);
    if (s < 0) break; // beyond MAX_WATCH rings in a thread, a sleeper wakes on its timeout only
    slots[s] = w;
    mine.push(s);
    const same = byFd.get(w.fd);
    if (same === undefined) byFd.set(w.fd, [s]); else same.push(s);
  }
  keys.set(key, mine);
  if (ctrl !== null) publish(ctrl);
  return key;
}

/** Stops watching (before the descriptors close: their numbers may be reused at once). */
export function unwatch(key: number): void {
  const mine = keys.get(key);
  if (mine === undefined) return;
  keys.delete(key);
  for (const s of mine) {
    const fd = slots[s]!.fd;
    slots[s] = null;
    const left = (byFd.get(fd) ?? []).filter((x) => x !== s);
    if (left.length > 0) byFd.set(fd, left);
    else {
      byFd.delete(fd);
      if (registered.delete(fd)) native.epollCtl(epfd, native.EPOLL_CTL_DEL, fd, 0, 0);
    }
  }
  if (keys.size === 0) stop();
  else if (ctrl !== null) publish(ctrl);
}

/**
 * Puts descriptor `fd` in the epoll set for the rings on it that somebody sleeps on. Call after
 * announcing a sleeper on such a ring (KR_WAITERS) and reading its wake word: readiness from
 * then on, and readiness already there, wakes it.
 */
export function rearm(fd: number): void {
  if (!byFd.has(fd)) return;
  const events = interest(fd);
  if (events === 0) return;
  if (ctrl === null) publish(start());
  const op = registered.has(fd) ? native.EPOLL_CTL_MOD : native.EPOLL_CTL_ADD;
  let r = native.epollCtl(epfd, op, fd, events | native.EPOLLONESHOT, fd);
  // ENOENT: the number now names another file than the one registered (an AF_XDP socket remade
  // over a larger UMEM in its place, port.ts growUmem): the kernel dropped the old entry
  if (r === -2 && op === native.EPOLL_CTL_MOD) r = native.epollCtl(epfd, native.EPOLL_CTL_ADD, fd, events | native.EPOLLONESHOT, fd);
  if (r === 0) registered.add(fd);
}

/** Takes `fd` out of the epoll set once nobody sleeps on its rings (after the waiter left). */
export function release(fd: number): void {
  if (!registered.has(fd) || interest(fd) !== 0) return;
  registered.delete(fd);
  native.epollCtl(epfd, native.EPOLL_CTL_DEL, fd, 0, 0);
}
