/**
 * The main job (`npm start`): pkt-gen rx and pkt-gen tx as two processes across a fresh VALE
 * switch, printing their rates, in two parts:
 *  1. unpaced: the sender's top speed. The receiver takes what it can; on VALE the switch drops
 *     what does not fit in the receiver's ring (as netmap's does), so this part reports drops
 *     and says so;
 *  2. paced (pkt-gen -R): starting from 90% of what the receiver took unpaced, short runs, each
 *     half the rate of the last one that lost frames until one loses none, then two between the
 *     last loss and that one: the highest lossless rate found.
 * Needs no root, no NIC, no configuration: the switch (`valedemo<pid>`) and its two ephemeral
 * ports appear on first open and disappear when the processes close them. Falls back to a netmap
 * pipe when the build has no VALE switch (a pipe never drops: part 2 is then skipped).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fail } from '../errors.js';
import '../port-types-lazy.js'; // pipes and VALE ports
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

/** What one tx -> rx run measured. */
interface RunFigures {
  txPps: number;
  rxPps: number;
  sent: number;
  received: number;
  drops: number;
  consistent: boolean;
  tx: Record<string, number | string>;
  rx: Record<string, number | string>;
}

/**
 * The paced search: from PACED_START of what the receiver took unpaced, halving after each run
 * that lost frames (at most PACED_DOWN runs), then PACED_REFINE runs between the highest
 * lossless and the lowest lossy rate (their geometric mean), so the rate reported is within
 * a factor sqrt(sqrt(2)) (19%) of the highest lossless one.
 */
const PACED_START = 0.9;
const PACED_DOWN = 6;
const PACED_REFINE = 2;
/** Length of one paced run: long enough for many ring-fulls even at the lowest rate tried. */
const PACED_SECONDS = 0.6;
/**
 * How the paced runs send: in bursts of 64 (-b 64), so that a burst fills 6% of the receiver's
 * 1024-slot ring instead of half of it (-b 512), and a sender that fell behind catches up at most
 * half a ring at once (txLoop). The receiver runs as pkt-gen rx does by default (it sleeps in
 * poll when its ring is empty).
 */
const PACED_TX_ARGS = ['-b', '64'];
/**
 * As root the paced runs' receiver runs at real-time priority (pkt-gen --rt): an ordinary one
 * waits out other threads' time slices, V8's compiler threads among them, for 1-5 ms at a time,
 * longer than its ring lasts (generator/README.md FIGURES); without root it runs as by default.
 */
const PACED_RX_ARGS = process.getuid?.() === 0 ? ['--rt', '10'] : [];

/** One pkt-gen rx + pkt-gen tx run; null (after printing why) when a process failed. */
async function runOnce(txName: string, rxName: string, opts: DemoOptions, seconds: number, rate: number, verbose: boolean): Promise<RunFigures | null> {
  const { out } = opts;
  const quiet = (): void => {};
  const rx = startChild('rx', ['-i', rxName, '-f', 'rx', '-T', verbose ? '1000' : '0', ...(rate > 0 ? PACED_RX_ARGS : [])], verbose ? out : quiet);
  let tx: Child | null = null;
  try {
    await withTimeout(rx.started, CHILD_TIMEOUT_MS, 'pkt-gen rx to start');
    if (verbose) out(`  rx  listening on ${rxName} (pid ${rx.proc.pid})\n`);
    const txArgs = ['-i', txName, '-f', 'tx', '-l', String(opts.size), '-T', verbose ? '1000' : '0'];
    if (rate > 0) txArgs.push('-R', String(Math.round(rate)), ...PACED_TX_ARGS);
    tx = startChild('tx', txArgs, verbose ? out : quiet);
    await withTimeout(tx.started, CHILD_TIMEOUT_MS, 'pkt-gen tx to start');
    if (verbose) out(`  tx  sending on ${txName} (pid ${tx.proc.pid})\n`);
    await Promise.race([new Promise((r) => setTimeout(r, seconds * 1000)), tx.exited]);
    const txStatus = await stopChild(tx);
    await new Promise((r) => setTimeout(r, 300)); // let rx take what is still in its ring
    const rxStatus = await stopChild(rx);
    if (txStatus !== 0 || rxStatus !== 0 || tx.summary === null || rx.summary === null) {
      out(`demo: failed (tx status ${txStatus}, rx status ${rxStatus})\n${[...tx.stderr, ...rx.stderr].join('\n')}\n`);
      return null;
    }
    const sent = Number(tx.summary.packets), received = Number(rx.summary.packets), drops = Number(rx.summary.drops) + Number(tx.summary.drops);
    return {
      txPps: Number(tx.summary.pps), rxPps: Number(rx.summary.pps), sent, received, drops,
      consistent: sent === received + drops, tx: tx.summary, rx: rx.summary,
    };
  } finally {
    if (tx !== null && tx.proc.exitCode === null && tx.proc.signalCode === null) tx.proc.kill('SIGKILL');
    if (rx.proc.exitCode === null && rx.proc.signalCode === null) rx.proc.kill('SIGKILL');
  }
}

const pps = (x: number): string => `${S.norm(x, true)}pps`;
const pct = (part: number, whole: number): string => `${whole > 0 ? ((100 * part) / whole).toFixed(1) : '0.0'}%`;

export async function runDemo(opts: DemoOptions): Promise<number> {
  const { out } = opts;
  if (!(opts.seconds > 0 && opts.seconds <= 60)) fail('EINVAL', `demo duration ${opts.seconds} s is out of range (0..60]`);
  const tag = process.pid.toString(36);
  const vale = opts.pipe !== true;
  // a fresh switch (or pipe) per run: ephemeral ports vanish with their processes
  const names = (k: number): { tx: string; rx: string; medium: string } => vale
    ? { tx: `valedemo${tag}${k}:tx`, rx: `valedemo${tag}${k}:rx`, medium: `VALE switch valedemo${tag}${k}` }
    : { tx: `netmap:demo${tag}{${k}`, rx: `netmap:demo${tag}}${k}`, medium: `netmap pipe demo${tag}` };
  const first = names(0);
  out(`netmap-ts demo: pkt-gen tx -> ${first.medium} -> pkt-gen rx, ${opts.size}-byte frames\n`);
  out(`\n1. unpaced, ${opts.seconds} s: the sender's top speed. ${vale
    ? 'The receiver takes what it can; the switch drops what does not fit in its ring (as netmap\'s VALE does).'
    : 'A pipe never drops: the sender waits for the receiver.'}\n`);
  const u = await runOnce(first.tx, first.rx, opts, opts.seconds, 0, true);
  if (u === null) return 1;
  out('\npkt-gen tx:\n' + summaryText(u.tx));
  out('\npkt-gen rx:\n' + summaryText(u.rx));
  out(`\nunpaced: tx ${pps(u.txPps)}, rx ${pps(u.rxPps)}; sent ${u.sent} = received ${u.received} + dropped ${u.drops} (${pct(u.drops, u.sent)}): ${u.consistent ? 'consistent' : 'INCONSISTENT'}\n`);
  let consistent = u.consistent;
  let lossless = 0, losslessRx = 0, tries = 0;
  if (vale && u.rxPps > 0) {
    const secs = Math.min(PACED_SECONDS, opts.seconds);
    const receiver = PACED_RX_ARGS.length > 0 ? `; receiver: pkt-gen rx ${PACED_RX_ARGS.join(' ')}, real-time priority as root` : '';
    out(`\n2. paced (pkt-gen -R ${PACED_TX_ARGS.join(' ')}${receiver}), ${secs} s each: the highest rate the receiver keeps up with. ` +
      `From ${Math.round(PACED_START * 100)}% of what it took unpaced, halved after a loss, then refined between the last loss and the lossless rate\n`);
    const tryRate = async (rate: number): Promise<boolean | null> => {
      const nm = names(++tries);
      const p = await runOnce(nm.tx, nm.rx, opts, secs, rate, false);
      if (p === null) return null;
      consistent &&= p.consistent;
      const ok = p.drops === 0 && p.sent > 0;
      out(`  -R ${pps(rate)}: tx ${pps(p.txPps)}, rx ${pps(p.rxPps)}; sent ${p.sent} = received ${p.received} + dropped ${p.drops}${p.consistent ? '' : ' INCONSISTENT'}${ok ? ': lossless' : ''}\n`);
      if (ok && rate > lossless) { lossless = rate; losslessRx = p.rxPps; }
      return ok;
    };
    let lossy = 0;
    let rate = Math.floor(u.rxPps * PACED_START);
    for (let k = 0; k < PACED_DOWN && lossless === 0 && rate >= 1; k++, rate = Math.floor(rate / 2)) {
      const ok = await tryRate(rate);
      if (ok === null) return 1;
      if (!ok) lossy = rate;
    }
    for (let k = 0; k < PACED_REFINE && lossless > 0 && lossy > 0; k++) {
      const mid = Math.floor(Math.sqrt(lossless * lossy));
      if (mid <= lossless || mid >= lossy) break;
      const ok = await tryRate(mid);
      if (ok === null) return 1;
      if (!ok) lossy = mid;
    }
  }
  const paced = !vale ? '' : lossless > 0
    ? `; paced: lossless at -R ${pps(lossless)} (rx ${pps(losslessRx)})`
    : `; paced: no lossless rate found in ${tries} tries (the receiver was stopped longer than its ring lasts: other threads, V8's compiler threads among them, took its CPU for whole time slices; a receiver at real-time priority, pkt-gen rx --rt as root, avoids most of it; see src/generator/README.md)`;
  out(`\ndemo: unpaced maximum tx ${pps(u.txPps)}, rx ${pps(u.rxPps)} over ${first.medium} (${pct(u.drops, u.sent)} dropped)${paced}; ` +
    `every run: sent = received + dropped: ${consistent ? 'consistent' : 'INCONSISTENT'}\n`);
  return consistent ? 0 : 1;
}
