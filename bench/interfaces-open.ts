/**
 * What opening an interface costs (issue 15): open + close of `netmap:IF` (a veth in a namespace
 * made here) against a VALE port, for each host-stack split implementation (nf_tables, tcx links,
 * tc rules: NETMAP_TS_SPLIT), two ways:
 *  - whole process: `pkt-gen -i PORT -f tx -n 1 -w 0`, wall time from spawn to exit;
 *  - in process: openPort(PORT) + close() on this thread (inside the namespace), module loading
 *    excluded.
 * for each backend of the NIC rings (AF_XDP, AF_PACKET: NETMAP_TS_IF_BACKEND; BACKENDS=xdp,packet
 * chooses, SPLITS=nft,tcx,tc likewise).
 * Each figure is the median of RUNS runs, with min and max; `extra_ms` is the interface's median
 * minus the VALE port's (target: 50 ms or less), with the median of the paired differences (each
 * interface run minus the VALE run after it) beside it. JSON lines.
 * Usage: node dist/bench/interfaces-open.js [runs]   (default 9)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR ??= fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-bench-open-'));
const { Lab, skipReason } = await import('../test/helpers/netns.js');
const { openPort } = await import('../src/ports/index.js');
await import('../src/port-types.js');
const { splitMethod, SPLIT_ENV } = await import('../src/interfaces/split.js');

const BENCH = 'interfaces-open';
const CLI = new URL('../src/tools/cli.js', import.meta.url).pathname;
const RUNS = Math.max(1, Number(process.argv[2] ?? 9) | 0);

interface Stats { median: number; min: number; max: number }

function stats(xs: number[]): Stats {
  const s = [...xs].sort((x, y) => x - y);
  return { median: s[s.length >> 1]!, min: s[0]!, max: s[s.length - 1]! };
}

function emit(metric: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, metric, value: Number(value.toFixed(2)), unit, ...extra }));
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const skip = skipReason(['tun']);
if (skip !== null) {
  console.log(JSON.stringify({ bench: BENCH, skipped: skip }));
  process.exit(0);
}

const lab = new Lab();
try {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const ports = { interface: 'netmap:a0', vale: 'valeo:p' };
  const list = (v: string | undefined, all: string[]): string[] => (v ?? all.join(',')).split(',').filter((x) => all.includes(x));
  for (const backend of list(process.env.BACKENDS, ['xdp', 'packet'])) for (const method of list(process.env.SPLITS, ['nft', 'tcx', 'tc'])) {
    process.env[SPLIT_ENV] = method;
    process.env.NETMAP_TS_IF_BACKEND = backend;
    // whole process, alternating the two ports so that load drifts hit both alike
    const whole: Record<string, number[]> = { interface: [], vale: [] };
    for (let k = 0; k < RUNS; k++) {
      for (const [kind, port] of Object.entries(ports)) {
        const t0 = process.hrtime.bigint();
        const r = lab.run(a, process.execPath, [CLI, 'pkt-gen', '-i', port, '-f', 'tx', '-n', '1', '-w', '0', '-T', '0'], 60_000);
        const t = ms(t0);
        if (r.status !== 0) throw new Error(`pkt-gen -i ${port}: ${r.stderr}`);
        whole[kind]!.push(t);
      }
    }
    // in process: this thread enters the namespace
    const inproc: Record<string, number[]> = { interface: [], vale: [] };
    lab.enter(a);
    try {
      for (let k = 0; k < RUNS; k++) {
        for (const [kind, port] of Object.entries(ports)) {
          const t0 = process.hrtime.bigint();
          openPort(port).close();
          inproc[kind]!.push(ms(t0));
        }
      }
      if (splitMethod() !== method) throw new Error(`asked for ${method}, ran ${splitMethod()}`);
    } finally {
      lab.leave();
    }
    for (const [how, xs] of [['pktgen_process', whole], ['open_close_in_process', inproc]] as const) {
      const i = stats(xs.interface!), v = stats(xs.vale!);
      emit(`${how}_interface_ms`, i.median, 'ms', { backend, split: method, runs: RUNS, min: Number(i.min.toFixed(2)), max: Number(i.max.toFixed(2)) });
      emit(`${how}_vale_ms`, v.median, 'ms', { backend, split: method, runs: RUNS, min: Number(v.min.toFixed(2)), max: Number(v.max.toFixed(2)) });
      // each interface run against the VALE run right after it: a drift of the machine between
      // rounds then counts in neither
      const paired = stats(xs.interface!.map((t, k) => t - xs.vale![k]!));
      emit(`${how}_extra_ms`, i.median - v.median, 'ms', { backend, split: method, target: '<= 50 ms', note: 'interface median minus VALE median', paired_median: Number(paired.median.toFixed(2)), paired_min: Number(paired.min.toFixed(2)), paired_max: Number(paired.max.toFixed(2)) });
    }
  }
} finally {
  delete process.env[SPLIT_ENV];
  delete process.env.NETMAP_TS_IF_BACKEND;
  lab.cleanup();
  // the shared-memory directory made above (a user's own NETMAP_TS_DIR is left alone)
  if (process.env.NETMAP_TS_DIR?.includes('nmts-bench-open-')) fs.rmSync(process.env.NETMAP_TS_DIR, { recursive: true, force: true });
}
