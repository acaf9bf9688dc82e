/**
 * The event-loop API: waitPort / port.wait / portEvents never block the main thread, wake promptly
 * on packets from other processes and threads, time out, and keep the process alive only while
 * waits are pending.
 */
import { dir } from '../helpers/ports/env.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openPort, waitPort, portEvents, pendingWaits, POLLIN, POLLOUT, POLLERR, NetmapError, layout as L } from '../helpers/ports/lib.js';
import type { Port } from '../../src/ports/port.js';
import { spawnHelper, startWorker } from '../helpers/ports/proc.js';

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function sendOne(p: Port, len = 60): void {
  const tx = p.txRings[0]!;
  tx.setSlotLen(tx.head, len);
  tx.advance(tx.next(tx.head));
  p.txsync();
}

test('ready at once, timeout 0, timeouts, bad arguments', async () => {
  const m = openPort('netmap:ev{1'), s = openPort('netmap:ev}1');
  assert.equal(await waitPort(s, POLLIN, 0), 0);
  assert.equal(await m.wait(POLLOUT, 0) & POLLOUT, POLLOUT, 'an empty TX ring is writable');
  const t0 = Date.now();
  assert.equal(await s.wait(POLLIN, 120), 0);
  const took = Date.now() - t0;
  assert.ok(took >= 115 && took < 1000, `timed out after ${took} ms`);
  sendOne(m);
  assert.equal(await s.wait(POLLIN, 1000), POLLIN);
  await assert.rejects(waitPort(s, 0, 10), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  await assert.rejects(waitPort(s, 0x100, 10), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  await assert.rejects(waitPort(s, POLLIN, Number.NaN), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  m.close(); s.close();
  assert.equal(pendingWaits(), 0);
});

test('the main thread stays responsive while waiting, and a packet from another thread wakes the wait', async () => {
  const s = openPort('netmap:resp}1');
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 10);
  const w = startWorker(['send-one', 'netmap:resp{1', '400']);
  await w.next((o) => o.ready === true);
  const ticks0 = ticks;
  const revents = await s.wait(POLLIN, 5000);
  const wokeAt = Date.now();
  clearInterval(iv);
  const { sentAt } = await w.next((o) => o.sentAt !== undefined);
  assert.equal(revents, POLLIN);
  assert.ok(ticks - ticks0 >= 8, `the event loop ticked ${ticks - ticks0} times during a ~400 ms wait`);
  assert.ok(wokeAt - (sentAt as number) < 250, `woke ${wokeAt - (sentAt as number)} ms after the send`);
  await w.exited();
  s.close();
});

test('a packet sent from another process wakes the wait promptly', async () => {
  const s = openPort('netmap:xproc}1');
  const c = spawnHelper(['send-one', 'netmap:xproc{1', '300']);
  await c.next((o) => o.ready === true);
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 10);
  const revents = await s.wait(POLLIN, 5000);
  const wokeAt = Date.now();
  clearInterval(iv);
  const { sentAt } = await c.next((o) => o.sentAt !== undefined);
  assert.equal(revents, POLLIN);
  assert.ok(ticks >= 5, `the event loop ticked ${ticks} times`);
  assert.ok(wokeAt - (sentAt as number) < 250, `woke ${wokeAt - (sentAt as number)} ms after the send`);
  assert.equal(s.rxRings[0]!.space(), 1);
  await c.exited();
  s.close();
});

test('POLLOUT: a full pipe wakes its sender when the receiver frees slots', async () => {
  const m = openPort('netmap:evfull{1@conf:slots=4'), s = openPort('netmap:evfull}1');
  for (let k = 0; k < 3; k++) sendOne(m);
  assert.equal(m.txRings[0]!.space(), 0);
  const p = m.wait(POLLOUT, 5000);
  setTimeout(() => { s.rxsync(); s.rxRings[0]!.advance(2); s.rxsync(); }, 50);
  assert.equal((await p) & POLLOUT, POLLOUT);
  assert.equal(m.txRings[0]!.space(), 2);
  m.close(); s.close();
});

test('many waits on many ports at once; each resolves on its own packet', async () => {
  const pairs = Array.from({ length: 12 }, (_, k) => [openPort(`netmap:many${k}{1`), openPort(`netmap:many${k}}1`)] as const);
  const waits = pairs.map(([, s]) => s.wait(POLLIN, 5000));
  const two = pairs.map(([, s]) => s.wait(POLLIN, 5000)); // two waiters on one port
  assert.equal(pendingWaits(), 24);
  for (let k = pairs.length - 1; k >= 0; k--) {
    await new Promise((r) => setTimeout(r, 5));
    sendOne(pairs[k]![0]);
  }
  assert.deepEqual(await Promise.all(waits), pairs.map(() => POLLIN));
  assert.deepEqual(await Promise.all(two), pairs.map(() => POLLIN));
  assert.equal(pendingWaits(), 0);
  await new Promise((r) => setTimeout(r, 20));
  for (const [m, s] of pairs) {
    for (const r of [...m.txRings, ...m.rxRings, ...s.txRings, ...s.rxRings]) {
      assert.equal(s.mem.i32[(r.offset + L.KR_WAITERS) >>> 2], 0, 'no waiter left announced on a ring');
    }
  }
  for (const [m, s] of pairs) { m.close(); s.close(); }
});

test('closing a port while it is waited on resolves the wait with POLLERR; abort rejects', async () => {
  const m = openPort('netmap:evc{1'), s = openPort('netmap:evc}1');
  const p = s.wait(POLLIN, -1);
  setTimeout(() => s.close(), 30);
  assert.equal(await p, POLLERR);
  const ac = new AbortController();
  const q = m.wait(POLLIN, -1, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('stop')), 30);
  await assert.rejects(q, /stop/);
  assert.equal(pendingWaits(), 0);
  m.close();
});

test('portEvents: an async iterator of readiness, ends when the port closes', async () => {
  const m = openPort('netmap:it{1'), s = openPort('netmap:it}1');
  const rx = s.rxRings[0]!;
  let got = 0;
  const producer = (async () => {
    for (let k = 0; k < 20; k++) {
      await new Promise((r) => setTimeout(r, 2));
      sendOne(m, 60 + k);
    }
  })();
  for await (const ev of s.events(POLLIN)) {
    assert.equal(ev & POLLIN, POLLIN);
    while (!rx.empty()) {
      assert.equal(rx.slotLen(rx.head), 60 + got);
      got++;
      rx.advance(rx.next(rx.head));
    }
    if (got === 20) s.close();
  }
  await producer;
  assert.equal(got, 20);
  // also the function form
  const it = portEvents(m, POLLOUT);
  assert.equal(((await it.next()).value as number) & POLLOUT, POLLOUT);
  m.close();
  assert.equal((await it.next()).done, true);
});

test('the waiter keeps the process alive only while waits are pending', async () => {
  // resolved waits and open ports do not keep a process alive
  const a = spawnHelper(['wait-then-exit', 'netmap:alive}1', '100']);
  const r = await a.next((o) => o.revents !== undefined);
  assert.equal(r.revents, 0);
  const t0 = Date.now();
  assert.equal(await a.exited(5000), 0);
  assert.ok(Date.now() - t0 < 3000, 'the child exited soon after its wait resolved');
  // a pending wait without timeout does keep it alive, until a packet comes
  const b = spawnHelper(['wait-pending', 'netmap:alive2}1']);
  await b.next((o) => o.ready === true);
  await new Promise((res) => setTimeout(res, 400));
  const m = openPort('netmap:alive2{1');
  sendOne(m);
  const done = await b.next((o) => o.revents !== undefined, 5000);
  assert.equal(done.revents, POLLIN);
  assert.equal(await b.exited(5000), 0);
  m.close();
  // a wait the waiter found ready at its first look: its thread, made but never used, does not
  // keep the process alive either (it did, when its listener was added after unref())
  const c = spawnHelper(['ready-when-armed', 'netmap:alive3}1', 'netmap:alive3{1']);
  try {
    const rc = await c.next((o) => o.revents !== undefined);
    assert.equal(rc.revents, POLLIN);
    assert.equal(await c.exited(5000), 0);
  } finally {
    c.kill();
  }
});
