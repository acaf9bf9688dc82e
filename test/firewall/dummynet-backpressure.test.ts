/**
 * kipfw's dummynet output under a full TX ring: packets that come due while the peer's TX ring
 * has no room stay due in dummynet and leave when it drains; none is dropped at the output.
 * Ports are netmap pipes, whose TX ring fills when the other end does not read.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const DIR = `/dev/shm/netmap-ts-test-dnbp-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { drain } = await import('./kipfw-lab.js');
const { Kipfw } = await import('../../src/firewall/daemon.js');
const { makeDaemonDummynet } = await import('../../src/firewall/dummynet-glue.js');
type Port = ReturnType<typeof openPort>;

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

/** Queues `count` 60-byte IPv4/UDP frames on p's first TX ring (as many as fit); returns how many. */
function send(p: Port, count: number): number {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  let k = 0;
  for (; k < count && r.space() > 0; k++) {
    const i = r.head;
    const o = r.slotBufOffset(i);
    u8.fill(0, o, o + 60);
    u8.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2], o);
    r.setSlotLen(i, 60);
    r.advance(r.next(i));
  }
  p.txsync();
  return k;
}


test('dummynet output: a burst larger than the peer TX ring waits for room instead of being dropped', async () => {
  const k = await Kipfw.start({ name: 'bp', ports: ['netmap:pipeBPa{1', 'netmap:pipeBPb{1'], log: () => {} }, makeDaemonDummynet);
  const a = openPort('netmap:pipeBPa}1');
  const b = openPort('netmap:pipeBPb}1');
  const running = k.run();
  try {
    assert.ok(k.path!.poolSize > 0, `kipfw has a dummynet pool: ${k.describe().join(' ')}`);
    const ring = b.rxRings[0]!.numSlots - 1;
    const total = Math.min(k.path!.poolSize - 1, 2 * ring); // more than b's ring holds, all in the pool
    assert.ok(total > ring, `the burst (${total}) exceeds the ring (${ring})`);
    assert.equal(k.handle({ argv: ['pipe', '1', 'config', 'delay', '100ms'] }).status, 0);
    assert.equal(k.handle({ argv: ['add', '100', 'pipe', '1', 'udp', 'from', 'any', 'to', 'any'] }).status, 0);
    let sent = 0;
    for (let i = 0; i < 200 && sent < total; i++) {
      sent += send(a, total - sent);
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(sent, total);
    // all come due together after 100 ms while b reads nothing: only a ring's worth fits
    await new Promise((r) => setTimeout(r, 400));
    let got = 0;
    for (let i = 0; i < 200 && got < total; i++) {
      got += drain(b);
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(got, total, 'every frame arrived');
    assert.equal(k.stats.dummynetLost, 0, 'none dropped at the output');
    assert.ok(k.stats.txFull > 0, 'the output did find the ring full');
  } finally {
    k.stop();
    await running;
    await k.close();
    a.close();
    b.close();
  }
});
