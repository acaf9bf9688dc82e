/**
 * pkt-gen benchmark (JSON lines): pkt-gen tx and pkt-gen rx as two processes (two cores), over a
 * netmap pipe and over a VALE switch (when the build has one), 60- and 1514-byte frames, plus
 * txseq -> rxseq over a pipe. Each case runs tx for a few seconds, stops both with SIGINT and
 * reports what each side measured (their --json summaries). Netmap's own pkt-gen needs the netmap
 * kernel module, which this machine lacks, so the reference figures are the published ones
 * (netmap.4: pipes "over 100 Mpps"; vale.4: "almost 20 Mpps per core with small frames"), printed
 * as `published_mpps` next to ours.
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
    await runCase('vale-1514B', 'valebench1:a', 'valebench1:b', 1514, ['tx', 'rx'], 20 * 64 / 1514);
  } else {
    console.log(JSON.stringify({ bench: 'pkt-gen', case: 'vale', skipped: 'src/switch is not in this build' }));
  }
} finally {
  fs.rmSync(DIR, { recursive: true, force: true });
}
