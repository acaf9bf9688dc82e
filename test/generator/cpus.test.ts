/**
 * pkt-gen counts the machine's CPUs even where it cannot read /proc/cpuinfo: on the development
 * VM a non-root user gets an empty os.cpus(), and `pkt-gen -a 1` failed with "this machine has
 * CPUs 0..-1" (its start line said "0 cpus"). Run as uid 65534 from a world-readable copy of the
 * library (the checkout may lie in a private folder).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { skipReason } from '../helpers/netns.js';
import { stageLibrary } from '../helpers/staged.js';

const skip = typeof process.getuid === 'function' && process.getuid() !== 0 ? 'needs root (to run a child as another user)' : skipReason(['setpriv']);

test('pkt-gen as an unprivileged user: the CPU count and -a work without /proc/cpuinfo', { skip: skip ?? false }, () => {
  const cpus = os.cpus().length; // root reads it
  const cpu = cpus >= 2 ? 1 : 0;
  const dir = `/tmp/nmts-cpus-${process.pid}`;
  const staged = stageLibrary();
  try {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, staged.module('tools/cli.js'),
      'pkt-gen', '-f', 'tx', '-i', 'valecpu:a', '-n', '1000', '-a', String(cpu), '--json', '-T', '0'],
    { env: { ...process.env, NETMAP_TS_DIR: dir }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const start = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"type":"start"')) ?? '{}') as { cpus?: number };
    assert.equal(start.cpus, cpus, `the start line's CPU count (the machine has ${cpus})`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    staged.remove();
  }
});
