/**
 * Dummynet shaping through kipfw against the kernel's tbf, on the same veth path, in one run
 * (JSON lines). l (198.18.0.1) — m0 [m] m1 — r (198.18.0.2):
 *   - kipfw: `kipfw netmap:m0 netmap:m1` with `pipe 1 config bw B queue 50` on l -> r UDP, as an
 *            ordinary process, with `--spin` (busy-waits while packets wait), with `--rt 50` (its
 *            data path in a SCHED_FIFO thread), with both, and with `-p 2` (two workers, ports
 *            with two ring pairs: the pipe in worker 0, fed by both);
 *   - tbf:   a Linux bridge m0—m1 in m and `tc qdisc add dev m1 root tbf rate B burst 1540
 *            limit 50·1514` (both count whole Ethernet frames and queue 50 full frames).
 * A UDP sender in l offers 1.2·B of 1400-byte datagrams for SECONDS; tcpdump on r0 stamps the
 * arrivals (kernel time). Figures over the steady part (from 0.3 s after the first arrival):
 * delivered layer-2 rate, its ratio to B, and the jitter of the inter-arrival gaps against the
 * ideal 8·L/B (mean absolute deviation, p99), and kipfw's own count of how late it released
 * packets (quarter-octave buckets). The ratio line compares kipfw with tbf.
 * Needs root, tc, tcpdump. Usage: node dist/bench/dummynet-netns.js [seconds] [Mbit/s ...]
 * (default 3 s at 10 and 50 Mbit/s); DN_BENCH_VARIANTS=kipfw-pipe,kipfw-pipe-spin runs only those
 * kipfw variants (tbf always runs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/tools/cli.js', import.meta.url));
const TRAFFIC = fileURLToPath(new URL('../test/firewall/dn-traffic.js', import.meta.url));
const SECONDS = Math.min(10, Math.max(1, Number(process.argv[2] ?? 3) || 3));
const RATES = process.argv.slice(3).map(Number).filter((x) => x > 0 && x <= 200);
if (RATES.length === 0) RATES.push(10, 50);
const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-dn-');
process.env.NETMAP_TS_DIR = DIR;
const { Lab, skipReason, sleep } = await import('../test/helpers/netns.js');
type LabT = InstanceType<typeof Lab>;

const PAYLOAD = 1400, FRAME = PAYLOAD + 42;

interface Figures { delivered_mbit: number; ratio_to_bw: number; frames: number; gap_ideal_us: number; gap_mean_us: number; jitter_mad_us: number; jitter_p99_us: number; max_gap_us: number }

function figures(stamps: number[], bw: number): Figures {
  const t0 = stamps[0]! + 0.3;
  const s = stamps.filter((t) => t >= t0);
  const ideal = FRAME * 8 / bw;
  const gaps = s.slice(1).map((t, i) => t - s[i]!);
  const dev = gaps.map((g) => Math.abs(g - ideal)).sort((a, b) => a - b);
  const rate = (s.length - 1) * FRAME * 8 / (s.at(-1)! - s[0]!);
  const us = (x: number): number => Math.round(x * 1e7) / 10;
  return {
    delivered_mbit: Number((rate / 1e6).toFixed(4)), ratio_to_bw: Number((rate / bw).toFixed(4)), frames: s.length,
    gap_ideal_us: us(ideal), gap_mean_us: us(gaps.reduce((a, b) => a + b, 0) / gaps.length),
    jitter_mad_us: us(dev.reduce((a, b) => a + b, 0) / dev.length), jitter_p99_us: us(dev[Math.floor(dev.length * 0.99)] ?? NaN), max_gap_us: us(Math.max(...gaps)),
  };
}

function ipfw(name: string, args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, 'ipfw', '-s', name, ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ipfw ${args.join(' ')}: ${r.stderr}`);
}

/** Offers 1.2·bw through whatever m runs; returns the kernel arrival times (s) at r0. */
async function measure(lab: LabT, l: string, r: string, bw: number): Promise<number[]> {
  const dump = lab.spawn(r, 'tcpdump', ['-l', '-n', '-tt', '--time-stamp-precision=nano', '-i', 'r0', 'udp', 'and', 'dst', 'port', '5001']);
  let out = '';
  dump.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  await sleep(800);
  const pps = Math.round(1.2 * bw / 8 / FRAME);
  // spawned, not run synchronously: the event loop must keep reading tcpdump's lines, or its
  // pipe fills and the kernel drops what tcpdump cannot write
  const sender = lab.spawn(l, process.execPath, [TRAFFIC, 'udp-send', JSON.stringify({ flows: [{ dst: '198.18.0.2', port: 5001, pps }], payload: PAYLOAD, durationMs: SECONDS * 1000 })]);
  const code = await new Promise<number | null>((res) => sender.once('close', res));
  if (code !== 0) throw new Error(`sender ended ${code}`);
  await sleep(50 * FRAME * 8 / bw * 1000 + 500); // the queue drains
  const ended = new Promise((res) => dump.once('close', res));
  dump.kill('SIGINT');
  await Promise.race([ended, sleep(3000)]);
  return [...out.matchAll(/^(\d+)\.(\d+) IP/gm)].map((x) => Number(x[1]) + Number(x[2]) / 1e9);
}

let runs = 0;
const VARIANTS: Record<string, string[]> = {
  'kipfw-pipe': [], 'kipfw-pipe-spin': ['--spin'], 'kipfw-pipe-rt': ['--rt', '50'], 'kipfw-pipe-rt-spin': ['--rt', '50', '--spin'], 'kipfw-pipe-p2': ['-p', '2'],
};

interface Lateness { lateness_p50_us?: number; lateness_p90_us?: number; lateness_p99_us?: number; lateness_max_us?: number }

/** kipfw's closing line `dummynet released N packets late by p50 ≤X µs, ...` as numbers (0: under 1 µs). */
function lateness(line: string): Lateness {
  const q = (name: string): number | undefined => {
    const m = new RegExp(`${name} (<1 µs|≤([\\d.]+) µs|>1 s)`).exec(line);
    return m === null ? undefined : m[1] === '<1 µs' ? 0 : m[1] === '>1 s' ? Infinity : Number(m[2]);
  };
  return { lateness_p50_us: q('p50'), lateness_p90_us: q('p90'), lateness_p99_us: q('p99'), lateness_max_us: q('max') };
}

async function run(kind: string, mbit: number): Promise<Figures & Lateness & { load_before: string; load: string; kipfw_release_lateness?: string }> {
  const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const bw = mbit * 1e6;
  const lab = new Lab();
  let daemon: ChildProcess | null = null;
  let daemonErr = '';
  try {
    const { l, m, r } = lab.line(false);
    if (kind !== 'tc-tbf') {
      // a new name each run: the socket of a daemon the last lab killed may still be there
      const name = `dnb${++runs}`;
      const extra = VARIANTS[kind]!;
      const ports = extra.includes('-p') ? ['netmap:m0@conf:rings=2', 'netmap:m1@conf:rings=2'] : ['netmap:m0', 'netmap:m1'];
      const child = lab.spawn(m, process.execPath, [CLI, 'kipfw', '-s', name, ...extra, ...ports]);
      daemon = child;
      child.stderr?.on('data', (x: Buffer) => { daemonErr += x.toString(); });
      const sock = path.join(DIR, `ipfw-${name}.sock`);
      for (let i = 0; i < 400 && !fs.existsSync(sock) && child.exitCode === null; i++) await sleep(25);
      await sleep(300);
      ipfw(name, ['pipe', '1', 'config', 'bw', `${mbit}Mbit/s`, 'queue', '50']);
      ipfw(name, ['add', '100', 'pipe', '1', 'udp', 'from', '198.18.0.1', 'to', '198.18.0.2']);
    } else {
      lab.must(m, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      lab.must(m, 'ip', ['link', 'set', 'm0', 'master', 'br0']);
      lab.must(m, 'ip', ['link', 'set', 'm1', 'master', 'br0']);
      lab.must(m, 'ip', ['link', 'set', 'br0', 'up']);
      lab.must(m, 'tc', ['qdisc', 'add', 'dev', 'm1', 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '1540', 'limit', String(50 * 1514)]);
    }
    const ready = Date.now() + 10_000;
    while (lab.run(l, 'ping', ['-c', '1', '-W', '1', '198.18.0.2']).status !== 0 && Date.now() < ready) await sleep(100);
    const stamps = await measure(lab, l, r, bw);
    if (stamps.length < 100) throw new Error(`${kind}: only ${stamps.length} frames arrived`);
    let late = '';
    if (daemon !== null) {
      // kipfw's own figure, printed when it ends: how late its loop released packets
      const d = daemon;
      const ended = new Promise((res) => d.once('close', res));
      d.kill('SIGTERM');
      await Promise.race([ended, sleep(5000)]);
      late = /dummynet released .*/.exec(daemonErr)?.[0] ?? '';
    }
    return { ...figures(stamps, bw), load_before: loadBefore, load: os.loadavg().map((x) => x.toFixed(2)).join(' '), ...(late !== '' ? { kipfw_release_lateness: late, ...lateness(late) } : {}) };
  } finally {
    lab.cleanup();
  }
}

try {
  const skip = skipReason(['tc', 'tcpdump', 'ping']);
  if (skip !== null) {
    console.log(JSON.stringify({ bench: 'dummynet-netns', skipped: skip }));
  } else {
    const only = process.env.DN_BENCH_VARIANTS?.split(',');
    const kinds = [...Object.keys(VARIANTS).filter((k) => only === undefined || only.includes(k)), 'tc-tbf'];
    for (const mbit of RATES) {
      const res: Record<string, Figures> = {};
      for (const kind of kinds) {
        const f = await run(kind, mbit);
        res[kind] = f;
        console.log(JSON.stringify({ bench: 'dummynet-netns', case: `bw-${mbit}Mbit`, tool: kind, metric: 'delivered_rate', value: f.delivered_mbit, unit: 'Mbit/s (frames)', ...f, offered: '1.2 x bw, 1442-byte frames', seconds: SECONDS }));
      }
      const ref = res['tc-tbf']!;
      const ratios: Record<string, number> = {};
      for (const kind of kinds.slice(0, -1)) {
        const f = res[kind]!;
        ratios[`${kind}_rate_ratio`] = Number((f.delivered_mbit / ref.delivered_mbit).toFixed(4));
        ratios[`${kind}_jitter_mad_ratio`] = Number((f.jitter_mad_us / ref.jitter_mad_us).toFixed(3));
        ratios[`${kind}_jitter_p99_ratio`] = Number((f.jitter_p99_us / ref.jitter_p99_us).toFixed(3));
      }
      console.log(JSON.stringify({ bench: 'dummynet-netns', case: `bw-${mbit}Mbit`, metric: 'kipfw_vs_tbf', unit: 'ratio', ...ratios }));
    }
  }
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
