/** Runs one worker's share of a pkt-gen run on its own port handle. */
import { openPort, type OpenOptions, type Port } from '../ports/port.js';
import { CpuWaitMeter } from './cpuwait.js';
import type { GenFunction, WorkerJob } from './config.js';
import { RUN_TIMES, pingLoop, pongLoop, rxLoop, txLoop, type LoopArgs, type LoopTimes } from './loops.js';
import { S_ON_CPU_MS, S_RUN_DELAY_MS, STATS_WORDS } from './stats.js';
import { threadId } from 'node:worker_threads';

/**
 * Batches (1..127 frames, 64 on average) a VALE receiver takes from a private switch before it
 * starts, ~100 ms: V8 takes 30-50 ms (on a helper thread) to compile the receive loop, and with
 * 2000 the code was not ready when traffic came.
 */
const WARM_ROUNDS = 4000;
/** Every WARM_IDLE_EVERY-th warm-up round ends in an idle poll (the sleeping path). */
const WARM_IDLE_EVERY = 16;
/** The warm-up's waits: every period of the loop near zero, so that each branch runs (see LoopTimes). */
const WARM_TIMES: LoopTimes = { pollSliceUs: 20, idleExitMs: 0, reservedSpinUs: 5, rateWindowMs: 0, cpuWaitSampleMs: 0 };

/**
 * Runs the receive loop over WARM_ROUNDS batches of a private VALE switch (ports of this thread,
 * gone at the end) before the receiver announces itself, so that V8 has compiled its hot path
 * for these very classes when traffic starts. Cold, the receiver ran interpreted code for its
 * first tens of milliseconds of traffic: at -R 5M (3 M frames) it lost 19-23 k frames.
 * What the compiled loop had never seen sent it back to the interpreter (--trace-deopt) until
 * V8 compiled it again, 100-200 ms into the traffic; so the warm-up shows it everything:
 *  - batches of varying size, which wrap the ring at any slot and do not always drain it;
 *  - idle polls that sleep, with and without the reserved CPU's spin (every WARM_IDLE_EVERY-th
 *    round), and every periodic branch (WARM_TIMES);
 *  - a port closed before the loop is compiled, and the run's own LoopArgs made before the
 *    warm-up's (runJob): closing a port and a second LoopArgs changed fields that the code being
 *    compiled depended on, and V8 dropped it.
 * (VALE's rxsync checks for a lease a sender left outstanding, which one thread never has,
 * without a branch that only traffic would take.) Best effort: a switch that cannot be made
 * skips the warm-up.
 */
function warmReceivePath(job: WorkerJob, withSeq: boolean, cpuWait: CpuWaitMeter): void {
  let tx: Port | null = null, rx: Port | null = null;
  try {
    const sw = `valew${process.pid.toString(36)}t${threadId}`;
    // closing writes fields (Port.closed...) that V8 compiles as constants while never written
    openPort(`${sw}:c`, jobOpenOptions('rx')).close();
    tx = openPort(`${sw}:t`);
    rx = openPort(`${sw}:r`, jobOpenOptions('rx'));
    const tr = tx.txRings[0]!, u8 = tx.mem.u8;
    const args: LoopArgs = {
      // job.cfg itself, so that rxLoop sees one object shape; -X (a hex dump a frame) skips the warm-up
      port: rx, cfg: job.cfg, count: 0, rate: 0, c: new Float64Array(STATS_WORDS), stop: new Int32Array(1),
      seed: 1, log: () => {}, cpuWait, reserved: job.reserved, times: WARM_TIMES,
    };
    for (let k = 0; k < WARM_ROUNDS; k++) {
      const n = 1 + ((k * 37) % 127);
      let h = tr.head;
      for (let j = 0; j < n; j++) {
        const o = tr.slotBufOffset(h);
        u8.fill(0xff, o, o + 6); // broadcast: the switch hands it to the other port
        u8.fill(0, o + 6, o + 60);
        tr.setSlotLen(h, 60);
        h = tr.next(h);
      }
      tr.head = h; tr.cur = h;
      tx.txsync();
      // count 0: no limit, the loop ends at its idle poll (idleExitMs 0); every other idle round
      // as an unreserved receiver, whose poll does not spin first. Every third round leaves a
      // frame behind (a batch that did not drain the ring; the idle rounds take what is left).
      const idle = k % WARM_IDLE_EVERY === WARM_IDLE_EVERY - 1;
      args.count = idle ? 0 : k % 3 === 0 && n > 1 ? n - 1 : n;
      args.reserved = job.reserved && !(idle && (k & WARM_IDLE_EVERY) !== 0);
      rxLoop(args, withSeq);
    }
  } catch {
    // no warm-up: the receiver starts cold
  } finally {
    rx?.close();
    tx?.close();
  }
}

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
    // made before the warm-up's own: V8 compiles the loop for the field types of both
    const a: LoopArgs = { port, cfg: job.cfg, count: job.count, rate: job.rate, c, stop, seed: 0x9e3779b9 ^ (job.index * 0x85ebca6b), log, cpuWait, reserved: job.reserved, times: RUN_TIMES };
    if ((fn === 'rx' || fn === 'rxseq') && port.parsed.subsystem === 'vale' && !job.cfg.dump) warmReceivePath(job, fn === 'rxseq', cpuWait);
    ready();
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
