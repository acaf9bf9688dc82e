/**
 * PacketTransmitter: an AF_PACKET TPACKET_V2 transmit ring on one interface; frames are filled in
 * order and handed to the kernel with one sendto(NULL, MSG_DONTWAIT) per batch.
 * PACKET_QDISC_BYPASS (default on) sends straight to the driver: no qdisc, no tc egress, no taps
 * — so no packet socket, ours included, sees these frames as outgoing. PACKET_LOSS: a malformed
 * frame is dropped, not a ring stall. Socket set-up: packet-socket.ts.
 */
import * as native from '../native/index.js';
import { space, type AddressSpace } from '../memory/space.js';
import { assert } from '../errors.js';
import { interfaceIndex } from './ifinfo.js';
import {
  PACKET_TX_RING, PACKET_LOSS, TPACKET_V2, H2_STATUS, H2_LEN, TX_DATA_OFFSET, STRONG_ORDER, VNET_HDR_LEN, VNET_HDR_LEN_FIELD,
  TP_STATUS_AVAILABLE, TP_STATUS_SEND_REQUEST, TP_STATUS_WRONG_FORMAT,
  openPacketRing, beginPacketRing, packetSocket, bindPacketSocket, setSendOptions, pow2AtLeast, checkCount,
  type PacketRingStart, type PendingRing,
} from './packet-socket.js';

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
  /** A ring begun ahead for the same interface and options (PacketTransmitter.begin); taken over here. */
  begun?: PendingRing;
}

/** The ring geometry of `opts` and the steps up to the ring (shared by the constructor and begin()). */
function ringStart(ifname: string, opts: TransmitterOptions): PacketRingStart & { frameSize: number; frames: number } {
  const frameSize = pow2AtLeast(checkCount(opts.frameSize ?? 2048, 128, 1 << 16, 'frame size'));
  const wanted = checkCount(opts.frames ?? 1024, 2, 1 << 16, 'ring frames');
  const blockSize = Math.max(4096, frameSize);
  const perBlock = blockSize / frameSize;
  const blocks = Math.ceil(wanted / perBlock);
  const frames = blocks * perBlock;
  const request = Buffer.alloc(16);
  request.writeUInt32LE(blockSize, 0);
  request.writeUInt32LE(blocks, 4);
  request.writeUInt32LE(frameSize, 8);
  request.writeUInt32LE(frames, 12);
  const linear = opts.linear ?? true, bypass = opts.qdiscBypass ?? true, mark = opts.mark ?? 0;
  return {
    ifname, direction: 'transmit', version: TPACKET_V2, ringOption: PACKET_TX_RING, request, ringBytes: blocks * blockSize,
    options: `loss bypass=${bypass} vnet-hdr=${linear} mark=${mark}`,
    beforeRing: (socket) => {
      native.setsockoptInt(socket, native.SOL_PACKET, PACKET_LOSS, 1);
      // (before the ring: the kernel refuses PACKET_VNET_HDR once a ring exists)
      setSendOptions(socket, bypass, linear, mark);
    },
    frameSize, frames,
  };
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

  /**
   * Makes the socket of a transmitter with `opts` and starts its ring's set-up on a native thread
   * (it waits for an RCU grace period); the constructor given it as `begun` finishes it. Undo
   * with abandonPacketRing when no transmitter is made after all.
   */
  static begin(ifname: string, opts: TransmitterOptions = {}): PendingRing {
    return beginPacketRing(ringStart(ifname, opts));
  }

  constructor(ifname: string, opts: TransmitterOptions = {}) {
    this.ifname = ifname;
    this.ifindex = interfaceIndex(ifname);
    const start = ringStart(ifname, opts);
    this.frameSize = start.frameSize;
    this.frames = start.frames;
    this.linear = opts.linear ?? true;
    this.bypass = opts.qdiscBypass ?? true;
    this.mark = opts.mark ?? 0;
    this.dataOffset = TX_DATA_OFFSET + (this.linear ? VNET_HDR_LEN : 0);
    this.maxFrame = this.frameSize - this.dataOffset;
    this.ringBytes = start.ringBytes;
    this.sp = space();
    this.i32 = this.sp.i32;
    this.u32 = this.sp.u32;
    this.u16 = this.sp.u16;

    const { fd, ringOffset } = openPacketRing(this.sp, {
      ...start, ifindex: this.ifindex,
      // Protocol 0: the socket receives nothing (no per-frame clone for an unread queue).
      protocolBe: 0,
    }, opts.begun);
    this.fd = fd;
    this.ringOffset = ringOffset;
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
        setSendOptions(fd, this.bypass, true, this.mark);
        bindPacketSocket(fd, 0, this.ifindex);
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

  /** Waits up to `timeoutMs` for room in the ring; true when there is some. */
  wait(timeoutMs: number): boolean {
    if (this.reclaim() > 0) return true;
    native.poll(this.pollfd, 1, timeoutMs);
    return this.reclaim() > 0;
  }

  close(): void {
    for (const fd of this.detach()) native.closeFd(fd);
  }

  /**
   * Unmaps the ring and gives the descriptors to the caller to close (none when closed already):
   * the release of a socket with a ring waits for an RCU grace period, in whichever of the unmap
   * and the close comes last, so unmapped first the wait is in the close, which the caller can
   * run at the same time as others (closeConcurrently).
   */
  detach(): number[] {
    if (this.closed) return [];
    this.closed = true;
    this.sp.unmapLocal(this.ringOffset, this.ringBytes);
    const fds = this.wholeFd >= 0 ? [this.fd, this.wholeFd] : [this.fd];
    this.wholeFd = -2;
    return fds;
  }
}
