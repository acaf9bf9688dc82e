/**
 * AF_PACKET sockets: the kernel's packet-socket ABI (TPACKET_V2/V3 headers, status bits, socket
 * options) and every step of setting a socket up, in one place for the receiver
 * (packet-receiver.ts) and the transmitter (packet-transmitter.ts): openPacketRing makes the
 * socket, its memory-mapped ring (mapped into the calling thread's address space,
 * src/memory/space.ts) and the binding, in the order the kernel requires, and undoes all of it
 * on failure.
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { space, shmDirectory, type AddressSpace } from '../memory/space.js';
import { NetmapError, fail } from '../errors.js';

export const ETH_P_ALL_BE = 0x0300; // htons(ETH_P_ALL)
export const PACKET_ADD_MEMBERSHIP = 1, PACKET_RX_RING = 5, PACKET_STATISTICS = 6, PACKET_VERSION = 10;
export const PACKET_TX_RING = 13, PACKET_LOSS = 14, PACKET_FANOUT = 18, PACKET_QDISC_BYPASS = 20;
export const PACKET_IGNORE_OUTGOING = 23, PACKET_VNET_HDR = 15, PACKET_COPY_THRESH = 7;
export const SO_RCVBUFFORCE = 33, FIONBIO = 0x5421;
export const TPACKET_V2 = 1, TPACKET_V3 = 2;
export const PACKET_MR_PROMISC = 1;
export const PACKET_FANOUT_FLAG_UNIQUEID = 0x2000;

export const FANOUT_HASH = 0, FANOUT_LB = 1, FANOUT_CPU = 2, FANOUT_QM = 5;

// TPACKET_V3 block descriptor (struct tpacket_block_desc + tpacket_hdr_v1)
export const BD_STATUS = 8, BD_NUM_PKTS = 12, BD_FIRST = 16;
// struct tpacket3_hdr
export const H3_NEXT = 0, H3_SEC = 4, H3_NSEC = 8, H3_SNAPLEN = 12, H3_LEN = 16, H3_STATUS = 20, H3_MAC = 24;
export const H3_VLAN_TCI = 32, H3_VLAN_TPID = 36;
// struct tpacket2_hdr
export const H2_STATUS = 0, H2_LEN = 4, H2_SNAPLEN = 8, H2_MAC = 12, H2_SEC = 16, H2_NSEC = 20, H2_VLAN_TCI = 24, H2_VLAN_TPID = 26;
export const TX_DATA_OFFSET = 32; // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
/**
 * x86 keeps stores in order and loads in order (TSO), so the status word of a TX frame, or of an
 * RX frame of a per-frame ring, can be written and read with plain accesses there:
 * Atomics.load/store on a non-shared array are not inlined by V8 and cost a builtin call per
 * frame. Elsewhere the Atomics give the ordering.
 */
export const STRONG_ORDER = process.arch === 'x64' || process.arch === 'ia32';
export const VNET_HDR_LEN = 10; // struct virtio_net_hdr: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset u16
export const VNET_HDR_LEN_FIELD = 2;

export const TP_STATUS_USER = 1, TP_STATUS_COPY = 2, TP_STATUS_CSUMNOTREADY = 8, TP_STATUS_VLAN_VALID = 0x10, TP_STATUS_VLAN_TPID_VALID = 0x40;
export const TP_STATUS_AVAILABLE = 0, TP_STATUS_SEND_REQUEST = 1, TP_STATUS_WRONG_FORMAT = 4;

/** Frame status bits a receiver reports (subset of TP_STATUS_*). */
export const RX_CSUM_NOT_READY = TP_STATUS_CSUMNOTREADY, RX_VLAN_VALID = TP_STATUS_VLAN_VALID;

/** struct sockaddr_ll for bind(): `protocolBe` in network order, the interface's index. */
function sockaddrLl(protocolBe: number, ifindex: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(native.AF_PACKET, 0);
  b.writeUInt16LE(protocolBe, 2); // already in network order as a little-endian u16
  b.writeInt32LE(ifindex, 4);
  return b;
}

/** Binds `fd` to interface `ifindex` for protocol `protocolBe` (network order; 0 receives nothing). */
export function bindPacketSocket(fd: number, protocolBe: number, ifindex: number): void {
  native.bind(fd, sockaddrLl(protocolBe, ifindex));
}

/** Opens a raw AF_PACKET socket that receives nothing until bound; EPERM carries a hint. */
export function packetSocket(ifname: string): number {
  try {
    return native.socket(native.AF_PACKET, native.SOCK_RAW, 0);
  } catch (e) {
    if (e instanceof NetmapError && (e.code === 'EPERM' || e.code === 'EACCES')) {
      fail('EPERM', `cannot open a packet socket for '${ifname}': raw packet access needs root or CAP_NET_RAW`);
    }
    throw e;
  }
}

export function setPromisc(fd: number, ifindex: number): void {
  const mreq = Buffer.alloc(16);
  mreq.writeInt32LE(ifindex, 0);
  mreq.writeUInt16LE(PACKET_MR_PROMISC, 4);
  native.setsockoptBuffer(fd, native.SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq);
}

/** Classic BPF program: drop frames whose skb->mark equals `mark`, accept the rest. */
export function dropMarkFilter(mark: number): Buffer {
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

export function attachFilter(fd: number, prog: Buffer): void {
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
export function ringSetupFailed(e: unknown, sp: AddressSpace, fd: number, mapped: number, bytes: number, ifname: string, what: string): never {
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

export function checkCount(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) fail('EINVAL', `${what} must be an integer in [${min}, ${max}], not ${value}`);
  return value;
}

/** The first steps of openPacketRing, which beginPacketRing can run ahead: socket, options, ring. */
export interface PacketRingStart {
  ifname: string;
  /** For messages. */
  direction: 'receive' | 'transmit';
  /** TPACKET_V2 or TPACKET_V3. */
  version: number;
  /** PACKET_RX_RING or PACKET_TX_RING, with its tpacket_req (V2) or tpacket_req3 (V3). */
  ringOption: number;
  request: Buffer;
  ringBytes: number;
  /** Options the kernel takes only before the ring exists (PACKET_VNET_HDR, PACKET_LOSS...). */
  beforeRing?: (fd: number) => void;
  /** What beforeRing sets, as text: a ring begun with other options is not taken over. */
  options: string;
}

/** What openPacketRing sets up, step by step. */
export interface PacketRingSetup extends PacketRingStart {
  ifindex: number;
  /** Options once the ring is mapped at `ringOffset`, before the socket is bound. */
  beforeBind?: (fd: number, ringOffset: number) => void;
  /** Protocol bound, network order: ETH_P_ALL_BE to receive, 0 to receive nothing. */
  protocolBe: number;
  /** Options once bound (promiscuity, fanout). */
  afterBind?: (fd: number) => void;
}

/**
 * Makes an AF_PACKET socket with a memory-mapped ring on one interface: version, options, ring,
 * mapping, binding. On any failure the mapping and the socket go and a NetmapError naming the
 * interface is thrown (ENXIO when the interface vanished meanwhile).
 */
export function openPacketRing(sp: AddressSpace, setup: PacketRingSetup, begun?: PendingRing): { fd: number; ringOffset: number } {
  let pending = begun;
  if (pending !== undefined && !sameStart(pending.start, setup)) {
    abandonPacketRing(pending); // begun for other options: start again here
    pending = undefined;
  }
  pending ??= beginPacketRing(setup, false);
  const fd = pending.fd;
  let mapped = -1;
  try {
    const call = pending.call;
    pending.call = null;
    if (call === null) {
      native.setsockoptBuffer(fd, native.SOL_PACKET, setup.ringOption, setup.request);
    } else {
      call.join();
      // the thread's result is not known: a ring that is not there cannot be mapped (EINVAL);
      // its set-up is then made again here, for its errno (EBUSY: the ring is there after all,
      // and the mapping's own error is the one to report)
      try {
        mapped = sp.mapLocal(fd, setup.ringBytes);
      } catch (e) {
        try {
          native.setsockoptBuffer(fd, native.SOL_PACKET, setup.ringOption, setup.request);
        } catch (again) {
          throw again instanceof NetmapError && again.code === 'EBUSY' ? e : again;
        }
      }
    }
    if (mapped < 0) mapped = sp.mapLocal(fd, setup.ringBytes);
    setup.beforeBind?.(fd, mapped);
    bindPacketSocket(fd, setup.protocolBe, setup.ifindex);
    setup.afterBind?.(fd);
  } catch (e) {
    ringSetupFailed(e, sp, fd, mapped, setup.ringBytes, setup.ifname, setup.direction);
  }
  return { fd, ringOffset: mapped };
}

/**
 * A packet socket whose ring is being set up: beginPacketRing made the socket, set its options and
 * (`background`) started the ring's set-up on a native thread — PACKET_RX_RING/PACKET_TX_RING
 * wait for an RCU grace period (synchronize_net) — for openPacketRing to finish (or
 * abandonPacketRing to undo). Meanwhile the caller does other work, other rings' set-ups among it.
 */
export interface PendingRing {
  readonly start: PacketRingStart;
  readonly fd: number;
  /** The ring's set-up, null until started (or once joined). */
  call: native.BackgroundCall | null;
}

/** Socket, version, options and, on a native thread when `background`, the ring (see PendingRing). */
export function beginPacketRing(start: PacketRingStart, background = true): PendingRing {
  const fd = packetSocket(start.ifname);
  try {
    native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VERSION, start.version);
    start.beforeRing?.(fd);
  } catch (e) {
    native.closeFd(fd);
    if (e instanceof NetmapError && e.code === 'ENODEV') fail('ENXIO', `interface '${start.ifname}' went away`);
    if (e instanceof NetmapError) fail(e.code, `cannot set up a ${start.direction} ring on '${start.ifname}': ${e.message}`);
    throw e;
  }
  const pending: PendingRing = { start, fd, call: null };
  if (background) {
    const call = native.startCall('setsockopt', [fd, native.SOL_PACKET, start.ringOption, start.request, start.request.length], () => {});
    // inline (no thread could be made): nothing ran, openPacketRing sets the ring up itself
    if (call.threaded) pending.call = call;
  }
  return pending;
}

/** Undoes a begun ring (waits for its set-up first). */
export function abandonPacketRing(p: PendingRing): void {
  p.call?.join();
  p.call = null;
  native.closeFd(p.fd);
}

function sameStart(a: PacketRingStart, b: PacketRingStart): boolean {
  return a.ifname === b.ifname && a.options === b.options && a.version === b.version && a.ringOption === b.ringOption && a.ringBytes === b.ringBytes && a.request.equals(b.request);
}

/** The sending options of a transmit socket: qdisc bypass, virtio-net header, skb mark (0: none). */
export function setSendOptions(fd: number, bypass: boolean, vnetHdr: boolean, mark: number): void {
  if (bypass) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_QDISC_BYPASS, 1);
  if (vnetHdr) native.setsockoptInt(fd, native.SOL_PACKET, PACKET_VNET_HDR, 1);
  if (mark !== 0) native.setsockoptInt(fd, native.SOL_SOCKET, native.SO_MARK, mark | 0);
}

/**
 * Joins fanout group `group` with `mode` (FANOUT_*), or with a negative group creates a new one
 * (PACKET_FANOUT_FLAG_UNIQUEID); returns the group id.
 */
export function joinFanout(fd: number, group: number, mode: number): number {
  if (group < 0) {
    native.setsockoptInt(fd, native.SOL_PACKET, PACKET_FANOUT, (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16);
    const out = Buffer.alloc(4);
    native.getsockoptBuffer(fd, native.SOL_PACKET, PACKET_FANOUT, out);
    return out.readUInt32LE(0) & 0xffff;
  }
  const id = checkCount(group, 0, 0xffff, 'fanout group');
  native.setsockoptInt(fd, native.SOL_PACKET, PACKET_FANOUT, id | (mode << 16));
  return id;
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
