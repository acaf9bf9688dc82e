/**
 * The vhost-user backend against a frontend played by the test (what QEMU does, in a few
 * messages): guest memory in a memfd passed with SCM_RIGHTS, split rings laid out in it, kick and
 * call eventfds. Frames go guest -> switch -> a VALE port and back; a guest that points a
 * descriptor outside its memory gets its port stopped with a logged reason; a frontend that goes
 * away and comes back is served again. No root, no QEMU.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-vhost-'));
const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nmts-vhost-sock-'));
after(() => {
  fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true });
  fs.rmSync(sockDir, { recursive: true, force: true });
});

await import('../../src/port-types-lazy.js');
const { serveVhostUser, OFFERED_FEATURES } = await import('../../src/vhost/index.js');
const { openPort } = await import('../../src/ports/port.js');
const { space } = await import('../../src/memory/space.js');
const native = await import('../../src/native/index.js');
const unix = await import('../../src/native/unix.js');
const P = await import('../../src/vhost/protocol.js');
const vale = await import('../../src/switch/index.js');
type PortT = ReturnType<typeof openPort>;

const MEM = 1 << 20, GPA = 0x100000, UVA = 0x7f1200000000, NUM = 8;
/** Guest-physical layout: queue q's desc, avail, used at these offsets; buffers from 0x10000. */
const DESC = [0x0000, 0x2000], AVAIL = [0x1000, 0x3000], USED = [0x1800, 0x3800], BUFS = 0x10000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for a log line matching `re` (the backend's thread posts them) and returns it. */
async function waitLog(logs: string[], re: RegExp, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const line = logs.find((l) => re.test(l));
    if (line !== undefined) return line;
    if (Date.now() > end) throw new Error(`no log line ${re} in ${ms} ms:\n${logs.join('\n')}`);
    await sleep(5);
  }
}

/** A vhost-user frontend with one guest's memory and two queues. */
class Frontend {
  readonly conn: number;
  readonly memFd = unix.memfd('guest', MEM);
  readonly at: number; // space offset of guest physical GPA
  readonly kick = [native.eventFd(), native.eventFd()];
  readonly call = [native.eventFd(), native.eventFd()];
  private readonly buf = Buffer.alloc(512);
  private availIdx = [0, 0];

  constructor(sock: string) {
    this.conn = unix.connectUnix(sock);
    this.at = space().mapLocal(this.memFd, MEM);
  }

  send(request: number, payload: Buffer, fds: number[] = []): void {
    const b = this.buf;
    b.writeUInt32LE(request, 0);
    b.writeUInt32LE(P.VHOST_USER_VERSION, 4);
    b.writeUInt32LE(payload.length, 8);
    payload.copy(b, 12);
    assert.equal(unix.sendWithFds(this.conn, b, 12 + payload.length, fds), 12 + payload.length);
  }

  /** Sends a GET_* and returns the reply's payload. */
  ask(request: number, payload = Buffer.alloc(0)): Buffer {
    this.send(request, payload);
    const h = Buffer.alloc(12);
    assert.equal(unix.receiveAll(this.conn, h, 0, 12), 12);
    assert.equal(h.readUInt32LE(0), request);
    assert.equal(h.readUInt32LE(4), P.VHOST_USER_VERSION | P.VHOST_USER_REPLY);
    const body = Buffer.alloc(h.readUInt32LE(8));
    assert.equal(unix.receiveAll(this.conn, body, 0, body.length), body.length);
    return body;
  }

  u64(v: bigint | number): Buffer { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; }
  pair(a: number, b: number): Buffer { const x = Buffer.alloc(8); x.writeUInt32LE(a, 0); x.writeUInt32LE(b, 4); return x; }

  /** What QEMU sends to start the device with `features`. */
  setUp(features: bigint): void {
    const offered = this.ask(P.VHOST_USER_GET_FEATURES).readBigUInt64LE(0);
    assert.equal(offered, OFFERED_FEATURES);
    this.send(P.VHOST_USER_SET_OWNER, Buffer.alloc(0));
    this.send(P.VHOST_USER_SET_FEATURES, this.u64(features));
    const table = Buffer.alloc(8 + 32);
    table.writeUInt32LE(1, 0);
    table.writeBigUInt64LE(BigInt(GPA), 8);
    table.writeBigUInt64LE(BigInt(MEM), 16);
    table.writeBigUInt64LE(BigInt(UVA), 24);
    table.writeBigUInt64LE(0n, 32);
    this.send(P.VHOST_USER_SET_MEM_TABLE, table, [this.memFd]);
    for (const q of [0, 1]) {
      this.send(P.VHOST_USER_SET_VRING_NUM, this.pair(q, NUM));
      const addr = Buffer.alloc(40);
      addr.writeUInt32LE(q, 0);
      addr.writeBigUInt64LE(BigInt(UVA + DESC[q]!), 8);
      addr.writeBigUInt64LE(BigInt(UVA + USED[q]!), 16);
      addr.writeBigUInt64LE(BigInt(UVA + AVAIL[q]!), 24);
      this.send(P.VHOST_USER_SET_VRING_ADDR, addr);
      this.send(P.VHOST_USER_SET_VRING_BASE, this.pair(q, 0));
      this.send(P.VHOST_USER_SET_VRING_CALL, this.u64(q), [this.call[q]!]);
      this.send(P.VHOST_USER_SET_VRING_KICK, this.u64(q), [this.kick[q]!]);
      // with VHOST_USER_F_PROTOCOL_FEATURES a ring starts disabled
      this.send(P.VHOST_USER_SET_VRING_ENABLE, this.pair(q, 1));
    }
  }

  /** Descriptor `i` of queue `q`: guest address `addr`, `len` bytes, `flags`, `next`. */
  desc(q: number, i: number, addr: number, len: number, flags: number, next = 0): void {
    const v = space().view, d = this.at + DESC[q]! + 16 * i;
    v.setBigUint64(d, BigInt(addr), true);
    v.setUint32(d + 8, len, true);
    v.setUint16(d + 12, flags, true);
    v.setUint16(d + 14, next, true);
  }

  /** Offers head `head` on queue `q` and kicks. */
  offer(q: number, head: number): void {
    const v = space().view, a = this.at + AVAIL[q]!;
    v.setUint16(a + 4 + 2 * (this.availIdx[q]! % NUM), head, true);
    this.availIdx[q] = (this.availIdx[q]! + 1) & 0xffff;
    v.setUint16(a + 2, this.availIdx[q]!, true);
    const one = Buffer.alloc(8);
    one.writeUInt32LE(1, 0);
    native.writeAt(this.kick[q]!, native.bufferAddress(one), 8);
  }

  usedIdx(q: number): number { return space().view.getUint16(this.at + USED[q]! + 2, true); }
  used(q: number, k: number): { id: number; len: number } {
    const e = this.at + USED[q]! + 4 + 8 * (k % NUM);
    return { id: space().view.getUint32(e, true), len: space().view.getUint32(e + 4, true) };
  }

  /** Whether call eventfd q was signalled (and clears it). */
  called(q: number): boolean {
    const b = Buffer.alloc(8);
    return native.readAt(this.call[q]!, native.bufferAddress(b), 8) === 8;
  }

  async waitUsed(q: number, idx: number, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (this.usedIdx(q) !== idx) {
      if (Date.now() > end) throw new Error(`queue ${q}: used index ${this.usedIdx(q)}, not ${idx}, after ${ms} ms`);
      await sleep(2);
    }
  }

  close(): void {
    native.closeFd(this.conn);
    for (const fd of [...this.kick, ...this.call, this.memFd]) native.closeFd(fd);
    space().unmapLocal(this.at, MEM);
  }
}

/** A backend for `port` on socket TAG.sock, its log lines collected. */
function backend(tag: string, port: string): { b: ReturnType<typeof serveVhostUser>; logs: string[]; sock: string } {
  const logs: string[] = [];
  const sock = path.join(sockDir, `${tag}.sock`);
  return { b: serveVhostUser({ socket: sock, port, onLog: (l) => logs.push(l) }), logs, sock };
}

const FEATURES = OFFERED_FEATURES; // everything offered: VERSION_1, MRG_RXBUF, the offloads
/** A 60-byte Ethernet frame from `src` to `dst` (last MAC bytes), `tag` in its payload. */
function frame(dst: number, src: number, tag: number): Buffer {
  const f = Buffer.alloc(60);
  f.set([0x52, 0x54, 0, 0, 0, dst, 0x52, 0x54, 0, 0, 0, src, 0x88, 0xb5], 0);
  f.fill(tag, 14);
  return f;
}

async function receiveOn(p: PortT, ms = 3000): Promise<Buffer> {
  const end = Date.now() + ms;
  const r = p.rxRings[0]!;
  for (;;) {
    p.rxsync();
    if (!r.empty()) {
      const i = r.head;
      const b = Buffer.from(p.mem.u8.subarray(r.slotBufOffset(i), r.slotBufOffset(i) + r.slotLen(i)));
      r.advance(r.next(i));
      p.rxsync();
      return b;
    }
    if (Date.now() > end) throw new Error('nothing arrived on the port');
    await sleep(2);
  }
}

function sendFrom(p: PortT, bytes: Buffer): void {
  const t = p.txRings[0]!;
  const i = t.head;
  p.mem.u8.set(bytes, t.slotBufOffset(i));
  t.setSlotLen(i, bytes.length);
  t.setSlotFlags(i, 0);
  t.advance(t.next(i));
  p.txsync();
}

test('vhost-user: frames cross between a guest and a VALE port both ways, header and all', async () => {
  const { b, logs, sock } = backend('a', 'valev:g1');
  const fe = new Frontend(sock);
  try {
    fe.setUp(FEATURES);
    const peer = openPort('valev:peer@conf:vnet-hdr=12');
    // guest -> switch: a 12-byte header (zero: no offload) and a broadcast frame in one descriptor
    const out = Buffer.concat([Buffer.alloc(12), frame(0xff, 1, 0xa1)]);
    out.fill(0xff, 12, 18);
    space().u8.set(out, fe.at + BUFS);
    fe.desc(1, 0, GPA + BUFS, out.length, 0);
    fe.offer(1, 0);
    await fe.waitUsed(1, 1);
    assert.deepEqual(fe.used(1, 0), { id: 0, len: 0 });
    assert.ok(fe.called(1), 'the guest was interrupted for its transmit queue');
    const got = await receiveOn(peer);
    assert.deepEqual(got, out, 'the peer (a 12-byte header port) got header and frame as sent');
    // switch -> guest: two writable buffers offered, one frame comes, num_buffers 1
    fe.desc(0, 0, GPA + BUFS + 0x1000, 2048, 2);
    fe.desc(0, 1, GPA + BUFS + 0x2000, 2048, 2);
    fe.offer(0, 0);
    fe.offer(0, 1);
    const back = Buffer.concat([Buffer.alloc(12), frame(1, 2, 0xb2)]);
    sendFrom(peer, back);
    await fe.waitUsed(0, 1);
    assert.deepEqual(fe.used(0, 0), { id: 0, len: 72 });
    const seen = Buffer.from(space().u8.subarray(fe.at + BUFS + 0x1000, fe.at + BUFS + 0x1000 + 72));
    assert.equal(seen.readUInt16LE(10), 1, 'num_buffers');
    seen.writeUInt16LE(0, 10);
    assert.deepEqual(seen, back);
    assert.ok(fe.called(0));
    const c = b.counters();
    assert.equal(c.txFrames, 1);
    assert.equal(c.rxFrames, 1);
    await waitLog(logs, /port valev:g1 open, virtio-net header 12 bytes/);
    // a frame split over a header descriptor and two data descriptors
    const hdr = BUFS + 0x4000, d1 = BUFS + 0x5000, d2 = BUFS + 0x6000;
    const big = frame(0xff, 1, 0xc3);
    space().u8.fill(0, fe.at + hdr, fe.at + hdr + 12);
    space().u8.set(big.subarray(0, 20), fe.at + d1);
    space().u8.set(big.subarray(20), fe.at + d2);
    fe.desc(1, 1, GPA + hdr, 12, 1, 2);
    fe.desc(1, 2, GPA + d1, 20, 1, 3);
    fe.desc(1, 3, GPA + d2, 40, 0);
    fe.offer(1, 1);
    await fe.waitUsed(1, 2);
    const got2 = await receiveOn(peer);
    assert.deepEqual(got2.subarray(12), big);
    peer.close();
  } finally {
    fe.close();
    await b.close();
  }
});

test('vhost-user: a descriptor outside the memory table stops the port with a logged reason', async () => {
  const { b, logs, sock } = backend('b', 'valev:g2');
  const fe = new Frontend(sock);
  try {
    fe.setUp(FEATURES);
    const peer = openPort('valev:peer2');
    // first a good frame, so the port exists
    space().u8.set(Buffer.concat([Buffer.alloc(12), frame(0xff, 3, 1)]), fe.at + BUFS);
    space().u8.fill(0xff, fe.at + BUFS + 12, fe.at + BUFS + 18);
    fe.desc(1, 0, GPA + BUFS, 72, 0);
    fe.offer(1, 0);
    await fe.waitUsed(1, 1);
    assert.ok(vale.switchPorts('valev').some((p) => p.name === 'valev:g2'));
    // then a buffer that runs past the end of guest memory
    fe.desc(1, 1, GPA + MEM - 16, 72, 0);
    fe.offer(1, 1);
    const line = await waitLog(logs, /stopped/);
    assert.match(line, /valev:g2 stopped: queue 1: descriptor 1 .* is outside the memory table/);
    assert.equal(fe.usedIdx(1), 1, 'the bad chain was not consumed');
    assert.ok(!vale.switchPorts('valev').some((p) => p.name === 'valev:g2'), 'the port left the switch');
    // and stays stopped: a good frame now is not taken
    fe.desc(1, 2, GPA + BUFS, 72, 0);
    fe.offer(1, 2);
    await sleep(50);
    assert.equal(fe.usedIdx(1), 1);
    peer.close();
  } finally {
    fe.close();
    await b.close();
  }
});

test('vhost-user: bad rings and messages (a descriptor loop, a misaligned ring, an unknown request)', async () => {
  const { b, logs, sock } = backend('c', 'valev:g3');
  try {
    let fe = new Frontend(sock);
    fe.setUp(FEATURES);
    fe.desc(1, 0, GPA + BUFS, 40, 1, 1);
    fe.desc(1, 1, GPA + BUFS, 40, 1, 0); // 0 -> 1 -> 0 ...
    fe.offer(1, 0);
    await waitLog(logs, /stopped: queue 1: the chain at descriptor 0 is longer than the queue/);
    fe.close();
    // the frontend goes; a new one is served from scratch (QEMU restarted)
    await waitLog(logs, /^disconnected$/);
    fe = new Frontend(sock);
    fe.setUp(FEATURES);
    const peer = openPort('valev:peer3@conf:vnet-hdr=12');
    const out = Buffer.concat([Buffer.alloc(12), frame(0xff, 4, 7)]);
    space().u8.set(out, fe.at + BUFS);
    fe.desc(1, 0, GPA + BUFS, out.length, 0);
    fe.offer(1, 0);
    await fe.waitUsed(1, 1);
    assert.deepEqual(await receiveOn(peer), out, 'served again after reconnecting');
    // a ring moved to a misaligned address while running stops the port
    const addr = Buffer.alloc(40);
    addr.writeUInt32LE(1, 0);
    addr.writeBigUInt64LE(BigInt(UVA + DESC[1]! + 8), 8);
    addr.writeBigUInt64LE(BigInt(UVA + USED[1]!), 16);
    addr.writeBigUInt64LE(BigInt(UVA + AVAIL[1]!), 24);
    fe.send(P.VHOST_USER_SET_VRING_ADDR, addr);
    await waitLog(logs, /valev:g3 stopped: queue 1: a ring address is misaligned/);
    // an unsupported request ends the connection with a reason
    fe.send(P.VHOST_USER_SET_LOG_BASE, fe.u64(0));
    await waitLog(logs, /SET_LOG_BASE is not supported/);
    peer.close();
    fe.close();
  } finally {
    await b.close();
  }
});

test('vhost-user: a guest without the receive offloads gets a port without header; its partial checksums are completed', async () => {
  const { udpFrame } = await import('../interfaces/frames.js');
  const { pseudoSum, fold, udpChecksumOk } = await import('../../src/packet/checksum.js');
  const { b, logs, sock } = backend('d', 'valev:g4');
  const fe = new Frontend(sock);
  try {
    // VERSION_1, MRG_RXBUF, CSUM and HOST_TSO4, but none of GUEST_CSUM/GUEST_TSO4/GUEST_TSO6
    const bit = (n: number): bigint => 1n << BigInt(n);
    fe.setUp(bit(P.F_VERSION_1) | bit(P.F_MRG_RXBUF) | bit(P.F_CSUM) | bit(P.F_HOST_TSO4) | bit(P.F_PROTOCOL_FEATURES));
    const plain = openPort('valev:plain'), hdr12 = openPort('valev:h12@conf:vnet-hdr=12');
    const u8 = space().u8, v = space().view;
    // guest -> switch: a UDP frame with a partial checksum (the field holds the pseudo-header sum)
    const at = fe.at + BUFS;
    u8.fill(0, at, at + 12);
    udpFrame(at + 12, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x52, 0x54, 0, 0, 0, 5], 9, 1);
    v.setUint16(at + 12 + 40, fold(pseudoSum(u8, at + 12 + 14, 17, 26)));
    u8[at] = 1; // NEEDS_CSUM
    v.setUint16(at + 6, 34, true);
    v.setUint16(at + 8, 6, true);
    fe.desc(1, 0, GPA + BUFS, 72, 0);
    fe.offer(1, 0);
    await fe.waitUsed(1, 1);
    await waitLog(logs, /port valev:g4 open, virtio-net header 0 bytes \(guest's: 12/);
    const got = await receiveOn(plain);
    assert.equal(got.length, 60, 'no header on the port');
    const g = Buffer.from(got);
    assert.ok(udpChecksumOk(g, 14), 'the checksum was completed');
    const got12 = await receiveOn(hdr12);
    assert.equal(got12.length, 72, 'a header port gets a zeroed header from a port without');
    assert.ok(got12.subarray(0, 12).every((x) => x === 0));
    // a GSO frame from this guest cannot go (the switch cuts only frames that come with a header)
    u8[at] = 0;
    u8[at + 1] = 1; // GSO TCPV4
    fe.desc(1, 1, GPA + BUFS, 72, 0);
    fe.offer(1, 1);
    await fe.waitUsed(1, 2);
    const end = Date.now() + 2000;
    while (b.counters().txDrops !== 1 && Date.now() < end) await sleep(5);
    assert.equal(b.counters().txDrops, 1);
    // switch -> guest: from the header port, a frame with a partial checksum arrives complete,
    // behind a zeroed 12-byte header with num_buffers 1
    fe.desc(0, 0, GPA + BUFS + 0x1000, 2048, 2);
    fe.offer(0, 0);
    const out = Buffer.alloc(72);
    const t = hdr12.txRings[0]!;
    const o = t.slotBufOffset(t.head);
    u8.fill(0, o, o + 12);
    udpFrame(o + 12, [0x52, 0x54, 0, 0, 0, 5], [0x52, 0x54, 0, 0, 0, 6], 9, 2);
    v.setUint16(o + 12 + 40, fold(pseudoSum(u8, o + 12 + 14, 17, 26)));
    u8[o] = 1;
    v.setUint16(o + 6, 34, true);
    v.setUint16(o + 8, 6, true);
    out.set(u8.subarray(o, o + 72));
    t.setSlotLen(t.head, 72);
    t.setSlotFlags(t.head, 0);
    t.advance(t.next(t.head));
    hdr12.txsync();
    await fe.waitUsed(0, 1);
    assert.deepEqual(fe.used(0, 0), { id: 0, len: 72 });
    const seen = Buffer.from(u8.subarray(fe.at + BUFS + 0x1000, fe.at + BUFS + 0x1000 + 72));
    assert.equal(seen.readUInt16LE(10), 1, 'num_buffers');
    assert.ok(seen.subarray(0, 10).every((x) => x === 0), 'a zeroed header');
    assert.ok(udpChecksumOk(seen.subarray(12), 14), 'the switch completed the checksum for the guest');
    plain.close();
    hdr12.close();
  } finally {
    fe.close();
    await b.close();
  }
});

test('vhost-user: bad arguments', async () => {
  assert.throws(() => serveVhostUser({ socket: path.join(sockDir, 'x.sock'), port: 'netmap:eth0' }), /EINVAL/);
  assert.throws(() => serveVhostUser({ socket: path.join(sockDir, 'x.sock'), port: 'vale0:a@conf:vnet-hdr=12' }), /EINVAL/);
  assert.throws(() => serveVhostUser({ socket: path.join(sockDir, 'x'.repeat(120)), port: 'vale0:a' }), /EINVAL/);
  const file = path.join(sockDir, 'plain');
  fs.writeFileSync(file, '');
  assert.throws(() => serveVhostUser({ socket: file, port: 'vale0:a' }), /EEXIST/);
});
