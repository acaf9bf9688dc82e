import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DIR = `/dev/shm/netmap-ts-test-vale-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const vale = await import('../../src/switch/index.js');
const { NetmapError } = await import('../../src/errors.js');
const L = await import('../../src/memory/layout.js');
type Port = ReturnType<typeof openPort>;

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'helpers', 'vale-child.js');
const CLI = path.join(here, '..', '..', 'src', 'tools', 'cli.js');

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

// ---- helpers ------------------------------------------------------------------------------------

const BC = [255, 255, 255, 255, 255, 255];
function mac(n: number): number[] { return [2, 0, 0, 0, 0, n]; }

function frame(p: Port, dst: number[], src: number[], len = 60, fill = 0): void {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  const i = r.head;
  const o = r.slotBufOffset(i);
  for (let j = 0; j < 6; j++) { u8[o + j] = dst[j]!; u8[o + 6 + j] = src[j]!; }
  u8[o + 12] = 0x88; u8[o + 13] = 0xb5;
  for (let j = 14; j < len; j++) u8[o + j] = (j + fill) & 0xff;
  r.setSlotLen(i, len);
  r.setSlotFlags(i, 0);
  r.advance(r.next(i));
}

function send(p: Port, dst: number[], src: number[], count = 1, len = 60): void {
  for (let k = 0; k < count; k++) frame(p, dst, src, len, k);
  p.txsync();
}

/** Drains the RX ring; returns the frames (copies of their bytes). */
function drain(p: Port): Uint8Array[] {
  p.rxsync();
  const r = p.rxRings[0]!;
  const out: Uint8Array[] = [];
  let i = r.head;
  while (i !== r.tail) {
    const o = r.slotBufOffset(i);
    out.push(p.mem.u8.slice(o, o + r.slotLen(i)));
    i = r.next(i);
  }
  r.advance(i);
  p.rxsync();
  return out;
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { if (e instanceof NetmapError) return e.code; throw e; }
  return 'no error';
}

interface Child { proc: ChildProcess; ready: Promise<string>; result: Promise<Record<string, unknown>>; }

function child(args: string[]): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], { env: { ...process.env, VALE_HELPER: '1', NETMAP_TS_DIR: DIR }, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let err = '';
  let readyFn: (s: string) => void = () => {};
  let resultFn: (r: Record<string, unknown>) => void = () => {};
  let failFn: (e: Error) => void = () => {};
  const ready = new Promise<string>((res) => { readyFn = res; });
  const result = new Promise<Record<string, unknown>>((res, rej) => { resultFn = res; failFn = rej; });
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('ready')) readyFn(line);
      else if (line.startsWith('{')) resultFn(JSON.parse(line) as Record<string, unknown>);
    }
  });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  result.catch(() => { /* a killed child has no result: only awaited where one is expected */ });
  proc.on('exit', (c, sig) => { failFn(new Error(`child ${args.join(' ')} exited ${c} ${sig ?? ''} without a result: ${err}`)); readyFn('exited'); });
  return { proc, ready, result };
}

function cli(args: string[]): Promise<{ status: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, 'vale-ctl', ...args], { env: { ...process.env, NETMAP_TS_DIR: DIR } });
    let out = '', err = '';
    proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    proc.on('exit', (status) => resolve({ status: status ?? -1, out, err }));
  });
}

// ---- learning bridge ----------------------------------------------------------------------------

test('learning: broadcast floods to every other port, unicast goes to the learnt port only', () => {
  const a = openPort('vale1:a'), b = openPort('vale1:b'), c = openPort('vale1:c');
  try {
    send(a, BC, mac(1));
    assert.equal(drain(b).length, 1);
    assert.equal(drain(c).length, 1);
    assert.equal(drain(a).length, 0, 'no echo to the source');
    // unknown unicast floods
    send(b, mac(9), mac(2));
    assert.equal(drain(a).length, 1);
    assert.equal(drain(c).length, 1);
    assert.equal(drain(b).length, 0);
    // a and b are learnt now: unicast to each other only
    send(b, mac(1), mac(2), 5);
    assert.equal(drain(a).length, 5);
    assert.equal(drain(c).length, 0);
    send(a, mac(2), mac(1), 3);
    assert.equal(drain(b).length, 3);
    assert.equal(drain(c).length, 0);
    // multicast floods
    send(c, [1, 0, 0x5e, 0, 0, 1], mac(3));
    assert.equal(drain(a).length, 1);
    assert.equal(drain(b).length, 1);
    // a station that moves is re-learnt: mac(1) now sends from c
    send(c, BC, mac(1));
    drain(a); drain(b);
    send(b, mac(1), mac(2));
    assert.equal(drain(c).length, 1);
    assert.equal(drain(a).length, 0);
    // a frame to the sender's own learnt MAC is dropped (never sent back)
    send(c, mac(1), mac(3));
    assert.equal(drain(c).length, 0);
    const ca = vale.portCounters('vale1:a');
    assert.equal(ca.txPackets, 4);
    assert.equal(ca.rxPackets, 8);
  } finally { a.close(); b.close(); c.close(); }
  assert.deepEqual(vale.switches().includes('vale1'), false, 'the switch goes with its last port');
});

test('rings: unicast from ring i goes to ring i mod the RX rings, broadcast to ring 0; pipes hang on a VALE port', () => {
  const a = openPort('vale12:a@conf:rings=2'), b = openPort('vale12:b@conf:rings=2'), c = openPort('vale12:c');
  try {
    assert.equal(a.txRings.length, 2);
    const r1 = a.txRings[1]!;
    const u8 = a.mem.u8;
    const o = r1.slotBufOffset(r1.head);
    u8.fill(0xff, o, o + 6); u8.set(mac(1), o + 6);
    r1.setSlotLen(r1.head, 60); r1.advance(r1.next(r1.head));
    a.txsync();
    b.rxsync(); c.rxsync();
    assert.equal(b.rxRings[0]!.space(), 1, 'a broadcast goes to ring 0');
    assert.equal(b.rxRings[1]!.space(), 0);
    assert.equal(c.rxRings[0]!.space(), 1, 'c has one ring: ring 0');
    drain(b); drain(c);
    b.rxRings[1]!.advance(b.rxRings[1]!.tail); b.rxsync();
    // b learnt from a broadcast of its own; unicast from a's ring 1 goes to b's ring 1
    send(b, BC, mac(2));
    drain(a); drain(c);
    const o2 = r1.slotBufOffset(r1.head);
    u8.set(mac(2), o2); u8.set(mac(1), o2 + 6);
    r1.setSlotLen(r1.head, 60); r1.advance(r1.next(r1.head));
    // and a broadcast in the same batch goes to ring 0
    const o3 = r1.slotBufOffset(r1.head);
    u8.fill(0xff, o3, o3 + 6); u8.set(mac(1), o3 + 6);
    r1.setSlotLen(r1.head, 60); r1.advance(r1.next(r1.head));
    a.txsync();
    b.rxsync();
    assert.equal(b.rxRings[1]!.space(), 1, 'unicast on ring 1');
    assert.equal(b.rxRings[0]!.space(), 1, 'broadcast on ring 0');
    b.rxRings[0]!.advance(b.rxRings[0]!.tail); b.rxRings[1]!.advance(b.rxRings[1]!.tail); b.rxsync();
    assert.equal(drain(c).length, 1);
    // a pipe on a VALE port uses its memory; the port goes with its last user, pipe or handle
    const m = openPort('vale12:c{3'), s = openPort('vale12:c}3');
    assert.equal(m.memId, c.memId);
    c.close();
    assert.ok(vale.switchPorts('vale12').some((p) => p.name === 'vale12:c'), 'kept while pipes hang on it');
    m.close(); s.close();
    assert.ok(!vale.switchPorts('vale12').some((p) => p.name === 'vale12:c'), 'gone with its last pipe');
  } finally { a.close(); b.close(); c.close(); }
});

test('frames shorter than 14 bytes are dropped and counted; payload and multi-slot packets are copied exactly', () => {
  const a = openPort('vale2:a'), b = openPort('vale2:b');
  try {
    send(a, BC, mac(1), 1, 13);
    assert.equal(drain(b).length, 0);
    assert.equal(vale.portCounters('vale2:a').txDrops, 1);
    // bytes that form NaNs as doubles must survive the word copy
    const r = a.txRings[0]!;
    const u8 = a.mem.u8;
    for (const len of [14, 60, 61, 255, 256, 257, 1514, 2048]) {
      const i = r.head, o = r.slotBufOffset(i);
      for (let j = 0; j < len; j++) u8[o + j] = j < 6 ? 0xff : j % 3 === 0 ? 0xff : j % 3 === 1 ? 0xf7 : 0x7f;
      u8[o + 6] = 0x02;
      r.setSlotLen(i, len); r.setSlotFlags(i, 0); r.advance(r.next(i));
      a.txsync();
      const got = drain(b);
      assert.equal(got.length, 1);
      assert.deepEqual(got[0], u8.slice(o, o + len), `frame of ${len} bytes`);
    }
    // a 3-slot packet: delivered as 3 slots, NS_MOREFRAG on all but the last
    let i = r.head;
    const lens = [2048, 2048, 100];
    for (let f = 0; f < 3; f++) {
      const o = r.slotBufOffset(i);
      u8.fill(f + 1, o, o + lens[f]!);
      if (f === 0) { for (let j = 0; j < 6; j++) u8[o + j] = 0xff; u8[o + 6] = 2; }
      r.setSlotLen(i, lens[f]!);
      r.setSlotFlags(i, f < 2 ? L.NS_MOREFRAG : 0);
      i = r.next(i);
    }
    r.advance(i);
    a.txsync();
    b.rxsync();
    const rr = b.rxRings[0]!;
    let j = rr.head;
    for (let f = 0; f < 3; f++) {
      assert.notEqual(j, rr.tail, `fragment ${f} arrived`);
      assert.equal(rr.slotLen(j), lens[f]);
      assert.equal((rr.slotFlags(j) & L.NS_MOREFRAG) !== 0, f < 2);
      assert.equal(b.mem.u8[rr.slotBufOffset(j) + 50], f + 1);
      j = rr.next(j);
    }
    assert.equal(j, rr.tail);
    rr.advance(j);
    b.rxsync();
  } finally { a.close(); b.close(); }
});

test('garbage in TX slots and scribbled hidden ring state never break the switch', () => {
  const a = openPort('vale13:a'), b = openPort('vale13:b@conf:slots=64'), c = openPort('vale13:c');
  let seed = 12345;
  const rnd = (m: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % m; };
  try {
    const r = a.txRings[0]!;
    const u8 = a.mem.u8;
    for (let round = 0; round < 200; round++) {
      let i = r.head;
      const count = 1 + rnd(r.space());
      for (let k = 0; k < count; k++) {
        const o = r.slotBufOffset(i);
        if (r.validBuf(r.slotBufIdx(i))) { u8[o] = rnd(2) === 0 ? 0xff : 2; u8[o + 6] = 2 + 4 * rnd(2); }
        if (rnd(10) === 0) r.setSlotBufIdx(i, rnd(3) === 0 ? 0 : rnd(1 << 30));
        r.setSlotLen(i, rnd(4) === 0 ? rnd(65536) : rnd(2049));
        r.setSlotFlags(i, rnd(65536));
        i = r.next(i);
      }
      r.advance(i);
      if (rnd(20) === 0) {
        // scribble over the hidden state of b's RX ring
        const ring = b.rxRings[0]!.offset;
        const field = [L.KR_LEASE, L.KR_LEASE_FIRST, L.KR_LEASE_NEXT, L.KR_LEASE_TABLE, L.KR_SHADOW_TAIL, L.KR_HWCUR][rnd(6)]!;
        b.mem.u32[(ring + field) >>> 2] = rnd(2) === 0 ? rnd(100000) : 0xffffffff;
      }
      a.txsync();
      // repair what a.txsync may have refused (bad buffer indices become 0): give them back
      for (let k = 0; k < r.numSlots; k++) if (!r.validBuf(r.slotBufIdx(k))) r.setSlotBufIdx(k, 2 + k);
      for (const p of [b, c]) {
        p.rxsync();
        const rr = p.rxRings[0]!;
        for (let j = rr.head; j !== rr.tail; j = rr.next(j)) assert.ok(rr.slotLen(j) <= rr.bufSize);
        rr.advance(rr.tail);
        p.rxsync();
      }
    }
    // a clean frame still goes through to c (b's ring may be wrecked for good: its own fault)
    send(a, BC, mac(1));
    assert.ok(drain(c).length >= 1);
  } finally { a.close(); b.close(); c.close(); }
});

test('a full receiver drops and counts; the sender never blocks', () => {
  const a = openPort('vale3:a'), b = openPort('vale3:b@conf:slots=256');
  try {
    send(b, BC, mac(2));
    drain(a);
    for (let k = 0; k < 4; k++) send(a, mac(2), mac(1), 200);
    const c = vale.portCounters('vale3:b');
    assert.equal(c.rxPackets, 255, 'a ring of 256 slots holds 255');
    assert.equal(c.rxDrops, 800 - 255);
    assert.equal(vale.portCounters('vale3:a').txPackets, 800);
    assert.equal(drain(b).length, 255);
    send(a, mac(2), mac(1), 10);
    assert.equal(drain(b).length, 10, 'room again once the receiver released its slots');
  } finally { a.close(); b.close(); }
});

test('port limit: 254 ports per switch, then ENOMEM; 16 switches, then ENOMEM', () => {
  const ports: Port[] = [];
  try {
    for (let k = 0; k < vale.VALE_MAX_PORTS; k++) ports.push(openPort(`vale4:p${k}@conf:slots=4`));
    assert.equal(vale.switchPorts('vale4').length, 254);
    assert.equal(code(() => openPort('vale4:one_more@conf:slots=4')), 'ENOMEM');
    // the last port number works: broadcast from p253 reaches p0
    send(ports[253]!, BC, mac(1));
    assert.equal(drain(ports[0]!).length, 1);
  } finally { for (const p of ports) p.close(); }
  assert.equal(vale.switches().includes('vale4'), false);
  const many: Port[] = [];
  try {
    for (let s = 0; s < vale.VALE_MAX_SWITCHES; s++) many.push(openPort(`valeS${s}:x@conf:slots=4`));
    assert.equal(code(() => openPort('valeS99:x@conf:slots=4')), 'ENOMEM');
  } finally { for (const p of many) p.close(); }
});

test('persistent port lifecycle', async () => {
  vale.createPersistentPort('pv1', { txSlots: 256, rxSlots: 256 });
  assert.equal(code(() => vale.createPersistentPort('pv1')), 'EEXIST');
  assert.equal(code(() => openPort('vale5:pv1')), 'ENXIO', 'not attached yet');
  assert.equal(vale.attach('vale5:pv1'), 0);
  assert.equal(code(() => vale.attach('vale5:pv1')), 'EBUSY');
  assert.equal(code(() => vale.removePersistentPort('pv1')), 'EBUSY', 'attached');
  const p = openPort('vale5:pv1');
  const q = openPort('vale5:q');
  try {
    assert.equal(p.txRings[0]!.numSlots, 256);
    assert.equal(code(() => vale.detach('vale5:pv1')), 'EBUSY', 'open');
    send(q, BC, mac(7));
    assert.equal(drain(p).length, 1);
    assert.deepEqual(vale.locate('vale5:pv1'), { bridge: vale.locate('vale5:q').bridge, port: 0 });
  } finally { p.close(); }
  // closed: the persistent port stays on the switch, and receives nothing while closed (counted)
  send(q, BC, mac(7));
  assert.equal(vale.portCounters('pv1').rxDrops, 1);
  assert.ok(vale.listAll().some((x) => x.name === 'vale5:pv1' && x.persistent));
  q.close();
  assert.ok(vale.switches().includes('vale5'), 'the persistent port keeps the switch');
  vale.detach('vale5:pv1');
  assert.equal(code(() => vale.detach('vale5:pv1')), 'ENXIO');
  assert.equal(vale.switches().includes('vale5'), false);
  vale.removePersistentPort('pv1');
  assert.equal(code(() => vale.removePersistentPort('pv1')), 'ENXIO');
  assert.equal(code(() => vale.attach('vale5:nosuch')), 'ENXIO');
});

test('bad names and bad geometry are refused', () => {
  for (const n of ['vale../x:a', 'vale0:', 'vale0:../a', 'vale0:a:b', 'vale/x:y', 'vale0:a b']) {
    assert.equal(code(() => openPort(n)), 'EINVAL', n);
  }
  assert.equal(code(() => openPort('vale0:a@conf:rings=17')), 'EINVAL');
  assert.equal(code(() => openPort('vale0:a@conf:slots=8192')), 'EINVAL');
  assert.equal(code(() => openPort('vale0:a^')), 'EINVAL');
  for (const n of ['../x', 'a/b', '', '.', '..', 'x'.repeat(16), 'vale0', 'a:b']) {
    assert.equal(code(() => vale.createPersistentPort(n)), 'EINVAL', n);
  }
  for (const n of ['valex', 'vale0:../../etc', 'eth0:x', 'vale../../x:y']) {
    assert.equal(code(() => vale.attach(n)), 'EINVAL', n);
  }
  assert.deepEqual(fs.readdirSync(DIR).filter((f) => !/^(registry|mem-\d+)$/.test(f)), []);
});

test('@N: a new VALE port made in an existing memory region; a missing region is ENXIO', () => {
  const a = openPort('vale5:mema');
  const regions = (): number => fs.readdirSync(DIR).filter((f) => /^mem-\d+$/.test(f)).length;
  const before = regions() - 1;
  const b = openPort(`vale5:memb@${a.memId}`);
  const c = openPort('vale5:memc');
  try {
    assert.equal(b.memId, a.memId, 'b lives in the memory of a');
    assert.notEqual(c.memId, a.memId, 'without @N a port gets its own region');
    // frames still go through the switch (a copy, as between any two ports)
    const tx = a.txRings[0]!;
    const at = tx.slotBufOffset(tx.head);
    a.mem.u8.set([...BC, ...mac(1), 0x08, 0x00, 1, 2, 3], at);
    tx.setSlotLen(tx.head, 17);
    tx.advance(tx.next(tx.head));
    a.txsync();
    b.rxsync();
    assert.equal(b.rxRings[0]!.space(), 1, 'b received the broadcast');
    assert.equal(code(() => openPort('vale5:memd@77')), 'ENXIO');
  } finally {
    a.close(); b.close(); c.close();
  }
  assert.equal(regions(), before, 'both regions went with their last ports');
});

test('pluggable lookup: the static MAC table example, loaded in every sender process', async () => {
  const a = openPort('vale6:a'), b = openPort('vale6:b'), c = openPort('vale6:c');
  try {
    const module = path.join(here, '..', '..', 'src', 'switch', 'lookups', 'static-mac.js');
    await assert.rejects(vale.setLookup('vale6', '/nonexistent/module.js'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
    await vale.setLookup('vale6', module, `${'02:00:00:00:00:0b'}=vale6:b 02:00:00:00:00:0c=2`);
    send(a, mac(0x0b), mac(1));
    send(a, mac(0x0c), mac(1));
    send(a, mac(0x0d), mac(1)); // unknown: dropped (default=drop)
    assert.equal(drain(b).length, 1);
    assert.equal(drain(c).length, 1);
    assert.equal(vale.portCounters('vale6:a').txDrops, 1);
    // another process forwards with it too
    const r = child(['recv', 'vale6:r', '5', '5000']);
    await r.ready;
    drain(a); drain(b); drain(c);
    const s = child(['send', 'vale6:s', '5', '60', '7', '02:00:00:00:00:0b']);
    await s.result;
    assert.equal(drain(b).length, 5, 'the child used the static table');
    r.proc.kill('SIGKILL');
    await vale.setLookup('vale6', null);
    assert.equal(vale.getLookup('vale6').module, '');
  } finally { a.close(); b.close(); c.close(); }
});

test('batch lookup: one call per batch with the learning bridge\'s answers; it filters, routes, and a throw or a bad answer drops', async () => {
  const a = openPort('vale15:a'), b = openPort('vale15:b'), c = openPort('vale15:c');
  try {
    send(b, BC, mac(0x0b)); send(c, BC, mac(0x0c)); // learnt: b, c
    drain(a); drain(b); drain(c);
    const num = (name: string): number => vale.switchPorts('vale15').find((p) => p.name === name)!.port;
    const module = path.join(here, 'helpers', 'batch-lookup.js');
    const helper = await import(module) as typeof import('./helpers/batch-lookup.js');
    await vale.setLookup('vale15', module, 'drop-id 15');
    // the learning table is cleared with a new lookup: learn again (these go through the lookup)
    send(b, BC, mac(0x0b)); send(c, BC, mac(0x0c));
    drain(a); drain(b); drain(c);
    helper.seen.length = 0;
    const drops0 = vale.portCounters('vale15:a').txDrops;
    send(a, mac(0x0b), mac(1), 3); // byte 14 of the frames: 14, 15, 16
    assert.equal(helper.seen.length, 1, 'one call for the batch');
    assert.deepEqual(helper.seen[0], { count: 3, srcPort: num('vale15:a'), dst: [num('vale15:b'), num('vale15:b'), num('vale15:b')] });
    assert.deepEqual(drain(b).map((f) => f[14]), [14, 16], 'the bridge\'s answer kept, the filtered frame dropped');
    assert.equal(drain(c).length, 0);
    assert.equal(vale.portCounters('vale15:a').txDrops - drops0, 1);
    send(a, BC, mac(1));
    assert.equal(helper.seen.at(-1)!.dst[0], vale.BROADCAST, 'a flood is BROADCAST');
    assert.equal(drain(b).length, 1); assert.equal(drain(c).length, 1);
    await vale.setLookup('vale15', module, `to ${num('vale15:c')}`);
    send(a, mac(0x0b), mac(1), 2);
    assert.equal(drain(c).length, 2, 'routed to c whatever the bridge said');
    assert.equal(drain(b).length, 0);
    for (const [config, what] of [['throw', 'a throw'], ['bad', 'an answer that is no port']]) {
      await vale.setLookup('vale15', module, config);
      const before = vale.portCounters('vale15:a').txDrops;
      send(a, mac(0x0b), mac(1), 2);
      assert.equal(vale.portCounters('vale15:a').txDrops - before, 2, `${what} drops`);
      assert.equal(drain(b).length + drain(c).length, 0);
    }
    await vale.setLookup('vale15', null);
  } finally { a.close(); b.close(); c.close(); }
});

// ---- several processes ------------------------------------------------------------------------

test('four sender processes into one port: no loss and per-sender order when there is room', async () => {
  const recv = child(['recv', 'vale7:r@conf:slots=4096', '4000', '20000']);
  await recv.ready;
  const senders = [1, 2, 3, 4].map((id) => child(['send', `vale7:s${id}`, '1000', '60', String(id), '02:00:00:00:0f:ff']));
  for (const s of senders) await s.result;
  const res = await recv.result as { received: number; per: Record<string, number>; orderErrors: number };
  assert.equal(res.orderErrors, 0);
  assert.equal(res.received, 4000);
  for (const id of [1, 2, 3, 4]) assert.equal(res.per[id], 1000);
});

test('worker threads of one process send into one port at once: no loss, order kept', async () => {
  const { Worker } = await import('node:worker_threads');
  const r = openPort('vale14:r@conf:slots=4096');
  try {
    send(r, BC, [2, 0, 0, 0, 0x0f, 0xff]);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { openPort } = await import(workerData.ports);
        const p = openPort(workerData.name);
        const t = p.txRings[0]; const u8 = p.mem.u8;
        for (let seq = 0; seq < 1000;) {
          let i = t.head;
          for (let k = 0; k < 50; k++, seq++) {
            const o = t.slotBufOffset(i);
            u8.set([2, 0, 0, 0, 0x0f, 0xff, 2, 0, 0, 0, 0, workerData.id, 0x88, 0xb5], o);
            u8[o + 14] = workerData.id; u8[o + 16] = seq & 255; u8[o + 17] = seq >> 8;
            t.setSlotLen(i, 60); t.setSlotFlags(i, 0); i = t.next(i);
          }
          t.advance(i); p.txsync();
        }
        p.close(); parentPort.postMessage('done');
      })();`;
    const ports = new URL('../../src/index.js', import.meta.url).href; // the top: openPort and the port types
    const workers = [1, 2, 3].map((id) => new Worker(code, { eval: true, workerData: { ports, id, name: `vale14:w${id}` }, env: { ...process.env } }));
    await Promise.all(workers.map((w) => new Promise((res, rej) => { w.once('message', res); w.once('error', rej); })));
    const got = drain(r);
    assert.equal(got.length, 3000);
    const last = new Map<number, number>();
    for (const f of got) {
      const id = f[14]!, seq = f[16]! | (f[17]! << 8);
      assert.ok(seq > (last.get(id) ?? -1), `order of sender ${id}`);
      last.set(id, seq);
    }
    await Promise.all(workers.map((w) => w.terminate()));
  } finally { r.close(); }
});

test('concurrent senders under load: order kept, every frame delivered or counted as dropped', async () => {
  const recv = child(['recv', 'vale8:r', '300000', '15000']);
  await recv.ready;
  const senders = [1, 2, 3].map((id) => child(['send', `vale8:s${id}`, '100000', '60', String(id), '02:00:00:00:0f:ff']));
  const done = await Promise.all(senders.map((s) => s.result));
  assert.equal(done.length, 3);
  const res = await recv.result as { received: number; orderErrors: number; empty: number; counters: { rxPackets: number; rxDrops: number } };
  assert.equal(res.orderErrors, 0);
  assert.equal(res.empty, 0);
  assert.equal(res.received, res.counters.rxPackets);
  assert.equal(res.counters.rxPackets + res.counters.rxDrops, 300000, `${res.counters.rxPackets} delivered + ${res.counters.rxDrops} dropped`);
});

test('a sender killed with SIGKILL while holding a lease does not wedge the receiver', async () => {
  const r = openPort('vale9:r');
  const a = openPort('vale9:a');
  try {
    send(r, BC, mac(0x0f)); // learn r
    drain(a);
    send(a, mac(0x0f), mac(1), 3);
    assert.equal(drain(r).length, 3);
    const hang = child(['hang', 'vale9:h', 'vale9:r']);
    const line = await hang.ready;
    assert.equal(line, 'ready 32');
    // frames sent after the hung lease wait behind it (published in lease order)
    send(a, mac(0x0f), mac(1), 5);
    assert.equal(drain(r).length, 0, 'published in lease order: nothing passes the open lease');
    hang.proc.kill('SIGKILL');
    await new Promise((res) => hang.proc.once('exit', res));
    // the receiver notices the dead owner (after a few empty rxsyncs or 5 ms)
    let got: Uint8Array[] = [];
    const deadline = Date.now() + 2000;
    while (got.length === 0 && Date.now() < deadline) { got = drain(r); await new Promise((res) => setTimeout(res, 2)); }
    assert.equal(got.filter((f) => f.length === 0).length, 32, 'the dead lease becomes empty slots');
    assert.equal(got.filter((f) => f.length === 60).length, 5);
    send(a, mac(0x0f), mac(1), 7);
    assert.equal(drain(r).length, 7, 'forwarding goes on');
    // a lease lock left held by a dead thread is taken over
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((res) => dead.once('exit', res));
    const ring = r.rxRings[0]!.offset;
    Atomics.store(r.mem.i32, (ring + L.KR_LEASE_LOCK) >>> 2, dead.pid!);
    send(a, mac(0x0f), mac(1), 4);
    assert.equal(drain(r).length, 4, 'the dead holder\'s lock was taken over');
    assert.equal(Atomics.load(r.mem.i32, (ring + L.KR_LEASE_LOCK) >>> 2), 0);
  } finally { a.close(); r.close(); }
});

test('SIGKILL of a sender process mid-stream: the switch keeps forwarding for the others', async () => {
  const r = openPort('vale10:r');
  const a = openPort('vale10:a');
  try {
    send(r, BC, mac(0x0f));
    drain(a);
    for (let round = 0; round < 3; round++) {
      const s = child(['send', `vale10:k${round}`, '100000000', '60', String(10 + round), '02:00:00:00:00:0f']);
      await s.ready;
      await new Promise((res) => setTimeout(res, 30 + 20 * round));
      for (let k = 0; k < 20; k++) drain(r);
      s.proc.kill('SIGKILL');
      await new Promise((res) => s.proc.once('exit', res));
    }
    for (let k = 0; k < 50; k++) { drain(r); await new Promise((res) => setTimeout(res, 1)); }
    send(a, mac(0x0f), mac(1), 9);
    const got = drain(r).filter((f) => f[6] === 2 && f[11] === 1);
    assert.equal(got.length, 9);
    // the killed senders' ports were collected
    vale.listAll();
    assert.deepEqual(vale.switchPorts('vale10').map((p) => p.name).sort(), ['vale10:a', 'vale10:r']);
  } finally { a.close(); r.close(); }
});

// ---- vale-ctl --------------------------------------------------------------------------------

test('vale-ctl: create, attach, list, errors in netmap form', async () => {
  let x = await cli(['-n', 'cv1', '-C', '512,256,2']);
  assert.equal(x.status, 0, x.err);
  x = await cli(['-n', 'cv1']);
  assert.equal(x.status, 1);
  assert.match(x.err, /^failed to create cv1: File exists/);
  x = await cli(['-a', 'vale11:cv1', '-v']);
  assert.equal(x.status, 0, x.err);
  assert.match(x.out, /port_index: 0/);
  const p = openPort('vale11:eph');
  try {
    assert.equal(p.txRings.length, 1);
    x = await cli([]);
    assert.equal(x.status, 0);
    assert.match(x.out, /^vale11:cv1 bridge_idx \d+ port_idx 0$/m);
    assert.match(x.out, /^vale11:eph bridge_idx \d+ port_idx 1$/m);
    x = await cli(['-l', 'vale11:eph']);
    assert.match(x.out, /bridge_idx: \d+\nport_idx:   1\n/);
    x = await cli(['-l', 'foo']);
    assert.notEqual(x.status, 0);
    assert.match(x.err, /invalid vale port name: 'foo'/);
    x = await cli(['-r', 'cv1']);
    assert.match(x.err, /^failed to remove cv1: Device or resource busy/);
    x = await cli(['-s', 'vale11']);
    assert.match(x.out, /vale11:eph .*tx_packets 0 .*rx_drops 0/);
  } finally { p.close(); }
  x = await cli(['-d', 'vale11:cv1']);
  assert.equal(x.status, 0, x.err);
  x = await cli(['-r', 'cv1']);
  assert.equal(x.status, 0, x.err);
  x = await cli(['-r', 'cv1']);
  assert.match(x.err, /^failed to remove cv1: No such device or address/);
  x = await cli(['-a', 'vale11:eth77']);
  assert.match(x.err, /^failed to attach vale11:eth77: No such device or address \(ENXIO: /);
  x = await cli(['-l', 'valeNone:x']);
  assert.match(x.err, /^failed to list valeNone:x: No such file or directory/);
  for (let k = 0; k < 1; k++) {
    x = await cli(['-q']);
    assert.notEqual(x.status, 0);
    assert.match(x.err, /usage/);
  }
  x = await cli(['--help']);
  assert.equal(x.status, 0);
});
