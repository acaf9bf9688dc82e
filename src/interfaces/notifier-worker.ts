/**
 * The notifier thread (see notifier.ts): turns kernel readiness of packet sockets and TAP
 * descriptors into netmap ring wake-ups. It sleeps in epoll_wait on the descriptors (registered
 * one-shot, re-armed by each sleeper) and calls notify() on each ring of a ready descriptor that
 * has a sleeper (KR_WAITERS) — the same wake-up a peer port would give — so Port.poll() needs
 * nothing special for interface ports.
 */
import { workerData } from 'node:worker_threads';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const data = workerData as { dir: string; ctrl: SharedArrayBuffer; joinCpu: number };
process.env.NETMAP_TS_DIR = data.dir;
const native = await import('../native/index.js');
const { registry } = await import('../memory/registry.js');
const sync = await import('../rings/sync.js');
const L = await import('../memory/layout.js');
const { MAX_WATCH, C_GEN, C_COUNT, C_STOP, C_DONE, C_EPOLL, C_EVENT, C_READY, C_ENTRIES, ENTRY_WORDS } = await import('./notifier.js');

const ctrl = new Int32Array(data.ctrl);
const reg = registry();
const sp = reg.sp;
const MAX_EVENTS = 64;
const events = Buffer.alloc(MAX_EVENTS * native.EPOLL_EVENT_SIZE);
const fds = new Int32Array(MAX_WATCH), rings = new Int32Array(MAX_WATCH);
const drain = Buffer.alloc(8);
let gen = -1, count = 0;

/** Reloads the slot table after a change (mapping the memory of new rings). */
function reload(): void {
  const g = Atomics.load(ctrl, C_GEN);
  if (g === gen) return;
  gen = g;
  count = Math.min(Atomics.load(ctrl, C_COUNT), MAX_WATCH);
  for (let i = 0; i < count; i++) {
    const e = C_ENTRIES + i * ENTRY_WORDS;
    fds[i] = ctrl[e]!;
    rings[i] = ctrl[e + 2]!;
    if (fds[i]! < 0) continue;
    try { reg.region(ctrl[e + 3]!); } catch { fds[i] = -1; }
  }
}

/**
 * Waits, up to `maxMs`, for this isolate's first full garbage collection: V8 runs one, 5-13 ms
 * long, soon after the address space's 3 GiB ArrayBuffer is made ("external memory pressure").
 * Run in the loop, after joining a packet thread's CPU, it stopped that thread while frames came
 * in (pkt-gen rx of a veth lost 0.25-0.3% of 2 M frames, its start included). Sleepers meanwhile
 * look at their rings every millisecond (notifier.ts notifierReady).
 */
async function firstFullGc(maxMs: number): Promise<void> {
  let seen = false;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) seen = true;
  });
  obs.observe({ entryTypes: ['gc'] });
  const end = Date.now() + maxMs;
  while (!seen && Date.now() < end && Atomics.load(ctrl, C_STOP) === 0) await new Promise((r) => setTimeout(r, 2));
  obs.disconnect();
}

try {
  const epfd = ctrl[C_EPOLL]!, evfd = ctrl[C_EVENT]!;
  // started off a pinned packet thread's CPU; it runs only while that thread sleeps: join it
  // there, once the start-up's garbage is collected
  if (data.joinCpu >= 0) {
    await firstFullGc(300);
    try { native.setAffinity(0, data.joinCpu); } catch { /* stay where we are */ }
  }
  Atomics.store(ctrl, C_READY, 1); // sleepers may sleep long from now on
  while (Atomics.load(ctrl, C_STOP) === 0) {
    // the timeout is a safety net only: stop() writes the eventfd
    const n = native.epollWait(epfd, events, MAX_EVENTS, 1000);
    reload();
    for (let k = 0; k < n; k++) {
      const fd = native.epollData(events, k);
      if (fd < 0) { native.readAt(evfd, native.bufferAddress(drain), 8); continue; }
      for (let i = 0; i < count; i++) {
        if (fds[i] !== fd) continue;
        // a ready ring nobody sleeps on: its owner is awake, syncs by itself, and re-arms the
        // descriptor when it sleeps again
        const ring = rings[i]!;
        if (Atomics.load(sp.i32, (ring + L.KR_WAITERS) >>> 2) > 0) sync.notify(sp, ring);
      }
    }
  }
} finally {
  // told to stop (or failed): say so, so that stop() and the thread ending after it wait no longer
  Atomics.store(ctrl, C_DONE, 1);
  Atomics.notify(ctrl, C_DONE);
}
