/**
 * One kipfw worker thread (`kipfw -p N`): opens ring pair `ring` of each of the daemon's ports,
 * evaluates with the daemon's firewall (its store: one ruleset, one set of counters, one state
 * table; this thread adds to a counter stripe of its own) and runs the data path until the
 * daemon sets the stop word. Its statistics are published in a shared Float64Array.
 *
 * Worker 0 owns the daemon's dummynet: the other workers hand it their pipe/queue frames
 * (handoff.ts), it releases them out of its own TX rings, and it answers the main thread's
 * dummynet commands (`pipe 1 config ...`, `pipe show`) from the hand-off file's mailbox.
 */
import { workerData } from 'node:worker_threads';
import '../port-types.js';
import { openPort, type Port } from '../ports/index.js';
import { NetmapError } from '../errors.js';
import * as native from '../native/index.js';
import { Firewall } from './firewall.js';
import { FirewallPath } from './path.js';
import { PathLoop } from './loop.js';
import { DnHandoff } from './handoff.js';
import { makeDaemonDummynet } from './dummynet-glue.js';
import type { Interfaces } from './engine.js';
import type { DaemonDummynet } from './daemon.js';
import { STAT_FIELDS, ringName, type WorkerJob } from './worker-job.js';

/** Opens ring pair `ring` of `name` with `extra` buffers, or without them where the port cannot lend any. */
function openRing(name: string, ring: number, extra: number): Port {
  const text = ringName(name, ring);
  try {
    return openPort(text, { extraBuffers: extra });
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'ENOMEM' || e.code === 'EINVAL') && extra > 0) return openPort(text);
    throw e;
  }
}

/** The owner answers one mailbox request: a dummynet command line, or its release lateness. */
function answer(link: DnHandoff, dn: DaemonDummynet, fw: Firewall): void {
  let reply: unknown;
  try {
    const req = link.request() as { argv?: string[]; testOnly?: boolean; lateness?: boolean } | null;
    if (req === null) return;
    if (req.lateness === true) {
      reply = dn.lateness();
    } else {
      const config = fw.store.readConfig();
      const r = dn.command(req.argv ?? [], config, req.testOnly === true);
      reply = { status: r.status, stdout: r.stdout, stderr: r.stderr, changed: r.config !== config, dummynet: r.config.dummynet ?? null };
    }
  } catch (e) {
    reply = { status: 70, stdout: '', stderr: `ipfw: dummynet: ${(e as Error).message}\n`, changed: false, dummynet: null };
  }
  link.reply(reply);
}

async function main(job: WorkerJob): Promise<void> {
  process.env.NETMAP_TS_DIR = job.dir;
  const control = new Int32Array(job.control);
  const stats = new Float64Array(job.stats);
  const ports: Port[] = [];
  let fw: Firewall | null = null;
  let link: DnHandoff | null = null;
  let path: FirewallPath | null = null;
  let dn: DaemonDummynet | null = null;
  const owner = job.ring === 0;
  try {
    for (const p of job.ports) ports.push(openRing(p, job.ring, owner ? job.extraBuffers : 0));
    fw = Firewall.open(job.name, { compiled: job.compiled });
    link = DnHandoff.open(job.name);
    const ifaces: Interfaces = { name: (id) => job.ifaceNames[id] ?? null, generation: 0 };
    const f = fw;
    if (owner) {
      dn = makeDaemonDummynet();
      // dummynet's thread: timed sleeps end when asked (timer slack 1 ns), optionally real-time
      native.setTimerSlack(1);
      if (job.realtime > 0) native.setRealtime(job.realtime);
    }
    path = new FirewallPath(ports, { generation: () => f.generation(), evaluator: () => f.evaluator(ifaces) }, dn, { zeroCopy: job.zeroCopy, handoff: { link, worker: job.ring, stock: job.stock } });
    const loop = new PathLoop(path, ports, { spinNs: job.spinUs * 1000, spin: job.spin, bell: owner ? link : null });
    Atomics.store(control, 1, 1);
    Atomics.notify(control, 1);
    let quiet = 0;
    while (Atomics.load(control, 0) === 0) {
      const moved = loop.turn();
      if (owner && link.hasRequest()) answer(link, dn!, fw);
      if (moved > 0 || (++quiet & 15) === 0) for (let i = 0; i < STAT_FIELDS.length; i++) stats[i] = path.stats[STAT_FIELDS[i]!];
    }
    // the daemon stops the other workers first: what they left in the rings comes back here
    if (owner) {
      while (Atomics.load(control, 0) === 1) {
        if (link.hasRequest()) answer(link, dn!, fw);
        Atomics.wait(control, 0, 1, 5);
      }
      path.drainHandoff();
    }
    for (let i = 0; i < STAT_FIELDS.length; i++) stats[i] = path.stats[STAT_FIELDS[i]!];
  } catch (e) {
    new Uint8Array(job.error).set(Buffer.from(String((e as Error).message).slice(0, 1000)));
    Atomics.store(control, 1, -1);
    Atomics.notify(control, 1);
  } finally {
    dn?.flushAll();
    path?.returnBuffers();
    for (const p of ports) p.close();
    link?.close();
    fw?.close();
  }
}

await main(workerData as WorkerJob);
