/**
 * Live capture on netmap pipes and VALE ports: the libpcap-style API (zero-copy dispatch with a filter,
 * next, inject, stats, breakloop, loop), `netmap dump -i`, and `netmap nmreplay` at full
 * speed, fixed rate and recorded timing. Each test uses its own NETMAP_TS_DIR.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus, writeCorpus, TS_BASE } from './corpus.js';
import { openLive } from '../../src/capture/live.js';
import { compileFilter } from '../../src/capture/filter.js';
import { compileProgram } from '../../src/capture/jit.js';
import { openCaptureFile } from '../../src/capture/reader.js';
import { PcapWriter } from '../../src/capture/writer.js';
import '../../src/port-types.js'; // every port type, plugged into openPort
import { openPort } from '../../src/ports/index.js';
import { replayFile } from '../../src/capture/replay.js';
import { ether, ip4, udp, tcp, padFrame, TCP_SYN } from '../../src/capture/build.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/tools/cli.js');
let shmDir = '';
let work = '';

before(() => {
  shmDir = fs.mkdtempSync('/dev/shm/netmap-capture-test-');
  process.env.NETMAP_TS_DIR = shmDir;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-live-'));
});

after(() => {
  fs.rmSync(shmDir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

const frame = (i: number, proto: 'udp' | 'tcp'): Uint8Array => Uint8Array.from(padFrame(ether('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800,
  ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: proto === 'udp' ? 17 : 6 }, proto === 'udp' ? udp(1000 + i, 2000, [i]) : tcp({ sport: 1000 + i, dport: 80, flags: TCP_SYN })))));

test('libpcap-style API on a pipe: inject, zero-copy dispatch with a filter, next, stats, breakloop', async () => {
  const tx = openLive('netmap:p{31', { timeoutMs: 200 });
  const rx = openLive('netmap:p}31', { timeoutMs: 200, snaplen: 40 });
  try {
    for (let i = 0; i < 10; i++) assert.equal(tx.inject(frame(i, i % 2 === 0 ? 'udp' : 'tcp'), 0, 60), 60);
    rx.setFilter('udp and src port 1004 or tcp');
    const got: number[] = [];
    const n = rx.dispatch(0, (u8, o, caplen, wirelen) => {
      assert.equal(u8, rx.port.mem.u8, 'the callback sees the port memory itself');
      assert.equal(caplen, 40);
      assert.equal(wirelen, 60);
      got.push((u8[o + 34]! << 8) | u8[o + 35]!); // source port
    });
    assert.equal(n, 10);
    assert.deepEqual(got, [1001, 1003, 1004, 1005, 1007, 1009]);
    assert.deepEqual(rx.stats(), { received: 10, accepted: 6, dropped: 0 });
    assert.equal(rx.dispatch(0, () => assert.fail('nothing is queued')), 0); // times out
    tx.inject(frame(42, 'tcp'), 0, 60);
    const one = rx.next();
    assert.ok(one !== null);
    assert.equal(one.caplen, 40);
    assert.equal((one.data[34]! << 8) | one.data[35]!, 1042);
    rx.breakloop();
    assert.equal(rx.dispatch(0, () => undefined), -2);
    for (let i = 0; i < 5; i++) tx.inject(frame(i, 'tcp'), 0, 60);
    assert.equal(await rx.loop(3, () => undefined), 3);
    rx.setFilter(null);
    assert.equal(rx.dispatch(0, () => undefined), 2);
    assert.throws(() => rx.setFilter('tcp or'), /syntax error/);
  } finally {
    rx.close();
    tx.close();
  }
  assert.throws(() => rx.dispatch(0, () => undefined), /closed/);
});

function run(args: string[], timeoutMs = 20000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
}

/** Gives a just-spawned receiver time to open its port. */
function settle(ms = 1200): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('netmap nmreplay -F onto a pipe, netmap dump -i with a filter on the other end', async () => {
  const packets = buildCorpus(400, 21);
  const corpus = path.join(work, 'corpus.pcap');
  writeCorpus(corpus, packets);
  const out = path.join(work, 'rx.pcap');
  const expected = packets.filter((p) => compileProgram(compileFilter('tcp or arp'))(p.frame, 0, p.caplen, p.caplen) !== 0).length;
  const dump = run(['dump', '-i', 'netmap:p}32', '-w', out, '-c', String(expected), '--duration', '15', 'tcp or arp']);
  await settle();
  const rep = await run(['nmreplay', '-f', corpus, '-i', 'netmap:p{32', '-F']);
  assert.equal(rep.status, 0, rep.stderr);
  assert.match(rep.stdout, /^400 packets, \d+ bytes in [\d.]+ s over 1 loop\(s\): [\d.]+ Mpps/);
  const d = await dump;
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stderr, new RegExp(`${expected} packets captured`));
  // What arrived is the corpus (frames of caplen bytes) filtered by the expression, in order.
  const rd = openCaptureFile(out);
  const got: string[] = [];
  rd.dispatch(0, (u8, o, c) => { got.push(Buffer.from(u8.subarray(o, o + c)).toString('hex')); });
  rd.close();
  const want = packets.filter((p) => compileProgram(compileFilter('tcp or arp'))(p.frame, 0, p.caplen, p.caplen) !== 0)
    .map((p) => Buffer.from(p.frame.subarray(0, p.caplen)).toString('hex'));
  assert.deepEqual(got, want);
});

test('replay at the recorded timing and at a fixed rate, with loops', () => {
  const file = path.join(work, 'timed.pcap');
  const w = new PcapWriter(file);
  for (let i = 0; i < 5; i++) w.write(frame(i, 'udp'), 0, 60, 60, TS_BASE + Math.floor(i / 10), (i % 10) * 100_000_000);
  w.close();
  const tx = openPort('netmap:p{33');
  const rx = openLive('netmap:p}33', { timeoutMs: 0 });
  try {
    const timed = replayFile(file, tx, { mode: 'timed' });
    assert.equal(timed.packets, 5);
    assert.ok(timed.seconds >= 0.39 && timed.seconds < 1.5, `5 packets 100 ms apart took ${timed.seconds} s`);
    assert.equal(rx.dispatch(0, () => undefined), 5);
    const rate = replayFile(file, tx, { mode: 'rate', rate: 100, loops: 4 });
    assert.equal(rate.packets, 20);
    assert.equal(rate.loops, 4);
    assert.ok(rate.seconds >= 0.18 && rate.seconds < 1.5, `20 packets at 100 pps took ${rate.seconds} s`);
    let n = 0;
    while (rx.dispatch(0, () => undefined) > 0) n++;
    assert.ok(n >= 1);
    assert.equal(rx.stats().received, 25);
    const bw = replayFile(file, tx, { mode: 'bandwidth', bandwidth: 84 * 8 * 50, count: 10, loops: 0 }); // 50 frames/s of 60+24 bytes
    assert.equal(bw.packets, 10);
    assert.ok(bw.seconds >= 0.17 && bw.seconds < 1.5, `10 packets at 50/s took ${bw.seconds} s`);
    assert.throws(() => replayFile(file, tx, { mode: 'fast', loops: 0 }), /needs a duration or a packet count/);
    assert.throws(() => replayFile(file, tx, { mode: 'rate' }), /positive packet rate/);
    assert.throws(() => replayFile(path.join(work, 'none.pcap'), tx, { mode: 'fast' }), /cannot open/);
  } finally {
    rx.close();
    tx.close();
  }
});

test('dump and nmreplay reject bad arguments with usage and a non-zero status', () => {
  const env = { ...process.env, NETMAP_TS_DIR: shmDir };
  for (const args of [['dump'], ['dump', '-c'], ['dump', '-r', 'x', '-i', 'y'], ['dump', '-Z', '-r', 'x'], ['dump', '-c', 'abc', '-r', 'x'],
    ['nmreplay'], ['nmreplay', '-f', 'x'], ['nmreplay', '-f', 'x', '-i', 'y', '-b', 'fast'], ['nmreplay', '-q']]) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    // EX_USAGE for every tool on src/tools/args.ts
    assert.equal(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: netmap/);
  }
  for (const tool of ['dump', 'nmreplay']) {
    const r = spawnSync(process.execPath, [CLI, tool, '--help'], { encoding: 'utf8', env });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /usage: netmap/);
  }
});

test('capture on a VALE port: frames flooded from another port of the switch, filtered', () => {
  const a = openLive('vale31:a', { timeoutMs: 500 });
  const bPort = openLive('vale31:b', { timeoutMs: 500 });
  try {
    const bcast = (i: number, proto: 'udp' | 'tcp'): Uint8Array => Uint8Array.from(padFrame(ether('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', 0x0800,
      ip4({ src: '198.18.0.10', dst: '198.18.0.255', proto: proto === 'udp' ? 17 : 6 }, proto === 'udp' ? udp(3000 + i, 4000, [i]) : tcp({ sport: 3000 + i, dport: 80, flags: TCP_SYN })))));
    for (let i = 0; i < 8; i++) assert.equal(a.inject(bcast(i, i < 3 ? 'tcp' : 'udp'), 0, 60), 60);
    bPort.setFilter('ether broadcast and udp dst port 4000');
    const ports: number[] = [];
    let seen = 0;
    const deadline = Date.now() + 3000;
    while (ports.length < 5 && Date.now() < deadline) {
      const n = bPort.dispatch(0, (u8, o) => { ports.push((u8[o + 34]! << 8) | u8[o + 35]!); });
      if (n > 0) seen += n;
    }
    assert.deepEqual(ports, [3003, 3004, 3005, 3006, 3007]);
    assert.equal(seen, 8);
  } finally {
    bPort.close();
    a.close();
  }
});
