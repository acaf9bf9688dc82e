import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-if-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep } = await import('../helpers/netns.js');
const { PacketReceiver, PacketTransmitter } = await import('../../src/interfaces/packet.js');
const { TapDevice, removeTap } = await import('../../src/interfaces/tap.js');
const { HostSplit, SPLIT_MARK, WIRE_MARK, hasSplitRules, removeStaleSplits, sinkDeviceName, splitMethod, ingressProgram, egressProgram, turnaroundProgram, interfaceLockHeld, nftTableName } = await import('../../src/interfaces/split.js');
const { BPF_TCX_INGRESS, BPF_TCX_EGRESS, BPF_PROG_TYPE_SCHED_CLS, SKB_MARK, TCX_DROP, TCX_NEXT, TCX_REDIRECT, queryPrograms, loadProgram, testRun } = await import('../../src/native/bpf.js');
const { closeFd } = await import('../../src/native/index.js');
const { interfaceExists, interfaceInfo } = await import('../../src/interfaces/ifinfo.js');
const { space } = await import('../../src/memory/space.js');
const { NetmapError } = await import('../../src/errors.js');
const { arpRequest, mac } = await import('./frames.js');

const skip = skipReason(['tc', 'ping', 'tun', ...(splitMethod() === 'nft' ? ['nft'] : [])]);
if (skip !== null) console.log(`# skipping TAP and split tests: ${skip}`);
else console.log(`# split implementation: ${(await import('../../src/interfaces/split.js')).splitMethod()} (NETMAP_TS_SPLIT=nft|tcx|tc forces one)`);
const opts = { skip: skip ?? false, timeout: 60_000 };

const isCode = (code: string) => (e: unknown): boolean => e instanceof NetmapError && e.code === code;

/** A scratch area of the address space for frames: a transmit ring slot we never commit. */
function scratch(tx: InstanceType<typeof PacketTransmitter>): number {
  const at = tx.slot();
  assert.ok(at >= 0);
  return at;
}

test('TAP: create, write a frame the kernel answers, read the answer; persistent and exclusive', opts, () => withLab(async (lab) => {
  const a = lab.ns('a');
  lab.enter(a);
  const tap = TapDevice.open('nmtap0');
  const peer = mac('02:00:00:00:aa:01');
  try {
    lab.must(a, 'ip', ['addr', 'add', '198.18.1.1/24', 'dev', 'nmtap0']);
    assert.equal(interfaceInfo('nmtap0').up, true);
    const tx = new PacketTransmitter('lo');
    const buf = scratch(tx);
    const len = arpRequest(buf, peer, [198, 18, 1, 2], [198, 18, 1, 1]);
    assert.equal(tap.write(buf, len), true);
    const u8 = space().u8;
    const v = space().view;
    let reply = false;
    const deadline = Date.now() + 3000;
    while (!reply && Date.now() < deadline) {
      tap.wait(50);
      for (let n = tap.read(buf, 2048); n > 0; n = tap.read(buf, 2048)) {
        // an ARP reply to our MAC saying 198.18.1.1 is at the TAP's MAC
        if (v.getUint16(buf + 12) === 0x0806 && v.getUint16(buf + 20) === 2 && u8[buf + 28] === 198 && u8[buf + 31] === 1) reply = true;
      }
      await sleep(1);
    }
    tx.close();
    assert.ok(reply, 'the kernel answered an ARP request written to the TAP');
    assert.ok(tap.sent === 1 && tap.received >= 1);
    assert.throws(() => TapDevice.open('nmtap0', { exclusive: true }), isCode('EBUSY'));
  } finally {
    tap.close();
  }
  assert.equal(interfaceExists('nmtap0'), false, 'a non-persistent TAP goes away with its descriptor');
  // persistent
  const p = TapDevice.open('nmtap1', { persist: true });
  p.close();
  assert.equal(interfaceExists('nmtap1'), true);
  const again = TapDevice.open('nmtap1', { existing: true });
  again.close();
  removeTap('nmtap1');
  assert.equal(interfaceExists('nmtap1'), false);
  assert.throws(() => TapDevice.open('nmtap9', { existing: true }), isCode('ENXIO'));
  assert.throws(() => TapDevice.open('bad/name'), isCode('EINVAL'));
  lab.leave();
}));

function ping(lab: { run(ns: string, c: string, a: string[]): { status: number } }, ns: string, addr: string): boolean {
  return lab.run(ns, 'ping', ['-c', '1', '-W', '1', addr]).status === 0;
}

test('split: the stack stops seeing the wire (ping fails, our receiver still sees it), removal restores it', opts, () => withLab((lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  assert.ok(ping(lab, b, '198.18.0.1'), 'ping works before');
  lab.enter(a);
  const split = HostSplit.install('a0');
  const rx = new PacketReceiver('a0', { dropMark: SPLIT_MARK });
  try {
    assert.ok(hasSplitRules('a0'));
    assert.throws(() => HostSplit.install('a0'), isCode('EBUSY'));
    assert.equal(interfaceLockHeld(interfaceInfo('a0').index), true, 'the owner holds the lock');
    assert.throws(() => HostSplit.install('nmts-none'), isCode('ENXIO'));
    assert.throws(() => HostSplit.install(sinkDeviceName(interfaceInfo('a0').index)), isCode('EINVAL'));
    assert.equal(ping(lab, b, '198.18.0.1'), false, 'ping fails while split');
    assert.equal(ping(lab, a, '198.18.0.2'), false, 'the stack cannot send to the wire either');
    let frames = 0;
    while (rx.next() >= 0) frames++;
    assert.ok(frames > 0, 'the wire is still visible to packet sockets');
  } finally {
    rx.close();
    split.remove();
  }
  assert.equal(hasSplitRules('a0'), false);
  assert.equal(interfaceLockHeld(interfaceInfo('a0').index), false, 'the ownership lock went with remove()');
  assert.equal(interfaceExists(sinkDeviceName(interfaceInfo('a0').index)), false, 'no helper device is left');
  if (splitMethod() === 'nft') {
    // a table of our name that no live owner of ours made (someone's `nft`): EBUSY, saying how to
    // delete it; nothing is left half-made and the table is untouched
    const table = nftTableName(interfaceInfo('a0').index);
    lab.must(a, 'nft', ['add', 'table', 'netdev', table]);
    assert.throws(() => HostSplit.install('a0'), (e: unknown) => isCode('EBUSY')(e) && /nft delete table netdev/.test((e as Error).message));
    assert.equal(interfaceLockHeld(interfaceInfo('a0').index), false, 'the failed install let the lock go');
    assert.match(lab.run(a, 'nft', ['list', 'tables']).stdout, new RegExp(`netdev ${table}\\b`));
    lab.must(a, 'nft', ['delete', 'table', 'netdev', table]);
  }
  lab.leave();
  assert.ok(ping(lab, b, '198.18.0.1'), 'ping works after');
}));

test('split: a userspace bridge between the wire and the host rings carries a ping', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  lab.enter(a);
  const split = HostSplit.install('a0', { capture: true });
  split.addHostTxPath(); // nft: the tcx turnaround of marked frames into the stack
  const rx = new PacketReceiver('a0', { dropMark: SPLIT_MARK });
  const nicTx = new PacketTransmitter('a0', { mark: WIRE_MARK });
  const hostTx = new PacketTransmitter('a0', { qdiscBypass: false, mark: SPLIT_MARK });
  lab.leave();
  try {
    const child = lab.spawn(b, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.0.1']);
    let status: number | null = null;
    child.on('exit', (c) => { status = c ?? 1; });
    let toHost = 0, toWire = 0;
    const deadline = Date.now() + 10_000;
    while (status === null && Date.now() < deadline) {
      while (rx.next() >= 0) {
        const at = hostTx.slot();
        if (at < 0) break;
        hostTx.commit(rx.copyFrame(at, hostTx.maxFrame));
        toHost++;
      }
      hostTx.kick();
      hostTx.reclaim();
      for (;;) {
        const at = nicTx.slot();
        if (at < 0) break;
        const n = split.host.read(at, nicTx.maxFrame);
        if (n <= 0) break;
        nicTx.commit(n);
        toWire++;
      }
      nicTx.kick();
      nicTx.reclaim();
      rx.wait(1);
      await sleep(0);
    }
    assert.equal(status, 0, `ping through the host rings (${toHost} frames to the host, ${toWire} to the wire)`);
    assert.ok(toHost >= 3 && toWire >= 3);
  } finally {
    rx.close();
    nicTx.close();
    hostTx.close();
    lab.enter(a);
    split.remove();
    lab.leave();
  }
}));

test('split: after SIGKILL of the owner, nft and tcx leave nothing and the stack works at once; tc leftovers go at the next install or removeStaleSplits', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  lab.addr(a, 'a0', '198.18.0.1/24');
  lab.addr(b, 'b0', '198.18.0.2/24');
  const mod = new URL('../../src/interfaces/split.js', import.meta.url).pathname;
  const script = `import(${JSON.stringify(mod)}).then((m) => { const s = m.HostSplit.install('a0', { capture: true }); s.addHostTxPath(); console.log('ready ' + s.method); setInterval(() => {}, 1000); });`;
  for (const recovery of ['install', 'sweep'] as const) {
    const child = lab.spawn(a, process.execPath, ['--input-type=module', '-e', script]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const deadline = Date.now() + 10_000;
    while (!out.includes('ready') && child.exitCode === null && Date.now() < deadline) await sleep(20);
    assert.ok(out.includes('ready'), 'the owner process installed the split');
    const method = /ready (\w+)/.exec(out)![1];
    assert.equal(method, splitMethod(), 'the owner used the method this test runs with');
    lab.enter(a);
    assert.equal(hasSplitRules('a0'), true, 'the owner\'s split is visible');
    assert.throws(() => HostSplit.install('a0'), isCode('EBUSY'), 'held by a live process');
    lab.leave();
    assert.equal(ping(lab, b, '198.18.0.1'), false, 'cut off while held');
    child.kill('SIGKILL');
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(20);
    await sleep(100);
    lab.enter(a);
    const index = interfaceInfo('a0').index;
    assert.equal(interfaceLockHeld(index), false, 'the EBUSY token (the ownership lock) went with its holder');
    if (method !== 'tc') {
      // nothing of ours: no table, no tcx program, no tc filter, no qdisc; the stack works without an install
      for (const hook of [BPF_TCX_INGRESS, BPF_TCX_EGRESS]) assert.deepEqual(queryPrograms(index, hook), [], `no program left at tcx hook ${hook}`);
      assert.equal(hasSplitRules('a0'), false, 'nothing of ours left after SIGKILL');
      lab.leave();
      assert.doesNotMatch(lab.run(a, 'nft', ['list', 'tables']).stdout, new RegExp(nftTableName(index)), 'no nf_tables table');
      assert.equal(lab.run(a, 'tc', ['filter', 'show', 'dev', 'a0', 'ingress']).stdout.trim(), '', 'no tc ingress filter');
      assert.equal(lab.run(a, 'tc', ['filter', 'show', 'dev', 'a0', 'egress']).stdout.trim(), '', 'no tc egress filter');
      assert.doesNotMatch(lab.run(a, 'tc', ['qdisc', 'show', 'dev', 'a0']).stdout, /clsact/, 'no clsact qdisc');
      lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']); // the ping while cut off left it probing 1 s apart
      assert.ok(ping(lab, b, '198.18.0.1'), 'the stack works at once after SIGKILL');
      lab.enter(a);
      assert.equal(removeStaleSplits().length, 0, 'nothing to sweep');
      HostSplit.install('a0').remove(); // and the interface can be taken again
    } else {
      assert.equal(hasSplitRules('a0'), true, 'a crash leaves the tc rules');
      lab.leave();
      assert.equal(ping(lab, b, '198.18.0.1'), false, 'and the interface cut off');
      lab.enter(a);
      if (recovery === 'install') {
        HostSplit.install('a0').remove();
      } else {
        assert.deepEqual(removeStaleSplits(), ['a0']);
        assert.deepEqual(removeStaleSplits(), []);
      }
    }
    assert.equal(hasSplitRules('a0'), false);
    lab.leave();
    lab.run(b, 'ip', ['neigh', 'flush', 'dev', 'b0']);
    assert.ok(ping(lab, b, '198.18.0.1'), `usable again after ${recovery}`);
  }
}));

test('split programs: verdicts of the tcx ingress and egress programs', { skip: process.getuid?.() === 0 ? false : 'needs root (bpf)' }, () => {
  const load = (insns: Buffer, type: number): number => loadProgram({ type: BPF_PROG_TYPE_SCHED_CLS, insns, name: 'nmts_t', expectedAttachType: type });
  const frame = Buffer.alloc(60);
  const plain = Buffer.alloc(192), marked = Buffer.alloc(192);
  marked.writeUInt32LE(SPLIT_MARK, SKB_MARK);
  const fds: number[] = [];
  try {
    const cut = load(ingressProgram(), BPF_TCX_INGRESS); fds.push(cut);
    assert.equal(testRun(cut, frame, plain), TCX_DROP, 'unmarked frames from the wire are dropped');
    assert.equal(testRun(cut, frame, marked), TCX_NEXT, 'marked frames go on to the stack');
    // a redirect to a nonexistent index still returns TC_ACT_REDIRECT from the program (the kernel
    // drops the frame later): what the test run can show is which branch was taken
    const out = load(egressProgram(1, 2), BPF_TCX_EGRESS); fds.push(out);
    assert.equal(testRun(out, frame, plain), TCX_REDIRECT, 'what the stack sends is redirected (to the host TAP)');
    assert.equal(testRun(out, frame, marked), TCX_REDIRECT, 'marked frames are redirected (into ingress)');
    const drop = load(egressProgram(1, 0), BPF_TCX_EGRESS); fds.push(drop);
    assert.equal(testRun(drop, frame, plain), TCX_DROP, 'without capture what the stack sends is dropped');
    assert.equal(testRun(drop, frame, marked), TCX_REDIRECT, 'marked frames are still turned around');
    const turn = load(turnaroundProgram(1), BPF_TCX_EGRESS); fds.push(turn);
    assert.equal(testRun(turn, frame, plain), TCX_NEXT, 'nft turnaround: unmarked frames go on (the nft egress chain has already dropped or forwarded them)');
    assert.equal(testRun(turn, frame, marked), TCX_REDIRECT, 'nft turnaround: marked frames are turned around into ingress');
  } finally {
    for (const fd of fds) closeFd(fd);
  }
});

test('checksum completion: a partial UDP/TCP checksum (pseudo-header sum) becomes the full one', opts, async () => {
  const { completeChecksum } = await import('../../src/interfaces/csum.js');
  const u8 = new Uint8Array(128);
  const v = new DataView(u8.buffer);
  // IPv4/UDP frame 198.18.0.1:1000 -> 198.18.0.2:2000 with 12 bytes of payload
  v.setUint16(12, 0x0800);
  u8[14] = 0x45; v.setUint16(16, 40); u8[22] = 64; u8[23] = 17;
  u8.set([198, 18, 0, 1], 26); u8.set([198, 18, 0, 2], 30);
  v.setUint16(34, 1000); v.setUint16(36, 2000); v.setUint16(38, 20);
  for (let i = 0; i < 12; i++) u8[42 + i] = i * 7;
  const len = 54;
  // reference: full checksum over pseudo header + segment
  const words = (from: number, to: number): number => { let s = 0; for (let i = from; i < to; i += 2) s += (u8[i]! << 8) | (i + 1 < to ? u8[i + 1]! : 0); return s; };
  const fold = (s: number): number => { while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return s; };
  const pseudo = words(26, 34) + 17 + 20;
  const full = ~fold(pseudo + words(34, len)) & 0xffff;
  // what a stack hands to a device with checksum offload: the folded pseudo-header sum
  v.setUint16(40, fold(pseudo));
  assert.equal(completeChecksum(u8, 0, len), true);
  assert.equal(v.getUint16(40), full);
  v.setUint16(12, 0x0806);
  assert.equal(completeChecksum(u8, 0, len), false, 'not IP: untouched');
});

test('GSO splitter: a TCP super-frame becomes MSS-sized segments with valid checksums', opts, async () => {
  const { GsoSplitter, GSO_TCPV4 } = await import('../../src/interfaces/gso.js');
  const u8 = new Uint8Array(16384);
  const v = new DataView(u8.buffer);
  const payload = 2500, mss = 1000, len = 54 + payload;
  v.setUint16(12, 0x0800);
  u8[14] = 0x45; v.setUint16(16, len - 14); v.setUint16(18, 0x1234); u8[22] = 64; u8[23] = 6;
  u8.set([198, 18, 0, 1], 26); u8.set([198, 18, 0, 2], 30);
  v.setUint16(34, 5000); v.setUint16(36, 80); v.setUint32(38, 0xfffffc00); // sequence wraps
  u8[46] = 5 << 4; u8[47] = 0x18 | 0x01 | 0x80; // PSH ACK FIN CWR
  for (let i = 0; i < payload; i++) u8[54 + i] = i & 0xff;
  const g = new GsoSplitter();
  assert.equal(g.begin(u8, 0, len, GSO_TCPV4, mss), true);
  assert.equal(g.count, 3);
  const sum = (from: number, to: number): number => { let s = 0; for (let i = from; i < to; i += 2) s += (u8[i]! << 8) | (i + 1 < to ? u8[i + 1]! : 0); while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return s; };
  let seen = 0;
  for (let i = 0; i < 3; i++) {
    const dst = 8192;
    const n = g.emit(i, dst);
    assert.equal(n, 54 + Math.min(mss, payload - i * mss));
    assert.equal(v.getUint16(dst + 16), n - 14, 'IP total length');
    assert.equal(v.getUint16(dst + 18), 0x1234 + i, 'IP id');
    assert.equal(sum(dst + 14, dst + 34), 0xffff, 'IP header checksum');
    assert.equal(v.getUint32(dst + 38), (0xfffffc00 + i * mss) >>> 0, 'sequence');
    const flags = u8[dst + 47]!;
    assert.equal((flags & 0x01) !== 0, i === 2, 'FIN only on the last');
    assert.equal((flags & 0x80) !== 0, i === 0, 'CWR only on the first');
    const pseudo = sum(dst + 26, dst + 34) + 6 + (n - 34);
    let s = pseudo + sum(dst + 34, dst + n);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    assert.equal(s, 0xffff, 'TCP checksum');
    for (let k = 0; k < n - 54; k++) assert.equal(u8[dst + 54 + k], (seen + k) & 0xff);
    seen += n - 54;
  }
  assert.equal(seen, payload);
  assert.equal(g.begin(u8, 0, len, 3 /* UFO */, mss), false, 'UFO is not cut');
});
