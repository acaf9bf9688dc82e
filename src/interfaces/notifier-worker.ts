/**
 * The notifier thread (see notifier.ts): turns kernel readiness of packet sockets and TAP
 * descriptors into netmap ring wake-ups. It sleeps in poll() on the receive descriptors (and on
 * the transmit ones of rings somebody waits on) and calls notify() on a ready ring that has a
 * sleeper (KR_WAITERS) — the same wake-up a peer port would give — so Port.poll() needs nothing
 * special for interface ports.
 */
import { workerData } from 'node:worker_threads';

const data = workerData as { dir: string; ctrl: SharedArrayBuffer };
process.env.NETMAP_TS_DIR = data.dir;
const native = await import('../native/index.js');
const { registry } = await import('../memory/registry.js');
const sync = await import('../rings/sync.js');
const L = await import('../memory/layout.js');
const { MAX_WATCH, C_GEN, C_COUNT, C_STOP, C_DONE, C_ENTRIES, ENTRY_WORDS } = await import('./notifier.js');

const ctrl = new Int32Array(data.ctrl);
const reg = registry();
const sp = reg.sp;
const pollfds = Buffer.alloc(8 * MAX_WATCH);
const fds = new Int32Array(MAX_WATCH), events = new Int32Array(MAX_WATCH), rings = new Int32Array(MAX_WATCH);
const active = new Int32Array(MAX_WATCH);
let gen = -1, count = 0;

try {
  while (Atomics.load(ctrl, C_STOP) === 0) {
    const g = Atomics.load(ctrl, C_GEN);
    if (g !== gen) {
      gen = g;
      count = Math.min(Atomics.load(ctrl, C_COUNT), MAX_WATCH);
      for (let i = 0; i < count; i++) {
        const e = C_ENTRIES + i * ENTRY_WORDS;
        fds[i] = ctrl[e]!;
        events[i] = ctrl[e + 1]!;
        rings[i] = ctrl[e + 2]!;
        const memId = ctrl[e + 3]!;
        try { reg.region(memId); } catch { count = 0; }
      }
    }
    // Receive descriptors are always watched (poll sleeps in the kernel while nothing arrives);
    // transmit descriptors only while somebody waits on their ring (they are writable most of the
    // time). The poll timeout bounds how late a new transmit waiter is noticed.
    let n = 0;
    for (let i = 0; i < count; i++) {
      if (events[i] !== native.POLLIN && Atomics.load(sp.i32, (rings[i]! + L.KR_WAITERS) >>> 2) <= 0) continue;
      pollfds.writeInt32LE(fds[i]!, 8 * n);
      pollfds.writeInt16LE(events[i]!, 8 * n + 4);
      pollfds.writeInt16LE(0, 8 * n + 6);
      active[n++] = i;
    }
    if (n === 0) {
      Atomics.wait(ctrl, C_GEN, gen, 10);
      continue;
    }
    const r = native.poll(pollfds, n, 10);
    if (r <= 0) continue;
    for (let k = 0; k < n; k++) {
      if (pollfds.readInt16LE(8 * k + 6) === 0) continue;
      const ring = rings[active[k]!]!;
      // a ready ring nobody sleeps on: its owner is awake and will sync by itself
      if (Atomics.load(sp.i32, (ring + L.KR_WAITERS) >>> 2) > 0) sync.notify(sp, ring);
    }
    // something is ready: let its owner consume before looking again (no spinning on a level)
    Atomics.wait(ctrl, C_GEN, gen, 1);
  }
} finally {
  // told to stop (or failed): say so, so that stop() and the thread ending after it wait no longer
  Atomics.store(ctrl, C_DONE, 1);
  Atomics.notify(ctrl, C_DONE);
}
