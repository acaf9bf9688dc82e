/**
 * Robustness: processes and threads killed while holding ports or the registry lock do not wedge
 * the others; the memory of dead ports is reclaimed; a registry of another layout version is
 * refused with a clear error.
 */
import { dir, shmFiles } from '../helpers/ports/env.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openPort, NetmapError, layout as L } from '../helpers/ports/lib.js';
import { registry } from '../../src/memory/registry.js';
import { spawnHelper, startWorker } from '../helpers/ports/proc.js';
import { sendPackets, receivePackets } from '../helpers/ports/roles.js';

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a process SIGKILLed while holding a port exclusively: the port becomes free again', async () => {
  const keep = openPort('netmap:k1}1'); // the other end stays with us
  const c = spawnHelper(['hold', 'netmap:k1{1/x', '10']);
  await c.next((o) => o.ready === true);
  assert.throws(() => openPort('netmap:k1{1'), (e: unknown) => e instanceof NetmapError && e.code === 'EBUSY');
  c.kill('SIGKILL');
  // no waiting for the exit event: a killed, not yet reaped child (a zombie) counts as dead too
  const deadline = Date.now() + 5000;
  let p = null;
  while (p === null && Date.now() < deadline) {
    try { p = openPort('netmap:k1{1/x'); } catch (e) { assert.ok(e instanceof NetmapError && e.code === 'EBUSY'); }
  }
  assert.ok(p !== null, 'the exclusive port was released');
  // and it works: our end receives what the new holder sends
  assert.equal(sendPackets(p, 30, 30, 2000), 30);
  assert.deepEqual(receivePackets(keep, 30, 2000), { got: 30, errors: 0 });
  p.close();
  keep.close();
  await c.exited();
});

test('the memory of dead ports is reclaimed: region files go, extra buffers return', async () => {
  const before = shmFiles();
  const c = spawnHelper(['hold-both', 'netmap:dead']);
  await c.next((o) => o.ready === true);
  assert.equal(shmFiles().length, before.length + 1);
  assert.ok(registry().findPort('dead{1') >= 0);
  c.kill('SIGKILL');
  await c.exited();
  assert.ok(registry().collectGarbage() >= 2, 'both handles of the dead process released');
  assert.equal(registry().findPort('dead{1'), -1);
  assert.equal(registry().findPort('dead}1'), -1);
  assert.equal(registry().findPort('dead'), -1);
  assert.deepEqual(shmFiles(), before, 'the region file of the dead pipe is removed');
});

test('a dead process\'s handle on a shared port is released, the other users keep going', async () => {
  const m = openPort('netmap:half{1');
  const s = openPort('netmap:half}1', { extraBuffers: 10 });
  const region = registry().region(s.memId);
  const free0 = region.freeBuffers();
  const c = spawnHelper(['hold', 'netmap:half}1', '25']);
  const r = await c.next((o) => o.ready === true);
  assert.equal(r.extra, 25);
  assert.equal(region.freeBuffers(), free0 - 25);
  c.kill('SIGKILL');
  await c.exited();
  registry().collectGarbage();
  assert.equal(region.freeBuffers(), free0, 'the dead handle\'s extra buffers are back');
  assert.equal(registry().portGet(s.index, L.PE_USERS), 1);
  assert.equal(sendPackets(m, 100, 16, 2000), 100);
  assert.deepEqual(receivePackets(s, 100, 2000), { got: 100, errors: 0 });
  m.close();
  s.close();
});

test('a worker thread that ends while holding a port: its handle is collected', async () => {
  const w = startWorker(['hold', 'netmap:wk{1/x', '0']);
  await w.next((o) => o.ready === true);
  assert.throws(() => openPort('netmap:wk{1/x'), (e: unknown) => e instanceof NetmapError && e.code === 'EBUSY');
  w.kill();
  await w.exited();
  const p = openPort('netmap:wk{1/x');
  p.close();
});

test('a process SIGKILLed while holding the registry lock does not wedge the others', async () => {
  const c = spawnHelper(['lock']);
  await c.next((o) => o.locked === true);
  const lockWord = registry().word(L.REG_LOCK);
  assert.equal(Atomics.load(registry().sp.i32, lockWord), c.pid, 'the child holds the lock');
  c.kill('SIGKILL');
  const t0 = Date.now();
  const p = openPort('netmap:afterlock{1'); // takes the lock over from the dead owner
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  p.close();
  assert.equal(Atomics.load(registry().sp.i32, lockWord), 0);
  await c.exited();
  // and other processes too
  const d = spawnHelper(['open', 'netmap:afterlock2{1']);
  assert.deepEqual(await d.next(), { ok: true });
  await d.exited();
});

test('a registry of another layout version is refused while a process uses it, and reset once none does', async () => {
  const other = fs.mkdtempSync('/dev/shm/nmts-core-layout-');
  const env = { ...process.env, NETMAP_TS_DIR: other };
  let holder: ReturnType<typeof spawnHelper> | null = null;
  try {
    // a process of "another build" keeps a port open (it maps the registry)
    holder = spawnHelper(['hold', 'netmap:lv{1'], env);
    assert.equal((await holder.next()).ready, true);
    const file = path.join(other, 'registry');
    const fd = fs.openSync(file, 'r+');
    const word = Buffer.alloc(4);
    word.writeUInt32LE(L.LAYOUT_VERSION + 97, 0);
    fs.writeSync(fd, word, 0, 4, L.REG_LAYOUT);
    fs.closeSync(fd);
    const b = spawnHelper(['open', 'netmap:lv2{1'], env);
    const r = await b.next();
    await b.exited();
    assert.equal(r.ok, false);
    assert.equal(r.type, 'NetmapError');
    assert.equal(r.code, 'EINVAL');
    const msg = String(r.message);
    assert.match(msg, new RegExp(`layout version ${L.LAYOUT_VERSION + 97}\\b`));
    assert.match(msg, new RegExp(`layout version ${L.LAYOUT_VERSION}\\b`));
    assert.match(msg, new RegExp(`process ${holder.pid}\\b`), 'the refusal names the live user');
    // a registry file of the wrong size (an older layout) is refused too while it is used
    fs.truncateSync(file, L.REGISTRY_SIZE + 4096);
    const c = spawnHelper(['open', 'netmap:lv2{1'], env);
    const r2 = await c.next();
    await c.exited();
    assert.equal(r2.ok, false);
    assert.equal(r2.code, 'EINVAL');
    assert.match(String(r2.message), /layout/);
    // the old build's last user goes: the next open resets the directory and works
    holder.kill();
    await holder.exited();
    holder = null;
    fs.writeFileSync(path.join(other, 'keep-me.txt'), 'not ours');
    const d = spawnHelper(['open', 'netmap:lv2{1'], env);
    assert.deepEqual(await d.next(), { ok: true });
    await d.exited();
    assert.equal(fs.statSync(file).size, L.REGISTRY_SIZE);
    const now = Buffer.alloc(4);
    const fd2 = fs.openSync(file, 'r');
    fs.readSync(fd2, now, 0, 4, L.REG_LAYOUT);
    fs.closeSync(fd2);
    assert.equal(now.readUInt32LE(0), L.LAYOUT_VERSION);
    assert.ok(fs.existsSync(path.join(other, 'keep-me.txt')), 'files netmap-ts did not make are left alone');
    // and the reset happens for a wrong-size file as well
    fs.truncateSync(file, 4096);
    const e = spawnHelper(['open', 'netmap:lv3{1'], env);
    assert.deepEqual(await e.next(), { ok: true });
    await e.exited();
    assert.equal(fs.statSync(file).size, L.REGISTRY_SIZE);
  } finally {
    holder?.kill();
    fs.rmSync(other, { recursive: true, force: true });
  }
});

test('a memory region of another layout version is refused with an error naming both versions', async () => {
  const other = fs.mkdtempSync('/dev/shm/nmts-core-layout-');
  try {
    const env = { ...process.env, NETMAP_TS_DIR: other };
    const holder = spawnHelper(['hold', 'netmap:rl{1', '0'], env);
    await holder.next((o) => o.ready === true);
    const regionFile = fs.readdirSync(other).find((f) => f.startsWith('mem-'));
    assert.ok(regionFile !== undefined);
    const fd = fs.openSync(path.join(other, regionFile), 'r+');
    const word = Buffer.alloc(4);
    word.writeUInt32LE(L.LAYOUT_VERSION + 5, 0);
    fs.writeSync(fd, word, 0, 4, L.RH_LAYOUT);
    fs.closeSync(fd);
    const b = spawnHelper(['open', 'netmap:rl}1'], env);
    const r = await b.next();
    await b.exited();
    assert.equal(r.ok, false);
    assert.equal(r.code, 'EINVAL');
    assert.match(String(r.message), new RegExp(`layout version ${L.LAYOUT_VERSION + 5}\\b`));
    assert.match(String(r.message), new RegExp(`uses ${L.LAYOUT_VERSION}\\b`));
    holder.kill('SIGKILL');
    await holder.exited();
  } finally {
    fs.rmSync(other, { recursive: true, force: true });
  }
});

test('killed in the middle of a control operation: the half-made region is reclaimed', async () => {
  const before = shmFiles();
  const c = spawnHelper(['half-create']);
  await c.next((o) => o.created === true);
  assert.equal(shmFiles().length, before.length + 1, 'a region file was made');
  c.kill('SIGKILL');
  await c.exited();
  const p = openPort('netmap:afterhalf{1'); // takes the lock over, sweeps the debris
  p.close();
  assert.deepEqual(shmFiles(), before, 'the orphan region file is gone');
});

test('killed in the middle of createPort in a region that survives: its rings and buffers come back', async () => {
  const keep = openPort('netmap:hkeep{1'); // the region that survives: the parent of this pipe
  const region = registry().region(keep.memId);
  const before = region.freeBuffers();
  const c = spawnHelper(['half-port', 'hkeep']);
  const m = await c.next((o) => o.created === true);
  assert.equal(m.free, before - 4 * 64, 'the half-made port took 4 rings of 64 buffers');
  c.kill('SIGKILL');
  await c.exited();
  const p = openPort('netmap:afterhalfport{1'); // takes the lock over, sweeps the debris
  p.close();
  assert.equal(region.freeBuffers(), before, 'every buffer of the half-made port is free again');
  assert.equal(registry().findPort('halfmade'), -1);
  // and the region still works
  const s = openPort('netmap:hkeep}1');
  assert.equal(sendPackets(keep, 50, 50, 2000), 50);
  assert.deepEqual(receivePackets(s, 50, 2000), { got: 50, errors: 0 });
  s.close();
  keep.close();
});

test('a ring another live thread is syncing is skipped; one left busy by a dead thread is taken over', async () => {
  const { spawn } = await import('node:child_process');
  const m = openPort('netmap:busy{1'), s = openPort('netmap:busy}1');
  const m2 = openPort('netmap:busy{1'); // a second handle on the ring: syncs take the busy word
  const tx = m.txRings[0]!, rx = s.rxRings[0]!;
  const busyWord = (tx.offset + L.KR_BUSY) >>> 2;
  const live = spawn('sleep', ['10'], { stdio: 'ignore' });
  const dead = spawn('true', [], { stdio: 'ignore' });
  await new Promise((r) => dead.once('exit', r));
  try {
    tx.setSlotLen(tx.head, 60);
    tx.advance(tx.next(tx.head));
    m.mem.i32[busyWord] = live.pid!;
    m.txsync();
    s.rxsync();
    assert.equal(rx.space(), 0, 'the busy ring was skipped: nothing moved');
    assert.equal(m.mem.i32[busyWord], live.pid, 'the live owner keeps the ring');
    m.mem.i32[busyWord] = dead.pid!;
    m.txsync();
    s.rxsync();
    assert.equal(rx.space(), 1, 'taken over from the dead owner: the packet moved');
    assert.equal(m.mem.i32[busyWord], 0, 'and released after the sync');
  } finally {
    live.kill('SIGKILL');
    m.close();
    m2.close();
    s.close();
  }
});
