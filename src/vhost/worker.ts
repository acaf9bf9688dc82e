/**
 * The vhost-user backend's thread: one loop over an epoll set (the listening socket, the
 * connection, the two kick descriptors) and the device's data path. It sleeps in epoll_wait, at
 * most 1 ms while the guest's queues are served (the VALE port's RX ring has no descriptor to
 * wait on: it is looked at on every pass) and 100 ms otherwise; frames moved in a pass make the
 * next wait zero. The parent sets ctrl[C_STOP] to end it.
 */
import { workerData, parentPort } from 'node:worker_threads';
import '../port-types-lazy.js';
import * as native from '../native/index.js';
import { acceptUnix, FdReceiver } from '../native/unix.js';
import { VhostDevice } from './device.js';
import { C_STOP, C_CONNECTED, C_COUNTERS, COUNTER_NAMES } from './control.js';

interface Data { socketFd: number; port: string; ctrl: SharedArrayBuffer }
const data = workerData as Data;
const ctrl = new Int32Array(data.ctrl, 0, C_COUNTERS);
const counters = new Float64Array(data.ctrl, 8 * C_COUNTERS, COUNTER_NAMES.length);
const log = (text: string): void => { parentPort?.postMessage({ log: text }); };

const LISTEN = -1, CONN = -2;
const ep = native.epollCreate();
const events = Buffer.alloc(native.EPOLL_EVENT_SIZE * 8);
native.epollCtl(ep, native.EPOLL_CTL_ADD, data.socketFd, native.EPOLLIN, LISTEN);
const device = new VhostDevice(data.port, log, (q, fd, add) => {
  native.epollCtl(ep, add ? native.EPOLL_CTL_ADD : native.EPOLL_CTL_DEL, fd, native.EPOLLIN, q);
});
const receiver = new FdReceiver();
let conn = -1;

function hangUp(): void {
  if (conn < 0) return;
  native.epollCtl(ep, native.EPOLL_CTL_DEL, conn, 0, 0);
  native.closeFd(conn);
  conn = -1;
  device.disconnect();
  Atomics.store(ctrl, C_CONNECTED, 0);
  log('disconnected');
}

let moved = 0;
try {
  while (Atomics.load(ctrl, C_STOP) === 0) {
    const n = native.epollWait(ep, events, 8, moved > 0 ? 0 : device.running ? 1 : 100);
    for (let k = 0; k < n; k++) {
      const what = native.epollData(events, k);
      if (what === LISTEN) {
        const fd = acceptUnix(data.socketFd);
        if (fd < 0) continue;
        if (conn >= 0) {
          log('a second connection was refused (one device per backend)');
          native.closeFd(fd);
          continue;
        }
        conn = fd;
        native.epollCtl(ep, native.EPOLL_CTL_ADD, conn, native.EPOLLIN, CONN);
        Atomics.store(ctrl, C_CONNECTED, 1);
        log('connected');
      } else if (what === CONN) {
        if (conn >= 0 && !device.message(conn, receiver)) hangUp();
      } else {
        device.kicked(what);
      }
    }
    moved = device.poll();
    const c = device.counters;
    counters[0] = c.txFrames; counters[1] = c.txBytes; counters[2] = c.txDrops;
    counters[3] = c.rxFrames; counters[4] = c.rxBytes; counters[5] = c.rxDrops;
  }
} finally {
  hangUp();
  device.close();
  native.closeFd(ep);
}
