/**
 * The AF_XDP backend of netmap:IF (src/interfaces/xdp-socket.ts, xdp-program.ts, port.ts): the
 * default choice on a veth, the fallbacks (hook taken, geometry, forced backend), one socket per
 * queue on a multi-queue veth, multi-buffer (jumbo) frames both ways, and a SIGKILLed owner
 * leaving the interface's XDP hook free.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import dgram from 'node:dgram';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-xdp-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));
// this file tests the backends by name: the suite-wide default must not force one
delete process.env.NETMAP_TS_IF_BACKEND;

const { skipReason, withLab, sleep, Lab } = await import('../helpers/netns.js');
const { openPort, POLLIN, POLLOUT } = await import('../../src/ports/index.js');
await import('../../src/port-types.js');
const { PacketTransmitter, PacketReceiver } = await import('../../src/interfaces/packet.js');
const { attachXdp, detachXdp } = await import('../../src/interfaces/xdp-program.js');
const { interfaceIndex } = await import('../../src/interfaces/ifinfo.js');
const { interfacePortStats } = await import('../../src/interfaces/port.js');
const { space } = await import('../../src/memory/space.js');
const L = await import('../../src/memory/layout.js');
const { NetmapError } = await import('../../src/errors.js');
const { udpFrame, parseUdpFrame, mac } = await import('./frames.js');
const bpf = await import('../../src/native/bpf.js');
const { TCX_INGRESS_NAME, TCX_EGRESS_NAME, splitMethod, nftTableName } = await import('../../src/interfaces/split.js');

const skip = skipReason(['tc', 'ping', ...(splitMethod() === 'nft' ? ['nft'] : [])]);
if (skip !== null) console.log(`# skipping AF_XDP tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 90_000 };
const isCode = (code: string) => (e: unknown): boolean => e instanceof NetmapError && e.code === code;
const PORTS = new URL('../../src/index.js', import.meta.url).pathname; // the top: openPort and the port types
const TYPES = new URL('../../src/port-types.js', import.meta.url).pathname;
type LabT = InstanceType<typeof Lab>;
type PortT = ReturnType<typeof openPort>;

/** Whether an XDP program is attached to `dev` in `ns` (ip link shows "prog/xdp"). */
function hasXdp(lab: LabT, ns: string, dev: string): boolean {
  return /prog\/xdp/.test(lab.must(ns, 'ip', ['-d', 'link', 'show', 'dev', dev]).stdout);
}

/** Names of the tcx programs on `dev` at `attachType` (this thread's namespace). */
function tcxNames(dev: string, attachType: number): string[] {
  return bpf.queryPrograms(interfaceIndex(dev), attachType).map((id) => bpf.programName(id) ?? '?');
}

/** Which of the split's two hooks are on `dev` in `ns` (this thread in it): its ingress cut, its egress chain or program. */
function splitHooks(lab: LabT, ns: string, dev: string): { ingress: boolean; egress: boolean } {
  if (splitMethod() === 'nft') {
    const out = lab.run(ns, 'nft', ['list', 'table', 'netdev', nftTableName(interfaceIndex(dev))]).stdout;
    return { ingress: /chain in \{/.test(out), egress: /chain out \{/.test(out) };
  }
  return { ingress: tcxNames(dev, bpf.BPF_TCX_INGRESS).includes(TCX_INGRESS_NAME), egress: tcxNames(dev, bpf.BPF_TCX_EGRESS).includes(TCX_EGRESS_NAME) };
}

function ping(lab: LabT, ns: string, addr: string): boolean {
  return lab.run(ns, 'ping', ['-c', '1', '-W', '1', addr]).status === 0;
}

/** Sleeps on `p` for RX and takes every frame of every RX ring: { ring, at, len, flags }. */
async function receive(p: PortT, want: number, ms = 5000): Promise<{ ring: number; at: number; len: number; flags: number }[]> {
  const got: { ring: number; at: number; len: number; flags: number }[] = [];
  const deadline = Date.now() + ms;
  while (got.length < want && Date.now() < deadline) {
    p.poll(POLLIN, 100);
    for (const r of p.rxRings) {
      if (r.host) continue;
      while (!r.empty()) {
        const i = r.head;
        got.push({ ring: r.id, at: r.slotBufOffset(i), len: r.slotLen(i), flags: r.slotFlags(i) });
        r.advance(r.next(i));
      }
    }
    await sleep(0);
  }
  return got;
}


/**
 * From namespace `b`, sends `n` UDP frames (flow 1, sequence numbers 0..n-1) through `tx`, built in
 * `scratch` (a buffer of the port under test); with `paced`, a kick and a 2 ms pause every 64
 * frames (the receiver keeps up), else all at once. Back in namespace `a` after; returns how
 * many `tx` took.
 */
async function sendFromPeer(lab: LabT, a: string, b: string, tx: InstanceType<typeof PacketTransmitter>, scratch: number, n: number, paced: boolean): Promise<number> {
  let sent = 0;
  lab.enter(b);
  for (let s = 0; s < n; s++) {
    udpFrame(scratch, mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), 1, s);
    if (tx.send(scratch, 60)) sent++;
    if (paced && s % 64 === 63) { tx.kick(); await sleep(2); }
  }
  tx.kick();
  lab.enter(a);
  return sent;
}


test('AF_XDP: frames the kernel had no buffer for are counted once in the port\'s drops', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const peerTx = new PacketTransmitter('b0');
  lab.enter(a);
  // 64 RX slots: the kernel has 63 buffers to fill, the rest of a burst finds the fill ring empty
  const p = openPort('netmap:a0@conf:rx_slots=64');
  try {
    assert.equal(p.backend, 'xdp native copy');
    p.rxsync(); // lends the free slots' buffers
    const n = 300;
    const sent = await sendFromPeer(lab, a, b, peerTx, p.txRings[0]!.slotBufOffset(0), n, false);
    await sleep(200);
    const r = p.rxRings[0]!;
    p.rxsync();
    let got = 0;
    while (!r.empty()) { got++; r.advance(r.next(r.head)); }
    assert.ok(sent === n && got > 0 && got < sent, `a burst larger than the ring: ${got} of ${sent} taken`);
    assert.equal(interfacePortStats(p)!.rxDrops, sent - got, 'each frame not received is one drop');
  } finally {
    p.close();
    lab.enter(b);
    peerTx.close();
    lab.leave();
  }
}));

test('AF_XDP by default on a veth (native, copy mode): frames in by buffer swap and out by address; the hook is free after close', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const peerTx = new PacketTransmitter('b0');
  const peerRx = new PacketReceiver('b0');
  lab.enter(a);
  const p = openPort('netmap:a0');
  try {
    assert.equal(p.backend, 'xdp native copy');
    assert.ok(hasXdp(lab, a, 'a0'), 'the redirect program is on a0');
    const r = p.rxRings[0]!;
    // in: 300 frames, each once, each in a buffer no other slot of the ring holds
    const sent = await sendFromPeer(lab, a, b, peerTx, p.txRings[0]!.slotBufOffset(0), 300, true);
    const got = await receive(p, sent);
    const seqs = new Set<number>();
    for (const f of got) {
      const u = parseUdpFrame(f.at, f.len);
      if (u !== null) { assert.equal(seqs.has(u.seq), false, `frame ${u.seq} received twice`); seqs.add(u.seq); }
    }
    assert.ok(seqs.size >= sent * 0.95, `received ${seqs.size} of ${sent}`);
    assert.equal(interfacePortStats(p)!.strayDescriptors, 0, 'every RX descriptor was a buffer the ring lent');
    // the XDP program is the wire cut: no ingress chain or program of the split, the egress one is there
    assert.deepEqual(splitHooks(lab, a, 'a0'), { ingress: false, egress: true });
    const bufs = new Set<number>();
    for (let i = 0; i < r.numSlots; i++) {
      const idx = r.slotBufIdx(i);
      assert.ok(r.validBuf(idx), `slot ${i} has a valid buffer`);
      assert.equal(bufs.has(idx), false, `buffer ${idx} is in two slots`);
      bufs.add(idx);
    }
    // out: 100 frames posted by address, counted by the peer
    const t = p.txRings[0]!;
    for (let s = 0; s < 100; s++) {
      p.poll(POLLOUT, 1000);
      const i = t.head;
      t.setSlotLen(i, udpFrame(t.slotBufOffset(i), mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 2, s));
      t.advance(t.next(i));
      if (s % 32 === 31) p.txsync();
    }
    p.txsync();
    lab.enter(b);
    const out = new Set<number>();
    const deadline = Date.now() + 5000;
    while (out.size < 100 && Date.now() < deadline) {
      peerRx.wait(50);
      while (peerRx.next() >= 0) {
        const u = parseUdpFrame(peerRx.data, peerRx.length);
        if (u !== null && u.flow === 2) out.add(u.seq);
      }
    }
    lab.enter(a);
    assert.equal(out.size, 100, 'every frame sent by address reached the peer');
    // completions give the slots back
    const until = Date.now() + 2000;
    while (t.space() < t.numSlots - 1 && Date.now() < until) { p.txsync(); await sleep(5); }
    assert.equal(t.space(), t.numSlots - 1, 'every TX slot came back');
  } finally {
    p.close();
    peerTx.close();
    peerRx.close();
    lab.leave();
  }
  // a closed handle's properties fail with ENXIO, never read unmapped memory
  assert.throws(() => p.backend, (e: unknown) => (e as { code?: string }).code === 'ENXIO');
  assert.equal(hasXdp(lab, a, 'a0'), false, 'the XDP link went with the port');
}));

test('the UMEM covers the buffers in use and as many again; a buffer from beyond (a third interface\'s) makes it grow, and frames flow both ways', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.veth(a, 'c0', b, 'd0');
  lab.veth(a, 'e0', b, 'f0');
  lab.enter(b);
  const peerTx = new PacketTransmitter('b0');
  const peerRx = new PacketReceiver('b0');
  lab.enter(a);
  const p = openPort('netmap:a0');
  const others: PortT[] = [];
  try {
    assert.equal(p.backend, 'xdp native copy');
    const r = p.rxRings[0]!, t = p.txRings[0]!;
    const window = interfacePortStats(p)!.umemBuffers;
    assert.ok(window > 0 && window < r.numBufs, `the UMEM is part of the pool (${window} of ${r.numBufs} buffers)`);
    for (const ring of [...p.rxRings, ...p.txRings]) {
      for (let i = 0; i < ring.numSlots; i++) assert.ok(ring.slotBufIdx(i) < window, 'the port\'s own buffers are in its UMEM');
    }
    others.push(openPort('netmap:c0'), openPort('netmap:e0', { extraBuffers: 30000 }));
    const far = others[1]!.txRings[0]!;
    const foreign: number[] = [];
    for (let i = 0; i < far.numSlots && foreign.length < 2; i++) if (far.slotBufIdx(i) >= window) foreign.push(i);
    assert.equal(foreign.length, 2, 'the third interface\'s buffers lie beyond the first one\'s UMEM');
    // TX: a slot given a buffer from beyond the UMEM (netmap's zero-copy swap) is sent all the same
    const swapIn = (ring: typeof t, i: number, j: number): void => {
      const mine = ring.slotBufIdx(i);
      ring.setSlotBufIdx(i, far.slotBufIdx(j));
      far.setSlotBufIdx(j, mine);
      ring.setSlotFlags(i, ring.slotFlags(i) | L.NS_BUF_CHANGED);
    };
    const i = t.head;
    swapIn(t, i, foreign[0]!);
    t.setSlotLen(i, udpFrame(t.slotBufOffset(i), mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 7, 1));
    t.advance(t.next(i));
    p.txsync();
    assert.equal(interfacePortStats(p)!.umemBuffers, r.numBufs, 'the UMEM grew to the whole pool');
    assert.equal(p.backend, 'xdp native copy');
    lab.enter(b);
    let seen = false;
    const deadline = Date.now() + 5000;
    while (!seen && Date.now() < deadline) {
      peerRx.wait(50);
      while (peerRx.next() >= 0) { const u = parseUdpFrame(peerRx.data, peerRx.length); if (u !== null && u.flow === 7) seen = true; }
    }
    assert.ok(seen, 'the frame in the foreign buffer reached the peer');
    // RX: frames still arrive after the sockets were remade (same descriptor numbers, woken by poll)
    const scratch = t.slotBufOffset(t.next(t.head));
    let sent = 0;
    for (let s = 0; s < 50; s++) {
      udpFrame(scratch, mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), 8, s);
      if (peerTx.send(scratch, 60)) sent++;
    }
    peerTx.kick();
    lab.enter(a);
    const got = await receive(p, sent);
    const seqs = new Set(got.map((f) => parseUdpFrame(f.at, f.len)).filter((u) => u !== null && u.flow === 8).map((u) => u!.seq));
    assert.ok(seqs.size >= sent * 0.95, `received ${seqs.size} of ${sent} after the growth`);
    // every slot of the RX ring still has its own valid buffer
    const bufs = new Set<number>();
    for (let k = 0; k < r.numSlots; k++) { assert.ok(r.validBuf(r.slotBufIdx(k))); bufs.add(r.slotBufIdx(k)); }
    assert.equal(bufs.size, r.numSlots, 'no buffer is in two RX slots');
    // RX: c0's UMEM (opened second) grows when a received slot is given back with an extra
    // buffer of e0 from beyond it; frames keep coming in
    const c = others[0]!, e = others[1]!, cr = c.rxRings[0]!;
    const cWindow = interfacePortStats(c)!.umemBuffers;
    assert.ok(cWindow < cr.numBufs, `c0's UMEM is part of the pool (${cWindow})`);
    let prev = 0, x = e.bufsHead;
    while (x !== 0 && x < cWindow) { prev = x; x = c.mem.u32[e.bufOffset(x) >>> 2]!; }
    assert.ok(x !== 0, 'an extra buffer of e0 lies beyond c0\'s UMEM');
    const sendFlow = async (flow: number, count: number): Promise<number> => {
      lab.enter(b);
      const tx = new PacketTransmitter('d0');
      let ok = 0;
      for (let s = 0; s < count; s++) {
        udpFrame(scratch, mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), flow, s);
        if (tx.send(scratch, 60)) ok++;
      }
      tx.kick();
      tx.close();
      lab.enter(a);
      return ok;
    };
    await sendFlow(9, 1);
    for (let k = 0; k < 50 && cr.empty(); k++) { c.poll(POLLIN, 100); await sleep(0); }
    assert.ok(!cr.empty(), 'c0 received a frame');
    // the received slot (in [head, tail): the user's) is given back with buffer X instead
    const h = cr.head, y = cr.slotBufIdx(h);
    const next = c.mem.u32[e.bufOffset(x) >>> 2]!;
    if (prev === 0) e.bufsHead = next; else c.mem.u32[e.bufOffset(prev) >>> 2] = next;
    c.mem.u32[e.bufOffset(y) >>> 2] = e.bufsHead; // c0's buffer takes the extra's place in e0's list
    e.bufsHead = y;
    cr.setSlotBufIdx(h, x);
    cr.setSlotFlags(h, cr.slotFlags(h) | L.NS_BUF_CHANGED);
    cr.advance(cr.next(h));
    // the slot before hwcur is the ring's gap: X is lent once the ring moves on past it
    for (const flow of [10, 11]) {
      const more = await sendFlow(flow, 50);
      const got = new Set((await receive(c, more)).map((f) => parseUdpFrame(f.at, f.len)).filter((u) => u !== null && u.flow === flow).map((u) => u!.seq));
      assert.ok(got.size >= more * 0.95, `c0 received ${got.size} of ${more} (flow ${flow})`);
      c.rxsync();
    }
    assert.equal(interfacePortStats(c)!.umemBuffers, cr.numBufs, 'c0\'s UMEM grew to the whole pool');
    assert.ok([...Array(cr.numSlots).keys()].some((k) => cr.slotBufIdx(k) === x), 'the extra buffer is in a slot of c0\'s RX ring');
  } finally {
    for (const o of others) o.close();
    p.close();
    peerTx.close();
    peerRx.close();
    lab.leave();
  }
}));

test('another XDP program on the hook: AF_PACKET instead, EBUSY when backend=xdp is asked; EOPNOTSUPP when the geometry cannot be served', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(a);
  try {
    const other = attachXdp('a0', interfaceIndex('a0'), 1);
    try {
      const p = openPort('netmap:a0');
      assert.equal(p.backend, 'packet');
      assert.match((p.adapter as unknown as { backendNote: string }).backendNote, /another XDP program/);
      p.close();
      assert.throws(() => openPort('netmap:a0@conf:backend=xdp'), (e: unknown) => isCode('EBUSY')(e) && /another XDP program/.test((e as Error).message));
      assert.ok(hasXdp(lab, a, 'a0'), 'the other program is still there');
    } finally {
      detachXdp(other);
    }
    const x = openPort('netmap:a0@conf:backend=xdp');
    assert.equal(x.backend, 'xdp native copy');
    // a second handle of the process asking for the other backend: EBUSY
    assert.throws(() => openPort('netmap:a0@conf:backend=packet'), isCode('EBUSY'));
    x.close();
    // two RX rings on a one-queue veth: AF_XDP cannot map ring k to queue k
    const f = openPort('netmap:a0@conf:rings=2');
    assert.equal(f.backend, 'packet');
    f.close();
    assert.throws(() => openPort('netmap:a0@conf:rings=2,backend=xdp'), (e: unknown) => isCode('EOPNOTSUPP')(e) && /queue/.test((e as Error).message));
    assert.throws(() => openPort('netmap:a0@conf:backend=afxdp'), isCode('EINVAL'));
    const pk = openPort('netmap:a0@conf:backend=packet');
    assert.equal(pk.backend, 'packet');
    assert.equal(hasXdp(lab, a, 'a0'), false);
    pk.close();
  } finally {
    lab.leave();
  }
}));

test('a driver without native XDP (a bridge device): the program runs in SKB mode, TX completes', opts, () => withLab(async (lab) => {
  const a = lab.ns('a');
  lab.must(a, 'ip', ['link', 'add', 'd0', 'type', 'bridge']);
  lab.must(a, 'ip', ['link', 'set', 'd0', 'up']);
  lab.enter(a);
  try {
    const p = openPort('netmap:d0');
    try {
      assert.equal(p.backend, 'xdp skb copy');
      // in SKB mode the program passes what it does not redirect: the split's ingress chain or program cuts
      assert.deepEqual(splitHooks(lab, a, 'd0'), { ingress: true, egress: true });
      const t = p.txRings[0]!;
      for (let s = 0; s < 40; s++) {
        const i = t.head;
        t.setSlotLen(i, udpFrame(t.slotBufOffset(i), mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 3, s));
        t.advance(t.next(i));
      }
      p.txsync();
      const until = Date.now() + 2000;
      while (t.space() < t.numSlots - 1 && Date.now() < until) { p.txsync(); await sleep(5); }
      assert.equal(t.space(), t.numSlots - 1, '40 frames (more than the 32 of one sendto) completed');
      assert.equal(t.packets, 40);
    } finally {
      p.close();
    }
  } finally {
    lab.leave();
  }
}));

test('a veth with 4 queues: 4 rings, one socket per queue, every frame delivered once, a flow on one ring', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.must(a, 'ip', ['link', 'add', 'm0', 'numtxqueues', '4', 'numrxqueues', '4', 'type', 'veth', 'peer', 'name', 'n0', 'numtxqueues', '4', 'numrxqueues', '4', 'netns', b]);
  lab.must(a, 'ip', ['link', 'set', 'm0', 'up']);
  lab.must(b, 'ip', ['link', 'set', 'n0', 'up']);
  lab.addr(b, 'n0', '198.18.0.2/24');
  lab.must(b, 'ip', ['neigh', 'add', '198.18.0.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'n0']);
  lab.enter(a);
  const p = openPort('netmap:m0');
  try {
    assert.equal(p.backend, 'xdp native copy');
    assert.equal(p.rxRings.filter((r) => !r.host).length, 4);
    // one AF_XDP socket per queue: a queue without one would pass its frames to the stack (and the
    // split's ingress cut), so "every frame delivered, over several rings" below needs all four
    // 64 UDP flows from b's stack: the veth picks the queue by flow hash
    const flows = 64, per = 8;
    lab.enter(b);
    const socks = [];
    for (let f = 0; f < flows; f++) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((ok) => s.bind(3000 + f, '198.18.0.2', ok));
      socks.push(s);
    }
    lab.enter(a);
    let sent = 0;
    for (let q = 0; q < per; q++) {
      await Promise.all(socks.map((s, f) => new Promise<void>((ok) => {
        const m = Buffer.alloc(8);
        m.writeUInt32BE(f, 0);
        m.writeUInt32BE(q, 4);
        s.send(m, 2000, '198.18.0.1', (err) => { if (err === null) sent++; ok(); });
      })));
      await sleep(5);
    }
    for (const s of socks) s.close();
    const got = await receive(p, sent);
    const seen = new Set<string>();
    const perRing = [0, 0, 0, 0];
    const ringOf = new Map<number, number>();
    const v = space().view;
    for (const g of got) {
      if (g.len < 50 || v.getUint16(g.at + 12) !== 0x0800 || space().u8[g.at + 23] !== 17) continue;
      const flow = v.getUint32(g.at + 42), seq = v.getUint32(g.at + 46);
      const key = `${flow}/${seq}`;
      assert.equal(seen.has(key), false, `frame ${key} delivered twice`);
      seen.add(key);
      perRing[g.ring]!++;
      const was = ringOf.get(flow);
      if (was !== undefined) assert.equal(g.ring, was, `flow ${flow} stays on one ring`);
      ringOf.set(flow, g.ring);
    }
    assert.equal(seen.size, sent, `every frame delivered (${seen.size} of ${sent}; per ring ${perRing.join(' ')})`);
    assert.ok(perRing.filter((x) => x > 0).length >= 2, `flows spread over the queues: ${perRing.join(' ')}`);
  } finally {
    p.close();
    lab.leave();
  }
}));

test('jumbo frames (MTU 9000): in as NS_MOREFRAG chains of 1792-byte pieces, out from a chain as one frame', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.must(a, 'ip', ['link', 'set', 'a0', 'mtu', '9000']);
  lab.must(b, 'ip', ['link', 'set', 'b0', 'mtu', '9000']);
  lab.addr(b, 'b0', '198.18.0.2/24');
  lab.must(b, 'ip', ['neigh', 'add', '198.18.0.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'b0']);
  lab.enter(b);
  const peerRx = new PacketReceiver('b0');
  lab.enter(a);
  const p = openPort('netmap:a0');
  try {
    assert.equal(p.backend, 'xdp native copy');
    // in: a 4000-byte ping is a 4042-byte frame: 1792 + 1792 + 458
    lab.spawn(b, 'ping', ['-c', '1', '-s', '4000', '-W', '1', '198.18.0.1']);
    const got = await receive(p, 3);
    const chain = got.slice(0, 3);
    assert.deepEqual(chain.map((f) => f.len), [1792, 1792, 458]);
    assert.deepEqual(chain.map((f) => f.flags & L.NS_MOREFRAG), [L.NS_MOREFRAG, L.NS_MOREFRAG, 0]);
    const u8 = space().u8;
    assert.equal(u8[chain[0]!.at + 12]! << 8 | u8[chain[0]!.at + 13]!, 0x0800);
    assert.equal(u8[chain[0]!.at + 14 + 9], 1, 'ICMP');
    // out: a 5000-byte UDP frame written as three slots
    const t = p.txRings[0]!;
    const big = Buffer.alloc(5000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    Buffer.from([0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5]).copy(big, 0); // local experimental ethertype
    let off = 0, i = t.head;
    const pieces = [2048, 2048, 904];
    pieces.forEach((len, k) => {
      u8.set(big.subarray(off, off + len), t.slotBufOffset(i));
      t.setSlotLen(i, len);
      t.setSlotFlags(i, k < pieces.length - 1 ? L.NS_MOREFRAG : 0);
      off += len;
      i = t.next(i);
    });
    t.advance(i);
    p.txsync();
    lab.enter(b);
    let seen = -1;
    const deadline = Date.now() + 3000;
    while (seen < 0 && Date.now() < deadline) {
      peerRx.wait(50);
      while (peerRx.next() >= 0) {
        if (peerRx.length === 5000 && Buffer.from(space().u8.subarray(peerRx.data, peerRx.data + 5000)).equals(big)) seen = peerRx.length;
      }
    }
    lab.enter(a);
    assert.equal(seen, 5000, 'the chain left as one 5000-byte frame, byte for byte');
  } finally {
    p.close();
    peerRx.close();
    lab.leave();
  }
}));

/** A child process in namespace `ns` that opens `name` and holds it; resolves once it said 'ready BACKEND' (or exited, or 15 s passed). */
async function spawnOwner(lab: LabT, ns: string, name: string): Promise<{ child: ReturnType<LabT['spawn']>; out: string; deadline: number }> {
  const script = `const p = await import(${JSON.stringify(PORTS)}); await import(${JSON.stringify(TYPES)}); const port = p.openPort(${JSON.stringify(name)}); console.log('ready ' + port.backend); setInterval(() => {}, 1000);`;
  const child = lab.spawn(ns, process.execPath, ['--input-type=module', '-e', script]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 15_000;
  while (!out.includes('ready') && child.exitCode === null && Date.now() < deadline) await sleep(20);
  return { child, out, deadline };
}

test('SIGKILL of the owner: no XDP link is left on the interface, which opens with AF_XDP at once', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const { child, out, deadline } = await spawnOwner(lab, a, 'netmap:a0');
  assert.match(out, /ready xdp native copy/);
  assert.ok(hasXdp(lab, a, 'a0'));
  child.kill('SIGKILL');
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(20);
  // the link's last descriptor closed with the process: the hook is free without any open
  let free = false;
  for (const until = Date.now() + 2000; !free && Date.now() < until; await sleep(20)) free = !hasXdp(lab, a, 'a0');
  assert.ok(free, 'no XDP program left on a0');
  lab.enter(a);
  try {
    const p = openPort('netmap:a0@conf:backend=xdp');
    assert.equal(p.backend, 'xdp native copy');
    p.close();
  } finally {
    lab.leave();
  }
}));

test('the XDP program is the wire cut: with no socket on any queue (netmap:IF^) the stack sees nothing from the wire; after close, and at once after SIGKILL, it does', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  assert.ok(ping(lab, b, '198.18.0.1'), 'ping works before');
  lab.enter(a);
  const p = openPort('netmap:a0^');
  try {
    assert.ok(hasXdp(lab, a, 'a0'), 'the program is attached though no ring has a socket');
    assert.equal(splitHooks(lab, a, 'a0').ingress, false, 'no ingress chain or program of the split: the XDP program cuts');
    lab.leave();
    assert.equal(ping(lab, b, '198.18.0.1'), false, 'the stack does not see the wire while the port is open');
    lab.enter(a);
  } finally {
    p.close();
    lab.leave();
  }
  assert.equal(hasXdp(lab, a, 'a0'), false);
  lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']);
  assert.ok(ping(lab, b, '198.18.0.1'), 'ping works after close');
  // a SIGKILLed owner: the link goes with its process, and the cut with it
  const { child, out, deadline } = await spawnOwner(lab, a, 'netmap:a0^');
  assert.match(out, /ready xdp native/);
  assert.equal(ping(lab, b, '198.18.0.1'), false, 'cut while the child holds the port');
  child.kill('SIGKILL');
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(20);
  let free = false;
  for (const until = Date.now() + 2000; !free && Date.now() < until; await sleep(20)) free = !hasXdp(lab, a, 'a0');
  assert.ok(free, 'no XDP program left on a0');
  lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']);
  assert.ok(ping(lab, b, '198.18.0.1'), 'the stack sees the wire at once after SIGKILL, without a next open');
}));
