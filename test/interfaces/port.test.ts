import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-ifport-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep, Lab } = await import('../helpers/netns.js');
const { stageLibrary } = await import('../helpers/staged.js');
await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort, POLLIN, POLLOUT } = await import('../../src/ports/index.js');
const { setReceiveHook, hookedFrames } = await import('../../src/bwrap/receive-hook.js');
const { PacketTransmitter, PacketReceiver } = await import('../../src/interfaces/packet.js');
const { space } = await import('../../src/memory/space.js');
const L = await import('../../src/memory/layout.js');
const { TapDevice, removeTap } = await import('../../src/interfaces/tap.js');
const { hasSplitRules, splitMethod } = await import('../../src/interfaces/split.js');
const { NetmapError } = await import('../../src/errors.js');
const { udpFrame, parseUdpFrame, arpRequest, mac } = await import('./frames.js');

const skip = skipReason(['tc', 'ping', 'tun']);
if (skip !== null) console.log(`# skipping interface port tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 90_000 };
const isCode = (code: string) => (e: unknown): boolean => e instanceof NetmapError && e.code === code;
const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;
const PORTS = new URL('../../src/index.js', import.meta.url).pathname; // the top: openPort and the port types
const IFPORT = new URL('../../src/interfaces/port.js', import.meta.url).pathname;
const PKT = new URL('../../src/interfaces/packet.js', import.meta.url).pathname;
const SPACE = new URL('../../src/memory/space.js', import.meta.url).pathname;
type LabT = InstanceType<typeof Lab>;

function ping(lab: LabT, ns: string, addr: string, count = 1): boolean {
  return lab.run(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', addr]).status === 0;
}

async function startTool(lab: LabT, ns: string, args: string[]): Promise<{ stop(): Promise<string>; kill(): Promise<void>; output(): string }> {
  const child = lab.spawn(ns, process.execPath, [CLI, ...args]);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout!.on('data', (d: Buffer) => { err += d.toString(); });
  const deadline = Date.now() + 10_000;
  while (!err.includes('Ready') && child.exitCode === null && Date.now() < deadline) await sleep(20);
  assert.ok(err.includes('Ready'), `tool started: ${err}`);
  const exited = async (): Promise<void> => {
    const t = Date.now() + 10_000;
    while (child.exitCode === null && child.signalCode === null && Date.now() < t) await sleep(20);
  };
  return {
    output: () => err,
    stop: async () => { child.kill('SIGINT'); await exited(); assert.equal(child.exitCode, 0, err); return err; },
    kill: async () => { child.kill('SIGKILL'); await exited(); },
  };
}

function iperf(lab: LabT, server: string, client: string, addr: string): Promise<number> {
  lab.spawn(server, 'iperf3', ['-s', '-1']);
  return sleep(300).then(() => {
    const r = lab.run(client, 'iperf3', ['-c', addr, '-t', '2', '-J'], 30_000);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second;
  });
}

const hasIperf = skipReason(['iperf3']) === null;

/**
 * A veth a0 (namespace a) / b0 (namespace b): a transmitter on b0, and netmap:a0 opened in a
 * (entered), with `suffix` after the name.
 */
function portWithPeer(lab: LabT, suffix = ''): { a: string; b: string; ptx: InstanceType<typeof PacketTransmitter>; p: ReturnType<typeof openPort> } {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const ptx = new PacketTransmitter('b0');
  lab.enter(a);
  return { a, b, ptx, p: openPort(`netmap:a0${suffix}`) };
}

test('netmap:IF: rings in the global region, TX counted by the peer, RX woken by poll', opts, () => withLab(async (lab) => {
  const { a, b, ptx, p } = portWithPeer(lab);
  try {
    assert.equal(p.memId, 1);
    // the backend: AF_XDP unless NETMAP_TS_IF_BACKEND says otherwise (veth has native XDP, copy mode)
    assert.equal(p.backend, process.env.NETMAP_TS_IF_BACKEND === 'packet' ? 'packet' : 'xdp native copy');
    assert.deepEqual([p.numTxRings, p.numRxRings, p.numHostTxRings, p.numHostRxRings], [1, 1, 1, 1]);
    assert.deepEqual([p.txRings.length, p.rxRings.length], [1, 1]);
    // a single-queue interface: 8192 RX slots (the depth a stalled receiver has), TX 1024
    assert.deepEqual([p.txRings[0]!.numSlots, p.rxRings[0]!.numSlots], [1024, 8192]);
    assert.throws(() => openPort('netmap:nmtsnone0'), isCode('ENXIO'));
    const star = openPort('netmap:a0*');
    assert.deepEqual([star.txRings.length, star.rxRings.length], [2, 2]);
    star.close();
    const host = openPort('netmap:a0^');
    assert.ok(host.txRings[0]!.host && host.rxRings[0]!.host);
    // the host rings keep 1024 / 4096 slots (host RX follows rx slots up to 4096)
    assert.deepEqual([host.txRings[0]!.numSlots, host.rxRings[0]!.numSlots], [1024, 4096]);
    host.close();
    // TX
    const before = lab.counters(b, 'b0').rxPackets;
    const r = p.txRings[0]!;
    let sent = 0;
    const N = 50_000;
    const deadline = Date.now() + 20_000;
    while (sent < N && Date.now() < deadline) {
      let i = r.head;
      let room = Math.min(r.space(), 256);
      while (room-- > 0 && sent < N) {
        udpFrame(r.slotBufOffset(i), mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 0, sent);
        r.setSlotLen(i, 60);
        i = r.next(i);
        sent++;
      }
      r.advance(i);
      p.poll(POLLOUT, 100);
    }
    await sleep(200);
    const counted = lab.counters(b, 'b0').rxPackets - before;
    assert.ok(counted >= N && counted <= N + 10, `the peer counted ${counted} of ${N}`);
    // RX: poll sleeps, then wakes when a frame arrives (not at its timeout)
    const rr = p.rxRings[0]!;
    const t0 = Date.now();
    assert.equal(p.poll(POLLIN, 200) & POLLIN, 0);
    assert.ok(Date.now() - t0 >= 150);
    // another process sends in 300 ms (an ARP request from b0); poll must wake on it
    lab.addr(b, 'b0', '198.18.0.2/24');
    lab.spawn(b, 'sh', ['-c', 'sleep 0.3; ping -c 1 -W 1 198.18.0.9']);
    const t1 = Date.now();
    const ev = p.poll(POLLIN, 3000);
    const waited = Date.now() - t1;
    assert.ok((ev & POLLIN) !== 0);
    assert.ok(waited >= 200 && waited < 1500, `woken by the frame after ${waited} ms`);
    assert.equal(p.mem.view.getUint16(rr.slotBufOffset(rr.head) + 12), 0x0806, 'the ARP request');
    // and again for each of several frames 300 ms apart: every sleep is woken by its frame (the
    // notifier's descriptor is one-shot and must be armed again by each sleeper)
    rr.advance(rr.tail);
    const code = `const { PacketTransmitter } = await import(${JSON.stringify(PKT)});
      const { space } = await import(${JSON.stringify(SPACE)});
      const t = new PacketTransmitter('b0'), v = new DataView(space().u8.buffer);
      for (let k = 0; k < 6; k++) {
        await new Promise((r) => setTimeout(r, 300));
        const at = t.slot();
        for (let i = 0; i < 60; i++) v.setUint8(at + i, i < 6 ? 0xff : 0);
        v.setUint16(at + 12, 0x88b5);
        t.commit(60); t.kick();
      }
      t.close();`;
    lab.spawn(b, process.execPath, ['--input-type=module', '-e', code]);
    let seen = 0;
    const until = Date.now() + 8000;
    while (seen < 6 && Date.now() < until) {
      const t2 = Date.now();
      const got = p.poll(POLLIN, 3000);
      const w = Date.now() - t2;
      // (the first wait includes the sender's start; later ones are 300 ms, and a sleep nobody
      // wakes lasts Port.poll's 1 s slice)
      assert.ok((got & POLLIN) !== 0 && (seen === 0 || w < 700), `after ${seen} frames: poll woke after ${w} ms, events ${got}`);
      for (let i = rr.head; i !== rr.tail; i = rr.next(i)) if (p.mem.view.getUint16(rr.slotBufOffset(i) + 12) === 0x88b5) seen++;
      rr.advance(rr.tail);
    }
    assert.equal(seen, 6);
  } finally {
    p.close();
    ptx.close();
    lab.leave();
  }
  lab.enter(a);
  assert.equal(hasSplitRules('a0'), false, 'closing the port restores the interface');
  lab.leave();
}));

test('netmap:IF: the global region\'s file outlives its last port; the next open reuses it with fresh rings and free lists, and frames flow', opts, () => withLab(async (lab) => {
  const { a, b, ptx, p } = portWithPeer(lab);
  const file = path.join(process.env.NETMAP_TS_DIR!, 'mem-1');
  // where each ring lies in the region and the buffers of its first and last slots
  const layout = (q: typeof p): number[] => [...q.txRings, ...q.rxRings].flatMap((r) => [r.offset, r.slotBufIdx(0), r.slotBufIdx(r.numSlots - 1)]);
  const send = (q: typeof p, n: number): void => {
    const r = q.txRings[0]!;
    let i = r.head;
    for (let k = 0; k < n; k++) {
      udpFrame(r.slotBufOffset(i), mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 3, k);
      r.setSlotLen(i, 60);
      i = r.next(i);
    }
    r.advance(i);
    q.txsync();
  };
  let bufs: number[];
  let inode: number;
  try {
    bufs = layout(p);
    send(p, 100); // moves the TX ring's indices: a reused file must not keep them
    for (let k = 0; k < 50 && p.txRings[0]!.tail !== p.txRings[0]!.numSlots - 1; k++) p.poll(POLLOUT, 20);
    inode = fs.statSync(file).ino;
  } finally {
    p.close();
  }
  assert.ok(fs.existsSync(file), 'the global region\'s file stays after its last port');
  // its first MiB (header, free lists, page map) garbled, as debris a killed owner left in it
  // could be: the next open starts over all the same
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(1 << 20, 0xff), 0, 1 << 20, 0);
  fs.closeSync(fd);
  lab.enter(a);
  const q = openPort('netmap:a0');
  try {
    assert.equal(fs.statSync(file).ino, inode, 'the same file, reused');
    const t = q.txRings[0]!, r = q.rxRings[0]!;
    assert.deepEqual([t.head, t.cur, t.tail], [0, 0, t.numSlots - 1], 'a fresh TX ring');
    assert.deepEqual([r.head, r.cur, r.tail], [0, 0, 0], 'a fresh RX ring');
    assert.deepEqual(layout(q), bufs, 'the free lists and the page map start over: the same ring pages and buffers as a fresh region gives');
    const before = lab.counters(b, 'b0').rxPackets;
    send(q, 100);
    const until = Date.now() + 5000;
    while (lab.counters(b, 'b0').rxPackets - before < 100 && Date.now() < until) { q.poll(POLLOUT, 20); await sleep(20); }
    assert.equal(lab.counters(b, 'b0').rxPackets - before, 100, 'frames sent from the reused region reach the peer');
  } finally {
    q.close();
    ptx.close();
    lab.leave();
  }
}));

test('netmap:IF receive hook: frames go to the hook where they lie, in order, the ring stays empty; null gives them back to the ring', opts, () => withLab(async (lab) => {
  const { a, b, ptx, p } = portWithPeer(lab, '@conf:backend=packet'); // receive hooks read AF_PACKET rings
  const seqs: number[] = [];
  let bad = 0;
  try {
    assert.throws(() => setReceiveHook(p, 5, () => {}), isCode('EINVAL'));
    assert.throws(() => setReceiveHook(p, 0, () => {}, 0), isCode('EINVAL'));
    const vale = openPort('vale9:x');
    assert.throws(() => setReceiveHook(vale, 0, () => {}), isCode('EINVAL'), 'not an interface port');
    vale.close();
    setReceiveHook(p, 0, (offs, lens, n) => {
      for (let i = 0; i < n; i++) {
        const f = parseUdpFrame(offs[i]!, lens[i]!);
        if (f === null) continue;
        if (lens[i] !== 60) bad++;
        seqs.push(f.seq);
      }
    }, 64);
    const send = (from: number, count: number): void => {
      lab.enter(b);
      for (let k = 0; k < count; k++) {
        ptx.reclaim();
        const at = ptx.slot();
        if (at < 0) { ptx.kick(); ptx.wait(10); k--; continue; }
        ptx.commit(udpFrame(at, mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), 0, from + k));
      }
      ptx.kick();
      lab.enter(a);
    };
    const N = 3000;
    send(0, N);
    const deadline = Date.now() + 5000;
    while (seqs.length < N && Date.now() < deadline) p.poll(POLLIN, 20);
    assert.equal(seqs.length, N);
    assert.ok(seqs.every((s, i) => s === i), 'in order, once each');
    assert.equal(bad, 0);
    assert.equal(p.rxRings[0]!.tail, p.rxRings[0]!.head, 'the ring stayed empty');
    assert.ok(hookedFrames(p) >= N);
    // back to the ring
    setReceiveHook(p, 0, null);
    send(N, 10);
    let got = 0;
    const until = Date.now() + 3000;
    while (got < 10 && Date.now() < until) {
      p.poll(POLLIN, 20);
      const r = p.rxRings[0]!;
      while (!r.empty()) {
        if (parseUdpFrame(r.slotBufOffset(r.cur), r.slotLen(r.cur)) !== null) got++;
        r.advance(r.next(r.cur));
      }
    }
    assert.equal(got, 10, 'the ring receives again');
    assert.equal(seqs.length, N, 'the hook no longer does');
  } finally {
    p.close();
    lab.enter(b);
    ptx.close();
    lab.leave();
  }
}));

test('netmap:IF TX: frames of every short length (odd ones too) and fragment chains reach the wire byte for byte', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const rx = new PacketReceiver('b0', { perFrame: true });
  lab.enter(a);
  const p = openPort('netmap:a0');
  const u8 = space().u8;
  // frame k: length 60 + k (60..187), byte i = (k * 7 + i) & 0xff after a fixed Ethernet header;
  // every 10th one is sent as two fragments (NS_MOREFRAG)
  const K = 128;
  const fill = (at: number, k: number, from: number, to: number): void => {
    for (let i = from; i < to; i++) u8[at + i - from] = i < 6 ? 0x02 : i < 12 ? (i === 11 ? 1 : 0) : i === 12 ? 0x88 : i === 13 ? 0xb5 : (k * 7 + i) & 0xff;
  };
  try {
    const r = p.txRings[0]!;
    let i = r.head;
    for (let k = 0; k < K; k++) {
      const len = 60 + k;
      if (k % 10 === 0) {
        const cut = 31;
        fill(r.slotBufOffset(i), k, 0, cut);
        r.setSlotLen(i, cut);
        r.setSlotFlags(i, L.NS_MOREFRAG);
        i = r.next(i);
        fill(r.slotBufOffset(i), k, cut, len);
        r.setSlotLen(i, len - cut);
        r.setSlotFlags(i, 0);
      } else {
        fill(r.slotBufOffset(i), k, 0, len);
        r.setSlotLen(i, len);
        r.setSlotFlags(i, 0);
      }
      i = r.next(i);
    }
    r.advance(i);
    p.txsync();
    lab.enter(b);
    let k = 0, bad = 0;
    const deadline = Date.now() + 3000;
    while (k < K && Date.now() < deadline) {
      if (rx.next() < 0) { rx.wait(10); continue; }
      if (u8[rx.data + 12] !== 0x88 || u8[rx.data + 13] !== 0xb5) continue;
      if (rx.length !== 60 + k) bad++;
      for (let j = 14; j < rx.length; j++) if (u8[rx.data + j] !== ((k * 7 + j) & 0xff)) { bad++; break; }
      k++;
    }
    assert.equal(k, K, 'every frame arrived');
    assert.equal(bad, 0, 'byte for byte');
  } finally {
    p.close();
    rx.close();
    lab.leave();
  }
}));

test('netmap:IF held by another process: EBUSY; after its SIGKILL the interface is usable again', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  const script = `const p = await import(${JSON.stringify(PORTS)}); await import(${JSON.stringify(IFPORT)}); p.openPort('netmap:a0'); console.log('ready'); setInterval(() => {}, 1000);`;
  const child = lab.spawn(a, process.execPath, ['--input-type=module', '-e', script]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const deadline = Date.now() + 10_000;
  while (!out.includes('ready') && child.exitCode === null && Date.now() < deadline) await sleep(20);
  assert.ok(out.includes('ready'), out);
  assert.equal(ping(lab, b, '198.18.0.1'), false, 'the stack is cut off while the port is open');
  lab.enter(a);
  assert.throws(() => openPort('netmap:a0'), isCode('EBUSY'));
  lab.leave();
  child.kill('SIGKILL');
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(20);
  // the ping while cut off left b0's neighbour entry probing (1 s apart): start it afresh
  lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']);
  if (splitMethod() !== 'tc') {
    // an owned table and links die with their process: nothing of ours is left and the stack
    // works before any open
    lab.enter(a);
    assert.equal(hasSplitRules('a0'), false, 'nothing of ours on a0 after SIGKILL');
    lab.leave();
    assert.ok(ping(lab, b, '198.18.0.1'), 'the stack works at once after SIGKILL, without a next open');
  }
  lab.enter(a);
  const p = openPort('netmap:a0');
  p.close();
  assert.equal(hasSplitRules('a0'), false);
  lab.leave();
  // the ping while cut off left b0's neighbour entry probing (1 s apart): start it afresh
  lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']);
  assert.ok(ping(lab, b, '198.18.0.1'), 'usable again');
}));

test('netmap:IF with a misspelt NETMAP_TS_SPLIT or NETMAP_TS_IF_BACKEND: EINVAL naming it, nothing made, the interface free', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const saved = { split: process.env.NETMAP_TS_SPLIT, backend: process.env.NETMAP_TS_IF_BACKEND };
  const restore = (name: string, v: string | undefined): void => { if (v === undefined) delete process.env[name]; else process.env[name] = v; };
  lab.enter(a);
  try {
    for (const [name, value] of [['NETMAP_TS_SPLIT', 'tcx-links'], ['NETMAP_TS_IF_BACKEND', 'af_xdp']] as const) {
      process.env[name] = value;
      assert.throws(() => openPort('netmap:a0'), (e: unknown) => isCode('EINVAL')(e) && (e as Error).message.includes(`${name}=${value}`), `${name}=${value}`);
      restore('NETMAP_TS_SPLIT', saved.split);
      restore('NETMAP_TS_IF_BACKEND', saved.backend);
      assert.equal(hasSplitRules('a0'), false, `nothing of ours on a0 after ${name}=${value}`);
      openPort('netmap:a0').close(); // free: no lock or split left behind
    }
  } finally {
    restore('NETMAP_TS_SPLIT', saved.split);
    restore('NETMAP_TS_IF_BACKEND', saved.backend);
    lab.leave();
  }
}));

test('netmap:IF open and close spawn no process with nft or tcx (tc spawns: the count is real); pkt-gen -f tx -n 1 installs the split once', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const SPLIT = new URL('../../src/interfaces/split.js', import.meta.url).pathname;
  const PKTGEN = new URL('../../src/tools/pkt-gen.js', import.meta.url).pathname;
  // every way node:child_process starts a process is counted (patched before anything imports it)
  const script = `
    const { createRequire, syncBuiltinESMExports } = await import('node:module');
    const cp = createRequire(import.meta.url)('node:child_process');
    let spawns = 0;
    for (const k of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
      const f = cp[k];
      cp[k] = function (...args) { spawns++; return f.apply(this, args); };
    }
    syncBuiltinESMExports();
    const split = await import(${JSON.stringify(SPLIT)});
    let installs = 0;
    const install = split.HostSplit.install;
    split.HostSplit.install = function (...args) { installs++; return install.apply(this, args); };
    const nm = await import(${JSON.stringify(PORTS)});
    await import(${JSON.stringify(IFPORT)});
    const p = nm.openPort('netmap:a0');
    const held = split.hasSplitRules('a0');
    p.close();
    const open = { spawns, installs, held, after: split.hasSplitRules('a0'), method: split.splitMethod() };
    spawns = 0; installs = 0;
    const pg = await import(${JSON.stringify(PKTGEN)});
    const status = await pg.main(['-i', 'netmap:a0', '-f', 'tx', '-n', '1', '-w', '0']);
    console.log('RESULT ' + JSON.stringify({ open, pktgen: { status, spawns, installs, after: split.hasSplitRules('a0') } }));
  `;
  const r = lab.run(a, process.execPath, ['--input-type=module', '-e', script], 60_000);
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line !== undefined, r.stdout + r.stderr);
  const res = JSON.parse(line.slice(7)) as { open: { spawns: number; installs: number; held: boolean; after: boolean; method: string }; pktgen: { status: number; spawns: number; installs: number; after: boolean } };
  assert.equal(res.open.method, splitMethod());
  assert.equal(res.open.held, true, 'the split was there while open');
  assert.equal(res.open.after, false, 'and gone after close');
  assert.equal(res.open.installs, 1);
  if (res.open.method !== 'tc') assert.equal(res.open.spawns, 0, 'no process spawned by open + close');
  else assert.ok(res.open.spawns > 0, 'the tc path spawns tc (so the counter counts)');
  assert.equal(res.pktgen.status, 0);
  assert.equal(res.pktgen.installs, 1, 'pkt-gen installs the split once');
  if (res.open.method !== 'tc') assert.equal(res.pktgen.spawns, 0, 'pkt-gen spawns nothing');
  assert.equal(res.pktgen.after, false);
}));

test('the same interface name in two network namespaces: the second is EBUSY, never the first one\'s port', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b'), c = lab.ns('c'), d = lab.ns('d');
  lab.veth(a, 'a0', b, 'b0');
  lab.veth(c, 'a0', d, 'd0');
  lab.enter(a);
  const p = openPort('netmap:a0');
  lab.leave();
  try {
    lab.enter(c);
    try {
      assert.throws(() => openPort('netmap:a0'), (e: unknown) => isCode('EBUSY')(e) && /another network namespace/.test((e as Error).message));
      assert.equal(hasSplitRules('a0'), false, 'the a0 of the other namespace was not touched');
    } finally {
      lab.leave();
    }
  } finally {
    p.close();
  }
  lab.enter(c);
  try {
    const q = openPort('netmap:a0'); // free again
    q.close();
  } finally {
    lab.leave();
  }
}));

test('netmap bridge between two veths carries ping and TCP (iperf3), offloads left on', opts, () => withLab(async (lab) => {
  const { l, m, r } = lab.line(true);
  // default offloads: TSO/GSO super-frames from the end points are cut in software
  assert.equal(ping(lab, l, '198.18.0.2'), false, 'no path without the bridge');
  const tool = await startTool(lab, m, ['bridge', '-i', 'netmap:m0', '-i', 'netmap:m1']);
  assert.match(tool.output(), /zerocopy supported/);
  // the ping without the bridge left l0's neighbour entry probing (1 s apart): start it afresh
  lab.run(l, 'ip', ['neigh', 'flush', 'dev', 'l0']);
  assert.ok(ping(lab, l, '198.18.0.2', 3), 'ping through the bridge');
  if (hasIperf) {
    const bps = await iperf(lab, r, l, '198.18.0.2');
    console.log(`# iperf3 through netmap bridge: ${(bps / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(bps > 10e6);
  }
  const out = await tool.stop();
  assert.match(out, /packets netmap:m0 -> netmap:m1/);
}));

test('netmap bridge between an interface and its host stack: the wire side reaches the host', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  lab.noOffloads(b, 'b0');
  const tool = await startTool(lab, a, ['bridge', '-i', 'netmap:a0', '-i', 'netmap:a0^']);
  assert.ok(ping(lab, b, '198.18.0.1', 3), 'ping the host through wire -> host rings -> stack');
  if (hasIperf) {
    const bps = await iperf(lab, a, b, '198.18.0.1');
    console.log(`# iperf3 through the host-stack bridge: ${(bps / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(bps > 10e6);
  }
  await tool.stop();
  lab.enter(a);
  assert.equal(hasSplitRules('a0'), false);
  lab.leave();
  assert.ok(ping(lab, b, '198.18.0.1'), 'stack restored after the bridge exits');
}));

test('netmap:IF^ bound by another thread than the installer\'s: the host RX ring gets what the stack sends; everything goes at the last close', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  const SPLIT = new URL('../../src/interfaces/split.js', import.meta.url).pathname;
  const IFINFO = new URL('../../src/interfaces/ifinfo.js', import.meta.url).pathname;
  const script = `
    const { Worker } = await import('node:worker_threads');
    const { spawn } = await import('node:child_process');
    const nm = await import(${JSON.stringify(PORTS)});
    await import(${JSON.stringify(IFPORT)});
    const split = await import(${JSON.stringify(SPLIT)});
    const { interfaceExists, interfaceInfo } = await import(${JSON.stringify(IFINFO)});
    const p0 = nm.openPort('netmap:a0');
    const host = 'nmh' + interfaceInfo('a0').index;
    const hostBefore = interfaceExists(host);
    const w = new Worker(\`
      const { parentPort, workerData } = await import('node:worker_threads');
      const nm = await import(workerData.ports);
      await import(workerData.ifport);
      const p = nm.openPort('netmap:a0^');
      parentPort.postMessage('open');
      const r = p.rxRings[0];
      let n = 0;
      const t0 = Date.now();
      while (n === 0 && Date.now() - t0 < 8000) {
        p.poll(nm.POLLIN, 200);
        p.rxsync();
        while (!r.empty()) { n++; r.advance(r.next(r.head)); }
      }
      p.close();
      parentPort.postMessage('got ' + n);\`, { eval: true, workerData: { ports: ${JSON.stringify(PORTS)}, ifport: ${JSON.stringify(IFPORT)} } });
    const messages = [];
    const next = () => new Promise((resolve) => w.once('message', resolve));
    messages.push(await next());
    const hostMade = interfaceExists(host);
    // the stack of a sends ARP requests for 198.18.0.2 on a0: the host RX ring's frames
    const ping = spawn('ping', ['-c', '3', '-i', '0.5', '-W', '1', '198.18.0.2'], { stdio: 'ignore' });
    messages.push(await next());
    ping.kill();
    await new Promise((resolve) => w.once('exit', resolve));
    const held = split.hasSplitRules('a0');
    p0.close();
    console.log('RESULT ' + JSON.stringify({ hostBefore, hostMade, messages, held, after: split.hasSplitRules('a0'), hostAfter: interfaceExists(host), method: split.splitMethod() }));
  `;
  const r = lab.run(a, process.execPath, ['--input-type=module', '-e', script], 60_000);
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line !== undefined, r.stdout + r.stderr);
  const res = JSON.parse(line.slice(7)) as { hostBefore: boolean; hostMade: boolean; messages: string[]; held: boolean; after: boolean; hostAfter: boolean; method: string };
  if (res.method === 'tcx') assert.equal(res.hostBefore, false, 'with tcx, netmap:a0 alone makes no host TAP');
  assert.equal(res.hostMade, true, 'the worker\'s netmap:a0^ made (or found) the host TAP');
  assert.equal(res.messages[0], 'open');
  assert.ok(Number(res.messages[1]!.split(' ')[1]) >= 1, `the host RX ring got what the stack sent: ${res.messages[1]}`);
  assert.equal(res.held, true, 'still split while the installer holds netmap:a0');
  assert.equal(res.after, false, 'nothing left after the last close');
  assert.equal(res.hostAfter, false, 'the host TAP made by the worker was closed with the split');
}));

test('bridge tool: bad arguments give usage and a non-zero status', opts, async () => {
  const { main } = await import('../../src/tools/bridge.js');
  assert.notEqual(await main([]), 0);
  assert.notEqual(await main(['-i']), 0);
  assert.notEqual(await main(['-i', 'netmap:x', '-b', '0']), 0);
  assert.notEqual(await main(['-q']), 0);
  assert.equal(await main(['--help']), 0);
});

test('TAP port: a TAP nobody holds is opened as the wire; the kernel answers an ARP request', opts, () => withLab(async (lab) => {
  const a = lab.ns('a');
  lab.enter(a);
  const t = TapDevice.open('nmtap0', { persist: true });
  t.close();
  lab.must(a, 'ip', ['addr', 'add', '198.18.1.1/24', 'dev', 'nmtap0']);
  const p = openPort('netmap:nmtap0');
  try {
    assert.deepEqual([p.numTxRings, p.numRxRings, p.numHostTxRings, p.numHostRxRings], [1, 1, 0, 0]);
    assert.throws(() => openPort('netmap:nmtap0^'), isCode('EINVAL'));
    const tx = p.txRings[0]!, rx = p.rxRings[0]!;
    const me = mac('02:00:00:00:aa:01');
    const v = p.mem.view;
    let reply = false;
    const deadline = Date.now() + 3000;
    let asked = 0;
    while (!reply && Date.now() < deadline) {
      // asked again every 200 ms: a request that reaches the TAP in the moment its carrier
      // comes up (at open) may be ignored
      if (Date.now() - asked >= 200 && tx.space() > 0) {
        asked = Date.now();
        tx.setSlotLen(tx.head, arpRequest(tx.slotBufOffset(tx.head), me, [198, 18, 1, 2], [198, 18, 1, 1]));
        tx.advance(tx.next(tx.head));
        p.txsync();
      }
      p.poll(POLLIN, 1);
      while (!rx.empty()) {
        const o = rx.slotBufOffset(rx.head);
        if (v.getUint16(o + 12) === 0x0806 && v.getUint16(o + 20) === 2) reply = true;
        rx.advance(rx.next(rx.head));
      }
      await sleep(1);
    }
    assert.ok(reply, 'ARP reply read from the TAP port');
  } finally {
    p.close();
    removeTap('nmtap0');
    lab.leave();
  }
}));

test('netmap:IF as an unprivileged user: EPERM with a hint', { ...opts, skip: opts.skip !== false ? opts.skip : (skipReason(['setpriv']) ?? false) }, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const dir = `/tmp/nmts-nobody-${process.pid}`;
  // The child (uid 65534) loads a world-readable copy of the library: the checkout itself may lie
  // in a private folder (a clone in a `mktemp -d` folder) where it could not read it.
  const staged = stageLibrary();
  const script = `process.env.NETMAP_TS_DIR = ${JSON.stringify(dir)}; const p = await import(${JSON.stringify(staged.module('index.js'))}); try { p.openPort('netmap:a0'); console.log('opened'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
  try {
    const r = lab.run(a, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], 30_000);
    assert.match(r.stdout, /^EPERM .*(root|CAP_NET)/m, r.stdout + r.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    staged.remove();
  }
  lab.enter(a);
  assert.equal(hasSplitRules('a0'), false, 'nothing left behind');
  lab.leave();
}));

test('netmap:IF@conf:rings=2: a flow-hash fanout spreads flows over two RX rings, -N selects one', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.enter(b);
  const tx = new PacketTransmitter('b0');
  lab.enter(a);
  const p = openPort('netmap:a0@conf:rings=2');
  try {
    assert.deepEqual([p.numTxRings, p.numRxRings, p.rxRings.length], [2, 2, 2]);
    const one = openPort('netmap:a0-1');
    assert.deepEqual([one.rxRings.length, one.rxRings[0]!.id, one.txRings[0]!.id], [1, 1, 1]);
    one.close();
    const flows = 32;
    for (let f = 0; f < flows; f++) {
      const at = tx.slot();
      tx.commit(udpFrame(at, mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), f, f));
    }
    tx.kick();
    const owner = new Map<number, number>();
    const deadline = Date.now() + 5000;
    while (owner.size < flows && Date.now() < deadline) {
      p.poll(POLLIN, 100);
      p.rxRings.forEach((r, k) => {
        while (!r.empty()) {
          const f = parseUdpFrame(r.slotBufOffset(r.head), r.slotLen(r.head));
          if (f !== null) owner.set(f.flow, k);
          r.advance(r.next(r.head));
        }
      });
    }
    assert.equal(owner.size, flows);
    const counts = [0, 0];
    for (const k of owner.values()) counts[k]!++;
    assert.ok(counts[0]! > 0 && counts[1]! > 0, `both rings got flows (${counts.join('/')})`);
  } finally {
    p.close();
    tx.close();
    lab.leave();
  }
}));
