/**
 * The main job (`npm start`): pkt-gen rx and pkt-gen tx as two processes across a fresh VALE
 * switch for a few seconds, printing their rates. Needs no root, no NIC, no configuration: the
 * switch (`valedemo<pid>`) and its two ephemeral ports appear on first open and disappear when
 * the processes close them. Falls back to a netmap pipe when the build has no VALE switch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fail } from '../errors.js';
import { loadPortTypes } from './porttypes.js';
import * as S from './stats.js';

export interface DemoOptions {
  /** How long tx sends (seconds). */
  seconds: number;
  /** Frame size (bytes). */
  size: number;
  /** Use a netmap pipe even when VALE is available. */
  pipe?: boolean;
  out: (text: string) => void;
}

interface Child {
  proc: ChildProcess;
  started: Promise<void>;
  summary: Record<string, number | string> | null;
  exited: Promise<number>;
  stderr: string[];
}

const CLI = fileURLToPath(new URL('../tools/cli.js', import.meta.url));
/** Longest wait for a child to come up or to finish after being told to stop. */
const CHILD_TIMEOUT_MS = 10_000;

function startChild(label: string, args: string[], out: (t: string) => void): Child {
  const proc = spawn(process.execPath, [CLI, 'pkt-gen', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const child: Child = { proc, started: Promise.resolve(), summary: null, exited: Promise.resolve(0), stderr: [] };
  let onStart: () => void = () => {};
  let onFail: (e: Error) => void = () => {};
  child.started = new Promise<void>((resolve, reject) => { onStart = resolve; onFail = reject; });
  child.exited = new Promise<number>((resolve) => {
    proc.on('exit', (code, signal) => {
      onFail(new Error(`${label} exited before starting (${signal ?? code}): ${child.stderr.join(' ').trim()}`));
      resolve(code ?? 128);
    });
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let o: Record<string, number | string>;
    try { o = JSON.parse(line) as Record<string, number | string>; } catch { out(`${label}: ${line}\n`); return; }
    if (o.type === 'start') onStart();
    else if (o.type === 'interval') out(`  ${label.padEnd(3)} ${S.norm(Number(o.pps), true)}pps  ${S.norm(Number(o.bps), true)}bps\n`);
    else if (o.type === 'summary') child.summary = o;
  });
  createInterface({ input: proc.stderr! }).on('line', (line) => { if (child.stderr.length < 50) child.stderr.push(line); });
  return child;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function stopChild(c: Child): Promise<number> {
  if (c.proc.exitCode !== null) return c.exited;
  c.proc.kill('SIGINT');
  try {
    return await withTimeout(c.exited, CHILD_TIMEOUT_MS, 'a pkt-gen process to stop');
  } catch {
    c.proc.kill('SIGKILL');
    return c.exited;
  }
}

function summaryText(o: Record<string, number | string>): string {
  const s = S.summarize(String(o.verb), Number(o.packets), Number(o.bytes), Number(o.events), Number(o.seconds));
  return S.formatSummary(s, true);
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const { out } = opts;
  if (!(opts.seconds > 0 && opts.seconds <= 60)) fail('EINVAL', `demo duration ${opts.seconds} s is out of range (0..60]`);
  const types = await loadPortTypes();
  const tag = process.pid.toString(36);
  let txName: string, rxName: string, medium: string;
  if (types.includes('switch') && opts.pipe !== true) {
    const sw = `valedemo${tag}`;
    txName = `${sw}:tx`; rxName = `${sw}:rx`; medium = `VALE switch ${sw}`;
  } else {
    txName = `netmap:demo${tag}{0`; rxName = `netmap:demo${tag}}0`; medium = `netmap pipe demo${tag}${types.includes('switch') ? '' : ' (VALE is not in this build)'}`;
  }
  out(`netmap-ts demo: pkt-gen tx -> ${medium} -> pkt-gen rx, ${opts.seconds} s, ${opts.size}-byte frames\n`);
  const rx = startChild('rx', ['-i', rxName, '-f', 'rx', '-T', '1000'], out);
  let tx: Child | null = null;
  try {
    await withTimeout(rx.started, CHILD_TIMEOUT_MS, 'pkt-gen rx to start');
    out(`  rx  listening on ${rxName} (pid ${rx.proc.pid})\n`);
    tx = startChild('tx', ['-i', txName, '-f', 'tx', '-l', String(opts.size), '-T', '1000'], out);
    await withTimeout(tx.started, CHILD_TIMEOUT_MS, 'pkt-gen tx to start');
    out(`  tx  sending on ${txName} (pid ${tx.proc.pid})\n`);
    await Promise.race([new Promise((r) => setTimeout(r, opts.seconds * 1000)), tx.exited]);
    const txStatus = await stopChild(tx);
    await new Promise((r) => setTimeout(r, 300)); // let rx take what is still in its ring
    const rxStatus = await stopChild(rx);
    if (txStatus !== 0 || rxStatus !== 0 || tx.summary === null || rx.summary === null) {
      out(`demo: failed (tx status ${txStatus}, rx status ${rxStatus})\n${[...tx.stderr, ...rx.stderr].join('\n')}\n`);
      return 1;
    }
    out('\npkt-gen tx:\n' + summaryText(tx.summary));
    out('\npkt-gen rx:\n' + summaryText(rx.summary));
    const sent = Number(tx.summary.packets), got = Number(rx.summary.packets), drops = Number(rx.summary.drops) + Number(tx.summary.drops);
    const balanced = sent === got + drops;
    out(`\ndemo: tx ${S.norm(Number(tx.summary.pps), true)}pps, rx ${S.norm(Number(rx.summary.pps), true)}pps over ${medium}; ` +
      `sent ${sent} = received ${got} + dropped ${drops}: ${balanced ? 'consistent' : 'INCONSISTENT'}\n`);
    return balanced ? 0 : 1;
  } finally {
    if (tx !== null && tx.proc.exitCode === null && tx.proc.signalCode === null) tx.proc.kill('SIGKILL');
    if (rx.proc.exitCode === null && rx.proc.signalCode === null) rx.proc.kill('SIGKILL');
  }
}
