/**
 * Interfaces layer benchmarks (JSON lines), side by side with the reference tools on the same veth:
 *  - TX: PacketTransmitter (TPACKET_V2 ring, qdisc bypass, one kick per batch) into a veth vs
 *    trafgen (netsniff-ng, one process); rate = frames counted by the kernel on the peer / time.
 *  - RX: PacketReceiver (TPACKET_V3 ring) vs `tcpdump -w /dev/null`, both capturing what trafgen
 *    sends from the peer; rate = frames captured / time, plus the share captured.
 * Everything runs in namespaces made here (see test/helpers/netns.ts). 64-byte frames (60 + CRC).
 * Usage: node dist/bench/interfaces.js [frames]   (default 2,000,000)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

process.env.NETMAP_TS_DIR ??= fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-bench-if-'));
const { Lab, skipReason, sleep } = await import('../test/helpers/netns.js');
const { PacketReceiver, PacketTransmitter } = await import('../src/interfaces/packet.js');
const { space } = await import('../src/memory/space.js');

const BENCH = 'interfaces';
function emit(metric: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, metric, value: Number(value.toFixed(4)), unit, ...extra }));
}

const TRAFGEN_PACKET = '{ fill(0xff, 6), 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), fill(0x00, 46) }';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

async function txOurs(lab: InstanceType<typeof Lab>, a: string, b: string, frames: number): Promise<number> {
  lab.enter(a);
  const tx = new PacketTransmitter('a0', { frames: 2048 });
  lab.leave();
  const u8 = space().u8;
  // Prefill every slot once (as pkt-gen does): the loop measures ring + kick cost.
  for (let i = 0; i < tx.frames; i++) {
    const at = tx.slot();
    u8.fill(0xff, at, at + 6);
    u8.set([2, 0, 0, 0, 0, 1, 8, 0], at + 6);
    u8.fill(0, at + 14, at + 60);
    tx.commit(60);
  }
  tx.kick();
  while (tx.inFlight > 0) tx.wait(5);
  const before = lab.counters(b, 'b0').rxPackets;
  const t0 = process.hrtime.bigint();
  let sent = 0;
  const deadline = Date.now() + 60_000;
  while (sent < frames && Date.now() < deadline) {
    let room = tx.reclaim();
    if (room === 0) {
      tx.wait(1);
      continue;
    }
    if (room > 512) room = 512;
    if (room > frames - sent) room = frames - sent;
    for (let i = 0; i < room; i++) {
      tx.slot();
      tx.commit(60);
    }
    sent += room;
    tx.kick();
  }
  while (tx.inFlight > 0 && Date.now() < deadline) tx.wait(1);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  tx.close();
  const counted = lab.counters(b, 'b0').rxPackets - before;
  emit('tx_afpacket_pps', counted / secs, 'pps', { frames: counted, seconds: Number(secs.toFixed(3)), kicks: tx.kicks });
  return counted / secs;
}

function txTrafgen(lab: InstanceType<typeof Lab>, a: string, b: string, frames: number): number {
  const before = lab.counters(b, 'b0').rxPackets;
  const t0 = process.hrtime.bigint();
  const r = lab.run(a, 'trafgen', ['-o', 'a0', '-P', '1', '-n', String(frames), '-q', '-C', TRAFGEN_PACKET], 120_000);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`trafgen failed: ${r.stderr}`);
  const counted = lab.counters(b, 'b0').rxPackets - before;
  emit('tx_trafgen_pps', counted / secs, 'pps', { frames: counted, seconds: Number(secs.toFixed(3)), note: 'includes trafgen start-up' });
  return counted / secs;
}

async function rxOurs(lab: InstanceType<typeof Lab>, a: string, b: string, frames: number): Promise<number> {
  lab.enter(a);
  const rx = new PacketReceiver('a0', { blockCount: 64 });
  lab.leave();
  const child = lab.spawn(b, 'trafgen', ['-o', 'b0', '-P', '1', '-n', String(frames), '-q', '-C', TRAFGEN_PACKET]);
  let got = 0, first = 0n, last = 0n;
  const deadline = Date.now() + 60_000;
  let idleSince = Date.now();
  while (Date.now() < deadline) {
    let n = 0;
    while (rx.next() >= 0) n++;
    if (n > 0) {
      if (got === 0) first = process.hrtime.bigint();
      last = process.hrtime.bigint();
      got += n;
      idleSince = Date.now();
    } else {
      rx.wait(2);
      if (child.exitCode !== null && Date.now() - idleSince > 300) break;
      await sleep(0);
    }
  }
  const st = rx.stats();
  rx.close();
  const secs = Number(last - first) / 1e9;
  emit('rx_afpacket_pps', got / secs, 'pps', { frames: got, sent: frames, captured_share: Number((got / frames).toFixed(4)), kernel_drops: st.drops });
  return got / frames;
}

async function rxTcpdump(lab: InstanceType<typeof Lab>, a: string, b: string, frames: number): Promise<number> {
  const dump = lab.spawn(a, 'tcpdump', ['-i', 'a0', '-n', '-w', '/dev/null']);
  let err = '';
  dump.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const t = Date.now() + 10_000;
  while (!err.includes('listening') && Date.now() < t) await sleep(20);
  const t0 = process.hrtime.bigint();
  lab.run(b, 'trafgen', ['-o', 'b0', '-P', '1', '-n', String(frames), '-q', '-C', TRAFGEN_PACKET], 120_000);
  await sleep(300);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9 - 0.3;
  dump.kill('SIGINT');
  const t2 = Date.now() + 10_000;
  while (dump.exitCode === null && Date.now() < t2) await sleep(20);
  const captured = Number(/(\d+) packets? captured/.exec(err)?.[1] ?? 0);
  const dropped = Number(/(\d+) packets? dropped by kernel/.exec(err)?.[1] ?? 0);
  emit('rx_tcpdump_pps', captured / secs, 'pps', { frames: captured, sent: frames, captured_share: Number((captured / frames).toFixed(4)), kernel_drops: dropped, note: 'time includes trafgen start-up' });
  return captured / frames;
}

async function main(): Promise<number> {
  const frames = Number(process.argv[2] ?? 2_000_000);
  const skip = skipReason(['trafgen']);
  if (skip !== null) {
    console.log(JSON.stringify({ bench: BENCH, skipped: skip }));
    return 0;
  }
  const lab = new Lab();
  try {
    const a = lab.ns('a'), b = lab.ns('b');
    lab.veth(a, 'a0', b, 'b0');
    const ours = await txOurs(lab, a, b, frames);
    const ref = txTrafgen(lab, a, b, frames);
    emit('tx_ratio_afpacket_vs_trafgen', ours / ref, 'ratio');
    const rxShare = await rxOurs(lab, a, b, frames);
    if (have('tcpdump')) {
      const dumpShare = await rxTcpdump(lab, a, b, frames);
      emit('rx_captured_share_ratio_afpacket_vs_tcpdump', rxShare / Math.max(dumpShare, 1e-9), 'ratio');
    }
  } finally {
    lab.cleanup();
    if (process.env.NETMAP_TS_DIR?.includes('nmts-bench-if-')) fs.rmSync(process.env.NETMAP_TS_DIR, { recursive: true, force: true });
  }
  return 0;
}

process.exitCode = await main();
