/**
 * The measuring window of bench/pktgen-callgrind.sh: watches the packet counter of a pipe's TX
 * ring (in the shared memory, as `vale-ctl` reads port counters) while one side of the pipe runs
 * under callgrind; once `warm` packets have passed it zeroes callgrind's counters (`vgdb
 * --pid=PID zero`), and once `window` more have passed it dumps them (`vgdb --pid=PID dump`).
 * The counter is read right before and right after each command, so the packets of the window
 * are known to within those two reads (printed, with the bounds, as one JSON line). Start-up, JIT
 * warm-up and exit stay outside the window.
 *
 *   NETMAP_TS_DIR=DIR node dist/bench/lib/callgrind-window.js PID PORT WARM WINDOW [TIMEOUT_S]
 *
 * PORT: the pipe end whose TX ring 0 is watched (the sender's, e.g. `cg1{1`).
 */
import { spawnSync } from 'node:child_process';
import { registry } from '../../src/memory/registry.js';
import * as L from '../../src/memory/layout.js';

const [pidArg, portArg, warmArg, windowArg, timeoutArg] = process.argv.slice(2);
const portName = portArg ?? '';
const pid = Number(pidArg), warm = Number(warmArg), window = Number(windowArg), timeoutS = Number(timeoutArg ?? 600);
if (!(pid > 0) || portName === '' || !(warm >= 0) || !(window > 0) || !(timeoutS > 0)) {
  console.error('usage: node callgrind-window.js PID PORT WARM WINDOW [TIMEOUT_S]');
  process.exit(64);
}
const until = Date.now() + timeoutS * 1000;
const nap = new Int32Array(new SharedArrayBuffer(4));
const sleepMs = (ms: number): void => { Atomics.wait(nap, 0, 0, ms); };
const fail = (why: string): never => { console.error(`callgrind-window: ${why}`); process.exit(1); };

const reg = registry();
// pkt-gen opens its port once on the main thread to check it and again in its worker: a pipe
// neither end holds for a moment goes away and comes back elsewhere, so the name is looked up
// again whenever it no longer leads to the ring watched
let index = -1, k8 = -1;
function packets(): number {
  const now = reg.findPort(portName);
  if (now !== index) {
    index = now;
    if (index < 0) return 0;
    reg.region(reg.portGet(index, L.PE_MEM_ID)); // map its memory in this process
    k8 = (reg.ringOffset(index, 0) + L.KR_PKTS) >>> 3;
  }
  return index < 0 ? 0 : reg.sp.f64[k8]!;
}

function alive(): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function waitFor(n: number): void {
  while (packets() < n) {
    if (Date.now() > until) fail(`stuck at ${packets()} packets, waiting for ${n}`);
    if (!alive()) fail(`process ${pid} ended at ${packets()} packets, before ${n}`);
    sleepMs(1);
  }
}

function vgdb(command: string): [number, number] {
  const before = packets();
  const r = spawnSync('vgdb', [`--pid=${pid}`, command], { encoding: 'utf8', timeout: 30_000 });
  const after = packets();
  if (r.status !== 0) fail(`vgdb ${command} failed (${r.status}): ${r.stderr}`);
  return [before, after];
}

waitFor(warm);
const start = vgdb('zero');
waitFor(start[1] + window);
const end = vgdb('dump');
const mid = (x: [number, number]): number => (x[0] + x[1]) / 2;
console.log(JSON.stringify({
  packets: mid(end) - mid(start),
  uncertainty: (start[1] - start[0] + end[1] - end[0]) / 2,
  start, end,
}));
