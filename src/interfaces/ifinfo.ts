/**
 * Interface look-ups for the interfaces layer: index, MAC, MTU, flags, queue counts and link
 * state, all through ioctls on a control socket so that they answer for the network namespace of
 * the calling thread (/sys/class/net shows the namespace that mounted /sys, which need not be ours).
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { NetmapError, fail } from '../errors.js';

export const IFNAMSIZ = 16;
const SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, SIOCGIFMTU = 0x8921, SIOCGIFHWADDR = 0x8927;
const SIOCGIFINDEX = 0x8933, SIOCETHTOOL = 0x8946;
const ETHTOOL_GCHANNELS = 0x3c;
export const IFF_UP = 0x1, IFF_BROADCAST = 0x2, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40, IFF_NOARP = 0x80, IFF_PROMISC = 0x100;

export interface InterfaceInfo {
  name: string;
  index: number;
  /** Hardware address, 6 bytes (all zero for devices without one). */
  mac: Uint8Array;
  mtu: number;
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Operationally up: up and carrier present (IFF_RUNNING). */
  running: boolean;
  /** Hardware queue counts (ETHTOOL_GCHANNELS; 1 when the driver does not say). */
  rxQueues: number;
  txQueues: number;
}

/** Throws EINVAL unless `name` is a possible Linux interface name. */
export function checkInterfaceName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) fail('EINVAL', 'the interface name is empty');
  if (Buffer.byteLength(name) >= IFNAMSIZ) fail('EINVAL', `interface name '${name}' is longer than ${IFNAMSIZ - 1} bytes`);
  if (name === '.' || name === '..' || /[\s/:\0]/.test(name)) fail('EINVAL', `'${name}' is not a valid interface name`);
}

function ifreq(name: string): Buffer {
  const b = Buffer.alloc(40);
  b.write(name, 0, IFNAMSIZ - 1, 'utf8');
  return b;
}

function withControlSocket<T>(fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = native.socket(native.AF_INET, native.SOCK_DGRAM, 0);
  } catch (e) {
    if (e instanceof NetmapError) fail(e.code, `cannot open a control socket: ${e.message}`);
    throw e;
  }
  try {
    return fn(fd);
  } finally {
    native.closeFd(fd);
  }
}

function ioctlNamed(fd: number, name: string, request: number, b: Buffer, what: string): void {
  try {
    native.ioctl(fd, request, b);
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'ENODEV' || e.code === 'ENXIO')) fail('ENXIO', `no interface named '${name}' in this network namespace`);
    if (e instanceof NetmapError) fail(e.code, `cannot read the ${what} of interface '${name}': ${e.message}`);
    throw e;
  }
}

/** The interface index of `name`; ENXIO when there is none. */
export function interfaceIndex(name: string): number {
  checkInterfaceName(name);
  const index = native.ifNameToIndex(name);
  if (index === 0) fail('ENXIO', `no interface named '${name}' in this network namespace`);
  return index;
}

/** Whether an interface named `name` exists in this thread's network namespace. */
export function interfaceExists(name: string): boolean {
  try {
    checkInterfaceName(name);
  } catch {
    return false;
  }
  return native.ifNameToIndex(name) !== 0;
}

export function interfaceFlags(name: string): number {
  checkInterfaceName(name);
  return withControlSocket((fd) => {
    const b = ifreq(name);
    ioctlNamed(fd, name, SIOCGIFFLAGS, b, 'flags');
    return b.readUInt16LE(16);
  });
}

/** Sets or clears IFF_UP. */
export function setInterfaceUp(name: string, up: boolean): void {
  checkInterfaceName(name);
  withControlSocket((fd) => {
    const b = ifreq(name);
    ioctlNamed(fd, name, SIOCGIFFLAGS, b, 'flags');
    const flags = b.readUInt16LE(16);
    const next = up ? flags | IFF_UP : flags & ~IFF_UP;
    if (next === flags) return;
    b.writeUInt16LE(next, 16);
    ioctlNamed(fd, name, SIOCSIFFLAGS, b, 'flags');
  });
}

/** Everything the interfaces layer needs to know about `name`. */
export function interfaceInfo(name: string): InterfaceInfo {
  const index = interfaceIndex(name);
  return withControlSocket((fd) => {
    let b = ifreq(name);
    ioctlNamed(fd, name, SIOCGIFFLAGS, b, 'flags');
    const flags = b.readUInt16LE(16);
    b = ifreq(name);
    ioctlNamed(fd, name, SIOCGIFMTU, b, 'MTU');
    const mtu = b.readInt32LE(16);
    b = ifreq(name);
    ioctlNamed(fd, name, SIOCGIFHWADDR, b, 'hardware address');
    const mac = new Uint8Array(6);
    for (let i = 0; i < 6; i++) mac[i] = b[18 + i]!;
    const q = channels(fd, name);
    return {
      name, index, mac, mtu, flags,
      up: (flags & IFF_UP) !== 0,
      running: (flags & IFF_RUNNING) !== 0,
      rxQueues: q.rx, txQueues: q.tx,
    };
  });
}

/** rx/tx queue counts from ETHTOOL_GCHANNELS (combined channels count for both). */
function channels(fd: number, name: string): { rx: number; tx: number } {
  const ch = Buffer.alloc(36);
  ch.writeUInt32LE(ETHTOOL_GCHANNELS, 0);
  const b = ifreq(name);
  b.writeBigUInt64LE(BigInt(native.bufferAddress(ch)), 16);
  try {
    native.ioctl(fd, SIOCETHTOOL, b);
  } catch {
    return { rx: 1, tx: 1 };
  }
  const rx = ch.readUInt32LE(20), tx = ch.readUInt32LE(24), combined = ch.readUInt32LE(32);
  return { rx: Math.max(1, rx + combined), tx: Math.max(1, tx + combined) };
}

/** Formats a MAC address as aa:bb:cc:dd:ee:ff. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The inode of the calling thread's network namespace (identifies the namespace). */
export function currentNetnsId(): number {
  // A fresh synchronous stat each time (on this thread): the thread may have moved (setns).
  try {
    return fs.statSync('/proc/thread-self/ns/net').ino;
  } catch {
    return 0;
  }
}
