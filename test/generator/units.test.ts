/** Unit tests of the generator library: ranges, address walk, frames and checksums, formats. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddrWalker, formatIPv4, parseIPv4, parseMac, parseRange, formatRange } from '../../src/generator/addr.js';
import { FrameTemplate, SEQ_OFF, UDP_OFF, put32, put16, sumOfAddrs, swapForReply } from '../../src/generator/frame.js';
import { checkUdpFrame } from '../../src/packet/checksum.js';
import { formatSummary, norm, summarize, formatInterval } from '../../src/generator/stats.js';
import { clipBurst } from '../../src/generator/rate.js';
import { NetmapError } from '../../src/errors.js';

/** Reference checksums written independently of the library: plain RFC 1071 over byte arrays. */
function rfc1071(bytes: number[]): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) + (bytes[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
export function ipOk(f: Uint8Array): boolean {
  return rfc1071(Array.from(f.subarray(14, 34))) === 0;
}
export function udpOk(f: Uint8Array): boolean {
  const ulen = (f[38]! << 8) | f[39]!;
  const pseudo = [...f.subarray(26, 34), 0, 17, ulen >> 8, ulen & 255];
  return ((f[40]! << 8) | f[41]!) !== 0 && rfc1071([...pseudo, ...f.subarray(34, 34 + ulen)]) === 0;
}

test('parseRange: addresses, ports, ranges and defaults', () => {
  assert.deepEqual(parseRange('10.0.0.1', '-d'), { ipStart: parseIPv4('10.0.0.1', 'x'), ipEnd: parseIPv4('10.0.0.1', 'x'), port0: 1234, port1: 1234 });
  const r = parseRange('198.18.0.1:100-198.18.0.9:200', '-d');
  assert.equal(formatIPv4(r.ipStart), '198.18.0.1');
  assert.equal(formatIPv4(r.ipEnd), '198.18.0.9');
  assert.equal(r.port0, 100); assert.equal(r.port1, 200);
  const p = parseRange('10.0.0.1:5-:9', '-s');
  assert.equal(p.ipStart, p.ipEnd); assert.equal(p.port0, 5); assert.equal(p.port1, 9);
  assert.equal(formatRange(r), '198.18.0.1:100-198.18.0.9:200');
  for (const bad of ['', '10.0.0', '10.0.0.256', '10.0.0.1:70000', '10.0.0.2-10.0.0.1', '10.0.0.1:9-:5', '10.0.0.1-', 'x.y.z.w', '10.0.0.1:abc']) {
    assert.throws(() => parseRange(bad, '-d'), (e: unknown) => e instanceof NetmapError && e.code === 'EINVAL' && e.message.includes('-d'), bad);
  }
  assert.deepEqual(parseMac('02:00:00:aa:BB:0c', '-S'), [2, 0, 0, 0xaa, 0xbb, 0x0c]);
  assert.throws(() => parseMac('02:00:00:aa:bb', '-S'), NetmapError);
});

test('AddrWalker: pkt-gen odometer order (src port, src ip, dst port, dst ip) and random stays in range', () => {
  const w = new AddrWalker(parseRange('10.0.0.1:1-10.0.0.2:2', 's'), parseRange('10.1.0.1:7-10.1.0.2:7', 'd'), false, false);
  const seen: string[] = [];
  for (let i = 0; i < 9; i++) { seen.push(`${formatIPv4(w.srcIp)}:${w.sport}>${formatIPv4(w.dstIp)}:${w.dport}`); w.step(); }
  assert.deepEqual(seen, [
    '10.0.0.1:1>10.1.0.1:7', '10.0.0.1:2>10.1.0.1:7', '10.0.0.2:1>10.1.0.1:7', '10.0.0.2:2>10.1.0.1:7',
    '10.0.0.1:1>10.1.0.2:7', '10.0.0.1:2>10.1.0.2:7', '10.0.0.2:1>10.1.0.2:7', '10.0.0.2:2>10.1.0.2:7',
    '10.0.0.1:1>10.1.0.1:7',
  ]);
  const src = parseRange('10.0.0.1:1000-10.0.0.200:1010', 's'), dst = parseRange('10.9.0.1:5-10.9.0.3:6', 'd');
  const r = new AddrWalker(src, dst, true, true, 42);
  const ips = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    r.step();
    assert.ok(r.srcIp >= src.ipStart && r.srcIp <= src.ipEnd && r.sport >= 1000 && r.sport <= 1010);
    assert.ok(r.dstIp >= dst.ipStart && r.dstIp <= dst.ipEnd && r.dport >= 5 && r.dport <= 6);
    ips.add(r.srcIp);
  }
  assert.ok(ips.size > 150, `random source addresses cover the range (${ips.size} of 200)`);
});

test('FrameTemplate: valid IPv4/UDP frames for every size; per-packet header and seq writes keep checksums right', () => {
  for (const size of [42, 43, 60, 61, 64, 128, 1514, 2048]) {
    const t = new FrameTemplate({ size, srcMac: [2, 0, 0, 0, 0, 1], dstMac: [255, 255, 255, 255, 255, 255], srcIp: 0x0a000001, dstIp: 0x0a010001, sport: 1234, dport: 4321, variableBytes: 0 });
    assert.equal(t.bytes.length, size);
    assert.ok(ipOk(t.bytes), `ip checksum, size ${size}`);
    assert.ok(udpOk(t.bytes), `udp checksum, size ${size}`);
    assert.equal(checkUdpFrame(t.bytes, 0, size), null);
  }
  const t = new FrameTemplate({ size: 60, srcMac: [0, 0, 0, 0, 0, 0], dstMac: [255, 255, 255, 255, 255, 255], srcIp: 1, dstIp: 2, sport: 3, dport: 4, variableBytes: 4 });
  const f = new Uint8Array(200);
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const sip = x, dip = (x * 7) >>> 0, sp = x & 0xffff, dp = (x >>> 16) & 0xffff, seq = (x ^ 0xdeadbeef) >>> 0;
    f.set(t.bytes, 100);
    put32(f, 100 + SEQ_OFF, seq);
    t.writeHeaders(f, 100, sip, dip, sp, dp, (seq >>> 16) + (seq & 0xffff));
    const frame = f.subarray(100, 160);
    assert.ok(ipOk(frame) && udpOk(frame), `random headers #${i}`);
    // the seq-only fast path
    f.set(t.bytes, 100);
    put32(f, 100 + SEQ_OFF, seq);
    put16(f, 100 + UDP_OFF + 6, t.udpChecksum(sumOfAddrs(1, 2, 3, 4), (seq >>> 16) + (seq & 0xffff)));
    assert.ok(udpOk(f.subarray(100, 160)), `seq ${seq}`);
  }
  assert.throws(() => new FrameTemplate({ size: 41, srcMac: [0, 0, 0, 0, 0, 0], dstMac: [0, 0, 0, 0, 0, 0], srcIp: 1, dstIp: 2, sport: 3, dport: 4, variableBytes: 0 }), NetmapError);
  // pong's swap keeps checksums valid
  const g = Uint8Array.from(t.bytes);
  swapForReply(g, 0, g.length);
  assert.ok(ipOk(g) && udpOk(g));
  assert.deepEqual([...g.subarray(0, 6)], [0, 0, 0, 0, 0, 0]);
  assert.equal(checkUdpFrame(g, 0, 60), null);
  g[50]! ^= 1;
  assert.equal(checkUdpFrame(g, 0, 60), 'bad UDP checksum');
});

test('output formats: norm, the final two lines, the interval line', () => {
  assert.equal(norm(0, true), '0.000 ');
  assert.equal(norm(999, true), '999.000 ');
  assert.equal(norm(14880000, true), '14.880 M');
  assert.equal(norm(2.5e9, true), '2.500 G');
  assert.equal(norm(14880000, false), '14880000 ');
  const s = summarize('Sent', 1000000, 60000000, 2000, 0.5);
  assert.equal(formatSummary(s, true),
    'Sent 1000000 packets 60000000 bytes 2000 events 60 bytes each in 0.50 seconds.\n' +
    'Speed: 2.000 Mpps Bandwidth: 960.000 Mbps (raw 1.344 Gbps). Average batch: 500.00 pkts\n');
  assert.equal(formatSummary(summarize('Received', 0, 0, 0, 1), true), 'Received nothing.\n');
  assert.equal(formatInterval(1000, 60000, 2, 1e6, 10, true), '1.000 Kpps (1.000 Kpkts 480.000 Kbps in 1000000 usec) 500.00 avg_batch 10 min_space');
  assert.equal(clipBurst(512, 0), 512);
  assert.equal(clipBurst(512, 3000), 10);
  assert.equal(clipBurst(512, 10), 1);
});

test('pkt-gen argument parser: any argument list parses or fails with a NetmapError', async () => {
  const { parseArgs } = await import('../../src/tools/pkt-gen.js');
  const cfg = parseArgs(['-i', 'vale0:a', '-f', 'tx', '-n100k', '-l', '128', '-d', '198.18.0.1:1-198.18.0.2:2', '-R', '1.5M', '-p', '2', '-z', '-Z', '-v', '-v']);
  assert.ok(cfg !== null);
  assert.equal(cfg.ifname, 'vale0:a');
  assert.equal(cfg.count, 100_000);
  assert.equal(cfg.rate, 1_500_000);
  assert.equal(cfg.threads, 2);
  assert.equal(cfg.verbose, 2);
  assert.equal(cfg.waitSecs, 0);
  assert.equal(parseArgs(['-i', 'eth9'])!.ifname, 'netmap:eth9');
  assert.equal(parseArgs(['-i', 'eth9'])!.waitSecs, 2);
  assert.equal(parseArgs(['-i', 'x{0', '-f', 'ping'])!.burst, 1);
  assert.equal(parseArgs(['--help']), null);
  const pool = ['-i', '-f', '-n', '-l', '-b', '-R', '-p', '-d', '-s', '-D', '-S', '-w', '-T', '-a', '-c', '-z', '-Z', '-W', '-N', '-v', '--json', '--spin',
    'tx', 'rx', 'ping', 'x', '', '0', '-1', '60', '1e9', '99999999999999999999', '10.0.0.1', '10.0.0.1:5-10.0.0.3', ':', '-', 'ff:ff:ff:ff:ff:ff', 'netmap:p{0', 'vale0:a', '1k', '1.5', '\u0000', 'NaN'];
  let x = 7;
  const rnd = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return (x >>> 8) % n; };
  for (let k = 0; k < 3000; k++) {
    const args = Array.from({ length: rnd(8) }, () => pool[rnd(pool.length)]!);
    try {
      parseArgs(args);
    } catch (e) {
      assert.ok(e instanceof NetmapError, `${JSON.stringify(args)} threw ${String(e)}`);
    }
  }
});

test('-X dump format', async () => {
  const { hexDump } = await import('../../src/generator/dump.js');
  const text = hexDump(Uint8Array.from([0x41, 0x00, 0xff, ...Array(15).fill(0x62)]), 0, 18, 'hdr');
  assert.equal(text, 'hdr\n0000: 41 00 ff 62 62 62 62 62 62 62 62 62 62 62 62 62  A..bbbbbbbbbbbbb\n0010: 62 62                                            bb');
});
