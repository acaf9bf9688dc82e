/**
 * What the firewall's tests share: starting a kipfw daemon in a lab namespace, running `netmap
 * ipfw` against it, and draining a port's RX rings. (Run on its own by `node --test`, this file
 * does nothing.)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { sleep, type Lab } from '../helpers/netns.js';
import type { Port } from '../../src/ports/port.js';

export const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;

export interface Daemon { child: ChildProcess; stderr(): string }

/** Starts `netmap kipfw -s NAME [extra] netmap:m0 netmap:m1` (or `ports`) in namespace `m` and waits for its control socket. */
export async function startKipfw(lab: Lab, m: string, name: string, extra: string[] = [], ports = ['netmap:m0', 'netmap:m1']): Promise<Daemon> {
  const child = lab.spawn(m, process.execPath, [CLI, 'kipfw', '-s', name, ...extra, ...ports]);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const sock = path.join(process.env.NETMAP_TS_DIR!, `ipfw-${name}.sock`);
  for (let i = 0; i < 200 && !fs.existsSync(sock); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  assert.ok(fs.existsSync(sock), `kipfw started: ${err}`);
  await sleep(300); // the interfaces' links come up
  return { child, stderr: () => err };
}

/** `netmap ipfw -s NAME ARGS...`. */
export function ipfw(name: string, ...args: string[]): { status: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, 'ipfw', '-s', name, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Like ipfw() but the command must succeed; returns its standard output. */
export function must(name: string, ...args: string[]): string {
  const r = ipfw(name, ...args);
  assert.equal(r.status, 0, `ipfw ${args.join(' ')}: ${r.err}`);
  return r.out;
}

/** Takes every frame waiting in the RX rings of `p`; returns how many. */
export function drain(p: Port): number {
  let n = 0;
  p.rxsync();
  for (const r of p.rxRings) { n += r.space(); r.advance(r.tail); }
  p.rxsync();
  return n;
}
