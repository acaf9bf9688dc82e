/**
 * src/native/threads.ts: descriptors closed at once on native threads, libc calls run on a native
 * thread, every thread joined, and the same results without threads (NETMAP_TS_THREADS=0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as native from '../../src/native/index.js';
import { startCall, closeConcurrently, threadStats } from '../../src/native/threads.js';

/** Whether descriptor `fd` is open in this process. */
function isOpen(fd: number): boolean {
  return fs.existsSync(`/proc/self/fd/${fd}`);
}

function threadCount(): number {
  return Number(/Threads:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);
}

test('closeConcurrently closes every descriptor, on threads that are all joined', () => {
  const fds = Array.from({ length: 6 }, () => native.openFile('/dev/null', native.O_RDONLY));
  for (const fd of fds) assert.ok(isOpen(fd));
  const before = { ...threadStats };
  closeConcurrently([...fds, -1, 0]);
  for (const fd of fds) assert.equal(isOpen(fd), false, `descriptor ${fd} is closed`);
  assert.equal(threadStats.started - before.started, 5, 'all but the last on a thread of its own');
  assert.equal(threadStats.joined - before.joined, 5, 'every thread joined');
  closeConcurrently([]);
});

test('calls on threads run at the same time; their memory arguments are the caller\'s', () => {
  const sleeps = 4, us = 150_000;
  const t0 = performance.now();
  const calls = Array.from({ length: sleeps }, () => startCall('usleep', [us], () => { throw new Error('ran inline'); }));
  assert.ok(calls.every((c) => c.threaded));
  for (const c of calls) c.join();
  const ms = performance.now() - t0;
  // one after another they would take 600 ms; at the same time a little over 150
  assert.ok(ms >= 145 && ms < 450, `4 sleeps of 150 ms on threads took ${ms.toFixed(0)} ms`);
  const b = Buffer.alloc(16);
  const c = startCall('memset', [b, 0x41, 10], () => {});
  c.join();
  c.join(); // idempotent
  assert.equal(b.toString('latin1', 0, 11), 'AAAAAAAAAA\0');
});

test('thousands of threads started and joined leave no thread behind', () => {
  const before = threadCount();
  for (let i = 0; i < 2000; i++) startCall('usleep', [1], () => {}).join();
  const fds = Array.from({ length: 200 }, () => native.openFile('/dev/null', native.O_RDONLY));
  closeConcurrently(fds);
  assert.equal(threadCount(), before);
});

test('NETMAP_TS_THREADS=0: the same work in the calling thread', () => {
  process.env.NETMAP_TS_THREADS = '0';
  try {
    const before = { ...threadStats };
    let ran = false;
    const c = startCall('usleep', [1], () => { ran = true; });
    assert.equal(c.threaded, false);
    assert.ok(ran, 'the inline version ran');
    const fds = Array.from({ length: 3 }, () => native.openFile('/dev/null', native.O_RDONLY));
    closeConcurrently(fds);
    for (const fd of fds) assert.equal(isOpen(fd), false);
    assert.equal(threadStats.started, before.started, 'no thread was made');
  } finally {
    delete process.env.NETMAP_TS_THREADS;
  }
});
