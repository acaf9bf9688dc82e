/**
 * kipfw: the firewall daemon (netmap-ipfw's kipfw). Opens its ports in pairs, creates the
 * firewall's store, serves the control socket, and runs the data path (path.ts) in bounded turns
 * between which Node's event loop serves control requests and the state-expiry timer.
 *
 * Sleeping: when nothing moves the loop sleeps on all ports' rings at once (futex_waitv), at
 * most until dummynet's next packet is due; the last stretch before a due time is spent
 * re-checking instead of sleeping (the kernel's timer slack would make a futex wake-up late).
 */
import { fail, NetmapError } from '../errors.js';
import { openPort, type Port } from '../ports/index.js';
import { parsePortSpec, formatPortSpec } from '../ports/name.js';
import { waitPorts } from '../interfaces/bridge.js';
import { Firewall } from './firewall.js';
import { FirewallPath, PATH_POOL_DEFAULT, type PathDummynet, type PathStats } from './path.js';
import { serveControl, socketPath, daemonRunning, EX_USAGE, type ControlReply, type ControlRequest } from './control.js';
import type { Interfaces } from './engine.js';
import type { FirewallAccess } from './commands.js';
import fs from 'node:fs';
import type net from 'node:net';

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
  /** Log lines go here (default stderr). */
  log?: (line: string) => void;
}

/** Dummynet as the daemon plugs it in: the data path side and the command side. */
export interface DaemonDummynet extends PathDummynet {
  command: NonNullable<FirewallAccess['dummynet']>;
  flushAll(): void;
}

/** The interface name a port answers to in `recv`/`via`: its name without a `netmap:` prefix. */
export function ifaceName(portName: string): string {
  return portName.startsWith('netmap:') ? portName.slice('netmap:'.length) : portName;
}

export class Kipfw {
  readonly name: string;
  readonly firewall: Firewall;
  readonly ports: Port[];
  readonly path: FirewallPath;
  private server: net.Server | null = null;
  private stopped = false;
  private readonly spinNs: number;
  private readonly log: (line: string) => void;

  private constructor(name: string, fw: Firewall, ports: Port[], path: FirewallPath, private readonly dummynet: DaemonDummynet | null, opts: KipfwOptions) {
    this.name = name;
    this.firewall = fw;
    this.ports = ports;
    this.path = path;
    this.spinNs = (opts.spinUs ?? 200) * 1000;
    this.log = opts.log ?? ((l) => console.error(l));
  }

  /** Opens the ports, creates the firewall and starts serving its socket. */
  static async start(opts: KipfwOptions, makeDummynet?: () => DaemonDummynet): Promise<Kipfw> {
    const name = opts.name ?? 'ipfw';
    if (opts.ports.length < 2 || opts.ports.length % 2 !== 0) fail('EINVAL', `ports come in pairs: give an even number of ports, not ${opts.ports.length}`);
    if (await daemonRunning(name)) fail('EBUSY', `a firewall daemon named '${name}' is already running; pick another name with -s`);
    const ports: Port[] = [];
    let fw: Firewall | null = null;
    try {
      for (const p of opts.ports) ports.push(openExclusive(p, opts.poolBuffers ?? PATH_POOL_DEFAULT));
      fw = Firewall.create(name, { defaultAccept: opts.defaultAccept ?? true, compiled: opts.compiled ?? true });
      fw.store.daemonPid = process.pid;
      const names = opts.ports.map(ifaceName);
      const ifaces: Interfaces = { name: (id) => names[id] ?? null, generation: 0 };
      const f = fw;
      const dn = makeDummynet?.() ?? null;
      const path = new FirewallPath(ports, { generation: () => f.generation(), evaluator: () => f.evaluator(ifaces) }, dn, { zeroCopy: opts.zeroCopy ?? true });
      const k = new Kipfw(name, fw, ports, path, dn, opts);
      k.server = await serveControl(name, (req) => k.handle(req));
      return k;
    } catch (e) {
      if (fw !== null) { fw.store.remove(); fw.close(); }
      for (const p of ports) p.close();
      throw e;
    }
  }

  /** A control request: an ipfw command or a rules file. */
  handle(req: ControlRequest): ControlReply {
    const dn = this.dummynet?.command;
    const r = 'argv' in req ? this.firewall.command(req.argv, dn) : this.firewall.file(req.file, dn);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** The start-up lines: each pair and whether it swaps buffers or copies. */
  describe(): string[] {
    const lines: string[] = [];
    for (let i = 0; i < this.ports.length; i += 2) {
      const a = this.ports[i]!, b = this.ports[i + 1]!;
      lines.push(`kipfw ${this.name}: ${a.name} <-> ${b.name}: ${this.path.zeroCopyFrom(i) ? 'zero copy (buffers swapped: shared memory)' : 'copy (the ports have separate memory)'}`);
    }
    lines.push(`kipfw ${this.name}: control socket ${socketPath(this.name)}; rule 65535 ${this.firewall.store.readConfig().rules.at(-1)?.action.kind ?? 'allow'}; dummynet pool ${this.path.poolSize} buffers`);
    return lines;
  }

  get stats(): PathStats {
    return this.path.stats;
  }

  /** Runs until stop() (or `durationMs`), in turns of at most 20 ms between event-loop visits. */
  async run(durationMs = Infinity): Promise<void> {
    const end = performance.now() + durationMs;
    let lastExpire = 0;
    let idle = 0;
    while (!this.stopped && performance.now() < end) {
      const turnEnd = performance.now() + 20;
      do {
        const nowMs = Date.now();
        const nowNs = performance.now() * 1e6;
        const moved = this.path.step(nowMs, nowNs);
        if (moved > 0) { idle = 0; continue; }
        idle++;
        const dueIn = this.path.nextDueNs() - performance.now() * 1e6;
        if (dueIn <= this.spinNs) continue; // due soon: keep re-checking
        let timeoutMs = idle > 2 ? 20 : 1;
        const dueMs = (dueIn - this.spinNs) / 1e6;
        if (dueMs < timeoutMs) timeoutMs = dueMs;
        waitPorts(this.ports, timeoutMs);
      } while (!this.stopped && performance.now() < turnEnd);
      const now = Date.now();
      if (now - lastExpire >= 1000) { lastExpire = now; this.firewall.expire(now); }
      await new Promise((r) => setImmediate(r));
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** Closes the socket, drops what dummynet holds, returns the buffers, closes the ports, removes the store. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.server !== null) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
      try { fs.unlinkSync(socketPath(this.name)); } catch { /* gone */ }
    }
    this.dummynet?.flushAll();
    this.path.returnBuffers();
    for (const p of this.ports) p.close();
    this.firewall.store.remove();
    this.firewall.close();
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

export { EX_USAGE };
