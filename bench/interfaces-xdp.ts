/**
 * The two backends of netmap:IF side by side with the Linux tools, on veths in namespaces made
 * here, 60-byte frames (the same frame for every tool; JSON lines):
 *  - tx: pkt-gen over AF_XDP, pkt-gen over AF_PACKET, trafgen; each as its own loop's rate (pkt-gen's
 *    Speed line; trafgen: frames the peer counted / its own send time) and as the whole process
 *    (frames the peer counted / wall time, start-up included);
 *  - rx: trafgen at its top rate from the peer; pkt-gen rx over AF_XDP, over AF_PACKET, and
 *    `tcpdump -w /dev/null`: the share of trafgen's frames each captured;
 *  - bridge: `netmap bridge` between two veths (AF_XDP on both, AF_PACKET on both) against a Linux
 *    bridge: trafgen frames through it, counted on the far side.
 * Usage: node dist/bench/interfaces-xdp.js [frames [tx|rx|bridge]]   (default 1,000,000, all)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR ??= fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-bench-xdp-'));
delete process.env.NETMAP_TS_IF_BACKEND; // each run names its backend
const { Lab, skipReason, sleep } = await import('../test/helpers/netns.js');
const { CLI, PKTGEN_FRAME, emitter, secondsSince, pinned, trafgen, reportedPps, pair } = await import('./lib/veth.js');
type LabT = InstanceType<typeof Lab>;

const emit = emitter('interfaces-xdp');
const BACKENDS = ['xdp', 'packet'] as const;

function txBench(frames: number): void {
  const lab = new Lab();
  try {
    const { a, b } = pair(lab);
    const rates: Record<string, number> = {};
    for (const backend of BACKENDS) {
      const before = lab.counters(b, 'b0').rxPackets;
      const t0 = process.hrtime.bigint();
      const r = lab.run(a, ...pinned(1, process.execPath, [CLI, 'pkt-gen', '-i', `netmap:a0@conf:backend=${backend}`, '-f', 'tx', '-n', String(frames), ...PKTGEN_FRAME, '-w', '0', '-T', '0', '-v']), 120_000);
      const secs = secondsSince(t0);
      if (r.status !== 0) throw new Error(`pkt-gen tx (${backend}): ${r.stderr}`);
      const counted = lab.counters(b, 'b0').rxPackets - before;
      rates[backend] = reportedPps(r.stdout + r.stderr);
      const used = /Backend: (.*)/.exec(r.stdout)?.[1] ?? '?';
      emit(`pktgen_tx_${backend}_pps`, rates[backend]!, 'pps', { backend: used, peer_counted: counted, whole_process_pps: Math.round(counted / secs), note: "own loop: pkt-gen's Speed line; whole process: peer-counted / wall time incl. start-up" });
    }
    const before = lab.counters(b, 'b0').rxPackets;
    const t0 = process.hrtime.bigint();
    const own = trafgen(lab, a, 'a0', frames, 1);
    const secs = secondsSince(t0);
    const counted = lab.counters(b, 'b0').rxPackets - before;
    const ref = counted / own;
    emit('trafgen_tx_pps', ref, 'pps', { peer_counted: counted, whole_process_pps: Math.round(counted / secs), note: "own loop: peer-counted / trafgen's own send time" });
    for (const backend of BACKENDS) emit(`tx_ratio_${backend}_vs_trafgen`, rates[backend]! / ref, 'ratio');
  } finally {
    lab.cleanup();
  }
}

/** Starts `cmd` in `ns` on CPU 1 and waits until its output says `ready`; returns it and its output. */
async function startCapture(lab: LabT, ns: string, cmd: string, args: string[], ready: string): Promise<{ stop(): Promise<string> }> {
  const child = lab.spawn(ns, ...pinned(1, cmd, args));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const t = Date.now();
  while (!out.includes(ready) && child.exitCode === null && Date.now() - t < 15_000) await sleep(20);
  await sleep(300);
  return {
    stop: async () => {
      await sleep(300);
      child.kill('SIGINT');
      const t2 = Date.now();
      while (child.exitCode === null && child.signalCode === null && Date.now() - t2 < 15_000) await sleep(20);
      return out;
    },
  };
}

/** Each capturer twice, in turns; share = frames captured / frames trafgen sent. */
async function rxBench(frames: number): Promise<void> {
  const lab = new Lab();
  try {
    const { a, b } = pair(lab);
    const kinds = ['xdp', 'packet', 'tcpdump'] as const;
    const got: Record<string, number> = { xdp: 0, packet: 0, tcpdump: 0 };
    const secs: Record<string, number> = { xdp: 0, packet: 0, tcpdump: 0 };
    for (let round = 0; round < 2; round++) {
      for (const k of kinds) {
        const cap = k === 'tcpdump'
          ? await startCapture(lab, a, 'tcpdump', ['-i', 'a0', '-n', '-w', '/dev/null'], 'listening')
          : await startCapture(lab, a, process.execPath, [CLI, 'pkt-gen', '-i', `netmap:a0@conf:backend=${k}`, '-f', 'rx', '-w', '0', '-T', '0'], 'Receiving');
        const t0 = process.hrtime.bigint();
        trafgen(lab, b, 'b0', frames);
        secs[k]! += secondsSince(t0);
        const out = await cap.stop();
        got[k]! += Number((k === 'tcpdump' ? /(\d+) packets? captured/ : /Received (\d+) packets/).exec(out)?.[1] ?? 0);
      }
    }
    for (const k of kinds) {
      emit(`rx_${k}_captured_share`, got[k]! / (2 * frames), 'share', { captured: got[k], sent: 2 * frames, pps: Math.round(got[k]! / secs[k]!), note: 'two runs each, in turns; pps = captured / trafgen wall time' });
    }
  } finally {
    lab.cleanup();
  }
}

/** trafgen from l0 through whatever forwards m0 <-> m1, counted on r0: delivered frames per second. */
async function through(lab: LabT, l: string, r: string, frames: number): Promise<{ pps: number; delivered: number }> {
  const ready = Date.now() + 10_000;
  while (lab.run(l, 'ping', ['-c', '1', '-W', '1', '198.18.0.2']).status !== 0 && Date.now() < ready) await sleep(100);
  const before = lab.counters(r, 'r0').rxPackets;
  const t0 = process.hrtime.bigint();
  trafgen(lab, l, 'l0', frames);
  await sleep(200);
  const delivered = lab.counters(r, 'r0').rxPackets - before;
  return { pps: delivered / (secondsSince(t0) - 0.2), delivered };
}

async function bridgeBench(frames: number): Promise<void> {
  const pps: Record<string, number> = {};
  for (const kind of ['xdp', 'packet', 'linux'] as const) {
    const lab = new Lab();
    try {
      const { l, m, r } = lab.line(false);
      let stop: (() => Promise<string>) | null = null;
      if (kind === 'linux') {
        lab.must(m, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
        lab.must(m, 'ip', ['link', 'set', 'm0', 'master', 'br0']);
        lab.must(m, 'ip', ['link', 'set', 'm1', 'master', 'br0']);
        lab.must(m, 'ip', ['link', 'set', 'br0', 'up']);
      } else {
        const suffix = `@conf:backend=${kind}`;
        stop = (await startCapture(lab, m, process.execPath, [CLI, 'bridge', '-i', `netmap:m0${suffix}`, '-i', `netmap:m1${suffix}`], 'Ready')).stop;
      }
      const t = await through(lab, l, r, frames);
      pps[kind] = t.pps;
      emit(`bridge_${kind}_pps`, t.pps, 'pps', { sent: frames, delivered: t.delivered, what: kind === 'linux' ? 'Linux bridge' : `netmap bridge, AF_${kind === 'xdp' ? 'XDP' : 'PACKET'} on both veths` });
      if (stop !== null) await stop();
    } finally {
      lab.cleanup();
    }
  }
  emit('bridge_ratio_xdp_vs_linux', pps.xdp! / pps.linux!, 'ratio');
  emit('bridge_ratio_packet_vs_linux', pps.packet! / pps.linux!, 'ratio');
}

async function main(): Promise<number> {
  const frames = Number(process.argv[2] ?? 1_000_000);
  const skip = skipReason(['trafgen', 'tc', 'tun']);
  if (skip !== null) {
    console.log(JSON.stringify({ bench: 'interfaces-xdp', skipped: skip }));
    return 0;
  }
  const only = process.argv[3];
  try {
    if (only === undefined || only === 'tx') txBench(frames);
    if ((only === undefined || only === 'rx') && skipReason(['tcpdump']) === null) await rxBench(frames);
    if (only === undefined || only === 'bridge') await bridgeBench(frames);
  } finally {
    if (process.env.NETMAP_TS_DIR?.includes('nmts-bench-xdp-')) fs.rmSync(process.env.NETMAP_TS_DIR, { recursive: true, force: true });
  }
  return 0;
}

process.exitCode = await main();
