/**
 * TAP devices (/dev/net/tun, IFF_TAP | IFF_NO_PI): Ethernet frames written to the descriptor are
 * received by the kernel on the TAP interface; frames the kernel sends on it are read from the
 * descriptor. Frames move between the descriptor and the address space with one read/write each,
 * without allocation. A non-persistent TAP disappears when its descriptor is closed (also when the
 * process dies); a persistent one stays until removed.
 */
import * as native from '../native/index.js';
import { space, type AddressSpace } from '../memory/space.js';
import { NetmapError, fail } from '../errors.js';
import { checkInterfaceName, interfaceExists, interfaceIndex, setInterfaceUp } from './ifinfo.js';

const TUNSETIFF = 0x400454ca, TUNSETPERSIST = 0x400454cb, TUNSETOFFLOAD = 0x400454d0, TUNSETVNETHDRSZ = 0x400454d8;
const IFF_TAP = 0x0002, IFF_NO_PI = 0x1000, IFF_VNET_HDR = 0x4000, IFF_TUN_EXCL = 0x8000;
/** TUNSETOFFLOAD bits: what the stack behind the TAP may hand us unfinished. */
export const TUN_F_CSUM = 0x01, TUN_F_TSO4 = 0x02, TUN_F_TSO6 = 0x04, TUN_F_TSO_ECN = 0x08, TUN_F_USO4 = 0x20, TUN_F_USO6 = 0x40;
/** The offloads a TAP with a virtio-net header is given: partial checksums, TSO4/6 (with ECN), USO4/6. */
export const TAP_VNET_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6;
const O_NONBLOCK = 0o4000;
const EAGAIN = 11, EBADFD = 77;

export interface TapOptions {
  /** Keep the device after close (default false). */
  persist?: boolean;
  /** Fail with EBUSY if a device of that name already exists (default false). */
  exclusive?: boolean;
  /** Only attach to an existing device: ENXIO when there is none (default false). */
  existing?: boolean;
  /** Bring the interface up (default true). */
  up?: boolean;
  /**
   * Frames carry a virtio-net header of this many bytes (10 or 12: IFF_VNET_HDR, TUNSETVNETHDRSZ),
   * and the stack behind the TAP may send what `offloads` allows unfinished (TUNSETOFFLOAD, default
   * TAP_VNET_OFFLOADS; kernels without USO get the rest). 0 (default): plain frames.
   */
  vnetHdr?: number;
  offloads?: number;
}

export class TapDevice {
  readonly fd: number;
  readonly name: string;
  readonly ifindex: number;
  persistent: boolean;
  private readonly sp: AddressSpace;
  private readonly pollfd = Buffer.alloc(8);
  private closed = false;
  /** Whether close() closes the descriptor (false for one adopted from another thread). */
  private readonly owned: boolean;
  /** virtio-net header length of every frame read or written (0: none). */
  readonly vnetHdr: number;
  /** Set when the device went away under the descriptor (EBADFD: deleted, e.g. with its namespace). */
  gone = false;
  /** Frames read / written / writes refused by the kernel. */
  received = 0;
  sent = 0;
  writeErrors = 0;

  private constructor(fd: number, name: string, persistent: boolean, owned = true, vnetHdr = 0) {
    this.fd = fd;
    this.vnetHdr = vnetHdr;
    this.owned = owned;
    this.name = name;
    this.persistent = persistent;
    this.ifindex = interfaceIndex(name);
    this.sp = space();
    this.pollfd.writeInt32LE(fd, 0);
    this.pollfd.writeInt16LE(native.POLLIN, 4);
  }

  /** Creates (or attaches to) TAP `name`; an empty name lets the kernel pick tapN. */
  static open(name: string, opts: TapOptions = {}): TapDevice {
    if (name !== '') checkInterfaceName(name);
    if (opts.existing === true && (name === '' || !interfaceExists(name))) fail('ENXIO', `no TAP device named '${name}'`);
    const vnetHdr = opts.vnetHdr ?? 0;
    if (vnetHdr !== 0 && vnetHdr !== 10 && vnetHdr !== 12) fail('EINVAL', `a virtio-net header is 0, 10 or 12 bytes, not ${vnetHdr}`);
    let fd: number;
    try {
      fd = native.openFile('/dev/net/tun', native.O_RDWR | O_NONBLOCK);
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'ENOENT') fail('ENXIO', '/dev/net/tun is missing: this kernel has no TUN/TAP support');
      if (e instanceof NetmapError && (e.code === 'EACCES' || e.code === 'EPERM')) fail('EPERM', 'cannot open /dev/net/tun: TAP devices need root or CAP_NET_ADMIN');
      throw e;
    }
    try {
      const ifr = Buffer.alloc(40);
      ifr.write(name, 0, 15, 'utf8');
      ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | (opts.exclusive === true ? IFF_TUN_EXCL : 0) | (vnetHdr !== 0 ? IFF_VNET_HDR : 0), 16);
      try {
        native.ioctl(fd, TUNSETIFF, ifr);
      } catch (e) {
        if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `TAP device '${name}' exists already and is in use`);
        if (e instanceof NetmapError && e.code === 'EPERM') fail('EPERM', `cannot create TAP device '${name}': needs root or CAP_NET_ADMIN`);
        if (e instanceof NetmapError && e.code === 'EINVAL') fail('EINVAL', `'${name}' exists and is not a TAP device`);
        throw e;
      }
      const actual = ifr.toString('utf8', 0, 16).replace(/\0.*$/s, '');
      const persist = opts.persist === true;
      if (persist) native.ioctlValue(fd, TUNSETPERSIST, 1);
      if (vnetHdr !== 0) {
        const size = Buffer.alloc(4);
        size.writeInt32LE(vnetHdr, 0);
        native.ioctl(fd, TUNSETVNETHDRSZ, size);
        const offloads = opts.offloads ?? TAP_VNET_OFFLOADS;
        try {
          native.ioctlValue(fd, TUNSETOFFLOAD, offloads);
        } catch (e) {
          // kernels before 6.2 know no USO bits
          if (!(e instanceof NetmapError) || e.code !== 'EINVAL') throw e;
          native.ioctlValue(fd, TUNSETOFFLOAD, offloads & ~(TUN_F_USO4 | TUN_F_USO6));
        }
      }
      const tap = new TapDevice(fd, actual, persist, true, vnetHdr);
      if (opts.up ?? true) setInterfaceUp(actual, true);
      return tap;
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
  }

  /**
   * A TapDevice over descriptor `fd` of TAP `name`, opened by another thread of this process
   * (descriptors are per process): reads and writes as usual; close() leaves the descriptor open.
   */
  static adopt(fd: number, name: string): TapDevice {
    return new TapDevice(fd, name, false, false);
  }

  /**
   * Reads one frame into address-space offset `dst` (at most `room` bytes, a longer frame is cut).
   * Returns its length, 0 when none is waiting, -errno on error.
   */
  read(dst: number, room: number): number {
    const r = native.readAt(this.fd, this.sp.address + dst, room);
    if (r > 0) {
      this.received++;
      return r;
    }
    if (r === -EBADFD) this.gone = true;
    return r === -EAGAIN ? 0 : r;
  }

  /**
   * Reads one frame (with its virtio-net header, if any) into the `count` buffers described by
   * the struct iovec array `iov` (absolute addresses), filling each before the next. Returns its
   * length, 0 when none is waiting, -errno on error.
   */
  readv(iov: Buffer, count: number): number {
    const r = native.readvAt(this.fd, iov, count);
    if (r > 0) {
      this.received++;
      return r;
    }
    if (r === -EBADFD) this.gone = true;
    return r === -EAGAIN ? 0 : r;
  }

  /** Writes one frame gathered from the `count` buffers of `iov` (`len` bytes in all); false when refused. */
  writev(iov: Buffer, count: number, len: number): boolean {
    const r = native.writevAt(this.fd, iov, count);
    if (r === len) {
      this.sent++;
      return true;
    }
    if (r === -EBADFD) this.gone = true;
    this.writeErrors++;
    return false;
  }

  /** Writes one frame of `len` bytes from address-space offset `src`; false when refused. */
  write(src: number, len: number): boolean {
    const r = native.writeAt(this.fd, this.sp.address + src, len);
    if (r === len) {
      this.sent++;
      return true;
    }
    this.writeErrors++;
    return false;
  }

  /** Waits up to `timeoutMs` for a frame to read; true when one is there. */
  wait(timeoutMs: number): boolean {
    return native.poll(this.pollfd, 1, timeoutMs) > 0;
  }

  /** Closes the descriptor; `remove` also deletes a persistent device. */
  close(remove = false): void {
    if (this.closed) return;
    this.closed = true;
    if (remove && this.persistent) {
      try {
        native.ioctlValue(this.fd, TUNSETPERSIST, 0);
        this.persistent = false;
      } catch { /* already gone */ }
    }
    if (this.owned) native.closeFd(this.fd);
  }
}

/** Deletes persistent TAP `name` (attaches, clears persist, closes); ENXIO when missing. */
export function removeTap(name: string): void {
  const tap = TapDevice.open(name, { existing: true, up: false });
  tap.persistent = true;
  tap.close(true);
}
