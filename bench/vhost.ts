/**
 * Two QEMU guests under TCG (test/helpers/vm.ts), side by side in one run:
 *  - `vhost-user`: each behind a vhost-user backend (src/vhost) on one VALE switch;
 *  - `linux-bridge`: each on a TAP (QEMU's own -netdev tap, vnet_hdr=on) in one Linux bridge,
 *    in a network namespace.
 * Per path: ping round trips (10 pings, once the peer answered one), a TCP transfer of 16 MB (busybox
 * nc, timed by the receiving guest's /proc/uptime), and the CPU this process used over 5 s while
 * the guests were up and quiet (for vhost-user: the two backends' threads, which look at their
 * VALE ports every millisecond; for the bridge: nothing, the kernel does the work). TCG emulates the guests' CPUs, so these are
 * functional figures, not a speed reference: both paths are bound by the emulated guests.
 * JSON lines; skipped (with the reason) when not root or when the packages cannot be fetched.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.env.NETMAP_TS_DIR = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'nmts-bench-vhost-'));
const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nmts-bench-vhost-'));
const vm = await import('../test/helpers/vm.js');
const { Lab } = await import('../test/helpers/netns.js');
await import('../src/port-types-lazy.js');
const { serveVhostUser } = await import('../src/vhost/index.js');

const MB = 16;
const SENDER = `dd,if=/dev/zero,bs=64k,count=${MB * 16}|nc,-l,-p,5001`;
const RECEIVER = 'sleep,8&&ping,-c,10,-i,0.2,198.18.9.2&&cat,/proc/uptime&&nc,198.18.9.2,5001|wc,-c&&cat,/proc/uptime';

async function measure(path_: string, start: (name: string, ip: string, mac: string, run: string, waitFor?: string) => InstanceType<typeof vm.Guest>): Promise<void> {
  const g2 = start('g2', '198.18.9.2/24', '52:54:00:00:09:02', SENDER);
  const g1 = start('g1', '198.18.9.1/24', '52:54:00:00:09:01', RECEIVER, '198.18.9.2');
  try {
    // while g1 sleeps (8 s once g2 answered it), the CPU this process spends (the backends' threads)
    await g1.waitFor(/NMTS-PEER/, 180_000);
    await new Promise((r) => setTimeout(r, 1000));
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 5000));
    const c = process.cpuUsage(c0), wall = Number(process.hrtime.bigint() - t0) / 1e3;
    const idleCpuPercent = Number((100 * (c.user + c.system) / wall).toFixed(1));
    const rtt = await g1.waitFor(/10 packets transmitted.*\s+round-trip min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+) ms/, 120_000);
    const done = await g1.waitFor(/([\d.]+) [\d.]+\s+(\d+)\s+([\d.]+) [\d.]+/, 120_000);
    const bytes = Number(done[2]), secs = Number(done[3]) - Number(done[1]);
    console.log(JSON.stringify({
      bench: 'vhost', path: path_, tcg: true, rttMinMs: Number(rtt[1]), rttAvgMs: Number(rtt[2]), rttMaxMs: Number(rtt[3]),
      idleCpuPercentOfThisProcess: idleCpuPercent, tcpBytes: bytes, tcpSeconds: Number(secs.toFixed(2)), tcpMbitPerSec: Number((bytes * 8 / secs / 1e6).toFixed(1)),
      load: os.loadavg()[0]!.toFixed(1),
    }));
  } finally {
    await g1.kill();
    await g2.kill();
  }
}

const skip = vm.vmSkipReason();
if (skip !== null) {
  console.log(JSON.stringify({ bench: 'vhost', skipped: skip }));
} else {
  const files = vm.vmFiles() as import('../test/helpers/vm.js').VmFiles;
  const initrd = vm.initramfs(files);
  try {
    // vhost-user on VALE
    const backends = new Map<string, ReturnType<typeof serveVhostUser>>();
    await measure('vhost-user', (name, ip, mac, run, waitFor) => {
      const sock = path.join(sockDir, `${name}.sock`);
      backends.set(name, serveVhostUser({ socket: sock, port: `valeB:${name}` }));
      return new vm.Guest(files, initrd, { name, ip, netdev: vm.vhostUserNet(sock, mac), run, waitFor });
    });
    for (const b of backends.values()) await b.close();
    // the same two guests on TAPs in a Linux bridge
    const lab = new Lab();
    try {
      const ns = lab.ns('br');
      lab.must(ns, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      lab.must(ns, 'ip', ['link', 'set', 'br0', 'up']);
      let k = 0;
      await measure('linux-bridge', (name, ip, mac, run, waitFor) => {
        const tap = `tb${k++}`;
        lab.must(ns, 'ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr']);
        lab.must(ns, 'ip', ['link', 'set', tap, 'master', 'br0', 'up']);
        return new vm.Guest(files, initrd, { name, ip, netdev: vm.tapNet(tap, mac), run, netns: ns, waitFor });
      });
    } finally {
      lab.cleanup();
    }
  } finally {
    fs.rmSync(process.env.NETMAP_TS_DIR!, { recursive: true, force: true });
    fs.rmSync(sockDir, { recursive: true, force: true });
  }
}
