/**
 * The vhost-user backend's thread: the protocol and the data path of one device (device.ts).
 *
 * It sleeps in futex_waitv on two words: its VALE port's RX wake word (a sender into the port
 * wakes it, as it wakes any netmap poller) and a doorbell counter that bell-worker.ts bumps when
 * one of the descriptors becomes readable (the listening socket, the connection, the guest's kick
 * eventfds, registered one-shot in an epoll set that thread waits on). After a wake it looks at
 * every source without blocking, re-arms the descriptors, and moves frames until nothing moves.
 * Nothing runs while all is quiet but a 100 ms timer for ctrl[C_STOP], which the parent sets to
 * end it.
 */
import { Worker, workerData, parentPort } from 'node:worker_threads';
import '../port-types-lazy.js';
import * as native from '../native/index.js';
import { acceptUnix, FdReceiver, memfd, peekReadable } from '../native/unix.js';
import { space } from '../memory/space.js';
import { POLLIN } from '../ports/port.js';
import { VhostDevice } from './device.js';
import { C_STOP, C_CONNECTED, C_BELL_DONE, C_COUNTERS, COUNTER_NAMES } from './control.js';

interface Data { socketFd: number; port: string; ctrl: SharedArrayBuffer }
const data = workerData as Data;
const ctrl = new Int32Array(data.ctrl, 0, C_COUNTERS);
const counters = new Float64Array(data.ctrl, 8 * C_COUNTERS, COUNTER_NAMES.length);
const log = (text: string): void => { parentPort?.postMessage({ log: text }); };

const LISTEN = -1, CONN = -2;
const ONESHOT_IN = native.EPOLLIN | native.EPOLLONESHOT;
const ep = native.epollCreate();
/** Descriptors in the epoll set, by their data (LISTEN, CONN, queue index). */
const watched = new Map<number, number>();
function watch(what: number, fd: number, add: boolean): void {
  if (add) {
    native.epollCtl(ep, native.EPOLL_CTL_ADD, fd, ONESHOT_IN, what);
    watched.set(what, fd);
  } else {
    native.epollCtl(ep, native.EPOLL_CTL_DEL, fd, 0, 0);
    if (watched.get(what) === fd) watched.delete(what);
  }
}
function rearm(): void {
  for (const [what, fd] of watched) native.epollCtl(ep, native.EPOLL_CTL_MOD, fd, ONESHOT_IN, what);
}

// the doorbell: a page both threads map, a counter in it, a futex on the counter
const bellFd = memfd('vhost-bell', 4096);
const sp = space();
const bellPage = sp.mapLocal(bellFd, 4096);
const bellWord = bellPage >>> 2;
const bell = new Worker(new URL('./bell-worker.js', import.meta.url), { workerData: { ep, bellFd, ctrl: data.ctrl } });
bell.on('error', (e) => log(`doorbell thread failed: ${e instanceof Error ? e.message : String(e)}`));

watch(LISTEN, data.socketFd, true);
const device = new VhostDevice(data.port, log, (q, fd, add) => watch(q, fd, add));
const receiver = new FdReceiver();
const peek = Buffer.alloc(1);
let conn = -1;

function hangUp(): void {
  if (conn < 0) return;
  watch(CONN, conn, false);
  native.closeFd(conn);
  conn = -1;
  device.disconnect();
  Atomics.store(ctrl, C_CONNECTED, 0);
  log('disconnected');
}

const addrs: number[] = [], vals: number[] = [];
try {
  while (Atomics.load(ctrl, C_STOP) === 0) {
    const seq = sp.u32[bellWord]!;
    // every source, without blocking: a new connection, messages, kicks
    const fd = acceptUnix(data.socketFd);
    if (fd >= 0) {
      if (conn >= 0) {
        log('a second connection was refused (one device per backend)');
        native.closeFd(fd);
      } else {
        conn = fd;
        watch(CONN, conn, true);
        Atomics.store(ctrl, C_CONNECTED, 1);
        log('connected');
      }
    }
    for (let k = 0; k < 64 && conn >= 0 && peekReadable(conn, peek); k++) {
      if (!device.message(conn, receiver)) hangUp();
    }
    device.kicked(0);
    device.kicked(1);
    rearm();
    let moved = device.poll();
    for (let k = 0; moved > 0 && k < 1000; k++) moved = device.poll();
    const c = device.counters;
    counters[0] = c.txFrames; counters[1] = c.txBytes; counters[2] = c.txDrops;
    counters[3] = c.rxFrames; counters[4] = c.rxBytes; counters[5] = c.rxDrops;
    if (moved > 0) continue;
    // sleep until the doorbell or a sender into the port
    addrs.length = 0; vals.length = 0;
    addrs.push(sp.absolute(bellPage)); vals.push(seq);
    const port = device.running ? device.openPort : null;
    if (port !== null) {
      port.armWait(POLLIN);
      port.appendArmedWords(addrs, vals);
      // a frame that came before the arming would not wake us
      if (device.poll() === 0) native.futexWaitAny(addrs, vals, addrs.length, 100);
      // that pass may have stopped the port (a bad ring): its rings' memory is gone then
      if (!port.isClosed) port.disarmWait(POLLIN);
    } else {
      native.futexWaitAny(addrs, vals, 1, 100);
    }
  }
} finally {
  hangUp();
  device.close();
  for (const [, fd] of watched) native.epollCtl(ep, native.EPOLL_CTL_DEL, fd, 0, 0);
  Atomics.store(ctrl, C_STOP, 1);
  // the doorbell thread leaves its epoll_wait within 100 ms: no thread is in a native call on
  // these descriptors or mappings when they go
  Atomics.wait(ctrl, C_BELL_DONE, 0, 2000);
  sp.unmapLocal(bellPage, 4096);
  native.closeFd(bellFd);
  native.closeFd(ep);
}
