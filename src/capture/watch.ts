/**
 * Watching ports that exist: which ports there are (VALE ports, pipe ends, interfaces in netmap
 * mode), the name to open to watch one (its copy monitor, `NAME/rt`, or `/r`, `/t` for one
 * direction), and an event-loop capture pump that never blocks the thread (waitPort between
 * batches). Used by `netmap extcap`, the pcap-compatible session API and `netmap dump -Q`.
 *
 * Everything opens ports by name through the library: the monitor semantics of `/r`, `/t`,
 * `/rt` are openPort's (src/ports), not this file's.
 */
import { fail } from '../errors.js';
import * as L from '../memory/layout.js';
import { registry } from '../memory/registry.js';
import { parsePortSpec } from '../ports/name.js';
import { monitorNameFor, monitorWithBuffer } from '../monitor/monitor.js';
import { POLLIN } from '../ports/port.js';
import { waitPort } from '../ports/events.js';
import { clock, readClock } from '../native/index.js';
import type { LiveCapture, PacketHandler } from './live.js';

/** tcpdump -Q: what a watcher sees of the port, received (in), sent (out) or both. */
export type Direction = 'in' | 'out' | 'inout';

export interface WatchablePort {
  /** The name openPort() takes: 'vale0:a', 'netmap:p{1', 'netmap:eth1'. */
  name: string;
  kind: 'vale' | 'pipe' | 'interface';
  /** One line for people ('VALE port a of switch vale0', ...). */
  description: string;
  /** Open handles on the port (0: nobody uses it right now). */
  users: number;
  /** Monitor ports watching it (`NAME/r`, `/t`, `/rt`, `/z` open now). */
  monitors: number;
}

/**
 * The ports in use under the shared-memory directory, in registry order: every port of every
 * VALE switch (what `vale-ctl` lists), every pipe end, every interface in netmap mode. Memory-only
 * pipe parents and host-stack ports are left out.
 */
export function watchablePorts(): WatchablePort[] {
  const reg = registry();
  reg.collectGarbage();
  return reg.locked(() => {
    const out: WatchablePort[] = [];
    // monitors are registered as 'PORT/flags#n': count them by the name they watch
    const watchers = new Map<string, number>();
    for (const index of reg.livePorts()) {
      if (reg.portGet(index, L.PE_KIND) !== L.PORT_KIND_MONITOR) continue;
      const n = reg.portName(index);
      const slash = n.indexOf('/');
      if (slash > 0) watchers.set(n.slice(0, slash), (watchers.get(n.slice(0, slash)) ?? 0) + 1);
    }
    const monitorsOf = (portName: string): number => watchers.get(portName) ?? 0;
    for (const sw of reg.liveSwitches()) {
      const switchName = reg.switchName(sw);
      for (let p = 0; p < L.MAX_SWITCH_PORTS; p++) {
        const plus = reg.sp.u32[reg.switchWord(sw, L.SW_PORTS + 4 * p)]!;
        if (plus === 0 || !reg.portLive(plus - 1)) continue;
        const index = plus - 1;
        const portName = reg.portName(index);
        const name = portName.startsWith(`${switchName}:`) ? portName : `${switchName}:${portName}`;
        const kind = reg.portGet(index, L.PE_KIND);
        const what = kind === L.PORT_KIND_VALE ? 'VALE port' : 'VALE port of interface';
        out.push({ name, kind: 'vale', description: `${what} ${name.slice(switchName.length + 1)} of switch ${switchName}`, users: reg.portGet(index, L.PE_USERS), monitors: monitorsOf(portName) });
      }
    }
    for (const index of reg.livePorts()) {
      const kind = reg.portGet(index, L.PE_KIND);
      const portName = reg.portName(index);
      if (kind === L.PORT_KIND_PIPE) {
        const name = /^vale[A-Za-z0-9_]*:/.test(portName) ? portName : `netmap:${portName}`;
        const brace = Math.max(portName.lastIndexOf('{'), portName.lastIndexOf('}'));
        const end = portName[brace] === '{' ? 'master' : 'slave';
        out.push({ name, kind: 'pipe', description: `pipe ${portName.slice(brace + 1)} of ${portName.slice(0, brace)}, ${end} end`, users: reg.portGet(index, L.PE_USERS), monitors: monitorsOf(portName) });
      } else if (kind === L.PORT_KIND_INTERFACE && (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) === 0) {
        out.push({ name: `netmap:${portName}`, kind: 'interface', description: `interface ${portName} in netmap mode`, users: reg.portGet(index, L.PE_USERS), monitors: monitorsOf(portName) });
      }
    }
    return out;
  });
}

/**
 * Bytes of monitor ring buffers a watcher asks for by default (tcpdump's -B in bytes): 32 MiB,
 * 16384 frames on a port of one ring each way (see monitorWithBuffer).
 */
export const DEFAULT_WATCH_BUFFER = 32 * 1024 * 1024;

/**
 * The name to open to watch port `name` in `direction`: a port somebody has open is watched
 * through its copy monitor (`/r` received, `/t` sent, `/rt` both: monitorNameFor, as
 * netmap-libpcap does); a name that already carries monitor flags is kept (EINVAL if they
 * contradict `direction`); a port nobody has open is opened itself, by the name as given (it then
 * sees what is sent to it), and then only 'inout' makes sense (EOPNOTSUPP otherwise). The monitor
 * of a port in use keeps the name's ring selection (`-N`, `^`, `*`) and @conf:slots=/extra-bufs=;
 * a name asking more of the port's own open (`/x`, `/R`, `/T`, `@N`, `@share=`, other @conf keys)
 * is refused (EBUSY for `/x`, EINVAL otherwise), never silently dropped. A copy monitor without slots=
 * of its own gets rings of about `bufferBytes` in all (monitorWithBuffer).
 */
export function watchName(name: string, direction: Direction = 'inout', bufferBytes: number = DEFAULT_WATCH_BUFFER): string {
  const spec = parsePortSpec(name);
  if (spec.monitorRx || spec.monitorTx || spec.zcopyMonitor) {
    const hasRx = spec.monitorRx || spec.zcopyMonitor, hasTx = spec.monitorTx || spec.zcopyMonitor;
    if (direction !== 'inout' && (hasRx !== (direction !== 'out') || hasTx !== (direction !== 'in'))) {
      fail('EINVAL', `${name}: its monitor flags contradict direction '${direction}'`);
    }
    return monitorWithBuffer(name, bufferBytes);
  }
  const monitor = monitorNameFor(name, direction);
  if (monitor !== null) {
    // The monitor honours the name's ring selection (-N, ^, ^N, *) and its slots= and
    // extra-bufs=; whatever else the name asks of the port's own open cannot be had through a
    // monitor: refused, never dropped (vale0:a/x used to become vale0:a/xrt, /x ignored).
    const what = ownOpenSuffixes(spec);
    if (what.length > 0) {
      fail(spec.exclusive ? 'EBUSY' : 'EINVAL', `${name}: ${spec.name} is in use, so it is watched through its monitor (${spec.name}/${direction === 'in' ? 'r' : direction === 'out' ? 't' : 'rt'}), ` +
        `which cannot honour ${what.join(', ')}; give the name without ${what.length > 1 ? 'them' : 'it'} (a monitor keeps -N, ^, * and @conf:slots=)`);
    }
    return monitorWithBuffer(monitor, bufferBytes);
  }
  if (direction !== 'inout') fail('EOPNOTSUPP', `${name}: no port in use to watch; direction '${direction}' applies to watching one`);
  return name;
}

/** What a name asks of the port's own open that a monitor of the port cannot give, in words. */
function ownOpenSuffixes(spec: ReturnType<typeof parsePortSpec>): string[] {
  const out: string[] = [];
  if (spec.exclusive) out.push("'/x' (exclusive use of the port)");
  if (spec.rxRingsOnly) out.push("'/R' (the port's own RX rings)");
  if (spec.txRingsOnly) out.push("'/T' (the port's own TX rings)");
  if (spec.memId !== 0) out.push(`'@${spec.memId}' (the port's memory region)`);
  if (spec.share !== null) out.push(`'@share=${spec.share}'`);
  const c = spec.conf;
  const keys: string[] = [];
  if (c.txRings !== undefined || c.rxRings !== undefined) keys.push('rings');
  if (c.hostTxRings !== undefined || c.hostRxRings !== undefined) keys.push('host-rings');
  if (c.vnetHdr !== undefined) keys.push('vnet-hdr');
  if (c.backend !== undefined) keys.push('backend');
  if (keys.length > 0) out.push(`@conf: ${keys.join(', ')} (the configuration of the port itself)`);
  return out;
}

/**
 * CapturePump: after packets, empty rings are looked at again every PUMP_PAUSE_MS (a timer,
 * nothing armed) for PUMP_IDLE_ARM_MS before the pump sleeps in waitPort. A watcher's monitor
 * ring (DEFAULT_WATCH_BUFFER: 16384 frames) holds 1.6 ms at 10 Mpps.
 */
const PUMP_PAUSE_MS = 1;
const PUMP_IDLE_ARM_MS = 20;

export interface PumpOptions {
  /** Packets per dispatch (default 256): the event loop runs between batches. */
  batch?: number;
  /** Batches in a row before yielding to the event loop with setImmediate (default 4). */
  burst?: number;
}

/**
 * Runs `cap.dispatch` on the event loop until stop(): batches while packets are waiting, and
 * `waitPort` (a worker thread sleeps on the rings, this thread does not) when the rings are
 * empty. `handler` is called synchronously for each accepted packet, zero-copy as dispatch gives.
 * Errors end the pump and reject `done`.
 */
export class CapturePump {
  readonly done: Promise<void>;
  private stopped = false;
  private abort = new AbortController();

  constructor(private readonly cap: LiveCapture, handler: PacketHandler, opts: PumpOptions = {}) {
    const batch = opts.batch ?? 256;
    const burst = opts.burst ?? 4;
    if (!Number.isInteger(batch) || batch < 1) fail('EINVAL', `pump batch ${batch} must be a positive integer`);
    cap.timeoutMs = 0; // dispatch never sleeps: waitPort does, off this thread
    this.done = this.run(handler, batch, burst);
    this.done.catch(() => undefined); // the caller reads it; never an unhandled rejection
  }

  private async run(handler: PacketHandler, batch: number, burst: number): Promise<void> {
    let busy = 0, lastPacket = -Infinity;
    while (!this.stopped) {
      const n = this.cap.dispatch(batch, handler);
      if (n === -2 || this.stopped) return;
      readClock();
      if (n > 0) {
        lastPacket = clock[0]!;
        if (++busy >= burst) { busy = 0; await new Promise<void>((resolve) => setImmediate(resolve)); }
        continue;
      }
      busy = 0;
      if (clock[0]! - lastPacket < PUMP_IDLE_ARM_MS) {
        // packets flowed a moment ago: look again after a short timer rather than arm the rings
        // (an armed ring makes its writers, a switch's senders, pay a wake-up call per batch)
        await new Promise<void>((resolve) => setTimeout(resolve, PUMP_PAUSE_MS));
        continue;
      }
      try {
        await waitPort(this.cap.port, POLLIN, 1000, { signal: this.abort.signal });
      } catch (e) {
        if (this.stopped) return;
        throw e;
      }
    }
  }

  /** Ends the pump after the current batch; resolves when it has ended. */
  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.cap.breakloop();
      this.abort.abort();
    }
    return this.done.catch(() => undefined);
  }
}
