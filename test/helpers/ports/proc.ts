/** Starting helper processes and threads from the ports, rings, pipes and memory tests, and reading their reports. */
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const childJs = fileURLToPath(new URL('./child.js', import.meta.url));
const workerJs = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface Helper {
  /** Next report matching `pred`, within `timeoutMs`. */
  next(pred?: (o: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited(timeoutMs?: number): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  pid: number;
}

class Reports {
  private queue: Array<Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];
  push(o: Record<string, unknown>): void {
    this.queue.push(o);
    for (const w of this.waiters.splice(0)) w();
  }
  async next(pred: (o: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a report from ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }
}

export function spawnHelper(args: string[], env: NodeJS.ProcessEnv = process.env): Helper {
  const child: ChildProcess = spawn(process.execPath, [childJs, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const reports = new Reports();
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try { reports.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not a report */ }
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig !== null ? -1 : null))));
  return {
    pid: child.pid!,
    next: (pred = () => true, timeoutMs = 15000) => reports.next(pred, timeoutMs, `child ${args.join(' ')}${stderr ? ` (stderr: ${stderr})` : ''}`),
    exited: (timeoutMs = 15000) => Promise.race([exit, new Promise<number | null>((_, reject) => setTimeout(() => reject(new Error(`child ${args.join(' ')} did not exit; stderr: ${stderr}`)), timeoutMs).unref())]),
    kill: (signal = 'SIGKILL') => { child.kill(signal); },
  };
}

export function startWorker(args: string[]): Helper {
  const w = new Worker(workerJs, { workerData: args, env: process.env });
  const reports = new Reports();
  w.on('message', (o: Record<string, unknown>) => reports.push(o));
  w.on('error', (e) => reports.push({ error: String(e) }));
  const exit = new Promise<number | null>((resolve) => w.on('exit', (code) => resolve(code)));
  return {
    pid: process.pid,
    next: (pred = () => true, timeoutMs = 15000) => reports.next((o) => o.error !== undefined || pred(o), timeoutMs, `worker ${args.join(' ')}`).then((o) => {
      if (o.error !== undefined) throw new Error(`worker failed: ${String(o.error)}`);
      return o;
    }),
    exited: (timeoutMs = 15000) => Promise.race([exit, new Promise<number | null>((_, reject) => setTimeout(() => reject(new Error('worker did not exit')), timeoutMs).unref())]),
    kill: () => { void w.terminate(); },
  };
}
