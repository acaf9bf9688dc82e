/**
 * Control of a firewall: the `ipfw` command applied to a firewall's store, and the Unix socket a
 * kipfw daemon serves it on.
 *
 * Every change goes the same way, whoever makes it: take the store's lock, read the published
 * configuration, run the command on it (commands.ts, pure), publish the result if it changed.
 * A kipfw daemon does this for requests on its socket (it also owns dummynet, whose packets and
 * counters live in its process). A firewall plugged into a VALE switch has no daemon: the `ipfw`
 * tool applies commands to its store directly.
 *
 * The socket is `<shm dir>/ipfw-<NAME>.sock`, mode 0600. Protocol: one JSON object per line each
 * way. Request `{"argv": [...]}` (an ipfw command line after `ipfw`) or `{"file": "text"}` (a
 * rules file, all-or-nothing); reply `{"status": N, "stdout": "...", "stderr": "..."}`. A request
 * longer than CONTROL_REQUEST_MAX, or not JSON, gets status 64 and an error; it never stops the
 * daemon.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fail, NetmapError } from '../errors.js';
import { shmDirectory } from '../memory/space.js';
import { checkStoreName } from './store.js';

export const CONTROL_REQUEST_MAX = 64 << 20;
/** How long a client waits for a daemon's answer. */
export const CONTROL_TIMEOUT_MS = 30000;
/** sysexits.h EX_USAGE / EX_OSERR. */
const EX_USAGE = 64, EX_OSERR = 71;

export interface ControlReply { status: number; stdout: string; stderr: string }
export type ControlRequest = { argv: string[] } | { file: string };

export function socketPath(name: string): string {
  checkStoreName(name);
  return path.join(shmDirectory(), `ipfw-${name}.sock`);
}

/** Parses and checks one request line; throws NetmapError EINVAL on anything malformed. */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    fail('EINVAL', 'control request is not JSON');
  }
  if (v === null || typeof v !== 'object') fail('EINVAL', 'control request is not an object');
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.argv)) {
    if (o.argv.length > 100000 || !o.argv.every((a) => typeof a === 'string')) fail('EINVAL', 'argv must be an array of strings');
    return { argv: o.argv as string[] };
  }
  if (typeof o.file === 'string') return { file: o.file };
  fail('EINVAL', 'control request needs "argv" (array of strings) or "file" (string)');
}

/**
 * Serves `handle` on the firewall's socket. A stale socket file (no daemon answers) is replaced;
 * a live one means another daemon has the name: EBUSY.
 */
export async function serveControl(name: string, handle: (req: ControlRequest) => ControlReply): Promise<net.Server> {
  const file = socketPath(name);
  if (fs.existsSync(file)) {
    if (await answers(file)) fail('EBUSY', `a firewall daemon named '${name}' is already running (${file}); pick another name with -s`);
    fs.unlinkSync(file);
  }
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => { /* a client that went away */ });
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > CONTROL_REQUEST_MAX) {
        conn.end(JSON.stringify({ status: EX_USAGE, stdout: '', stderr: `ipfw: request longer than ${CONTROL_REQUEST_MAX} bytes\n` }) + '\n');
        buf = '';
        return;
      }
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let reply: ControlReply;
        try {
          reply = handle(parseRequest(line));
        } catch (e) {
          const msg = e instanceof NetmapError ? e.message : `internal error: ${(e as Error).message}`;
          reply = { status: e instanceof NetmapError && e.code === 'EINVAL' ? EX_USAGE : EX_OSERR, stdout: '', stderr: `ipfw: ${msg}\n` };
        }
        if (!conn.destroyed) conn.write(JSON.stringify(reply) + '\n');
      }
    });
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => { server.removeListener('error', reject); resolve(); });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(file, 0o600);
  server.on('error', () => { /* keep serving */ });
  return server;
}

/** Whether a daemon answers on socket `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(file);
    const done = (v: boolean): void => { c.destroy(); resolve(v); };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    setTimeout(() => done(false), 1000).unref();
  });
}

/** Whether a daemon serves firewall `name` (its socket answers). */
export function daemonRunning(name: string): Promise<boolean> {
  const file = socketPath(name);
  if (!fs.existsSync(file)) return Promise.resolve(false);
  return answers(file);
}

/** Sends one request to the daemon of firewall `name` and returns its reply. */
export function sendControl(name: string, req: ControlRequest, timeoutMs = CONTROL_TIMEOUT_MS): Promise<ControlReply> {
  const file = socketPath(name);
  return new Promise((resolve, reject) => {
    const c = net.connect(file);
    let buf = '';
    const timer = setTimeout(() => { c.destroy(); reject(new NetmapError('ETIMEDOUT', `firewall daemon '${name}' did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      c.end();
      try {
        const r = JSON.parse(buf.slice(0, nl)) as ControlReply;
        resolve({ status: Number(r.status) | 0, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') });
      } catch {
        reject(new NetmapError('EPROTO', `firewall daemon '${name}' sent a malformed reply`));
      }
    });
    c.once('error', (e) => {
      clearTimeout(timer);
      reject(new NetmapError('ENXIO', `cannot reach firewall daemon '${name}' at ${file}: ${e.message}`));
    });
  });
}
