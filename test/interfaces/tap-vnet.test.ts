/**
 * TAP devices attached to a VALE switch as virtio-net header ports: two containers (network
 * namespaces), each behind a TAP whose other end (the descriptor) is held by the attach daemon,
 * talk through one switch with their offloads on: ping, and iperf3 with TSO super-frames passing
 * whole between the two header ports.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-tapvnet-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep, Lab } = await import('../helpers/netns.js');

const skip = skipReason(['ping', 'tun', 'iperf3']);
if (skip !== null) console.log(`# skipping TAP vnet tests: ${skip}`);
type LabT = InstanceType<typeof Lab>;

const VALECTL = new URL('../../src/tools/vale-ctl.js', import.meta.url).pathname;
const IFACES = new URL('../../src/bwrap/index.js', import.meta.url).pathname;
const SWITCH = new URL('../../src/switch/index.js', import.meta.url).pathname;
const RUN_VALECTL = `await import(${JSON.stringify(IFACES)}); const v = await import(${JSON.stringify(VALECTL)}); process.exitCode = await v.main(process.argv.slice(1));`;
const RUN_COUNTERS = `const v = await import(${JSON.stringify(SWITCH)}); console.log(JSON.stringify(v.portCounters(process.argv[1])));`;

function node(lab: LabT, ns: string, script: string, args: string[]): { status: number; out: string } {
  const r = lab.run(ns, process.execPath, ['--input-type=module', '-e', script, '--', ...args], 30_000);
  return { status: r.status, out: r.stdout + r.stderr };
}

/**
 * The switch host `m` (where the daemons run) and two containers c1, c2, each behind a TAP made
 * in m, attached to vale0, then moved into its container (the descriptor stays with the daemon).
 */
function containers(lab: LabT): { m: string; c1: string; c2: string } {
  const m = lab.ns('m'), c1 = lab.ns('c1'), c2 = lab.ns('c2');
  tapInto(lab, m, 'tva', c1, '198.18.7.1/24');
  tapInto(lab, m, 'tvb', c2, '198.18.7.2/24');
  return { m, c1, c2 };
}

/** TAP `dev` made in `m`, attached to switch `sw` there, then moved into container `c` with `addr`. */
function tapInto(lab: LabT, m: string, dev: string, c: string, addr: string, sw = 'vale0'): void {
  lab.must(m, 'ip', ['tuntap', 'add', 'dev', dev, 'mode', 'tap']);
  const a = node(lab, m, RUN_VALECTL, ['-a', `${sw}:${dev}`]);
  assert.equal(a.status, 0, a.out);
  lab.must(m, 'ip', ['link', 'set', dev, 'netns', c]);
  lab.addr(c, dev, addr);
  lab.must(c, 'ip', ['link', 'set', dev, 'up']);
}

interface IperfResult { end: { sum_received: { bits_per_second: number; bytes: number }; sum_sent: { retransmits: number } } }

/** iperf3 for 2 s from `client` to a server started in `server` on 198.18.7.2 (`extra`: -R...). */
async function iperf(lab: LabT, server: string, client: string, extra: string[] = []): Promise<IperfResult> {
  lab.spawn(server, 'iperf3', ['-s', '-1', '-B', '198.18.7.2']);
  await sleep(500);
  const res = lab.run(client, 'iperf3', ['-c', '198.18.7.2', '-t', '2', '-J', ...extra], 30_000);
  assert.equal(res.status, 0, res.stderr + res.stdout.slice(0, 500));
  return JSON.parse(res.stdout) as IperfResult;
}

interface Counters { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; rxDrops: number; txDrops: number }
function counters(lab: LabT, m: string, port: string): Counters {
  const r = node(lab, m, RUN_COUNTERS, [port]);
  assert.equal(r.status, 0, r.out);
  return JSON.parse(r.out.trim()) as Counters;
}

test('TAP vnet: containers behind TAPs on one VALE switch ping each other and run TCP with super-frames', { skip: skip ?? false, timeout: 120_000 }, () => withLab(async (lab) => {
  const { m, c1, c2 } = containers(lab);
  // the TAP came with offloads: the container's stack may send 64 KB TCP frames
  const features = lab.run(c1, 'ethtool', ['-k', 'tva']).stdout;
  if (features !== '') assert.match(features, /tcp-segmentation-offload: on/);
  assert.equal(lab.run(c1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.7.2']).status, 0, 'ping through the switch');
  const before = counters(lab, m, 'vale0:tva');
  const j = await iperf(lab, c2, c1);
  const after = counters(lab, m, 'vale0:tva');
  const bps = j.end.sum_received.bits_per_second;
  const frames = after.txPackets - before.txPackets, bytes = after.txBytes - before.txBytes;
  console.log(`# iperf3 between two TAP vnet ports: ${(bps / 1e9).toFixed(2)} Gbit/s, ${j.end.sum_sent.retransmits} retransmissions, ${frames} frames of ${(bytes / frames).toFixed(0)} bytes on average into the switch`);
  assert.ok(j.end.sum_received.bytes > 10e6, `TCP moved ${j.end.sum_received.bytes} bytes`);
  // super-frames went into the switch whole (a frame of wire size is at most 1526 bytes here)
  assert.ok(bytes / frames > 4000, `frames of ${(bytes / frames).toFixed(0)} bytes on average: no super-frames`);
  const back = counters(lab, m, 'vale0:tvb');
  assert.ok(back.rxBytes > j.end.sum_received.bytes, 'the receiving port counted what TCP delivered');
}));

test('TAP vnet: a container behind a TAP and a veth attached to the same switch exchange TCP super-frames whole both ways', { skip: skip ?? false, timeout: 120_000 }, () => withLab(async (lab) => {
  // its own switch and TAP name: the first test's daemons leave vale0 only once they notice
  // their TAPs went with that test's namespaces
  const m = lab.ns('m'), c1 = lab.ns('c1'), r = lab.ns('r');
  tapInto(lab, m, 'tvc', c1, '198.18.7.1/24', 'vale1');
  lab.veth(m, 'mv', r, 'rv');
  lab.addr(r, 'rv', '198.18.7.2/24');
  const a = node(lab, m, RUN_VALECTL, ['-a', 'vale1:mv']);
  assert.equal(a.status, 0, a.out);
  assert.equal(lab.run(c1, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.7.2']).status, 0, 'ping TAP -> veth');
  const mvBefore = counters(lab, m, 'vale1:mv');
  const j = await iperf(lab, r, c1);
  const mvAfter = counters(lab, m, 'vale1:mv');
  // the TAP's daemon hands the super-frames to the veth whole (the kernel cuts them or not)
  assert.ok((mvAfter.rxBytes - mvBefore.rxBytes) / (mvAfter.rxPackets - mvBefore.rxPackets) > 3000, 'super-frames onto the veth whole');
  console.log(`# iperf3 TAP vnet -> veth: ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s, ${j.end.sum_sent.retransmits} retransmissions`);
  assert.ok(j.end.sum_received.bytes > 5e6, `TCP moved ${j.end.sum_received.bytes} bytes`);
  // the other way: the veth's GSO frames (and merged segments) go into the TAP whole
  const before = counters(lab, m, 'vale1:tvc');
  const k = await iperf(lab, r, c1, ['-R']);
  const after = counters(lab, m, 'vale1:tvc');
  const frames = after.rxPackets - before.rxPackets, bytes = after.rxBytes - before.rxBytes;
  console.log(`# iperf3 veth -> TAP vnet: ${(k.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s, ${frames} frames of ${(bytes / frames).toFixed(0)} bytes on average into the TAP`);
  assert.ok(k.end.sum_received.bytes > 5e6, `TCP moved ${k.end.sum_received.bytes} bytes`);
  assert.ok(bytes / frames > 3000, 'super-frames reached the TAP whole');
  // the veth's end point without offloads: wire-sized segments, merged by mv's daemon and
  // written into the TAP in parts (its 12-byte header padded), in one writev each
  lab.noOffloads(r, 'rv');
  const b2 = counters(lab, m, 'vale1:tvc');
  const k2 = await iperf(lab, r, c1, ['-R']);
  const a2 = counters(lab, m, 'vale1:tvc');
  const f2 = a2.rxPackets - b2.rxPackets, y2 = a2.rxBytes - b2.rxBytes;
  console.log(`# iperf3 veth (offloads off) -> TAP vnet: ${(k2.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s, ${f2} frames of ${(y2 / f2).toFixed(0)} bytes on average into the TAP`);
  assert.ok(k2.end.sum_received.bytes > 5e6, `TCP moved ${k2.end.sum_received.bytes} bytes`);
  assert.ok(y2 / f2 > 3000, 'merged segments reached the TAP as super-frames');
}));
