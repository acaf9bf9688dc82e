/** completePartialChecksum (csum.ts): the AF_XDP backend's repair of CHECKSUM_PARTIAL frames. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { completePartialChecksum } from '../../src/interfaces/csum.js';

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function sum(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  return s;
}

/** An Ethernet/IPv4 (or IPv6) frame with a UDP or TCP segment of `payload` bytes; checksum field 0. */
function frame(v6: boolean, proto: 6 | 17, payload: number): { b: Uint8Array; l4: number; field: number; pseudo: number } {
  const ip = 14, l3 = v6 ? 40 : 20, l4h = proto === 6 ? 20 : 8;
  const b = new Uint8Array(ip + l3 + l4h + payload);
  b[12] = v6 ? 0x86 : 0x08; b[13] = v6 ? 0xdd : 0x00;
  const l4len = l4h + payload;
  if (v6) {
    b[ip] = 0x60; b[ip + 4] = l4len >>> 8; b[ip + 5] = l4len & 0xff; b[ip + 6] = proto; b[ip + 7] = 64;
    for (let i = 0; i < 32; i++) b[ip + 8 + i] = (i * 13 + 7) & 0xff;
  } else {
    b[ip] = 0x45; b[ip + 8] = 64; b[ip + 9] = proto;
    b.set([198, 18, 0, 1, 198, 18, 0, 2], ip + 12);
  }
  const l4 = ip + l3;
  b[l4] = 0x04; b[l4 + 1] = 0xd2; b[l4 + 2] = 0x00; b[l4 + 3] = 0x50;
  if (proto === 17) { b[l4 + 4] = l4len >>> 8; b[l4 + 5] = l4len & 0xff; } else b[l4 + 12] = 0x50;
  for (let i = l4 + l4h; i < b.length; i++) b[i] = (i * 31) & 0xff;
  const pseudo = fold(fold(proto + l4len + (v6 ? sum(b, ip + 8, ip + 40) : sum(b, ip + 12, ip + 20))));
  return { b, l4, field: l4 + (proto === 6 ? 16 : 6), pseudo };
}

function valid(f: ReturnType<typeof frame>): boolean {
  return fold(fold(sum(f.b, f.l4, f.b.length) + f.pseudo)) === 0xffff;
}

test('a partial checksum (the pseudo-header sum in the field) is completed: UDP/IPv4, TCP/IPv4, TCP/IPv6, odd lengths', () => {
  for (const [v6, proto, payload] of [[false, 17, 18], [false, 6, 1400], [true, 6, 33], [true, 17, 1]] as const) {
    const f = frame(v6, proto, payload);
    f.b[f.field] = f.pseudo >>> 8;
    f.b[f.field + 1] = f.pseudo & 0xff;
    assert.equal(valid(f), false);
    assert.equal(completePartialChecksum(f.b, 0, f.b.length), true, `${v6 ? 'v6' : 'v4'} ${proto}`);
    assert.equal(valid(f), true, `${v6 ? 'v6' : 'v4'} ${proto} ${payload}`);
  }
});

test('a complete checksum, a wrong one of another form, and non-TCP/UDP frames are left alone', () => {
  const f = frame(false, 6, 100);
  f.b[f.field] = f.pseudo >>> 8;
  f.b[f.field + 1] = f.pseudo & 0xff;
  completePartialChecksum(f.b, 0, f.b.length);
  const good = Uint8Array.from(f.b);
  assert.equal(completePartialChecksum(f.b, 0, f.b.length), false, 'already complete');
  assert.deepEqual(f.b, good);
  f.b[f.field] = f.b[f.field]! ^ 0x5a; // corrupt, and not the pseudo-header sum
  const bad = Uint8Array.from(f.b);
  assert.equal(completePartialChecksum(f.b, 0, f.b.length), false);
  assert.deepEqual(f.b, bad, 'a corrupt checksum is not "repaired"');
  const arp = new Uint8Array(60);
  arp[12] = 0x08; arp[13] = 0x06;
  assert.equal(completePartialChecksum(arp, 0, 60), false);
  assert.equal(completePartialChecksum(new Uint8Array(10), 0, 10), false, 'a runt');
});
