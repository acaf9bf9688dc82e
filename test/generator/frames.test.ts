/**
 * The frames pkt-gen sends are valid: captured from a pipe and checked here with an independent
 * RFC 1071 implementation (IPv4 header and UDP checksums), -s/-d ranges walked in pkt-gen's
 * order, the capture also read by tcpdump -vv when installed, and — as root — frames sent on a
 * veth in a private namespace are accepted by the Linux UDP stack on the other end
 * (addresses 198.18.0.0/15 only).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { setImmediate as tick } from 'node:timers/promises';

process.env.NETMAP_TS_DIR = fs.mkdtempSync('/dev/shm/nmts-pgframes-');
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort, POLLIN } = await import('../../src/ports/index.js');
const { start, run } = await import('./helpers.js');
const { skipReason, withLab, sleep } = await import('../helpers/netns.js');

function rfc1071(bytes: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) + (i + 1 < bytes.length ? bytes[i + 1]! : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
function ip4(f: Uint8Array, at: number): string { return `${f[at]}.${f[at + 1]}.${f[at + 2]}.${f[at + 3]}`; }
function u16(f: Uint8Array, at: number): number { return (f[at]! << 8) | f[at + 1]!; }

/** Receives `n` frames from `name` while `sender` runs; returns copies. */
async function capture(name: string, n: number, senderArgs: string[]): Promise<Uint8Array[]> {
  const port = openPort(name);
  const frames: Uint8Array[] = [];
  try {
    const tx = start(senderArgs, process.env.NETMAP_TS_DIR!, 15_000);
    const deadline = Date.now() + 10_000;
    while (frames.length < n && Date.now() < deadline) {
      port.poll(POLLIN, 20);
      const r = port.rxRings[0]!;
      while (!r.empty() && frames.length < n) {
        const i = r.head;
        const at = r.slotBufOffset(i);
        frames.push(port.mem.u8.slice(at, at + r.slotLen(i)));
        r.advance(r.next(i));
      }
      await tick();
    }
    port.rxsync();
    const done = await tx.done;
    assert.equal(done.code, 0, done.stderr);
  } finally {
    port.close();
  }
  assert.equal(frames.length, n, 'all frames captured');
  return frames;
}

function writePcap(file: string, frames: Uint8Array[]): void {
  const parts: Buffer[] = [];
  const g = Buffer.alloc(24);
  g.writeUInt32LE(0xa1b2c3d4, 0); g.writeUInt16LE(2, 4); g.writeUInt16LE(4, 6); g.writeUInt32LE(65535, 16); g.writeUInt32LE(1, 20);
  parts.push(g);
  frames.forEach((f, k) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1, 0); h.writeUInt32LE(k, 4); h.writeUInt32LE(f.length, 8); h.writeUInt32LE(f.length, 12);
    parts.push(h, Buffer.from(f));
  });
  fs.writeFileSync(file, Buffer.concat(parts));
}

test('frames: Ethernet/IPv4/UDP with correct checksums, -s/-d ranges in pkt-gen order, tcpdump agrees', async () => {
  const n = 48;
  const frames = await capture('netmap:fr}0', n, ['pkt-gen', '-i', 'netmap:fr{0', '-f', 'tx', '-n', String(n), '-l', '71', '-T', '0',
    '-s', '198.18.0.1:1000-198.18.0.2:1002', '-d', '198.18.1.1:5000-198.18.1.2:5001', '-S', '02:00:00:00:00:01', '-D', '02:00:00:00:00:02']);
  const tuples: string[] = [];
  for (const f of frames) {
    assert.equal(f.length, 71);
    assert.deepEqual([...f.subarray(0, 12)], [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    assert.equal(u16(f, 12), 0x0800);
    assert.equal(f[14], 0x45);
    assert.equal(u16(f, 16), 71 - 14, 'IP total length');
    assert.equal(f[23], 17, 'UDP');
    assert.equal(rfc1071(f.subarray(14, 34)), 0, 'IPv4 header checksum');
    const ulen = u16(f, 38);
    assert.equal(ulen, 71 - 34, 'UDP length');
    assert.notEqual(u16(f, 40), 0, 'UDP checksum present');
    assert.equal(rfc1071([...f.subarray(26, 34), 0, 17, ulen >> 8, ulen & 255, ...f.subarray(34, 34 + ulen)]), 0, 'UDP checksum');
    tuples.push(`${ip4(f, 26)}:${u16(f, 34)}>${ip4(f, 30)}:${u16(f, 36)}`);
  }
  // odometer: source port fastest, then source address, then destination port, then destination address
  const expected: string[] = [];
  for (const dip of ['198.18.1.1', '198.18.1.2']) for (const dp of [5000, 5001]) for (const sip of ['198.18.0.1', '198.18.0.2']) for (const sp of [1000, 1001, 1002]) expected.push(`${sip}:${sp}>${dip}:${dp}`);
  assert.deepEqual(tuples.slice(0, 24), expected);
  assert.deepEqual(tuples.slice(24), expected);

  const tool = ['tcpdump', 'tshark'].find((t) => spawnSync('which', [t]).status === 0);
  if (tool === undefined) { console.log('# tcpdump/tshark not installed: capture check skipped'); return; }
  const file = path.join(process.env.NETMAP_TS_DIR!, 'frames.pcap');
  writePcap(file, frames);
  if (tool === 'tcpdump') {
    const r = spawnSync('tcpdump', ['-r', file, '-nn', '-vv'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((r.stdout.match(/\[udp sum ok\]/g) ?? []).length, n, r.stdout);
    assert.doesNotMatch(r.stdout, /bad cksum|bad udp cksum/);
    assert.match(r.stdout, /198\.18\.0\.1\.1000 > 198\.18\.1\.1\.5000: \[udp sum ok\] UDP, length 29/);
  } else {
    const r = spawnSync('tshark', ['-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'ip.checksum.status', '-e', 'udp.checksum.status'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const line of r.stdout.trim().split('\n')) assert.equal(line, '1\t1');
  }
});

test('frames: txseq numbers and the ping stamp keep the UDP checksum right', async () => {
  const frames = await capture('netmap:fs}0', 20, ['pkt-gen', '-i', 'netmap:fs{0', '-f', 'txseq', '-n', '20', '-l', '60', '-T', '0']);
  frames.forEach((f, k) => {
    assert.equal(((f[42]! << 24) | (f[43]! << 16) | (f[44]! << 8) | f[45]!) >>> 0, k, 'sequence number');
    const ulen = u16(f, 38);
    assert.equal(rfc1071([...f.subarray(26, 34), 0, 17, ulen >> 8, ulen & 255, ...f.subarray(34, 34 + ulen)]), 0);
  });
  const pings = await capture('netmap:fp}0', 1, ['pkt-gen', '-i', 'netmap:fp{0', '-f', 'ping', '-n', '1', '-T', '0']);
  const f = pings[0]!;
  const ulen = u16(f, 38);
  assert.equal(rfc1071([...f.subarray(26, 34), 0, 17, ulen >> 8, ulen & 255, ...f.subarray(34, 34 + ulen)]), 0);
});

const skip = skipReason();
test('frames: a Linux host accepts them (veth in a private namespace, UDP delivered to a socket)', { skip: skip ?? false, timeout: 60_000 }, () => withLab(async (lab) => {
  const a = lab.ns('pga'), b = lab.ns('pgb');
  lab.veth(a, 'pga0', b, 'pgb0');
  lab.addr(a, 'pga0', '198.18.7.1/24');
  lab.addr(b, 'pgb0', '198.18.7.2/24');
  const macOf = (ns: string, dev: string): string => (JSON.parse(lab.must(ns, 'ip', ['-j', 'link', 'show', 'dev', dev]).stdout) as { address: string }[])[0]!.address;
  const n = 200;
  const listener = lab.spawn(b, process.execPath, ['-e', `
    const s = require('node:dgram').createSocket('udp4'); let n = 0, bytes = 0;
    s.on('message', (m) => { n++; bytes += m.length; });
    s.bind(5000, '198.18.7.2', () => console.log('ready'));
    setTimeout(() => { console.log('got ' + n + ' ' + bytes); s.close(); }, 4000);`]);
  let out = '';
  listener.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const until = Date.now() + 5000;
  while (!out.includes('ready') && Date.now() < until) await sleep(20);
  assert.match(out, /ready/);
  const tx = lab.spawn(a, process.execPath, [new URL('../../src/tools/cli.js', import.meta.url).pathname, 'pkt-gen', '-i', 'netmap:pga0', '-f', 'tx', '-n', String(n), '-R', '2000', '-w', '0', '-T', '0',
    '-l', '100', '-s', '198.18.7.1:4000-198.18.7.1:4009', '-d', '198.18.7.2:5000', '-S', macOf(a, 'pga0'), '-D', macOf(b, 'pgb0')]);
  let txOut = '';
  tx.stdout!.on('data', (d: Buffer) => { txOut += d.toString(); });
  tx.stderr!.on('data', (d: Buffer) => { txOut += d.toString(); });
  const txDone = new Promise<number | null>((r) => tx.on('close', (code) => r(code)));
  assert.equal(await txDone, 0, txOut);
  while (!out.includes('got') && Date.now() < until + 5000) await sleep(50);
  assert.match(txOut, new RegExp(`Sent ${n} packets`));
  assert.match(out, new RegExp(`got ${n} ${n * (100 - 42)}`), `listener: ${out}; pkt-gen: ${txOut}`);
  const snmp = lab.must(b, 'cat', ['/proc/net/snmp']).stdout;
  const udp = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const fields = udp[0]!.split(/\s+/), values = udp[1]!.split(/\s+/);
  assert.equal(Number(values[fields.indexOf('InCsumErrors')]), 0);
  void run;
}));
