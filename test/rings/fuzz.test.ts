/**
 * Fuzz-style tests, bounded in time: random port names, a misbehaving writer scribbling random
 * head/cur/tail and slot contents in its rings (in this process and in another one), random
 * extra-buffer lists at close. Each must end in a clean error or a repair: no crash, no hang, no
 * damage to another port.
 */
import { dir } from '../helpers/ports/env.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openPort, NetmapError, POLLIN, layout as L, openHandleCount, type Port } from '../helpers/ports/lib.js';
import { registry } from '../../src/memory/registry.js';
import { spawnHelper } from '../helpers/ports/proc.js';
import { rng, sendPackets, receivePackets } from '../helpers/ports/roles.js';

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('random port names: a port or a NetmapError, nothing else', () => {
  const rand = rng(12345);
  const pieces = ['netmap:', 'vale', 'vale0:', 'pipe', 'p', '{', '}', '-', '/', '@', '^', '*', ':', '=', ',', 'conf', 'rings', 'slots',
    'extra-bufs', 'x', 'z', 'R', 'T', '0', '1', '7', '63', '65', '4096', '99999999999', ' ', '\u00e9', '\u4e2d', '\0', '.', '_', 'eth0'];
  const deadline = Date.now() + 4000;
  let opened = 0, refused = 0;
  for (let k = 0; k < 3000 && Date.now() < deadline; k++) {
    let name = (rand() & 1) === 0 ? 'netmap:' : '';
    const parts = 1 + (rand() % 8);
    for (let j = 0; j < parts; j++) name += pieces[rand() % pieces.length];
    try {
      const p = openPort(name);
      opened++;
      p.close();
    } catch (e) {
      assert.ok(e instanceof NetmapError, `'${name}' threw ${String(e)}`);
      assert.ok(e.message.length > 10);
      refused++;
    }
  }
  assert.ok(refused > 100, `${refused} refused`);
  assert.ok(opened > 0, `${opened} opened`);
  assert.equal(openHandleCount(), 0);
  registry().collectGarbage();
  // everything made by the fuzz went away with its last handle
  for (const i of registry().livePorts()) assert.fail(`port ${registry().portName(i)} left behind`);
});

/** Receives on `p` for `ms`, checking that every visible slot is sane (repaired). */
function drainChecking(p: Port, ms: number): number {
  const deadline = Date.now() + ms;
  let seen = 0;
  while (Date.now() < deadline) {
    p.poll(POLLIN, 5);
    for (const rx of p.rxRings) {
      let i = rx.head;
      while (i !== rx.tail) {
        const idx = rx.slotBufIdx(i);
        assert.ok(idx === 0 || rx.validBuf(idx), `slot ${i}: buffer index ${idx} was repaired`);
        assert.ok(rx.slotLen(i) <= rx.bufSize, `slot ${i}: length ${rx.slotLen(i)} was repaired`);
        if (idx !== 0) void p.mem.u8[rx.slotBufOffset(i) + rx.slotLen(i) - 1];
        seen++;
        i = rx.next(i);
      }
      rx.advance(i);
    }
  }
  return seen;
}

/** Snapshot of the payloads of the buffers in the TX ring of `p` (what it owns). */
function ownedBuffers(p: Port): number[] {
  const out: number[] = [];
  for (const r of p.txRings) for (let i = 0; i < r.numSlots; i++) out.push(r.slotBufIdx(i));
  return out;
}

test('a misbehaving writer in this process: random head/cur/tail and slots, the others unharmed', async () => {
  // The rogue and a well-behaved pipe share one parent (one memory region).
  const good = [openPort('netmap:fz{2'), openPort('netmap:fz}2')] as const;
  const rogue = openPort('netmap:fz{1@conf:rings=2');
  const victim = openPort('netmap:fz}1');
  const goodBufs = ownedBuffers(good[0]);
  const rand = rng(777);
  const u32 = rogue.mem.u32, u16 = rogue.mem.u16;
  const deadline = Date.now() + 3000;
  let iterations = 0, errors = 0, goodPackets = 0;
  while (Date.now() < deadline) {
    for (const r of [...rogue.txRings, ...rogue.rxRings]) {
      const n = r.numSlots;
      const pick = (): number => { const v = rand(); return (v & 3) === 0 ? v : v % (n + 2); };
      switch (rand() % 5) {
        case 0: r.head = pick(); break;
        case 1: r.cur = pick(); break;
        case 2: u32[(r.offset + L.RING_TAIL) >>> 2] = pick(); break;
        default:
          for (let k = 0; k < 8; k++) {
            const sw = (r.offset + L.RING_SLOTS + L.SLOT_SIZE * (rand() % n)) >>> 2;
            const v = rand();
            u32[sw] = (v & 1) === 0 ? rand() : rand() % (r.numBufs + 4);
            u16[2 * sw + 2] = rand() & 0xffff;
            u16[2 * sw + 3] = rand() & 0xffff;
          }
          { const s = r.space(); if (s > 0) r.advance((r.head + 1 + (rand() % s)) % n); }
      }
    }
    const rev = rogue.pollOnce(POLLIN | 4);
    if ((rev & 8) !== 0) errors++;
    rogue.txsync();
    rogue.rxsync();
    // the victim receives and returns slots; the good pipe keeps working, data intact
    drainChecking(victim, 0);
    goodPackets += sendPackets(good[0], 64, 64, 1000);
    const r = receivePackets(good[1], 64, 1000);
    assert.equal(r.errors, 0, 'the good pipe\'s packets are intact');
    goodPackets -= 64;
    iterations++;
  }
  assert.ok(iterations > 50, `${iterations} rounds`);
  assert.ok(errors > 0, 'violations were reported as POLLERR');
  assert.equal(goodPackets, 0);
  assert.deepEqual(ownedBuffers(good[0]).sort(), goodBufs.sort(), 'the good pipe still owns its buffers');
  for (const p of [rogue, victim, good[0], good[1]]) p.close();
  assert.equal(registry().findPort('fz'), -1);
});

test('a misbehaving writer in another process: its peer and a neighbour pipe are unharmed', async () => {
  const victim = openPort('netmap:fp}1');
  const goodM = openPort('netmap:fp{2'), goodS = openPort('netmap:fp}2');
  const rogue = spawnHelper(['rogue', 'netmap:fp{1', '2500', '4242']);
  const deadline = Date.now() + 2500;
  let seen = 0, rounds = 0;
  while (Date.now() < deadline) {
    seen += drainChecking(victim, 20);
    assert.equal(sendPackets(goodM, 200, 64, 1000), 200);
    assert.deepEqual(receivePackets(goodS, 200, 1000), { got: 200, errors: 0 });
    rounds++;
    await new Promise((r) => setImmediate(r));
  }
  const r = await rogue.next((o) => o.syncs !== undefined, 10000);
  assert.equal(await rogue.exited(), 0, 'the rogue itself never crashed');
  assert.equal(r.thrown, 0, 'syncs on a scribbled ring never throw');
  assert.ok((r.errs as number) > 0, 'violations reported as POLLERR');
  assert.ok(rounds > 5);
  void seen;
  for (const p of [victim, goodM, goodS]) p.close();
});

test('random extra-buffer lists at close: freed or ignored, never another port\'s buffers', () => {
  const rand = rng(99);
  const keepM = openPort('netmap:xl{1'), keepS = openPort('netmap:xl}1');
  const reg = registry();
  const region = reg.region(keepM.memId);
  const held = new Set([...ownedBuffers(keepM), ...ownedBuffers(keepS)].filter((i) => i >= 2));
  const deadline = Date.now() + 3000;
  for (let k = 0; k < 300 && Date.now() < deadline; k++) {
    const p = openPort('netmap:xl}1', { extraBuffers: 1 + (rand() % 64) });
    const u32 = p.mem.u32;
    // collect the granted list, then rebuild a random one out of: granted buffers, buffers of
    // the other handles' rings, free buffers, invalid indices, cycles
    const granted: number[] = [];
    for (let idx = p.bufsHead; idx !== 0 && granted.length < 100; idx = u32[p.bufOffset(idx) >>> 2]!) granted.push(idx);
    const ringBufs = [...held];
    const items: number[] = [];
    const len = rand() % 80;
    for (let j = 0; j < len; j++) {
      switch (rand() % 6) {
        case 0: items.push(ringBufs[rand() % ringBufs.length]!); break;
        case 1: items.push(rand()); break;
        case 2: items.push(rand() % (region.numBufs + 10)); break;
        case 3: items.push(items.length > 0 ? items[rand() % items.length]! : 1); break;
        default: if (granted.length > 0) items.push(granted[rand() % granted.length]!);
      }
    }
    // link them: each valid buffer's first word points to the next item
    const valid = (i: number): boolean => i >= 2 && i < region.numBufs;
    for (let j = 0; j + 1 < items.length; j++) if (valid(items[j]!) && !held.has(items[j]!)) u32[p.bufOffset(items[j]!) >>> 2] = items[j + 1]!;
    p.bufsHead = items.length > 0 ? items[0]! : 0;
    p.close();
    // the other handles' ring buffers are never freed; the pool stays consistent
    for (const idx of held) assert.equal(region.isFree(idx), false, `ring buffer ${idx} was freed`);
    assert.ok(region.freeBuffers() <= region.numBufs - 2);
  }
  // the pipe still works
  assert.equal(sendPackets(keepM, 500, 64, 2000), 500);
  assert.deepEqual(receivePackets(keepS, 500, 2000), { got: 500, errors: 0 });
  keepM.close();
  keepS.close();
  assert.equal(reg.findPort('xl'), -1);
});
