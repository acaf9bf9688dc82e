import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-if-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep } = await import('../helpers/netns.js');
const { PacketReceiver, PacketTransmitter, FANOUT_HASH } = await import('../../src/interfaces/packet.js');
const { interfaceInfo, interfaceIndex, formatMac, checkInterfaceName } = await import('../../src/interfaces/ifinfo.js');
const { NetmapError } = await import('../../src/errors.js');
const { udpFrame, parseUdpFrame, mac } = await import('./frames.js');
const { space } = await import('../../src/memory/space.js');
const packetSocket = await import('../../src/interfaces/packet-socket.js');
const native = await import('../../src/native/index.js');

const skip = skipReason();
if (skip !== null) console.log(`# skipping interface tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 60_000 };

const DST = mac('02:00:00:00:00:02');
const SRC = mac('02:00:00:00:00:01');

function spinMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function promiscuity(lab: { must(ns: string, c: string, a: string[]): { stdout: string } }, ns: string, dev: string): number {
  const j = JSON.parse(lab.must(ns, 'ip', ['-d', '-j', 'link', 'show', 'dev', dev]).stdout) as Array<{ promiscuity: number }>;
  return j[0]!.promiscuity;
}

/** Sends `count` frames of flows 0..flows-1 through `tx`, bounded in time; returns frames sent. */
function blast(tx: InstanceType<typeof PacketTransmitter>, count: number, flows = 1, seq0 = 0): number {
  let sent = 0;
  const deadline = Date.now() + 10_000;
  while (sent < count && Date.now() < deadline) {
    tx.reclaim();
    let batch = 0;
    while (sent < count && batch < 256) {
      const at = tx.slot();
      if (at < 0) break;
      tx.commit(udpFrame(at, DST, SRC, sent % flows, seq0 + sent));
      sent++;
      batch++;
    }
    tx.kick();
    if (batch === 0) tx.wait(5);
  }
  return sent;
}

/** Drains `rx` until `want` frames of ours arrived or `ms` passed. */
function drain(rx: InstanceType<typeof PacketReceiver>, want: number, ms: number, seen?: (flow: number, seq: number) => void): number {
  let got = 0;
  const deadline = Date.now() + ms;
  while (got < want && Date.now() < deadline) {
    while (rx.next() >= 0) {
      const f = parseUdpFrame(rx.data, rx.length);
      if (f === null) continue;
      got++;
      seen?.(f.flow, f.seq);
    }
    if (got < want) rx.wait(5);
  }
  return got;
}

test('interface look-ups: index, MAC, MTU, flags; ENXIO and EINVAL', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const shown = JSON.parse(lab.must(a, 'ip', ['-j', 'link', 'show', 'dev', 'a0']).stdout) as Array<{ address: string; mtu: number; ifindex: number }>;
  lab.enter(a);
  const info = interfaceInfo('a0');
  assert.equal(info.index, shown[0]!.ifindex);
  assert.equal(formatMac(info.mac), shown[0]!.address);
  assert.equal(info.mtu, shown[0]!.mtu);
  assert.equal(info.up, true);
  assert.equal(info.running, true);
  assert.ok(info.rxQueues >= 1 && info.txQueues >= 1);
  assert.throws(() => interfaceIndex('nmts-none'), (e: unknown) => e instanceof NetmapError && e.code === 'ENXIO');
  assert.throws(() => interfaceInfo('b0'), (e: unknown) => e instanceof NetmapError && e.code === 'ENXIO', 'b0 lives in the other namespace');
  for (const bad of ['', 'a/b', 'x'.repeat(16), 'a b', '..']) {
    assert.throws(() => checkInterfaceName(bad), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL', bad);
  }
  assert.throws(() => new PacketReceiver('nmts-none'), (e: unknown) => e instanceof NetmapError && e.code === 'ENXIO');
  assert.throws(() => new PacketTransmitter('nmts-none'), (e: unknown) => e instanceof NetmapError && e.code === 'ENXIO');
  assert.throws(() => new PacketReceiver('a0', { blockSize: 5000 }), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  // link state follows the peer
  lab.must(b, 'ip', ['link', 'set', 'b0', 'down']);
  const deadline = Date.now() + 3000;
  while (interfaceInfo('a0').running && Date.now() < deadline) spinMs(10);
  assert.equal(interfaceInfo('a0').running, false);
  lab.leave();
}));

test('TX ring: frames reach the peer, counted by the kernel; one kick per batch', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const before = lab.counters(b, 'b0');
  lab.enter(a);
  const tx = new PacketTransmitter('a0', { frames: 512 });
  const N = 20_000;
  try {
    assert.equal(blast(tx, N), N);
    const deadline = Date.now() + 5000;
    while (tx.inFlight > 0 && Date.now() < deadline) tx.wait(5);
    assert.equal(tx.inFlight, 0, 'every frame completed');
    assert.ok(tx.kicks < N / 50, `batched kicks (${tx.kicks} for ${N} frames)`);
    assert.equal(tx.kickErrors, 0);
  } finally {
    tx.close();
    lab.leave();
  }
  const after = lab.counters(b, 'b0');
  const arrived = after.rxPackets - before.rxPackets;
  assert.ok(arrived >= N && arrived <= N + 20, `peer counted ${arrived} of ${N}`);
  assert.ok(after.rxBytes - before.rxBytes >= N * 60);
}));

test('RX ring: every frame the peer sends arrives once, in order; kernel statistics agree', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const tx = new PacketTransmitter('b0');
  lab.enter(a);
  const rx = new PacketReceiver('a0', { blockCount: 64 });
  try {
    const N = 20_000;
    let got = 0, next = 0, disorder = 0;
    const deadline = Date.now() + 10_000;
    let sent = 0;
    while ((sent < N || got < N) && Date.now() < deadline) {
      if (sent < N) sent += blast(tx, Math.min(1000, N - sent), 1, sent);
      got += drain(rx, N, 1, (_f, seq) => { if (seq !== next) disorder++; next = seq + 1; });
    }
    assert.equal(sent, N);
    assert.equal(got, N);
    assert.equal(disorder, 0);
    const st = rx.stats();
    assert.equal(st.drops, 0);
    assert.ok(st.packets >= N);
    assert.equal(rx.next(), -1);
  } finally {
    rx.close();
    tx.close();
    lab.leave();
  }
}));

test('per-frame RX ring (TPACKET_V2): frames arrive once, in order, at once; a frame longer than a ring frame arrives whole from the socket queue', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  for (const [ns, dev] of [[a, 'a0'], [b, 'b0']] as const) lab.must(ns, 'ip', ['link', 'set', dev, 'mtu', '9000']);
  lab.enter(b);
  const tx = new PacketTransmitter('b0', { frameSize: 16384, frames: 64 });
  lab.enter(a);
  const rx = new PacketReceiver('a0', { perFrame: true, frameSize: 2048, blockSize: 65536, blockCount: 8 });
  try {
    assert.equal(rx.perFrame, true);
    // a frame is ours as soon as it is sent (a veth delivers inside the sender's kick): no block
    // to fill, no retire timer — a V3 ring shows none of these before its timer
    const FIRST = 5;
    let immediate = 0;
    for (let k = 0; k < FIRST; k++) {
      lab.enter(b);
      assert.equal(blast(tx, 1, 1, k), 1);
      lab.enter(a);
      let seq = -1;
      if (rx.next() >= 0) {
        immediate++;
        seq = parseUdpFrame(rx.data, rx.length)?.seq ?? -1;
      } else {
        const t0 = Date.now();
        while (seq < 0 && Date.now() - t0 < 1000) if (rx.next() >= 0) seq = parseUdpFrame(rx.data, rx.length)?.seq ?? -1;
      }
      assert.equal(seq, k);
    }
    assert.ok(immediate >= 3, `${immediate} of ${FIRST} frames were there when the send returned`);
    // small frames with a 5000-byte frame every 50th (2048-byte ring frames: it is cut there)
    const N = 2000, BIG = 5000;
    let sent = FIRST, got = FIRST - 1, next = FIRST, disorder = 0, bigSeen = 0;
    const deadline = Date.now() + 10_000;
    while (got < N - 1 && Date.now() < deadline) {
      if (sent < N) {
        lab.enter(b);
        tx.reclaim();
        for (let k = 0; k < 32 && sent < N; k++) {
          const at = tx.slot();
          if (at < 0) break;
          tx.commit(udpFrame(at, DST, SRC, 0, sent, sent % 50 === 0 ? BIG : 60));
          sent++;
        }
        tx.kick();
        lab.enter(a);
      }
      while (rx.next() >= 0) {
        const f = parseUdpFrame(rx.data, rx.length);
        if (f === null) continue;
        got++;
        if (f.seq !== next) disorder++;
        next = f.seq + 1;
        if (f.seq % 50 === 0) {
          bigSeen++;
          assert.equal(rx.length, BIG, `frame ${f.seq} whole`);
          assert.equal(rx.wireLength, BIG);
          assert.equal(space().u8[rx.data + BIG - 1], 0, 'last byte readable');
        } else {
          assert.equal(rx.length, 60);
        }
      }
    }
    assert.equal(got, N - 1);
    assert.equal(disorder, 0);
    assert.equal(bigSeen, Math.floor((N - 1) / 50));
    assert.equal(rx.stats().drops, 0);
  } finally {
    rx.close();
    tx.close();
    lab.leave();
  }
}));

test('our own transmissions are not looped back to our receiver; promiscuous while open', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(a);
  const rx = new PacketReceiver('a0');
  const tx = new PacketTransmitter('a0');
  const txStack = new PacketTransmitter('a0', { qdiscBypass: false });
  try {
    assert.ok(promiscuity(lab, a, 'a0') > 0, 'promiscuous while the receiver is open');
    assert.equal(blast(tx, 1000), 1000);
    assert.equal(blast(txStack, 1000, 1, 5000), 1000);
    assert.equal(drain(rx, 1, 300), 0, 'nothing we sent came back');
  } finally {
    rx.close();
    tx.close();
    txStack.close();
  }
  assert.equal(promiscuity(lab, a, 'a0'), 0, 'promiscuous mode ends with the socket');
  lab.leave();
  assert.ok(lab.counters(b, 'b0').rxPackets >= 2000, 'the peer got them');
}));

test('fanout: two receivers share the traffic by flow hash, each flow on one receiver', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const tx = new PacketTransmitter('b0');
  lab.enter(a);
  const r0 = new PacketReceiver('a0', { fanoutGroup: -1, fanoutMode: FANOUT_HASH });
  const r1 = new PacketReceiver('a0', { fanoutGroup: r0.fanoutGroup, fanoutMode: FANOUT_HASH });
  try {
    assert.ok(r0.fanoutGroup >= 0);
    const flows = 64, N = 6400;
    const owner = new Map<number, number>();
    let clash = 0;
    const counts = [0, 0];
    const deadline = Date.now() + 10_000;
    let sent = 0;
    while (counts[0]! + counts[1]! < N && Date.now() < deadline) {
      // in chunks well under the peer's backlog (netdev_max_backlog), so nothing is dropped there
      if (sent < N) sent += blast(tx, 320, flows, sent);
      [r0, r1].forEach((r, i) => {
        counts[i]! += drain(r, 1e9, 2, (flow) => {
          const o = owner.get(flow);
          if (o === undefined) owner.set(flow, i);
          else if (o !== i) clash++;
        });
      });
    }
    assert.equal(counts[0]! + counts[1]!, N);
    assert.ok(counts[0]! > 0 && counts[1]! > 0, `both receivers got traffic (${counts.join('/')})`);
    assert.equal(clash, 0, 'flow affinity');
  } finally {
    r0.close();
    r1.close();
    tx.close();
    lab.leave();
  }
}));

test('a receiver waits without spinning and wakes up on traffic', { ...opts, skip: skipReason(['ping']) ?? false }, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  lab.enter(a);
  const rx = new PacketReceiver('a0');
  lab.leave();
  try {
    const t0 = Date.now();
    assert.equal(rx.wait(50), false);
    assert.ok(Date.now() - t0 >= 40);
    lab.spawn(b, 'ping', ['-c', '3', '-i', '0.2', '198.18.0.1']);
    let got = 0;
    const deadline = Date.now() + 5000;
    while (got === 0 && Date.now() < deadline) {
      if (rx.wait(20)) while (rx.next() >= 0) got++;
      await sleep(1);
    }
    assert.ok(got > 0);
  } finally {
    rx.close();
  }
}));

test('rings begun ahead (their set-up on a native thread) are taken over: frames flow; one begun with other options is not; a failed set-up reports its errno', opts, () => withLab((lab) => {
  const { beginPacketRing, openPacketRing, abandonPacketRing, PACKET_TX_RING, TPACKET_V2 } = packetSocket;
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const before = lab.counters(b, 'b0');
  lab.enter(a);
  try {
    const begun = PacketTransmitter.begin('a0', { frames: 512 });
    assert.ok(begun.call !== null && begun.call.threaded, 'the ring is being set up on a thread');
    const tx = new PacketTransmitter('a0', { frames: 512, begun });
    assert.equal(tx.fd, begun.fd, 'the begun socket is the transmitter\'s');
    const rxBegun = PacketReceiver.begin('a0', { perFrame: true, vnetHdr: true });
    const rx = new PacketReceiver('a0', { perFrame: true, vnetHdr: true, begun: rxBegun });
    assert.equal(rx.fd, rxBegun.fd);
    rx.close();
    try {
      assert.equal(blast(tx, 1000), 1000);
      const deadline = Date.now() + 5000;
      while (tx.inFlight > 0 && Date.now() < deadline) tx.wait(5);
    } finally {
      tx.close();
    }
    // begun for a ring with a mark: a transmitter without one makes its own socket
    const other = PacketTransmitter.begin('a0', { frames: 512, mark: 7 });
    const plain = new PacketTransmitter('a0', { frames: 512, begun: other });
    const markOf = (fd: number): number => { const v = Buffer.alloc(4); native.getsockoptBuffer(fd, native.SOL_SOCKET, native.SO_MARK, v); return v.readUInt32LE(0); };
    assert.equal(markOf(plain.fd), 0, 'the socket begun with a mark was not taken over');
    plain.close();
    // a ring the kernel refuses (frame size not a multiple of 16): EINVAL from the thread's
    // set-up, reported by openPacketRing as the kernel's errno
    const request = Buffer.alloc(16);
    request.writeUInt32LE(4096, 0); request.writeUInt32LE(2, 4); request.writeUInt32LE(1000, 8); request.writeUInt32LE(8, 12);
    const start = { ifname: 'a0', direction: 'transmit' as const, version: TPACKET_V2, ringOption: PACKET_TX_RING, request, ringBytes: 8192, options: 'test' };
    const bad = beginPacketRing(start);
    assert.ok(bad.call !== null, 'its set-up runs on a thread');
    assert.throws(() => openPacketRing(space(), { ...start, ifindex: interfaceIndex('a0'), protocolBe: 0 }, bad), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL' && /transmit ring/.test(e.message));
    abandonPacketRing(beginPacketRing(start)); // joined and closed without being used
  } finally {
    lab.leave();
  }
  const arrived = lab.counters(b, 'b0').rxPackets - before.rxPackets;
  assert.ok(arrived >= 1000, `peer counted ${arrived} of 1000`);
}));
