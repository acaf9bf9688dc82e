/**
 * kipfw: the firewall daemon (netmap-ipfw's kipfw). Opens its ports in pairs, creates the
 * firewall's store, serves the control socket, and runs the data path (path.ts) in bounded turns
 * between which Node's event loop serves control requests and the state-expiry timer.
 *
 * Sleeping: when nothing moves the loop sleeps on all ports' rings at once (futex_waitv), at
 * most until dummynet's next packet is due; the last stretch before a due time is spent
 * re-checking instead of sleeping (the kernel's timer slack would make a futex wake-up late)
 * (loop.ts). With worker threads (-p N) the main thread serves the socket only: worker 0 owns
 * dummynet, the other workers hand it their pipe/queue frames, and dummynet commands go to
 * worker 0 through the hand-off file's mailbox (handoff.ts).
 */
import { fail, NetmapError } from '../errors.js';
import { openPort, type Port } from '../ports/index.js';
import { parsePortSpec, formatPortSpec } from '../ports/name.js';
import { interfaceExists } from '../interfaces/ifinfo.js';
import { prepareLookup } from '../switch/control.js';
import { Firewall } from './firewall.js';
import { nowNs as dnNow } from './dummynet/timing.js';
import { FirewallPath, PATH_POOL_DEFAULT, type PathDummynet, type PathStats } from './path.js';
import { PathLoop, DUE_SPIN_US } from './loop.js';
import { DnHandoff, HANDOFF_STOCK, removeHandoff } from './handoff.js';
import { serveControl, socketPath, daemonRunning, type ControlReply, type ControlRequest } from './control.js';
import type { Interfaces } from './engine.js';
import type { FirewallAccess } from './commands.js';
import { checkingDummynet } from './dummynet-glue.js';
import * as native from '../native/index.js';
import fs from 'node:fs';
import type net from 'node:net';
import { Worker } from 'node:worker_threads';
import { shmDirectory } from '../memory/space.js';
import { STAT_FIELDS, type WorkerJob } from './worker-job.js';

export interface KipfwOptions {
  /** The firewall's name (control socket, store). Default 'ipfw'. */
  name?: string;
  ports: string[];
  defaultAccept?: boolean;
  compiled?: boolean;
  zeroCopy?: boolean;
  /** Extra buffers each port lends dummynet (default PATH_POOL_DEFAULT). */
  poolBuffers?: number;
  /** Busy-wait instead of sleeping when dummynet has a packet due within this many µs (default 200). */
  spinUs?: number;
  /** Never sleep while dummynet holds packets (`--spin`): the dummynet thread busy-waits for their times. */
  spin?: boolean;
  /** Worker threads, each on its own ring pair of every port (`-p N`, default 1: the data path runs in the main thread). */
  workers?: number;
  /**
   * SCHED_FIFO priority (1..99) for the thread that runs dummynet (`--rt P`; the main thread with
   * -p 1, worker 0 with -p N; 0 or absent: an ordinary thread). Run node with --single-threaded-gc
   * as well (the kipfw tool does): V8's parallel GC phases would make this thread wait for
   * ordinary helper threads. See dummynet/README.md (TIMING).
   */
  realtime?: number;
  /** Log lines go here (default stderr). */
  log?: (line: string) => void;
}

export { IDLE_SPIN_MS } from './loop.js';

/** Most worker threads (`-p`). */
export const MAX_WORKERS = 16;

interface WorkerHandle { worker: Worker; control: Int32Array; stats: Float64Array; error: Uint8Array }

/** Dummynet as the daemon plugs it in: the data path side and the command side. */
export interface DaemonDummynet extends PathDummynet {
  command: NonNullable<FirewallAccess['dummynet']>;
  flushAll(): void;
  /** How late packets left their pipes (Dummynet.releaseLateness). */
  lateness(): ReleaseLateness;
}

/** Packets released by dummynet and bucket bounds (µs) of their lateness quantiles. */
export interface ReleaseLateness { packets: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number }

/** The interface name a port answers to in `recv`/`via`: its name without a `netmap:` prefix. */
export function ifaceName(portName: string): string {
  return portName.startsWith('netmap:') ? portName.slice('netmap:'.length) : portName;
}

export class Kipfw {
  readonly name: string;
  readonly firewall: Firewall;
  readonly ports: Port[];
  /** The data path of the main thread; null with worker threads (-p N > 1). */
  readonly path: FirewallPath | null;
  private readonly workers: WorkerHandle[] = [];
  private server: net.Server | null = null;
  private stopped = false;
  /** Why run() ended on its own (an interface went away), or null. */
  failure: string | null = null;
  /** The Linux interfaces under `netmap:IF` ports: checked once a second (see checkInterfaces). */
  private readonly interfaces: { port: string; ifname: string }[] = [];
  /** Every port's name as opened and its memory region (the main thread may not hold them all with -p N). */
  private readonly portInfo: { name: string; memId: number }[];
  /** The hand-off between workers and its mailbox to worker 0's dummynet (-p N > 1), else null. */
  private link: DnHandoff | null = null;
  private readonly loopOptions: { spinNs: number; spin: boolean };
  private readonly log: (line: string) => void;

  private constructor(name: string, fw: Firewall, ports: Port[], portInfo: { name: string; memId: number }[], path: FirewallPath | null, private readonly dummynet: DaemonDummynet | null, opts: KipfwOptions) {
    this.name = name;
    this.firewall = fw;
    this.ports = ports;
    this.portInfo = portInfo;
    this.path = path;
    this.loopOptions = { spinNs: (opts.spinUs ?? DUE_SPIN_US) * 1000, spin: opts.spin ?? false };
    this.log = opts.log ?? ((l) => console.error(l));
    for (const name of opts.ports) {
      const spec = parsePortSpec(name);
      if (spec.subsystem === 'netmap' && spec.pipe === null && interfaceExists(spec.parentName)) this.interfaces.push({ port: name, ifname: spec.parentName });
    }
  }

  /**
   * Stops the daemon when an interface under one of its ports was deleted. Its packet socket then
   * reports an error on every poll, so the loop would spin (half a CPU here) forwarding nothing;
   * packets waiting in dummynet for it could never leave. FreeBSD only promises not to crash
   * (dummynet.sh interface_removal); we stop with a message and run() reports `failure`.
   */
  private checkInterfaces(): void {
    for (const i of this.interfaces) {
      if (interfaceExists(i.ifname)) continue;
      const s = this.stats;
      const waiting = s.toDummynet - s.fromDummynet - s.dummynetLost;
      this.failure = `${i.port}: interface '${i.ifname}' went away; stopping (${waiting > 0 ? waiting : 0} packets waiting in dummynet dropped)`;
      this.log(`kipfw ${this.name}: ${this.failure}`);
      this.stopped = true;
      return;
    }
  }

  /** Opens the ports, creates the firewall and starts serving its socket. */
  static async start(opts: KipfwOptions, makeDummynet?: () => DaemonDummynet): Promise<Kipfw> {
    const name = opts.name ?? 'ipfw';
    if (opts.ports.length < 2 || opts.ports.length % 2 !== 0) fail('EINVAL', `ports come in pairs: give an even number of ports, not ${opts.ports.length}`);
    if (await daemonRunning(name)) fail('EBUSY', `a firewall daemon named '${name}' is already running; pick another name with -s`);
    const workers = opts.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) fail('EINVAL', `workers must be 1 to ${MAX_WORKERS}, not ${workers}`);
    const rt = opts.realtime ?? 0;
    if (!Number.isInteger(rt) || rt < 0 || rt > 99) fail('EINVAL', `the real-time priority must be 1 to 99, not ${rt}`);
    const ports: Port[] = [];
    const portInfo: { name: string; memId: number }[] = [];
    let fw: Firewall | null = null;
    let k: Kipfw | null = null;
    try {
      // with workers the main thread only holds the ports (creating VALE ports with their rings); each worker binds one ring pair
      for (const p of opts.ports) await prepareLookup(p);
      for (let i = 0; i < opts.ports.length; i++) {
        const want = i % 2 === 1 ? sameMemory(opts.ports[i]!, ports[i - 1]!) : [opts.ports[i]!];
        // with workers, worker 0 takes the extra buffers; a VALE port this thread creates is made
        // with room for them (for both ports of the pair: the second is made in the same memory)
        const sizer = workers > 1 && i % 2 === 0 && want[0]!.startsWith('vale') ? openSizer(want[0]!, 2 * workerExtra(opts)) : null;
        try {
          ports.push(openFirst(want, (name) => workers === 1 ? openExclusive(name, opts.poolBuffers ?? PATH_POOL_DEFAULT) : openPort(name)));
        } finally {
          sizer?.close();
        }
      }
      for (const [k, p] of ports.entries()) {
        if (p.rxRings.length < workers || p.txRings.length < workers) {
          // the hint names the port as given (netmap:IF, valeX:P), without its own @ options
          const asGiven = opts.ports[k]!.replace(/@.*$/, '');
          fail('EINVAL', `${p.name} has ${p.rxRings.length} RX and ${p.txRings.length} TX rings: -p ${workers} needs ${workers} of each (ask for them in the name: ${asGiven}@conf:rings=${workers})`);
        }
        portInfo.push({ name: p.name, memId: p.memId });
      }
      if (workers > 1) {
        // an interface's RX rings are served by the thread that binds them: the workers bind
        // them, one ring each, so the main thread lets go of its interface ports (VALE ports and
        // pipes it keeps: they, and the memory they were made in, live as long as the daemon)
        for (let i = ports.length - 1; i >= 0; i--) {
          const spec = parsePortSpec(opts.ports[i]!);
          if (spec.subsystem === 'netmap' && spec.pipe === null) { ports[i]!.close(); ports.splice(i, 1); }
        }
      }
      fw = Firewall.create(name, { defaultAccept: opts.defaultAccept ?? true, compiled: opts.compiled ?? true });
      const names = opts.ports.map(ifaceName);
      const ifaces: Interfaces = { name: (id) => names[id] ?? null, generation: 0 };
      const f = fw;
      let path: FirewallPath | null = null;
      let dn: DaemonDummynet | null = null;
      if (workers === 1) {
        dn = makeDummynet?.() ?? null;
        path = new FirewallPath(ports, { generation: () => f.generation(), evaluator: () => f.evaluator(ifaces) }, dn, { zeroCopy: opts.zeroCopy ?? true });
      }
      k = new Kipfw(name, fw, ports, portInfo, path, dn, opts);
      if (path !== null) {
        // this thread runs the data path: its timed sleeps (futex timeouts before a packet is
        // due) end when asked, not up to 50 µs later (the default timer slack)
        native.setTimerSlack(1);
        if (rt > 0) native.setRealtime(rt);
      }
      if (workers > 1) k.link = DnHandoff.create(name, workers, opts.ports.length);
      for (let ring = 0; ring < (workers === 1 ? 0 : workers); ring++) await k.startWorker(opts, names, ring);
      const kk = k;
      k.server = await serveControl(name, (req) => kk.handle(req));
      return k;
    } catch (e) {
      if (k !== null) { await k.stopWorkers(); k.link?.close(); removeHandoff(name); }
      if (fw !== null) { fw.store.remove(); fw.close(); }
      for (const p of ports) p.close();
      throw e;
    }
  }

  private async startWorker(opts: KipfwOptions, names: string[], ring: number): Promise<void> {
    const job: WorkerJob = {
      dir: shmDirectory(), name: this.name, ports: opts.ports, ifaceNames: names, ring,
      zeroCopy: opts.zeroCopy ?? true, compiled: opts.compiled ?? true,
      extraBuffers: workerExtra(opts), stock: handoffStock(opts),
      spinUs: opts.spinUs ?? DUE_SPIN_US, spin: opts.spin ?? false, realtime: opts.realtime ?? 0,
      control: new SharedArrayBuffer(8), stats: new SharedArrayBuffer(8 * STAT_FIELDS.length), error: new SharedArrayBuffer(1024),
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: job });
    const h: WorkerHandle = { worker, control: new Int32Array(job.control), stats: new Float64Array(job.stats), error: new Uint8Array(job.error) };
    this.workers.push(h);
    const ended = new Promise<void>((r) => worker.once('exit', () => r()));
    worker.on('error', (e) => { this.log(`kipfw ${this.name}: worker ${ring}: ${e.message}`); });
    const deadline = Date.now() + 30000;
    while (Atomics.load(h.control, 1) === 0 && Date.now() < deadline) {
      const r = await Promise.race([ended.then(() => 'exit'), new Promise((res) => setTimeout(() => res('tick'), 10))]);
      if (r === 'exit') break;
    }
    if (Atomics.load(h.control, 1) !== 1) {
      const msg = Buffer.from(h.error).toString('utf8').replace(/\0+$/, '');
      fail('EIO', `worker ${ring} did not start${msg !== '' ? `: ${msg}` : ''}`);
    }
  }

  /**
   * Stops the workers: first those that hand frames to worker 0, then worker 0, which then takes
   * back the buffers left in the hand-off rings (so that closing its ports frees them).
   */
  private async stopWorkers(): Promise<void> {
    const stop = (ws: WorkerHandle[], word: number): Promise<void[]> => {
      for (const w of ws) { Atomics.store(w.control, 0, word); Atomics.notify(w.control, 0); }
      return Promise.all(ws.map((w) => new Promise<void>((r) => {
        if (w.worker.threadId < 0) { r(); return; }
        const t = setTimeout(() => { void w.worker.terminate(); r(); }, 5000);
        w.worker.once('exit', () => { clearTimeout(t); r(); });
      })));
    };
    const owner = this.workers.slice(0, 1);
    if (owner.length > 0) { Atomics.store(owner[0]!.control, 0, 1); Atomics.notify(owner[0]!.control, 0); }
    await stop(this.workers.slice(1), 1);
    await stop(owner, 2);
    this.workers.length = 0;
  }

  /** A control request: an ipfw command or a rules file. */
  handle(req: ControlRequest): ControlReply {
    const dn = this.dummynet?.command ?? (this.link !== null ? this.remoteDummynet : undefined);
    const r = 'argv' in req ? this.firewall.command(req.argv, dn) : this.firewall.file(req.file, dn, dn !== undefined ? checkingDummynet : undefined);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * With -p N > 1 dummynet lives in worker 0: its commands are run there (the mailbox of the
   * hand-off file), and a changed configuration comes back to be published with the rules.
   */
  private readonly remoteDummynet: NonNullable<FirewallAccess['dummynet']> = (argv, config, testOnly) => {
    const r = this.link!.ask({ argv, testOnly }) as { status: number; stdout: string; stderr: string; changed: boolean; dummynet: unknown };
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, config: r.changed ? { ...config, dummynet: r.dummynet } : config };
  };

  /** The start-up lines: each pair and whether it swaps buffers or copies. */
  describe(): string[] {
    const lines: string[] = [];
    for (let i = 0; i < this.portInfo.length; i += 2) {
      const a = this.portInfo[i]!, b = this.portInfo[i + 1]!;
      const zc = a.memId === b.memId;
      lines.push(`kipfw ${this.name}: ${a.name} <-> ${b.name}: ${zc ? 'zero copy (buffers swapped: shared memory)' : 'copy (the ports have separate memory)'}`);
    }
    const dn = this.path !== null ? `dummynet pool ${this.path.poolSize} buffers`
      : `${this.workers.length} worker threads, one ring pair each; dummynet in worker 0, fed by the others through hand-off rings`;
    lines.push(`kipfw ${this.name}: control socket ${socketPath(this.name)}; rule 65535 ${this.firewall.store.readConfig().rules.at(-1)?.action.kind ?? 'allow'}; ${dn}`);
    return lines;
  }

  /** How late dummynet's packets left their due time (null without dummynet in this thread). */
  releaseLateness(): ReleaseLateness | null {
    if (this.link !== null && this.workers.length > 0) {
      // JSON has no Infinity (the overflow bucket's bound): it comes back as null
      const r = this.link.ask({ lateness: true }) as Record<keyof ReleaseLateness, number | null>;
      const v = (x: number | null): number => x ?? Infinity;
      return { packets: v(r.packets), p50Us: v(r.p50Us), p90Us: v(r.p90Us), p99Us: v(r.p99Us), maxUs: v(r.maxUs) };
    }
    return this.dummynet?.lateness() ?? null;
  }

  /** Frames each worker thread received (-p N), in ring order; [] without workers. */
  workerReceived(): number[] {
    const at = STAT_FIELDS.indexOf('received');
    return this.workers.map((w) => w.stats[at]!);
  }

  get stats(): PathStats {
    if (this.path !== null) return this.path.stats;
    const sum = { received: 0, passed: 0, denied: 0, rejected: 0, repliesSent: 0, repliesLost: 0, toDummynet: 0, poolFull: 0, fromDummynet: 0, dummynetLost: 0, txFull: 0, handedOff: 0, handoffFull: 0 };
    for (const w of this.workers) for (let i = 0; i < STAT_FIELDS.length; i++) sum[STAT_FIELDS[i]!] += w.stats[i]!;
    return sum;
  }

  /** Runs until stop() (or `durationMs`), in turns of at most 20 ms between event-loop visits. */
  async run(durationMs = Infinity): Promise<void> {
    const end = performance.now() + durationMs;
    let lastExpire = 0;
    const loop = this.path !== null ? new PathLoop(this.path, this.ports, { ...this.loopOptions, bell: null }) : null;
    while (!this.stopped && performance.now() < end) {
      const turnEndNs = dnNow() + 20e6;
      if (this.path === null) {
        // the workers forward; this thread serves control requests and expires states
        await new Promise((r) => setTimeout(r, 20));
        const now = Date.now();
        if (now - lastExpire >= 1000) { lastExpire = now; this.firewall.expire(now); this.checkInterfaces(); }
        continue;
      }
      loop!.turnUntil(turnEndNs, this.isStopped);
      const now = Date.now();
      if (now - lastExpire >= 1000) { lastExpire = now; this.firewall.expire(now); this.checkInterfaces(); }
      await new Promise((r) => setImmediate(r));
    }
  }

  stop(): void {
    this.stopped = true;
  }

  private readonly isStopped = (): boolean => this.stopped;

  /** Closes the socket, drops what dummynet holds, returns the buffers, closes the ports, removes the store. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.server !== null) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
      try { fs.unlinkSync(socketPath(this.name)); } catch { /* gone */ }
    }
    await this.stopWorkers();
    if (this.link !== null) { this.link.close(); this.link = null; removeHandoff(this.name); }
    this.dummynet?.flushAll();
    this.path?.returnBuffers();
    for (const p of this.ports) p.close();
    this.firewall.store.remove();
    this.firewall.close();
  }
}

/**
 * The names to try for the second port of a pair: a new VALE port is made in its partner's
 * memory region first (`valeB:f@N`), so that frames cross the pair by buffer swapping, as
 * between netmap's VALE ports, which share the global allocator; then the name as given.
 */
function sameMemory(name: string, partner: Port): string[] {
  if (!name.startsWith('vale')) return [name];
  const spec = parsePortSpec(name);
  if (spec.memId !== 0) return [name];
  spec.memId = partner.memId;
  return [formatPortSpec(spec), name];
}

function openFirst(names: string[], open: (name: string) => Port): Port {
  for (let i = 0; i < names.length - 1; i++) {
    try { return open(names[i]!); } catch (e) { if (!(e instanceof NetmapError)) throw e; }
  }
  return open(names[names.length - 1]!);
}

/** Buffers per port each worker but 0 swaps into its RX slots for the frames it hands to worker 0. */
function handoffStock(opts: KipfwOptions): number {
  return Math.min(HANDOFF_STOCK, opts.poolBuffers ?? PATH_POOL_DEFAULT);
}

/** The extra buffers worker 0 opens each port with (-p N > 1): the pool, and the others' stock. */
function workerExtra(opts: KipfwOptions): number {
  return (opts.poolBuffers ?? PATH_POOL_DEFAULT) + ((opts.workers ?? 1) - 1) * handoffStock(opts);
}

/**
 * A first handle on a VALE port that makes the port (when it is new) with room for `extra`
 * buffers; closed again once the daemon's own handle holds the port. Null when the open fails
 * (the daemon's own open reports why).
 */
function openSizer(name: string, extra: number): Port | null {
  try {
    return openPort(name, { extraBuffers: extra });
  } catch (e) {
    if (e instanceof NetmapError) return null;
    throw e;
  }
}

/**
 * Opens a port for kipfw: exclusively (a second daemon on it gets EBUSY, as NR_EXCLUSIVE) and
 * with extra buffers for dummynet when the port can lend them.
 */
function openExclusive(name: string, extra: number): Port {
  const spec = parsePortSpec(name);
  spec.exclusive = true;
  const text = formatPortSpec(spec);
  try {
    return openPort(text, { extraBuffers: extra });
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'ENOMEM' || e.code === 'EINVAL') && extra > 0) return openPort(text);
    throw e;
  }
}

