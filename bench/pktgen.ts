/**
 * pkt-gen benchmark (JSON lines): pkt-gen tx and pkt-gen rx as two processes (two cores), over a
 * netmap pipe and over a VALE switch (when the build has one), 60- and 1514-byte frames, plus
 * txseq -> rxseq over a pipe. Each case runs tx for a few seconds, stops both with SIGINT and
 * reports what each side measured (their --json summaries). Netmap's own pkt-gen needs the netmap
 * kernel module, which this machine lacks, so the reference figures are the published ones
 * (netmap.4: pipes "over 100 Mpps"; vale.4: "almost 20 Mpps per core with small frames, about
 * 70 Gbit/s with 1500-byte frames"), printed
 * as `published_mpps` next to ours.
 * Last, as root with trafgen installed, pkt-gen tx on `netmap:<veth>` (the interfaces layer) side
 * by side with trafgen on the same veth in private namespaces (addresses 198.18.0.0/15): frames
 * counted by the kernel on the peer per second, and the ratio.
 * Usage: node dist/bench/pktgen.js [seconds]   (default 3)
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/tools/cli.js', import.meta.url));
const SECONDS = Math.min(30, Math.max(1, Number(process.argv[2] ?? 3) || 3));
const DIR = fs.mkdtempSync('/dev/shm/nmts-bench-pktgen-');
const haveVale = fs.existsSync(new URL('../src/switch/index.js', import.meta.url));

interface Proc { started: Promise<void>; done: Promise<Record<string, number | string>>; stop(): void }

function pktgen(args: string[]): Proc {
  const p = spawn(process.execPath, [CLI, 'pkt-gen', ...args, '--json', '-T', '0'], { env: { ...process.env, NETMAP_TS_DIR: DIR }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let onStart: () => void = () => {};
  const started = new Promise<void>((r) => { onStart = r; });
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('"type":"start"')) onStart(); });
  p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const killer = setTimeout(() => p.kill('SIGKILL'), (SECONDS + 20) * 1000);
  const done = new Promise<Record<string, number | string>>((resolve, reject) => p.on('close', (code) => {
    clearTimeout(killer);
    const line = out.split('\n').find((l) => l.includes('"type":"summary"'));
    if (code !== 0 || line === undefined) reject(new Error(`pkt-gen ${args.join(' ')} failed (${code}): ${err}`));
    else resolve(JSON.parse(line) as Record<string, number | string>);
  }));
  return { started, done, stop: () => p.kill('SIGINT') };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runCase(name: string, tx: string, rx: string, size: number, fns: [string, string], published: number): Promise<void> {
  const r = pktgen(['-i', rx, '-f', fns[1]]);
  await r.started;
  const t = pktgen(['-i', tx, '-f', fns[0], '-l', String(size)]);
  await t.started;
  await sleep(SECONDS * 1000);
  t.stop();
  const ts = await t.done;
  await sleep(300);
  r.stop();
  const rs = await r.done;
  const mpps = Number(rs.pps) / 1e6;
  const line = {
    bench: 'pkt-gen', case: name, metric: 'rx_rate', value: Number(mpps.toFixed(4)), unit: 'Mpps',
    mpps: Number(mpps.toFixed(4)), tx_mpps: Number((Number(ts.pps) / 1e6).toFixed(4)),
    rx_gbps: Number((Number(rs.bps) / 1e9).toFixed(3)), sent: ts.packets, received: rs.packets,
    drops: Number(rs.drops) + Number(ts.drops), avg_batch: Number(Number(rs.avg_batch).toFixed(1)),
    published_mpps: published, ratio_to_published: Number((mpps / published).toFixed(4)),
  };
  console.log(JSON.stringify(line));
}

try {
  await runCase('pipe-60B', 'netmap:bp{0', 'netmap:bp}0', 60, ['tx', 'rx'], 100);
  await runCase('pipe-1514B', 'netmap:bq{0', 'netmap:bq}0', 1514, ['tx', 'rx'], 100);
  await runCase('pipe-seq-60B', 'netmap:bs{0', 'netmap:bs}0', 60, ['txseq', 'rxseq'], 100);
  if (haveVale) {
    await runCase('vale-60B', 'valebench0:a', 'valebench0:b', 60, ['tx', 'rx'], 20);
    await runCase('vale-1514B', 'valebench1:a', 'valebench1:b', 1514, ['tx', 'rx'], Number((70e9 / 8 / 1514 / 1e6).toFixed(3))); // vale.4: about 70 Gbit/s with 1500-byte frames
  } else {
    console.log(JSON.stringify({ bench: 'pkt-gen', case: 'vale', skipped: 'src/switch is not in this build' }));
  }
  await vethCase(1_000_000);
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}

async function vethCase(frames: number): Promise<void> {
  const { Lab, skipReason } = await import('../test/helpers/netns.js');
  const skip = skipReason(['trafgen']);
  if (skip !== null) { console.log(JSON.stringify({ bench: 'pkt-gen', case: 'veth-60B', skipped: skip })); return; }
  const lab = new Lab();
  try {
    const a = lab.ns('pgba'), b = lab.ns('pgbb');
    lab.veth(a, 'pgba0', b, 'pgbb0');
    const before = lab.counters(b, 'pgbb0').rxPackets;
    const child = lab.spawn(a, process.execPath, [CLI, 'pkt-gen', '-i', 'netmap:pgba0', '-f', 'tx', '-n', String(frames), '-w', '0', '-T', '0', '--json',
      '-s', '198.18.9.1', '-d', '198.18.9.2', '-D', '02:00:00:00:00:02', '-S', '02:00:00:00:00:01']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const line = out.split('\n').find((l) => l.includes('"type":"summary"'));
    if (code !== 0 || line === undefined) throw new Error(`pkt-gen on a veth failed (${code}): ${out}`);
    const summary = JSON.parse(line) as Record<string, number>;
    const counted = lab.counters(b, 'pgbb0').rxPackets - before;
    const ours = counted / summary.seconds!;
    const before2 = lab.counters(b, 'pgbb0').rxPackets;
    const t0 = process.hrtime.bigint();
    const packet = '{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), fill(0x00, 46) }';
    const r = lab.run(a, 'trafgen', ['-o', 'pgba0', '-P', '1', '-n', String(frames), '-q', '-C', packet], 120_000);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`trafgen failed: ${r.stderr}`);
    const theirs = (lab.counters(b, 'pgbb0').rxPackets - before2) / secs;
    console.log(JSON.stringify({
      bench: 'pkt-gen', case: 'veth-60B', metric: 'tx_rate', value: Number((ours / 1e6).toFixed(4)), unit: 'Mpps', mpps: Number((ours / 1e6).toFixed(4)),
      counted_by_peer: counted, self_reported_mpps: Number((summary.pps! / 1e6).toFixed(4)),
      trafgen_mpps: Number((theirs / 1e6).toFixed(4)), ratio_to_trafgen: Number((ours / theirs).toFixed(3)),
      note: 'pkt-gen rate over its own sending window; trafgen over its wall time (start-up included, a few ms)',
    }));
  } finally {
    lab.cleanup();
  }
}
