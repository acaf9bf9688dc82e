/**
 * AF_PACKET sockets with memory-mapped rings, mapped into the calling thread's address space
 * (src/memory/space.ts) so frames are copied between the kernel's ring and netmap buffers with one
 * copyWithin and no allocation.
 *
 *  - PacketReceiver: an RX ring, either TPACKET_V3 (blocks of packed frames, retired by the kernel
 *    when full or after `retireMs`: fewest hand-overs, for capture) or, with `perFrame`,
 *    TPACKET_V2 (each frame handed over as soon as it is written: no added latency, for
 *    forwarding; a frame longer than a ring frame comes whole through the socket's queue);
 *    optional fanout so that several receivers share one interface;
 *    PACKET_IGNORE_OUTGOING so that frames leaving the interface (our own included) are not
 *    received; optional classic-BPF filter that drops frames carrying a given skb mark.
 *  - PacketTransmitter: TPACKET_V2 TX ring; frames are filled in order and handed to the kernel
 *    with one sendto(NULL, MSG_DONTWAIT) per batch. PACKET_QDISC_BYPASS (default on) sends straight
 *    to the driver: no qdisc, no tc egress, no taps — so no packet socket, ours included, sees
 *    these frames as outgoing. PACKET_LOSS: a malformed frame is dropped, not a ring stall.
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { space, shmDirectory, type AddressSpace } from '../memory/space.js';
import { NetmapError, assert, fail } from '../errors.js';
import { interfaceIndex } from './ifinfo.js';
import { completeChecksum } from './csum.js';

const ETH_P_ALL_BE = 0x0300; // htons(ETH_P_ALL)
const PACKET_ADD_MEMBERSHIP = 1, PACKET_RX_RING = 5, PACKET_STATISTICS = 6, PACKET_VERSION = 10;
const PACKET_TX_RING = 13, PACKET_LOSS = 14, PACKET_FANOUT = 18, PACKET_QDISC_BYPASS = 20;
const PACKET_IGNORE_OUTGOING = 23, PACKET_VNET_HDR = 15, PACKET_COPY_THRESH = 7;
const SO_RCVBUFFORCE = 33, FIONBIO = 0x5421;
const TPACKET_V2 = 1, TPACKET_V3 = 2;
const PACKET_MR_PROMISC = 1;
const PACKET_FANOUT_FLAG_UNIQUEID = 0x2000;

export const FANOUT_HASH = 0, FANOUT_LB = 1, FANOUT_CPU = 2, FANOUT_QM = 5;

// TPACKET_V3 block descriptor (struct tpacket_block_desc + tpacket_hdr_v1)
const BD_STATUS = 8, BD_NUM_PKTS = 12, BD_FIRST = 16;
// struct tpacket3_hdr
const H3_NEXT = 0, H3_SEC = 4, H3_NSEC = 8, H3_SNAPLEN = 12, H3_LEN = 16, H3_STATUS = 20, H3_MAC = 24;
const H3_VLAN_TCI = 32, H3_VLAN_TPID = 36;
// struct tpacket2_hdr
const H2_STATUS = 0, H2_LEN = 4, H2_SNAPLEN = 8, H2_MAC = 12, H2_SEC = 16, H2_NSEC = 20, H2_VLAN_TCI = 24, H2_VLAN_TPID = 26;
const TX_DATA_OFFSET = 32; // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
/**
 * x86 keeps stores in order and loads in order (TSO), so the status word of a TX frame, or of an
 * RX frame of a per-frame ring, can be written and read with plain accesses there:
 * Atomics.load/store on a non-shared array are not inlined by V8 and cost a builtin call per
 * frame. Elsewhere the Atomics give the ordering.
 */
const STRONG_ORDER = process.arch === 'x64' || process.arch === 'ia32';
export const VNET_HDR_LEN = 10; // struct virtio_net_hdr: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset u16
const VNET_HDR_LEN_FIELD = 2;

const TP_STATUS_USER = 1, TP_STATUS_COPY = 2, TP_STATUS_CSUMNOTREADY = 8, TP_STATUS_VLAN_VALID = 0x10, TP_STATUS_VLAN_TPID_VALID = 0x40;
const TP_STATUS_AVAILABLE = 0, TP_STATUS_SEND_REQUEST = 1, TP_STATUS_WRONG_FORMAT = 4;

/** Frame status bits a receiver reports (subset of TP_STATUS_*). */
export const RX_CSUM_NOT_READY = TP_STATUS_CSUMNOTREADY, RX_VLAN_VALID = TP_STATUS_VLAN_VALID;

function sockaddrLl(protocolBe: number, ifindex: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(native.AF_PACKET, 0);
  b.writeUInt16LE(protocolBe, 2); // already in network order as a little-endian u16
  b.writeInt32LE(ifindex, 4);
  return b;
}

/** Opens a raw AF_PACKET socket that receives nothing until bound; EPERM carries a hint. */
function packetSocket(ifname: string): number {
  try {
    return native.socket(native.AF_PACKET, native.SOCK_RAW, 0);
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'EPERM' || e.code === 'EACCES')) {
      fail('EPERM', `cannot open a packet socket for '${ifname}': raw packet access needs root or CAP_NET_RAW`);
    }
    throw e;
  }
}

function setPromisc(fd: number, ifindex: number): void {
  const mreq = Buffer.alloc(16);
  mreq.writeInt32LE(ifindex, 0);
  mreq.writeUInt16LE(PACKET_MR_PROMISC, 4);
  native.setsockoptBuffer(fd, native.SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
}

/** Classic BPF program: drop frames whose skb->mark equals `mark`, accept the rest. */
function dropMarkFilter(mark: number): Buffer {
  // ld [SKF_AD_OFF + SKF_AD_MARK]; jeq #mark, drop, accept; accept: ret #-1; drop: ret #0
  const insns: Array<[number, number, number, number]> = [
    [0x20, 0, 0, 0xfffff014],
    [0x15, 1, 0, mark >>> 0],
    [0x06, 0, 0, 0xffffffff],
    [0x06, 0, 0, 0],
  ];
  const prog = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, jt, jf, k], i) => {
    prog.writeUInt16LE(code, i * 8);
    prog.writeUInt8(jt, i * 8 + 2);
    prog.writeUInt8(jf, i * 8 + 3);
    prog.writeUInt32LE(k, i * 8 + 4);
  });
  return prog;
}

function attachFilter(fd: number, prog: Buffer): void {
  // struct sock_fprog { u16 len; (pad) ; struct sock_filter *filter }
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(prog.length / 8, 0);
  fprog.writeBigUInt64LE(BigInt(native.bufferAddress(prog)), 8);
  native.setsockoptBuffer(fd, native.SOL_SOCKET, native.SO_ATTACH_FILTER, fprog);
}

/**
 * Undoes a half-built packet ring (its mapping and socket) and rethrows `e` as a NetmapError
 * naming the interface; ENODEV (the interface vanished meanwhile) becomes ENXIO.
 */
function ringSetupFailed(e: unknown, sp: AddressSpace, fd: number, mapped: number, bytes: number, ifname: string, what: string): never {
  if (mapped >= 0) sp.unmapLocal(mapped, bytes);
  native.closeFd(fd);
  if (e instanceof NetmapError && e.code === 'ENODEV') fail('ENXIO', `interface '${ifname}' went away`);
  if (e instanceof NetmapError) fail(e.code, `cannot set up a ${what} ring on '${ifname}': ${e.message}`);
  throw e;
}

/** The smallest power of two not below `n` (ring frame and block sizes). */
export function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function checkCount(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) fail('EINVAL', `${what} must be an integer in [${min}, ${max}], not ${value}`);
  return value;
}

export interface ReceiverOptions {
  /** Bytes per block (multiple of 4096, power of two; default 32 KiB, or the frame size if larger). */
  blockSize?: number;
  /** Number of blocks (default: 8 MiB worth, 256 blocks of 32 KiB). Blocks are handed over when
   * full or after retireMs, so at low rates the ring holds about blockCount x retireMs of traffic:
   * many small blocks ride out pauses of the receiving thread. */
  blockCount?: number;
  /** Largest frame kept whole (default 2048; bigger MTUs need more). */
  frameSize?: number;
  /** A block with frames in it is handed to us at the latest after this many ms (default 1). */
  retireMs?: number;
  /** Join fanout group `group` (-1: create a new group, see `fanoutGroup`) with mode `fanoutMode`. */
  fanoutGroup?: number;
  fanoutMode?: number;
  /** Put the interface in promiscuous mode while the socket is open (default true). */
  promisc?: boolean;
  /** Do not receive frames leaving the interface (default true). */
  ignoreOutgoing?: boolean;
  /** Drop frames whose skb mark is this value (frames we inject into the host stack). */
  dropMark?: number;
  /**
   * Ask for a virtio-net header before each frame (PACKET_VNET_HDR): GSO super-frames are then
   * kept whole (up to the block size) with `gsoType`/`gsoSize` set, for GsoSplitter to cut.
   */
  vnetHdr?: boolean;
  /**
   * TPACKET_V2 instead of V3: each frame is handed over as soon as the kernel has written it
   * (V3 waits until a block is full or retireMs has passed, up to a millisecond per hop at low
   * rates). The ring holds blockCount x (blockSize / frameSize) frames; a frame that does not fit
   * one (a GSO super-frame) is read whole from the socket's queue (PACKET_COPY_THRESH).
   */
  perFrame?: boolean;
}

/** Largest frame read from the socket queue in perFrame mode (a 64 KiB GSO frame and its header). */
const QUEUED_FRAME_MAX = 1 << 17;

export interface ReceiverStats {
  /** Frames the kernel put in the ring. */
  packets: number;
  /** Frames the kernel dropped because the ring was full. */
  drops: number;
}

/**
 * TPACKET_V3 receive ring on one interface. Use:
 *   while ((h = rx.next()) >= 0) { copy rx.length bytes from rx.data ... }
 * next() releases the previous block to the kernel once every frame in it has been handed out, so
 * a frame stays valid only until the following next() call.
 */
export class PacketReceiver {
  readonly fd: number;
  readonly ifname: string;
  readonly ifindex: number;
  readonly blockSize: number;
  readonly blockCount: number;
  readonly frameSize: number;
  /** Fanout group id (-1 when not in a fanout group). */
  readonly fanoutGroup: number;
  /** Offset of the ring in the address space. */
  readonly ringOffset: number;
  readonly ringBytes: number;
  private readonly sp: AddressSpace;
  private readonly i32: Int32Array;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private block = 0;
  /** Frames of the current block not yet handed out; -1 when no block is held. */
  private left = -1;
  /** Offset of the next frame header in the current block. */
  private cursor = 0;
  private closed = false;
  private readonly pollfd = Buffer.alloc(8);
  private readonly statsBuf = Buffer.alloc(12);
  private statPackets = 0;
  private statDrops = 0;

  // Properties of the frame returned by the last next(), valid until the next call.
  /** Offset of the frame's first byte (Ethernet header) in the address space. */
  data = 0;
  /** Bytes present in the ring (may be less than `wireLength` when truncated). */
  length = 0;
  /** Length of the frame on the wire. */
  wireLength = 0;
  /** TP_STATUS_* bits of the frame (RX_CSUM_NOT_READY, RX_VLAN_VALID ...). */
  status = 0;
  /** VLAN tag taken off by the driver (valid when status has RX_VLAN_VALID): tci | tpid << 16. */
  vlan = 0;
  sec = 0;
  nsec = 0;
  /** Frames whose partial TCP/UDP checksum copyFrame() completed. */
  checksumsCompleted = 0;
  /** With vnetHdr: GSO type (GSO_* of gso.ts, 0 none) and segment payload size of the frame. */
  gsoType = 0;
  gsoSize = 0;
  readonly vnetHdr: boolean;
  /** TPACKET_V2, one frame at a time (see ReceiverOptions.perFrame). */
  readonly perFrame: boolean;
  /** perFrame: frames in the ring, and the one handed out last (released by the next call; -1). */
  private readonly frameCount: number;
  private held = -1;
  /** perFrame: where a frame read from the socket queue is put (a local mapping; -1 none). */
  private queuedAt = -1;
  /** perFrame, nextKept(): the first frame kept since the last release(), and how many. */
  private keepFirst = 0;
  private kept = 0;
  /** Whether the frame returned by the last next()/nextKept() was read from the socket queue. */
  fromQueue = false;

  constructor(ifname: string, opts: ReceiverOptions = {}) {
    this.ifname = ifname;
    this.perFrame = opts.perFrame === true;
    this.ifindex = interfaceIndex(ifname);
    this.vnetHdr = opts.vnetHdr === true;
    const frame = pow2AtLeast(checkCount(opts.frameSize ?? 2048, 128, 1 << 24, 'frame size'));
    this.blockSize = checkCount(opts.blockSize ?? Math.max(1 << 15, frame), 4096, 1 << 24, 'block size');
    if ((this.blockSize & (this.blockSize - 1)) !== 0) fail('EINVAL', `block size ${this.blockSize} is not a power of two`);
    if (frame > this.blockSize) fail('EINVAL', `frame size ${frame} is larger than the block size ${this.blockSize}`);
    this.frameSize = frame;
    this.blockCount = checkCount(opts.blockCount ?? Math.max(8, Math.floor((8 << 20) / this.blockSize)), 2, 4096, 'block count');
    const retire = checkCount(opts.retireMs ?? 1, 1, 10000, 'block retire timeout (ms)');
    this.ringBytes = this.blockSize * this.blockCount;
    this.frameCount = (this.blockSize / this.frameSize) * this.blockCount;
    this.sp = space();
    this.i32 = this.sp.i32;
    this.u32 = this.sp.u32;
    this.u16 = this.sp.u16;

    const fd = packetSocket(ifname);
    this.fd = fd;
    let mapped = -1;
    try {
      native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VERSION, this.perFrame ? TPACKET_V2 : TPACKET_V3);
      if (opts.vnetHdr === true) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VNET_HDR, 1);
      const req = Buffer.alloc(this.perFrame ? 16 : 28);
      req.writeUInt32LE(this.blockSize, 0);
      req.writeUInt32LE(this.blockCount, 4);
      req.writeUInt32LE(this.frameSize, 8);
      req.writeUInt32LE(this.frameCount, 12);
      if (!this.perFrame) {
        req.writeUInt32LE(retire, 16); // tp_retire_blk_tov
        req.writeUInt32LE(0, 20); // tp_sizeof_priv
        req.writeUInt32LE(0, 24); // tp_feature_req_word
      }
      native.setsockoptBuffer(fd, native.SOL_PACKET, PACKET_RX_RING, req);
      mapped = this.sp.mapLocal(fd, this.ringBytes);
      this.ringOffset = mapped;
      if (this.perFrame) this.setUpQueuedFrames(fd);
      if (opts.ignoreOutgoing ?? true) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
      if (opts.dropMark !== undefined) attachFilter(fd, dropMarkFilter(opts.dropMark));
      native.bind(fd, sockaddrLl(ETH_P_ALL_BE, this.ifindex));
      if (opts.promisc ?? true) setPromisc(fd, this.ifindex);
      let group = -1;
      if (opts.fanoutGroup !== undefined) {
        const mode = opts.fanoutMode ?? FANOUT_HASH;
        if (opts.fanoutGroup < 0) {
          native.setsockoptInt(fd, native.SOL_PACKET, PACKET_FANOUT, (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16);
          const out = Buffer.alloc(4);
          native.getsockoptBuffer(fd, native.SOL_PACKET, PACKET_FANOUT, out);
          group = out.readUInt32LE(0) & 0xffff;
        } else {
          group = checkCount(opts.fanoutGroup, 0, 0xffff, 'fanout group');
          native.setsockoptInt(fd, native.SOL_PACKET, PACKET_FANOUT, group | (mode << 16));
        }
      }
      this.fanoutGroup = group;
    } catch (e) {
      ringSetupFailed(e, this.sp, fd, mapped, this.ringBytes, ifname, 'receive');
    }
    this.pollfd.writeInt32LE(fd, 0);
    this.pollfd.writeInt16LE(native.POLLIN, 4);
  }

  /**
   * Hands out the next received frame: returns the offset of its Ethernet header in the address
   * space (also in `data`) with `length`, `wireLength`, `status`, `vlan` set; -1 when none is ready.
   */
  next(): number {
    if (this.perFrame) return this.nextFrame(false);
    if (this.left > 0) {
      const h = this.cursor;
      this.left--;
      if (this.left > 0) this.cursor = h + this.u32[(h + H3_NEXT) >>> 2]!;
      return this.take(h);
    }
    if (this.left === 0) this.releaseBlock();
    const bd = this.ringOffset + this.block * this.blockSize;
    // Acquire: the kernel fills the block before setting TP_STATUS_USER.
    for (let tries = 0; tries < 2; tries++) {
      if ((Atomics.load(this.i32, (bd + BD_STATUS) >>> 2) & TP_STATUS_USER) === 0) return -1;
      const n = this.u32[(bd + BD_NUM_PKTS) >>> 2]!;
      if (n === 0) {
        this.left = 0;
        this.releaseBlock();
        return -1;
      }
      const h = bd + this.u32[(bd + BD_FIRST) >>> 2]!;
      this.left = n - 1;
      if (this.left > 0) this.cursor = h + this.u32[(h + H3_NEXT) >>> 2]!;
      return this.take(h);
    }
    return -1;
  }

  /**
   * perFrame mode, for forwarders: like next(), but the frame stays ours, and valid, until
   * release(), so that a batch of frames can be forwarded from where they lie. A frame read from
   * the socket queue (`fromQueue`) is valid only until the next call. Do not mix with next()
   * between two release() calls.
   */
  nextKept(): number {
    assert(this.perFrame, 'nextKept() needs a perFrame receiver');
    return this.nextFrame(true);
  }

  /** Gives back every frame nextKept() handed out. */
  release(): void {
    let f = this.keepFirst;
    for (let i = 0; i < this.kept; i++) {
      const w = (this.ringOffset + f * this.frameSize + H2_STATUS) >>> 2;
      if (STRONG_ORDER) this.i32[w] = 0;
      else Atomics.store(this.i32, w, 0);
      f = f + 1 === this.frameCount ? 0 : f + 1;
    }
    this.kept = 0;
  }

  /** next() in perFrame mode: the frame at `block` (here a frame index) if the kernel is done with it. */
  private nextFrame(keep: boolean): number {
    if (this.held >= 0) this.releaseFrame();
    const h = this.ringOffset + this.block * this.frameSize;
    // Acquire: the kernel writes the frame before setting TP_STATUS_USER.
    const st = STRONG_ORDER ? this.i32[(h + H2_STATUS) >>> 2]! : Atomics.load(this.i32, (h + H2_STATUS) >>> 2);
    if ((st & TP_STATUS_USER) === 0) return -1;
    if (keep) {
      if (this.kept === 0) this.keepFirst = this.block;
      this.kept++;
    } else {
      this.held = this.block;
    }
    this.block = this.block + 1 === this.frameCount ? 0 : this.block + 1;
    const u32 = this.u32, u16 = this.u16;
    this.length = u32[(h + H2_SNAPLEN) >>> 2]!;
    this.wireLength = u32[(h + H2_LEN) >>> 2]!;
    this.status = st;
    this.sec = u32[(h + H2_SEC) >>> 2]!;
    this.nsec = u32[(h + H2_NSEC) >>> 2]!;
    if ((st & TP_STATUS_VLAN_VALID) !== 0) {
      const tpid = (st & TP_STATUS_VLAN_TPID_VALID) !== 0 ? u16[(h + H2_VLAN_TPID) >>> 1]! : 0x8100;
      this.vlan = u16[(h + H2_VLAN_TCI) >>> 1]! | (tpid << 16);
    } else {
      this.vlan = 0;
    }
    let data = h + u16[(h + H2_MAC) >>> 1]!;
    this.fromQueue = false;
    if ((st & TP_STATUS_COPY) !== 0) {
      // the whole frame waits on the socket queue (virtio-net header first, if asked for)
      const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
      const n = native.readAt(this.fd, this.sp.absolute(this.queuedAt), QUEUED_FRAME_MAX); // non-blocking
      if (n >= hdr + 14 && n - hdr <= this.wireLength) {
        data = this.queuedAt + hdr;
        this.length = n - hdr;
        this.fromQueue = true;
      }
      // else: keep the truncated ring copy (length < wireLength: the caller drops it)
    }
    return this.settle(data);
  }

  private releaseFrame(): void {
    const w = (this.ringOffset + this.held * this.frameSize + H2_STATUS) >>> 2;
    if (STRONG_ORDER) this.i32[w] = 0; // after our reads of the frame
    else Atomics.store(this.i32, w, 0);
    this.held = -1;
  }

  private take(h: number): number {
    const u32 = this.u32;
    this.length = u32[(h + H3_SNAPLEN) >>> 2]!;
    this.wireLength = u32[(h + H3_LEN) >>> 2]!;
    const st = u32[(h + H3_STATUS) >>> 2]!;
    this.status = st;
    this.sec = u32[(h + H3_SEC) >>> 2]!;
    this.nsec = u32[(h + H3_NSEC) >>> 2]!;
    if ((st & TP_STATUS_VLAN_VALID) !== 0) {
      const tpid = (st & TP_STATUS_VLAN_TPID_VALID) !== 0 ? this.u16[(h + H3_VLAN_TPID) >>> 1]! : 0x8100;
      this.vlan = (u32[(h + H3_VLAN_TCI) >>> 2]! & 0xffff) | (tpid << 16);
    } else {
      this.vlan = 0;
    }
    return this.settle(h + this.u16[(h + H3_MAC) >>> 1]!);
  }

  /** Records where the current frame starts and, with vnetHdr, its GSO type and segment size. */
  private settle(data: number): number {
    this.data = data;
    if (this.vnetHdr) {
      // struct virtio_net_hdr just before the frame: flags u8, gso_type u8, hdr_len, gso_size ...
      const u8 = this.sp.u8;
      this.gsoType = u8[data - 9]!;
      this.gsoSize = u8[data - 6]! | (u8[data - 5]! << 8);
    }
    return data;
  }

  /** Gives the held block back to the kernel (done by next() on its own). */
  private releaseBlock(): void {
    if (this.left < 0) return;
    const bd = this.ringOffset + this.block * this.blockSize;
    Atomics.store(this.i32, (bd + BD_STATUS) >>> 2, 0);
    this.block = this.block + 1 === this.blockCount ? 0 : this.block + 1;
    this.left = -1;
  }

  /** Releases a block that has been completely handed out (call before sleeping). */
  flush(): void {
    if (this.perFrame) {
      if (this.held >= 0) this.releaseFrame();
      this.release();
      return;
    }
    if (this.left === 0) this.releaseBlock();
  }

  /**
   * Copies the current frame to address-space offset `dst` (at most `room` bytes), putting back a
   * VLAN tag the driver took off and completing a checksum the sender left partial; returns the
   * bytes written.
   */
  copyFrame(dst: number, room: number): number {
    const u8 = this.sp.u8;
    const src = this.data;
    let len = this.length;
    if ((this.status & TP_STATUS_VLAN_VALID) === 0 || len < 12) {
      if (len > room) len = room;
      u8.copyWithin(dst, src, src + len);
      if ((this.status & TP_STATUS_CSUMNOTREADY) !== 0 && len === this.wireLength) {
        if (completeChecksum(u8, dst, len)) this.checksumsCompleted++;
      }
      return len;
    }
    if (len + 4 > room) len = room - 4;
    u8.copyWithin(dst, src, src + 12);
    u8[dst + 12] = (this.vlan >>> 24) & 0xff;
    u8[dst + 13] = (this.vlan >>> 16) & 0xff;
    u8[dst + 14] = (this.vlan >>> 8) & 0xff;
    u8[dst + 15] = this.vlan & 0xff;
    u8.copyWithin(dst + 16, src + 12, src + len);
    if ((this.status & TP_STATUS_CSUMNOTREADY) !== 0 && len === this.wireLength) {
      if (completeChecksum(u8, dst, len + 4)) this.checksumsCompleted++;
    }
    return len + 4;
  }

  /** Whether a block is ready without blocking. */
  ready(): boolean {
    if (this.perFrame) return (Atomics.load(this.i32, (this.ringOffset + this.block * this.frameSize + H2_STATUS) >>> 2) & TP_STATUS_USER) !== 0;
    if (this.left > 0) return true;
    const blk = this.left === 0 ? (this.block + 1) % this.blockCount : this.block;
    const bd = this.ringOffset + blk * this.blockSize;
    return (Atomics.load(this.i32, (bd + BD_STATUS) >>> 2) & TP_STATUS_USER) !== 0;
  }

  /** Waits up to `timeoutMs` for frames; true when some are ready. */
  wait(timeoutMs: number): boolean {
    this.flush();
    if (this.ready()) return true;
    const r = native.poll(this.pollfd, 1, timeoutMs);
    return r > 0 && this.ready();
  }

  /** Kernel counters since open (PACKET_STATISTICS, accumulated: the kernel resets on read). */
  stats(): ReceiverStats {
    if (!this.closed) {
      native.getsockoptBuffer(this.fd, native.SOL_PACKET, PACKET_STATISTICS, this.statsBuf);
      this.statPackets += this.statsBuf.readUInt32LE(0);
      this.statDrops += this.statsBuf.readUInt32LE(4);
    }
    return { packets: this.statPackets, drops: this.statDrops };
  }

  close(): void {
    if (this.closed) return;
    this.stats();
    this.closed = true;
    native.closeFd(this.fd);
    this.sp.unmapLocal(this.ringOffset, this.ringBytes);
    if (this.queuedAt >= 0) this.sp.unmapLocal(this.queuedAt, QUEUED_FRAME_MAX);
  }

  /**
   * perFrame mode: frames longer than a ring frame are also queued whole on the socket
   * (PACKET_COPY_THRESH; the ring frame then has TP_STATUS_COPY) and read into a local mapping.
   * The socket is made non-blocking so that such a read never waits, and its queue large enough
   * for a few 64 KiB frames (SO_RCVBUFFORCE as root, else up to rmem_max).
   */
  private setUpQueuedFrames(fd: number): void {
    native.setsockoptInt(fd, native.SOL_PACKET, PACKET_COPY_THRESH, 1);
    try {
      native.setsockoptInt(fd, native.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20);
    } catch {
      native.setsockoptInt(fd, native.SOL_SOCKET, native.SO_RCVBUF, 4 << 20);
    }
    const on = Buffer.alloc(4);
    on.writeInt32LE(1, 0);
    native.ioctl(fd, FIONBIO, on);
    this.queuedAt = mapScratch(QUEUED_FRAME_MAX);
  }
}

let scratchCount = 0;

/**
 * `bytes` of private memory in the calling thread's address space (page aligned, zeroed), for
 * frames that are neither in a kernel ring nor in netmap buffers. Give back with
 * `space().unmapLocal(offset, bytes)`.
 */
export function mapScratch(bytes: number): number {
  // an unlinked file in the shared-memory directory: only the mapping keeps it
  const path = `${shmDirectory()}/scratch-${process.pid}-${native.gettid()}-${scratchCount++}`;
  const file = native.openFile(path, native.O_RDWR | native.O_CREAT | native.O_EXCL);
  try {
    fs.rmSync(path, { force: true });
    native.ftruncate(file, bytes);
    return space().mapLocal(file, bytes);
  } finally {
    native.closeFd(file);
  }
}

export interface TransmitterOptions {
  /** Ring frames (default 1024); each holds one frame of up to frameSize - 32 bytes. */
  frames?: number;
  /** Bytes per frame slot (power of two, default 2048). */
  frameSize?: number;
  /** Send straight to the driver, skipping qdisc, tc egress and taps (default true). */
  qdiscBypass?: boolean;
  /** skb mark put on every frame (SO_MARK), 0 for none. */
  mark?: number;
  /**
   * Send each frame with a virtio-net header whose hdr_len covers the whole frame (default
   * true), so the kernel copies it into the skb's linear part. Without one, tpacket attaches the
   * ring's pages as zero-copy fragments, which a veth (and anything that queues or forwards the
   * skb) must then copy out again into freshly allocated pages: per frame a page allocation,
   * a copy and a free, more than the one small copy this costs.
   */
  linear?: boolean;
}

/**
 * TPACKET_V2 transmit ring on one interface. Use:
 *   const at = tx.slot(); if (at >= 0) { write frame at `at`; tx.commit(len) } ... tx.kick()
 * `reclaim()` returns frames the kernel is done with; `free` says how many can be filled.
 */
export class PacketTransmitter {
  readonly fd: number;
  readonly ifname: string;
  readonly ifindex: number;
  readonly frames: number;
  readonly frameSize: number;
  /** Largest frame that fits a slot. */
  readonly maxFrame: number;
  readonly ringOffset: number;
  readonly ringBytes: number;
  private readonly sp: AddressSpace;
  private readonly i32: Int32Array;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  /** Offset of the frame's bytes in a ring frame (after the virtio-net header, if any). */
  private readonly dataOffset: number;
  private readonly linear: boolean;
  /** Next frame to fill. */
  private head = 0;
  /** Oldest frame handed to the kernel and not yet seen back. */
  private tail = 0;
  /** Frames filled or in flight (between tail and head). */
  private busy = 0;
  /** Frames committed since the last kick. */
  private unkicked = 0;
  private closed = false;
  /** Socket without a ring for frames sent whole with their virtio-net header (-1: not yet). */
  private wholeFd = -1;
  private readonly bypass: boolean;
  private readonly mark: number;
  /** A kicked frame was found still queued: the next kick() makes a call even with nothing new. */
  private stuck = false;
  private readonly pollfd = Buffer.alloc(8);
  /** Frames handed to the kernel / kicks made / kicks that failed (not EAGAIN). */
  sent = 0;
  kicks = 0;
  kickErrors = 0;
  lastError = 0;

  constructor(ifname: string, opts: TransmitterOptions = {}) {
    this.ifname = ifname;
    this.ifindex = interfaceIndex(ifname);
    this.frameSize = pow2AtLeast(checkCount(opts.frameSize ?? 2048, 128, 1 << 16, 'frame size'));
    const frames = checkCount(opts.frames ?? 1024, 2, 1 << 16, 'ring frames');
    const blockSize = Math.max(4096, this.frameSize);
    const perBlock = blockSize / this.frameSize;
    const blocks = Math.ceil(frames / perBlock);
    this.frames = blocks * perBlock;
    this.linear = opts.linear ?? true;
    this.bypass = opts.qdiscBypass ?? true;
    this.mark = opts.mark ?? 0;
    this.dataOffset = TX_DATA_OFFSET + (this.linear ? VNET_HDR_LEN : 0);
    this.maxFrame = this.frameSize - this.dataOffset;
    this.ringBytes = blocks * blockSize;
    this.sp = space();
    this.i32 = this.sp.i32;
    this.u32 = this.sp.u32;
    this.u16 = this.sp.u16;

    const fd = packetSocket(ifname);
    this.fd = fd;
    let mapped = -1;
    try {
      native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VERSION, TPACKET_V2);
      native.setsockoptInt(fd, native.SOL_PACKET, PACKET_LOSS, 1);
      // (before the ring: the kernel refuses PACKET_VNET_HDR once a ring exists)
      this.setSendOptions(fd, this.linear);
      const req = Buffer.alloc(16);
      req.writeUInt32LE(blockSize, 0);
      req.writeUInt32LE(blocks, 4);
      req.writeUInt32LE(this.frameSize, 8);
      req.writeUInt32LE(this.frames, 12);
      native.setsockoptBuffer(fd, native.SOL_PACKET, PACKET_TX_RING, req);
      mapped = this.sp.mapLocal(fd, this.ringBytes);
      this.ringOffset = mapped;
      // Protocol 0: the socket receives nothing (no per-frame clone for an unread queue).
      native.bind(fd, sockaddrLl(0, this.ifindex));
    } catch (e) {
      ringSetupFailed(e, this.sp, fd, mapped, this.ringBytes, ifname, 'transmit');
    }
    this.pollfd.writeInt32LE(fd, 0);
    this.pollfd.writeInt16LE(native.POLLOUT, 4);
  }

  /** Frames that can be filled now (after the last reclaim). */
  get free(): number {
    return this.frames - this.busy;
  }

  /** Frames handed out and not yet completed by the kernel. */
  get inFlight(): number {
    return this.busy;
  }

  /** Collects frames the kernel has finished with; returns the number of free frames. */
  reclaim(): number {
    const i32 = this.i32;
    let t = this.tail;
    let n = this.busy - this.unkicked;
    while (n > 0) {
      const h = this.ringOffset + t * this.frameSize;
      const st = STRONG_ORDER ? i32[(h + H2_STATUS) >>> 2]! : Atomics.load(i32, (h + H2_STATUS) >>> 2);
      if (st !== TP_STATUS_AVAILABLE) {
        // A kicked frame still waiting to be sent (the kernel stopped early): kick again later.
        if (st === TP_STATUS_SEND_REQUEST) this.stuck = true;
        if (st !== TP_STATUS_WRONG_FORMAT) break;
        Atomics.store(i32, (h + H2_STATUS) >>> 2, TP_STATUS_AVAILABLE);
      }
      t = t + 1 === this.frames ? 0 : t + 1;
      this.busy--;
      n--;
    }
    this.tail = t;
    return this.frames - this.busy;
  }

  /** Offset (in the address space) where the next frame's bytes go; -1 when the ring is full. */
  slot(): number {
    if (this.busy === this.frames) return -1;
    return this.ringOffset + this.head * this.frameSize + this.dataOffset;
  }

  /** Queues the frame written at slot() with `len` bytes (1..maxFrame). */
  commit(len: number): void {
    assert(this.busy < this.frames, 'commit on a full transmit ring');
    assert(len > 0 && len <= this.maxFrame, 'frame length out of range');
    const h = this.ringOffset + this.head * this.frameSize;
    if (this.linear) {
      // virtio-net header: no GSO, no checksum request, hdr_len = the whole frame (the rest of
      // the header stays zero: the kernel does not write into a TX frame)
      this.u16[(h + TX_DATA_OFFSET + VNET_HDR_LEN_FIELD) >>> 1] = len;
      this.u32[(h + H2_LEN) >>> 2] = len + VNET_HDR_LEN;
    } else this.u32[(h + H2_LEN) >>> 2] = len;
    if (STRONG_ORDER) this.i32[(h + H2_STATUS) >>> 2] = TP_STATUS_SEND_REQUEST; // after the length
    else Atomics.store(this.i32, (h + H2_STATUS) >>> 2, TP_STATUS_SEND_REQUEST);
    this.head = this.head + 1 === this.frames ? 0 : this.head + 1;
    this.busy++;
    this.unkicked++;
  }

  /** Copies `len` bytes from address-space offset `src` into the ring; false when full or too long. */
  send(src: number, len: number): boolean {
    const at = this.slot();
    if (at < 0 || len <= 0 || len > this.maxFrame) return false;
    this.sp.u8.copyWithin(at, src, src + len);
    this.commit(len);
    return true;
  }

  /** Hands every queued frame to the kernel with one system call. */
  kick(): void {
    if (this.unkicked === 0 && !this.stuck) return;
    this.stuck = false;
    const r = native.sendto(this.fd, 0, 0, native.MSG_DONTWAIT);
    this.kicks++;
    if (r < 0 && r !== -11 /* EAGAIN */) {
      this.kickErrors++;
      this.lastError = -r;
    }
    this.sent += this.unkicked;
    this.unkicked = 0;
  }

  /**
   * Sends one frame whole, bypassing the ring: `total` bytes at space offset `hdrAt`, a
   * virtio-net header (10 bytes) and the frame after it. For GSO super-frames, which a ring
   * frame cannot hold: one copy into one skb, which stays one packet as far as the device lets
   * it (a veth hands it on whole; a NIC's TSO or software GSO cuts it for the wire), instead of
   * a ring frame, skb and kick per segment. What was queued in the ring goes first. Returns
   * false if the kernel refused it (a header it does not accept, no buffer space) or the socket
   * could not be made.
   */
  sendWhole(hdrAt: number, total: number): boolean {
    if (this.wholeFd === -1) {
      // made on first use; if it cannot be made, whole frames are refused from then on (the
      // caller cuts them), rather than thrown at a forwarder in the middle of a batch
      let fd = -1;
      try {
        fd = packetSocket(this.ifname);
        this.setSendOptions(fd, true);
        native.bind(fd, sockaddrLl(0, this.ifindex));
        this.wholeFd = fd;
      } catch {
        if (fd >= 0) native.closeFd(fd);
        this.wholeFd = -2;
      }
    }
    if (this.wholeFd < 0) return false;
    this.kick();
    return native.sendto(this.wholeFd, this.sp.absolute(hdrAt), total, native.MSG_DONTWAIT) === total;
  }

  /** The ring socket's sending options, on `fd`: qdisc bypass, virtio-net header, skb mark. */
  private setSendOptions(fd: number, vnetHdr: boolean): void {
    if (this.bypass) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    if (vnetHdr) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VNET_HDR, 1);
    if (this.mark !== 0) native.setsockoptInt(fd, native.SOL_SOCKET, native.SO_MARK, this.mark | 0);
  }

  /** Waits up to `timeoutMs` for room in the ring; true when there is some. */
  wait(timeoutMs: number): boolean {
    if (this.reclaim() > 0) return true;
    native.poll(this.pollfd, 1, timeoutMs);
    return this.reclaim() > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.closeFd(this.fd);
    if (this.wholeFd >= 0) native.closeFd(this.wholeFd);
    this.wholeFd = -2;
    this.sp.unmapLocal(this.ringOffset, this.ringBytes);
  }
}
