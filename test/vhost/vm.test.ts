/**
 * Real virtual machines on a VALE switch (QEMU under TCG, Debian's cloud kernel, busybox; see
 * test/helpers/vm.ts): two guests behind vhost-user backends ping each other and move 4 MB over
 * TCP (the guests' TSO super-frames cross the switch whole), one of them is restarted and
 * reconnects; a guest on a TAP (QEMU's -netdev tap, vnet_hdr=on) attached to a switch pings a
 * namespace behind a veth on the same switch. Skipped with the reason when not root or when the
 * Debian packages cannot be fetched.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-vm-'));
const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nmts-vm-sock-'));
after(() => {
  fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true });
  fs.rmSync(sockDir, { recursive: true, force: true });
});

const vm = await import('../helpers/vm.js');
const { skipReason, withLab } = await import('../helpers/netns.js');
await import('../../src/port-types-lazy.js');
const { serveVhostUser } = await import('../../src/vhost/index.js');

const skip = vm.vmSkipReason() ?? skipReason(['tun']);
if (skip !== null) console.log(`# skipping VM tests: ${skip}`);
const files = skip === null ? vm.vmFiles() as import('../helpers/vm.js').VmFiles : null;
const initrd = files !== null ? vm.initramfs(files) : '';

/** The guest's virtio features (the bits in /sys/class/net/eth0/device/features, bit 0 first). */
function guestFeature(ready: string, bit: number): boolean {
  const m = /features ([01]+)/.exec(ready);
  return m !== null && m[1]![bit] === '1';
}

test('VM: two guests on one VALE switch through vhost-user ping, move 4 MB over TCP, and one reconnects after a restart', { skip: skip ?? false, timeout: 180_000 }, async () => {
  const logs: string[] = [];
  const sa = path.join(sockDir, 'g1.sock'), sb = path.join(sockDir, 'g2.sock');
  const b1 = serveVhostUser({ socket: sa, port: 'vale7:vm1', onLog: (l) => logs.push(`vm1: ${l}`) });
  const b2 = serveVhostUser({ socket: sb, port: 'vale7:vm2', onLog: (l) => logs.push(`vm2: ${l}`) });
  const guests: InstanceType<typeof vm.Guest>[] = [];
  try {
    const t0 = Date.now();
    // g2 serves 4 MB on TCP port 5001; g1 waits until g2 answers, pings it 3 times, then reads it all
    const g2 = new vm.Guest(files!, initrd, { name: 'g2', ip: '198.18.9.2/24', netdev: vm.vhostUserNet(sb, '52:54:00:00:09:02'), run: 'dd,if=/dev/zero,bs=64k,count=64|nc,-l,-p,5001' });
    guests.push(g2);
    const g1 = new vm.Guest(files!, initrd, { name: 'g1', ip: '198.18.9.1/24', netdev: vm.vhostUserNet(sa, '52:54:00:00:09:01'), waitFor: '198.18.9.2', run: 'ping,-c,3,198.18.9.2&&cat,/proc/uptime&&nc,198.18.9.2,5001|wc,-c&&cat,/proc/uptime' });
    guests.push(g1);
    const ready = (await g1.waitFor(/NMTS-READY [^\r\n]*[\r\n]/, 60_000))[0]; // the whole line: output arrives in pieces
    // the guest took the offloads: HOST_TSO4 (11), GUEST_TSO4 (7), MRG_RXBUF (15), VERSION_1 (32)
    for (const bit of [7, 11, 15, 32]) assert.ok(guestFeature(ready, bit), `guest feature ${bit}: ${ready}`);
    await g1.waitFor(/3 packets transmitted, 3 packets received/, 60_000);
    // /proc/uptime before and after, the byte count between
    const done = await g1.waitFor(/([\d.]+) [\d.]+\s+(\d+)\s+([\d.]+) [\d.]+/, 60_000);
    const bytes = Number(done[2]), secs = Number(done[3]) - Number(done[1]);
    assert.equal(bytes, 64 * 65536, `g1 read ${bytes} bytes`);
    const c2 = b2.counters(), c1 = b1.counters();
    console.log(`# vhost-user under TCG: 4 MB in ${secs.toFixed(2)} s (guest clock) (${(bytes * 8 / secs / 1e6).toFixed(0)} Mbit/s), ${c2.txFrames} frames from g2 of ${(c2.txBytes / c2.txFrames).toFixed(0)} bytes on average; boot and run ${(Date.now() - t0) / 1000} s`);
    assert.ok(c1.rxBytes >= bytes, 'g1\'s backend counted what it delivered');
    // the sender's stack made super-frames (TSO) and they crossed whole: more bytes per frame than the MTU allows
    assert.ok(c2.txBytes / c2.txFrames > 1514, `${(c2.txBytes / c2.txFrames).toFixed(0)} bytes per frame: no super-frames`);
    assert.equal(c1.rxDrops + c2.rxDrops + c1.txDrops + c2.txDrops, 0, JSON.stringify([c1, c2]));
    // QEMU of g1 goes away and a new one connects to the same backend
    await g1.kill();
    const deadline = Date.now() + 10_000;
    while (!logs.includes('vm1: disconnected') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(logs.includes('vm1: disconnected'), logs.join('\n'));
    const g1b = new vm.Guest(files!, initrd, { name: 'g1b', ip: '198.18.9.1/24', netdev: vm.vhostUserNet(sa, '52:54:00:00:09:01'), waitFor: '198.18.9.2', run: 'ping,-c,3,198.18.9.2' });
    guests.push(g1b);
    await g1b.waitFor(/3 packets transmitted, 3 packets received/, 90_000);
    assert.equal(logs.filter((l) => l === 'vm1: connected').length, 2, logs.join('\n'));
  } finally {
    for (const g of guests) await g.kill();
    await b1.close();
    await b2.close();
  }
});

test('VM: a guest on a TAP with virtio-net headers, attached to a VALE switch, pings a namespace behind a veth on it', { skip: skip ?? false, timeout: 120_000 }, () => withLab(async (lab) => {
  const m = lab.ns('m'), r = lab.ns('r');
  lab.veth(m, 'mv', r, 'rv');
  lab.addr(r, 'rv', '198.18.8.2/24');
  const VALECTL = new URL('../../src/tools/vale-ctl.js', import.meta.url).pathname;
  const IFACES = new URL('../../src/bwrap/index.js', import.meta.url).pathname;
  const script = `await import(${JSON.stringify(IFACES)}); const v = await import(${JSON.stringify(VALECTL)}); process.exitCode = await v.main(process.argv.slice(1));`;
  const valeCtl = (args: string[]): void => {
    const res = lab.run(m, process.execPath, ['--input-type=module', '-e', script, '--', ...args], 30_000);
    assert.equal(res.status, 0, res.stdout + res.stderr);
  };
  valeCtl(['-a', 'vale8:mv']);
  const g = new vm.Guest(files!, initrd, { name: 'gt', ip: '198.18.8.1/24', netdev: vm.tapNet('tvm0', '52:54:00:00:08:01'), netns: m, waitFor: '198.18.8.2', run: 'ping,-c,3,198.18.8.2' });
  try {
    // QEMU makes the TAP and holds its descriptor: the switch takes it by its network device
    const end = Date.now() + 20_000;
    while (lab.run(m, 'ip', ['link', 'show', 'tvm0']).status !== 0) {
      if (Date.now() > end) throw new Error(`QEMU made no TAP:\n${g.output}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    lab.must(m, 'ip', ['link', 'set', 'tvm0', 'up']);
    valeCtl(['-a', 'vale8:tvm0']);
    const ready = (await g.waitFor(/NMTS-READY [^\r\n]*[\r\n]/, 60_000))[0]; // the whole line: output arrives in pieces
    assert.ok(guestFeature(ready, 11), `the guest got HOST_TSO4 through vnet_hdr=on: ${ready}`);
    await g.waitFor(/3 packets transmitted, 3 packets received/, 60_000);
  } finally {
    await g.kill();
  }
}));
