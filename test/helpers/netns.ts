/**
 * Network-namespace laboratory for tests that touch the kernel network.
 *
 * NETWORK SAFETY: everything is created inside namespaces this process makes (named
 * `nmts-<pid>-<tag>`), addresses must be in 198.18.0.0/15, every command runs with a time limit,
 * and everything is removed at cleanup — also on exceptions (use `withLab`) and at process exit or
 * SIGINT/SIGTERM (an exit handler deletes whatever is left). Namespaces left by a crashed earlier
 * run (their pid is dead) are removed when a new lab starts.
 *
 * Tests call `skipReason()` first and skip with the printed reason when it is not null.
 */
import { spawnSync, spawn, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import * as native from '../../src/native/index.js';

export const PREFIX = `nmts-${process.pid}-`;
const COMMAND_TIMEOUT_MS = 15_000;
const live = new Set<Lab>();

function which(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      fs.accessSync(`${dir}/${cmd}`, fs.constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

/**
 * Why namespace tests cannot run here (not root, `ip` or a command of `needs` missing; 'tun' stands
 * for /dev/net/tun), or null when they can.
 */
export function skipReason(needs: string[] = []): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces)';
  for (const cmd of ['ip', ...needs]) {
    if (cmd === 'tun') {
      if (!fs.existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
    } else if (!which(cmd)) {
      return `needs the '${cmd}' command`;
    }
  }
  return null;
}

/** True when `cidr` (a.b.c.d/len or a plain address) lies inside 198.18.0.0/15. */
export function inTestRange(cidr: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(cidr);
  if (m === null) return false;
  const o = m.slice(1, 5).map(Number);
  if (o.some((x) => x > 255)) return false;
  const len = m[5] === undefined ? 32 : Number(m[5]);
  return o[0] === 198 && (o[1] === 18 || o[1] === 19) && len >= 15 && len <= 32;
}

export interface RunResult { status: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): RunResult {
  const r: SpawnSyncReturns<string> = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function must(cmd: string, args: string[], timeoutMs?: number): RunResult {
  const r = run(cmd, args, timeoutMs);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r;
}

/** Removes namespaces left by earlier runs of this helper whose process is gone. */
export function removeStaleNamespaces(): void {
  const r = run('ip', ['netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^nmts-(\d+)-/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !native.processAlive(pid)) run('ip', ['netns', 'del', name]);
  }
}

export interface LinkCounters { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; rxDropped: number; txDropped: number }

let homeNetns = -1;

/** A set of namespaces, links and processes that `cleanup()` removes. */
export class Lab {
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private entered = false;

  constructor() {
    live.add(this);
    installExitHandler();
    removeStaleNamespaces();
  }

  /** Creates namespace `nmts-<pid>-<tag>` with lo up and IPv6 off; returns its name. */
  ns(tag: string): string {
    if (!/^[a-z0-9]{1,12}$/.test(tag)) throw new Error(`bad namespace tag ${tag}`);
    const name = PREFIX + tag;
    run('ip', ['netns', 'del', name]);
    must('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    // IPv4 only: no IPv6 neighbour discovery or MLD chatter on the test links.
    for (const key of ['all', 'default']) run('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', `net.ipv6.conf.${key}.disable_ipv6=1`]);
    return name;
  }

  /** Creates a veth pair devA (in nsA) <-> devB (in nsB), both up. */
  veth(nsA: string, devA: string, nsB: string, devB: string): void {
    this.own(nsA);
    this.own(nsB);
    must('ip', ['link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB]);
    must('ip', ['-n', nsA, 'link', 'set', devA, 'up']);
    must('ip', ['-n', nsB, 'link', 'set', devB, 'up']);
  }

  /** Adds an address (must be inside 198.18.0.0/15). */
  addr(ns: string, dev: string, cidr: string): void {
    this.own(ns);
    if (!inTestRange(cidr)) throw new Error(`address ${cidr} is outside 198.18.0.0/15`);
    must('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
  }

  /** Turns off segmentation/checksum offloads (needs ethtool; silently skipped without it). */
  noOffloads(ns: string, dev: string): void {
    this.own(ns);
    if (!which('ethtool')) return;
    run('ip', ['netns', 'exec', ns, 'ethtool', '-K', dev, 'tso', 'off', 'gso', 'off', 'gro', 'off', 'tx', 'off']);
  }

  /**
   * Three hosts in a line, l -- m -- r: veth l0/m0 and m1/r0, the ends addressed 198.18.0.1/24
   * and 198.18.0.2/24 (m forwards between m0 and m1, by whatever the test runs there).
   * `offloads: false` turns segmentation/checksum offloads off on the ends.
   */
  line(offloads: boolean): { l: string; m: string; r: string } {
    const l = this.ns('l'), m = this.ns('m'), r = this.ns('r');
    this.veth(l, 'l0', m, 'm0');
    this.veth(m, 'm1', r, 'r0');
    this.addr(l, 'l0', '198.18.0.1/24');
    this.addr(r, 'r0', '198.18.0.2/24');
    if (!offloads) {
      this.noOffloads(l, 'l0');
      this.noOffloads(r, 'r0');
    }
    return { l, m, r };
  }

  /** Runs a command in namespace `ns` with a time limit. */
  run(ns: string, cmd: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): RunResult {
    this.own(ns);
    return run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
  }

  /** Like run() but throws on a non-zero status. */
  must(ns: string, cmd: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): RunResult {
    this.own(ns);
    return must('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
  }

  /** Starts a background command in `ns`; killed at cleanup at the latest. */
  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    this.own(ns);
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** Kernel counters of a link. */
  counters(ns: string, dev: string): LinkCounters {
    this.own(ns);
    const r = must('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'dev', dev]);
    const j = JSON.parse(r.stdout) as Array<{ stats64: { rx: Record<string, number>; tx: Record<string, number> } }>;
    const s = j[0]!.stats64;
    return {
      rxPackets: s.rx.packets!, txPackets: s.tx.packets!, rxBytes: s.rx.bytes!, txBytes: s.tx.bytes!,
      rxDropped: s.rx.dropped!, txDropped: s.tx.dropped!,
    };
  }

  /**
   * Moves the calling (main) thread into `ns`: sockets, interface look-ups and child processes
   * started afterwards live there. Returns the function that moves it back.
   */
  enter(ns: string): () => void {
    this.own(ns);
    if (homeNetns < 0) homeNetns = native.openFile('/proc/thread-self/ns/net', native.O_RDONLY);
    const fd = native.openFile(`/run/netns/${ns}`, native.O_RDONLY);
    try {
      native.setns(fd, native.CLONE_NEWNET);
    } finally {
      native.closeFd(fd);
    }
    this.entered = true;
    return () => this.leave();
  }

  /** Moves the main thread back to the namespace it started in. */
  leave(): void {
    if (!this.entered || homeNetns < 0) return;
    native.setns(homeNetns, native.CLONE_NEWNET);
    this.entered = false;
  }

  private own(ns: string): void {
    if (!this.namespaces.includes(ns)) throw new Error(`namespace ${ns} was not made by this lab`);
  }

  /** Kills children, leaves, deletes every namespace (with everything in it). Idempotent. */
  cleanup(): void {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) {
        try { c.kill('SIGKILL'); } catch { /* gone */ }
      }
    }
    this.children.length = 0;
    try { this.leave(); } catch { /* best effort */ }
    for (const ns of this.namespaces.splice(0)) {
      // processes started inside our namespaces (detached forwarders, servers) would keep the
      // namespace and its links alive after `ip netns del`: end them, by pid
      for (const pid of run('ip', ['netns', 'pids', ns], 5000).stdout.split('\n').map(Number)) {
        if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        }
      }
      run('ip', ['netns', 'del', ns], 5000);
    }
    live.delete(this);
  }
}

/** Runs `fn` with a fresh lab and always cleans up. */
export async function withLab<T>(fn: (lab: Lab) => Promise<T> | T): Promise<T> {
  const lab = new Lab();
  try {
    return await fn(lab);
  } finally {
    lab.cleanup();
  }
}

let handlerInstalled = false;
function installExitHandler(): void {
  if (handlerInstalled) return;
  handlerInstalled = true;
  const cleanAll = (): void => {
    for (const lab of [...live]) lab.cleanup();
  };
  process.on('exit', cleanAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    });
  }
}

/** Sleeps `ms` without blocking the event loop. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
