/**
 * One kipfw worker thread (`kipfw -p N`): opens ring pair `ring` of each of the daemon's ports,
 * evaluates with the daemon's firewall (its store: one ruleset, one set of counters, one state
 * table; this thread adds to a counter stripe of its own) and runs the data path until the
 * daemon sets the stop word. Its statistics are published in a shared Float64Array.
 */
import { workerData } from 'node:worker_threads';
import '../port-types.js';
import { openPort, type Port } from '../ports/index.js';
import { waitPorts } from '../interfaces/bridge.js';
import { Firewall } from './firewall.js';
import { FirewallPath } from './path.js';
import { IDLE_SPIN_MS } from './daemon.js';
import type { Interfaces } from './engine.js';
import { STAT_FIELDS, ringName, type WorkerJob } from './worker-job.js';

async function main(job: WorkerJob): Promise<void> {
  process.env.NETMAP_TS_DIR = job.dir;
  const control = new Int32Array(job.control);
  const stats = new Float64Array(job.stats);
  const ports: Port[] = [];
  let fw: Firewall | null = null;
  try {
    for (const p of job.ports) ports.push(openPort(ringName(p, job.ring)));
    fw = Firewall.open(job.name, { compiled: job.compiled });
    const ifaces: Interfaces = { name: (id) => job.ifaceNames[id] ?? null, generation: 0 };
    const f = fw;
    const path = new FirewallPath(ports, { generation: () => f.generation(), evaluator: () => f.evaluator(ifaces) }, null, { zeroCopy: job.zeroCopy });
    Atomics.store(control, 1, 1);
    Atomics.notify(control, 1);
    let idle = 0, idleSince = 0;
    while (Atomics.load(control, 0) === 0) {
      const moved = path.step(Date.now());
      if (moved > 0) { idle = 0; idleSince = 0; }
      else {
        const t = performance.now();
        if (idleSince === 0) idleSince = t;
        if (t - idleSince >= IDLE_SPIN_MS) waitPorts(ports, ++idle > 2 ? 20 : 1);
      }
      if ((idle & 15) === 0 || moved > 0) for (let i = 0; i < STAT_FIELDS.length; i++) stats[i] = path.stats[STAT_FIELDS[i]!];
    }
    for (let i = 0; i < STAT_FIELDS.length; i++) stats[i] = path.stats[STAT_FIELDS[i]!];
  } catch (e) {
    new Uint8Array(job.error).set(Buffer.from(String((e as Error).message).slice(0, 1000)));
    Atomics.store(control, 1, -1);
    Atomics.notify(control, 1);
  } finally {
    for (const p of ports) p.close();
    fw?.close();
  }
}

await main(workerData as WorkerJob);
