/**
 * PacketReceiver: an AF_PACKET receive ring on one interface, either TPACKET_V3 (blocks of packed
 * frames, retired by the kernel when full or after `retireMs`: fewest hand-overs, for capture) or,
 * with `perFrame`, TPACKET_V2 (each frame handed over as soon as it is written: no added latency,
 * for forwarding; a frame longer than a ring frame comes whole through the socket's queue);
 * optional fanout so that several receivers share one interface; PACKET_IGNORE_OUTGOING so that
 * frames leaving the interface (our own included) are not received; optional classic-BPF filter
 * that drops frames carrying a given skb mark. Frames are copied from the kernel's ring into
 * netmap buffers with one copyWithin and no allocation. Socket set-up: packet-socket.ts.
 */
import * as native from '../native/index.js';
import { space, type AddressSpace } from '../memory/space.js';
import { assert, fail } from '../errors.js';
import { interfaceIndex } from './ifinfo.js';
import { completeChecksum } from './csum.js';
import {
  ETH_P_ALL_BE, PACKET_RX_RING, PACKET_STATISTICS, PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING, PACKET_COPY_THRESH,
  SO_RCVBUFFORCE, FIONBIO, TPACKET_V2, TPACKET_V3, FANOUT_HASH,
  BD_STATUS, BD_NUM_PKTS, BD_FIRST, H3_NEXT, H3_SEC, H3_NSEC, H3_SNAPLEN, H3_LEN, H3_STATUS, H3_MAC, H3_VLAN_TCI, H3_VLAN_TPID,
  H2_STATUS, H2_LEN, H2_SNAPLEN, H2_MAC, H2_SEC, H2_NSEC, H2_VLAN_TCI, H2_VLAN_TPID,
  STRONG_ORDER, VNET_HDR_LEN, TP_STATUS_USER, TP_STATUS_COPY, TP_STATUS_CSUMNOTREADY, TP_STATUS_VLAN_VALID,
  TP_STATUS_VLAN_TPID_VALID,
  openPacketRing, beginPacketRing, setPromisc, attachFilter, dropMarkFilter, joinFanout, pow2AtLeast, checkCount, mapScratch,
  type PacketRingStart, type PendingRing,
} from './packet-socket.js';

/** The ring geometry of `opts` and the steps up to the ring (shared by the constructor and begin()). */
function ringStart(ifname: string, opts: ReceiverOptions): PacketRingStart & { frameSize: number; blockSize: number; blockCount: number; frameCount: number } {
  const perFrame = opts.perFrame === true;
  const frame = pow2AtLeast(checkCount(opts.frameSize ?? 2048, 128, 1 << 24, 'frame size'));
  const blockSize = checkCount(opts.blockSize ?? Math.max(1 << 15, frame), 4096, 1 << 24, 'block size');
  if ((blockSize & (blockSize - 1)) !== 0) fail('EINVAL', `block size ${blockSize} is not a power of two`);
  if (frame > blockSize) fail('EINVAL', `frame size ${frame} is larger than the block size ${blockSize}`);
  const blockCount = checkCount(opts.blockCount ?? Math.max(8, Math.floor((8 << 20) / blockSize)), 2, 4096, 'block count');
  const retire = checkCount(opts.retireMs ?? 1, 1, 10000, 'block retire timeout (ms)');
  const frameCount = (blockSize / frame) * blockCount;
  const request = Buffer.alloc(perFrame ? 16 : 28);
  request.writeUInt32LE(blockSize, 0);
  request.writeUInt32LE(blockCount, 4);
  request.writeUInt32LE(frame, 8);
  request.writeUInt32LE(frameCount, 12);
  if (!perFrame) {
    request.writeUInt32LE(retire, 16); // tp_retire_blk_tov
    request.writeUInt32LE(0, 20); // tp_sizeof_priv
    request.writeUInt32LE(0, 24); // tp_feature_req_word
  }
  const vnetHdr = opts.vnetHdr === true;
  return {
    ifname, direction: 'receive', version: perFrame ? TPACKET_V2 : TPACKET_V3, ringOption: PACKET_RX_RING, request,
    ringBytes: blockSize * blockCount, options: `vnet-hdr=${vnetHdr}`,
    beforeRing: (socket) => {
      if (vnetHdr) native.setsockoptInt(socket, native.SOL_PACKET, PACKET_VNET_HDR, 1);
    },
    frameSize: frame, blockSize, blockCount, frameCount,
  };
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
  /** A ring begun ahead for the same interface and options (PacketReceiver.begin); taken over here. */
  begun?: PendingRing;
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

  /**
   * Makes the socket of a receiver with `opts` and starts its ring's set-up on a native thread
   * (it waits for an RCU grace period); the constructor given it as `begun` finishes it. Undo
   * with abandonPacketRing when no receiver is made after all.
   */
  static begin(ifname: string, opts: ReceiverOptions = {}): PendingRing {
    return beginPacketRing(ringStart(ifname, opts));
  }

  constructor(ifname: string, opts: ReceiverOptions = {}) {
    this.ifname = ifname;
    this.perFrame = opts.perFrame === true;
    this.ifindex = interfaceIndex(ifname);
    this.vnetHdr = opts.vnetHdr === true;
    const start = ringStart(ifname, opts);
    this.blockSize = start.blockSize;
    this.frameSize = start.frameSize;
    this.blockCount = start.blockCount;
    this.ringBytes = start.ringBytes;
    this.frameCount = start.frameCount;
    this.sp = space();
    this.i32 = this.sp.i32;
    this.u32 = this.sp.u32;
    this.u16 = this.sp.u16;

    let group = -1;
    const { fd, ringOffset } = openPacketRing(this.sp, {
      ...start, ifindex: this.ifindex,
      beforeBind: (socket) => {
        if (this.perFrame) this.setUpQueuedFrames(socket);
        if (opts.ignoreOutgoing ?? true) native.setsockoptInt(socket, native.SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        if (opts.dropMark !== undefined) attachFilter(socket, dropMarkFilter(opts.dropMark));
      },
      protocolBe: ETH_P_ALL_BE,
      afterBind: (socket) => {
        if (opts.promisc ?? true) setPromisc(socket, this.ifindex);
        if (opts.fanoutGroup !== undefined) group = joinFanout(socket, opts.fanoutGroup, opts.fanoutMode ?? FANOUT_HASH);
      },
    }, opts.begun);
    this.fd = fd;
    this.ringOffset = ringOffset;
    this.fanoutGroup = group;
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
    const fd = this.detach();
    if (fd >= 0) native.closeFd(fd);
  }

  /**
   * Unmaps the ring and gives the descriptor to the caller to close (-1 when closed already). The
   * ring's mapping holds the socket too, so the last of the two to go releases it, and that
   * waits for an RCU grace period: unmapped first, the wait is in the close, which the caller
   * can run at the same time as others (closeConcurrently).
   */
  detach(): number {
    if (this.closed) return -1;
    this.stats();
    this.closed = true;
    this.sp.unmapLocal(this.ringOffset, this.ringBytes);
    if (this.queuedAt >= 0) this.sp.unmapLocal(this.queuedAt, QUEUED_FRAME_MAX);
    return this.fd;
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
