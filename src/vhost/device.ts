/**
 * One vhost-user virtio-net device on one VALE port: the protocol's state machine (features,
 * memory table, the two virtqueues) and the data path between the queues and the port's rings.
 * Runs in the backend's worker thread (worker.ts), which calls message() when the socket has a
 * message, kicked(q) when a queue's kick descriptor fires, and poll() on every pass of its loop.
 *
 * Queue 0 is the guest's receive queue (the device writes frames from the port's RX ring into
 * guest buffers), queue 1 its transmit queue (frames from guest buffers go into the port's TX
 * ring). The port is `valeX:vmN@conf:vnet-hdr=H`: H is the guest's header length (12 with
 * VERSION_1 or MRG_RXBUF, else 10) when the guest takes the offloads (GUEST_CSUM, GUEST_TSO4/6),
 * so frames keep their virtio-net header through the switch; 0 otherwise, and the switch cuts
 * super-frames and completes checksums for the guest.
 */
import { openPort, type Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import { space, type AddressSpace } from '../memory/space.js';
import * as L from '../memory/layout.js';
import * as native from '../native/index.js';
import { receiveAll, sendBytes, setNonBlocking, type FdReceiver } from '../native/unix.js';
import { NetmapError } from '../errors.js';
import { completeChecksumAt } from '../interfaces/csum.js';
import { mapScratch } from '../interfaces/packet-socket.js';
import { GuestMemory } from './memory.js';
import { Vring, MAX_QUEUE } from './vring.js';
import * as P from './protocol.js';

/** Most frames moved per queue per pass (then the loop looks at the socket and the other queue). */
const BATCH = 256;
/** Longest frame (without header) the guest may send: a 64 KiB super-frame and its Ethernet header. */
const MAX_FRAME = 65535 + 14;
const RXQ = 0, TXQ = 1;
const VH_FLAGS = 0, VH_GSO_TYPE = 1, VH_CSUM_START = 6, VH_CSUM_OFFSET = 8, VH_NUM_BUFFERS = 10;

export interface DeviceCounters {
  /** Frames from the guest into the switch, and their bytes (header excluded). */
  txFrames: number; txBytes: number; txDrops: number;
  /** Frames from the switch into the guest, and their bytes; frames dropped for want of room. */
  rxFrames: number; rxBytes: number; rxDrops: number;
}

export type Log = (text: string) => void;

export class VhostDevice {
  readonly portName: string;
  private readonly log: Log;
  private readonly sp: AddressSpace = space();
  private readonly mem = new GuestMemory();
  private readonly rings = [new Vring(RXQ), new Vring(TXQ)];
  private features = 0n;
  private featuresSet = false;
  private protocolFeatures = 0n;
  private port: Port | null = null;
  private portHdr = 0;
  private guestHdr = 10;
  /** Set when a ring broke the rules: the port stays stopped until the connection ends. */
  failed = '';
  readonly counters: DeviceCounters = { txFrames: 0, txBytes: 0, txDrops: 0, rxFrames: 0, rxBytes: 0, rxDrops: 0 };
  /** The epoll set's bookkeeping for kick descriptors (the worker's). */
  private readonly watchKick: (q: number, fd: number, add: boolean) => void;

  private readonly header = Buffer.alloc(P.HEADER_SIZE);
  private readonly payload = Buffer.alloc(P.MAX_PAYLOAD);
  private readonly reply = Buffer.alloc(P.HEADER_SIZE + 8 * 3);
  private readonly bell = Buffer.alloc(8);
  private readonly bellAddress = native.bufferAddress(this.bell);
  private readonly drain = Buffer.alloc(8);
  private readonly drainAddress = native.bufferAddress(this.drain);
  /** Receive: the guest buffers of one frame (several chains with MRG_RXBUF). */
  private readonly gAt = new Float64Array(MAX_QUEUE);
  private readonly gLen = new Uint32Array(MAX_QUEUE);
  private readonly hId = new Uint32Array(MAX_QUEUE);
  private readonly hCap = new Float64Array(MAX_QUEUE);
  /** A zeroed header's room (frames from a port without header into the guest). */
  private zeroHdr = -1;
  /** The copy cursor into gAt/gLen. */
  private dSeg = 0;
  private dOff = 0;

  constructor(portName: string, log: Log, watchKick: (q: number, fd: number, add: boolean) => void) {
    this.portName = portName;
    this.log = log;
    this.watchKick = watchKick;
  }

  // ---- the protocol --------------------------------------------------------------------------

  /**
   * Reads and handles one message from `conn`. Returns false when the connection must end (the
   * peer closed it, or broke the protocol: logged).
   */
  message(conn: number, rx: FdReceiver): boolean {
    const h = this.header;
    let got = rx.receive(conn, h, P.HEADER_SIZE);
    const fds = rx.fds.slice();
    if (got > 0 && got < P.HEADER_SIZE) {
      const more = receiveAll(conn, h, got, P.HEADER_SIZE - got);
      got = more < 0 ? more : got + more;
    }
    if (got !== P.HEADER_SIZE) {
      for (const fd of fds) native.closeFd(fd);
      if (got < 0) this.log(`connection: receive failed (errno ${-got})`);
      return false;
    }
    const request = h.readUInt32LE(0), flags = h.readUInt32LE(4), size = h.readUInt32LE(8);
    if ((flags & 3) !== P.VHOST_USER_VERSION || size > P.MAX_PAYLOAD) {
      for (const fd of fds) native.closeFd(fd);
      this.log(`connection: bad message (request ${request}, flags 0x${flags.toString(16)}, ${size} bytes): closing it`);
      return false;
    }
    if (size > 0 && receiveAll(conn, this.payload, 0, size) !== size) {
      for (const fd of fds) native.closeFd(fd);
      this.log(`connection: ${P.requestName(request)} cut short`);
      return false;
    }
    try {
      return this.handle(conn, request, flags, size, fds);
    } catch (e) {
      // SET_MEM_TABLE closed its own; a ring's descriptor is kept until the connection ends
      for (const fd of fds) if (request !== P.VHOST_USER_SET_MEM_TABLE && !this.owns(fd)) native.closeFd(fd);
      if (!(e instanceof NetmapError)) throw e;
      this.log(`${P.requestName(request)}: ${e.message}: closing the connection`);
      return false;
    }
  }

  private handle(conn: number, request: number, flags: number, size: number, fds: number[]): boolean {
    const p = this.payload;
    const need = (bytes: number): void => {
      if (size < bytes) throw new NetmapError('EINVAL', `a payload of ${size} bytes, ${bytes} expected`);
    };
    const takeFd = (): number => {
      // a message that is not SET_MEM_TABLE carries at most one descriptor
      for (let k = 1; k < fds.length; k++) native.closeFd(fds[k]!);
      return fds.length > 0 ? fds[0]! : -1;
    };
    const ring = (index: number): Vring => {
      const r = this.rings[index];
      if (r === undefined) throw new NetmapError('EINVAL', `queue ${index} does not exist (this device has 2)`);
      return r;
    };
    switch (request) {
      case P.VHOST_USER_GET_FEATURES:
        return this.answerU64(conn, request, P.OFFERED_FEATURES);
      case P.VHOST_USER_GET_PROTOCOL_FEATURES:
        return this.answerU64(conn, request, P.OFFERED_PROTOCOL_FEATURES);
      case P.VHOST_USER_SET_FEATURES: {
        need(8);
        const f = p.readBigUInt64LE(0);
        if ((f & ~P.OFFERED_FEATURES) !== 0n) throw new NetmapError('EINVAL', `features 0x${f.toString(16)} were not offered (0x${P.OFFERED_FEATURES.toString(16)})`);
        this.features = f;
        this.featuresSet = true;
        this.guestHdr = P.vnetHeaderLength(f);
        const hdr = P.guestTakesOffloads(f) ? this.guestHdr : 0;
        if (this.port !== null && hdr !== this.portHdr) this.closePort();
        this.portHdr = hdr;
        break;
      }
      case P.VHOST_USER_SET_PROTOCOL_FEATURES:
        need(8);
        this.protocolFeatures = p.readBigUInt64LE(0) & P.OFFERED_PROTOCOL_FEATURES;
        break;
      case P.VHOST_USER_SET_OWNER:
      case P.VHOST_USER_RESET_OWNER:
      case P.VHOST_USER_SEND_RARP:
        break;
      case P.VHOST_USER_SET_MEM_TABLE:
        this.mem.set(p, size, fds);
        this.log(`memory: ${this.mem.describe()}`);
        for (const r of this.rings) if (r.started && !r.map(this.mem)) this.stop(r.error);
        break;
      case P.VHOST_USER_SET_VRING_NUM: {
        need(8);
        const r = ring(p.readUInt32LE(0)), num = p.readUInt32LE(4);
        if (num === 0 || num > MAX_QUEUE || (num & (num - 1)) !== 0) throw new NetmapError('EINVAL', `queue size ${num} is not a power of two up to ${MAX_QUEUE}`);
        r.num = num;
        break;
      }
      case P.VHOST_USER_SET_VRING_ADDR: {
        need(40);
        const r = ring(p.readUInt32LE(0));
        r.descUser = Number(p.readBigUInt64LE(8));
        r.usedUser = Number(p.readBigUInt64LE(16));
        r.availUser = Number(p.readBigUInt64LE(24));
        if (r.started && !r.map(this.mem)) this.stop(r.error);
        break;
      }
      case P.VHOST_USER_SET_VRING_BASE: {
        need(8);
        const r = ring(p.readUInt32LE(0));
        r.lastAvail = p.readUInt32LE(4) & 0xffff;
        break;
      }
      case P.VHOST_USER_GET_VRING_BASE: {
        need(8);
        const r = ring(p.readUInt32LE(0));
        if (r.started) {
          r.started = false;
          if (r.kickFd >= 0) { this.watchKick(r.index, r.kickFd, false); native.closeFd(r.kickFd); r.kickFd = -1; }
        }
        const b = this.reply;
        b.writeUInt32LE(r.index, P.HEADER_SIZE);
        b.writeUInt32LE(r.lastAvail, P.HEADER_SIZE + 4);
        return this.answer(conn, request, 8);
      }
      case P.VHOST_USER_SET_VRING_KICK:
      case P.VHOST_USER_SET_VRING_CALL:
      case P.VHOST_USER_SET_VRING_ERR: {
        need(8);
        const v = p.readUInt32LE(0);
        const r = ring(v & P.VRING_INDEX_MASK);
        const fd = (v & P.VRING_NOFD) !== 0 ? -1 : takeFd();
        if ((v & P.VRING_NOFD) === 0 && fd < 0) throw new NetmapError('EINVAL', `${P.requestName(request)} without a descriptor`);
        if (request === P.VHOST_USER_SET_VRING_CALL) {
          if (r.callFd >= 0) native.closeFd(r.callFd);
          r.callFd = fd;
        } else if (request === P.VHOST_USER_SET_VRING_ERR) {
          if (r.errFd >= 0) native.closeFd(r.errFd);
          r.errFd = fd;
        } else {
          if (r.kickFd >= 0) { this.watchKick(r.index, r.kickFd, false); native.closeFd(r.kickFd); }
          r.kickFd = fd;
          if (fd >= 0) { setNonBlocking(fd, true); this.watchKick(r.index, fd, true); }
          this.start(r);
        }
        break;
      }
      case P.VHOST_USER_SET_VRING_ENABLE: {
        need(8);
        const r = ring(p.readUInt32LE(0));
        r.enabled = p.readUInt32LE(4) !== 0;
        break;
      }
      case P.VHOST_USER_SET_LOG_BASE:
      case P.VHOST_USER_SET_LOG_FD:
      case P.VHOST_USER_GET_QUEUE_NUM:
      default:
        throw new NetmapError('EINVAL', `${P.requestName(request)} is not supported (no migration log, one queue pair)`);
    }
    for (const fd of fds) if (request !== P.VHOST_USER_SET_MEM_TABLE && !this.owns(fd)) native.closeFd(fd);
    if ((flags & P.VHOST_USER_NEED_REPLY) !== 0) {
      // REPLY_ACK is not offered, but answer success if asked anyway
      this.reply.writeBigUInt64LE(0n, P.HEADER_SIZE);
      return this.answer(conn, request, 8);
    }
    return true;
  }

  private owns(fd: number): boolean {
    return this.rings.some((r) => r.kickFd === fd || r.callFd === fd || r.errFd === fd);
  }

  private answerU64(conn: number, request: number, v: bigint): boolean {
    this.reply.writeBigUInt64LE(v, P.HEADER_SIZE);
    return this.answer(conn, request, 8);
  }

  private answer(conn: number, request: number, size: number): boolean {
    const b = this.reply;
    b.writeUInt32LE(request, 0);
    b.writeUInt32LE(P.VHOST_USER_VERSION | P.VHOST_USER_REPLY, 4);
    b.writeUInt32LE(size, 8);
    const n = sendBytes(conn, b, P.HEADER_SIZE + size);
    if (n !== P.HEADER_SIZE + size) {
      this.log(`connection: reply to ${P.requestName(request)} failed (${n < 0 ? `errno ${-n}` : `${n} bytes`})`);
      return false;
    }
    return true;
  }

  /** A ring starts with its kick (SET_VRING_KICK): map it, and enable it if protocol features are off. */
  private start(r: Vring): void {
    r.started = true;
    if (!P.hasFeature(this.features, P.F_PROTOCOL_FEATURES)) r.enabled = true;
    if (!this.mem.mapped) { this.stop(`queue ${r.index} started before the memory table came`); return; }
    if (!r.map(this.mem)) { this.stop(r.error); return; }
    r.syncUsed();
  }

  /** Stops the port for good (until the connection ends): a guest broke the rules. */
  private stop(reason: string): void {
    if (this.failed !== '') return;
    this.failed = reason;
    this.closePort();
    this.log(`port ${this.portName} stopped: ${reason}`);
    for (const r of this.rings) {
      if (r.errFd >= 0) { this.bell.writeUInt32LE(1, 0); native.writeAt(r.errFd, this.bellAddress, 8); }
    }
  }

  /** The VALE port while it is open. */
  get openPort(): Port | null {
    return this.port;
  }

  private openPortIfReady(): Port | null {
    if (this.port !== null) return this.port;
    if (!this.featuresSet || this.failed !== '') return null;
    this.port = openPort(`${this.portName}@conf:vnet-hdr=${this.portHdr}`);
    if (this.zeroHdr < 0 && this.portHdr === 0) this.zeroHdr = mapScratch(4096);
    this.log(`port ${this.portName} open, virtio-net header ${this.portHdr} bytes (guest's: ${this.guestHdr}, features 0x${this.features.toString(16)})`);
    return this.port;
  }

  private closePort(): void {
    if (this.port === null) return;
    this.port.close();
    this.port = null;
  }

  /** The connection ended: forget everything, close the port (QEMU may come back). */
  disconnect(): void {
    for (const r of this.rings) {
      if (r.kickFd >= 0) this.watchKick(r.index, r.kickFd, false);
      r.reset(native.closeFd);
    }
    this.mem.clear();
    this.closePort();
    this.features = 0n;
    this.featuresSet = false;
    this.protocolFeatures = 0n;
    this.failed = '';
  }

  /** Closes what the device holds (the backend stops). */
  close(): void {
    this.disconnect();
    if (this.zeroHdr >= 0) this.sp.unmapLocal(this.zeroHdr, 4096);
    this.zeroHdr = -1;
  }

  // ---- the data path -------------------------------------------------------------------------

  /** Queue `q`'s kick descriptor is readable: drain it (the work is done by poll()). */
  kicked(q: number): void {
    const r = this.rings[q];
    if (r === undefined || r.kickFd < 0) return;
    while (native.readAt(r.kickFd, this.drainAddress, 8) === 8) { /* drained */ }
  }

  /** Whether both queues are being served. */
  get running(): boolean {
    return this.failed === '' && this.rings[RXQ]!.live && this.rings[TXQ]!.live;
  }

  /** One pass: guest -> switch, then switch -> guest. Returns frames moved. */
  poll(): number {
    if (this.failed !== '') return 0;
    const tq = this.rings[TXQ]!, rq = this.rings[RXQ]!;
    if (!tq.live && !rq.live) return 0;
    const port = this.openPortIfReady();
    if (port === null) return 0;
    let moved = 0;
    if (tq.live) moved += this.transmit(port, tq);
    if (this.failed === '' && rq.live && this.port !== null) moved += this.receive(port, rq);
    if (this.failed === '') {
      for (const r of this.rings) if (r.error !== '') { this.stop(r.error); break; }
    }
    return moved;
  }

  /** Guest's transmit queue -> the port's TX ring. */
  private transmit(port: Port, q: Vring): number {
    const tx = port.txRings[0]!;
    const avail = q.availCount();
    if (avail <= 0) return 0;
    let done = 0;
    while (done < avail && done < BATCH) {
      const head = q.head(done);
      if (head < 0 || !q.chain(this.mem, head, false)) break;
      const r = this.frameIntoRing(q, tx);
      if (r === 0) {
        port.txsync();
        if (this.frameIntoRing(q, tx) === 0) break; // the ring is still full: retry on the next pass
      }
      q.pushUsed(head, 0);
      done++;
    }
    if (done === 0) return 0;
    q.lastAvail = (q.lastAvail + done) & 0xffff;
    port.txsync();
    q.publish(this.bell, this.bellAddress, native.writeAt);
    return done;
  }

  /**
   * Copies the chain just read (q.seg*) into free slots of `tx` (NS_MOREFRAG chain of buffers).
   * Returns 1 when it was placed or dropped (counted), 0 when the ring has no room for it.
   */
  private frameIntoRing(q: Vring, tx: Ring): number {
    const u8 = this.sp.u8;
    const total = q.chainBytes, gh = this.guestHdr, ph = this.portHdr;
    const frame = total - gh;
    if (frame < 14 || frame > MAX_FRAME) { this.counters.txDrops++; return 1; }
    let skip = 0;
    if (ph === 0) {
      // the port takes no header: a super-frame cannot go (the guest was offered HOST_TSO while
      // it refused GUEST_TSO, and the switch cuts only what comes with a header); a partial
      // checksum is completed below, on a frame that fits one buffer
      const h0 = q.segAt[0]!;
      if (q.segLen[0]! < gh || u8[h0 + VH_GSO_TYPE] !== 0 || ((u8[h0 + VH_FLAGS]! & 1) !== 0 && frame > tx.bufSize)) { this.counters.txDrops++; return 1; }
      skip = gh;
    } else if (ph !== gh) {
      this.counters.txDrops++;
      return 1;
    }
    const bytes = total - skip;
    const size = tx.bufSize;
    const frags = Math.ceil(bytes / size);
    if (frags > L.NETMAP_MAX_FRAGS) { this.counters.txDrops++; return 1; }
    if (tx.space() < frags) return 0;
    let slot = tx.head, seg = 0, segOff = skip, left = bytes;
    // skip may cover whole segments (a header alone in its descriptor)
    while (seg < q.segCount && segOff >= q.segLen[seg]!) { segOff -= q.segLen[seg]!; seg++; }
    for (let f = 0; f < frags; f++) {
      const dst = tx.slotBufOffset(slot);
      const piece = Math.min(size, left);
      let filled = 0;
      while (filled < piece) {
        const n = Math.min(piece - filled, q.segLen[seg]! - segOff);
        const src = q.segAt[seg]! + segOff;
        u8.copyWithin(dst + filled, src, src + n);
        filled += n;
        segOff += n;
        if (segOff === q.segLen[seg]!) { seg++; segOff = 0; }
      }
      tx.setSlotLen(slot, piece);
      tx.setSlotFlags(slot, f + 1 < frags ? L.NS_MOREFRAG : 0);
      left -= piece;
      if (f + 1 < frags) slot = tx.next(slot);
    }
    if (ph === 0 && (u8[q.segAt[0]! + VH_FLAGS]! & 1) !== 0) {
      const h0 = q.segAt[0]!;
      const start = u8[h0 + VH_CSUM_START]! | (u8[h0 + VH_CSUM_START + 1]! << 8);
      const off = u8[h0 + VH_CSUM_OFFSET]! | (u8[h0 + VH_CSUM_OFFSET + 1]! << 8);
      if (!completeChecksumAt(u8, tx.slotBufOffset(tx.head), bytes, start, off)) { this.counters.txDrops++; return 1; }
    }
    tx.advance(tx.next(slot));
    this.counters.txFrames++;
    this.counters.txBytes += frame;
    return 1;
  }

  /** The port's RX ring -> guest's receive queue. */
  private receive(port: Port, q: Vring): number {
    port.rxsync();
    const rx = port.rxRings[0]!;
    const mrg = P.hasFeature(this.features, P.F_MRG_RXBUF);
    const u8 = this.sp.u8;
    const gh = this.guestHdr, ph = this.portHdr;
    let frames = 0, heads = 0;
    let avail = -1;
    while (!rx.empty() && frames < BATCH) {
      // the packet: slots from head while NS_MOREFRAG (a chain cut by tail waits)
      let i = rx.head, n = 1, total = rx.slotLen(i);
      const tail = rx.tail;
      let whole = true;
      while ((rx.slotFlags(i) & L.NS_MOREFRAG) !== 0 && n < L.NETMAP_MAX_FRAGS) {
        const nx = rx.next(i);
        if (nx === tail) { whole = false; break; }
        i = nx;
        n++;
        total += rx.slotLen(i);
      }
      if (!whole) break;
      const end = rx.next(i);
      if (total < ph) { rx.advance(end); this.counters.rxDrops++; continue; }
      const bytes = total - ph + gh;
      // guest buffers for it
      if (avail < 0) { avail = q.availCount(); if (avail < 0) break; }
      let cap = 0, h = 0, segs = 0;
      let broken = false;
      while (cap < bytes && (mrg || h === 0)) {
        if (heads + h >= avail) break;
        const head = q.head(heads + h);
        if (head < 0 || !q.chain(this.mem, head, true)) { broken = true; break; }
        this.hId[h] = head;
        this.hCap[h] = q.chainBytes;
        for (let s = 0; s < q.segCount && segs < MAX_QUEUE; s++) { this.gAt[segs] = q.segAt[s]!; this.gLen[segs] = q.segLen[s]!; segs++; }
        cap += q.chainBytes;
        h++;
      }
      if (broken) break;
      if (cap < bytes) {
        if (h === 0 || (mrg && heads + h >= avail)) break; // no buffers (yet): the guest kicks when it adds some
        // one chain too small for this frame (no MRG_RXBUF): drop the frame, keep the buffer
        rx.advance(end);
        this.counters.rxDrops++;
        continue;
      }
      // copy: the guest's header (from the port's, or zeroed), then the frame
      this.dSeg = 0;
      this.dOff = 0;
      let s = rx.head;
      if (ph === 0) {
        u8.fill(0, this.zeroHdr, this.zeroHdr + gh);
        this.put(u8, this.zeroHdr, gh);
      }
      for (let f = 0; f < n; f++) {
        const len = rx.slotLen(s);
        if (len > rx.bufSize) { this.counters.rxDrops++; break; }
        this.put(u8, rx.slotBufOffset(s), len);
        s = rx.next(s);
      }
      if (gh === 12) {
        // num_buffers: the chains this frame took (1 without MRG_RXBUF), in the guest's header
        this.patchU16(u8, VH_NUM_BUFFERS, h);
      }
      let left = bytes;
      for (let k = 0; k < h; k++) {
        const w = Math.min(left, this.hCap[k]!);
        q.pushUsed(this.hId[k]!, w);
        left -= w;
      }
      heads += h;
      rx.advance(end);
      frames++;
      this.counters.rxFrames++;
      this.counters.rxBytes += bytes - gh;
    }
    if (heads > 0) {
      q.lastAvail = (q.lastAvail + heads) & 0xffff;
      q.publish(this.bell, this.bellAddress, native.writeAt);
    }
    if (frames > 0) port.rxsync();
    return frames;
  }

  /** Appends `len` bytes at space offset `src` to the guest buffers gAt/gLen at the cursor. */
  private put(u8: Uint8Array, src: number, len: number): void {
    while (len > 0) {
      const room = this.gLen[this.dSeg]! - this.dOff;
      if (room === 0) { this.dSeg++; this.dOff = 0; continue; }
      const n = room < len ? room : len;
      const dst = this.gAt[this.dSeg]! + this.dOff;
      u8.copyWithin(dst, src, src + n);
      this.dOff += n;
      src += n;
      len -= n;
    }
  }

  /** Writes u16 `v` at byte `at` of what was copied into the guest buffers (it may straddle two). */
  private patchU16(u8: Uint8Array, at: number, v: number): void {
    let seg = 0;
    for (let b = 0; b < 2; b++) {
      let off = at + b;
      seg = 0;
      while (off >= this.gLen[seg]!) { off -= this.gLen[seg]!; seg++; }
      u8[this.gAt[seg]! + off] = b === 0 ? v & 0xff : v >>> 8;
    }
  }
}
