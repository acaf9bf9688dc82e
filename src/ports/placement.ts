/**
 * Where a packet program's threads run: receivers reserve a CPU, and nothing else of ours runs
 * there (pkt-gen without -a, netmap dump).
 *
 * Why: a receiver on VALE loses what arrives while it is off its CPU for longer than its ring
 * lasts (1024 slots: 0.44 ms at 2.35 Mpps); one on an interface loses what overflows the kernel
 * ring. Each node process also runs V8's helper threads (TurboFan compiles, GC), busiest in a
 * process's first half second; one that lands on the receiver's CPU holds it for a whole time
 * slice (1-5 ms on the 2-vCPU development VM, HZ 250). Keeping every other thread of both
 * processes off the receiver's CPU cut what an ordinary pkt-gen receiver lost at -R 2.35M (3 M
 * frames) from 0.9-2.1% to 0.08-0.23%; moving only the receiver's own helpers, 0.3-0.7%, only
 * the sender's, 0.8-1.2% (2026-12-03, quiet).
 *
 * How: a receiver takes the highest CPU it may use that no live receiver has reserved, records
 * it as the file `cpu-<cpu>-<pid>` in the shared-memory directory, and lets its other threads
 * run on the rest; its packet thread runs on the reserved CPU alone. A sender lets all its
 * threads run on the CPUs no live receiver reserved. Nothing is done when that would leave no
 * CPU, when the process may use only one CPU, or when it cannot list its threads. Files of dead
 * receivers are ignored and removed; a receiver removes its own when it ends. Processes of
 * another user (another directory) do not see them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as native from '../native/index.js';

const FILE = /^cpu-(\d+)-(\d+)$/;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * How many CPUs this machine has. os.cpus() reads /proc/cpuinfo, which a non-root user cannot
 * read on some machines (this VM: os.cpus() is empty, and `pkt-gen -a 1` said "CPUs 0..-1");
 * then the number of CPUs this process may run on.
 */
export function cpuCount(): number {
  const n = os.cpus().length;
  return n > 0 ? n : Math.max(1, os.availableParallelism());
}

/** CPUs reserved by live receivers in `dir` (files of dead ones are removed). */
export function reservedCpus(dir: string): Set<number> {
  const cpus = new Set<number>();
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return cpus; }
  for (const name of names) {
    const m = FILE.exec(name);
    if (m === null) continue;
    if (alive(Number(m[2]))) cpus.add(Number(m[1]));
    else { try { fs.unlinkSync(path.join(dir, name)); } catch { /* removed by another */ } }
  }
  return cpus;
}

/**
 * Lets every thread of this process run on `cpus` only (threads made later inherit it). False
 * when the threads cannot be listed: on the development VM a non-root process may not read its
 * own /proc/self at all (not even /proc/self/status).
 */
function confineProcess(cpus: readonly number[]): boolean {
  let tids: string[];
  try { tids = fs.readdirSync('/proc/self/task'); } catch { return false; }
  for (const tid of tids) {
    try { native.setAffinitySet(Number(tid), cpus); } catch { /* the thread ended meanwhile */ }
  }
  return true;
}

const UNLISTED = 'the process cannot list its threads (/proc/self/task): threads not placed';

/**
 * The CPUs this thread ran on before pinThread() pinned it (less the pinned one), or null when
 * it is not pinned. A thread inherits the CPU set of the thread that makes it. The helpers a
 * pinned packet thread starts at its first sleep (the interface notifier, the event-loop waiter)
 * run only while it sleeps, so they belong on its CPU: there they wake it at once (on the other
 * CPU, beside a busy sender, a wake-up waited for a time slice: pkt-gen rx of a veth at 1 Mpps
 * lost 0.6-1.6% instead of 0-0.3%, 2026-12-03). But their start-up — tens of milliseconds of
 * module loading and GC — would compete with the packet thread while traffic comes in. So they
 * are made on the other CPUs (offPinnedCpu) and move onto the pinned one when ready
 * (pinnedCpuOfThread, passed to them).
 */
let spawnCpus: number[] | null = null;
let pinnedCpu = -1;

/** Pins the calling thread to `cpu`; threads it makes later through offPinnedCpu() run where it ran before. */
export function pinThread(cpu: number): void {
  const before = native.getAffinity(0).filter((c) => c !== cpu);
  native.setAffinity(0, cpu);
  pinnedCpu = cpu;
  spawnCpus = before.length > 0 ? before : null;
}

/** The CPU pinThread() pinned this thread to, or -1. */
export function pinnedCpuOfThread(): number {
  return pinnedCpu;
}

/**
 * Runs `make` — which starts a thread (new Worker) — with the calling thread, if pinThread()
 * pinned it, let onto the CPUs it had before, so that the new thread does not start on the pinned
 * CPU; the pin is restored after.
 */
export function offPinnedCpu<T>(make: () => T): T {
  if (spawnCpus === null) return make();
  native.setAffinitySet(0, spawnCpus);
  try {
    return make();
  } finally {
    native.setAffinity(0, pinnedCpu);
  }
}

export interface Placement {
  /** The CPU reserved for the receiver's packet thread, or -1. */
  readonly cpu: number;
  /** What was done, for -v. */
  readonly note: string;
  /** Removes the reservation (idempotent). */
  release(): void;
}

/** No placement: nothing reserved, nothing moved. */
export const NO_PLACEMENT: Placement = { cpu: -1, note: '', release: () => {} };

/**
 * Reserves a CPU for a receiver's packet thread (see above) and moves this process's threads
 * off it; with `pinCaller` the calling thread (the packet thread) is then pinned to it, else the
 * packet thread pins itself to `cpu` when it starts. Never throws: a placement that cannot be
 * made leaves the threads where the kernel puts them, with `note` saying why. `dir`: the
 * shared-memory directory (it exists).
 */
export function reserveCpu(dir: string, pinCaller: boolean): Placement {
  try {
    const allowed = native.getAffinity(0);
    if (allowed.length < 2) return NO_PLACEMENT;
    const taken = reservedCpus(dir);
    let cpu = -1;
    for (let k = allowed.length - 1; k >= 0 && cpu < 0; k--) if (!taken.has(allowed[k]!)) cpu = allowed[k]!;
    if (cpu < 0) return { ...NO_PLACEMENT, note: 'every CPU is reserved by another receiver: none reserved' };
    const file = path.join(dir, `cpu-${cpu}-${process.pid}`);
    fs.writeFileSync(file, '', { mode: 0o600 });
    const others = allowed.filter((c) => c !== cpu);
    if (!confineProcess(others)) {
      try { fs.unlinkSync(file); } catch { /* gone */ }
      return { ...NO_PLACEMENT, note: UNLISTED };
    }
    if (pinCaller) pinThread(cpu);
    let held = true;
    const release = (): void => { if (held) { held = false; try { fs.unlinkSync(file); } catch { /* gone */ } } };
    process.once('exit', release);
    return { cpu, note: `CPU ${cpu} reserved for the packet thread, the other threads on ${others.join(',')}`, release };
  } catch (e) {
    return { ...NO_PLACEMENT, note: `threads not placed: ${(e as Error).message}` };
  }
}

/**
 * The CPUs the calling thread may use (`allowed`), and those of them no live receiver in `dir`
 * reserved (`free`).
 */
export function cpusFreeOfReceivers(dir: string): { allowed: number[]; free: number[] } {
  const allowed = native.getAffinity(0);
  const taken = reservedCpus(dir);
  return { allowed, free: allowed.filter((c) => !taken.has(c)) };
}

/** A sender's part (see above): this process's threads keep off CPUs reserved by receivers. Never throws. */
export function keepOffReservedCpus(dir: string): Placement {
  try {
    const { allowed, free } = cpusFreeOfReceivers(dir);
    const avoid = allowed.filter((c) => !free.includes(c));
    if (avoid.length === 0) return NO_PLACEMENT;
    if (free.length === 0) return { ...NO_PLACEMENT, note: `receivers reserved every CPU (${avoid.join(',')}): threads not moved` };
    if (!confineProcess(free)) return { ...NO_PLACEMENT, note: UNLISTED };
    return { ...NO_PLACEMENT, note: `threads kept off CPU ${avoid.join(',')} (reserved by receivers)` };
  } catch (e) {
    return { ...NO_PLACEMENT, note: `threads not placed: ${(e as Error).message}` };
  }
}
