/**
 * A whole pkt-gen run: open the port, print netmap's start lines, start one worker thread per
 * ring (-p), report every -T ms, stop on -n / SIGINT / SIGTERM, and print the final summary in
 * netmap's format (or JSON lines with --json).
 */
import { Worker } from 'node:worker_threads';
import { setTimeout as delay } from 'node:timers/promises';
import { NetmapError, fail, type ErrnoName } from '../errors.js';
import { openPort, type Port } from '../ports/port.js';
import { formatPortSpec, parsePortSpec } from '../ports/name.js';
import { formatMac, formatRange } from './addr.js';
import type { GenConfig, WorkerJob } from './config.js';
import { loadPortTypesFor } from '../port-types-lazy.js';
import { nowMs } from './rate.js';
import { runJob, jobOpenOptions } from './job.js';
import { prepareLookup } from '../switch/control.js';
import * as S from './stats.js';
import { NO_PLACEMENT, cpuCount, keepOffReservedCpus, reserveCpu, type Placement } from '../ports/placement.js';
import { shmDirectory } from '../memory/space.js';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = {
  out: (t) => { process.stdout.write(t); },
  err: (t) => { process.stderr.write(t); },
};

export interface RunResult {
  status: number;
  summary: S.Summary;
  totals: S.Totals;
}

/** Checks what the option parser cannot (combinations); throws EINVAL. */
export function validateConfig(cfg: GenConfig): void {
  if (cfg.threads > 1 && (cfg.fn === 'ping' || cfg.fn === 'pong' || cfg.fn === 'txseq')) {
    fail('EINVAL', `-p ${cfg.threads}: ${cfg.fn} runs on one thread only`);
  }
  // A paced sender wakes for every few batches, and at real-time priority each wake-up takes a
  // CPU at once, from the receiver too (measured at -R 2.35M: 1.2-1.7% lost with both sides at
  // --rt, 0-0.002% with the receiver alone; before the sender slept between close batches, 4-14%).
  if (cfg.realtime > 0 && cfg.rate > 0 && (cfg.fn === 'tx' || cfg.fn === 'txseq')) fail('EINVAL', `--rt with -R: a paced sender at real-time priority takes the receiver's CPU at every wake-up; give --rt to the receiver`);
  const ncpu = cpuCount();
  if (cfg.cpus > ncpu) fail('EINVAL', `-c ${cfg.cpus}: this machine has ${ncpu} CPUs`);
  if (cfg.affinity >= ncpu) fail('EINVAL', `-a ${cfg.affinity}: this machine has CPUs 0..${ncpu - 1}`);
}

/** Largest count sent without a worker thread (well under a second on any port). */
const INLINE_MAX_PACKETS = 65536;

function share(total: number, k: number, n: number): number {
  return Math.floor(total / n) + (k < total % n ? 1 : 0);
}

/** Port name for worker k: the user's name with `-k` (one ring pair), as pkt-gen does with -p. */
export function ringPortName(name: string, k: number): string {
  const p = parsePortSpec(name);
  return formatPortSpec({ ...p, mode: 'ONE_NIC', ringId: k });
}

function verbOf(fn: GenConfig['fn']): string {
  return fn === 'tx' || fn === 'txseq' || fn === 'pong' ? 'Sent' : 'Received';
}

export async function runPktGen(cfg: GenConfig, io: Output = stdio): Promise<RunResult> {
  validateConfig(cfg);
  await loadPortTypesFor([cfg.ifname]);
  // a plugged-in VALE lookup is loaded before a send loop that never yields (an inline send runs here)
  await prepareLookup(cfg.ifname);
  // A short transmission on one thread runs on this thread with this very handle: opening an
  // interface cuts it from its host stack, so a second open would cut it again.
  const inline = runsInline(cfg);
  const main: Port = openPort(cfg.ifname, inline ? jobOpenOptions(cfg.fn) : {});
  let mainOpen = true;
  const closeMain = (): void => { if (mainOpen) { mainOpen = false; main.close(); } };
  try {
    const txLike = cfg.fn === 'tx' || cfg.fn === 'txseq';
    const rings = txLike ? main.txRings.length : main.rxRings.length;
    if (cfg.threads > 1 && main.parsed.mode !== 'ALL_NIC') fail('EINVAL', `-p ${cfg.threads}: give the port without a ring selector (${cfg.ifname})`);
    if (cfg.threads > rings) fail('EINVAL', `-p ${cfg.threads}: ${cfg.ifname} has only ${rings} ${txLike ? 'TX' : 'RX'} ring${rings === 1 ? '' : 's'}`);
    const backend = main.backend;
    const note = (main.adapter as { backendNote?: string }).backendNote ?? '';
    // The workers open their own handles; some ports (interfaces, /x) admit one holder at a time.
    if (!inline) closeMain();
    if (cfg.waitSecs > 0) {
      if (cfg.verbose > 0) io.err(`Wait ${cfg.waitSecs} secs for phy reset\n`);
      await delay(cfg.waitSecs * 1000);
    }
    const ncpu = cfg.cpus > 0 ? cfg.cpus : cpuCount();
    const what = txLike ? 'Sending on' : cfg.fn === 'rx' || cfg.fn === 'rxseq' ? 'Receiving from' : 'Working on';
    // printed once every worker holds its port: a peer may start as soon as it sees this
    const announce = (): void => {
      if (cfg.json) {
        io.out(JSON.stringify({ type: 'start', function: cfg.fn, interface: cfg.ifname, queues: rings, threads: cfg.threads, cpus: ncpu, ...(backend !== null ? { backend } : {}) }) + '\n');
        return;
      }
      io.out(`${what} ${cfg.ifname}: ${rings} queues, ${cfg.threads} threads and ${ncpu} cpus.\n`);
      if (cfg.verbose > 0 && backend !== null) io.out(`Backend: ${backend}${note !== '' ? ` (AF_XDP not used: ${note})` : ''}\n`);
      if (cfg.fn !== 'rx' && cfg.fn !== 'rxseq' && cfg.fn !== 'pong') {
        io.out(`${formatRange(cfg.src)} -> ${formatRange(cfg.dst)} (${formatMac(cfg.srcMac)} -> ${formatMac(cfg.dstMac)})\n`);
      }
    };
    // the inline job takes the handle over and closes it
    const given = inline ? main : null;
    mainOpen = !inline;
    return await runWorkers(cfg, io, rings, announce, given);
  } finally {
    closeMain();
  }
}

/**
 * Whether the run is a short transmission on one thread (a bounded count, no rate, no pinning, no
 * real-time priority: the main thread stays an ordinary one),
 * run on the calling thread: a worker would load the whole module graph again, most of pkt-gen's
 * start-up. It cannot block for long, so reports and signals are not missed.
 */
function runsInline(cfg: GenConfig): boolean {
  return cfg.threads === 1 && (cfg.fn === 'tx' || cfg.fn === 'txseq') && cfg.count > 0 && cfg.count <= INLINE_MAX_PACKETS &&
    cfg.rate === 0 && cfg.affinity < 0 && cfg.realtime === 0;
}

async function runWorkers(cfg: GenConfig, io: Output, rings: number, announce: () => void, given: Port | null): Promise<RunResult> {
  const n = cfg.threads;
  const statsBuf = new SharedArrayBuffer(n * S.STATS_WORDS * 8);
  const stopBuf = new SharedArrayBuffer(4);
  const stats = new Float64Array(statsBuf);
  const stop = new Int32Array(stopBuf);
  for (let k = 0; k < n; k++) stats[k * S.STATS_WORDS + S.S_MIN_SPACE] = S.SPACE_UNSET;
  const ncpu = cfg.cpus > 0 ? cfg.cpus : cpuCount();
  const errors: { code: ErrnoName; message: string }[] = [];
  const onSignal = (): void => { Atomics.store(stop, 0, 1); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let timer: NodeJS.Timeout | null = null, idle: NodeJS.Timeout | null = null;
  let readyCount = 0, announced = false;
  const workerReady = (): void => {
    if (++readyCount === n && errors.length === 0 && !announced) { announced = true; announce(); }
  };
  const inline = given !== null;
  const placement = placeThreads(cfg);
  if (cfg.verbose > 0 && placement.note !== '') io.err(`Placement: ${placement.note}\n`);
  try {
    const workers: Promise<void>[] = [];
    for (let k = 0; k < n; k++) {
      const job: WorkerJob = {
        cfg,
        portName: n === 1 ? cfg.ifname : ringPortName(cfg.ifname, k),
        index: k,
        count: share(cfg.count, k, n),
        rate: cfg.rate > 0 ? cfg.rate / n : 0,
        stats: statsBuf,
        stop: stopBuf,
        cpu: cfg.affinity >= 0 ? (cfg.affinity + k) % ncpu : placement.cpu,
        reserved: placement.cpu >= 0, // (never with -a)
      };
      if (inline) {
        const c = new Float64Array(statsBuf, k * S.STATS_WORDS * 8, S.STATS_WORDS);
        try {
          runJob(job, c, stop, (line) => io.err(S.logPrefix(nowMs(), `worker_${k}`) + line + '\n'), workerReady, given);
        } catch (e) {
          if (!(e instanceof NetmapError)) throw e;
          errors.push({ code: e.code, message: e.message });
        } finally {
          c[S.S_DONE] = 1;
        }
        continue;
      }
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: job });
      workers.push(new Promise<void>((resolve) => {
        let reported = false;
        worker.on('message', (m: { type: string; line?: string; code?: ErrnoName; message?: string }) => {
          if (m.type === 'ready') workerReady();
          else if (m.type === 'log') io.err(S.logPrefix(nowMs(), `worker_${k}`) + m.line + '\n');
          else if (m.type === 'error') { reported = true; errors.push({ code: m.code ?? 'EIO', message: m.message ?? 'worker failed' }); Atomics.store(stop, 0, 1); }
        });
        worker.on('error', (e) => { if (!reported) errors.push({ code: 'EIO', message: `worker ${k}: ${e.message}` }); Atomics.store(stop, 0, 1); });
        worker.on('exit', () => resolve());
      }));
    }
    if (cfg.reportMs > 0) timer = startReports(cfg, io, stats, n);
    if (cfg.idleExit && n > 1) idle = watchIdle(stats, n, stop);
    await Promise.all(workers);
  } finally {
    placement.release();
    if (timer !== null) clearInterval(timer);
    if (idle !== null) clearInterval(idle);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (errors.length > 0) throw new NetmapError(errors[0]!.code, errors[0]!.message.replace(/ \([A-Z0-9]+\)$/, ''));
  const t = S.totals(stats, n);
  const pkts = cfg.fn === 'ping' ? t.pkts : cfg.fn === 'pong' ? t.txPkts : t.pkts;
  const summary = S.summarize(verbOf(cfg.fn), pkts, t.bytes, t.events, t.seconds);
  printSummary(cfg, io, summary, t, rings);
  return { status: 0, summary, totals: t };
}

/**
 * Thread placement (src/ports/placement.ts) unless -a, -p > 1 or --no-reserve: a receiver (rx,
 * rxseq) reserves a CPU for its worker, whose thread pins itself there; senders (tx, txseq,
 * ping) keep off receivers' CPUs; pong is both and is left alone.
 */
function placeThreads(cfg: GenConfig): Placement {
  if (!cfg.reserveCpu || cfg.affinity >= 0 || cfg.threads !== 1 || cfg.fn === 'pong') return NO_PLACEMENT;
  return cfg.fn === 'rx' || cfg.fn === 'rxseq' ? reserveCpu(shmDirectory(), false) : keepOffReservedCpus(shmDirectory());
}

/** -W with several threads: stop all once traffic started and no thread got anything for 1 s. */
function watchIdle(stats: Float64Array, n: number, stop: Int32Array): NodeJS.Timeout {
  let last = 0, since = nowMs();
  return setInterval(() => {
    const p = S.totals(stats, n).pkts;
    if (p !== last) { last = p; since = nowMs(); } else if (p > 0 && nowMs() - since > 1000) Atomics.store(stop, 0, 1);
  }, 100);
}

function startReports(cfg: GenConfig, io: Output, stats: Float64Array, n: number): NodeJS.Timeout {
  let prev = S.totals(stats, n);
  let prevT = nowMs();
  return setInterval(() => {
    const t = S.totals(stats, n);
    const now = nowMs();
    let minSpace = S.SPACE_UNSET;
    for (let k = 0; k < n; k++) {
      minSpace = Math.min(minSpace, stats[k * S.STATS_WORDS + S.S_MIN_SPACE]!);
      stats[k * S.STATS_WORDS + S.S_MIN_SPACE] = S.SPACE_UNSET;
    }
    const dp = t.pkts - prev.pkts, db = t.bytes - prev.bytes, de = t.events - prev.events, usec = (now - prevT) * 1000;
    if (cfg.json) {
      const o: Record<string, number | string> = { type: 'interval', function: cfg.fn, pps: dp / (usec / 1e6), packets: dp, bps: (8 * db) / (usec / 1e6), usec: Math.round(usec), avg_batch: de > 0 ? dp / de : 0, total_packets: t.pkts };
      if (cfg.fn === 'ping') Object.assign(o, rttFields(t));
      io.out(JSON.stringify(o) + '\n');
    } else if (cfg.fn === 'ping') {
      const r = rttFields(t);
      io.err(S.logPrefix(now, 'main_thread') + `count ${t.rttCount} RTT: min ${r.rtt_min_ns} av ${r.rtt_avg_ns} max ${r.rtt_max_ns} ns\n`);
    } else {
      io.err(S.logPrefix(now, 'main_thread') + S.formatInterval(dp, db, de, usec, minSpace, cfg.normalize) + '\n');
    }
    prev = t; prevT = now;
  }, cfg.reportMs);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function rttFields(t: S.Totals): { rtt_min_ns: number; rtt_avg_ns: number; rtt_max_ns: number } {
  return {
    rtt_min_ns: Math.round(t.rttMin),
    rtt_avg_ns: t.rttCount > 0 ? Math.round(t.rttSum / t.rttCount) : 0,
    rtt_max_ns: Math.round(t.rttMax),
  };
}

function printSummary(cfg: GenConfig, io: Output, s: S.Summary, t: S.Totals, rings: number): void {
  const seq = cfg.fn === 'rxseq';
  if (cfg.json) {
    const o: Record<string, number | string> = {
      type: 'summary', function: cfg.fn, interface: cfg.ifname, threads: cfg.threads, queues: rings,
      verb: s.verb, packets: s.packets, bytes: s.bytes, events: s.events, size: s.size, seconds: s.seconds,
      pps: s.pps, bps: s.bps, raw_bps: s.rawBps, avg_batch: s.avgBatch, drops: t.drops,
      cpu_ms: round3(t.onCpuMs), cpu_wait_ms: round3(t.runDelayMs),
    };
    if (cfg.fn === 'rx' || cfg.fn === 'rxseq') Object.assign(o, { cpu_waits_ms: t.cpuWaitsMs.map(round3) });
    if (cfg.rate > 0 && (cfg.fn === 'tx' || cfg.fn === 'txseq')) Object.assign(o, { late_max_ms: round3(t.lateMaxMs), schedule_slipped: t.slipped });
    if (seq) Object.assign(o, { seq_gaps: t.seqGaps, seq_lost: t.seqLost, seq_out_of_order: t.seqOoo });
    if (cfg.fn === 'ping') Object.assign(o, { sent: t.txPkts }, rttFields(t));
    if (cfg.fn === 'pong') Object.assign(o, { received: t.pkts });
    io.out(JSON.stringify(o) + '\n');
    return;
  }
  io.out(S.formatSummary(s, cfg.normalize));
  if (seq) io.out(`Sequence: ${t.seqGaps} gaps, ${t.seqLost} packets lost, ${t.seqOoo} out of order.\n`);
  if (cfg.fn === 'ping') {
    const r = rttFields(t);
    io.out(`RTT over ${t.rttCount} packets: min ${r.rtt_min_ns} av ${r.rtt_avg_ns} max ${r.rtt_max_ns} ns (${t.txPkts} sent, ${t.pkts} received)\n`);
  }
  if (cfg.verbose > 0 && t.drops > 0) io.out(`Dropped by the port: ${t.drops} packets.\n`);
  if (cfg.verbose > 0 && cfg.rate > 0 && (cfg.fn === 'tx' || cfg.fn === 'txseq')) {
    io.out(`Rate: at worst ${t.lateMaxMs.toFixed(3)} ms behind schedule; ${t.slipped} packets' worth of schedule given up.\n`);
  }
  if (cfg.verbose > 0) {
    const longest = cfg.fn === 'rx' || cfg.fn === 'rxseq' ? `, at worst ${(t.cpuWaitsMs[0] ?? 0).toFixed(3)} ms at once` : '';
    io.out(`Waited ${t.runDelayMs.toFixed(3)} ms for a CPU${longest}.\n`);
  }
}
