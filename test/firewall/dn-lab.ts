/**
 * What the dummynet namespace tests share: the line l (198.18.0.1, .3) — m [kipfw] — r
 * (198.18.0.2) with static neighbours, commands run without blocking the event loop, ping RTTs,
 * quantiles, the flow row of `pipe show`, and iperf3 runs (a one-off server in r, a client in l,
 * both bounded in time and killed at the end). (Run on its own by `node --test`, this file does
 * nothing.)
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { sleep, type Lab } from '../helpers/netns.js';
import { must } from './kipfw-lab.js';

export interface Topo { l: string; m: string; r: string }

function macOf(lab: Lab, ns: string, dev: string): string {
  return (JSON.parse(lab.must(ns, 'ip', ['-j', 'link', 'show', dev]).stdout) as Array<{ address: string }>)[0]!.address;
}

/**
 * The line l — m — r (offloads off on the ends, so TCP frames are at most 1514 bytes), a second
 * address 198.18.0.3 in l, static neighbours both ways so that ARP never crosses a pipe.
 */
export function topo(lab: Lab): Topo {
  const t = lab.line(false);
  lab.addr(t.l, 'l0', '198.18.0.3/24');
  const lmac = macOf(lab, t.l, 'l0'), rmac = macOf(lab, t.r, 'r0');
  lab.must(t.l, 'ip', ['neigh', 'replace', '198.18.0.2', 'lladdr', rmac, 'dev', 'l0', 'nud', 'permanent']);
  for (const a of ['198.18.0.1', '198.18.0.3']) lab.must(t.r, 'ip', ['neigh', 'replace', a, 'lladdr', lmac, 'dev', 'r0', 'nud', 'permanent']);
  return t;
}

/** Runs a command in `ns` without blocking the event loop; resolves with its output (killed after timeoutMs). */
export function runAsync(lab: Lab, ns: string, cmd: string, args: string[], timeoutMs = 20_000): Promise<{ status: number; out: string; err: string }> {
  const child = lab.spawn(ns, cmd, args);
  let out = '', err = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.on('close', (code) => { clearTimeout(killer); resolve({ status: code ?? -1, out, err }); }));
}

/** The RTTs (ms) in ping's output. */
export function pingRtts(out: string): number[] {
  return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** Echo requests ping says it sent. */
export function pingSent(out: string): number {
  return Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0);
}

export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };
export const quantile = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN; };

/**
 * The time per frame of a paced departure, from arrival stamps `t[k]` (ms) of frames that left one
 * per interval, the interval expected near `expect`: the pace g (within ±20% of `expect`, steps of
 * 0.01%) whose schedule t[0]' + g·k has the most frames within `tolMs` of it, the schedule drawn
 * as early as the stamps allow (through the earliest residual t[k] - g·k). A frame is never early
 * and a stamp never precedes its arrival, so every error (a late release, a stall of the thread
 * that stamps) lies above the true schedule, and the frames stamped on time all sit on it. A
 * median of pairwise slopes is moved by a run of late frames: a stall late in the run delays the
 * last frames, which take part in most of the long-baseline pairs.
 */
export function scheduleSlope(t: number[], expect: number, tolMs = 0.25): number {
  const n = t.length;
  if (n < 4) return NaN;
  let best = -1, first = NaN, last = NaN;
  for (let step = -2000; step <= 2000; step++) {
    const g = expect * (1 + step / 10_000);
    let floor = Infinity;
    for (let k = 0; k < n; k++) floor = Math.min(floor, t[k]! - g * k);
    let on = 0;
    for (let k = 0; k < n; k++) if (t[k]! - g * k - floor <= tolMs) on++;
    if (on > best) { best = on; first = last = g; } else if (on === best && step === Math.round((last / expect - 1) * 10_000) + 1) last = g;
  }
  return (first + last) / 2; // the middle of the best plateau
}

/** The flow row of `pipe N show` (the last line): [total packets, bytes, drops]. */
export function flowRow(show: string): [number, number, number] {
  const f = show.trim().split('\n').at(-1)!.trim().split(/\s+/);
  return [Number(f[4]), Number(f[5]), Number(f[8])];
}

export function within(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= rel * expected, `${what}: ${actual.toFixed(4)} vs expected ${expected.toFixed(4)} ± ${(rel * 100).toFixed(1)}%`);
}

/**
 * A ping's wait behind a full queue: the median RTT minus the base RTT should be `cap` ± rel. The
 * base is measured while kipfw idles, and an idle daemon on a loaded machine answers its first
 * frame late (it sleeps until a helper thread wakes it): a base of several ms was seen where the
 * path under load takes under one. So the wait is taken to lie between median − base and the
 * median itself, and `cap` must fall within rel of that interval.
 */
export function queueWaitNear(rtts: number[], base: number, cap: number, rel: number, what: string): void {
  const m = median(rtts);
  assert.ok(m - base <= cap * (1 + rel) && m >= cap * (1 - rel), `${what}: median RTT ${m} ms, base ${base} ms, so a wait of ${(m - base).toFixed(2)}..${m} ms, vs ${cap.toFixed(2)} ms ± ${rel * 100}%`);
}

export const load = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');

/**
 * The `delay 20ms` each-way case on daemon `name` (already running in m): ten pings from l
 * without pipes, then through pipe 1 (l's echo requests) and pipe 2 (r's replies), 20 ms each.
 * Returns the smallest RTT of each series and the delayed RTTs.
 */
export function delayedPings(lab: Lab, l: string, name: string): { b0: number; s0: number; slow: number[] } {
  const base = pingRtts(lab.run(l, 'ping', ['-4', '-c', '10', '-i', '0.05', '-W', '1', '198.18.0.2']).stdout);
  assert.equal(base.length, 10, 'base pings');
  must(name, 'pipe', '1', 'config', 'delay', '20ms');
  must(name, 'pipe', '2', 'config', 'delay', '20ms');
  must(name, 'add', '100', 'pipe', '1', 'icmp', 'from', '198.18.0.1', 'to', 'any');
  must(name, 'add', '200', 'pipe', '2', 'icmp', 'from', '198.18.0.2', 'to', 'any');
  const slow = pingRtts(lab.run(l, 'ping', ['-4', '-c', '10', '-i', '0.05', '-W', '2', '198.18.0.2']).stdout);
  assert.equal(slow.length, 10, 'delayed pings');
  return { b0: Math.min(...base), s0: Math.min(...slow), slow };
}

/** dn-traffic.ts's compiled path (the traffic tools the dummynet namespace tests run). */
export const TRAFFIC = new URL('./dn-traffic.js', import.meta.url).pathname;

/** Starts a dn-traffic receiver in `ns` and waits until it listens; the promise gives its report. */
export async function receiver<T>(lab: Lab, ns: string, mode: string, o: object): Promise<{ done: Promise<T> }> {
  const child = lab.spawn(ns, process.execPath, [TRAFFIC, mode, JSON.stringify(o)]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<T>((resolve, reject) => child.on('close', (code) => {
    const last = out.trim().split('\n').at(-1) ?? '';
    if (code !== 0 || last.includes('"ready"')) reject(new Error(`${mode} ended ${code}: ${out}`));
    else resolve(JSON.parse(last) as T);
  }));
  for (let i = 0; i < 100 && !out.includes('"ready"') && child.exitCode === null; i++) await sleep(20);
  assert.match(out, /"ready"/, `${mode} listens`);
  return { done }; // wrapped: an async function would otherwise wait for the report itself
}

/** One interval or the summary of an iperf3 JSON report (the fields these tests read). */
export interface IperfSum { start: number; end: number; seconds: number; bytes: number; bits_per_second: number; packets?: number; lost_packets?: number; jitter_ms?: number }
export interface IperfReport {
  intervals: Array<{ sum: IperfSum }>;
  end: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum };
  error?: string;
}
/** The client's report with the server's own (`--get-server-output`). */
export interface IperfRun { client: IperfReport; server: IperfReport }

/** Waits until something listens on TCP `port` in `ns` (at most `ms`). */
async function listening(lab: Lab, ns: string, port: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (lab.run(ns, 'ss', ['-Hltn', `sport = :${port}`], 5000).stdout.trim() !== '') return true;
    await sleep(50);
  }
  return false;
}

/**
 * One iperf3 test from l to 198.18.0.2:`port`: a one-off server (`-s -1`) in `r`, the client in
 * `l` with `clientArgs` (e.g. `-u -b 11M -l 1400 -t 3`), JSON reports of both ends. The client is
 * killed after `timeoutMs`, the server at the end in every case.
 */
export async function iperf3(lab: Lab, t: Topo, port: number, clientArgs: string[], timeoutMs = 15_000): Promise<IperfRun> {
  const server = lab.spawn(t.r, 'iperf3', ['-s', '-1', '-J', '-B', '198.18.0.2', '-p', String(port)]);
  try {
    assert.ok(await listening(lab, t.r, port, 5000), 'iperf3 server listens');
    const c = await runAsync(lab, t.l, 'iperf3', ['-c', '198.18.0.2', '-p', String(port), '-J', '--get-server-output', '-i', '0.5', ...clientArgs], timeoutMs);
    let client: IperfReport & { server_output_json?: IperfReport };
    try { client = JSON.parse(c.out) as typeof client; } catch { assert.fail(`iperf3 client (status ${c.status}): ${c.out.slice(0, 400)} ${c.err}`); }
    assert.equal(client.error, undefined, `iperf3: ${client.error}`);
    assert.ok(client.server_output_json !== undefined, 'iperf3 gave the server report');
    return { client, server: client.server_output_json };
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  }
}

/**
 * Payload goodput (Mbit/s) over the intervals of a report that lie in [fromS, toS) seconds of the
 * test: bytes over seconds of those whole intervals (start-up and tail left out).
 */
export function intervalGoodput(r: IperfReport, fromS: number, toS: number): number {
  let bytes = 0, secs = 0;
  for (const { sum } of r.intervals) {
    if (sum.start < fromS - 1e-6 || sum.end > toS + 0.05) continue;
    bytes += sum.bytes; secs += sum.seconds;
  }
  assert.ok(secs > 0, `intervals in [${fromS}, ${toS}) s`);
  return bytes * 8 / secs / 1e6;
}
