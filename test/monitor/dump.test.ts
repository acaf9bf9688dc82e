/**
 * `netmap dump -i PORT` on a port in use watches it through a copy monitor: both directions,
 * marked In/Out (and in pcapng's epb_flags), -Q selecting one.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';

process.env.NETMAP_TS_DIR = fs.mkdtempSync('/dev/shm/nmts-mondump-');
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { registry } = await import('../../src/memory/registry.js');
const L = await import('../../src/memory/layout.js');
const { openCaptureFile } = await import('../../src/capture/reader.js');
const { sleep } = await import('../helpers/netns.js');
type Port = ReturnType<typeof openPort>;

const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;

function queue(p: Port, dst: number, src: number, tag: number): void {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  const o = r.slotBufOffset(r.head);
  for (let j = 0; j < 6; j++) { u8[o + j] = dst === 255 ? 255 : j === 0 ? 2 : j === 5 ? dst : 0; u8[o + 6 + j] = j === 0 ? 2 : j === 5 ? src : 0; }
  u8[o + 12] = 0x08; u8[o + 13] = 0x00; // IPv4, UDP 198.18.0.src -> 198.18.0.dst, dst port 1234 + tag
  const ip = [0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, src, 198, 18, 0, dst === 255 ? 2 : dst];
  for (let j = 0; j < 20; j++) u8[o + 14 + j] = ip[j]!;
  const v = p.mem.view;
  v.setUint16(o + 34, 999); v.setUint16(o + 36, 1234 + tag); v.setUint16(o + 38, 26); v.setUint16(o + 40, 0);
  r.setSlotLen(r.head, 60);
  r.setSlotFlags(r.head, 0);
  r.advance(r.next(r.head));
}

async function runDump(args: string[], act: () => void): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'dump', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => { stdout += String(d); });
  child.stderr.on('data', (d) => { stderr += String(d); });
  const done = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  for (let t = 0; t < 400 && !stderr.includes('listening'); t++) await sleep(25);
  assert.ok(stderr.includes('listening'), `dump started: ${stderr}`);
  act();
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const status = await done;
  clearTimeout(timer);
  return { status, stdout, stderr };
}

test('dump -i vale15:a watches a\'s traffic both ways through vale15:a/rt, not as a new switch port', async () => {
  const a = openPort('vale15:a'), b = openPort('vale15:b'), c = openPort('vale15:c');
  try {
    const drain = (p: Port): number => { p.rxsync(); let n = 0; const r = p.rxRings[0]!; while (!r.empty()) { n++; r.advance(r.next(r.head)); } p.rxsync(); return n; };
    // b and c learn each other first: their unicast frames never reach a (nor its monitor)
    queue(b, 255, 2, 0); b.txsync(); queue(c, 255, 3, 0); c.txsync();
    drain(a); drain(b); drain(c);
    const out = await runDump(['-i', 'vale15:a', '-c', '4', '--duration', '10'], () => {
      queue(b, 3, 2, 7); b.txsync();           // b -> c: not a's traffic
      queue(b, 255, 2, 1); b.txsync();         // broadcast: a receives it
      queue(a, 2, 1, 2); a.txsync();           // a -> b
      queue(c, 255, 3, 3); c.txsync();
      queue(a, 3, 1, 4); a.txsync();           // a -> c
      drain(a); drain(b); drain(c);
    });
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stderr, /listening on vale15:a \(through vale15:a\/rt#\d+\)/);
    const lines = out.stdout.trim().split('\n');
    assert.equal(lines.length, 4, out.stdout);
    assert.deepEqual(lines.map((l) => l.split(' ')[1]), ['In', 'Out', 'In', 'Out']);
    assert.deepEqual(lines.map((l) => /\.(\d+): UDP/.exec(l)?.[1]), ['1235', '1236', '1237', '1238']);
    // -Q out, pcapng: only what a sends, flagged outbound
    const file = `${process.env.NETMAP_TS_DIR}/out.pcapng`;
    const out2 = await runDump(['-i', 'vale15:a', '-Q', 'out', '-c', '2', '--pcapng', '-w', file, '--duration', '10'], () => {
      queue(b, 255, 2, 11); b.txsync();
      queue(a, 2, 1, 12); a.txsync();
      queue(a, 255, 1, 13); a.txsync();
      drain(a); drain(b); drain(c);
    });
    assert.equal(out2.status, 0, out2.stderr);
    const rd = openCaptureFile(file);
    const ports: number[] = [];
    rd.dispatch(0, (u8, o) => { ports.push((u8[o + 36]! << 8) | u8[o + 37]!); });
    rd.close();
    assert.deepEqual(ports, [1246, 1247]);
    const raw = fs.readFileSync(file);
    // the enhanced packet blocks carry epb_flags = 2 (outbound)
    let flagged = 0;
    for (let p = 0; p + 12 <= raw.length;) {
      const type = raw.readUInt32LE(p), len = raw.readUInt32LE(p + 4);
      if (type === 6) {
        const cap = raw.readUInt32LE(p + 20);
        const opt = p + 28 + ((cap + 3) & ~3);
        if (raw.readUInt16LE(opt) === 2 && raw.readUInt32LE(opt + 4) === 2) flagged++;
      }
      p += len;
    }
    assert.equal(flagged, 2);
    for (let t = 0; t < 40 && registry().portGet(registry().findPort('vale15:a'), L.PE_MONITORS) !== 0; t++) await sleep(25);
    registry().collectGarbage();
    assert.equal(registry().portGet(registry().findPort('vale15:a'), L.PE_MONITORS), 0, 'the monitors went with dump');
  } finally {
    a.close(); b.close(); c.close();
  }
});

test('dump capturing at full rate makes no garbage: scavenges after it listens, under --trace-gc', async () => {
  // pkt-gen tx -> vale16 -> pkt-gen rx at full rate, dump watching the receiver (as bench/monitor).
  // An object a frame made hundreds of scavenges in these 3 s; one of ~100 bytes a dispatch (of
  // up to 1024 frames) about one: the bound catches garbage per frame, not small garbage per batch.
  const env = process.env;
  const pktgen = (args: string[]): ReturnType<typeof spawn> => spawn(process.execPath, [CLI, 'pkt-gen', ...args], { stdio: 'ignore', env });
  const rx = pktgen(['-i', 'vale16:rx', '-f', 'rx', '-W']);
  const kill = setTimeout(() => { rx.kill('SIGKILL'); dump.kill('SIGKILL'); }, 30_000);
  for (let t = 0; t < 200 && (() => { try { return registry().portGet(registry().findPort('vale16:rx'), L.PE_USERS) > 0; } catch { return false; } })() === false; t++) await sleep(25);
  const t0 = performance.now();
  const dump = spawn(process.execPath, ['--trace-gc', CLI, 'dump', '-i', 'vale16:rx', '-Q', 'in', '-w', '/dev/null', '--duration', '3', 'udp and dst port 1234'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '', err = '', listenedMs = -1;
  dump.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  dump.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (listenedMs < 0 && err.includes('listening')) listenedMs = performance.now() - t0; });
  const dumped = new Promise<number | null>((r) => dump.once('exit', (c) => r(c)));
  for (let t = 0; t < 400 && listenedMs < 0; t++) await sleep(25);
  const tx = pktgen(['-i', 'vale16:tx', '-f', 'tx', '-l', '60', '-d', '198.18.0.2:1234', '-s', '198.18.0.1:1234', '-n', '200000000']);
  const code = await dumped;
  tx.kill('SIGINT'); rx.kill('SIGINT');
  await Promise.all([new Promise((r) => tx.once('exit', r)), new Promise((r) => rx.once('exit', r))]);
  clearTimeout(kill);
  assert.equal(code, 0, err);
  const captured = Number(/(\d+) packets captured/.exec(err)?.[1] ?? 0);
  assert.ok(captured >= 100_000, `dump captured ${captured} frames`);
  // "[pid:0xisolate]   1234 ms: Scavenge": isolate time, which starts after the spawn: counting
  // from 300 ms after "listening" (spawn clock) leaves the start-up out
  let steady = 0;
  for (const m of out.matchAll(/^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: Scavenge/gm)) if (Number(m[1]) > listenedMs + 300) steady++;
  console.log(`# dump: ${captured} frames captured, ${steady} scavenges after it listened`);
  assert.ok(steady <= 8, `dump made ${steady} scavenges in ~3 s of capture: garbage in its packet loop`);
});

test('dump -i keeps every suffix of the name: a port in use is watched with its ring selection and slots=, what a monitor cannot honour is refused with a reason; a port not in use is opened by the name as given', async () => {
  const a = openPort('vale16:a');
  const runQuick = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'dump', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += String(d); });
    child.stderr.on('data', (d) => { stderr += String(d); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
  try {
    // a port in use, with what its monitor cannot give: refused, status 1, the suffix named
    for (const [suffix, said] of [['/x', /'\/x' \(exclusive.*\(EBUSY\)/], ['/R', /'\/R'/], ['/T', /'\/T'/], ['/Rx', /'\/x'.*'\/R'/],
      ['@conf:rings=2', /@conf: rings/], ['@conf:host-rings=1', /@conf: host-rings/], ['@conf:vnet-hdr=12', /vnet-hdr/],
      ['@share=vale16:a', /'@share=vale16:a'/]] as const) {
      const r = await runQuick(['-i', `vale16:a${suffix}`, '--duration', '0.2']);
      assert.equal(r.status, 1, `${suffix}: ${r.stderr}`);
      assert.match(r.stderr, /^netmap dump: vale16:a.*: vale16:a is in use, so it is watched through its monitor \(vale16:a\/rt\), which cannot honour /, suffix);
      assert.match(r.stderr, said, suffix);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    // ring selection and slots= are the monitor's own: kept
    const kept = await runQuick(['-i', 'vale16:a-0@conf:slots=64', '--duration', '0.2']);
    assert.equal(kept.status, 0, kept.stderr);
    assert.match(kept.stderr, /listening on vale16:a-0@conf:slots=64 \(through vale16:a\/rt#\d+\)/);
    const hostRings = await runQuick(['-i', 'vale16:a^', '--duration', '0.2']);
    assert.equal(hostRings.status, 1);
    assert.match(hostRings.stderr, /has no host rings \(EINVAL\)/);
    // a port nobody has open is opened by the name as given: /x makes it exclusive
    const out = await runDump(['-i', 'vale16:n/x', '--duration', '1.5'], () => {
      assert.throws(() => openPort('vale16:n'), /EBUSY/, 'dump holds vale16:n exclusively');
    });
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stderr, /listening on vale16:n\/x, link-type/);
  } finally {
    a.close();
  }
});
