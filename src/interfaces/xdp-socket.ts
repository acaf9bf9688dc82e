/**
 * AF_XDP sockets through raw system calls (no libxdp): the UMEM registration, the four rings
 * (RX, TX, fill, completion) mapped into this thread's address space, the bind with zero-copy
 * where the driver has it, copy mode otherwise.
 *
 * The UMEM is memory the caller already has mapped (netmap-ts: the buffer pool of a region, so a
 * UMEM address is a buffer's offset from buffer 0). It is registered in unaligned-chunk mode: a
 * fill-ring address is then any address, and the kernel writes the frame XDP_PACKET_HEADROOM (256)
 * bytes after it. Posting `buffer - 256` puts a received frame at the start of the buffer, where a
 * netmap slot expects it, with no copy and no slot offset. The headroom it skips is the end of the
 * previous buffer, which the kernel leaves alone in copy mode (no metadata is written) — so frames
 * up to chunk - 256 bytes (1792 with 2 KiB buffers) fit one buffer; with XDP_USE_SG longer ones
 * come as several descriptors (XDP_PKT_CONTD), which become NS_MOREFRAG chains.
 *
 * Ring words are shared with the kernel: producer and consumer indices are free-running u32,
 * read and written with Atomics (sequentially consistent: the barriers the kernel's rings need).
 * Descriptor layouts: RX/TX {addr u64, len u32, options u32}, fill/completion {addr u64}.
 */
import { fail, NetmapError } from '../errors.js';
import * as native from '../native/index.js';
import { space, type AddressSpace } from '../memory/space.js';
import { pause } from '../memory/lock.js';

export const AF_XDP = 44, SOL_XDP = 283;
const XDP_MMAP_OFFSETS = 1, XDP_RX_RING = 2, XDP_TX_RING = 3, XDP_UMEM_REG = 4, XDP_UMEM_FILL_RING = 5;
const XDP_UMEM_COMPLETION_RING = 6, XDP_STATISTICS = 7, XDP_OPTIONS = 8;
export const XDP_SHARED_UMEM = 1, XDP_COPY = 2, XDP_ZEROCOPY = 4, XDP_USE_NEED_WAKEUP = 8, XDP_USE_SG = 16;
const XDP_UMEM_UNALIGNED_CHUNK_FLAG = 1;
const XDP_OPTIONS_ZEROCOPY = 1;
export const XDP_RING_NEED_WAKEUP = 1;
/** RX/TX descriptor option: more descriptors of this frame follow. */
export const XDP_PKT_CONTD = 1;
/** Bytes the kernel keeps in front of a received frame (XDP_PACKET_HEADROOM). */
export const XDP_HEADROOM = 256;
/** How long a bind that gets EBUSY is retried (the kernel releases a closed socket's queue later). */
const BIND_BUSY_MS = 1000;
const PGOFF_RX = 0, PGOFF_TX = 0x80000000, PGOFF_FILL = 0x100000000, PGOFF_COMPLETION = 0x180000000;

/** One ring of an AF_XDP socket as mapped here: word indices into sp.u32 and its geometry. */
export class XskRing {
  /** sp.u32 / sp.i32 index of the producer and consumer words, and of the flags word. */
  readonly prodWord: number;
  readonly consWord: number;
  readonly flagsWord: number;
  /** Space offset of descriptor 0. */
  readonly desc: number;
  readonly size: number;
  readonly mask: number;
  /** Bytes per descriptor (16 for RX/TX, 8 for fill/completion). */
  readonly descSize: number;
  readonly mapOffset: number;
  readonly mapLength: number;

  constructor(mapOffset: number, mapLength: number, off: { producer: number; consumer: number; desc: number; flags: number }, size: number, descSize: number) {
    this.mapOffset = mapOffset;
    this.mapLength = mapLength;
    this.prodWord = (mapOffset + off.producer) >>> 2;
    this.consWord = (mapOffset + off.consumer) >>> 2;
    this.flagsWord = (mapOffset + off.flags) >>> 2;
    this.desc = mapOffset + off.desc;
    this.size = size;
    this.mask = size - 1;
    this.descSize = descSize;
  }
}

export interface XskOptions {
  ifindex: number;
  queue: number;
  /** Space offset of the UMEM's first byte (page aligned) and its length. */
  umemOffset: number;
  umemLength: number;
  /** Chunk size: the buffer size (2048..page size). */
  chunkSize: number;
  /** Descriptors of each of the four rings (a power of two). */
  ringSize: number;
  /** Ask for XDP multi-buffer (XDP_USE_SG) (default true); retried without when refused. */
  multiBuffer?: boolean;
  /**
   * Share the UMEM of this socket (of the same interface, another queue) instead of registering
   * it again (XDP_SHARED_UMEM: the mode and options are that socket's; `sharedMultiBuffer` says
   * whether it has multi-buffer). umemOffset/umemLength are then not used.
   */
  sharedUmemFd?: number;
  sharedMultiBuffer?: boolean;
  /**
   * Give the socket this descriptor number (one that retire() left holding a placeholder), so
   * that whoever knows the old socket by its number (epoll sets, other handles) finds the new one.
   */
  fdNumber?: number;
  /**
   * A socket whose UMEM registration XskSocket.prepare started on a native thread, for the same
   * UMEM: taken over (its registration joined) instead of making and registering one here.
   */
  prepared?: PreparedUmem;
}

/** The UMEM registration's struct xdp_umem_reg: unaligned chunks, no extra headroom. */
function umemReg(sp: AddressSpace, o: { umemOffset: number; umemLength: number; chunkSize: number }): Buffer {
  const reg = Buffer.alloc(32);
  reg.writeBigUInt64LE(BigInt(sp.absolute(o.umemOffset)), 0);
  reg.writeBigUInt64LE(BigInt(o.umemLength), 8);
  reg.writeUInt32LE(o.chunkSize, 16);
  reg.writeUInt32LE(0, 20); // headroom: none beyond XDP_PACKET_HEADROOM
  reg.writeUInt32LE(XDP_UMEM_UNALIGNED_CHUNK_FLAG, 24);
  return reg;
}

/** Registers the UMEM on socket `fd`. */
function registerUmem(sp: AddressSpace, fd: number, o: XskOptions): void {
  native.setsockoptBuffer(fd, SOL_XDP, XDP_UMEM_REG, umemReg(sp, o));
}

/**
 * An AF_XDP socket whose UMEM registration runs on a native thread (XskSocket.prepare): the kernel
 * pins, and so allocates, every page of the UMEM then, tens of milliseconds for tens of MiB,
 * which overlap with the rest of an open (the split's and the XDP program's links). Taken over by
 * XskSocket.open (`prepared`), or given up with XskSocket.abandon.
 */
export interface PreparedUmem {
  readonly fd: number;
  readonly umemOffset: number;
  readonly umemLength: number;
  readonly chunkSize: number;
  /** The registration, until joined; null once taken over or given up. */
  call: native.BackgroundCall | null;
  taken: boolean;
}

export interface XskStats {
  rxDropped: number; rxInvalid: number; txInvalid: number; rxRingFull: number; fillEmpty: number; txRingEmpty: number;
}

/**
 * An AF_XDP socket bound to one queue of one interface, with its own UMEM registration over the
 * caller's memory, and RX, TX, fill and completion rings of `ringSize` descriptors each.
 */
export class XskSocket {
  readonly fd: number;
  readonly zeroCopy: boolean;
  readonly multiBuffer: boolean;
  readonly rx: XskRing;
  readonly tx: XskRing;
  readonly fill: XskRing;
  readonly comp: XskRing;
  private readonly sp: AddressSpace;
  private closed = false;

  private constructor(sp: AddressSpace, fd: number, rings: XskRing[], zeroCopy: boolean, multiBuffer: boolean) {
    this.sp = sp;
    this.fd = fd;
    [this.rx, this.tx, this.fill, this.comp] = rings as [XskRing, XskRing, XskRing, XskRing];
    this.zeroCopy = zeroCopy;
    this.multiBuffer = multiBuffer;
  }

  /**
   * Makes and binds the socket. The bind names neither XDP_COPY nor XDP_ZEROCOPY, so the kernel
   * binds zero-copy where the driver can and falls back to copy mode itself (one UMEM
   * registration, where asking zero-copy first would pin the memory twice); XDP_OPTIONS then says
   * which it is. Multi-buffer is asked for and dropped when refused. EBUSY from the bind (a socket
   * of this queue closed a moment ago is released by the kernel in the background) makes the bind
   * alone be retried, every millisecond, for up to a second (one RCU grace period and a work item
   * are usually 5-40 ms). Throws the bind's error (EBUSY: the queue has another socket; EINVAL: no such
   * queue).
   */
  /**
   * Makes an AF_XDP socket and starts registering the UMEM [umemOffset, +umemLength) of this
   * thread's address space with chunks of `chunkSize` on a native thread. Null when no socket
   * can be made here (the open that would take it over then reports why).
   */
  static prepare(o: { umemOffset: number; umemLength: number; chunkSize: number }): PreparedUmem | null {
    let fd = -1;
    try {
      fd = native.socket(AF_XDP, native.SOCK_RAW | native.SOCK_NONBLOCK, 0);
    } catch {
      return null;
    }
    const reg = umemReg(space(), o);
    const call = native.startCall('setsockopt', [fd, SOL_XDP, XDP_UMEM_REG, reg, reg.length], () => {});
    if (!call.threaded) { native.closeFd(fd); return null; } // no thread: the open registers it itself
    return { fd, umemOffset: o.umemOffset, umemLength: o.umemLength, chunkSize: o.chunkSize, call, taken: false };
  }

  /** Gives up a prepared socket that no open took over (waits for its registration, then closes it). */
  static abandon(p: PreparedUmem): void {
    if (p.taken) return;
    p.taken = true;
    p.call?.join();
    p.call = null;
    native.closeFd(p.fd);
  }

  static open(o: XskOptions): XskSocket {
    const attempts = o.multiBuffer !== false ? [XDP_USE_SG, 0] : [0];
    let last: unknown = null;
    for (const sg of attempts) {
      try {
        const sock = XskSocket.tryOpen(o, o.sharedUmemFd !== undefined ? XDP_SHARED_UMEM : XDP_USE_NEED_WAKEUP | sg);
        return o.fdNumber === undefined || o.fdNumber === sock.fd ? sock : sock.renumber(o.fdNumber);
      } catch (e) {
        last = e;
      }
      // only a refused multi-buffer is worth another try; anything else fails every attempt alike
      if (!(last instanceof NetmapError) || (last.code !== 'EOPNOTSUPP' && last.code !== 'EINVAL') || o.sharedUmemFd !== undefined) break;
    }
    throw last;
  }

  private static tryOpen(o: XskOptions, bindFlags: number): XskSocket {
    const sp = space();
    let fd = -1;
    const mapped: XskRing[] = [];
    const p = o.prepared;
    let ringOptions = [XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING, XDP_TX_RING];
    try {
      if (p !== undefined && !p.taken && o.sharedUmemFd === undefined && p.umemOffset === o.umemOffset && p.umemLength === o.umemLength && p.chunkSize === o.chunkSize) {
        p.taken = true;
        fd = p.fd;
        p.call?.join();
        p.call = null;
        // the thread's result is not known: a socket without a UMEM refuses a fill ring (EINVAL);
        // the registration is then made again here, for its errno
        try {
          native.setsockoptInt(fd, SOL_XDP, XDP_UMEM_FILL_RING, o.ringSize);
          ringOptions = ringOptions.slice(1);
        } catch (e) {
          if (!(e instanceof NetmapError) || e.code !== 'EINVAL') throw e;
          registerUmem(sp, fd, o);
        }
      } else {
        fd = native.socket(AF_XDP, native.SOCK_RAW | native.SOCK_NONBLOCK, 0);
        if (o.sharedUmemFd === undefined) registerUmem(sp, fd, o);
      }
      for (const opt of ringOptions) {
        native.setsockoptInt(fd, SOL_XDP, opt, o.ringSize);
      }
      // Where each ring's words are: read them, never assume them (they moved between kernels).
      const offs = Buffer.alloc(128);
      native.getsockoptBuffer(fd, SOL_XDP, XDP_MMAP_OFFSETS, offs);
      const ringOff = (i: number): { producer: number; consumer: number; desc: number; flags: number } => ({
        producer: Number(offs.readBigUInt64LE(i * 32)), consumer: Number(offs.readBigUInt64LE(i * 32 + 8)),
        desc: Number(offs.readBigUInt64LE(i * 32 + 16)), flags: Number(offs.readBigUInt64LE(i * 32 + 24)),
      });
      const layout: [number, number, number][] = [[0, PGOFF_RX, 16], [1, PGOFF_TX, 16], [2, PGOFF_FILL, 8], [3, PGOFF_COMPLETION, 8]];
      for (const [i, pgoff, descSize] of layout) {
        const off = ringOff(i);
        const length = off.desc + o.ringSize * descSize;
        const at = sp.mapLocal(fd, length, pgoff);
        mapped.push(new XskRing(at, length, off, o.ringSize, descSize));
      }
      const addr = Buffer.alloc(16);
      addr.writeUInt16LE(AF_XDP, 0);
      addr.writeUInt16LE(bindFlags, 2);
      addr.writeUInt32LE(o.ifindex, 4);
      addr.writeUInt32LE(o.queue, 8);
      addr.writeUInt32LE(o.sharedUmemFd ?? 0, 12);
      // EBUSY: the queue still has a socket. If it was closed a moment ago (a reopen), the kernel
      // lets go of the queue only after an RCU grace period and a work item that takes the RTNL
      // lock (xsk_destruct -> xp_release_deferred -> xp_clear_dev): retry the bind alone, every
      // millisecond (the UMEM stays registered, the rings mapped), for up to BIND_BUSY_MS.
      const deadline = Date.now() + BIND_BUSY_MS;
      for (;;) {
        try {
          native.bind(fd, addr);
          break;
        } catch (e) {
          if (!(e instanceof NetmapError) || e.code !== 'EBUSY' || Date.now() >= deadline) throw e;
          pause(1);
        }
      }
      let zeroCopy = false;
      try {
        const opt = Buffer.alloc(4);
        native.getsockoptBuffer(fd, SOL_XDP, XDP_OPTIONS, opt);
        zeroCopy = (opt.readUInt32LE(0) & XDP_OPTIONS_ZEROCOPY) !== 0;
      } catch { /* XDP_OPTIONS came with 5.3, after the automatic fallback to copy mode */ }
      const multiBuffer = o.sharedUmemFd !== undefined ? o.sharedMultiBuffer === true : (bindFlags & XDP_USE_SG) !== 0;
      return new XskSocket(sp, fd, mapped, zeroCopy, multiBuffer);
    } catch (e) {
      for (const r of mapped) sp.unmapLocal(r.mapOffset, r.mapLength);
      if (fd >= 0) native.closeFd(fd);
      if (e instanceof NetmapError && e.code === 'EAFNOSUPPORT') fail('EOPNOTSUPP', `AF_XDP sockets are not available in this kernel (CONFIG_XDP_SOCKETS)`);
      throw e;
    }
  }

  /** Kicks the kernel's TX (copy mode transmits in this call, up to 32 frames); returns 0 or -errno. */
  kick(): number {
    const r = native.sendto(this.fd, 0, 0, native.MSG_DONTWAIT);
    return r < 0 ? r : 0;
  }

  /** Wakes the driver's RX side (needed in zero-copy when the fill ring says so). */
  wakeRx(): void {
    native.readAt(this.fd, 0, 0);
  }

  /** Kernel counters (XDP_STATISTICS). */
  stats(): XskStats {
    const b = Buffer.alloc(48);
    try {
      native.getsockoptBuffer(this.fd, SOL_XDP, XDP_STATISTICS, b);
    } catch {
      return { rxDropped: 0, rxInvalid: 0, txInvalid: 0, rxRingFull: 0, fillEmpty: 0, txRingEmpty: 0 };
    }
    const n = (i: number): number => Number(b.readBigUInt64LE(i * 8));
    return { rxDropped: n(0), rxInvalid: n(1), txInvalid: n(2), rxRingFull: n(3), fillEmpty: n(4), txRingEmpty: n(5) };
  }

  /** This socket under descriptor number `fd` (dup3 onto it, closing what it held); this object is spent. */
  private renumber(fd: number): XskSocket {
    native.dup3(this.fd, fd);
    native.closeFd(this.fd);
    this.closed = true;
    return new XskSocket(this.sp, fd, [this.rx, this.tx, this.fill, this.comp], this.zeroCopy, this.multiBuffer);
  }

  /**
   * Closes the socket but keeps its descriptor number taken (it then names /dev/null), for a
   * socket remade in its place with `fdNumber` (or closeFd once given up).
   */
  retire(): number {
    if (this.closed) return -1;
    this.closed = true;
    for (const r of [this.rx, this.tx, this.fill, this.comp]) this.sp.unmapLocal(r.mapOffset, r.mapLength);
    const placeholder = native.openFile('/dev/null', native.O_RDONLY);
    try {
      native.dup3(placeholder, this.fd);
    } finally {
      native.closeFd(placeholder);
    }
    return this.fd;
  }

  close(): void {
    const fd = this.detach();
    if (fd >= 0) native.closeFd(fd);
  }

  /**
   * Unmaps the rings and gives the descriptor to the caller to close (-1 when closed already):
   * the close is what waits for the kernel's release (an RCU grace period), so several sockets
   * are closed at once (closeConcurrently). Until then the socket stays bound.
   */
  detach(): number {
    if (this.closed) return -1;
    this.closed = true;
    for (const r of [this.rx, this.tx, this.fill, this.comp]) this.sp.unmapLocal(r.mapOffset, r.mapLength);
    return this.fd;
  }
}
