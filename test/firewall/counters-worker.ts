/**
 * A worker for the counters test: attaches to the shared counters and state table, takes a
 * stripe, evaluates `packets` frames with the ruleset it is given, and reports its stripe.
 * With `keepStripe` it exits without releasing the stripe (a thread that died).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Counters, DynTable } from '../../src/firewall/state.js';
import { buildEvaluator } from '../../src/firewall/engine.js';
import type { FirewallConfig } from '../../src/firewall/rule.js';

interface Job { sab: SharedArrayBuffer; cOff: number; cLen: number; stripes: number; dOff: number; dLen: number; capacity: number; config: FirewallConfig; frames: number[][]; packets: number; compiled: boolean; keepStripe: boolean }
const job = workerData as Job | null;
// `node --test dist/test/` runs every file under test/: without a job this helper does nothing
if (job === null || job === undefined) {
  console.log('# counters-worker: worker of counters.test.ts; nothing to do outside a worker');
  process.exit(0);
}
const counters = new Counters(job.sab, job.cOff, job.cLen, job.stripes);
const dyn = new DynTable(job.sab, job.dOff, job.dLen, job.capacity);
const stripe = counters.acquireStripe();
const ev = buildEvaluator(job.config, { counters, dyn, stripe }, { name: (id) => (id === 0 ? 'veth0' : null), generation: 1 }, { compiled: job.compiled, seed: 7 });
const frames = job.frames.map((f) => Uint8Array.from(f));
for (let i = 0; i < job.packets; i++) {
  const f = frames[i % frames.length]!;
  ev.check(f, 0, f.length, true, 0, -1, 1_700_000_000_000);
}
if (!job.keepStripe) counters.releaseStripe(stripe);
parentPort!.postMessage({ stripe });
