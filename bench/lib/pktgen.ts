/**
 * pkt-gen as a benchmark child process: started with --json, stopped with SIGINT, its summary
 * line parsed. Shared by bench/pktgen.ts and bench/firewall.ts (bench/run.ts runs only the
 * files directly in bench/, not this folder).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/tools/cli.js', import.meta.url));

export interface PktgenProc {
  child: ChildProcess;
  /** Resolves once pkt-gen said it started (its ports are open). */
  started: Promise<void>;
  /** Its summary line, once it ended. */
  done: Promise<Record<string, number | string>>;
  stop(): void;
}

/** Starts `netmap pkt-gen ARGS --json -T 0` in shared-memory directory `dir`; killed after `seconds` + 20 s at the latest. */
export function startPktgen(args: string[], dir: string, seconds: number): PktgenProc {
  const child = spawn(process.execPath, [CLI, 'pkt-gen', ...args, '--json', '-T', '0'], { env: { ...process.env, NETMAP_TS_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let onStart: () => void = () => {};
  const started = new Promise<void>((r) => { onStart = r; });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('"type":"start"')) onStart(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000);
  const done = new Promise<Record<string, number | string>>((resolve, reject) => child.on('close', (code) => {
    clearTimeout(killer);
    const line = out.split('\n').find((l) => l.includes('"type":"summary"'));
    if (code !== 0 || line === undefined) reject(new Error(`pkt-gen ${args.join(' ')} failed (${code}): ${err}`));
    else resolve(JSON.parse(line) as Record<string, number | string>);
  }));
  return { child, started, done, stop: () => child.kill('SIGINT') };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * pkt-gen `rxArgs` started first, then pkt-gen `txArgs` for `seconds`; the sender is stopped,
 * the receiver 300 ms later. Both summaries. `afterRx` runs once the receiver started, before
 * the sender (a watcher to start beside it: bench/monitor.ts).
 */
export async function runPair(txArgs: string[], rxArgs: string[], dir: string, seconds: number, afterRx?: () => Promise<void>): Promise<{ ts: Record<string, number | string>; rs: Record<string, number | string> }> {
  const r = startPktgen(rxArgs, dir, seconds);
  await r.started;
  if (afterRx !== undefined) await afterRx();
  const t = startPktgen(txArgs, dir, seconds);
  await t.started;
  await sleep(seconds * 1000);
  t.stop();
  const ts = await t.done;
  await sleep(300);
  r.stop();
  const rs = await r.done;
  return { ts, rs };
}
