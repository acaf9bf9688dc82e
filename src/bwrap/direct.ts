/**
 * Direct delivery to attached interfaces (netmap's bwrap, transmit side): a sender that enabled
 * it (the attach daemons do) writes the packets the switch sends to the wire side of an attached
 * interface in its own network namespace straight into a transmit ring of its own on that
 * interface, in its own context, as netmap forwards into an attached NIC's TX ring. Without it
 * they go through the switch port's RX ring to the interface's daemon: one more copy and one
 * more process on the way. Plugged into the VALE forwarding loop as its OutsideDelivery.
 */
import type { Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';
import type { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import type { OutsideDelivery, ValeAdapter } from '../switch/forward.js';
import * as native from '../native/index.js';
import { space } from '../memory/space.js';
import { mapScratch, VNET_HDR_LEN } from '../interfaces/packet.js';

/**
 * A transmit ring a sender writes into directly (an attached interface's wire side: a packet
 * socket's TX ring). slot() -> offset or -1 when full; commit(len); kick() hands what was
 * committed to the kernel; reclaim() collects finished frames.
 */
export interface DirectSink {
  readonly maxFrame: number;
  reclaim(): number;
  slot(): number;
  commit(len: number): void;
  kick(): void;
  /**
   * Sends one frame whole, after what was committed: `total` bytes at space offset `hdrAt`, a
   * virtio-net header and the frame (optional; false: not sent).
   */
  sendWhole?(hdrAt: number, total: number): boolean;
  /**
   * Sends one packet straight from its fragments (`frags` entries of `offs`/`lens` from
   * `first`: space offsets and lengths), without copying it into slot() first (optional;
   * false: not sent).
   */
  sendFragments?(offs: Float64Array, lens: Uint16Array, first: number, frags: number): boolean;
  close(): void;
}
/** Opens a DirectSink on interface `ifindex`, behind the switch port named `portName` (null: none). */
export type DirectSinkOpener = (ifindex: number, portName: string) => DirectSink | null;

/** A switch port the last refresh found attached in this namespace (ifindex), or an attached TAP (tapPid). */
interface Candidate { switchPort: number; ifindex: number; name: string; tapPid: number; tapFd: number; key: number; hdr: number }

/** Longest frame a TapSink takes: a 64 KiB super-frame, its Ethernet header and virtio-net header. */
const TAP_SINK_MAX = 65535 + 18 + 12;
const TAP_SINK_SCRATCH = 1 << 17;
/** deliverWhole's gathering area: the longest chain (64 buffers of 2 KiB) and a header. */
const WHOLE_SCRATCH = (64 << 11) + 4096;

/**
 * Frames written straight into an attached TAP through a copy of its daemon's descriptor
 * (pidfd_getfd): the kernel receives each on the TAP at once, in this process, instead of this
 * process handing it to the TAP's daemon through the switch port's RX ring and waking it. Frames
 * keep the virtio-net header the switch ports share (the switch only uses this sink between
 * ports of the same header length); a packet goes with one writev of its buffers
 * (sendFragments), a super-frame from a port without header with its header padded (sendWhole).
 */
class TapSink implements DirectSink {
  readonly maxFrame = TAP_SINK_MAX;
  private readonly fd: number;
  private readonly scratch: number;
  private readonly address: number;
  /** The TAP's virtio-net header length (its switch port's). */
  private readonly hdr: number;
  private readonly iov = Buffer.alloc(3 * native.IOVEC_SIZE);
  private readonly fragIov = Buffer.alloc(L.NETMAP_MAX_FRAGS * native.IOVEC_SIZE);

  constructor(pid: number, fd: number, hdr: number) {
    this.hdr = hdr;
    this.fd = native.duplicateFdOf(pid, fd);
    try {
      this.scratch = mapScratch(TAP_SINK_SCRATCH);
    } catch (e) {
      native.closeFd(this.fd);
      throw e;
    }
    this.address = space().address;
  }

  reclaim(): number { return 1; }
  slot(): number { return this.scratch; }
  /** Writes the frame at once (a TAP takes one frame per write); a refused one is lost, as on a full ring. */
  commit(len: number): void { native.writeAt(this.fd, this.address + this.scratch, len); }
  kick(): void { /* each frame went at commit() */ }

  /** One writev of the packet's buffers (a super-frame's chain): no copy in this process. */
  sendFragments(offs: Float64Array, lens: Uint16Array, first: number, frags: number): boolean {
    if (frags > L.NETMAP_MAX_FRAGS) return false;
    const a = this.address, iov = this.fragIov;
    let total = 0;
    for (let k = 0; k < frags; k++) {
      const at = offs[first + k]!;
      if (at < 0) return false;
      native.setIovec(iov, k, a + at, lens[first + k]!);
      total += lens[first + k]!;
    }
    return native.writevAt(this.fd, iov, frags) === total;
  }

  /**
   * A super-frame from a port without header (a veth's GSO frame, or TCP segments merged): its
   * 10-byte virtio-net header at `hdrAt`, the frame after it; written whole, the header padded to
   * the TAP's 12 bytes (num_buffers 0) by a writev.
   */
  sendWhole(hdrAt: number, total: number): boolean {
    const a = this.address;
    if (this.hdr === VNET_HDR_LEN) return native.writeAt(this.fd, a + hdrAt, total) === total;
    if (this.hdr !== VNET_HDR_LEN + 2) return false;
    const iov = this.iov;
    const zeros = this.scratch + TAP_SINK_SCRATCH - 64; // never written: a frame ends before
    native.setIovec(iov, 0, a + hdrAt, VNET_HDR_LEN);
    native.setIovec(iov, 1, a + zeros, 2);
    native.setIovec(iov, 2, a + hdrAt + VNET_HDR_LEN, total - VNET_HDR_LEN);
    return native.writevAt(this.fd, iov, 3) === total + 2;
  }

  close(): void {
    native.closeFd(this.fd);
    space().unmapLocal(this.scratch, TAP_SINK_SCRATCH);
  }
}

/** The OutsideDelivery of one VALE handle: sinks for the attached interfaces on its switch. */
class DirectDelivery implements OutsideDelivery {
  private readonly open: DirectSinkOpener;
  private readonly netns: number;
  /** Sink of each switch port number, null: through the switch. */
  private readonly sinkOfPort: (DirectSink | null)[] = new Array<DirectSink | null>(L.MAX_SWITCH_PORTS).fill(null);
  /** Open sinks by ifindex, or -1 - registry index for TAPs (kept across refreshes; closed when their port leaves the switch). */
  private readonly sinkOfInterface = new Map<number, DirectSink>();
  private readonly candidates: Candidate[] = [];
  /** Where deliverWhole() gathers a packet (-1: not made yet). */
  private wholeScratch = -1;

  constructor(open: DirectSinkOpener, netns: number) {
    this.open = open;
    this.netns = netns >>> 0;
  }

  get active(): boolean {
    return this.sinkOfInterface.size > 0;
  }

  consider(reg: Registry, switchPort: number, index: number): void {
    if ((reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_ATTACHED) === 0) return;
    const ifindex = reg.portGet(index, L.PE_VALE_DIRECT_IF);
    const tapPid = reg.portGet(index, L.PE_VALE_DIRECT_TAP_PID);
    if (ifindex !== 0 && reg.portGet(index, L.PE_VALE_DIRECT_NETNS) >>> 0 === this.netns) {
      this.candidates.push({ switchPort, ifindex, name: reg.portName(index), tapPid: 0, tapFd: 0, key: ifindex, hdr: 0 });
    } else if (tapPid !== 0 && tapPid !== process.pid) {
      // a TAP's descriptor works from any namespace
      this.candidates.push({ switchPort, ifindex: 0, name: reg.portName(index), tapPid, tapFd: reg.portGet(index, L.PE_VALE_DIRECT_TAP_FD), key: -1 - index, hdr: reg.portGet(index, L.PE_HDR_LEN) });
    }
  }

  /** Opens sinks for the attached interfaces now on the switch, closes those gone (no lock held). */
  commit(): void {
    this.sinkOfPort.fill(null);
    const keep = new Set<number>();
    for (const { switchPort, ifindex, name, tapPid, tapFd, key, hdr } of this.candidates) {
      let sink = this.sinkOfInterface.get(key) ?? null;
      if (sink === null) {
        try { sink = tapPid !== 0 ? new TapSink(tapPid, tapFd, hdr) : this.open(ifindex, name); } catch { sink = null; }
        if (sink === null) continue; // through the switch port then
        this.sinkOfInterface.set(key, sink);
      }
      this.sinkOfPort[switchPort] = sink;
      keep.add(key);
    }
    this.candidates.length = 0;
    for (const [key, sink] of this.sinkOfInterface) {
      if (!keep.has(key)) { sink.close(); this.sinkOfInterface.delete(key); }
    }
  }

  takes(switchPort: number): boolean {
    return this.sinkOfPort[switchPort] !== null;
  }

  /** An attached interface's sink takes frames with a virtio-net header whole (PACKET_VNET_HDR). */
  takesWhole(switchPort: number, hdr: number): boolean {
    const sink = this.sinkOfPort[switchPort];
    return sink !== null && sink !== undefined && !(sink instanceof TapSink) && sink.sendWhole !== undefined && hdr >= VNET_HDR_LEN;
  }

  /**
   * From a port with a `hdr`-byte virtio-net header onto an attached interface: each packet is
   * gathered after the first 10 bytes of its header (what a packet socket takes) and sent whole
   * (sendWhole): the kernel cuts a super-frame, or completes a partial checksum, for the wire or
   * hands it to the stack behind a veth as it is. A refused packet is dropped.
   */
  deliverWhole(vale: ValeAdapter, switchPort: number, unicastHead: number, broadcastHead: number, hdr: number): void {
    const sink = this.sinkOfPort[switchPort]!;
    const sp = vale.space;
    if (this.wholeScratch < 0) this.wholeScratch = mapScratch(WHOLE_SCRATCH);
    const frame = this.wholeScratch + 64 + 2, hdrAt = frame - VNET_HDR_LEN;
    const ftFrags = vale.ftFrags, ftOff = vale.ftOff, ftLen = vale.ftLen, ftNext = vale.ftNext;
    let unicast = unicastHead, broadcast = broadcastHead;
    let dropped = 0, sent = 0, bytes = 0;
    while (unicast >= 0 || broadcast >= 0) {
      let packet: number;
      if (broadcast < 0 || (unicast >= 0 && unicast < broadcast)) { packet = unicast; unicast = ftNext[unicast]!; } else { packet = broadcast; broadcast = ftNext[broadcast]!; }
      const frags = ftFrags[packet]!;
      const first = ftOff[packet]!;
      let len = 0;
      for (let entry = packet; entry < packet + frags; entry++) {
        const skip = entry === packet ? hdr : 0;
        const src = ftOff[entry]!, l = ftLen[entry]! - skip;
        if (src < 0 || l < 0 || len + l > WHOLE_SCRATCH - 128) { len = -1; break; }
        sp.u8.copyWithin(frame + len, src + skip, src + skip + l);
        len += l;
      }
      if (len < 14) { dropped++; continue; }
      sp.u8.copyWithin(hdrAt, first, first + VNET_HDR_LEN);
      if (sink.sendWhole!(hdrAt, VNET_HDR_LEN + len)) { sent++; bytes += len; } else dropped++;
    }
    vale.countDelivered(switchPort, dropped, sent, bytes);
  }

  sinkFor(switchPort: number): DirectSink | null {
    return switchPort < 0 ? null : this.sinkOfPort[switchPort]!;
  }

  /**
   * Writes the chains into the port's sink, one frame per packet, and kicks it. A full ring is
   * kicked and looked at again once; what still does not fit is dropped, as the switch drops.
   */
  deliver(vale: ValeAdapter, switchPort: number, unicastHead: number, broadcastHead: number): void {
    const sink = this.sinkOfPort[switchPort]!;
    const sp = vale.space;
    const ftFrags = vale.ftFrags, ftOff = vale.ftOff, ftLen = vale.ftLen, ftNext = vale.ftNext;
    let unicast = unicastHead, broadcast = broadcastHead;
    const max = sink.maxFrame;
    let dropped = 0, sent = 0, bytes = 0, kicked = false;
    sink.reclaim();
    while (unicast >= 0 || broadcast >= 0) {
      let packet: number;
      if (broadcast < 0 || (unicast >= 0 && unicast < broadcast)) { packet = unicast; unicast = ftNext[unicast]!; } else { packet = broadcast; broadcast = ftNext[broadcast]!; }
      const frags = ftFrags[packet]!;
      if (sink.sendFragments !== undefined) {
        let len = 0;
        for (let entry = packet; entry < packet + frags; entry++) len += ftLen[entry]!;
        if (sink.sendFragments(ftOff, ftLen, packet, frags)) { sent++; bytes += len; } else dropped++;
        continue;
      }
      let at = sink.slot();
      if (at < 0 && !kicked) {
        sink.kick();
        sink.reclaim();
        kicked = true;
        at = sink.slot();
      }
      if (at < 0) { dropped++; continue; }
      let len = 0;
      for (let entry = packet; entry < packet + frags; entry++) {
        const src = ftOff[entry]!, fragmentLength = ftLen[entry]!;
        if (src < 0 || len + fragmentLength > max) { len = -1; break; }
        sp.copy(at + len, src, fragmentLength, max - len);
        len += fragmentLength;
      }
      if (len <= 0) { dropped++; continue; }
      sink.commit(len);
      sent++;
      bytes += len;
    }
    sink.kick();
    vale.countDelivered(switchPort, dropped, sent, bytes);
  }

  close(): void {
    if (this.wholeScratch >= 0) space().unmapLocal(this.wholeScratch, WHOLE_SCRATCH);
    this.wholeScratch = -1;
    for (const sink of this.sinkOfInterface.values()) sink.close();
    this.sinkOfInterface.clear();
    this.sinkOfPort.fill(null);
  }
}

/**
 * Sends what `vale`'s handle forwards to attached interfaces in namespace `netns` (this
 * thread's) straight to them, through sinks made by `open`. For the attach daemons.
 */
export function enableDirect(vale: ValeAdapter, open: DirectSinkOpener, netns: number): void {
  vale.setOutsideDelivery(new DirectDelivery(open, netns));
}

/**
 * Forwards one frame that carries a virtio-net header (a GSO super-frame: `len` bytes at space
 * offset `at`, the header at `hdrAt`) whole, if the learning bridge sends it to an attached
 * interface whose transmit ring this handle holds (enableDirect): the kernel then cuts it after
 * a single copy. Returns false, having delivered nothing, for any other destination (another
 * port, a flood, a drop) or with a plugged-in lookup: the caller cuts the frame into wire-sized
 * packets and injects those (netmap hands such frames to a port without virtio-net headers the
 * same way). Counted as one packet on `ring` and on the destination's RX ring.
 */
export function injectWhole(vale: ValeAdapter, ring: Ring, at: number, len: number, hdrAt: number): boolean {
  const delivery = vale.outsideDelivery;
  if (!(delivery instanceof DirectDelivery)) return false;
  const switchPort = vale.destinationOfWhole(at, len);
  const sink = delivery.sinkFor(switchPort);
  if (sink === null || sink.sendWhole === undefined || !sink.sendWhole(hdrAt, at + len - hdrAt)) return false;
  sync.count(ring.sp, ring.offset, 1, len, 0);
  vale.countDelivered(switchPort, 0, 1, len);
  return true;
}
