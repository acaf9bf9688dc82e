/**
 * Virtual machines for tests: QEMU under TCG (no KVM needed) booting Debian's cloud kernel with a
 * busybox initramfs written here.
 *
 * The software comes from Debian packages fetched with `apt-get download` and unpacked with
 * `dpkg-deb -x` into a cache folder outside the repository (/var/cache/netmap-ts-vm for root,
 * else under os.tmpdir()); nothing is installed. qemu-system-x86 with the libraries it needs that
 * are not on the machine, linux-image-*-cloud-amd64 (its vmlinuz and virtio modules) and
 * busybox-static. The initramfs is a "newc" cpio archive (gzip) made by writeNewc() below: no
 * cpio binary is needed.
 *
 * A guest's /init loads the virtio modules (in the order the cloud kernel needs), sets eth0's
 * address from the kernel command line (`nmts.ip=`), prints NMTS-READY, waits until `nmts.wait=`
 * answers a ping if given, then runs the command given as `nmts.run=` (words joined by commas) and
 * prints NMTS-DONE; its console is QEMU's stdout.
 * Guests use addresses in 198.18.0.0/15 only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

export const VM_CACHE = process.getuid?.() === 0 ? '/var/cache/netmap-ts-vm' : path.join(os.tmpdir(), 'netmap-ts-vm');
const ROOT = path.join(VM_CACHE, 'root');
const READY = path.join(VM_CACHE, 'ready');
/** The virtio modules of the cloud kernel, in load order (each needs the ones before). */
export const VIRTIO_MODULES = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net'];

export interface VmFiles {
  qemu: string;
  /** LD_LIBRARY_PATH for qemu (its libraries from the unpacked packages). */
  libraryPath: string;
  /** Folders for qemu's -L (firmware: SeaBIOS, option ROMs). */
  dataDirs: string[];
  kernel: string;
  /** The unpacked kernel's modules folder. */
  modules: string;
  busybox: string;
}

function sh(cmd: string, args: string[], cwd?: string, timeoutMs = 300_000): { status: number; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return { status: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') + (r.error !== undefined ? String(r.error) : '') };
}

function find(dir: string, test: (p: string) => boolean): string | null {
  if (!fs.existsSync(dir)) return null;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isFile() && test(p)) return p;
  }
  return null;
}

function files(): VmFiles | null {
  const kernel = find(path.join(ROOT, 'boot'), (p) => /vmlinuz-.*-cloud-amd64$/.test(p));
  if (kernel === null) return null;
  const version = path.basename(kernel).slice('vmlinuz-'.length);
  const f: VmFiles = {
    qemu: path.join(ROOT, 'usr/bin/qemu-system-x86_64'),
    libraryPath: [path.join(ROOT, 'usr/lib/x86_64-linux-gnu'), path.join(ROOT, 'lib/x86_64-linux-gnu')].join(':'),
    dataDirs: [path.join(ROOT, 'usr/share/qemu'), path.join(ROOT, 'usr/share/seabios'), path.join(ROOT, 'usr/lib/ipxe/qemu')],
    kernel,
    modules: path.join(ROOT, 'lib/modules', version),
    busybox: path.join(ROOT, 'bin/busybox'),
  };
  return fs.existsSync(f.qemu) && fs.existsSync(f.busybox) && fs.existsSync(f.modules) ? f : null;
}

/**
 * The VM software, fetched and unpacked on first use (about 45 MB); a string saying why not when
 * it cannot be had (not x86-64, no apt-get, the packages not reachable).
 */
export function vmFiles(): VmFiles | string {
  if (process.arch !== 'x64') return `VM tests need an x86-64 machine (this is ${process.arch})`;
  if (fs.existsSync(READY)) {
    const f = files();
    if (f !== null) return f;
  }
  if (sh('apt-get', ['--version']).status !== 0) return 'no apt-get to fetch qemu-system-x86, the cloud kernel and busybox-static';
  // qemu's dependencies that this machine lacks, from a simulated install (nothing is installed)
  let sim = sh('apt-get', ['-s', 'install', '--no-install-recommends', 'qemu-system-x86', 'busybox-static']);
  if (sim.status !== 0) {
    sh('apt-get', ['update', '-qq']);
    sim = sh('apt-get', ['-s', 'install', '--no-install-recommends', 'qemu-system-x86', 'busybox-static']);
    if (sim.status !== 0) return `apt-get cannot resolve qemu-system-x86: ${sim.out.trim().split('\n').slice(-2).join(' ')}`;
  }
  const pkgs = [...sim.out.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]!);
  for (const must of ['qemu-system-x86', 'busybox-static']) {
    // installed on the machine already: fetch it anyway (its files are taken from the cache)
    if (!pkgs.includes(must)) pkgs.push(must);
  }
  const dep = sh('apt-cache', ['depends', 'linux-image-cloud-amd64']);
  const image = /Depends: (linux-image-\S+-cloud-amd64)/.exec(dep.out)?.[1];
  if (image === undefined) return 'apt-cache finds no linux-image-cloud-amd64';
  pkgs.push(image);
  const debs = path.join(VM_CACHE, 'debs');
  fs.rmSync(VM_CACHE, { recursive: true, force: true });
  fs.mkdirSync(debs, { recursive: true });
  const dl = sh('apt-get', ['download', ...pkgs], debs);
  if (dl.status !== 0) return `apt-get download failed: ${dl.out.trim().split('\n').slice(-2).join(' ')}`;
  for (const deb of fs.readdirSync(debs).filter((n) => n.endsWith('.deb'))) {
    const x = sh('dpkg-deb', ['-x', path.join(debs, deb), ROOT]);
    if (x.status !== 0) return `dpkg-deb -x ${deb} failed: ${x.out.trim()}`;
  }
  fs.rmSync(debs, { recursive: true, force: true });
  const f = files();
  if (f === null) return 'the unpacked packages lack qemu-system-x86_64, busybox or the kernel';
  fs.writeFileSync(READY, pkgs.join('\n') + '\n');
  return f;
}

/** Why VM tests cannot run here (not root, no /dev/net/tun, no packages), or null. */
export function vmSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, TAPs)';
  const f = vmFiles();
  return typeof f === 'string' ? f : null;
}

// ---- the initramfs -------------------------------------------------------------------------

export interface CpioEntry {
  /** Path inside the archive, without a leading '/'. */
  name: string;
  /** File type and permissions: 0o100755 a file, 0o40755 a folder, 0o120777 a symbolic link. */
  mode: number;
  /** Contents (a link's target for a symbolic link); none for a folder. */
  data?: Buffer;
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/**
 * A cpio archive in the "newc" format the kernel unpacks as an initramfs: per entry the magic
 * 070701, thirteen 8-digit hex fields (inode, mode, uid, gid, nlink, mtime, file size, dev major,
 * minor, rdev major, minor, name size with its NUL, check), the name, the data, each padded to 4
 * bytes; then the entry TRAILER!!!.
 */
export function writeNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const one = (name: string, mode: number, data: Buffer, ino: number): void => {
    const fields = [ino, mode, 0, 0, (mode & 0o170000) === 0o40000 ? 2 : 1, 0, data.length, 0, 0, 0, 0, Buffer.byteLength(name) + 1, 0];
    const header = '070701' + fields.map((v) => v.toString(16).padStart(8, '0')).join('');
    const head = Buffer.from(header + name + '\0', 'latin1');
    parts.push(head, Buffer.alloc(pad4(head.length)), data, Buffer.alloc(pad4(data.length)));
  };
  entries.forEach((e, k) => one(e.name, e.mode, e.data ?? Buffer.alloc(0), k + 1));
  one('TRAILER!!!', 0, Buffer.alloc(0), 0);
  return Buffer.concat(parts);
}

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${VIRTIO_MODULES.join(' ')}; do insmod /lib/modules/$m.ko || echo "NMTS-ERROR insmod $m"; done
for w in $(cat /proc/cmdline); do
  case "$w" in
    nmts.ip=*) IP="\${w#nmts.ip=}" ;;
    nmts.run=*) RUN="\$(echo "\${w#nmts.run=}" | tr , ' ')" ;;
    nmts.wait=*) WAIT="\${w#nmts.wait=}" ;;
  esac
done
ip link set lo up
ip link set eth0 up || echo "NMTS-ERROR no eth0"
ip addr add "$IP" dev eth0
echo "NMTS-READY $(cat /sys/class/net/eth0/address) features $(cat /sys/class/net/eth0/device/features 2>/dev/null)"
if [ -n "$WAIT" ]; then
  n=0
  until ping -c 1 -W 1 "$WAIT" >/dev/null 2>&1 || [ $n -ge 120 ]; do n=$((n + 1)); done
  echo "NMTS-PEER $WAIT after $n tries"
fi
if [ -n "$RUN" ]; then sh -c "$RUN"; echo "NMTS-DONE status $?"; fi
while true; do sleep 3600; done
`;

/** The initramfs for the guests: busybox, /init above, the virtio modules (gzip, cached). */
export function initramfs(f: VmFiles): string {
  const out = path.join(VM_CACHE, 'initrd-nmts.gz');
  const entries: CpioEntry[] = [
    { name: 'bin', mode: 0o40755 }, { name: 'lib', mode: 0o40755 }, { name: 'lib/modules', mode: 0o40755 },
    { name: 'bin/busybox', mode: 0o100755, data: fs.readFileSync(f.busybox) },
    { name: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') },
    { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
  ];
  for (const m of VIRTIO_MODULES) {
    const file = findModule(f.modules, m);
    if (file === null) throw new Error(`module ${m} is not in ${f.modules}`);
    entries.push({ name: `lib/modules/${m}.ko`, mode: 0o100644, data: fs.readFileSync(file) });
  }
  const image = zlib.gzipSync(writeNewc(entries));
  fs.writeFileSync(out, image);
  return out;
}

function findModule(dir: string, name: string): string | null {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const r = findModule(p, name);
      if (r !== null) return r;
    } else if (e.name === `${name}.ko`) {
      return p;
    }
  }
  return null;
}

// ---- guests ----------------------------------------------------------------------------------

export interface GuestOptions {
  name: string;
  /** eth0's address, in 198.18.0.0/15 (a.b.c.d/len). */
  ip: string;
  /** The network device: QEMU options for -netdev and -device (the MAC given here). */
  netdev: string[];
  /** A shell command the guest runs once its network is up (no spaces: commas stand for them). */
  run?: string;
  /** Before `run`, wait until this address answers a ping (at most 120 tries, about 2 minutes). */
  waitFor?: string;
  /** QEMU runs inside this network namespace (TAP guests). */
  netns?: string;
}

/** The QEMU options of a vhost-user virtio-net device on socket `sock` with `mac`. */
export function vhostUserNet(sock: string, mac: string): string[] {
  return [
    '-chardev', `socket,id=c0,path=${sock},reconnect=1`,
    '-netdev', 'vhost-user,id=n0,chardev=c0',
    // vectors=0: QEMU 7.2 under TCG crashes in msix_set_vector_notifiers from vhost_net_start
    '-device', `virtio-net-pci,netdev=n0,mac=${mac},vectors=0,romfile=`,
  ];
}

/** The QEMU options of a virtio-net device on TAP `ifname` with virtio-net headers. */
export function tapNet(ifname: string, mac: string): string[] {
  return [
    '-netdev', `tap,id=n0,ifname=${ifname},script=no,downscript=no,vnet_hdr=on`,
    '-device', `virtio-net-pci,netdev=n0,mac=${mac},vectors=0,romfile=`,
  ];
}

/** A running guest: its console output accumulates in `output`. */
export class Guest {
  readonly name: string;
  output = '';
  private readonly proc: ChildProcess;
  private exited = false;

  constructor(f: VmFiles, initrd: string, opts: GuestOptions) {
    this.name = opts.name;
    // no_timer_check: under a loaded TCG the kernel's IO-APIC timer check can fail and panic
    const append = ['console=ttyS0', 'quiet', 'panic=-1', 'no_timer_check', `nmts.ip=${opts.ip}`];
    if (opts.run !== undefined) append.push(`nmts.run=${opts.run}`);
    if (opts.waitFor !== undefined) append.push(`nmts.wait=${opts.waitFor}`);
    const args = [
      ...f.dataDirs.flatMap((d) => ['-L', d]),
      '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
      '-accel', 'tcg', '-m', '256', '-smp', '1',
      '-object', 'memory-backend-memfd,id=mem,size=256M,share=on', '-machine', 'pc,memory-backend=mem',
      '-kernel', f.kernel, '-initrd', initrd, '-append', append.join(' '),
      ...opts.netdev,
    ];
    const cmd = opts.netns !== undefined ? 'ip' : f.qemu;
    const argv = opts.netns !== undefined ? ['netns', 'exec', opts.netns, f.qemu, ...args] : args;
    this.proc = spawn(cmd, argv, { env: { ...process.env, LD_LIBRARY_PATH: f.libraryPath }, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (b: Buffer): void => { this.output += b.toString('latin1'); };
    this.proc.stdout!.on('data', take);
    this.proc.stderr!.on('data', take);
    this.proc.on('exit', () => { this.exited = true; });
  }

  /** Waits until the console shows `pattern` (its match), at most `ms`; throws with the output otherwise. */
  async waitFor(pattern: RegExp, ms: number): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = pattern.exec(this.output);
      if (m !== null) return m;
      if (this.exited) throw new Error(`guest ${this.name} exited before ${pattern}:\n${this.output.slice(-3000)}`);
      if (Date.now() > end) throw new Error(`guest ${this.name}: no ${pattern} within ${ms} ms:\n${this.output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops QEMU (SIGKILL) and waits for it. */
  async kill(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGKILL');
    await gone;
  }
}
