/**
 * The firewall as a VALE switch's lookup: rules decide what the learning bridge forwards, denied
 * frames are counted as the sender's txDrops, `recv`/`xmit` match the source and destination port
 * names, and counters add up across sender processes (pkt-gen in a child process beside this one).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DIR = `/dev/shm/netmap-ts-test-fwvale-${process.pid}`;
process.env.NETMAP_TS_DIR = DIR;

await import('../../src/port-types.js'); // every port type, plugged into openPort
const { openPort } = await import('../../src/ports/index.js');
const { drain } = await import('./kipfw-lab.js');
const vale = await import('../../src/switch/index.js');
const { attachFirewall, detachFirewall } = await import('../../src/firewall/attach.js');
const { Firewall } = await import('../../src/firewall/firewall.js');
type Port = ReturnType<typeof openPort>;

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '..', '..', 'src', 'tools', 'cli.js');

before(() => { fs.rmSync(DIR, { recursive: true, force: true }); });
after(() => { fs.rmSync(DIR, { recursive: true, force: true }); });

/** An Ethernet/IPv4/UDP frame from 10.0.0.<src> port <sport> to 10.0.0.<dst> port <dport>. */
function udp(p: Port, dstMac: number, srcMac: number, src: number, dst: number, sport: number, dport: number): void {
  const r = p.txRings[0]!;
  const u8 = p.mem.u8;
  const i = r.head;
  const o = r.slotBufOffset(i);
  const bytes = [
    2, 0, 0, 0, 0, dstMac, 2, 0, 0, 0, 0, srcMac, 0x08, 0x00,
    0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, src, 10, 0, 0, dst,
    sport >> 8, sport & 255, dport >> 8, dport & 255, 0, 26, 0, 0,
  ];
  for (let j = 0; j < 60; j++) u8[o + j] = bytes[j] ?? 0;
  r.setSlotLen(i, 60);
  r.setSlotFlags(i, 0);
  r.advance(r.next(i));
}


function ipfw(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, 'ipfw', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env } });
  assert.equal(r.status, 0, `ipfw ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('VALE lookup: rules filter what the learning bridge forwards; drops are counted', async () => {
  const a = openPort('valefw0:a');
  const b = openPort('valefw0:b');
  const c = openPort('valefw0:c');
  try {
    await attachFirewall('valefw0');
    await vale.loadLookup('valefw0');
    // learn b's and c's MACs (2 and 3)
    udp(b, 1, 2, 2, 1, 9, 9); b.txsync();
    udp(c, 1, 3, 3, 1, 9, 9); c.txsync();
    drain(a); drain(b); drain(c); // the learning frames were flooded
    ipfw('-s', 'valefw0', 'add', '100', 'deny', 'udp', 'from', 'any', 'to', 'any', 'dst-port', '53');
    ipfw('-s', 'valefw0', 'add', '200', 'deny', 'ip', 'from', 'any', 'to', 'any', 'xmit', 'valefw0:c');
    ipfw('-s', 'valefw0', 'add', '300', 'count', 'ip', 'from', 'any', 'to', 'any', 'recv', 'valefw0:a', 'out');
    const before = vale.portCounters('valefw0:a');
    for (let k = 0; k < 10; k++) udp(a, 2, 1, 1, 2, 1000, 53);      // to b, port 53: denied by 100
    for (let k = 0; k < 20; k++) udp(a, 2, 1, 1, 2, 1000, 80);      // to b: passes (counted by 300)
    for (let k = 0; k < 5; k++) udp(a, 3, 1, 1, 3, 1000, 80);       // to c: denied by 200 (xmit)
    a.txsync();
    assert.equal(drain(b), 20, 'b gets only port 80');
    assert.equal(drain(c), 0, 'nothing may be sent to c');
    const after = vale.portCounters('valefw0:a');
    assert.equal(after.txDrops - before.txDrops, 15, 'denied frames are the sender\'s txDrops');
    const show = ipfw('-s', 'valefw0', 'show');
    const count = (n: string): number => Number(show.split('\n').find((l) => l.startsWith(n))!.trim().split(/\s+/)[1]);
    assert.equal(count('00100'), 10);
    assert.equal(count('00200'), 5);
    assert.equal(count('00300'), 20);
    // counters add up across processes: pkt-gen sends 1000 frames from another process
    const pg = spawnSync(process.execPath, [CLI, 'pkt-gen', '-i', 'valefw0:g', '-f', 'tx', '-n', '1000', '-b', '64', '-T', '0', '-d', '10.0.0.2:80', '-D', '02:00:00:00:00:02', '-S', '02:00:00:00:00:09'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env } });
    assert.equal(pg.status, 0, pg.stderr);
    let got = 0;
    for (let i = 0; i < 50 && got < 1000; i++) { got += drain(b); await new Promise((r) => setTimeout(r, 20)); }
    assert.equal(got, 1000, 'pkt-gen\'s frames pass');
    const show2 = ipfw('-s', 'valefw0', 'show');
    const total = Number(show2.split('\n').find((l) => l.startsWith('65535'))!.trim().split(/\s+/)[1]);
    // 2 learning frames + 20 + 1000 reached the default rule (300 is a count rule: they continue)
    assert.equal(total, 1022, show2);
  } finally {
    await detachFirewall('valefw0').catch(() => undefined);
    a.close(); b.close(); c.close();
  }
});

test('VALE lookup: a new ruleset takes effect for a sender that is already running; detach restores the bridge', async () => {
  const a = openPort('valefw1:a');
  const b = openPort('valefw1:b');
  try {
    await attachFirewall('valefw1', { defaultAccept: false });
    await vale.loadLookup('valefw1');
    const send = (n: number): void => { for (let k = 0; k < n; k++) udp(a, 2, 1, 1, 2, 7, 7); a.txsync(); };
    send(64);
    assert.equal(drain(b), 0, 'default deny');
    const fw = Firewall.open('valefw1');
    const r = fw.command(['add', '100', 'allow', 'udp', 'from', 'any', 'to', 'any']);
    fw.close();
    assert.equal(r.status, 0, r.stderr);
    send(64);
    send(64);
    assert.ok(drain(b) >= 64, 'the new rule lets frames through');
    await detachFirewall('valefw1');
    assert.equal(vale.getLookup('valefw1').module, '');
    send(10);
    assert.equal(drain(b), 10, 'the learning bridge again');
  } finally {
    a.close(); b.close();
  }
});

test('ipfw on a firewall that does not exist, attach to a switch that does not exist: clear errors, nothing left', async () => {
  const r = spawnSync(process.execPath, [CLI, 'ipfw', '-s', 'nosuchfw', 'show'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env } });
  assert.equal(r.status, 69, 'EX_UNAVAILABLE');
  assert.match(r.stderr, /no firewall named 'nosuchfw'/);
  await assert.rejects(attachFirewall('valenosuch'), /ENXIO/);
  assert.equal(fs.existsSync(path.join(DIR, 'fw-valenosuch')), false, 'no store left behind');
  const bad = spawnSync(process.execPath, [CLI, 'ipfw', '-s', '../x', 'show'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env } });
  assert.equal(bad.status, 64, 'EX_USAGE');
  assert.match(bad.stderr, /bad firewall name/);
  // as ipfw(8) parses before it asks the kernel: -n needs no firewall, a syntax error is told first
  const ipfw = (...args: string[]) => spawnSync(process.execPath, [CLI, 'ipfw', '-s', 'nosuchfw', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env } });
  const checked = ipfw('-n', 'add', '100', 'deny', 'tcp', 'from', 'any', 'to', 'any', '22');
  assert.equal(checked.status, 0, checked.stderr);
  assert.equal(checked.stdout, '00100 deny tcp from any to any dst-port 22\n');
  const pipe = ipfw('-n', 'pipe', '1', 'config', 'bw', '10Mbit/s', 'delay', '20');
  assert.equal(pipe.status, 0, pipe.stderr);
  const frob = ipfw('add', '100', 'frob');
  assert.equal(frob.status, 65, 'EX_DATAERR');
  assert.equal(frob.stderr, 'ipfw: invalid action frob\n');
  const host = ipfw('-n', 'add', 'allow', 'ip', 'from', '198.18.0.300', 'to', 'any');
  assert.equal(host.status, 68, 'EX_NOHOST');
  assert.equal(fs.existsSync(path.join(DIR, 'fw-nosuchfw')), false, 'checking made no firewall');
});
