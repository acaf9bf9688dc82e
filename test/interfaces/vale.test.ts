import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-ifvale-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep, Lab } = await import('../helpers/netns.js');
const { hasSplitRules, splitMethod } = await import('../../src/interfaces/split.js');
const native = await import('../../src/native/index.js');
const { PacketTransmitter } = await import('../../src/interfaces/packet.js');
const { space } = await import('../../src/memory/space.js');

const skip = skipReason(['tc', 'ping', 'tun']);
if (skip !== null) console.log(`# skipping VALE attach tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 90_000 };
type LabT = InstanceType<typeof Lab>;
const hasIperf = skipReason(['iperf3']) === null;

const VALECTL = new URL('../../src/tools/vale-ctl.js', import.meta.url).pathname;
const IFACES = new URL('../../src/bwrap/index.js', import.meta.url).pathname;
// vale-ctl's own code, with the interfaces layer plugged in (as the netmap CLI does)
const RUN_VALECTL = `await import(${JSON.stringify(IFACES)}); const v = await import(${JSON.stringify(VALECTL)}); process.exitCode = await v.main(process.argv.slice(1));`;
const RUN_DETACH = `const i = await import(${JSON.stringify(IFACES)}); const [sw, ifn] = process.argv.slice(1); i.detachInterface(sw, ifn);`;

function valeCtl(lab: LabT, ns: string, args: string[]): { status: number; out: string } {
  const r = lab.run(ns, process.execPath, ['--input-type=module', '-e', RUN_VALECTL, '--', ...args], 30_000);
  return { status: r.status, out: r.stdout + r.stderr };
}

/** vale-ctl -d; falls back to the library call while vale-ctl's detach does not reach interfaces. */
function detach(lab: LabT, ns: string, sw: string, ifName: string): void {
  const r = valeCtl(lab, ns, ['-d', `${sw}:${ifName}`]);
  if (r.status === 0) return;
  console.log(`# vale-ctl -d ${sw}:${ifName} refused (${r.out.trim()}); detaching through the library`);
  const d = lab.run(ns, process.execPath, ['--input-type=module', '-e', RUN_DETACH, '--', sw, ifName], 30_000);
  assert.equal(d.status, 0, d.stderr);
}

function ping(lab: LabT, ns: string, addr: string, count = 1): boolean {
  return lab.run(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', addr]).status === 0;
}

function daemonRecord(lab: LabT, ns: string, ifName: string): { pid: number; backend?: string } | null {
  const script = `const i = await import(${JSON.stringify(IFACES)}); console.log(JSON.stringify(i.attachRecord(${JSON.stringify(ifName)})));`;
  const r = lab.run(ns, process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(r.stdout.trim()) as { pid: number; backend?: string } | null;
}

/** A counter of the `Tcp:` lines of /proc/net/snmp in namespace `ns`. */
function tcpCounter(lab: LabT, ns: string, name: string): number {
  const lines = lab.must(ns, 'cat', ['/proc/net/snmp']).stdout.split('\n').filter((x) => x.startsWith('Tcp:'));
  const k = lines[0]!.split(/\s+/).indexOf(name);
  return Number(lines[1]!.split(/\s+/)[k]);
}

/** Big-endian one's-complement sum of `u8[at, at + len)` plus `seed`, folded. */
function sum16(u8: Uint8Array, at: number, len: number, seed = 0): number {
  let s = seed;
  for (let k = 0; k < len; k += 2) s += (u8[at + k]! << 8) | (k + 1 < len ? u8[at + k + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * Sends `n` back-to-back TCP segments (ACK, DF, 1000 bytes each, valid checksums) from l0 to
 * 198.18.0.2 port 9, where nothing listens; segment `corrupt` (-1: none) gets one payload byte
 * changed after its checksum was computed. The caller is in l's namespace.
 */
function sendSegments(dst: string, src: string, n: number, corrupt: number): void {
  const tx = new PacketTransmitter('l0');
  const u8 = space().u8;
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  try {
    for (let k = 0; k < n; k++) {
      const at = tx.slot();
      assert.ok(at >= 0);
      const pay = 1000, len = 14 + 20 + 20 + pay, ip = at + 14, tcp = ip + 20;
      u8.set([...mac(dst), ...mac(src), 0x08, 0x00], at);
      u8.set([0x45, 0, (len - 14) >> 8, (len - 14) & 0xff, 0, k, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], ip);
      const ic = ~sum16(u8, ip, 20) & 0xffff;
      u8[ip + 10] = ic >> 8; u8[ip + 11] = ic & 0xff;
      const seq = 1_000_000 + k * pay;
      u8.set([0x9c, 0x41, 0, 9, seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff, 0, 0, 0, 1, 0x50, 0x10, 0x10, 0, 0, 0, 0, 0], tcp);
      for (let i = 0; i < pay; i++) u8[tcp + 20 + i] = (k * 7 + i) & 0xff;
      const tc = ~sum16(u8, tcp, 20 + pay, sum16(u8, ip + 12, 8, 6 + 20 + pay)) & 0xffff;
      u8[tcp + 16] = tc >> 8; u8[tcp + 17] = tc & 0xff;
      if (k === corrupt) u8[tcp + 20 + 333] = u8[tcp + 20 + 333]! ^ 0x04;
      tx.commit(len);
    }
    tx.kick();
  } finally {
    tx.close();
  }
}

function daemonPid(lab: LabT, ns: string, ifName: string): number {
  return daemonRecord(lab, ns, ifName)?.pid ?? 0;
}

/** Logs the backend of `ifName`'s daemon (AF_PACKET by default, AF_XDP when NETMAP_TS_IF_BACKEND=xdp). */
function logBackend(lab: LabT, ns: string, ifName: string): void {
  console.log(`# ${ifName}'s daemon: backend ${daemonRecord(lab, ns, ifName)?.backend ?? '?'}`);
}

// The daemons run on AF_PACKET unless NETMAP_TS_IF_BACKEND names a backend (they inherit it).
for (const want of ['packet', 'xdp'] as const) {
test(`VALE (${want} daemons): two veths attached with vale-ctl -a carry ping and TCP; -d stops the forwarding`, opts, async () => {
  const saved = process.env.NETMAP_TS_IF_BACKEND;
  if (want === 'xdp') process.env.NETMAP_TS_IF_BACKEND = 'xdp'; else delete process.env.NETMAP_TS_IF_BACKEND;
  try { await withLab(async (lab) => {
  const { l, m, r } = lab.line(false);
  for (const dev of ['m0', 'm1']) {
    const a = valeCtl(lab, m, ['-a', `vale0:${dev}`]);
    assert.equal(a.status, 0, a.out);
  }
  const used = daemonRecord(lab, m, 'm0')?.backend ?? '?';
  assert.ok(want === 'xdp' ? used.startsWith('xdp') : used === 'packet', `m0's daemon runs on ${used}, asked ${want}`);
  try {
    assert.notEqual(valeCtl(lab, m, ['-a', 'vale0:m0']).status, 0, 'attaching twice fails');
    assert.notEqual(valeCtl(lab, m, ['-a', 'vale0:nmtsnone']).status, 0, 'no such interface');
    const list = valeCtl(lab, m, []);
    assert.match(list.out, /vale0:m0/);
    assert.match(list.out, /vale0:m1/);
    assert.ok(ping(lab, l, '198.18.0.2', 3), 'ping through the switch');
    if (hasIperf) {
      const c0 = lab.counters(r, 'r0');
      lab.spawn(r, 'iperf3', ['-s', '-1']);
      await sleep(300);
      const res = lab.run(l, 'iperf3', ['-c', '198.18.0.2', '-t', '2', '-J'], 30_000);
      const bps = (JSON.parse(res.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
      const c1 = lab.counters(r, 'r0');
      const mean = (c1.rxBytes - c0.rxBytes) / (c1.rxPackets - c0.rxPackets);
      console.log(`# iperf3 through VALE: ${(bps / 1e6).toFixed(0)} Mbit/s, frames of ${mean.toFixed(0)} bytes on average at r0`);
      assert.ok(bps > 10e6);
      // l sends wire-sized segments (its offloads are off); m0's daemon merges runs of them
      // (from AF_PACKET's ring through a receive hook, or from AF_XDP's netmap buffers)
      logBackend(lab, m, 'm0');
      assert.ok(mean > 3000, 'TCP segments reach r0 merged');
    }
    // Each merged segment's checksum is checked first, as r's stack checks the segments a Linux
    // bridge forwards: four segments held in m0's ring (its daemon stopped) reach r as one TCP
    // packet; with a byte of one changed after its checksum was made, as they came, and r counts
    // the checksum error (a super-frame goes out with a partial checksum: nobody checks it after)
    const macOf = (ns: string, dev: string): string => lab.must(ns, 'cat', [`/sys/class/net/${dev}/address`]).stdout.trim();
    const [lMac, rMac] = [macOf(l, 'l0'), macOf(r, 'r0')];
    const pid0 = daemonPid(lab, m, 'm0');
    for (const corrupt of [-1, 2]) {
      assert.ok(ping(lab, l, '198.18.0.2'), 'both ends learned');
      const [segs0, errs0] = [tcpCounter(lab, r, 'InSegs'), tcpCounter(lab, r, 'InCsumErrors')];
      process.kill(pid0, 'SIGSTOP');
      try {
        lab.enter(l);
        try { sendSegments(rMac, lMac, 4, corrupt); } finally { lab.leave(); }
        await sleep(100);
      } finally {
        process.kill(pid0, 'SIGCONT');
      }
      let segs = 0;
      for (const t0 = Date.now(); segs === 0 && Date.now() - t0 < 3000; await sleep(20)) segs = tcpCounter(lab, r, 'InSegs') - segs0;
      await sleep(100);
      segs = tcpCounter(lab, r, 'InSegs') - segs0;
      assert.equal(segs, corrupt < 0 ? 1 : 4, `four segments${corrupt < 0 ? '' : ', one changed,'} reached r as ${segs} TCP packets`);
      assert.equal(tcpCounter(lab, r, 'InCsumErrors') - errs0, corrupt < 0 ? 0 : 1, 'checksum errors at r');
    }
    // Frames for an attached interface go straight onto its wire from the sender's daemon, as
    // netmap's bwrap does: with m1's own daemon stopped, l's requests still reach r0 (the replies
    // come in on m1, whose daemon is stopped, so they do not come back).
    const pid1 = daemonPid(lab, m, 'm1');
    assert.ok(pid1 > 0);
    const before = lab.counters(r, 'r0').rxPackets;
    // and they are counted as delivered to the switch port vale0:m1 (vale-ctl -s)
    const rxOfM1 = (): number => Number(/^vale0:m1 .* rx_packets (\d+)/m.exec(valeCtl(lab, m, ['-s', 'vale0']).out)?.[1] ?? NaN);
    const counted = rxOfM1();
    process.kill(pid1, 'SIGSTOP');
    try {
      assert.equal(ping(lab, l, '198.18.0.2', 3), false, 'no replies while m1 has no forwarder');
      assert.ok(lab.counters(r, 'r0').rxPackets - before >= 3, 'the requests reached r0 all the same');
      assert.ok(rxOfM1() - counted >= 3, `vale0:m1 counted ${rxOfM1() - counted} of them`);
    } finally {
      process.kill(pid1, 'SIGCONT');
    }
    assert.ok(ping(lab, l, '198.18.0.2', 2), 'replies again');
  } finally {
    detach(lab, m, 'vale0', 'm0');
    detach(lab, m, 'vale0', 'm1');
  }
  assert.equal(ping(lab, l, '198.18.0.2'), false, 'no path once detached');
  lab.enter(m);
  assert.equal(hasSplitRules('m0') || hasSplitRules('m1'), false, 'interfaces restored');
  lab.leave();
  }); } finally {
    if (saved === undefined) delete process.env.NETMAP_TS_IF_BACKEND; else process.env.NETMAP_TS_IF_BACKEND = saved;
  }
});
}

test('VALE: -h attaches the host stack too; after SIGKILL of the forwarder -d cleans up', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  const h = valeCtl(lab, a, ['-h', 'vale1:a0']);
  assert.equal(h.status, 0, h.out);
  // the wire and the host stack are both on vale1, which learns and forwards between them
  assert.ok(ping(lab, b, '198.18.0.1', 3), 'the wire reaches the host through the switch');
  const pid = daemonPid(lab, a, 'a0');
  assert.ok(pid > 0 && native.processAlive(pid));
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (native.processAlive(pid) && Date.now() < deadline) await sleep(20);
  // nf_tables tables and tcx links die with their process, so the stack answers at once; tc
  // rules outlive it (cut off until the detach below removes them)
  if (splitMethod() !== 'tc') assert.ok(ping(lab, b, '198.18.0.1', 3), 'the stack answers at once after the crash');
  else assert.equal(ping(lab, b, '198.18.0.1'), false, 'cut off after the crash');
  detach(lab, a, 'vale1', 'a0');
  lab.enter(a);
  assert.equal(hasSplitRules('a0'), false);
  lab.leave();
  assert.ok(ping(lab, b, '198.18.0.1'), 'usable again');
}));

test('VALE: the daemon that puts frames straight on another attached interface follows it being detached, attached again, and deleted', opts, () => withLab(async (lab) => {
  const { l, m, r } = lab.line(false);
  for (const dev of ['m0', 'm1']) assert.equal(valeCtl(lab, m, ['-a', `vale0:${dev}`]).status, 0);
  try {
    assert.ok(ping(lab, l, '198.18.0.2', 2), 'ping through the switch');
    const pid0 = daemonPid(lab, m, 'm0');
    // m1 leaves the switch: m0's daemon must stop writing onto m1 (no path), and take it up
    // again when m1 comes back as a new switch port
    detach(lab, m, 'vale0', 'm1');
    const before = lab.counters(r, 'r0').rxPackets;
    assert.equal(ping(lab, l, '198.18.0.2', 4), false, 'no path without m1 on the switch');
    assert.ok(lab.counters(r, 'r0').rxPackets - before <= 1, 'the 4 requests were not put on m1 once it left (an ARP probe may be)');
    assert.equal(valeCtl(lab, m, ['-a', 'vale0:m1']).status, 0);
    assert.ok(ping(lab, l, '198.18.0.2', 3), 'through the switch again');
    // m1 deleted under both daemons: m1's ends, m0's lives on and can be detached
    lab.must(m, 'ip', ['link', 'del', 'm1']);
    assert.equal(ping(lab, l, '198.18.0.2', 2), false);
    await sleep(1500); // m1's daemon notices within a second
    assert.ok(native.processAlive(pid0), "m0's daemon survived the loss of its peer interface");
    assert.equal(daemonPid(lab, m, 'm1'), 0, "m1's daemon is gone");
  } finally {
    detach(lab, m, 'vale0', 'm0');
    if (daemonPid(lab, m, 'm1') !== 0) detach(lab, m, 'vale0', 'm1');
  }
  lab.enter(m);
  assert.equal(hasSplitRules('m0'), false, 'm0 restored');
  lab.leave();
}));

test('VALE: with the end points\' offloads on, TCP goes through: GSO super-frames go whole to another attached interface, or are cut (partial checksums completed) on the way into the switch', { ...opts, skip: opts.skip !== false ? opts.skip : (hasIperf ? false : 'no iperf3') }, () => withLab(async (lab) => {
  const { l, m, r } = lab.line(true);
  for (const dev of ['m0', 'm1']) assert.equal(valeCtl(lab, m, ['-a', `vale0:${dev}`]).status, 0);
  /** iperf3 for 2 s; returns the mean size of the frames r0 received meanwhile. */
  const transfer = async (what: string): Promise<number> => {
    const c0 = lab.counters(r, 'r0');
    lab.spawn(r, 'iperf3', ['-s', '-1']);
    await sleep(300);
    const res = lab.run(l, 'iperf3', ['-c', '198.18.0.2', '-t', '2', '-J'], 30_000);
    const j = JSON.parse(res.stdout) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
    const bps = j.end.sum_received.bits_per_second;
    const c1 = lab.counters(r, 'r0');
    const mean = (c1.rxBytes - c0.rxBytes) / (c1.rxPackets - c0.rxPackets);
    console.log(`# iperf3 through VALE, offloads on, ${what}: ${(bps / 1e6).toFixed(0)} Mbit/s, ${j.end.sum_sent.retransmits} retransmissions, frames of ${mean.toFixed(0)} bytes on average at r0`);
    assert.ok(bps > 10e6, `${bps} bit/s`);
    return mean;
  };
  try {
    assert.ok(ping(lab, l, '198.18.0.2', 2), 'ping through the switch');
    // the learning bridge sends l's super-frames to m1, an attached interface: they go whole
    // (AF_PACKET: as received; AF_XDP, which gets them as wire-sized frames: merged again)
    logBackend(lab, m, 'm0');
    assert.ok(await transfer('learning bridge') > 3000, 'super-frames reach r0 whole');
    // a plugged-in lookup (here: flood everything) gets wire-sized frames: super-frames are cut
    const module = new URL('../../src/switch/lookups/static-mac.js', import.meta.url).pathname;
    const plug = `const v = await import(${JSON.stringify(new URL('../../src/switch/index.js', import.meta.url).pathname)}); await v.setLookup('vale0', ${JSON.stringify(module)}, 'default=flood');`;
    const set = lab.run(m, process.execPath, ['--input-type=module', '-e', plug], 30_000);
    assert.equal(set.status, 0, set.stderr);
    // (the daemons drop what they forward until they have imported the lookup themselves)
    const until = Date.now() + 15_000;
    while (!ping(lab, l, '198.18.0.2') && Date.now() < until) await sleep(200);
    assert.ok(ping(lab, l, '198.18.0.2', 2), 'ping through the plugged-in lookup');
    assert.ok(await transfer('plugged-in lookup') <= 1514 + 4, 'super-frames were cut');
  } finally {
    detach(lab, m, 'vale0', 'm0');
    detach(lab, m, 'vale0', 'm1');
  }
}));

test('VALE: attachInterface from the library makes a NETMAP_TS_DIR that does not exist yet (mode 0700), as opening a port does', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const dir = path.join(process.env.NETMAP_TS_DIR!, 'not-yet');
  const env = `process.env.NETMAP_TS_DIR = ${JSON.stringify(dir)};`;
  const attachCode = `${env} const i = await import(${JSON.stringify(IFACES)}); i.attachInterface('vale7', 'a0', false);`;
  const r = lab.run(a, process.execPath, ['--input-type=module', '-e', attachCode], 30_000);
  assert.equal(r.status, 0, r.stderr);
  try {
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.ok(fs.readdirSync(dir).some((f) => f.startsWith('attach-') && f.endsWith('-a0.json')), 'the attach record is there');
  } finally {
    const d = lab.run(a, process.execPath, ['--input-type=module', '-e', `${env} ${RUN_DETACH}`, '--', 'vale7', 'a0'], 30_000);
    assert.equal(d.status, 0, d.stderr);
  }
}));
