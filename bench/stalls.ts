/**
 * How long this machine stops a thread that never sleeps: the floor under every "lossless"
 * figure of a paced run (issue 18). A VALE switch drops what does not fit in the receiver's ring
 * (as netmap's does), so a receiver stopped longer than its ring lasts loses frames whatever the
 * sender and the receive loop do: 1024 slots last 0.51 ms at 2 Mpps, 0.20 ms at 5 Mpps.
 *
 * A spinner pinned to one CPU reads CLOCK_MONOTONIC in a loop (allocating nothing) and records
 * every gap between two reads longer than 0.1 ms: time it did not run. Cases, SECONDS each:
 *  - alone: the last CPU, the other CPUs idle (what a reserved receiver's CPU sees at best);
 *  - both busy: the same, with a second spinner on CPU 0 (a sender's load);
 *  - real-time (root): SCHED_FIFO 50, sleeping 10 ms after every 90 ms so that the kernel's
 *    real-time throttling (950 ms a second) never stops it: what remains is not the guest's scheduler
 *    (interrupts, or the host taking the vCPU away: steal time this VM does not report).
 * JSON lines: per case, gaps > 0.2 / 0.5 / 1 ms per 10 s and the longest; then, for each rate, how
 * long a 1024-slot ring lasts.
 * Usage: node dist/bench/stalls.js [seconds]   (default 10)
 */
import os from 'node:os';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import * as native from '../src/native/index.js';
import { cpuCount } from '../src/ports/placement.js';
import { sleepMs } from '../src/generator/rate.js';

const BENCH = 'stalls';

interface SpinJob { cpu: number; ms: number; realtime: boolean }
interface SpinResult { gaps: number[]; ms: number }

/** Spins on `cpu` for `ms`; the gaps over 0.1 ms between two clock reads. */
function spin(job: SpinJob): SpinResult {
  native.setAffinity(native.gettid(), job.cpu);
  if (job.realtime) native.setRealtime(50);
  const gaps: number[] = [];
  native.readClock();
  const t0 = native.clock[0]!;
  let last = t0, nextRest = t0 + 90;
  for (;;) {
    native.readClock();
    const t = native.clock[0]!;
    if (t - last > 0.1) gaps.push(t - last);
    if (t - t0 >= job.ms) break;
    if (job.realtime && t >= nextRest) {
      // below the kernel's real-time budget: 10 ms of sleep after 90 of spinning (not a gap)
      sleepMs(10);
      native.readClock();
      nextRest = native.clock[0]! + 90;
      last = native.clock[0]!;
      continue;
    }
    last = t;
  }
  return { gaps, ms: job.ms };
}

if (!isMainThread) {
  parentPort!.postMessage(spin(workerData as SpinJob));
} else {
  const seconds = Math.min(120, Math.max(1, Number(process.argv[2] ?? 10) || 10));
  const cpus = cpuCount();
  const last = cpus - 1;
  const root = process.getuid?.() === 0;
  const inWorker = (job: SpinJob): Promise<SpinResult> => new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  });
  const report = (name: string, r: SpinResult): void => {
    const per10 = (min: number): number => Number((r.gaps.filter((g) => g > min).length * 10_000 / r.ms).toFixed(1));
    const longest = r.gaps.reduce((m, g) => Math.max(m, g), 0);
    console.log(JSON.stringify({
      bench: BENCH, metric: `gaps_${name}`, cpu: last, seconds, load1: Number(os.loadavg()[0]!.toFixed(2)),
      over_0_2ms_per_10s: per10(0.2), over_0_5ms_per_10s: per10(0.5), over_1ms_per_10s: per10(1),
      longest_ms: Number(longest.toFixed(2)), unit: 'gaps per 10 s',
    }));
  };
  const ms = seconds * 1000;
  report('alone', await inWorker({ cpu: last, ms, realtime: false }));
  if (cpus > 1) {
    const [, r] = await Promise.all([inWorker({ cpu: 0, ms, realtime: false }), inWorker({ cpu: last, ms, realtime: false })]);
    report('other_cpu_busy', r);
  }
  if (root) report('realtime_alone', await inWorker({ cpu: last, ms, realtime: true }));
  else console.log(JSON.stringify({ bench: BENCH, metric: 'gaps_realtime_alone', skipped: 'needs root (SCHED_FIFO)' }));
  for (const pps of [200e3, 1e6, 2e6, 5e6, 10e6]) {
    console.log(JSON.stringify({ bench: BENCH, metric: 'ring_1024_lasts_ms', rate_pps: pps, value: Number((1024 / pps * 1000).toFixed(3)), unit: 'ms' }));
  }
}
