/**
 * The backend's doorbell thread: it sleeps in epoll_wait on the backend's descriptors (the
 * listening socket, the connection, the kick eventfds, all registered one-shot by worker.ts) and,
 * when one becomes readable, bumps a counter in a page it shares with the backend's thread (a
 * memfd both map) and wakes it with a futex. The backend's thread can then sleep in futex_waitv
 * on that counter and on its VALE port's RX wake word at once: a frame from the switch and a
 * guest's kick wake it alike, and nothing runs while all is quiet.
 */
import { workerData } from 'node:worker_threads';
import * as native from '../native/index.js';
import { space } from '../memory/space.js';

import { C_STOP, C_BELL_DONE, C_COUNTERS } from './control.js';

interface Data { ep: number; bellFd: number; ctrl: SharedArrayBuffer }
const data = workerData as Data;
const ctrl = new Int32Array(data.ctrl, 0, C_COUNTERS);
const sp = space();
const page = sp.mapLocal(data.bellFd, 4096);
const word = page >>> 2;
const address = sp.absolute(page);
const events = Buffer.alloc(native.EPOLL_EVENT_SIZE * 8);
try {
  while (Atomics.load(ctrl, C_STOP) === 0) {
    const n = native.epollWait(data.ep, events, 8, 100);
    if (n <= 0) continue;
    sp.u32[word] = (sp.u32[word]! + 1) >>> 0;
    native.futexWake(address);
  }
} finally {
  sp.unmapLocal(page, 4096);
  // the backend's thread waits for this before it closes the epoll set and leaves
  Atomics.store(ctrl, C_BELL_DONE, 1);
  Atomics.notify(ctrl, C_BELL_DONE);
}
