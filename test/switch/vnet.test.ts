/**
 * virtio-net header ports on a VALE switch: conversions between every pair of header lengths
 * (0, 10, 12), GSO super-frames kept whole between header ports and cut into segments for a
 * port without a header, partial checksums completed. Frames and checksums are checked with a
 * byte-by-byte reference written here, and with tshark's checksum validation when it is there.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const DIR = `/dev/shm/netmap-ts-test-vnet-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

const { openPort } = await import('../../src/ports/index.js');
await import('../../src/port-types.js');
const { NetmapError } = await import('../../src/errors.js');
const vale = await import('../../src/switch/index.js');
const L = await import('../../src/memory/layout.js');
type Port = ReturnType<typeof openPort>;

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

// ---- reference frame builders and checks (independent of src/) -------------------------------

const A = [2, 0, 0, 0, 0, 0xa], B = [2, 0, 0, 0, 0, 0xb];
const BC = [255, 255, 255, 255, 255, 255];

function sum(b: Uint8Array, from: number, to: number, s = 0): number {
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  return s;
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
const be16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const be32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
function put16(b: Uint8Array, o: number, v: number): void { b[o] = v >>> 8; b[o + 1] = v & 0xff; }
function put32(b: Uint8Array, o: number, v: number): void { put16(b, o, v >>> 16); put16(b, o + 2, v & 0xffff); }

interface Built { frame: Uint8Array; hdr: Uint8Array; l4: number }

/**
 * A TCP (or UDP) frame over IPv4 or IPv6 with `payload` bytes, the L4 checksum left partial
 * (pseudo-header sum, as Linux's CHECKSUM_PARTIAL), and its virtio-net header: NEEDS_CSUM, the
 * GSO type and size given (gso 0: not a super-frame).
 */
function build(opts: { v6?: boolean; udp?: boolean; payload: number; gso: number; mss: number; seq?: number; flags?: number }): Built {
  const v6 = opts.v6 === true, udp = opts.udp === true;
  const l3len = v6 ? 40 : 20, l4hdr = udp ? 8 : 32; // TCP with 12 bytes of options (timestamps)
  const l4 = 14 + l3len;
  const len = l4 + l4hdr + opts.payload;
  const f = new Uint8Array(len);
  f.set(B, 0); f.set(A, 6);
  put16(f, 12, v6 ? 0x86dd : 0x0800);
  const proto = udp ? 17 : 6;
  let pseudo: number;
  if (v6) {
    f[14] = 0x60;
    put16(f, 18, len - 14 - 40);
    f[20] = proto; f[21] = 64;
    f.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 22);
    f.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 38);
    pseudo = sum(f, 22, 54) + proto + (len - l4);
  } else {
    f[14] = 0x45;
    put16(f, 16, len - 14);
    put16(f, 18, 0x1234);
    f[20] = 0x40; // DF
    f[22] = 64; f[23] = proto;
    f.set([198, 18, 0, 1], 26); f.set([198, 18, 0, 2], 30);
    put16(f, 24, ~fold(sum(f, 14, 34)) & 0xffff);
    pseudo = sum(f, 26, 34) + proto + (len - l4);
  }
  put16(f, l4, 40000); put16(f, l4 + 2, 5201);
  let field: number;
  if (udp) {
    put16(f, l4 + 4, len - l4);
    field = l4 + 6;
  } else {
    put32(f, l4 + 4, opts.seq ?? 0xfffff000); // wraps during the stream
    put32(f, l4 + 8, 0x01020304);
    f[l4 + 12] = (32 / 4) << 4;
    f[l4 + 13] = opts.flags ?? 0x18; // ACK | PSH
    put16(f, l4 + 14, 500);
    f.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], l4 + 20);
    field = l4 + 16;
  }
  for (let i = l4 + l4hdr; i < len; i++) f[i] = (i * 7 + 3) & 0xff;
  put16(f, field, fold(pseudo));
  const h = new Uint8Array(12);
  h[0] = 1; // NEEDS_CSUM
  h[1] = opts.gso;
  h[2] = l4 + l4hdr; // hdr_len (LE u16)
  h[4] = opts.mss & 0xff; h[5] = opts.mss >>> 8;
  h[6] = l4; // csum_start
  h[8] = udp ? 6 : 16; // csum_offset
  h[10] = 0x55; h[11] = 0x66; // num_buffers: must not be carried into another port
  return { frame: f, hdr: h, l4 };
}

/** Whether frame `f`'s IPv4 header checksum and TCP/UDP checksum are right. */
function checksumsOk(f: Uint8Array): boolean {
  const type = be16(f, 12);
  let l4: number, proto: number, pseudo: number;
  if (type === 0x0800) {
    if (fold(sum(f, 14, 34)) !== 0xffff) return false;
    l4 = 34; proto = f[23]!;
    pseudo = sum(f, 26, 34) + proto + (14 + be16(f, 16) - l4);
  } else {
    l4 = 54; proto = f[20]!;
    pseudo = sum(f, 22, 54) + proto + be16(f, 18);
  }
  return fold(sum(f, l4, f.length, pseudo)) === 0xffff;
}

// ---- ports ----------------------------------------------------------------------------------

let sw = 0;
function pair(srcHdr: number, dstHdr: number): { a: Port; b: Port } {
  const name = `valevh${sw++}`;
  const a = openPort(`${name}:a@conf:vnet-hdr=${srcHdr}`);
  const b = openPort(`${name}:b`, { vnetHdr: dstHdr });
  return { a, b };
}

/** Sends `bytes` (header included, as the port expects) as one packet, a chain of buffers. */
function send(p: Port, bytes: Uint8Array): void {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  let i = r.head;
  for (let off = 0; off < bytes.length; off += r.bufSize) {
    const piece = Math.min(r.bufSize, bytes.length - off);
    u8.set(bytes.subarray(off, off + piece), r.slotBufOffset(i));
    r.setSlotLen(i, piece);
    r.setSlotFlags(i, off + piece < bytes.length ? L.NS_MOREFRAG : 0);
    i = r.next(i);
  }
  r.advance(i);
  p.txsync();
}

/** Every packet waiting on `p` (NS_MOREFRAG chains joined). */
function receive(p: Port): Uint8Array[] {
  p.rxsync();
  const r = p.rxRings[0]!;
  const out: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  while (!r.empty()) {
    const i = r.head;
    const o = r.slotBufOffset(i);
    parts.push(p.mem.u8.slice(o, o + r.slotLen(i)));
    if ((r.slotFlags(i) & L.NS_MOREFRAG) === 0) { out.push(new Uint8Array(Buffer.concat(parts))); parts = []; }
    r.advance(r.next(i));
  }
  p.rxsync();
  return out;
}

function withHeader(hdrLen: number, b: Built): Uint8Array {
  const out = new Uint8Array(hdrLen + b.frame.length);
  out.set(b.hdr.subarray(0, hdrLen), 0);
  out.set(b.frame, hdrLen);
  return out;
}

/** The header a destination with `dstHdr` bytes gets from a source with `srcHdr` bytes. */
function expectedHeader(srcHdr: number, dstHdr: number, h: Uint8Array): Uint8Array {
  const out = new Uint8Array(dstHdr);
  if (srcHdr === dstHdr) out.set(h.subarray(0, dstHdr));
  else if (srcHdr !== 0 && dstHdr !== 0) out.set(h.subarray(0, 10));
  return out;
}

/** Checks the segments of super-frame `b` (payload cut at `mss`) as a NIC would make them. */
function checkSegments(b: Built, segs: Uint8Array[], mss: number, v6: boolean, udp: boolean): void {
  const f = b.frame, l4 = b.l4;
  const l4hdr = udp ? 8 : 32;
  const payload = f.length - l4 - l4hdr;
  assert.equal(segs.length, Math.ceil(payload / mss), 'segment count');
  let at = l4 + l4hdr;
  segs.forEach((s, i) => {
    const chunk = Math.min(mss, payload - i * mss);
    assert.equal(s.length, l4 + l4hdr + chunk, `segment ${i} length`);
    assert.deepEqual(s.subarray(l4 + l4hdr), f.subarray(at, at + chunk), `segment ${i} payload`);
    assert.deepEqual(s.subarray(0, 14), f.subarray(0, 14), 'Ethernet header');
    if (v6) assert.equal(be16(s, 18), s.length - 54, 'IPv6 payload length');
    else {
      assert.equal(be16(s, 16), s.length - 14, 'IPv4 total length');
      assert.equal(be16(s, 18), (0x1234 + i) & 0xffff, 'IPv4 id advances');
    }
    if (udp) assert.equal(be16(s, l4 + 4), s.length - l4, 'UDP length');
    else {
      assert.equal(be32(s, l4 + 4), (be32(f, l4 + 4) + i * mss) >>> 0, 'TCP sequence');
      assert.equal(s[l4 + 13], i === segs.length - 1 ? f[l4 + 13] : f[l4 + 13]! & ~0x09, 'PSH/FIN on the last segment only');
      assert.deepEqual(s.subarray(l4 + 20, l4 + 32), f.subarray(l4 + 20, l4 + 32), 'TCP options repeated');
    }
    assert.ok(checksumsOk(s), `segment ${i} checksums`);
    at += chunk;
  });
}

// ---- tests ----------------------------------------------------------------------------------

const LENGTHS = [0, 10, 12];
const captured: Uint8Array[] = []; // every frame a port without header got (for tshark)

test('vnet-hdr: names, API and errors', () => {
  const a = openPort('valevhx:a@conf:vnet-hdr=12');
  assert.equal(a.vnetHdrLen, 12);
  const again = openPort('valevhx:a');
  assert.equal(again.vnetHdrLen, 12);
  assert.throws(() => openPort('valevhx:a@conf:vnet-hdr=10'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => openPort('valevhx:c@conf:vnet-hdr=11'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => openPort('valevhx:c', { vnetHdr: 4 }), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  assert.throws(() => openPort('netmap:vhp{1@conf:vnet-hdr=12'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL');
  const plain = openPort('valevhx:d');
  assert.equal(plain.vnetHdrLen, 0);
  for (const p of [plain, again, a]) p.close();
});

for (const srcHdr of LENGTHS) {
  for (const dstHdr of LENGTHS) {
    test(`vnet-hdr ${srcHdr} -> ${dstHdr}: plain frames, partial checksums, super-frames`, () => {
      const { a, b } = pair(srcHdr, dstHdr);
      try {
        // 1. a small complete frame (checksums done, no flags): header converted, frame as it was
        const small = build({ payload: 200, gso: 0, mss: 0 });
        small.hdr[0] = 0;
        const tcp = small.frame;
        put16(tcp, small.l4 + 16, 0);
        put16(tcp, small.l4 + 16, ~fold(sum(tcp, small.l4, tcp.length, sum(tcp, 26, 34) + 6 + (tcp.length - small.l4))) & 0xffff);
        assert.ok(checksumsOk(tcp));
        send(a, withHeader(srcHdr, small));
        let got = receive(b);
        assert.equal(got.length, 1);
        assert.deepEqual(got[0]!.subarray(0, dstHdr), expectedHeader(srcHdr, dstHdr, small.hdr), 'header');
        assert.deepEqual(got[0]!.subarray(dstHdr), small.frame, 'frame');

        // 2. a broadcast frame too (the flood path)
        const bc = build({ payload: 30, gso: 0, mss: 0, udp: true });
        bc.frame.set(BC, 0);
        bc.hdr[0] = 0;
        send(a, withHeader(srcHdr, bc));
        got = receive(b);
        assert.equal(got.length, 1);
        assert.deepEqual(got[0]!.subarray(dstHdr), bc.frame);
        if (srcHdr === 0) return;

        // 3. NEEDS_CSUM without GSO: completed for a port without header, else passed on
        const partial = build({ payload: 1000, gso: 0, mss: 0 });
        send(a, withHeader(srcHdr, partial));
        got = receive(b);
        assert.equal(got.length, 1);
        if (dstHdr === 0) {
          assert.ok(checksumsOk(got[0]!), 'checksum completed');
          assert.deepEqual(got[0]!.subarray(0, partial.l4 + 16), partial.frame.subarray(0, partial.l4 + 16));
          captured.push(got[0]!);
        } else {
          assert.deepEqual(got[0]!.subarray(0, dstHdr), expectedHeader(srcHdr, dstHdr, partial.hdr));
          assert.deepEqual(got[0]!.subarray(dstHdr), partial.frame, 'left partial for a port that takes it');
        }

        // 4. a TCP/IPv4 super-frame of about 60 KB (30 buffers)
        const mss = 1448;
        const sup = build({ payload: 60_000, gso: 1, mss });
        send(a, withHeader(srcHdr, sup));
        got = receive(b);
        if (dstHdr === 0) {
          checkSegments(sup, got, mss, false, false);
          captured.push(...got);
        } else {
          assert.equal(got.length, 1, 'whole between header ports');
          assert.deepEqual(got[0]!.subarray(0, dstHdr), expectedHeader(srcHdr, dstHdr, sup.hdr));
          assert.deepEqual(got[0]!.subarray(dstHdr), sup.frame);
        }
      } finally {
        a.close();
        b.close();
      }
    });
  }
}

test('vnet-hdr 12 -> 0: TCP/IPv6 and UDP (USO) super-frames, ECN bit, odd sizes', () => {
  const { a, b } = pair(12, 0);
  try {
    const v6 = build({ v6: true, payload: 40_001, gso: 4, mss: 1428 });
    send(a, withHeader(12, v6));
    let got = receive(b);
    checkSegments(v6, got, 1428, true, false);
    captured.push(...got);

    const udp = build({ udp: true, payload: 9_000, gso: 5, mss: 1472 });
    send(a, withHeader(12, udp));
    got = receive(b);
    checkSegments(udp, got, 1472, false, true);
    captured.push(...got);

    const ecn = build({ payload: 3000, gso: 1 | 0x80, mss: 1000, flags: 0x19 }); // FIN|PSH|ACK
    send(a, withHeader(12, ecn));
    got = receive(b);
    checkSegments(ecn, got, 1000, false, false);
    captured.push(...got);
  } finally {
    a.close();
    b.close();
  }
});

test('vnet-hdr 12 -> 0: malformed headers are dropped and counted; 12 -> 12 keeps them', () => {
  const { a, b } = pair(12, 0);
  const c = openPort(`valevh${sw - 1}:c@conf:vnet-hdr=12`);
  try {
    const ufo = build({ udp: true, payload: 3000, gso: 3, mss: 1472 }); // UFO: not cut
    const badFlags = build({ payload: 100, gso: 0, mss: 0 });
    badFlags.hdr[0] = 0x81;
    const badCsum = build({ payload: 100, gso: 0, mss: 0 });
    badCsum.hdr[6] = 0xff; badCsum.hdr[7] = 0x7f; // csum_start beyond the frame
    const tinyMss = build({ payload: 60_000, gso: 1, mss: 8 }); // 7500 segments: refused
    for (const bad of [ufo, badFlags, badCsum, tinyMss]) send(a, withHeader(12, bad));
    assert.equal(receive(b).length, 0, 'nothing reaches the port without header');
    assert.equal(vale.portCounters(b.name).rxDrops, 4, 'counted as drops of the port without header');
    assert.equal(receive(c).length, 4, 'the header port gets them as they are');
  } finally {
    c.close();
    a.close();
    b.close();
  }
});

test('vnet-hdr: what ports without header got passes tshark checksum validation', (t) => {
  if (spawnSync('tshark', ['-v'], { encoding: 'utf8' }).status !== 0) { t.skip('tshark is not installed'); return; }
  assert.ok(captured.length > 50, `frames captured: ${captured.length}`);
  const file = path.join(os.tmpdir(), `vnet-${process.pid}.pcap`);
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0); head.writeUInt16LE(2, 4); head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16); head.writeUInt32LE(1, 20);
  const parts: Buffer[] = [head];
  for (const f of captured) {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(f.length, 8); rec.writeUInt32LE(f.length, 12);
    parts.push(rec, Buffer.from(f));
  }
  fs.writeFileSync(file, Buffer.concat(parts));
  try {
    const run = (filter: string): number => {
      const r = spawnSync('tshark', ['-n', '-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', filter], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
    };
    assert.equal(run('tcp.checksum.status == 0 || udp.checksum.status == 0 || ip.checksum.status == 0'), 0, 'no bad checksum');
    assert.equal(run('tcp.checksum.status == 1 || udp.checksum.status == 1'), captured.length, 'every L4 checksum verified good');
  } finally {
    fs.rmSync(file, { force: true });
  }
});

test('vnet-hdr 12 -> 0: an RX monitor of the port without header sees the segments it got', () => {
  const { a, b } = pair(12, 0);
  const mon = openPort(`valevh${sw - 1}:b/r`);
  try {
    const sup = build({ payload: 20_000, gso: 1, mss: 1448 });
    send(a, withHeader(12, sup));
    const got = receive(b);
    checkSegments(sup, got, 1448, false, false);
    assert.deepEqual(receive(mon), got, 'the monitor copy is what the port received');
  } finally {
    mon.close();
    a.close();
    b.close();
  }
});
