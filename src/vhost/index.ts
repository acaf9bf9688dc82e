/**
 * vhost-user: a QEMU virtio-net device served on a VALE port (README.md in this folder).
 *
 *   const backend = serveVhostUser({ socket: '/run/vm1.sock', port: 'vale0:vm1' });
 *   // qemu ... -chardev socket,id=c0,path=/run/vm1.sock -netdev vhost-user,id=n0,chardev=c0 ...
 *   backend.counters(); await backend.close();
 */
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import { parsePortSpec } from '../ports/name.js';
import { shmDirectory } from '../memory/space.js';
import { NetmapError, fail } from '../errors.js';
import * as native from '../native/index.js';
import { listenUnix } from '../native/unix.js';
import { C_STOP, C_CONNECTED, C_COUNTERS, COUNTER_NAMES, CTRL_BYTES } from './control.js';
import type { DeviceCounters } from './device.js';

export { vnetHeaderLength, guestTakesOffloads, OFFERED_FEATURES } from './protocol.js';
export type { DeviceCounters } from './device.js';

export interface VhostUserOptions {
  /** Path of the unix socket QEMU connects to (made here; a stale socket there is replaced). */
  socket: string;
  /** The VALE port, `valeX:NAME` (made when the guest has negotiated its features). */
  port: string;
  /** Each event as one line (connections, the memory table, the port, a stopped ring). */
  onLog?: (line: string) => void;
}

/** A running backend: one thread serving one device on `socket`. */
export class VhostUserBackend {
  readonly socket: string;
  readonly port: string;
  private readonly worker: Worker;
  private readonly ctrl: Int32Array;
  private readonly values: Float64Array;
  private readonly socketFd: number;
  private exited: Promise<void>;
  private closed = false;

  /** @internal use serveVhostUser() */
  constructor(opts: VhostUserOptions, socketFd: number) {
    this.socket = opts.socket;
    this.port = opts.port;
    this.socketFd = socketFd;
    const sab = new SharedArrayBuffer(CTRL_BYTES);
    this.ctrl = new Int32Array(sab, 0, C_COUNTERS);
    this.values = new Float64Array(sab, 8 * C_COUNTERS, COUNTER_NAMES.length);
    const onLog = opts.onLog ?? ((): void => {});
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { socketFd, port: opts.port, ctrl: sab },
      env: { ...process.env, NETMAP_TS_DIR: shmDirectory() },
    });
    this.worker.on('message', (m: { log?: string }) => { if (m.log !== undefined) onLog(m.log); });
    this.exited = new Promise((resolve) => {
      this.worker.on('error', (e) => { onLog(`backend thread failed: ${e instanceof Error ? e.message : String(e)}`); });
      this.worker.on('exit', () => resolve());
    });
  }

  /** Whether QEMU is connected now. */
  get connected(): boolean {
    return Atomics.load(this.ctrl, C_CONNECTED) === 1;
  }

  /** Frames and bytes moved each way, and drops (see DeviceCounters). */
  counters(): DeviceCounters {
    const c = {} as Record<string, number>;
    COUNTER_NAMES.forEach((name, k) => { c[name] = this.values[k]!; });
    return c as unknown as DeviceCounters;
  }

  /** Resolves when the thread ended (by close(), or by a failure that was logged). */
  whenStopped(): Promise<void> {
    return this.exited;
  }

  /** Stops serving: the guest's link goes quiet, the port is closed, the socket removed. */
  async close(): Promise<void> {
    if (this.closed) return this.exited;
    this.closed = true;
    Atomics.store(this.ctrl, C_STOP, 1);
    await this.exited;
    native.closeFd(this.socketFd);
    fs.rmSync(this.socket, { force: true });
  }
}

/**
 * Serves one vhost-user virtio-net device: listens on `socket`, and for the QEMU that connects,
 * moves frames between its queues and VALE port `port`. EINVAL for a name that is not a VALE port
 * or a socket path too long; EEXIST when something other than a socket is at the path.
 */
export function serveVhostUser(opts: VhostUserOptions): VhostUserBackend {
  const spec = parsePortSpec(opts.port);
  if (spec.subsystem !== 'vale' || spec.pipe !== null) fail('EINVAL', `${opts.port} is not a VALE port (valeX:NAME)`);
  if (opts.port.includes('@')) fail('EINVAL', `${opts.port}: give the port without options (its virtio-net header follows the guest's features)`);
  let st: fs.Stats | null = null;
  try { st = fs.lstatSync(opts.socket); } catch { /* absent */ }
  if (st !== null) {
    if (!st.isSocket()) fail('EEXIST', `${opts.socket} exists and is not a socket`);
    fs.rmSync(opts.socket, { force: true });
  }
  let fd: number;
  try {
    fd = listenUnix(opts.socket);
  } catch (e) {
    if (e instanceof NetmapError) fail(e.code, `cannot listen on ${opts.socket}: ${e.message}`);
    throw e;
  }
  return new VhostUserBackend(opts, fd);
}
