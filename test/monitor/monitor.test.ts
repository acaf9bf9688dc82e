/**
 * Monitor ports (`/r`, `/t`, `/rt`, `/z`): on pipes, ephemeral and persistent VALE ports and
 * netmap:IF; one ring; several monitors; a full monitor ring; a SIGKILLed monitor; zero copy;
 * the names that cannot be monitored.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';

process.env.NETMAP_TS_DIR = fs.mkdtempSync('/dev/shm/nmts-monitor-');
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort, POLLIN, POLLERR } = await import('../../src/ports/index.js');
const vale = await import('../../src/switch/index.js');
const { registry } = await import('../../src/memory/registry.js');
const { NetmapError } = await import('../../src/errors.js');
const L = await import('../../src/memory/layout.js');
const { skipReason, withLab, sleep } = await import('../helpers/netns.js');
const { PacketTransmitter } = await import('../../src/interfaces/packet.js');
type Port = ReturnType<typeof openPort>;

const isCode = (code: string) => (e: unknown): boolean => e instanceof NetmapError && e.code === code;
const BC = [255, 255, 255, 255, 255, 255];
const mac = (n: number): number[] => [2, 0, 0, 0, 0, n];

/** Queues one frame (dst, src, ethertype 0x88b5, `tag` at bytes 14..17) on TX ring `k`. */
function queue(p: Port, dst: number[], src: number[], tag: number, len = 60, k = 0): void {
  const r = p.txRings[k]!;
  const u8 = p.mem.u8;
  const i = r.head;
  const o = r.slotBufOffset(i);
  for (let j = 0; j < 6; j++) { u8[o + j] = dst[j]!; u8[o + 6 + j] = src[j]!; }
  u8[o + 12] = 0x88; u8[o + 13] = 0xb5;
  p.mem.view.setUint32(o + 14, tag);
  for (let j = 18; j < len; j++) u8[o + j] = j & 0xff;
  r.setSlotLen(i, len);
  r.setSlotFlags(i, 0);
  r.advance(r.next(i));
}

/** Sends `count` frames in batches of `batch`, syncing after each. */
function send(p: Port, count: number, dst: number[], src: number[], first = 0, batch = 16, k = 0): void {
  for (let n = 0; n < count;) {
    const r = p.txRings[k]!;
    let b = 0;
    while (b < batch && n < count && r.space() > 0) { queue(p, dst, src, first + n, 60, k); n++; b++; }
    p.txsync();
  }
}

interface Seen { tags: number[]; txmon: number; flags: number[] }

/** Takes everything on p's RX rings (rxsync first); the tags, how many carried NS_TXMON. */
function take(p: Port, into: Seen = { tags: [], txmon: 0, flags: [] }): Seen {
  p.rxsync();
  for (const r of p.rxRings) {
    while (!r.empty()) {
      const i = r.head;
      into.tags.push(p.mem.view.getUint32(r.slotBufOffset(i) + 14));
      into.flags.push(r.slotFlags(i));
      if ((r.slotFlags(i) & L.NS_TXMON) !== 0) into.txmon++;
      r.advance(r.next(i));
    }
  }
  p.rxsync();
  return into;
}

const range = (a: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + i);
const monitorsOf = (name: string): number => { const reg = registry(); return reg.portGet(reg.findPort(name), L.PE_MONITORS); };

test('VALE: 50 broadcast frames reach the user of vale7:a and its /r monitor, all 50; /t sees what a sends', () => {
  const a = openPort('vale7:a'), b = openPort('vale7:b');
  const mr = openPort('vale7:a/r'), mt = openPort('vale7:a/t');
  try {
    assert.match(mr.name, /^vale7:a\/r#\d+$/);
    assert.equal(mr.txRings.length, 0, 'a monitor has no TX rings');
    assert.equal(monitorsOf('vale7:a'), 2);
    send(b, 50, BC, mac(2));
    assert.deepEqual(take(a).tags, range(0, 50), 'the user of vale7:a gets every frame');
    const r = take(mr);
    assert.deepEqual(r.tags, range(0, 50), 'the /r monitor gets every frame');
    assert.equal(r.txmon, 0);
    assert.deepEqual(take(mt).tags, [], 'nothing was sent by a');
    // a sends 30 (unicast to b, learnt above): /t gets them, marked NS_TXMON; /r nothing
    send(a, 30, mac(2), mac(1), 1000);
    assert.deepEqual(take(b).tags, range(1000, 30));
    const t = take(mt);
    assert.deepEqual(t.tags, range(1000, 30));
    assert.equal(t.txmon, 30);
    assert.deepEqual(take(mr).tags, []);
    assert.equal(mr.rxRings[0]!.drops, 0);
  } finally {
    mr.close(); mt.close(); a.close(); b.close();
  }
  assert.equal(registry().findPort('vale7:a'), -1, 'the ephemeral port went with its user');
});

test('VALE /rt: both directions in order of arrival, the direction in NS_TXMON; several monitors at once', () => {
  const a = openPort('vale8:a'), b = openPort('vale8:b');
  const mons = [openPort('vale8:a/rt'), openPort('vale8:a/rt'), openPort('vale8:a/r'), openPort('vale8:a/t')];
  try {
    assert.equal(monitorsOf('vale8:a'), 4);
    for (let round = 0; round < 20; round++) {
      send(b, 7, BC, mac(2), round * 100);
      send(a, 5, BC, mac(1), round * 100 + 50);
    }
    take(a); take(b);
    const [rt1, rt2, r, t] = mons.map((m) => take(m));
    const both = [] as number[];
    for (let round = 0; round < 20; round++) both.push(...range(round * 100, 7), ...range(round * 100 + 50, 5));
    assert.deepEqual(rt1!.tags, both);
    assert.deepEqual(rt2!.tags, both);
    assert.equal(rt1!.txmon, 100);
    assert.deepEqual(r!.tags, both.filter((x) => x % 100 < 50));
    assert.deepEqual(t!.tags, both.filter((x) => x % 100 >= 50));
    assert.equal(t!.txmon, 100);
  } finally {
    for (const m of mons) m.close();
    a.close(); b.close();
  }
  assert.equal(registry().findPort('vale8:a'), -1);
});

test('a full monitor ring drops the newest and counts them; the monitored port never waits', () => {
  const a = openPort('vale9:a'), b = openPort('vale9:b');
  const m = openPort('vale9:a/r@conf:slots=16');
  try {
    send(b, 50, BC, mac(2));
    assert.deepEqual(take(a).tags, range(0, 50), 'the user gets all 50');
    const got = take(m);
    assert.deepEqual(got.tags, range(0, 15), 'the monitor got what fit (16 slots, one kept empty)');
    assert.equal(m.rxRings[0]!.drops, 35);
    send(b, 5, BC, mac(2), 100);
    take(a);
    assert.deepEqual(take(m).tags, range(100, 5), 'room again once the monitor read');
  } finally {
    m.close(); a.close(); b.close();
  }
});

test('monitorWithBuffer sizes a copy monitor for capture by bytes; other names are kept as they are', async () => {
  const { monitorWithBuffer } = await import('../../src/monitor/monitor.js');
  const a = openPort('vale10:a'), b = openPort('vale10:b');
  try {
    assert.equal(monitorWithBuffer('vale10:a/rt', 32 << 20), 'vale10:a/tr@conf:slots=16384');
    assert.equal(monitorWithBuffer('vale10:a/r', 1 << 20), 'vale10:a/r@conf:slots=512');
    assert.equal(monitorWithBuffer('vale10:a/r', 2 ** 40), 'vale10:a/r@conf:slots=16384', 'at most 16384 slots');
    assert.equal(monitorWithBuffer('vale10:a/t', 100), 'vale10:a/t@conf:slots=2', 'at least 2');
    for (const kept of ['vale10:a', 'vale10:a/r@conf:slots=64', 'vale10:a/z', 'vale10:nobody/rt']) assert.equal(monitorWithBuffer(kept, 1 << 20), kept);
    const m = openPort(monitorWithBuffer('vale10:a/r', 1 << 20));
    try {
      assert.equal(m.rxRings[0]!.numSlots, 512);
      send(b, 600, BC, mac(2));
      take(a);
      assert.equal(take(m).tags.length, 511, 'a ring of 512 holds 511');
      // a fragment chain keeps its NS_MOREFRAG flags in the monitor (/r and /t)
      const t = openPort('vale10:b/t');
      try {
        const r = b.txRings[0]!;
        for (let f = 0; f < 3; f++) { const i = r.head; queue(b, BC, mac(2), 900 + f); r.setSlotFlags(i, f < 2 ? L.NS_MOREFRAG : 0); }
        b.txsync();
        take(a);
        const flags = (x: Seen): number[] => x.flags.map((v) => v & (L.NS_MOREFRAG | L.NS_TXMON));
        const got = take(m), sent = take(t);
        assert.deepEqual(got.tags, [900, 901, 902]);
        assert.deepEqual(flags(got), [L.NS_MOREFRAG, L.NS_MOREFRAG, 0]);
        assert.deepEqual(flags(sent), [L.NS_MOREFRAG | L.NS_TXMON, L.NS_MOREFRAG | L.NS_TXMON, L.NS_TXMON]);
      } finally {
        t.close();
      }
    } finally {
      m.close();
    }
  } finally {
    a.close(); b.close();
  }
});

test('pipes: /t of the sending end, /r of the receiving end (copied at its rxsync), exact counts', () => {
  const tx = openPort('netmap:mp{1'), rx = openPort('netmap:mp}1');
  const mt = openPort('netmap:mp{1/t'), mr = openPort('netmap:mp}1/r'), mrt = openPort('netmap:mp{1/rt');
  try {
    let got: Seen = { tags: [], txmon: 0, flags: [] };
    for (let k = 0; k < 10; k++) {
      send(tx, 100, mac(2), mac(1), k * 100, 32);
      got = take(rx, got);
    }
    assert.deepEqual(got.tags, range(0, 1000));
    const t = take(mt), r = take(mr), rt = take(mrt);
    assert.deepEqual(t.tags, range(0, 1000));
    assert.equal(t.txmon, 1000);
    assert.deepEqual(r.tags, range(0, 1000));
    assert.equal(r.txmon, 0);
    assert.deepEqual(rt.tags, range(0, 1000), 'mp{1 receives nothing: /rt = /t');
    // the other way round
    send(rx, 10, mac(1), mac(2), 5000);
    take(tx);
    assert.deepEqual(take(mrt).tags, range(5000, 10));
    assert.deepEqual(take(mt).tags, []);
  } finally {
    for (const p of [mt, mr, mrt, tx, rx]) p.close();
  }
});

test('one ring: -N/r monitors ring N only', () => {
  const tx = openPort('netmap:mq{1@conf:rings=2'), rx = openPort('netmap:mq}1');
  const m1 = openPort('netmap:mq{1-1/t'), all = openPort('netmap:mq{1/t');
  try {
    assert.equal(m1.rxRings.length, 1);
    assert.equal(m1.rxRings[0]!.id, 1);
    send(tx, 20, mac(2), mac(1), 0, 8, 0);
    send(tx, 30, mac(2), mac(1), 100, 8, 1);
    assert.deepEqual(take(m1).tags, range(100, 30));
    assert.deepEqual(take(all).tags.sort((x, y) => x - y), [...range(0, 20), ...range(100, 30)]);
    assert.throws(() => openPort('netmap:mq{1-2/t'), isCode('EINVAL'));
  } finally {
    for (const p of [m1, all, tx, rx]) p.close();
  }
});

test('persistent VALE port: monitored as valeX:P and as netmap:P', () => {
  vale.createPersistentPort('mpers0');
  vale.attach('vale10:mpers0');
  const p = openPort('vale10:mpers0'), b = openPort('vale10:b');
  const m1 = openPort('vale10:mpers0/r'), m2 = openPort('netmap:mpers0/r');
  try {
    send(b, 40, BC, mac(2));
    assert.deepEqual(take(p).tags, range(0, 40));
    assert.deepEqual(take(m1).tags, range(0, 40));
    assert.deepEqual(take(m2).tags, range(0, 40));
  } finally {
    for (const x of [m1, m2, p, b]) x.close();
    vale.detach('vale10:mpers0');
    vale.removePersistentPort('mpers0');
  }
});

test('a monitor in another process, SIGKILLed mid-capture: the port goes on, the slot is reclaimed', async () => {
  const a = openPort('vale11:a'), b = openPort('vale11:b');
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { openPort, POLLIN } = await import(${JSON.stringify(new URL('../../src/index.js', import.meta.url).pathname)});
    const m = openPort('vale11:a/r');
    let n = 0;
    process.stdout.write('open\\n');
    for (;;) {
      m.poll(POLLIN, 100);
      const r = m.rxRings[0];
      while (!r.empty()) { n++; r.advance(r.next(r.head)); }
      if (n >= 100) { process.stdout.write('got ' + n + '\\n'); n = -1e9; }
    }`], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  try {
    let out = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    for (let t = 0; t < 200 && !out.includes('open'); t++) await sleep(25);
    assert.ok(out.includes('open'), 'the monitor process opened vale11:a/r');
    assert.equal(monitorsOf('vale11:a'), 1);
    send(b, 100, BC, mac(2));
    assert.equal(take(a).tags.length, 100);
    for (let t = 0; t < 200 && !out.includes('got 100'); t++) await sleep(25);
    assert.ok(out.includes('got 100'), `the monitor in the other process saw the 100 frames (${out.trim()})`);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // the monitored port goes on (its frames now fill the dead monitor's ring, then drop)
    send(b, 3000, BC, mac(2), 1000);
    let got = 0;
    for (let k = 0; k < 10; k++) got += take(a).tags.length;
    assert.equal(got, 1023, 'the user of a got what its ring holds (1024 slots, one kept empty), as without a monitor');
    registry().collectGarbage();
    assert.equal(monitorsOf('vale11:a'), 0, 'the dead monitor was collected');
    assert.equal([...Array(L.MAX_PORTS).keys()].filter((i) => registry().portLive(i) && registry().portGet(i, L.PE_KIND) === L.PORT_KIND_MONITOR).length, 0);
    send(b, 10, BC, mac(2), 9000);
    assert.deepEqual(take(a).tags, range(9000, 10));
  } finally {
    child.kill('SIGKILL');
    a.close(); b.close();
  }
});

test('/z on a pipe: received frames reach the monitor only when the user releases them, by buffer swap', () => {
  const tx = openPort('netmap:mz{1@conf:slots=64'), rx = openPort('netmap:mz}1');
  const z = openPort('netmap:mz}1/z');
  try {
    assert.equal(z.memId, rx.memId, 'a zero-copy monitor lives in the watched port\'s memory');
    assert.throws(() => openPort('netmap:mz}1/z'), isCode('EBUSY'));
    send(tx, 20, mac(2), mac(1), 0, 20);
    rx.rxsync();
    const r = rx.rxRings[0]!;
    assert.equal(r.tail - r.head, 20);
    assert.deepEqual(take(z).tags, [], 'nothing before the user released them');
    const bufs = [] as number[];
    for (let i = r.head; i !== r.head + 10; i++) bufs.push(r.slotBufIdx(i));
    r.advance(r.head + 10);
    rx.rxsync(); // releases 10
    const zr = z.rxRings[0]!;
    z.rxsync();
    assert.equal(zr.tail - zr.head, 10);
    const zb = [] as number[];
    for (let i = zr.head; i !== zr.tail; i++) zb.push(zr.slotBufIdx(i));
    assert.deepEqual(zb, bufs, 'the monitor holds the very buffers the user released');
    assert.deepEqual(take(z).tags, range(0, 10));
    r.advance(r.tail);
    rx.rxsync();
    assert.deepEqual(take(z).tags, range(10, 10));
    // the pipe goes on with the buffers it got in exchange, for longer than its ring
    let got: Seen = { tags: [], txmon: 0, flags: [] };
    for (let k = 0; k < 10; k++) { send(tx, 50, mac(2), mac(1), 100 + 50 * k, 25); got = take(rx, got); }
    assert.deepEqual(got.tags, range(100, 500));
    assert.deepEqual(take(z).tags.length > 0, true);
  } finally {
    for (const p of [z, tx, rx]) p.close();
  }
});

test('/z on a VALE port: what it sends passes through the monitor at txsync (NS_TXMON)', () => {
  const a = openPort('vale12:a'), b = openPort('vale12:b');
  const z = openPort('vale12:a/z');
  try {
    const t = a.txRings[0]!;
    const before = t.slotBufIdx(0);
    send(a, 10, BC, mac(1), 0, 10);
    assert.notEqual(t.slotBufIdx(0), before, 'the sent slot got another buffer');
    assert.ok((t.slotFlags(0) & L.NS_BUF_CHANGED) !== 0);
    assert.deepEqual(take(b).tags, range(0, 10));
    const got = take(z);
    assert.deepEqual(got.tags, range(0, 10));
    assert.equal(got.txmon, 10);
    send(b, 5, BC, mac(2), 50);
    a.rxsync();
    assert.deepEqual(take(z).tags, [], 'received frames only once released');
    take(a);
    assert.deepEqual(take(z).tags, range(50, 5));
  } finally {
    for (const p of [z, a, b]) p.close();
  }
});

test('names that cannot be monitored, and flags that do not apply, are errors with a reason', () => {
  const a = openPort('vale13:a');
  const pipe = openPort('netmap:mnp{1');
  const mons: Port[] = [];
  try {
    assert.throws(() => openPort('vale13:nobody/r'), (e: unknown) => isCode('EINVAL')(e) && /no port vale13:nobody is open/.test((e as Error).message));
    assert.throws(() => openPort('netmap:nmtsnone0/r'), isCode('EINVAL'));
    assert.throws(() => openPort('netmap:mnp/r'), (e: unknown) => isCode('EOPNOTSUPP')(e) && /memory of its pipes/.test((e as Error).message));
    assert.throws(() => openPort('vale13:a/rT'), isCode('EINVAL'));
    assert.throws(() => openPort('vale13:a/r@conf:rings=2'), isCode('EINVAL'));
    assert.throws(() => openPort('vale13:a^/r'), isCode('EINVAL'));
    assert.throws(() => openPort('vale13:a/r@conf:slots=1'), isCode('EINVAL'));
    for (let k = 0; k < 8; k++) mons.push(openPort('vale13:a/r'));
    assert.throws(() => openPort('vale13:a/t'), isCode('EBUSY'));
    // /R on a monitor is what it is anyway (RX rings only); /x binds its rings exclusively
    const x = openPort('netmap:mnp{1/tRx');
    assert.equal(x.rxRings.length, 1);
    x.close();
  } finally {
    for (const m of mons) m.close();
    a.close(); pipe.close();
  }
  assert.equal(registry().findPort('vale13:a'), -1);
});

test('@share=PORT puts a new VALE port in that port\'s memory; a conflicting @N is EINVAL', () => {
  const a = openPort('vale14:a');
  try {
    const b = openPort('vale14:b@share=vale14:a');
    assert.equal(b.memId, a.memId);
    b.close();
    assert.throws(() => openPort('vale14:c@share=vale14:nobody'), isCode('ENXIO'));
    assert.throws(() => openPort(`vale14:c@${a.memId + 1}@share=vale14:a`), isCode('EINVAL'));
  } finally {
    a.close();
  }
});

test('a monitor whose port goes away reports POLLERR after what it holds', () => {
  const tx = openPort('netmap:mg{1'), rx = openPort('netmap:mg}1');
  const m = openPort('netmap:mg{1/t');
  send(tx, 5, mac(2), mac(1));
  tx.close(); rx.close();
  assert.equal(registry().findPort('mg{1'), -1);
  assert.deepEqual(take(m).tags, range(0, 5));
  assert.ok((m.pollOnce(POLLIN) & POLLERR) !== 0);
  m.close();
});

const lab = skipReason(['tc']);
test('netmap:IF: /rt sees what the port receives from the wire and what it sends', { skip: lab ?? false, timeout: 60_000 }, () => withLab(async (l) => {
  const na = l.ns('ma'), nb = l.ns('mb');
  l.veth(na, 'ma0', nb, 'mb0');
  l.enter(nb);
  const ptx = new PacketTransmitter('mb0');
  l.enter(na);
  const p = openPort('netmap:ma0');
  const m = openPort('netmap:ma0/rt');
  const mh = openPort('netmap:ma0^/r');
  try {
    const sp = p.mem;
    for (let k = 0; k < 40; k++) {
      const at = ptx.slot();
      for (let j = 0; j < 60; j++) sp.u8[at + j] = j < 6 ? 0xff : j < 12 ? 2 : 0;
      sp.view.setUint16(at + 12, 0x88b5);
      sp.view.setUint32(at + 14, k);
      ptx.commit(60);
    }
    ptx.kick();
    let got: Seen = { tags: [], txmon: 0, flags: [] };
    for (let t = 0; t < 100 && got.tags.length < 40; t++) { p.poll(POLLIN, 50); got = take(p, got); }
    assert.deepEqual(got.tags, range(0, 40));
    send(p, 25, BC, mac(1), 500);
    const seen = take(m);
    assert.deepEqual(seen.tags, [...range(0, 40), ...range(500, 25)]);
    assert.equal(seen.txmon, 25);
    assert.deepEqual(take(mh).tags.filter((x) => x < 1000), [], 'the host rings saw none of it');
  } finally {
    mh.close(); m.close(); p.close(); ptx.close();
    l.leave();
  }
}));
