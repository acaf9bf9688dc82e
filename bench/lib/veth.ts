/**
 * Helpers of the veth benchmarks (bench/interfaces-tools.ts, bench/interfaces-xdp.ts): trafgen
 * with the shared 60-byte frame, CPU pinning, pkt-gen's reported rate, a veth pair.
 */
import os from 'node:os';
import { Lab } from '../../test/helpers/netns.js';
type LabT = InstanceType<typeof Lab>;

export const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;
// 60-byte IPv4/UDP frame 198.18.0.1 -> 198.18.0.2 to an unknown unicast MAC (flooded by both
// switches; a Linux bridge drops frames with a malformed IPv4 header, so the header is valid)
export const FRAME = '{ 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, c16(0x0800), 0x45, 0, c16(46), c16(0), c16(0), 64, 17, csumip(14, 33), '
  + '198, 18, 0, 1, 198, 18, 0, 2, c16(9), c16(9), c16(26), c16(0), fill(0x41, 18) }';
/** pkt-gen options giving the same frame as FRAME. */
export const PKTGEN_FRAME = ['-s', '198.18.0.1:9', '-d', '198.18.0.2:9', '-S', '02:00:00:00:00:01', '-D', '02:00:00:00:00:02'];

/** A JSON-lines printer for benchmark `bench`. */
export function emitter(bench: string): (metric: string, value: number, unit: string, extra?: Record<string, unknown>) => void {
  return (metric, value, unit, extra = {}) => {
    console.log(JSON.stringify({ bench, metric, value: Number(value.toFixed(4)), unit, ...extra }));
  };
}

export function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * On a machine with two CPUs or more, the traffic source runs on CPU 0 and the tool measured
 * against it (tcpdump, netmap dump) on CPU 1, so that a heavier capturer does not show up as a
 * slower generator (pkt-gen rx places its own threads: src/ports/placement.ts); both TX
 * tools (pkt-gen tx, trafgen) run on CPU 1.
 */
const PIN = os.cpus().length >= 2;
export function pinned(cpu: number, cmd: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

/** Runs trafgen; returns the seconds it reports for its own send loop (its start-up excluded). */
export function trafgen(lab: LabT, ns: string, dev: string, frames: number, cpu = 0, ratePps = 0): number {
  const rate = ratePps > 0 ? ['-b', `${Math.round(ratePps)}pps`] : [];
  const r = lab.run(ns, ...pinned(cpu, 'trafgen', ['-o', dev, '-P', '1', '-n', String(frames), ...rate, '-q', FRAME]), 120_000);
  if (r.status !== 0) throw new Error(`trafgen: ${r.stderr}`);
  const m = /(\d+) sec, (\d+) usec on CPU/.exec(r.stdout + r.stderr);
  return m === null ? NaN : Number(m[1]) + Number(m[2]) / 1e6;
}

/** The rate pkt-gen printed in its final `Speed:` line. */
export function reportedPps(out: string): number {
  const speed = /Speed: ([\d.]+) ([KMG]?)pps/.exec(out);
  const mult: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9 };
  return speed === null ? 0 : Number(speed[1]) * mult[speed[2]!]!;
}

/** A veth a0 (namespace a) <-> b0 (namespace b). */
export function pair(lab: LabT): { a: string; b: string } {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  return { a, b };
}
