/**
 * The dummynet mailbox of kipfw -p N (firewall/handoff.ts): a request the asker withdrew after
 * its timeout, answered late by a slow owner, must never be taken for the answer to the next
 * request. The owner is a worker thread that takes a request, sleeps past the asker's timeout,
 * answers, then serves the next request at once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-mbox-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { DnHandoff, removeHandoff } = await import('../../src/firewall/handoff.js');
const HANDOFF = new URL('../../src/firewall/handoff.js', import.meta.url).href;

// the owner: answers each request with what it asked, the first one 400 ms late
const OWNER = `
const { workerData, parentPort } = await import('node:worker_threads');
process.env.NETMAP_TS_DIR = workerData.dir;
const { DnHandoff } = await import(workerData.handoff);
const link = DnHandoff.open(workerData.name);
parentPort.postMessage('ready');
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const end = Date.now() + 10000;
for (let served = 0; served < 2 && Date.now() < end;) {
  const req = link.request();
  if (req === null) { Atomics.wait(sleeper, 0, 0, 2); continue; }
  if (served === 0) Atomics.wait(sleeper, 0, 0, 400);
  link.reply({ answer: req.q });
  served++;
}
link.close();
`;

test('mailbox: the late answer to a withdrawn request is dropped; the next request gets its own answer', async () => {
  const name = `mbox${process.pid}`;
  const link = DnHandoff.create(name, 2, 1);
  const w = new Worker(OWNER, { eval: true, workerData: { dir: process.env.NETMAP_TS_DIR, handoff: HANDOFF, name } });
  try {
    await new Promise<void>((resolve) => w.once('message', () => resolve()));
    assert.throws(() => link.ask({ q: 'first' }, 100), (e: unknown) => (e as { code?: string }).code === 'ETIMEDOUT');
    // asked while the owner still sleeps on 'first': its late reply must not be this answer
    const r = link.ask({ q: 'second' }, 5000) as { answer: string };
    assert.equal(r.answer, 'second');
    await new Promise<void>((resolve) => w.once('exit', () => resolve()));
  } finally {
    await w.terminate();
    link.close();
    removeHandoff(name);
  }
});
