/** Helpers for pkt-gen tests: a fresh NETMAP_TS_DIR per test, bounded child processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/tools/cli.js', import.meta.url));

let counter = 0;
/** A fresh shared-memory directory under /dev/shm; remove it with removeDir. */
export function freshDir(tag: string): string {
  const dir = path.join('/dev/shm', `nmts-pg-${process.pid}-${tag}-${counter++}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export interface Done { code: number | null; signal: string | null; stdout: string; stderr: string }

export interface Running {
  proc: ChildProcess;
  done: Promise<Done>;
  /** Resolves once the child printed `text` on stdout (or, with `stream: 'stderr'`, on stderr); rejects when it exits first. */
  waitFor(text: string, stream?: 'stdout' | 'stderr'): Promise<void>;
}

/** Starts `netmap pkt-gen ...` (or another tool), killed with SIGKILL after `timeoutMs`. */
export function start(args: string[], dir: string, timeoutMs = 20_000): Running {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NETMAP_TS_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  const waiters: { text: string; stream: 'stdout' | 'stderr'; resolve: () => void; reject: (e: Error) => void }[] = [];
  const wake = (): void => {
    for (const w of waiters.slice()) {
      if ((w.stream === 'stdout' ? stdout : stderr).includes(w.text)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
    }
  };
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); wake(); });
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); wake(); });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const done = new Promise<Done>((resolve) => {
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const w of waiters) w.reject(new Error(`process exited (${signal ?? code}) before printing '${w.text}': ${stderr}`));
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    proc, done,
    waitFor(text: string, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
      if ((stream === 'stdout' ? stdout : stderr).includes(text)) return Promise.resolve();
      return new Promise((resolve, reject) => waiters.push({ text, stream, resolve, reject }));
    },
  };
}

/** Runs to completion. */
export function run(args: string[], dir: string, timeoutMs = 20_000): Promise<Done> {
  return start(args, dir, timeoutMs).done;
}

/** The last JSON object of type `type` in a --json output. */
export function jsonOf(stdout: string, type = 'summary'): Record<string, number | string> {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    const o = JSON.parse(lines[i]!) as Record<string, number | string>;
    if (o.type === type) return o;
  }
  throw new Error(`no ${type} object in output:\n${stdout}`);
}
