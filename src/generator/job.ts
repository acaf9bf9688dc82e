/** Runs one worker's share of a pkt-gen run on its own port handle. */
import { openPort, type OpenOptions, type Port } from '../ports/port.js';
import { CpuWaitMeter } from './cpuwait.js';
import type { GenFunction, WorkerJob } from './config.js';
import { pingLoop, pongLoop, rxLoop, txLoop, type LoopArgs } from './loops.js';
import { S_ON_CPU_MS, S_RUN_DELAY_MS } from './stats.js';

/** How a job opens its port: an extra buffer for the frame template of senders. */
export function jobOpenOptions(fn: GenFunction): OpenOptions {
  const needsTemplate = fn === 'tx' || fn === 'txseq' || fn === 'ping';
  // A receiver never sends: its polls need not flush TX rings (netmap's NR_NO_TX_POLL).
  const receiveOnly = fn === 'rx' || fn === 'rxseq';
  return { extraBuffers: needsTemplate ? 1 : 0, noTxPoll: receiveOnly };
}

/** Runs the job on `given` (opened with jobOpenOptions; closed here) or on a handle it opens. */
export function runJob(job: WorkerJob, c: Float64Array, stop: Int32Array, log: (line: string) => void, ready: () => void = () => {}, given: Port | null = null): void {
  const fn = job.cfg.fn;
  const port = given ?? openPort(job.portName, jobOpenOptions(fn));
  // A real-time thread must sleep when it has nothing to do: spinning, it would keep the threads
  // it preempted off its CPU until the kernel throttles it, for tens of milliseconds at once.
  if (job.cfg.realtime > 0) port.pollSpinUs = 0;
  // opened here, in the worker thread, so that it measures this thread
  const cpuWait = new CpuWaitMeter();
  const wait0 = cpuWait.sampleNs(), ran0 = cpuWait.onCpuNs();
  try {
    ready();
    const a: LoopArgs = { port, cfg: job.cfg, count: job.count, rate: job.rate, c, stop, seed: 0x9e3779b9 ^ (job.index * 0x85ebca6b), log, cpuWait, reserved: job.reserved };
    switch (fn) {
      case 'tx': txLoop(a, false); break;
      case 'txseq': txLoop(a, true); break;
      case 'rx': rxLoop(a, false); break;
      case 'rxseq': rxLoop(a, true); break;
      case 'ping': pingLoop(a); break;
      case 'pong': pongLoop(a); break;
    }
  } finally {
    const wait1 = cpuWait.sampleNs();
    if (wait0 >= 0 && wait1 >= wait0) c[S_RUN_DELAY_MS] = (wait1 - wait0) / 1e6;
    const ran1 = cpuWait.onCpuNs();
    if (ran0 >= 0 && ran1 >= ran0) c[S_ON_CPU_MS] = (ran1 - ran0) / 1e6;
    cpuWait.close();
    port.close();
  }
}
