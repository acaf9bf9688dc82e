/**
 * virtio-net header ports benchmark (JSON lines):
 *  - iperf3 TCP between two containers (network namespaces), the end points' offloads on (the
 *    default), side by side in each round:
 *      bridge:   each behind a veth on a Linux bridge (the reference);
 *      vale-tap: each behind a TAP attached to a VALE switch as a virtio-net header port
 *                (`vale-ctl -a vale0:TAP`; TSO super-frames pass whole);
 *      vale-veth: each behind a veth attached to the switch (the attach path without headers).
 *    The ratio vale-tap / bridge is printed per round.
 *  - VALE between two header ports (12 bytes), 64 KB TCP super-frames (NS_MOREFRAG chains of 33
 *    buffers), sender and receiver alternating in one thread: Gbit/s of frames delivered; and the
 *    same into a port without header (each cut into 45 segments, checksums computed).
 * Everything runs in namespaces made here (test/helpers/netns.ts), addresses in 198.18.0.0/15.
 * Usage: node dist/bench/vnet.js [--seconds N] [--rounds N] [--case iperf|switch]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR ??= fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-bench-vnet-'));
const { Lab, skipReason, sleep } = await import('../test/helpers/netns.js');
const { openPort } = await import('../src/ports/index.js');
await import('../src/port-types.js');
const L = await import('../src/memory/layout.js');

const BENCH = 'vnet';
function emit(c: string, metric: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, case: c, metric, value: Number(value.toFixed(3)), unit, ...extra }));
}

const args = process.argv.slice(2);
function option(name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}
const SECONDS = option('--seconds', 3);
const ROUNDS = option('--rounds', 2);
const only = args.includes('--case') ? args[args.indexOf('--case') + 1] : undefined;

type LabT = InstanceType<typeof Lab>;
const VALECTL = new URL('../src/tools/vale-ctl.js', import.meta.url).pathname;
const IFACES = new URL('../src/bwrap/index.js', import.meta.url).pathname;
const RUN_VALECTL = `await import(${JSON.stringify(IFACES)}); const v = await import(${JSON.stringify(VALECTL)}); process.exitCode = await v.main(process.argv.slice(1));`;

function valeCtl(lab: LabT, ns: string, a: string[]): void {
  const r = lab.run(ns, process.execPath, ['--input-type=module', '-e', RUN_VALECTL, '--', ...a], 30_000);
  if (r.status !== 0) throw new Error(`vale-ctl ${a.join(' ')}: ${r.stdout}${r.stderr}`);
}

/** c1 and c2 joined by `how` in middle namespace m; c1 198.18.9.1, c2 198.18.9.2. */
function topology(lab: LabT, how: 'bridge' | 'vale-tap' | 'vale-veth'): { c1: string; c2: string } {
  const m = lab.ns('m'), c1 = lab.ns('c1'), c2 = lab.ns('c2');
  if (how === 'bridge') lab.must(m, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  if (how === 'bridge') lab.must(m, 'ip', ['link', 'set', 'br0', 'up']);
  for (const [k, c] of [[1, c1], [2, c2]] as const) {
    if (how === 'vale-tap') {
      lab.must(m, 'ip', ['tuntap', 'add', 'dev', `t${k}`, 'mode', 'tap']);
      valeCtl(lab, m, ['-a', `vale0:t${k}`]);
      lab.must(m, 'ip', ['link', 'set', `t${k}`, 'netns', c]);
      lab.must(c, 'ip', ['link', 'set', `t${k}`, 'up']);
      lab.addr(c, `t${k}`, `198.18.9.${k}/24`);
    } else {
      lab.veth(c, `e${k}`, m, `m${k}`);
      lab.addr(c, `e${k}`, `198.18.9.${k}/24`);
      if (how === 'bridge') lab.must(m, 'ip', ['link', 'set', `m${k}`, 'master', 'br0']);
      else valeCtl(lab, m, ['-a', `vale0:m${k}`]);
    }
  }
  return { c1, c2 };
}

async function iperf(how: 'bridge' | 'vale-tap' | 'vale-veth'): Promise<number> {
  const lab = new Lab();
  try {
    const { c1, c2 } = topology(lab, how);
    if (lab.run(c1, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '198.18.9.2']).status !== 0) throw new Error(`${how}: no ping`);
    lab.spawn(c2, 'iperf3', ['-s', '-1', '-B', '198.18.9.2']);
    await sleep(400);
    const r = lab.run(c1, 'iperf3', ['-c', '198.18.9.2', '-t', String(SECONDS), '-J'], (SECONDS + 20) * 1000);
    if (r.status !== 0) throw new Error(`${how}: iperf3 failed: ${r.stderr}${r.stdout.slice(0, 300)}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
    const gbps = j.end.sum_received.bits_per_second / 1e9;
    emit(how, 'iperf3_tcp', gbps, 'Gbit/s', { retransmits: j.end.sum_sent.retransmits, seconds: SECONDS });
    return gbps;
  } finally {
    lab.cleanup();
  }
}

/** One 64 KB TCP/IPv4 super-frame with a 12-byte virtio-net header (NEEDS_CSUM, TCPV4, MSS 1448). */
function superFrame(): Uint8Array {
  const payload = 65535 - 20 - 20;
  const len = 14 + 20 + 20 + payload;
  const f = new Uint8Array(12 + len);
  const v = new DataView(f.buffer);
  f[0] = 1; f[1] = 1; v.setUint16(2, 54, true); v.setUint16(4, 1448, true); v.setUint16(6, 34, true); v.setUint16(8, 16, true);
  const e = 12;
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], e);
  v.setUint16(e + 12, 0x0800);
  f[e + 14] = 0x45; v.setUint16(e + 16, len - 14); f[e + 20] = 0x40; f[e + 22] = 64; f[e + 23] = 6;
  f.set([198, 18, 9, 1, 198, 18, 9, 2], e + 26);
  f[e + 46] = 0x50; f[e + 47] = 0x10;
  for (let i = e + 54; i < f.length; i++) f[i] = i & 0xff;
  return f;
}

/** Sender and receiver in this thread: `frame` (header included) from a 12-byte header port to a `dstHdr` one. */
function switchCase(dstHdr: number): void {
  const sw = `valebv${dstHdr}`;
  const a = openPort(`${sw}:a@conf:vnet-hdr=12`);
  const b = openPort(`${sw}:b@conf:vnet-hdr=${dstHdr},rx-slots=4096`);
  const frame = superFrame();
  const tx = a.txRings[0]!, rx = b.rxRings[0]!;
  const u8 = a.mem.u8;
  // pre-fill the TX buffers with the frame, chain by chain
  const chain = Math.ceil(frame.length / tx.bufSize);
  const chains = Math.floor((tx.numSlots - 1) / chain);
  for (let c = 0, i = 0; c < chains; c++) {
    for (let off = 0; off < frame.length; off += tx.bufSize, i++) {
      const piece = Math.min(tx.bufSize, frame.length - off);
      u8.set(frame.subarray(off, off + piece), tx.slotBufOffset(i));
    }
  }
  let bytes = 0, frames = 0;
  const t0 = performance.now(), end = t0 + SECONDS * 1000;
  while (performance.now() < end) {
    for (let k = 0; k < 8; k++) {
      let i = tx.head;
      for (let c = 0; c < Math.min(4, chains); c++) {
        for (let off = 0; off < frame.length; off += tx.bufSize) {
          const piece = Math.min(tx.bufSize, frame.length - off);
          tx.setSlotLen(i, piece);
          tx.setSlotFlags(i, off + piece < frame.length ? L.NS_MOREFRAG : 0);
          i = tx.next(i);
        }
      }
      tx.advance(i);
      a.txsync();
      b.rxsync();
      while (!rx.empty()) {
        const j = rx.head;
        bytes += rx.slotLen(j);
        if ((rx.slotFlags(j) & L.NS_MOREFRAG) === 0) frames++;
        rx.advance(rx.next(j));
      }
      b.rxsync();
    }
  }
  const s = (performance.now() - t0) / 1000;
  emit(`switch-12-to-${dstHdr}`, 'delivered', (bytes * 8) / s / 1e9, 'Gbit/s', { frames_per_s: Math.round(frames / s), note: dstHdr === 0 ? '64 KB super-frames cut into segments' : '64 KB super-frames whole' });
  a.close();
  b.close();
}

const skip = skipReason(['tun', 'iperf3', 'ping']);
if (only === undefined || only === 'switch') {
  switchCase(12);
  switchCase(0);
}
if (only === undefined || only === 'iperf') {
  if (skip !== null) console.log(JSON.stringify({ bench: BENCH, case: 'iperf', skipped: skip }));
  else {
    for (let r = 0; r < ROUNDS; r++) {
      const bridge = await iperf('bridge');
      const tap = await iperf('vale-tap');
      const veth = await iperf('vale-veth');
      emit('vale-tap/bridge', 'ratio', tap / bridge, 'x', { round: r + 1, veth_ratio: Number((veth / bridge).toFixed(3)) });
    }
  }
}
fs.rmSync(process.env.NETMAP_TS_DIR, { recursive: true, force: true });
