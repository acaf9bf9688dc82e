/**
 * kipfw -p 2: two worker threads, each on its own ring pair, one ruleset and one set of counters
 * (the rule counters add up to exactly what both threads forwarded).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const DIR = `/dev/shm/netmap-ts-test-fwthreads-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { drain } = await import('./kipfw-lab.js');
const { Kipfw } = await import('../../src/firewall/daemon.js');
type Port = ReturnType<typeof openPort>;

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

function send(p: Port, ring: number, dst: number, src: number, count: number): void {
  const r = p.txRings[ring]!;
  const u8 = p.mem.u8;
  for (let k = 0; k < count; k++) {
    const i = r.head;
    const o = r.slotBufOffset(i);
    u8.fill(0, o, o + 60);
    u8.set([2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, src, 10, 0, 0, dst], o);
    r.setSlotLen(i, 60);
    r.advance(r.next(i));
  }
  p.txsync();
}


test('kipfw -p 2: both workers forward, one set of counters adds up exactly', async () => {
  const a = openPort('valeT1:a@conf:rings=2');
  const b = openPort('valeT2:b@conf:rings=2');
  const k = await Kipfw.start({ name: 'thr', ports: ['valeT1:f@conf:rings=2', 'valeT2:f@conf:rings=2'], workers: 2, log: () => {} });
  const running = k.run();
  try {
    assert.match(k.handle({ argv: ['add', '100', 'count', 'udp', 'from', 'any', 'to', 'any'] }).stdout, /00100 count udp/);
    // dummynet lives in worker 0 (always there with workers): its commands reach it
    const dn = k.handle({ argv: ['pipe', '1', 'config', 'bw', '1Mbit/s'] });
    assert.equal(dn.status, 0, dn.stderr);
    // b's broadcast from MAC 9 crosses kipfw into valeT1, which learns MAC 9 at kipfw's port
    send(b, 0, 255, 9, 1);
    let got = 0;
    for (let i = 0; i < 100 && got < 1; i++) { got += drain(a); await new Promise((r) => setTimeout(r, 10)); }
    assert.equal(got, 1);
    // unicast to MAC 9 from a's two TX rings lands on kipfw's RX rings 0 and 1: both workers
    send(a, 0, 9, 1, 300);
    send(a, 1, 9, 1, 300);
    let back = 0;
    for (let i = 0; i < 200 && back < 600; i++) { back += drain(b); await new Promise((r) => setTimeout(r, 10)); }
    assert.equal(back, 600, 'every frame crossed');
    const s = k.stats;
    assert.equal(s.received, 601);
    const per = k.workerReceived();
    assert.equal(per.length, 2);
    assert.ok(per[0]! >= 300 && per[1]! >= 300, `each worker served its ring: ${per.join(' + ')}`);
    const show = k.handle({ argv: ['show', '100'] }).stdout.trim().split(/\s+/);
    assert.equal(show[1], '601', 'rule 100 counted what both threads saw');
    assert.equal(show[2], String(601 * 46), 'bytes: the IP datagrams');
  } finally {
    k.stop();
    await running;
    await k.close();
    a.close(); b.close();
  }
});

test('kipfw -p 2 on ports with one ring pair: EINVAL naming the fix', async () => {
  await assert.rejects(Kipfw.start({ name: 'thr2', ports: ['valeT3:f', 'valeT4:f'], workers: 2, log: () => {} }), /rings=2.*EINVAL|EINVAL/);
});
