import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-iflb-'));
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, sleep } = await import('../helpers/netns.js');
await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { PacketTransmitter } = await import('../../src/interfaces/packet.js');
const { flowHash } = await import('../../src/interfaces/lb.js');
const { space } = await import('../../src/memory/space.js');
const { udpFrame, parseUdpFrame, mac } = await import('./frames.js');

const skip = skipReason(['tc', 'tun']);
if (skip !== null) console.log(`# skipping lb tests: ${skip}`);
const opts = { skip: skip ?? false, timeout: 90_000 };
const CLI = new URL('../../src/tools/cli.js', import.meta.url).pathname;

/** Swaps addresses and ports of a frame made by udpFrame (the other direction of the flow). */
function reverse(at: number): void {
  const u8 = space().u8;
  for (let i = 0; i < 4; i++) { const t = u8[at + 26 + i]!; u8[at + 26 + i] = u8[at + 30 + i]!; u8[at + 30 + i] = t; }
  for (let i = 0; i < 2; i++) { const t = u8[at + 34 + i]!; u8[at + 34 + i] = u8[at + 36 + i]!; u8[at + 36 + i] = t; }
}

test('flow hash is symmetric and tells flows apart', opts, () => {
  const sp = space();
  const tx = new PacketTransmitter('lo');
  const at = tx.slot();
  try {
    const seen = new Set<number>();
    for (let f = 0; f < 64; f++) {
      udpFrame(at, mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), f, 0);
      const h = flowHash(sp.u8, at, 60);
      reverse(at);
      assert.equal(flowHash(sp.u8, at, 60), h, 'both directions alike');
      seen.add(h);
    }
    assert.ok(seen.size >= 60);
    sp.u8[at + 12] = 0x08; sp.u8[at + 13] = 0x06;
    assert.equal(flowHash(sp.u8, at, 60), -1, 'ARP is not IP');
  } finally {
    tx.close();
  }
});

test('netmap lb spreads flows over 4 pipes, each flow (both directions) on one pipe; JSON stats', opts, () => withLab(async (lab) => {
  const a = lab.ns('a'), b = lab.ns('b');
  lab.veth(a, 'a0', b, 'b0');
  const child = lab.spawn(a, process.execPath, [CLI, 'lb', '-i', 'netmap:a0', '-p', '4', '-o', '0.2']);
  let err = '', out = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const t0 = Date.now();
  while (!err.includes('Ready') && child.exitCode === null && Date.now() - t0 < 10_000) await sleep(20);
  assert.ok(err.includes('Ready'), err);
  const pipes = [0, 1, 2, 3].map((k) => openPort(`netmap:a0}${k}`));
  lab.enter(b);
  const tx = new PacketTransmitter('b0');
  lab.leave();
  try {
    const flows = 64, rounds = 10;
    let sent = 0;
    for (let r = 0; r < rounds; r++) {
      tx.reclaim();
      for (let f = 0; f < flows; f++) {
        const at = tx.slot();
        assert.ok(at >= 0);
        udpFrame(at, mac('02:00:00:00:00:02'), mac('02:00:00:00:00:01'), f, r * 2);
        tx.commit(60);
        const back = tx.slot();
        udpFrame(back, mac('02:00:00:00:00:01'), mac('02:00:00:00:00:02'), f, r * 2 + 1);
        reverse(back);
        tx.commit(60);
        sent += 2;
      }
      tx.kick();
      await sleep(5);
    }
    const owner = new Map<number, number>();
    let got = 0, clash = 0;
    const perPipe = [0, 0, 0, 0];
    const deadline = Date.now() + 10_000;
    while (got < sent && Date.now() < deadline) {
      pipes.forEach((p, k) => {
        p.rxsync();
        const r = p.rxRings[0]!;
        while (!r.empty()) {
          const f = parseUdpFrame(r.slotBufOffset(r.head), r.slotLen(r.head));
          if (f !== null) {
            // the reversed frames carry flow in the destination port's place: recover it
            const flow = f.flow >= 0 && f.flow < 64 ? f.flow : p.mem.view.getUint16(r.slotBufOffset(r.head) + 36) - 1000;
            const o = owner.get(flow);
            if (o === undefined) owner.set(flow, k);
            else if (o !== k) clash++;
            got++;
            perPipe[k]!++;
          }
          r.advance(r.next(r.head));
        }
      });
      await sleep(2);
    }
    assert.equal(got, sent, `received ${got} of ${sent}`);
    assert.equal(clash, 0, 'per-flow affinity, both directions');
    assert.ok(perPipe.every((n) => n > 0), `every pipe used (${perPipe.join('/')})`);
    const parse = (): Array<Record<string, unknown>> => out.split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const statsDeadline = Date.now() + 5000;
    let input: Record<string, unknown> | undefined;
    while (Date.now() < statsDeadline) {
      input = parse().filter((l) => l.output_ring === null).at(-1);
      if (input?.packets_received === sent) break;
      await sleep(100);
    }
    const lines = parse();
    assert.ok(input !== undefined, out);
    assert.equal(input.packets_received, sent);
    assert.equal(input.packets_dropped, 0);
    assert.ok(lines.some((l) => l.interface === 'netmap:a0{0' && typeof l.packet_forward_rate_kpps === 'number'));
  } finally {
    tx.close();
    for (const p of pipes) p.close();
    child.kill('SIGINT');
    const t = Date.now();
    while (child.exitCode === null && Date.now() - t < 5000) await sleep(20);
  }
  assert.equal(child.exitCode, 0, err);
  assert.match(out, /packets forwarded\.\s+0 packets dropped\. Total/);
}));

test('lb tool: bad arguments give usage and a non-zero status', opts, async () => {
  const { main } = await import('../../src/tools/lb.js');
  assert.notEqual(await main([]), 0);
  assert.notEqual(await main(['-i', 'netmap:x', '-p', '0']), 0);
  assert.notEqual(await main(['-i', 'netmap:x', '-z']), 0);
  assert.notEqual(await main(['-i', 'netmap:nmtsnone0']), 0);
  assert.equal(await main(['--help']), 0);
});
