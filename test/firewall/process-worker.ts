/**
 * A separate process for the cross-process test: maps the shared file given on the command line
 * (as the daemon's processes would), attaches counters and the state table at their offsets,
 * evaluates `packets` frames whose flows are numbered from `flowBase`, and exits.
 * argv: file cOff cLen dOff dLen capacity flowBase packets
 */
import fs from 'node:fs';
import * as native from '../../src/native/index.js';
import { Counters, DynTable } from '../../src/firewall/state.js';
import { buildEvaluator } from '../../src/firewall/engine.js';
import { c, rule, config, ip4 } from './fw-helpers.js';

// `node --test dist/test/` runs every file under test/: without arguments this helper does nothing
if (process.argv.length < 10) {
  console.log('# process-worker: child of counters.test.ts; nothing to do without arguments');
  process.exit(0);
}
const [file = '', ...args] = process.argv.slice(2);
const numbers = args.map(Number);
if (numbers.length !== 7 || !numbers.every(Number.isInteger)) throw new Error(`process-worker: expected a file and 7 integers, got '${args.join(' ')}'`);
const [cOff, cLen, dOff, dLen, capacity, flowBase, packets] = numbers as [number, number, number, number, number, number, number];
const size = fs.statSync(file).size;
const fd = native.openFile(file, fs.constants.O_RDWR);
const { address, buffer } = native.reserveAddressSpace(size);
native.mapFileAt(address, size, fd);
const counters = new Counters(buffer, cOff, cLen, 4);
const dyn = new DynTable(buffer, dOff, dLen, capacity);
const stripe = counters.acquireStripe();
const cfg = config([
  rule(100, 'check-state', 0, []),
  rule(200, 'allow', 0, [c({ op: 'proto', proto: 17 }), c({ op: 'probe-state', name: 'default' }), c({ op: 'keep-state', name: 'default', record: false })]),
  rule(300, 'deny', 0, []),
], { settings: { dynMax: capacity } });
const ev = buildEvaluator(cfg, { counters, dyn, stripe }, { name: () => 'p0', generation: 1 }, { compiled: true, seed: 1 });
const flows = 500;
const frames = Array.from({ length: flows }, (_, i) => ip4('198.18.0.1', '198.19.0.1', { kind: 'udp', sport: flowBase + i, dport: 53 }));
let passed = 0;
for (let i = 0; i < packets; i++) {
  const f = frames[i % flows]!;
  if (ev.check(f, 0, f.length, true, 0, -1, 1_000_000) === 0) passed++;
}
counters.releaseStripe(stripe);
process.stdout.write(JSON.stringify({ stripe, passed }) + '\n');
