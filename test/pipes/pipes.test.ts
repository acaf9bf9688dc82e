/**
 * Pipes and ports: names, shared and exclusive opens, 64 pipes per parent, several rings, one end
 * opened before the other, extra buffers; between worker threads and between processes.
 */
import { dir, shmFiles } from '../helpers/ports/env.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openPort, NetmapError, POLLIN, POLLOUT, layout as L, openHandleCount, type Port } from '../helpers/ports/lib.js';
import { registry } from '../../src/memory/registry.js';
import { spawnHelper, startWorker } from '../helpers/ports/proc.js';
import { sendPackets, receivePackets } from '../helpers/ports/roles.js';

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NetmapError, `a NetmapError, not ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

test('NAME{N is the master, NAME}N the slave: crossed rings, both created by the first open', () => {
  const m = openPort('netmap:cx{3');
  const reg = registry();
  assert.ok(reg.findPort('cx{3') >= 0);
  assert.ok(reg.findPort('cx}3') >= 0, 'the peer exists before anyone opens it');
  const s = openPort('netmap:cx}3');
  assert.equal(m.name, 'cx{3');
  assert.equal(s.name, 'cx}3');
  assert.equal(m.memId, s.memId, 'both ends share the parent\'s memory');
  // master -> slave and slave -> master
  for (const [a, b] of [[m, s], [s, m]] as const) {
    assert.equal(sendPackets(a, 100, 16, 5000), 100);
    const r = receivePackets(b, 100, 5000);
    assert.deepEqual(r, { got: 100, errors: 0 });
  }
  m.close();
  s.close();
});

test('one end may be opened (and used) before the other', () => {
  const m = openPort('netmap:early{1@conf:slots=64');
  assert.equal(sendPackets(m, 40, 8, 2000), 40);
  assert.equal(m.pollOnce(POLLIN) & POLLIN, 0, 'nothing to receive yet');
  const s = openPort('netmap:early}1');
  assert.deepEqual(receivePackets(s, 40, 2000), { got: 40, errors: 0 });
  m.close();
  s.close();
});

test('closing one end keeps the pair; both go (with their memory) when neither is open', () => {
  const before = shmFiles();
  const m = openPort('netmap:keep{1');
  const s = openPort('netmap:keep}1');
  assert.equal(shmFiles().length, before.length + 1, 'a region file for the parent');
  assert.equal(sendPackets(m, 10, 10, 2000), 10);
  s.close();
  const s2 = openPort('netmap:keep}1');
  assert.deepEqual(receivePackets(s2, 10, 2000), { got: 10, errors: 0 }, 're-opened end finds its state');
  m.close();
  s2.close();
  assert.equal(registry().findPort('keep{1'), -1);
  assert.equal(registry().findPort('keep}1'), -1);
  assert.equal(registry().findPort('keep'), -1, 'the auto-created parent is gone too');
  assert.deepEqual(shmFiles(), before, 'the region file is removed');
});

test('opening a port several times shares its rings; /x gives exclusive use', () => {
  const a = openPort('netmap:sh{1');
  const b = openPort('netmap:sh{1');
  assert.equal(a.txRings[0]!.offset, b.txRings[0]!.offset, 'same rings');
  assert.notEqual(a.nifp, b.nifp, 'each handle has its own netmap_if');
  assert.equal(code(() => openPort('netmap:sh{1/x')), 'EBUSY');
  a.close();
  b.close();
  const x = openPort('netmap:sh2{1/x');
  assert.equal(x.exclusive, true);
  assert.equal(code(() => openPort('netmap:sh2{1')), 'EBUSY');
  assert.equal(code(() => openPort('netmap:sh2{1/x')), 'EBUSY');
  x.close();
  const again = openPort('netmap:sh2{1');
  again.close();
});

test('several rings per direction via @conf; -N binds one ring', () => {
  const m = openPort('netmap:mr{1@conf:rings=4,slots=32');
  assert.equal(m.txRings.length, 4);
  assert.equal(m.rxRings.length, 4);
  assert.equal(m.numTxRings, 4);
  const s = openPort('netmap:mr}1');
  const s2 = openPort('netmap:mr}1-2');
  assert.equal(s2.rxRings.length, 1);
  assert.equal(s2.rxRings[0]!.id, 2);
  // one packet on each master TX ring k arrives on slave RX ring k
  for (let k = 0; k < 4; k++) {
    const tx = m.txRings[k]!;
    tx.setSlotLen(tx.head, 60 + k);
    tx.advance(tx.next(tx.head));
  }
  m.txsync();
  s.rxsync();
  for (let k = 0; k < 4; k++) {
    const rx = s.rxRings[k]!;
    assert.equal(rx.space(), 1);
    assert.equal(rx.slotLen(rx.head), 60 + k);
  }
  assert.equal(code(() => openPort('netmap:mr}1-7')), 'EINVAL');
  assert.equal(code(() => openPort('netmap:mr}1^')), 'EINVAL', 'pipes have no host rings');
  assert.equal(code(() => openPort('netmap:q{1@conf:rings=300')), 'EINVAL');
  for (const p of [m, s, s2]) p.close();
});

test('up to 64 pipes per parent; the 65th is EINVAL', () => {
  const ports = [];
  for (let i = 0; i < 64; i++) ports.push(openPort(`netmap:many{${i}@conf:slots=512`));
  assert.equal(code(() => openPort('netmap:many{64@conf:slots=512')), 'EINVAL');
  for (const p of ports) p.close();
  assert.equal(registry().findPort('many'), -1);
  // after they are gone a new one works again; with default 1024-slot rings a memory-only parent
  // has room for 32 pipes, then ENOMEM (a clean error)
  const big: Port[] = [];
  let err = 'no error';
  for (let i = 0; i < 64 && err === 'no error'; i++) err = code(() => big.push(openPort(`netmap:many{${i}`)));
  assert.ok(big.length >= 32, `${big.length} default pipes fit`);
  assert.ok(err === 'ENOMEM' || big.length === 64, `then ${err}`);
  for (const p of big) p.close();
});

test('bad names give clean errors, never a crash', () => {
  for (const bad of ['', 'netmap:', 'netmap:a{', 'netmap:a{1{2', 'vale', 'netmap:a}1@conf:slots=1', 'netmap:a{1*', 'netmap:' + 'x'.repeat(80) + '{1']) {
    const c = code(() => openPort(bad));
    assert.ok(c !== 'no error', `'${bad}' is refused`);
  }
  assert.equal(code(() => openPort(42 as unknown as string)), 'EINVAL');
  assert.equal(code(() => openPort('netmap:nosuchif0')), 'ENXIO');
  assert.equal(openHandleCount(), 0);
});

test('extra buffers: a list through the first 4 bytes of each buffer, count reported, freed at close', () => {
  const keep = openPort('netmap:xb{1');
  const reg = registry();
  const region = reg.region(keep.memId);
  const free0 = region.freeBuffers();
  const p = openPort('netmap:xb}1', { extraBuffers: 20 });
  assert.equal(p.extraBuffers, 20);
  assert.equal(region.freeBuffers(), free0 - 20);
  const seen = new Set<number>();
  for (let idx = p.bufsHead; idx !== 0; idx = p.mem.u32[p.bufOffset(idx) >>> 2]!) {
    assert.ok(idx >= 2 && idx < region.numBufs);
    assert.ok(!seen.has(idx));
    assert.ok(!region.isFree(idx));
    seen.add(idx);
  }
  assert.equal(seen.size, 20);
  // the name form, and a handle without any
  const q = openPort('netmap:xb}1@conf:extra-bufs=3');
  assert.equal(q.extraBuffers, 3);
  const none = openPort('netmap:xb}1');
  assert.equal(none.extraBuffers, 0);
  assert.equal(none.bufsHead, 0);
  // whatever the list holds at close is freed: drop 5 from the list, they stay allocated
  let idx = p.bufsHead;
  for (let k = 0; k < 5; k++) idx = p.mem.u32[p.bufOffset(idx) >>> 2]!;
  p.bufsHead = idx;
  p.close();
  assert.equal(region.freeBuffers(), free0 - 3 - 5);
  q.close();
  none.close();
  assert.equal(region.freeBuffers(), free0 - 5);
  // more than the pool has: fewer are granted, no error
  const greedy = openPort('netmap:xb}1', { extraBuffers: 10_000_000 });
  assert.ok(greedy.extraBuffers > 0 && greedy.extraBuffers < region.numBufs);
  assert.equal(region.freeBuffers(), 0);
  greedy.close();
  keep.close();
});

test('pipe between two worker threads: blocking poll, no loss, order kept', async () => {
  const rx = startWorker(['recv', 'netmap:wt}1', '20000']);
  await rx.next((o) => o.ready === true);
  const tx = startWorker(['send', 'netmap:wt{1', '20000', '64']);
  const r = await rx.next((o) => o.got !== undefined, 20000);
  assert.deepEqual(r, { got: 20000, errors: 0 });
  assert.deepEqual(await tx.next((o) => o.sent !== undefined), { sent: 20000 });
  await Promise.all([rx.exited(), tx.exited()]);
});

test('pipe between two processes, sender started first; a full ring stops the sender, never drops', async () => {
  // 64-slot ring, 20000 packets: the sender fills the ring long before the receiver exists.
  const tx = spawnHelper(['send', 'netmap:pp{1@conf:slots=64', '20000', '256']);
  await tx.next((o) => o.ready === true);
  await new Promise((r) => setTimeout(r, 200));
  const rx = spawnHelper(['recv', 'netmap:pp}1', '20000']);
  assert.deepEqual(await rx.next((o) => o.got !== undefined, 20000), { got: 20000, errors: 0 });
  assert.deepEqual(await tx.next((o) => o.sent !== undefined), { sent: 20000 });
  assert.equal(await tx.exited(), 0);
  assert.equal(await rx.exited(), 0);
  registry().collectGarbage();
  assert.equal(registry().findPort('pp{1'), -1, 'the pipe went with its last user');
});

test('a process and a thread of another process share a pipe, in both directions at once', async () => {
  const a = spawnHelper(['send', 'netmap:bd{1', '5000', '32']);
  const b = startWorker(['send', 'netmap:bd}1', '5000', '32']);
  const ra = spawnHelper(['recv', 'netmap:bd}1', '5000']);
  const rb = startWorker(['recv', 'netmap:bd{1', '5000']);
  assert.deepEqual(await ra.next((o) => o.got !== undefined, 20000), { got: 5000, errors: 0 });
  assert.deepEqual(await rb.next((o) => o.got !== undefined, 20000), { got: 5000, errors: 0 });
  await Promise.all([a.exited(), b.exited(), ra.exited(), rb.exited()]);
});

test('a blocking poll sleeps in the kernel: an idle 500 ms poll uses almost no CPU', async () => {
  const keep = openPort('netmap:idle{1');
  const c = spawnHelper(['idle-poll', 'netmap:idle}1', '500']);
  const r = await c.next((o) => o.cpuMs !== undefined);
  assert.equal(r.revents, 0);
  assert.ok((r.elapsed as number) >= 490, `slept ${String(r.elapsed)} ms`);
  assert.ok((r.cpuMs as number) < 60, `used ${String(r.cpuMs)} ms of CPU while idle`);
  await c.exited();
  keep.close();
  void L;
  void POLLOUT;
});

test('every pipe of a memory-only parent gets the default 1024 slots, not the parent\'s', () => {
  const a = openPort('netmap:geo{1'), b = openPort('netmap:geo{2'), c = openPort('netmap:geo{3@conf:slots=100');
  assert.equal(a.txRings[0]!.numSlots, 1024);
  assert.equal(b.txRings[0]!.numSlots, 1024);
  assert.equal(c.txRings[0]!.numSlots, 100);
  for (const p of [a, b, c]) p.close();
});

test('poll with nothing to watch (POLLOUT on an RX-only binding) sleeps instead of spinning', () => {
  const p = openPort('netmap:rxonly}1/R');
  assert.equal(p.txRings.length, 0);
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  assert.equal(p.poll(POLLOUT, 200), 0);
  const cpu = process.cpuUsage(c0);
  assert.ok(Date.now() - t0 >= 195);
  assert.ok((cpu.user + cpu.system) / 1000 < 60, `used ${(cpu.user + cpu.system) / 1000} ms of CPU`);
  p.close();
});
