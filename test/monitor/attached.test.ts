/**
 * Monitors of an attached interface's switch port (vale-ctl -a): what the wire sends into the
 * switch (injected by the attach daemon) and what the switch delivers to the interface (written
 * straight onto its wire by the sender's daemon) both reach a copy monitor; /z is refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

process.env.NETMAP_TS_DIR = fs.mkdtempSync('/dev/shm/nmts-monattach-');
after(() => fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true }));

const { skipReason, withLab, Lab } = await import('../helpers/netns.js');
const { openPort, POLLIN } = await import('../../src/ports/index.js');
const { NetmapError } = await import('../../src/errors.js');
const L = await import('../../src/memory/layout.js');
type LabT = InstanceType<typeof Lab>;
type Port = ReturnType<typeof openPort>;

const skip = skipReason(['tc', 'ping', 'tun']);
if (skip !== null) console.log(`# skipping monitor tests on attached interfaces: ${skip}`);
const opts = { skip: skip ?? false, timeout: 90_000 };

const VALECTL = new URL('../../src/tools/vale-ctl.js', import.meta.url).pathname;
const IFACES = new URL('../../src/bwrap/index.js', import.meta.url).pathname;
const RUN_VALECTL = `await import(${JSON.stringify(IFACES)}); const v = await import(${JSON.stringify(VALECTL)}); process.exitCode = await v.main(process.argv.slice(1));`;

function valeCtl(lab: LabT, ns: string, args: string[]): { status: number; out: string } {
  const r = lab.run(ns, process.execPath, ['--input-type=module', '-e', RUN_VALECTL, '--', ...args], 30_000);
  return { status: r.status, out: r.stdout + r.stderr };
}

/** ICMP echo requests (8) and replies (0) in a monitor's ring, by direction (NS_TXMON or not). */
function icmp(m: Port, into: { out: number[]; in: number[] }): void {
  m.rxsync();
  const r = m.rxRings[0]!, v = m.mem.view;
  while (!r.empty()) {
    const i = r.head, o = r.slotBufOffset(i);
    if (r.slotLen(i) >= 42 && v.getUint16(o + 12) === 0x0800 && m.mem.u8[o + 23] === 1) {
      const type = m.mem.u8[o + 34]!;
      ((r.slotFlags(i) & L.NS_TXMON) !== 0 ? into.out : into.in).push(type);
    }
    r.advance(r.next(i));
  }
  m.rxsync();
}

test('an attached interface\'s switch port: /rt sees the wire\'s frames going in and the frames delivered to it', opts, () => withLab(async (lab) => {
  const { l, m } = lab.line(false);
  for (const dev of ['m0', 'm1']) {
    const a = valeCtl(lab, m, ['-a', `vale0:${dev}`]);
    assert.equal(a.status, 0, a.out);
  }
  const mon0 = openPort('vale0:m0/rt'), mon1 = openPort('vale0:m1/r');
  try {
    assert.throws(() => openPort('vale0:m0/z'), (e: unknown) => e instanceof NetmapError && e.code === 'EOPNOTSUPP');
    const ping = lab.run(l, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '198.18.0.2']);
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    const s0 = { out: [] as number[], in: [] as number[] }, s1 = { out: [] as number[], in: [] as number[] };
    for (let t = 0; t < 20 && (s0.in.length < 3 || s1.in.length < 3); t++) { mon0.poll(POLLIN, 50); icmp(mon0, s0); icmp(mon1, s1); }
    assert.deepEqual(s0.out, [8, 8, 8], 'm0 sent the echo requests from its wire into the switch');
    assert.deepEqual(s0.in, [0, 0, 0], 'the replies were delivered to m0');
    assert.deepEqual(s1.in, [8, 8, 8], 'the requests were delivered to m1 (straight onto its wire)');
    assert.deepEqual(s1.out, [], '/r only');
  } finally {
    mon0.close(); mon1.close();
    for (const dev of ['m0', 'm1']) valeCtl(lab, m, ['-d', `vale0:${dev}`]);
  }
}));
