/**
 * A pkt-gen worker thread: opens its port (one ring with -p > 1, `name-K`), pins itself to a CPU
 * if asked, runs one loop, and reports through the shared counters. Errors are posted back to
 * the main thread as { type: 'error', code, message }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NetmapError } from '../errors.js';
import * as native from '../native/index.js';
import type { WorkerJob } from './config.js';
import { STATS_WORDS, S_DONE } from './stats.js';
import { loadPortTypesFor } from '../port-types-lazy.js';
import { runJob } from './job.js';
import { prepareLookup } from '../switch/control.js';
import { pinThread } from '../ports/placement.js';

const job = workerData as WorkerJob;
const port = parentPort!;

async function main(): Promise<void> {
  await loadPortTypesFor([job.portName]);
  // a plugged-in VALE lookup must be loaded before the send loop, which never yields
  await prepareLookup(job.portName);
  if (job.cpu >= 0) pinThread(job.cpu);
  if (job.cfg.realtime > 0) native.setRealtime(job.cfg.realtime);
  const c = new Float64Array(job.stats, job.index * STATS_WORDS * 8, STATS_WORDS);
  const stop = new Int32Array(job.stop);
  try {
    runJob(job, c, stop, (line) => port.postMessage({ type: 'log', line }), () => port.postMessage({ type: 'ready' }));
  } finally {
    c[S_DONE] = 1;
  }
}

main().then(
  () => port.postMessage({ type: 'done' }),
  (e: unknown) => {
    if (e instanceof NetmapError) port.postMessage({ type: 'error', code: e.code, message: e.message });
    else port.postMessage({ type: 'error', code: 'EIO', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  },
);
