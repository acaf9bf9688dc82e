import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-co-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { TcpCoalescer } = await import('../../src/bwrap/coalesce.js');
const { mapScratch } = await import('../../src/interfaces/packet.js');
const { space } = await import('../../src/memory/space.js');

const sp = space();
const u8 = sp.u8;
const FRAME = 2048;
const area = mapScratch(64 * FRAME);

/** Big-endian one's-complement checksum of bytes [at, at + len) plus `seed`. */
function csum(at: number, len: number, seed = 0): number {
  let s = seed;
  for (let k = 0; k < len; k += 2) s += (u8[at + k]! << 8) | (k + 1 < len ? u8[at + k + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

interface Seg {
  seq: number; pay: number; flags?: number; ack?: number; badSum?: boolean; df?: boolean; port?: number; corrupt?: number;
  /** Bytes past the frame slot's start (default: 2 for even frames, 12 for odd ones). */
  align?: number;
  /** Last byte of the destination MAC, of the source IPv4 address, and the timestamp value. */
  mac?: number; src?: number; tsval?: number;
}

/**
 * Writes frame `k` of the area: TCP/IPv4 with timestamps; even frames 2 bytes past a 4-byte
 * boundary, odd ones 12 (as a kernel ring with virtio-net headers puts them: TCP header unaligned).
 */
function tcpFrame(k: number, s: Seg): { at: number; len: number } {
  const at = area + k * FRAME + (s.align ?? 2 + (k & 1) * 10);
  const thl = 32, len = 14 + 20 + thl + s.pay;
  u8.fill(0, at, at + len);
  u8.set([2, 0, 0, 0, 0, s.mac ?? 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], at);
  const ip = at + 14, tcp = ip + 20;
  u8.set([0x45, 0, (len - 14) >> 8, (len - 14) & 0xff, 0x12, k, s.df === false ? 0 : 0x40, 0, 64, 6, 0, 0, 198, 18, 0, s.src ?? 1, 198, 18, 0, 2], ip);
  const ic = ~csum(ip, 20) & 0xffff;
  u8[ip + 10] = ic >> 8; u8[ip + 11] = ic & 0xff;
  const port = s.port ?? 5201;
  u8.set([0x9c, 0x40, port >> 8, port & 0xff], tcp);
  new DataView(u8.buffer).setUint32(tcp + 4, s.seq >>> 0);
  new DataView(u8.buffer).setUint32(tcp + 8, s.ack ?? 777);
  u8[tcp + 12] = (thl / 4) << 4;
  u8[tcp + 13] = s.flags ?? 0x10;
  u8[tcp + 14] = 0x01; u8[tcp + 15] = 0xf5;
  u8.set([1, 1, 8, 10, 0, 0, 0, s.tsval ?? 42, 0, 0, 0, 7], tcp + 20); // NOP NOP timestamps
  for (let i = 0; i < s.pay; i++) u8[tcp + thl + i] = (s.seq + i) & 0xff;
  const tcpLen = thl + s.pay;
  const pseudo = csum(ip + 12, 8, 6 + tcpLen);
  let tc = ~csum(tcp, tcpLen, pseudo) & 0xffff;
  if (s.badSum === true) tc ^= 0x0100;
  u8[tcp + 16] = tc >> 8; u8[tcp + 17] = tc & 0xff;
  if (s.corrupt !== undefined) u8[tcp + thl + s.corrupt] = u8[tcp + thl + s.corrupt]! ^ 0x20; // changed after the checksum
  return { at, len };
}

/** Runs the coalescer over `segs`; returns what it forwarded, in order: 'each:N' or 'whole:N'. */
function run(segs: Seg[], taker = true): { out: string[]; wholes: { frame: Buffer; hdr: Buffer }[] } {
  const offs = new Float64Array(256), lens = new Uint16Array(256);
  segs.forEach((s, k) => { const f = tcpFrame(k, s); offs[k] = f.at; lens[k] = f.len; });
  const out: string[] = [];
  const wholes: { frame: Buffer; hdr: Buffer }[] = [];
  let pending: { at: number; len: number; hdrAt: number } | null = null;
  const co = new TcpCoalescer(
    (_o, _l, n, from) => { for (let k = from; k < from + n; k++) out.push(`each:${k}`); },
    (at, len, hdrAt) => {
      pending = { at, len, hdrAt };
      if (!taker) return false;
      wholes.push({ frame: Buffer.from(u8.slice(at, at + len)), hdr: Buffer.from(u8.slice(hdrAt, at)) });
      out.push(`whole:${wholes.length - 1}`);
      return true;
    });
  co.forward(offs, lens, segs.length);
  co.close();
  assert.ok(pending === null || (pending as { hdrAt: number; at: number }).at - (pending as { hdrAt: number }).hdrAt === 10);
  return { out, wholes };
}

const MSS = 1448;

test('coalesce: a run of TCP segments becomes one super-frame: lengths, checksums and virtio-net header right', () => {
  const segs: Seg[] = [];
  for (let k = 0; k < 5; k++) segs.push({ seq: 1000 + k * MSS, pay: k === 4 ? 100 : MSS, flags: k === 4 ? 0x18 : 0x10 });
  const { out, wholes } = run(segs);
  assert.deepEqual(out, ['whole:0']);
  const { frame: f, hdr: h } = wholes[0]!;
  const payload = 4 * MSS + 100;
  assert.equal(f.length, 14 + 20 + 32 + payload);
  assert.equal(f.readUInt16BE(16), 20 + 32 + payload, 'IPv4 total length');
  let s = 0;
  for (let k = 0; k < 20; k += 2) s += f.readUInt16BE(14 + k);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  assert.equal(s, 0xffff, 'IPv4 header checksum');
  assert.equal(f.readUInt32BE(38), 1000, 'first sequence number');
  assert.equal(f[47], 0x18, 'PSH of the last segment');
  // TCP checksum partial: the pseudo-header sum
  let ps = 198 * 256 + 18 + 1 + 198 * 256 + 18 + 2 + 6 + 32 + payload;
  while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
  assert.equal(f.readUInt16BE(50), ps);
  for (let i = 0; i < payload; i++) if (f[66 + i] !== ((1000 + i) & 0xff)) assert.fail(`payload byte ${i}`);
  // virtio-net header: NEEDS_CSUM, TCPv4, hdr_len 66, gso_size MSS, csum_start 34, csum_offset 16
  assert.deepEqual([h[0], h[1], h.readUInt16LE(2), h.readUInt16LE(4), h.readUInt16LE(6), h.readUInt16LE(8)], [1, 1, 66, MSS, 34, 16]);
});

test('coalesce: runs end at a gap, a flag, a short or foreign segment; bad checksums and non-TCP pass as they are, in order', () => {
  const segs: Seg[] = [
    { seq: 0, pay: MSS }, { seq: MSS, pay: MSS }, // run 0-1
    { seq: 5 * MSS, pay: MSS }, // gap: starts a new run with 3
    { seq: 6 * MSS, pay: MSS, flags: 0x18 }, // PSH ends it
    { seq: 7 * MSS, pay: MSS, flags: 0x11 }, // FIN: never merged
    { seq: 8 * MSS, pay: MSS }, { seq: 9 * MSS, pay: MSS, port: 5202 }, // another flow: no run
    { seq: 20 * MSS, pay: MSS }, { seq: 21 * MSS, pay: MSS, badSum: true }, // a bad checksum spoils the run
    { seq: 30 * MSS, pay: 500 }, { seq: 30 * MSS + 500, pay: MSS }, // longer than the first: no run
    { seq: 40 * MSS, pay: MSS, df: false }, { seq: 41 * MSS, pay: MSS, df: false }, // no DF: no run
    { seq: 50 * MSS, pay: MSS, ack: 1 }, { seq: 51 * MSS, pay: MSS, ack: 2 }, // ACK moved: no run
    { seq: 2 ** 32 - 1000, pay: MSS }, { seq: MSS - 1000, pay: MSS }, // across the sequence wrap: a run
  ];
  const { out } = run(segs);
  assert.deepEqual(out, ['whole:0', 'whole:1', 'each:4', 'each:5', 'each:6', 'each:7', 'each:8', 'each:9', 'each:10',
    'each:11', 'each:12', 'each:13', 'each:14', 'whole:2']);
});

test('coalesce: segments lying alike in their 32-bit words (one kernel ring) are compared by words: another MAC, address or timestamp ends a run', () => {
  for (const align of [12, 2, 14, 3]) {
    const pair = (x: Partial<Seg>): Seg[] => [{ seq: 0, pay: MSS, align }, { seq: MSS, pay: MSS, align, ...x }];
    assert.deepEqual(run(pair({})).out, ['whole:0'], `align ${align}: alike`);
    for (const [what, x] of [['MAC', { mac: 3 }], ['source address', { src: 9 }], ['timestamp', { tsval: 43 }]] as const) {
      assert.deepEqual(run(pair(x)).out, ['each:0', 'each:1'], `align ${align}: another ${what}`);
    }
  }
});

test('coalesce: when the destination takes no super-frame, the segments go as they came', () => {
  const segs: Seg[] = [{ seq: 0, pay: 10, flags: 0x11 }, { seq: 10, pay: MSS }, { seq: 10 + MSS, pay: MSS }, { seq: 10 + 2 * MSS, pay: MSS }];
  const { out } = run(segs, false);
  assert.deepEqual(out, ['each:0', 'each:1', 'each:2', 'each:3']);
});

test('coalesce: payloads of both alignments (copied, then checked in the copy), an odd length last; a byte changed after the checksum spoils the run', () => {
  // odd frames lie in their 32-bit words as the scratch does, even ones 2 bytes off
  const segs: Seg[] = [];
  for (let k = 0; k < 6; k++) segs.push({ seq: 5000 + k * MSS, pay: k === 5 ? 101 : MSS });
  const { out, wholes } = run(segs);
  assert.deepEqual(out, ['whole:0']);
  const f = wholes[0]!.frame, payload = 5 * MSS + 101;
  assert.equal(f.length, 66 + payload);
  for (let i = 0; i < payload; i++) if (f[66 + i] !== ((5000 + i) & 0xff)) assert.fail(`payload byte ${i}`);
  for (const bad of [1, 2, 3, 4]) { // a changed byte in a segment of either alignment, at either place in a word
    const spoiled = [{ seq: 0, pay: MSS }, { seq: MSS, pay: MSS }, { seq: 2 * MSS, pay: MSS }, { seq: 3 * MSS, pay: MSS }, { seq: 4 * MSS, pay: MSS }]
      .map((x, k) => (k === bad ? { ...x, corrupt: 700 + bad } : x));
    assert.deepEqual(run(spoiled).out, ['each:0', 'each:1', 'each:2', 'each:3', 'each:4'], `segment ${bad} changed`);
  }
});
