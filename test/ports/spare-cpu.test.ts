/**
 * spare-cpu.ts: poll() spins before sleeping only while the machine has a CPU to spare (no more
 * runnable threads than CPUs, from /proc/loadavg). With more busy threads than CPUs started here,
 * the answer must be no.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { spareCpu } from '../../src/ports/spare-cpu.js';
import * as native from '../../src/native/index.js';

const skip = fs.existsSync('/proc/loadavg') ? false : 'no /proc/loadavg';

test('spareCpu: no while more threads than CPUs are busy', { skip, timeout: 20_000 }, async () => {
  const n = os.cpus().length + 1;
  const stop = new Int32Array(new SharedArrayBuffer(4));
  // each worker spins until told to stop (bounded: at most 5 s)
  const src = `const { workerData: s } = require('node:worker_threads'); const t = Date.now();
    while (Atomics.load(s, 0) === 0 && Date.now() - t < 5000) {}`;
  const workers = Array.from({ length: n }, () => new Worker(src, { eval: true, workerData: stop }));
  try {
    await new Promise((r) => setTimeout(r, 300)); // the workers are up and spinning
    let answers = 0, no = 0;
    for (let i = 0; i < 20; i++) {
      native.readClock();
      // a reading stays valid 4 ms: ask past that each time
      if (!spareCpu(native.clock[0]! + 1000 * (i + 1))) no++;
      answers++;
    }
    // a worker may be off its CPU for a moment (another job, the VM): most readings say no
    assert.ok(no >= answers * 0.7, `with ${n} busy threads on ${os.cpus().length} CPUs, ${no} of ${answers} readings said no spare CPU`);
  } finally {
    Atomics.store(stop, 0, 1);
    await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
  }
});
