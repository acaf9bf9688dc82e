/**
 * netmap-ts/pcap against the documented behaviour of the npm `pcap` package (node_pcap 3.x):
 * 'packet' events carry { buf, header, link_type } where buf is one reused Buffer of snap_length
 * bytes holding the packet from offset 0, header a reused 16-byte Buffer with the pcap record
 * header in little-endian order (tv_sec, tv_usec, caplen, len), link_type 'LINKTYPE_ETHERNET';
 * stats() gives { ps_recv, ps_drop, ps_ifdrop } and throws once closed; close() removes every
 * listener; options filter, snap_length, buffer_size, buffer_timeout. The expectations are written
 * from that package's source and typings (pcap.js, pcap_session.cc, pcap.d.ts,
 * decode/pcap_packet.js), not from running it. Capture must leave the event loop free.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import { spawn } from 'node:child_process';
import * as pcap from '../../src/capture/pcap-compat.js';
import '../../src/port-types.js'; // every port type, plugged into openPort
import { openPort, type Port } from '../../src/ports/index.js';
import { PcapWriter } from '../../src/capture/writer.js';
import { ether, ip4, udp, tcp, padFrame, TCP_SYN } from '../../src/capture/build.js';

let shmDir = '';
let work = '';

before(() => {
  shmDir = fs.mkdtempSync('/dev/shm/netmap-pcap-compat-test-');
  process.env.NETMAP_TS_DIR = shmDir;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'netmap-pcap-compat-'));
});

after(() => {
  fs.rmSync(shmDir, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** A frame of `len` bytes (>= 60): UDP to port 2000 when udpFrame, else a TCP SYN; byte 42.. = i. */
function frame(i: number, len: number, udpFrame: boolean): Uint8Array {
  const payload = Array.from({ length: len - 42 - (udpFrame ? 0 : 12) }, (_, k) => (i + k) & 0xff);
  const l4 = udpFrame ? udp(1000 + i, 2000, payload) : tcp({ sport: 1000 + i, dport: 80, flags: TCP_SYN }, payload);
  const f = Uint8Array.from(padFrame(ether('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800, ip4({ src: '198.18.0.1', dst: '198.18.0.2', proto: udpFrame ? 17 : 6 }, l4))));
  return f;
}

function send(tx: Port, frames: Uint8Array[]): void {
  for (const f of frames) assert.equal(tx.inject(f, 0, f.length), f.length);
  tx.txsync();
}

/** The header as node_pcap's decode/pcap_packet.js reads it. */
function readHeader(h: Buffer): { tv_sec: number; tv_usec: number; caplen: number; len: number } {
  return { tv_sec: h.readUInt32LE(0), tv_usec: h.readUInt32LE(4), caplen: h.readUInt32LE(8), len: h.readUInt32LE(12) };
}

const until = async (cond: () => boolean, ms: number): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
};

test('packet events have node_pcap\'s shape: reused buf of snap_length, 16-byte LE header, link type string', async () => {
  const tx = openPort('netmap:pa{1');
  const session = pcap.createSession('netmap:pa}1', { filter: 'udp dst port 2000', snap_length: 100 });
  try {
    assert.ok(session instanceof EventEmitter);
    assert.equal(session.link_type, 'LINKTYPE_ETHERNET');
    assert.equal(session.device_name, 'netmap:pa}1');
    assert.equal(session.snap_length, 100);
    assert.equal(session.buffer_size, 10 * 1024 * 1024);
    assert.equal(session.buffer_timeout, 1000);
    const got: Array<{ keys: string[]; hdr: ReturnType<typeof readHeader>; bytes: string; buf: Buffer; header: Buffer; link: string; bufLen: number; headerLen: number }> = [];
    session.on('packet', (raw: pcap.PacketWithHeader) => {
      const hdr = readHeader(raw.header);
      got.push({ keys: Object.keys(raw).sort(), hdr, bytes: raw.buf.subarray(0, hdr.caplen).toString('hex'), buf: raw.buf, header: raw.header,
        link: raw.link_type, bufLen: raw.buf.length, headerLen: raw.header.length });
    });
    const t0 = Math.floor(Date.now() / 1000);
    const frames = [frame(1, 60, true), frame(2, 60, false), frame(3, 150, true), frame(4, 80, true)];
    send(tx, frames);
    await until(() => got.length >= 3, 3000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 3, 'the TCP frame is filtered out');
    const want = [frames[0]!, frames[2]!, frames[3]!];
    got.forEach((g, k) => {
      assert.deepEqual(g.keys, ['buf', 'header', 'link_type']);
      assert.equal(g.link, 'LINKTYPE_ETHERNET');
      assert.ok(Buffer.isBuffer(g.buf) && Buffer.isBuffer(g.header));
      assert.equal(g.bufLen, 100, 'buf is snap_length bytes, not caplen');
      assert.equal(g.headerLen, 16);
      const w = want[k]!;
      assert.equal(g.hdr.len, w.length);
      assert.equal(g.hdr.caplen, Math.min(w.length, 100), 'caplen cut at snap_length');
      assert.equal(g.bytes, Buffer.from(w.subarray(0, Math.min(w.length, 100))).toString('hex'));
      assert.ok(g.hdr.tv_sec >= t0 - 1 && g.hdr.tv_sec <= t0 + 5, `tv_sec ${g.hdr.tv_sec} near ${t0}`);
      assert.ok(g.hdr.tv_usec < 1_000_000);
    });
    // one buffer and one header for the whole session, as node_pcap
    assert.equal(got[0]!.buf, got[2]!.buf);
    assert.equal(got[0]!.header, got[1]!.header);
    const st = session.stats();
    assert.deepEqual(Object.keys(st).sort(), ['ps_drop', 'ps_ifdrop', 'ps_recv']);
    assert.equal(st.ps_recv, 4, 'ps_recv counts packets before the filter');
    assert.equal(st.ps_drop, 0);
    assert.equal(st.ps_ifdrop, 0);
  } finally {
    session.close();
    tx.close();
  }
});

test('close() removes the listeners, stops events, and stats() then throws as node_pcap does', async () => {
  const tx = openPort('netmap:pb{1');
  const session = pcap.createSession('netmap:pb}1');
  try {
    let n = 0;
    session.on('packet', () => { n++; });
    send(tx, [frame(1, 60, true)]);
    await until(() => n === 1, 3000);
    assert.equal(n, 1);
    session.close();
    assert.equal(session.listenerCount('packet'), 0);
    assert.equal(session.opened, false);
    assert.throws(() => session.stats(), /already closed/);
    assert.throws(() => session.inject(Buffer.alloc(60)), /already closed/);
    session.close(); // twice is harmless
    send(tx, [frame(2, 60, true)]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(n, 1);
  } finally {
    session.close();
    tx.close();
  }
});

test('capture does not block the event loop: timers keep firing while packets stream and while idle', async () => {
  const tx = openPort('netmap:pc{1');
  const session = pcap.createSession('netmap:pc}1', { filter: 'udp' });
  let received = 0;
  session.on('packet', () => { received++; });
  const gaps: number[] = [];
  let last = performance.now();
  const tick = setInterval(() => { const now = performance.now(); gaps.push(now - last); last = now; }, 2);
  try {
    // idle first: the session waits for packets without holding the thread
    // (a dispatch that slept in poll() would hold the thread for its timeout: hundreds of ms)
    await new Promise((r) => setTimeout(r, 300));
    const idleWorst = Math.max(...gaps.slice(2));
    assert.ok(gaps.length >= 10 && idleWorst < 200, `${gaps.length} timer ticks in 300 ms of idle capture, the longest gap ${idleWorst.toFixed(1)} ms`);
    // then 20 rounds of 200 frames, sent from this same thread between timer ticks
    // (a full pipe makes inject return 0: the sender waits for the session to drain it)
    const frames = Array.from({ length: 200 }, (_, i) => frame(i, 60, i % 4 !== 3));
    const sendDeadline = Date.now() + 20000;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < frames.length && Date.now() < sendDeadline;) {
        if (tx.inject(frames[i]!, 0, 60) === 60) { i++; continue; }
        tx.txsync();
        await new Promise((r) => setTimeout(r, 1));
      }
      tx.txsync();
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => received >= 3000, 3000);
    assert.equal(received, 3000, '3 of 4 frames are UDP');
    assert.equal(session.stats().ps_recv, 4000);
    const worst = Math.max(...gaps.slice(5));
    assert.ok(worst < 250, `the longest timer gap was ${worst.toFixed(1)} ms`);
  } finally {
    clearInterval(tick);
    session.close();
    tx.close();
  }
});

test('inject, bad options and bad names fail with an error, never a crash', () => {
  const rx = openPort('netmap:pd}1');
  const session = pcap.createSession('netmap:pd{1');
  try {
    const f = frame(7, 60, true);
    session.inject(Buffer.from(f));
    rx.rxsync();
    const r = rx.rxRings[0]!;
    assert.equal(r.empty(), false);
    assert.equal(Buffer.from(rx.mem.u8.subarray(r.slotBufOffset(r.head), r.slotBufOffset(r.head) + r.slotLen(r.head))).toString('hex'), Buffer.from(f).toString('hex'));
    assert.throws(() => session.inject('text' as unknown as Buffer), /must be a buffer/);
  } finally {
    session.close();
    rx.close();
  }
  assert.throws(() => pcap.createSession('netmap:pe}1', { monitor: true }), (e: Error & { code?: string }) => e.code === 'EOPNOTSUPP');
  assert.throws(() => pcap.createSession('netmap:pe}1', { filter: 'udp port' }), /EINVAL|expression|syntax/i);
  assert.throws(() => pcap.createSession('netmap:pe}1', { snap_length: 0 }), /snap_length/);
  assert.throws(() => pcap.createSession(''), /port name/);
  assert.throws(() => pcap.createSession('bogus name'), /invalid port name/);
  assert.deepEqual(pcap.findalldevs().filter((d) => d.name.startsWith('netmap:pe')), [], 'failed opens leave nothing behind');
});

test('createOfflineSession: filtered records as packet events, then complete; findalldevs lists the ports in use', async () => {
  const file = path.join(work, 'in.pcap');
  const w = new PcapWriter(file);
  const frames = [frame(1, 60, true), frame(2, 60, false), frame(3, 70, true)];
  frames.forEach((f, i) => w.write(f, 0, f.length, f.length, 1700000000 + i, 250_000_000));
  w.close();
  const session = pcap.createOfflineSession(file, { filter: 'udp' });
  const seen: Array<{ hdr: ReturnType<typeof readHeader>; bytes: string }> = [];
  session.on('packet', (raw: pcap.PacketWithHeader) => {
    const hdr = readHeader(raw.header);
    seen.push({ hdr, bytes: raw.buf.subarray(0, hdr.caplen).toString('hex') });
  });
  await new Promise<void>((resolve) => session.on('complete', resolve));
  assert.deepEqual(seen.map((s) => s.hdr), [
    { tv_sec: 1700000000, tv_usec: 250000, caplen: 60, len: 60 },
    { tv_sec: 1700000002, tv_usec: 250000, caplen: 70, len: 70 },
  ]);
  assert.equal(seen[1]!.bytes, Buffer.from(frames[2]!).toString('hex'));
  session.close();

  const a = openPort('vale77:a');
  const p = openPort('netmap:pf{3');
  try {
    const names = pcap.findalldevs().map((d) => d.name);
    for (const n of ['vale77:a', 'netmap:pf{3', 'netmap:pf}3']) assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
  } finally {
    a.close();
    p.close();
  }
});

test('an open session keeps the process alive, as node_pcap\'s does; close() lets it exit', async () => {
  const mod = new URL('../../src/capture/pcap-compat.js', import.meta.url).href;
  const script = (close: boolean): string => `import * as pcap from '${mod}';
const s = pcap.createSession('netmap:pk}${close ? 2 : 1}');
${close ? 's.close();' : ''}`;
  const run = (close: boolean): Promise<{ code: number | null; aliveAfterMs: boolean }> => new Promise((resolve) => {
    // a file, not -e: workers inherit execArgv, and --input-type is refused without -e
    const file = path.join(work, `alive-${close ? 'closed' : 'open'}.mjs`);
    fs.writeFileSync(file, script(close));
    const c = spawn(process.execPath, [file], { env: { ...process.env, NETMAP_TS_DIR: shmDir }, stdio: 'ignore' });
    let alive = true;
    const timer = setTimeout(() => { c.kill('SIGTERM'); }, 8000);
    c.on('exit', (code) => { clearTimeout(timer); alive = false; resolve({ code, aliveAfterMs: false }); });
    // the open session: still running after 8 s, then killed
    setTimeout(() => { if (alive) resolve({ code: null, aliveAfterMs: true }); }, 7500);
  });
  // the two run at once, so each has a pipe end of its own (an end is opened by one process at a time)
  const [open, closed] = await Promise.all([run(false), run(true)]);
  assert.equal(open.aliveAfterMs, true, 'an open session must keep its process alive');
  assert.equal(closed.code, 0, 'a closed session must let its process exit');
});
