/** Runs one worker's share of a pkt-gen run on its own port handle. */
import { openPort } from '../ports/port.js';
import type { WorkerJob } from './config.js';
import { pingLoop, pongLoop, rxLoop, txLoop, type LoopArgs } from './loops.js';

export function runJob(job: WorkerJob, c: Float64Array, stop: Int32Array, log: (line: string) => void, ready: () => void = () => {}): void {
  const fn = job.cfg.fn;
  const needsTemplate = fn === 'tx' || fn === 'txseq' || fn === 'ping';
  // A receiver never sends: its polls need not flush TX rings (netmap's NR_NO_TX_POLL).
  const receiveOnly = fn === 'rx' || fn === 'rxseq';
  const port = openPort(job.portName, { extraBuffers: needsTemplate ? 1 : 0, noTxPoll: receiveOnly });
  try {
    ready();
    const a: LoopArgs = { port, cfg: job.cfg, count: job.count, rate: job.rate, c, stop, seed: 0x9e3779b9 ^ (job.index * 0x85ebca6b), log };
    switch (fn) {
      case 'tx': txLoop(a, false); break;
      case 'txseq': txLoop(a, true); break;
      case 'rx': rxLoop(a, false); break;
      case 'rxseq': rxLoop(a, true); break;
      case 'ping': pingLoop(a); break;
      case 'pong': pongLoop(a); break;
    }
  } finally {
    port.close();
  }
}
