/**
 * `netmap:IF` ports: the port type that puts a Linux interface behind netmap rings.
 *
 * Rings (netmap order): N NIC TX, 1 host TX, N NIC RX, 1 host RX, all in the global memory
 * region (mem_id 1, shared by every interface port, so bridges between interfaces swap buffers).
 * N = the interface's queue count, or `@conf:rings=N` (then a flow-hash fanout spreads received
 * frames over the N RX rings).
 *  - NIC RX ring k  <- TPACKET_V3 ring k (fanout member when N > 1), frames from the wire only;
 *  - NIC TX ring k  -> TPACKET_V2 ring k with qdisc bypass, one kick per txsync;
 *  - host RX ring   <- frames the host stack sends on IF (read from the split's host TAP);
 *  - host TX ring   -> frames handed to the host stack as if received on IF (marked socket).
 * Opening the port installs the wire/host split (split.ts) — the stack no longer sees the wire —
 * and closing the last handle of this process removes it. One process holds an interface at a
 * time (another gets EBUSY, as with a NIC owned by someone else); its threads share it, each with
 * packet sockets for the rings its handles bind. An RX ring is fed by one thread's socket (a
 * second thread binding it gets EBUSY); several RX rings form one fanout group.
 *
 * A TAP device that nobody has open is different: the port attaches to the TAP's descriptor
 * and *is* the wire (NIC TX frames are received by the kernel on the TAP, NIC RX gets what the
 * kernel sends on it). Such a port has no host rings (the stack is the other side already).
 *
 * txsync copies [hwcur, head) into the kernel ring as far as it has room (NS_MOREFRAG chains are
 * joined into one frame) and gives the slots back at once (tail = hwcur - 1). rxsync releases
 * [hwcur, head) and copies new frames in (a frame the sender left with a partial checksum gets
 * it completed; a GSO super-frame is cut into wire-sized segments, see gso.ts).
 */
import { fail, NetmapError } from '../errors.js';
import { registry, type Registry } from '../memory/registry.js';
import { ownerAlive, pause, selfTid } from '../memory/lock.js';
import * as L from '../memory/layout.js';
import { shmDirectory } from '../memory/space.js';
import type { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import * as native from '../native/index.js';
import { requestedVnetHdr, type OpenOptions, type Port, type PortAdapter, type PortType } from '../ports/port.js';
import type { PortSpec } from '../ports/name.js';
import { interfaceInfo, interfaceExists, currentNetnsId, checkInterfaceName } from './ifinfo.js';
import { PacketReceiver, PacketTransmitter, FANOUT_HASH, FANOUT_QM, RX_VLAN_VALID, pow2AtLeast, type ReceiverOptions, type TransmitterOptions } from './packet.js';
import { abandonPacketRing, type PendingRing } from './packet-socket.js';
import { HostSplit, SPLIT_MARK, WIRE_MARK, isHelperDevice, hostDeviceName, removeSplitOfThisProcess, startCaptureOfThisProcess, hostTxTurnaroundOfThisProcess, splitMethod } from './split.js';
import { TapDevice } from './tap.js';
import { GsoSplitter } from './gso.js';
import { completePartialChecksum } from './csum.js';
import { watch, unwatch, rearm, release, notifierReady, type Watch } from './notifier.js';
import { XskSocket, XDP_HEADROOM, XDP_PKT_CONTD, XDP_RING_NEED_WAKEUP, type PreparedUmem } from './xdp-socket.js';
import { attachXdp, detachXdp, setQueueSocket, type XdpAttachment } from './xdp-program.js';

export const IF_DEFAULT_SLOTS = 1024;
export const IF_MAX_RINGS = 16;
export const IF_MAX_SLOTS = 16384;
/** Buffers the default NIC RX rings of one interface port hold in all (see geometry()). */
const IF_RX_BUFFERS = 16384;
/** The most slots a default NIC RX ring gets (a single-queue interface's). */
const IF_RX_DEFAULT_MAX = 8192;
/** The most slots the host RX ring gets (it follows rx slots up to this). */
const IF_HOST_RX_MAX = 4096;
/** Frames in the kernel ring behind a NIC RX ring (16 MiB at MTU 1500). */
const IF_RX_FRAMES = 8192;
/** Geometry of the global region (mem_id 1), made by the first interface port. */
export const GLOBAL_BUFS = 65536;
export const GLOBAL_PAGES = 8192;

/** How long an open waits for another thread of this process that is installing the split. */
const SPLIT_WAIT_MS = 3000;

const ETHTOOL_GDRVINFO = 0x3, SIOCETHTOOL = 0x8946;

/** Whether `ifname` is a TAP device (ethtool driver name "tun"). */
export function isTapDevice(ifname: string): boolean {
  return driverName(ifname) === 'tun';
}

/** The driver of `ifname` as ethtool names it ('veth', 'tun', ...), '' when it cannot tell. */
export function driverName(ifname: string): string {
  const info = Buffer.alloc(196);
  info.writeUInt32LE(ETHTOOL_GDRVINFO, 0);
  const ifr = Buffer.alloc(40);
  ifr.write(ifname, 0, 15, 'utf8');
  ifr.writeBigUInt64LE(BigInt(native.bufferAddress(info)), 16);
  let fd = -1;
  try {
    fd = native.socket(native.AF_INET, native.SOCK_DGRAM, 0);
    native.ioctl(fd, SIOCETHTOOL, ifr);
    return info.toString('latin1', 4, 36).replace(/\0.*$/s, '');
  } catch {
    return '';
  } finally {
    if (fd >= 0) native.closeFd(fd);
  }
}

/**
 * What this thread holds for one open interface port. Sockets exist for the rings this thread's
 * handles bind, counted per ring; the split is process-wide: the thread that installed it holds
 * `split`, the others read the host TAP through an adopted descriptor.
 */
interface IfState {
  index: number;
  generation: number;
  ifname: string;
  users: number;
  split: HostSplit | null;
  /** Frames the host stack sends (host RX ring): the split's host TAP. */
  hostRead: TapDevice | null;
  tap: TapDevice | null;
  nicRx: (PacketReceiver | undefined)[];
  nicTx: (PacketTransmitter | undefined)[];
  hostTx: PacketTransmitter | null;
  rxRefs: number[];
  txRefs: number[];
  hostTxRefs: number;
  /** Per NIC RX ring: the splitter of a GSO frame being cut, and its next segment (-1: none). */
  gso: GsoSplitter[];
  gsoNext: number[];
  /** AF_PACKET: per NIC RX ring, its buffers being faulted in on a native thread (prefaultRing). */
  prefault: (native.BackgroundCall | undefined)[];
  /** Per NIC RX ring: what takes received frames instead of the ring's slots (bwrap). */
  rxDiverters: (RingDiverter | undefined)[];
  /** The process's backend of the NIC rings (IF_BACKEND_*). */
  backend: number;
  /** Why AF_XDP is not used ('' when it is, or when AF_PACKET was asked for). */
  backendNote: string;
  /** What the installing thread attached (AF_XDP); other threads use the map by descriptor. */
  xdp: XdpAttachment | null;
  xdpMapFd: number;
  /** AF_XDP: queue k's socket in this thread, counted per ring that binds it. */
  xsk: (XdpQueue | undefined)[];
  /**
   * Set-ups begun by openState before the split (beginAhead), so that their waits overlap with
   * the links': the first AF_XDP socket's UMEM registration, or the packet sockets' rings. Taken
   * over by bindRings; what is left is given up when the first handle's open ends.
   */
  begun: Begun | null;
}

interface Begun {
  umem: PreparedUmem | null;
  rx: (PendingRing | undefined)[];
  tx: (PendingRing | undefined)[];
  hostTx: PendingRing | undefined;
}

/**
 * One AF_XDP socket (queue k) in this thread, serving NIC RX ring k and NIC TX ring k.
 *
 * RX by buffer swap: the fill ring holds the buffers of the RX ring's free slots (the slots the
 * kernel may fill, [tail, hwcur - 1)), each posted 256 bytes before its start so the frame lands
 * at offset 0. A frame received into buffer X goes to slot `tail`; if X was lent from another
 * free slot S, S takes tail's old buffer instead. So every buffer always belongs to one slot (a
 * crash loses nothing), and `lentBy[X]` (the slot that lent X, NO_SLOT when X is not out) keeps
 * track. TX by address: slot [hwcur, head) are posted as descriptors of their own buffers; a
 * slot is given back once the completion ring has counted it (in order).
 */
interface XdpQueue {
  sock: XskSocket;
  refs: number;
  /** Per buffer index: the RX slot whose free place it fills while the kernel has it. */
  lentBy: Uint16Array;
  /** Next RX slot to post (the posted slots are [tail, postEnd)); -1 before the first rxsync. */
  postEnd: number;
  txInFlight: number;
  /**
   * veth and TAP: frames a local stack sent arrive with the checksum it left for a device to
   * finish, and AF_XDP says nothing of it (AF_PACKET says TP_STATUS_CSUMNOTREADY): complete
   * those (csum.ts, completePartialChecksum).
   */
  fixPartial: boolean;
  /** The last descriptor taken had XDP_PKT_CONTD: the next one continues a frame. */
  inChain: boolean;
  /** Buffers [0, umemBufs) of the pool are the UMEM (the same for every socket of the thread). */
  umemBufs: number;
  /** A slot holds a buffer beyond the UMEM: remake the sockets over the whole pool (growUmem). */
  grow: boolean;
  /**
   * RX descriptors whose address is no buffer this queue lent to the fill ring (never placed in
   * a slot; counted as drops of the ring too). None are expected: a count here means a kernel or
   * bookkeeping surprise.
   */
  strayDescriptors: number;
}

const NO_SLOT = 0xffff;
/** IfState.backend: the process's backend of the NIC rings. */
const IF_BACKEND_PACKET = 0, IF_BACKEND_XDP_NATIVE = 1, IF_BACKEND_XDP_SKB = 2;
/** Descriptors per frame in copy mode (MAX_SKB_FRAGS + 1 on a default kernel, one kept spare). */
const XDP_MAX_FRAGS = 17;
const EAGAIN = 11;

export type InterfaceBackend = 'xdp' | 'packet';

/** The backend a name asks for: @conf:backend, else NETMAP_TS_IF_BACKEND, else null (choose). */
function askedBackend(port: Port): InterfaceBackend | null {
  const c = port.parsed.conf.backend;
  if (c !== undefined) return c;
  const env = process.env.NETMAP_TS_IF_BACKEND;
  if (env === 'xdp' || env === 'packet') return env;
  if (env !== undefined && env !== '') fail('EINVAL', `${port.spec}: NETMAP_TS_IF_BACKEND=${env}: not a backend (xdp or packet; unset: AF_XDP where it works)`);
  return null;
}

/** sp.u32 index of kring word `field` (KR_IF_XDP_*) of NIC RX ring 0: the process's XDP descriptors. */
function xdpWord(port: Port, field: number): number {
  const reg = registry();
  return (reg.ringOffset(port.index, port.numTxRings + port.numHostTxRings) + field) >>> 2;
}

/** Why AF_XDP cannot serve `port` (a sentence), or null when it can be tried. */
function xdpUnfit(port: Port): string | null {
  const info = interfaceInfo(port.name);
  const r = port.txRings.find((x) => !x.host) ?? port.rxRings.find((x) => !x.host);
  const bufSize = r?.bufSize ?? L.DEFAULT_BUF_SIZE;
  if (port.numTxRings !== port.numRxRings) return `AF_XDP needs as many TX as RX rings (${port.numTxRings} and ${port.numRxRings})`;
  if (port.numRxRings !== info.rxQueues) return `AF_XDP serves ring k with queue k: ${port.numRxRings} rings for ${info.rxQueues} RX queues`;
  if (bufSize < 2048 || bufSize > L.PAGE_SIZE) return `AF_XDP chunks are 2048 to ${L.PAGE_SIZE} bytes, buffers here are ${bufSize}`;
  return null;
}

/**
 * Attaches the XDP redirect program for the process (the installing thread), recording it in
 * the registry; returns null after a failure when AF_XDP was not asked for (AF_PACKET then), with
 * the reason in st.backendNote.
 */
function chooseBackend(port: Port, st: IfState, asked: InterfaceBackend | null, unfit: string | null): void {
  st.backend = IF_BACKEND_PACKET;
  st.backendNote = '';
  if (asked !== 'packet') {
    try {
      if (unfit !== null) fail('EOPNOTSUPP', `${port.spec}: ${unfit}`);
      // in driver mode the program is the wire cut too: it drops what it does not redirect
      st.xdp = attachXdp(port.name, interfaceInfo(port.name).index, port.numRxRings, { dropUnbound: true });
      st.xdpMapFd = st.xdp.mapFd;
      st.backend = st.xdp.mode === 'native' ? IF_BACKEND_XDP_NATIVE : IF_BACKEND_XDP_SKB;
    } catch (e) {
      if (asked === 'xdp' || !(e instanceof NetmapError)) throw e;
      st.backendNote = e.message;
    }
  }
  const x = st.xdp, u32 = port.mem.u32;
  u32[xdpWord(port, L.KR_IF_XDP_MAP_FD)] = x?.mapFd ?? 0;
  u32[xdpWord(port, L.KR_IF_XDP_LINK)] = x === null ? 0 : (x.linkFd | (x.mode === 'skb' ? L.IF_XDP_SKB : 0)) >>> 0;
}

/**
 * Takes what a NIC RX ring receives instead of the ring's slots (netmap's bwrap receive side:
 * src/bwrap/receive-hook.ts). One per ring, set with setRingDiverter; called by the ring's rxsync
 * when no GSO frame is half cut into the ring.
 */
export interface RingDiverter {
  /** Takes frames from `rx` (cutting GSO frames with `gso`), counts them on `ring`; returns how many it took. */
  divert(ring: Ring, rx: PacketReceiver, gso: GsoSplitter): number;
  /** Frames it dropped so far (malformed or too long). */
  readonly drops: number;
  /** Gives back what it holds (the port state goes, or another diverter replaces it). */
  close(): void;
}

const states = new Map<number, IfState>();

function geometry(spec: PortSpec, queues: number): { rings: number; txRings: number; rxRings: number; hostRings: number; txSlots: number; rxSlots: number; hostRxSlots: number } {
  const c = spec.conf;
  const rings = c.txRings ?? c.rxRings ?? queues;
  const txRings = c.txRings ?? rings, rxRings = c.rxRings ?? rings;
  const hostRings = Math.max(c.hostTxRings ?? 1, c.hostRxRings ?? 1);
  // NIC RX rings are all the depth an AF_XDP socket has: its fill ring lends the ring's free
  // slots, so a receiver stopped for longer than the ring lasts loses frames. 8192 slots (16 MiB)
  // up to 2 rings, fewer with more rings (16384 buffers at most in all). At trafgen's 1.4 Mpps on
  // a veth, 4096 slots (3 ms) lost 0.1-0.25% of 1 M frames to this VM's stalls in 4 runs of 5,
  // where 8192 lost none in 5 (pkt-gen rx and dump; tcpdump, with 2 MiB, none either; 2026-12-03).
  // The host RX ring, fed from the host TAP's own queue, keeps at most 4096.
  const rxDefault = Math.max(IF_DEFAULT_SLOTS, Math.min(IF_RX_DEFAULT_MAX, 2 ** Math.floor(Math.log2(IF_RX_BUFFERS / rxRings))));
  const txSlots = c.txSlots ?? IF_DEFAULT_SLOTS, rxSlots = c.rxSlots ?? rxDefault;
  for (const [v, what] of [[txRings, 'tx rings'], [rxRings, 'rx rings']] as const) {
    if (!Number.isInteger(v) || v < 1 || v > IF_MAX_RINGS) fail('EINVAL', `${spec.spec}: ${what} must be 1 to ${IF_MAX_RINGS}, not ${v}`);
  }
  if (hostRings !== 1 && hostRings !== 0) fail('EINVAL', `${spec.spec}: interfaces have one host ring pair`);
  for (const v of [txSlots, rxSlots]) {
    if (!Number.isInteger(v) || v < 2 || v > IF_MAX_SLOTS) fail('EINVAL', `${spec.spec}: ring slots must be 2 to ${IF_MAX_SLOTS}, not ${v}`);
  }
  return { rings, txRings, rxRings, hostRings: 1, txSlots, rxSlots, hostRxSlots: Math.min(rxSlots, IF_HOST_RX_MAX) };
}

/** Finds or creates the port entry of interface `spec.name` (under the registry lock). */
function resolveInterface(reg: Registry, spec: PortSpec, opts: OpenOptions): number {
  const name = spec.parentName || spec.name;
  const existing = reg.findPort(name);
  if (existing >= 0) {
    // Interface ports are registered by name: the same name in another network namespace is
    // another interface, which this directory cannot hold at the same time.
    const netns = reg.portGet(existing, L.PE_IF_NETNS);
    if (reg.portGet(existing, L.PE_KIND) === L.PORT_KIND_INTERFACE && netns !== 0 && netns !== (currentNetnsId() >>> 0)) {
      fail('EBUSY', `${spec.spec}: an interface named '${name}' of another network namespace is in netmap mode under ${shmDirectory()}; use another NETMAP_TS_DIR in this namespace`);
    }
    return existing;
  }
  try {
    checkInterfaceName(name);
  } catch {
    return -1;
  }
  if (!interfaceExists(name)) fail('ENXIO', `${spec.spec}: no interface named '${name}' in this network namespace`);
  if (isHelperDevice(name)) fail('EINVAL', `${spec.spec}: '${name}' is a netmap-ts helper device`);
  const info = interfaceInfo(name);
  // backend=packet on a TAP: its network device, as any interface (see bindInterface)
  const tap = isTapDevice(name) && spec.conf.backend !== 'packet';
  const vnetHdr = requestedVnetHdr(spec, opts) ?? 0;
  if (vnetHdr !== 0 && !tap) fail('EINVAL', `${spec.spec}: only TAP devices carry a virtio-net header ('${name}' is not one)`);
  const g = geometry(spec, tap ? 1 : Math.max(info.rxQueues, info.txQueues));
  const memId = reg.globalRegion({ numBufs: GLOBAL_BUFS, numPages: GLOBAL_PAGES, bufSize: L.DEFAULT_BUF_SIZE });
  const index = reg.createPort({
    name, kind: L.PORT_KIND_INTERFACE, memId, flags: 0,
    numTx: tap ? 1 : g.txRings, numRx: tap ? 1 : g.rxRings, numHostTx: tap ? 0 : 1, numHostRx: tap ? 0 : 1,
    txSlots: g.txSlots, rxSlots: g.rxSlots, hostRxSlots: g.hostRxSlots,
  });
  reg.portSet(index, L.PE_IF_IFINDEX, info.index);
  reg.portSet(index, L.PE_IF_NETNS, currentNetnsId() >>> 0);
  reg.portSet(index, L.PE_IF_OWNER, 0);
  reg.portSet(index, L.PE_IF_TAP, tap ? 1 : 0);
  reg.portSet(index, L.PE_HDR_LEN, vnetHdr);
  reg.portSet(index, L.PE_MFS, Math.min(info.mtu + 18, L.DEFAULT_BUF_SIZE));
  return index;
}


/**
 * This thread's state for `port`, made on its first handle: the TAP (a TAP nobody holds is the
 * wire), or the split — installed by the first thread of this process, shared by the others.
 */
function openState(port: Port): IfState {
  const have = states.get(port.index);
  if (have !== undefined) return have;
  const ifname = port.name;
  const st: IfState = {
    index: port.index, generation: 0, ifname, users: 0, split: null, hostRead: null, tap: null,
    nicRx: [], nicTx: [], hostTx: null, rxRefs: [], txRefs: [], hostTxRefs: 0, gso: [], gsoNext: [], prefault: [],
    rxDiverters: [], backend: IF_BACKEND_PACKET, backendNote: '', xdp: null, xdpMapFd: 0, xsk: [], begun: null,
  };
  if (!interfaceExists(ifname)) fail('ENXIO', `${port.spec}: interface '${ifname}' is not in this thread's network namespace`);
  // a misspelt NETMAP_TS_IF_BACKEND or NETMAP_TS_SPLIT is refused (EINVAL) before anything is made
  const asked = askedBackend(port);
  splitMethod();
  const reg = registry();
  // a TAP is opened by its descriptor (TUNSETIFF), unless backend=packet asks for its network
  // device (a TAP another process holds, such as a QEMU guest's: the attach daemon's fallback)
  if (port.numHostTxRings === 0 && isTapDevice(ifname) && port.parsed.conf.backend !== 'packet') {
    try {
      st.tap = TapDevice.open(ifname, { existing: true, up: true, vnetHdr: port.vnetHdrLen });
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `${port.spec}: TAP device '${ifname}' is held by another process or thread`);
      throw e;
    }
  } else {
    const deadline = Date.now() + SPLIT_WAIT_MS;
    const unfit = asked === 'packet' ? null : xdpUnfit(port);
    beginAhead(port, st, asked === 'packet' || unfit !== null);
    try {
      installSplit(port, st, asked, unfit, deadline);
    } catch (e) {
      dropBegun(st);
      throw e;
    }
  }
  states.set(port.index, st);
  return st;
}

/**
 * Installs the split for the process (the first thread), or finds it installed by another thread
 * of the process (waiting up to `deadline` for one that is installing it), and chooses the
 * backend. EBUSY when another live process holds the interface.
 */
function installSplit(port: Port, st: IfState, asked: InterfaceBackend | null, unfit: string | null, deadline: number): void {
  const reg = registry();
  const ifname = st.ifname;
  for (;;) {
    try {
      // With nft and tcx what the stack sends is captured once a handle binds the host RX ring
      // (the host TAP is made only then: a netmap:IF open makes no device); with tc from the
      // start (switching later would spawn tc again). Where AF_XDP will likely serve, its
      // program cuts the wire (no ingress chain or link; added below if it does not).
      const split = HostSplit.install(ifname, {
        capture: port.rxRings.some((r) => r.host) || splitMethod() === 'tc',
        ingressCut: asked === 'packet' || unfit !== null,
      });
      st.split = split;
      if (!split.capture && split.method === 'tc') split.setCapture(true); // this install found no tcx
      if (split.capture) st.hostRead = split.host;
      try {
        chooseBackend(port, st, asked, unfit);
        if (st.xdp === null || !st.xdp.dropsUnbound) split.addIngressCut();
      } catch (e) {
        if (st.xdp !== null) { detachXdp(st.xdp); st.xdp = null; }
        split.remove();
        throw e;
      }
      reg.locked(() => {
        reg.portSet(port.index, L.PE_IF_OWNER, process.pid);
        reg.portSet(port.index, L.PE_IF_USERS, 0);
        reg.portSet(port.index, L.PE_IF_SINK_FD, split.lockFd); // the ownership lock
        reg.portSet(port.index, L.PE_IF_HOST_FD, split.capture ? split.hostFd : 0);
        reg.portSet(port.index, L.PE_IF_INGRESS_LINK_FD, Math.max(0, split.cutWord));
        reg.portSet(port.index, L.PE_IF_EGRESS_LINK_FD, Math.max(0, split.egressLink));
        reg.portSet(port.index, L.PE_IF_FANOUT, 0);
      });
      break;
    } catch (e) {
      if (!(e instanceof NetmapError) || e.code !== 'EBUSY') throw e;
      // held: by another thread of this process (share it), or by another process
      const owner = reg.portGet(port.index, L.PE_IF_OWNER);
      if (owner === process.pid) {
        // the owner's backend was chosen before it wrote its pid; the host TAP, if any, is
        // adopted when a host ring is bound
        st.xdpMapFd = port.mem.u32[xdpWord(port, L.KR_IF_XDP_MAP_FD)]!;
        st.backend = st.xdpMapFd === 0 ? IF_BACKEND_PACKET : (port.mem.u32[xdpWord(port, L.KR_IF_XDP_LINK)]! & L.IF_XDP_SKB) !== 0 ? IF_BACKEND_XDP_SKB : IF_BACKEND_XDP_NATIVE;
        break;
      }
      // a thread of ours may be installing it right now; another process would have its pid
      // here. A dead owner's devices go with its descriptors, which the kernel may still be
      // closing (an AF_XDP socket's release waits for RCU): wait for them too.
      const deadOwner = owner !== 0 && owner !== process.pid && !native.processAlive(owner);
      if ((owner !== 0 && owner !== process.pid && !deadOwner) || Date.now() > deadline) throw e;
      pause(10);
    }
  }
}

/** The options of NIC RX ring k's receiver (AF_PACKET) on `ifname`, for `n` RX rings; the fanout group is added by the caller. */
function nicReceiverOptions(ifname: string, n: number): ReceiverOptions {
  const info = interfaceInfo(ifname);
  const mode = info.rxQueues === n && n > 1 ? FANOUT_QM : FANOUT_HASH;
  // Frames are handed over one at a time (TPACKET_V2): a frame is ours as soon as the kernel has
  // written it, where V3 blocks added up to 1 ms per hop. A GSO super-frame comes whole through
  // the socket queue; the virtio-net header says how to cut it.
  const frameSize = pow2AtLeast(Math.max(2048, info.mtu + 128));
  return {
    dropMark: SPLIT_MARK, fanoutMode: mode,
    frameSize, blockSize: Math.max(1 << 16, frameSize), blockCount: Math.max(2, IF_RX_FRAMES * frameSize >> 16), vnetHdr: true, perFrame: true,
  };
}

/** A NIC TX ring's transmitter: to the wire (qdisc bypass, WIRE_MARK for the nft split's egress chain). */
export const NIC_TX_OPTIONS: TransmitterOptions = { frames: 1024, mark: WIRE_MARK };
const HOST_TX_OPTIONS: TransmitterOptions = { frames: 256, qdiscBypass: false, mark: SPLIT_MARK };

/**
 * Starts, on native threads, the set-ups of the first handle of this thread that wait in the
 * kernel, before the split is installed (its links wait for RCU grace periods too, one after the
 * other): with AF_PACKET (`packet`) each ring's PACKET_RX_RING / PACKET_TX_RING
 * (synchronize_net), with AF_XDP the UMEM registration (the kernel pins the pages). bindRings
 * takes them over; nothing here is visible outside this process until then. A failure to begin
 * only means the work is done later, where its error is reported.
 */
function beginAhead(port: Port, st: IfState, packet: boolean): void {
  const nic = [...port.rxRings, ...port.txRings].filter((r) => !r.host);
  const b: Begun = { umem: null, rx: [], tx: [], hostTx: undefined };
  st.begun = b;
  try {
    if (port.txRings.some((r) => r.host)) b.hostTx = PacketTransmitter.begin(st.ifname, HOST_TX_OPTIONS);
    if (packet) {
      for (const r of port.rxRings) if (!r.host) b.rx[r.id] = PacketReceiver.begin(st.ifname, nicReceiverOptions(st.ifname, port.numRxRings));
      for (const r of port.txRings) if (!r.host) b.tx[r.id] = PacketTransmitter.begin(st.ifname, NIC_TX_OPTIONS);
    } else if (nic.length > 0) {
      const r = nic[0]!;
      b.umem = XskSocket.prepare({ umemOffset: r.bufBase, umemLength: umemWindow(port, r) * r.bufSize, chunkSize: r.bufSize });
    }
  } catch { /* made later, where the error is reported */ }
}

/** Gives up what beginAhead began and bindRings did not take (joins the threads, closes the sockets). */
function dropBegun(st: IfState): void {
  const b = st.begun;
  if (b === null) return;
  st.begun = null;
  if (b.umem !== null) XskSocket.abandon(b.umem);
  for (const p of [...b.rx, ...b.tx, b.hostTx]) if (p !== undefined) abandonPacketRing(p);
}

/** Takes `list[k]` out of `list` (a begun ring for the constructor). */
function take(list: (PendingRing | undefined)[] | undefined, k: number): PendingRing | undefined {
  if (list === undefined) return undefined;
  const p = list[k];
  list[k] = undefined;
  return p;
}

/**
 * Creates the sockets of the rings `port` binds that this thread has none for yet (counted per
 * ring); on failure, undoes what it did.
 */
function bindRings(port: Port, st: IfState): void {
  if (st.tap !== null) return;
  const done: Ring[] = [];
  try {
    bindRingList(port, st, done);
  } catch (e) {
    unbindRings(port, st, done);
    throw e;
  }
}

/**
 * Starts faulting in the buffers of RX ring `r` on a native thread. Why: an AF_PACKET receiver
 * copies each frame into its slot's buffer, and the first pass over a fresh region's buffers
 * took a page fault every other frame, 12 us each on the development VM: 49 ms for 8192 slots,
 * in which a burst right after the receiver's start line overflowed the kernel ring (pkt-gen rx
 * took 75-80% of 100 k frames sent at once, 94% and 100% with the pages in; 2026-12-04). AF_XDP needs
 * none of this: registering the UMEM pins every page. Undefined when the slots' buffers are not
 * one compact range (a ring that swapped buffers with others).
 */
function prefaultRing(port: Port, r: Ring): native.BackgroundCall | undefined {
  let lo = Infinity, hi = -1;
  for (let i = 0; i < r.numSlots; i++) {
    const at = r.slotBufOffset(i);
    if (at < lo) lo = at;
    if (at > hi) hi = at;
  }
  const span = hi + r.bufSize - lo;
  if (hi < 0 || span > 2 * r.numSlots * r.bufSize) return undefined;
  const start = Math.floor((port.mem.address + lo) / L.PAGE_SIZE) * L.PAGE_SIZE;
  const end = Math.ceil((port.mem.address + hi + r.bufSize) / L.PAGE_SIZE) * L.PAGE_SIZE;
  return native.populateInBackground(start, end - start);
}

function bindRingList(port: Port, st: IfState, done: Ring[]): void {
  if (st.backend !== IF_BACKEND_PACKET) {
    bindXdpRings(port, st, done);
    return;
  }
  const reg = registry();
  const ifname = st.ifname;
  const me = selfTid();
  const i32 = port.mem.i32;
  const n = port.numRxRings;
  for (const r of port.rxRings) {
    if (r.host) { // the host TAP is read by whichever thread syncs the ring
      hostCapture(port, st);
      continue;
    }
    const k = r.id;
    const w = (r.offset + L.KR_RX_SERVER) >>> 2;
    const server = Atomics.compareExchange(i32, w, 0, me);
    if (server !== 0 && server !== me && (ownerAlive(server) || Atomics.compareExchange(i32, w, server, me) !== server)) {
      fail('EBUSY', `${port.spec}: RX ring ${k} of ${ifname} is served by another thread (${server}); bind other rings (-N) in each thread`);
    }
    if (st.nicRx[k] === undefined) {
      try {
        // The first socket makes the fanout group, the others (any thread) join it: under the
        // registry lock, or two threads opening at once would make a group each (and every frame
        // would be received twice).
        const options = nicReceiverOptions(ifname, n);
        const begun = take(st.begun?.rx, k);
        const make = (group: number | undefined): PacketReceiver => new PacketReceiver(ifname, { ...options, fanoutGroup: group, begun });
        const rx = n === 1 ? make(undefined) : reg.locked(() => {
          const fanout = reg.portGet(port.index, L.PE_IF_FANOUT);
          const r = make(fanout > 0 ? fanout - 1 : -1);
          if (fanout === 0) reg.portSet(port.index, L.PE_IF_FANOUT, r.fanoutGroup + 1);
          return r;
        });
        st.nicRx[k] = rx;
        st.prefault[k] = prefaultRing(port, r);
        st.gso[k] = new GsoSplitter();
        st.gsoNext[k] = -1;
        st.rxRefs[k] = 0;
      } catch (e) {
        Atomics.compareExchange(i32, w, me, 0);
        throw e;
      }
    }
    st.rxRefs[k]!++;
    done.push(r);
  }
  for (const r of port.txRings) {
    if (r.host) {
      openHostTx(port, st);
      done.push(r);
      continue;
    }
    const k = r.id;
    if (st.nicTx[k] === undefined) {
      st.nicTx[k] = new PacketTransmitter(ifname, { ...NIC_TX_OPTIONS, begun: take(st.begun?.tx, k) });
      st.txRefs[k] = 0;
    }
    st.txRefs[k]!++;
    done.push(r);
  }
}

/**
 * Counts a handle into this thread's host TX transmitter, made at the first: after the split's
 * way for marked frames into the stack, made once per process where the split needs its own
 * (nft: a tcx turnaround link, whose descriptor the registry keeps for whichever thread closes
 * last).
 */
function openHostTx(port: Port, st: IfState): void {
  if (st.hostTx === null) {
    const reg = registry();
    reg.locked(() => {
      if (reg.portGet(port.index, L.PE_IF_EGRESS_LINK_FD) > 0) return;
      let link: number;
      if (st.split !== null) {
        st.split.addHostTxPath();
        link = st.split.egressLink;
      } else {
        link = hostTxTurnaroundOfThisProcess(reg.portGet(port.index, L.PE_IF_IFINDEX), reg.portGet(port.index, L.PE_IF_INGRESS_LINK_FD));
      }
      if (link > 0) reg.portSet(port.index, L.PE_IF_EGRESS_LINK_FD, link);
    });
    st.hostTx = new PacketTransmitter(st.ifname, { ...HOST_TX_OPTIONS, begun: takeHostTx(st) });
  }
  st.hostTxRefs++;
}

/** The host TX ring's begun transmitter, taken out of st.begun. */
function takeHostTx(st: IfState): PendingRing | undefined {
  const p = st.begun?.hostTx;
  if (st.begun !== null) st.begun.hostTx = undefined;
  return p;
}

/**
 * AF_XDP: makes queue k's socket for each NIC ring k `port` binds (one socket per queue serves
 * both directions); host rings as with AF_PACKET. A thread serving an RX ring claims it as with
 * AF_PACKET; queue k's socket of another thread makes the bind fail with EBUSY.
 */
function bindXdpRings(port: Port, st: IfState, done: Ring[]): void {
  const me = selfTid();
  const i32 = port.mem.i32;
  for (const r of [...port.rxRings, ...port.txRings]) {
    if (r.host) {
      if (r.dir === L.RING_DIR_TX) {
        openHostTx(port, st);
        done.push(r);
      } else {
        hostCapture(port, st); // the host TAP is read by whichever thread syncs the ring
      }
      continue;
    }
    const k = r.id;
    if (r.dir === L.RING_DIR_RX) {
      const w = (r.offset + L.KR_RX_SERVER) >>> 2;
      const server = Atomics.compareExchange(i32, w, 0, me);
      if (server !== 0 && server !== me && (ownerAlive(server) || Atomics.compareExchange(i32, w, server, me) !== server)) {
        fail('EBUSY', `${port.spec}: RX ring ${k} of ${st.ifname} is served by another thread (${server}); bind other rings (-N) in each thread`);
      }
    }
    let q = st.xsk[k];
    if (q === undefined) {
      try {
        q = openQueue(port, st, r);
      } catch (e) {
        if (r.dir === L.RING_DIR_RX) Atomics.compareExchange(i32, (r.offset + L.KR_RX_SERVER) >>> 2, me, 0);
        if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `${port.spec}: queue ${k} of ${st.ifname} has an AF_XDP socket already (another thread binds ring ${k}?): ${e.message}`);
        throw e;
      }
      st.xsk[k] = q;
    }
    // netmap rings receive from the moment they are bound, not from their first rxsync
    if (r.dir === L.RING_DIR_RX) lendFree(r, q);
    q.refs++;
    done.push(r);
  }
}

/**
 * How many buffers, from buffer 0, the UMEM of a socket opened now covers: what the region holds
 * in use (on a fresh region the lowest indices, so this port's rings) and as many again, for
 * ports opened after this one whose buffers will be swapped into its rings (the other interface
 * of a bridge, the attach daemon's switch port, pipes). The kernel pins (allocates) every page of
 * a UMEM when it is registered: the whole 128 MiB pool cost about 0.1 s per open, and as much
 * again to free at close. A buffer beyond it later makes the sockets grow (growUmem).
 */
function umemWindow(port: Port, r: Ring): number {
  const reg = registry();
  const high = reg.locked(() => reg.region(port.memId).highestInUse());
  const perPage = Math.max(1, Math.floor(L.PAGE_SIZE / r.bufSize));
  return Math.min(r.numBufs, Math.ceil(2 * (high + 1) / perPage) * perPage);
}

/** Opens queue k's socket (sharing the UMEM of another socket of this thread when there is one). */
function openQueue(port: Port, st: IfState, r: Ring, queue = r.id, umemBufs = 0, fdNumber?: number): XdpQueue {
  const other = st.xsk.find((x) => x !== undefined && x.sock.fd !== fdNumber);
  const slots = Math.max(...[...port.txRings, ...port.rxRings].map((x) => x.numSlots));
  // the first socket of the thread: the one whose UMEM registration beginAhead started, if any
  const prepared = other === undefined && umemBufs === 0 ? st.begun?.umem ?? undefined : undefined;
  if (prepared !== undefined) st.begun!.umem = null;
  const bufs = other?.umemBufs ?? (umemBufs > 0 ? umemBufs : prepared !== undefined ? prepared.umemLength / r.bufSize : umemWindow(port, r));
  let sock: XskSocket;
  try {
    sock = XskSocket.open({
      ifindex: interfaceInfo(st.ifname).index, queue,
      umemOffset: r.bufBase, umemLength: bufs * r.bufSize, chunkSize: r.bufSize, ringSize: pow2AtLeast(slots),
      sharedUmemFd: other?.sock.fd, sharedMultiBuffer: other?.sock.multiBuffer, fdNumber, prepared,
    });
  } finally {
    if (prepared !== undefined) XskSocket.abandon(prepared); // when open did not take it over
  }
  try {
    setQueueSocket(st.xdpMapFd, queue, sock.fd);
  } catch (e) {
    sock.close();
    throw e;
  }
  if (sock.zeroCopy) {
    const reg = registry();
    Atomics.or(port.mem.i32, xdpWord(port, L.KR_IF_XDP_LINK), L.IF_XDP_ZEROCOPY | 0);
  }
  const driver = driverName(st.ifname);
  return {
    sock, refs: 0, lentBy: new Uint16Array(r.numBufs).fill(NO_SLOT), postEnd: -1, txInFlight: 0,
    fixPartial: driver === 'veth' || driver === 'tun', inChain: false, umemBufs: bufs, grow: false, strayDescriptors: 0,
  };
}

/**
 * A slot of this thread's AF_XDP rings holds a buffer beyond the UMEM (swapped in from a port
 * opened after the UMEM was registered, or an extra buffer): remakes every socket of the thread
 * (they share one UMEM) over the whole buffer pool, under the same descriptor numbers. What the
 * old sockets had received and no RX ring had room for is lost (counted as drops of the RX ring);
 * slots in flight on TX are given back. The kernel frees a closed socket's queue in the
 * background: the bind waits for it (XskSocket.open, up to a second). Once per thread and port.
 */
function growUmem(port: Port, st: IfState): void {
  const reg = registry();
  const sp = port.mem;
  const queues: [number, XdpQueue][] = [];
  st.xsk.forEach((q, k) => { if (q !== undefined) queues.push([k, q]); });
  // what the old RX rings still hold (the handle took what its rings had room for) is lost
  for (const [k, q] of queues) {
    const rx = q.sock.rx;
    const lost = (Atomics.load(sp.i32, rx.prodWord) - Atomics.load(sp.i32, rx.consWord)) | 0;
    if (lost > 0) sync.count(sp, reg.ringOffset(port.index, port.numTxRings + port.numHostTxRings + k), 0, 0, lost);
  }
  const numbers = queues.map(([, q]) => q.sock.retire());
  for (const [k] of queues) st.xsk[k] = undefined;
  const r = port.rxRings[0] ?? port.txRings[0]!; // the geometry of the pool (any ring of the port)
  queues.forEach(([k, q], i) => {
    let fresh: XdpQueue;
    try {
      fresh = openQueue(port, st, r, k, r.numBufs, numbers[i]);
    } catch (e) {
      for (const n of numbers.slice(i)) native.closeFd(n);
      throw e;
    }
    fresh.refs = q.refs;
    fresh.strayDescriptors = q.strayDescriptors;
    st.xsk[k] = fresh;
  });
  // the new fill rings get the free RX slots' buffers now, as at bind (rings of other handles
  // of this thread at their next rxsync)
  for (const rx of port.rxRings) if (!rx.host && st.xsk[rx.id] !== undefined) lendFree(rx, st.xsk[rx.id]!);
}

/**
 * Gives this thread the host TAP (the host RX ring's frames): the process's, adopted by
 * descriptor, or made now if the split was installed without capture — by the installer's split,
 * or from another thread through the egress link's descriptor.
 */
function hostCapture(port: Port, st: IfState): void {
  if (st.hostRead !== null) return;
  const reg = registry();
  reg.locked(() => {
    const ifindex = reg.portGet(port.index, L.PE_IF_IFINDEX);
    const fd = reg.portGet(port.index, L.PE_IF_HOST_FD);
    if (fd > 0) {
      st.hostRead = TapDevice.adopt(fd, hostDeviceName(ifindex));
      return;
    }
    if (st.split !== null) {
      st.split.setCapture(true);
      st.hostRead = st.split.host;
    } else {
      st.hostRead = startCaptureOfThisProcess(st.ifname, ifindex, reg.portGet(port.index, L.PE_IF_INGRESS_LINK_FD), reg.portGet(port.index, L.PE_IF_EGRESS_LINK_FD));
    }
    reg.portSet(port.index, L.PE_IF_HOST_FD, st.hostRead.fd);
  });
}

/**
 * Undoes bindRings for `rings` (default: every ring `port` binds). The sockets' descriptors go
 * into `closer` when given (the caller closes them all at once: each close waits for an RCU grace
 * period), else they are closed here.
 */
function unbindRings(port: Port, st: IfState, rings: Ring[] = [...port.rxRings, ...port.txRings], closer?: number[]): void {
  if (st.tap !== null) return;
  const fds = closer ?? [];
  try {
    unbindRingList(port, st, rings, fds);
  } finally {
    if (closer === undefined) native.closeConcurrently(fds);
  }
}

function unbindRingList(port: Port, st: IfState, rings: Ring[], closer: number[]): void {
  if (st.backend !== IF_BACKEND_PACKET) {
    unbindXdpRings(port, st, rings, closer);
    return;
  }
  const me = selfTid();
  for (const r of rings) {
    if (r.dir !== L.RING_DIR_RX || r.host) continue;
    const k = r.id;
    if (st.nicRx[k] === undefined || --st.rxRefs[k]! > 0) continue;
    st.prefault[k]?.join();
    st.prefault[k] = undefined;
    closer.push(st.nicRx[k]!.detach());
    st.nicRx[k] = undefined;
    Atomics.compareExchange(port.mem.i32, (r.offset + L.KR_RX_SERVER) >>> 2, me, 0);
  }
  for (const r of rings) {
    if (r.dir !== L.RING_DIR_TX) continue;
    if (r.host) {
      if (st.hostTx !== null && --st.hostTxRefs <= 0) { closer.push(...st.hostTx.detach()); st.hostTx = null; st.hostTxRefs = 0; }
      continue;
    }
    const k = r.id;
    if (st.nicTx[k] === undefined || --st.txRefs[k]! > 0) continue;
    closer.push(...st.nicTx[k]!.detach());
    st.nicTx[k] = undefined;
  }
}

/**
 * AF_XDP: lends the buffers of RX ring slots [postEnd, hwcur - 1) — the slots the kernel may fill
 * that it has no buffer for yet — to the fill ring, each 256 bytes before its start.
 */
function lendFree(ring: Ring, q: XdpQueue): void {
  const sock = q.sock, fill = sock.fill;
  const i32 = ring.sp.i32, u32 = ring.sp.u32;
  const n = ring.numSlots, bufSize = ring.bufSize, numBufs = ring.numBufs;
  const lentBy = q.lentBy;
  const hwcur = sync.hwcur(ring);
  let tail = u32[(ring.offset + L.KR_HWTAIL) >>> 2]!;
  if (tail >= n) tail = hwcur;
    if (q.postEnd < 0 || q.postEnd >= n) q.postEnd = tail;
    const stop = hwcur === 0 ? n - 1 : hwcur - 1;
    if (q.postEnd !== stop) {
      let prod = Atomics.load(i32, fill.prodWord);
      const room = fill.size - ((prod - Atomics.load(i32, fill.consWord)) | 0);
      let posted = 0;
      let p = q.postEnd;
      while (p !== stop && posted < room) {
        const idx = ring.slotBufIdx(p);
        if (idx >= q.umemBufs && idx < numBufs) { q.grow = true; break; } // not in the UMEM (yet)
        if (idx >= 2 && idx < numBufs) {
          const d = (fill.desc + ((prod & fill.mask) << 3)) >>> 2;
          u32[d] = idx * bufSize - XDP_HEADROOM;
          u32[d + 1] = 0;
          lentBy[idx] = p;
          prod = (prod + 1) | 0;
          posted++;
        }
        p = ring.next(p);
      }
      q.postEnd = p;
      if (posted > 0) {
        Atomics.store(i32, fill.prodWord, prod);
        if ((u32[fill.flagsWord]! & XDP_RING_NEED_WAKEUP) !== 0) sock.wakeRx();
      }
    }
}

function unbindXdpRings(port: Port, st: IfState, rings: Ring[], closer: number[]): void {
  const me = selfTid();
  for (const r of rings) {
    if (r.host) {
      if (r.dir === L.RING_DIR_TX && st.hostTx !== null && --st.hostTxRefs <= 0) { closer.push(...st.hostTx.detach()); st.hostTx = null; st.hostTxRefs = 0; }
      continue;
    }
    const q = st.xsk[r.id];
    if (q === undefined || --q.refs > 0) continue;
    closer.push(q.sock.detach());
    st.xsk[r.id] = undefined;
    // the queue's RX ring is served by nobody now (the socket served it for every handle)
    Atomics.compareExchange(port.mem.i32, (registry().ringOffset(port.index, port.numTxRings + port.numHostTxRings + r.id) + L.KR_RX_SERVER) >>> 2, me, 0);
  }
}

/**
 * Counts an adapter of this process in or out (L.PE_IF_USERS). The last one out puts the interface
 * back in the stack's hands, from whichever thread it closes: the installer removes its split;
 * another thread removes the rules and closes the TAPs by descriptor number. The descriptors in
 * `closer` (the leaving handle's sockets) are closed here, at the same time as the split's links
 * and TAP when this is the last one out; the ownership lock goes after all of them.
 */
function countProcessUser(port: Port, st: IfState, delta: number, closer: number[] = []): void {
  if (st.tap !== null) { native.closeConcurrently(closer); return; }
  const reg = registry();
  const last = reg.locked(() => {
    const users = Math.max(0, reg.portGet(port.index, L.PE_IF_USERS) + delta);
    reg.portSet(port.index, L.PE_IF_USERS, users);
    if (users > 0 || delta > 0 || reg.portGet(port.index, L.PE_IF_OWNER) !== process.pid) return null;
    const fds = {
      sink: reg.portGet(port.index, L.PE_IF_SINK_FD), host: reg.portGet(port.index, L.PE_IF_HOST_FD),
      ingress: reg.portGet(port.index, L.PE_IF_INGRESS_LINK_FD), egress: reg.portGet(port.index, L.PE_IF_EGRESS_LINK_FD),
      xdp: { mapFd: port.mem.u32[xdpWord(port, L.KR_IF_XDP_MAP_FD)]!, linkFd: port.mem.u32[xdpWord(port, L.KR_IF_XDP_LINK)]! & L.IF_XDP_FD_MASK },
    };
    for (const w of [L.PE_IF_OWNER, L.PE_IF_SINK_FD, L.PE_IF_HOST_FD, L.PE_IF_INGRESS_LINK_FD, L.PE_IF_EGRESS_LINK_FD]) reg.portSet(port.index, w, 0);
    port.mem.u32[xdpWord(port, L.KR_IF_XDP_MAP_FD)] = 0;
    port.mem.u32[xdpWord(port, L.KR_IF_XDP_LINK)] = 0;
    reg.portSet(port.index, L.PE_IF_FANOUT, 0);
    return fds;
  });
  if (last === null) { native.closeConcurrently(closer); return; }
  // the XDP link and map, the sockets, the tcx links and the host TAP all at once (each close
  // of a socket, link or TAP waits for an RCU grace period), the lock last: whoever opens next
  // finds the hook and the queues free
  const x = st.xdp ?? last.xdp;
  st.xdp = null;
  // by the descriptors the registry holds: the host TAP may have been made by another thread
  try {
    removeSplitOfThisProcess(st.ifname, last.sink, last.host, last.ingress, last.egress, [x.linkFd, x.mapFd, ...closer]);
  } catch { /* the interface may be gone */ }
}

/**
 * Drops this thread's state. Its sockets were closed by unbindRings; the split's TAPs are left
 * to countProcessUser (other threads of the process may still read the host TAP).
 */
function closeState(st: IfState): void {
  states.delete(st.index);
  dropBegun(st);
  st.hostRead = null;
  st.split = null;
  st.tap?.close();
  st.tap = null;
  for (const diverter of st.rxDiverters) diverter?.close();
  st.rxDiverters.length = 0;
}

const NS_MOREFRAG = L.NS_MOREFRAG, NS_BUF_CHANGED = L.NS_BUF_CHANGED;
/** Longest TAP frame with a virtio-net header: 64 KiB of IP packet, Ethernet + VLAN header, the header. */
const TAP_FRAME_MAX = 65535 + 18 + 12;
/** Longest chain a TAP write gathers (netmap's NETMAP_MAX_FRAGS). */
const IOV_MAX_CHAIN = L.NETMAP_MAX_FRAGS;


class InterfaceAdapter implements PortAdapter {
  private readonly port: Port;
  private readonly st: IfState;
  private readonly u8: Uint8Array;
  private readonly watchKey: number;
  /** AF_PACKET: frames dropped because they were longer than the kernel ring frame (GSO) or a buffer. */
  oversize = 0;
  /** struct iovec array for a TAP's chains (readv/writev). */
  private readonly iov = Buffer.alloc(IOV_MAX_CHAIN * native.IOVEC_SIZE);

  constructor(port: Port) {
    this.port = port;
    const st = openState(port);
    this.st = st;
    st.users++;
    const asked = askedBackend(port);
    if (asked !== null && st.tap === null && [...port.rxRings, ...port.txRings].some((r) => !r.host) && (asked === 'xdp') !== (st.backend !== IF_BACKEND_PACKET)) {
      dropBegun(st);
      if (--st.users <= 0) closeState(st);
      fail('EBUSY', `${port.spec}: ${port.name} is open in this process with the ${asked === 'xdp' ? 'AF_PACKET' : 'AF_XDP'} backend`);
    }
    try {
      countProcessUser(port, st, +1);
    } catch (e) {
      dropBegun(st);
      if (--st.users <= 0) closeState(st);
      throw e;
    }
    try {
      bindRings(port, st); // undoes its own partial work on failure
    } catch (e) {
      dropBegun(st);
      this.leave();
      throw e;
    }
    dropBegun(st); // what the first handle's rings did not take (AF_XDP did not serve after all)
    this.u8 = port.mem.u8;
    const watches: Watch[] = [];
    const memId = port.memId;
    for (const r of port.rxRings) {
      const fd = this.rxFd(r);
      if (fd >= 0) watches.push({ fd, events: native.POLLIN, ringOffset: r.offset, memId });
    }
    for (const r of port.txRings) {
      const fd = this.txFd(r);
      if (fd >= 0) watches.push({ fd, events: native.POLLOUT, ringOffset: r.offset, memId });
    }
    this.watchKey = watches.length > 0 ? watch(watches) : 0;
  }

  private rxFd(r: Ring): number {
    const st = this.st;
    if (st.tap !== null) return st.tap.fd;
    if (r.host) return st.hostRead?.fd ?? -1;
    return st.xsk[r.id]?.sock.fd ?? st.nicRx[r.id]?.fd ?? -1;
  }

  private txFd(r: Ring): number {
    const st = this.st;
    if (st.tap !== null) return -1; // a TAP write never waits
    if (r.host) return st.hostTx?.fd ?? -1;
    return st.xsk[r.id]?.sock.fd ?? st.nicTx[r.id]?.fd ?? -1;
  }

  /**
   * How the NIC rings reach the interface: 'tap' (the port is a TAP's descriptor), 'packet'
   * (AF_PACKET sockets), or 'xdp native|skb copy|zerocopy' (AF_XDP: the XDP program's mode, then
   * the sockets' bind mode).
   */
  get backend(): string {
    const st = this.st;
    if (st.tap !== null) return 'tap';
    if (st.backend === IF_BACKEND_PACKET) return 'packet';
    const zc = (this.port.mem.u32[xdpWord(this.port, L.KR_IF_XDP_LINK)]! & L.IF_XDP_ZEROCOPY) !== 0;
    return `xdp ${st.backend === IF_BACKEND_XDP_NATIVE ? 'native' : 'skb'} ${zc ? 'zerocopy' : 'copy'}`;
  }

  /** Why AF_XDP is not in use when it was not ruled out by the name ('' otherwise). */
  get backendNote(): string {
    return this.st.backendNote;
  }

  /**
   * AF_XDP txsync: counts the completions (in order: one per descriptor), posts [hwcur, head) by
   * address (an NS_MOREFRAG chain as one frame of several descriptors, with multi-buffer; dropped
   * without), kicks the kernel (copy mode transmits in sendto, 32 frames a call: loop while it
   * says EAGAIN), and gives back the slots whose descriptors completed.
   */
  private txsyncXdp(ring: Ring, q: XdpQueue, head: number): void {
    const sock = q.sock, tx = sock.tx, comp = sock.comp;
    const sp = ring.sp, i32 = sp.i32, u32 = sp.u32;
    const n = ring.numSlots;
    const done = (Atomics.load(i32, comp.prodWord) - Atomics.load(i32, comp.consWord)) | 0;
    if (done > 0) {
      Atomics.store(i32, comp.consWord, (Atomics.load(i32, comp.consWord) + done) | 0);
      q.txInFlight = Math.max(0, q.txInFlight - done);
    }
    let cur = sync.hwcur(ring);
    if (cur >= n) cur = 0;
    let packets = 0, bytes = 0, drops = 0;
    if (cur !== head) {
      let prod = Atomics.load(i32, tx.prodWord);
      const free = tx.size - ((prod - Atomics.load(i32, tx.consWord)) | 0);
      let used = 0;
      const numBufs = ring.numBufs, bufSize = ring.bufSize, sg = sock.multiBuffer, umemBufs = q.umemBufs;
      while (cur !== head) {
        // the frame: slots cur .. last (NS_MOREFRAG on all but the last)
        let j = cur, count = 1, len = 0, ok = true;
        for (;;) {
          const l = ring.slotLen(j), idx = ring.slotBufIdx(j);
          if (idx >= umemBufs && idx < numBufs) { q.grow = true; count = -1; break; } // sent once the UMEM grew
          if (idx < 2 || idx >= numBufs || l === 0 || l > bufSize) ok = false;
          len += l;
          if ((ring.slotFlags(j) & NS_MOREFRAG) === 0) break;
          j = ring.next(j);
          if (j === head) { count = -1; break; }
          count++;
        }
        if (count < 0) break; // an incomplete chain waits for its end (or for the UMEM to grow)
        if (count > 1 && (!sg || count > XDP_MAX_FRAGS)) ok = false;
        if (ok && used + count > free) break;
        const after = ring.next(j);
        if (ok) {
          for (let s = cur, c = 0; c < count; c++, s = ring.next(s)) {
            const d = (tx.desc + ((prod & tx.mask) << 4)) >>> 2;
            const f = ring.slotFlags(s);
            u32[d] = ring.slotBufIdx(s) * bufSize;
            u32[d + 1] = 0;
            u32[d + 2] = ring.slotLen(s);
            u32[d + 3] = (f & NS_MOREFRAG) !== 0 ? XDP_PKT_CONTD : 0;
            if (f & NS_BUF_CHANGED) ring.setSlotFlags(s, f & ~NS_BUF_CHANGED);
            prod = (prod + 1) | 0;
          }
          used += count;
          packets++;
          bytes += len;
        } else {
          drops++;
        }
        cur = after;
      }
      if (used > 0) {
        Atomics.store(i32, tx.prodWord, prod);
        q.txInFlight += used;
      }
      sync.setHwcur(ring, cur);
      sync.count(sp, ring.offset, packets, bytes, drops);
    }
    // copy mode sends in sendto only, 32 descriptors a call; zero-copy when the flag asks
    if (Atomics.load(i32, tx.prodWord) !== Atomics.load(i32, tx.consWord) && (!sock.zeroCopy || (u32[tx.flagsWord]! & XDP_RING_NEED_WAKEUP) !== 0)) {
      for (let tries = (q.txInFlight >>> 5) + 2; tries > 0; tries--) {
        if (sock.kick() !== -EAGAIN) break;
        if (Atomics.load(i32, tx.prodWord) === Atomics.load(i32, tx.consWord)) break;
      }
    }
    const t = cur - q.txInFlight - 1;
    sync.setTail(ring, ((t % n) + n) % n);
  }

  /**
   * AF_XDP rxsync: lends the buffers of the slots that became free to the fill ring, then takes
   * received descriptors into slots from tail by buffer swap (see XdpQueue), XDP_PKT_CONTD as
   * NS_MOREFRAG.
   */
  private rxsyncXdp(ring: Ring, q: XdpQueue): number {
    const sock = q.sock, rx = sock.rx;
    const sp = ring.sp, i32 = sp.i32, u32 = sp.u32;
    const n = ring.numSlots, bufSize = ring.bufSize, numBufs = ring.numBufs;
    const lentBy = q.lentBy;
    const hwcur = sync.hwcur(ring);
    let tail = u32[(ring.offset + L.KR_HWTAIL) >>> 2]!;
    if (tail >= n) tail = hwcur;
    lendFree(ring, q);
    let cons = Atomics.load(i32, rx.consWord);
    const avail = (Atomics.load(i32, rx.prodWord) - cons) | 0;
    let packets = 0, bytes = 0, drops = 0;
    for (let i = 0; i < avail && ring.next(tail) !== hwcur; i++) {
      const d = (rx.desc + ((cons & rx.mask) << 4)) >>> 2;
      cons = (cons + 1) | 0;
      // unaligned-mode address: the chunk's address, plus the frame's offset in the top 16 bits
      const data = u32[d]! + (u32[d + 1]! >>> 16);
      const len = u32[d + 2]!, options = u32[d + 3]!;
      const x = data / bufSize;
      const from = x >= 2 && x < numBufs && x === Math.floor(x) ? lentBy[x]! : NO_SLOT;
      if (from === NO_SLOT) { drops++; continue; } // not a buffer we lent: never ours to place
      const old = ring.slotBufIdx(tail);
      if (old !== x) {
        ring.setSlotBufIdx(from, old);
        if (old < numBufs) lentBy[old] = from;
      }
      lentBy[x] = NO_SLOT;
      ring.setSlotBufIdx(tail, x);
      ring.setSlotLen(tail, len);
      ring.setSlotFlags(tail, (options & XDP_PKT_CONTD) !== 0 ? NS_MOREFRAG : 0);
      if (q.fixPartial && !q.inChain && (options & XDP_PKT_CONTD) === 0) completePartialChecksum(sp.u8, ring.bufOffset(x), len);
      q.inChain = (options & XDP_PKT_CONTD) !== 0;
      tail = ring.next(tail);
      if ((options & XDP_PKT_CONTD) === 0) packets++;
      bytes += len;
    }
    Atomics.store(i32, rx.consWord, cons);
    if (drops > 0) q.strayDescriptors += drops;
    if (packets > 0 || bytes > 0 || drops > 0) sync.count(sp, ring.offset, packets, bytes, drops);
    sync.setTail(ring, tail);
    return packets;
  }

  txsync(ring: Ring): boolean {
    const head = sync.txPrologue(ring);
    if (head < 0) return false;
    const st = this.st;
    const q = ring.host ? undefined : this.xdpQueue(ring);
    if (q !== undefined) {
      this.txsyncXdp(ring, q, head);
      if (q.grow) { this.growUmem(); this.txsyncXdp(ring, st.xsk[ring.id]!, head); }
      return true;
    }
    const n = ring.numSlots;
    let cur = sync.hwcur(ring);
    if (cur >= n) cur = 0;
    let packets = 0, bytes = 0, drops = 0;
    if (cur !== head) {
      const u8 = this.u8;
      if (st.tap !== null) {
        // a TAP takes one frame per write: an NS_MOREFRAG chain (a super-frame with its
        // virtio-net header) goes as one writev of its buffers
        const tap = st.tap, iov = this.iov, address = ring.sp.address;
        while (cur !== head) {
          let j = cur, len = 0, count = 0, complete = false;
          for (;;) {
            const l = ring.slotLen(j), f = ring.slotFlags(j);
            if (count < IOV_MAX_CHAIN) {
              native.setIovec(iov, count, address + ring.slotBufOffset(j), l);
            }
            count++;
            len += l;
            if (f & NS_BUF_CHANGED) ring.setSlotFlags(j, f & ~NS_BUF_CHANGED);
            j = ring.next(j);
            if ((f & NS_MOREFRAG) === 0) { complete = true; break; }
            if (j === head) break;
          }
          if (!complete) break;
          if (count <= IOV_MAX_CHAIN && len > 0 && tap.writev(iov, count, len)) { packets++; bytes += len; } else drops++;
          cur = j;
        }
      } else {
        const tx = ring.host ? st.hostTx! : st.nicTx[ring.id]!;
        const sp = ring.sp;
        tx.reclaim();
        while (cur !== head) {
          const at = tx.slot();
          if (at < 0) break;
          let j = cur, len = 0, complete = false;
          for (;;) {
            const l = ring.slotLen(j), f = ring.slotFlags(j);
            if (len + l <= tx.maxFrame) sp.copy(at + len, ring.slotBufOffset(j), l, tx.maxFrame - len);
            len += l;
            if (f & NS_BUF_CHANGED) ring.setSlotFlags(j, f & ~NS_BUF_CHANGED);
            j = ring.next(j);
            if ((f & NS_MOREFRAG) === 0) { complete = true; break; }
            if (j === head) break;
          }
          if (!complete) break;
          if (len > 0 && len <= tx.maxFrame) { tx.commit(len); packets++; bytes += len; } else drops++;
          cur = j;
        }
        tx.kick();
      }
      sync.setHwcur(ring, cur);
      sync.count(ring.sp, ring.offset, packets, bytes, drops);
    }
    sync.setTail(ring, cur === 0 ? n - 1 : cur - 1);
    return true;
  }

  rxsync(ring: Ring): boolean {
    const head = sync.rxPrologue(ring);
    const ok = head >= 0;
    const st = this.st;
    const n = ring.numSlots;
    if (ok) sync.setHwcur(ring, head);
    const q = ring.host ? undefined : this.xdpQueue(ring);
    if (q !== undefined) {
      if (q.grow) this.growUmem();
      sync.stampRx(ring, this.rxsyncXdp(ring, st.xsk[ring.id]!) > 0);
      return ok;
    }
    const hwcur = sync.hwcur(ring);
    let tail = ring.sp.u32[(ring.offset + L.KR_HWTAIL) >>> 2]!;
    if (tail >= n) tail = hwcur;
    let packets = 0, bytes = 0;
    const bufSize = ring.bufSize;
    if (st.tap !== null && st.tap.vnetHdr !== 0) {
      // frames with a virtio-net header may be 64 KiB super-frames: each is read into a chain of
      // up to TAP_CHAIN buffers (one readv), NS_MOREFRAG on all but its last slot
      const tap = st.tap, iov = this.iov, address = ring.sp.address;
      const chain = Math.min(IOV_MAX_CHAIN, Math.ceil(TAP_FRAME_MAX / bufSize));
      for (;;) {
        let free = hwcur - tail - 1;
        if (free < 0) free += n;
        if (free < chain) break;
        for (let k = 0, j = tail; k < chain; k++, j = ring.next(j)) native.setIovec(iov, k, address + ring.slotBufOffset(j), bufSize);
        const len = tap.readv(iov, chain);
        if (len <= 0) break;
        for (let left = len; left > 0; left -= bufSize) {
          ring.setSlotLen(tail, left > bufSize ? bufSize : left);
          ring.setSlotFlags(tail, left > bufSize ? NS_MOREFRAG : 0);
          tail = ring.next(tail);
        }
        packets++;
        bytes += len;
      }
    } else if (st.tap !== null || ring.host) {
      const dev = st.tap ?? st.hostRead!;
      while (ring.next(tail) !== hwcur) {
        const len = dev.read(ring.slotBufOffset(tail), bufSize);
        if (len <= 0) break;
        ring.setSlotLen(tail, len);
        ring.setSlotFlags(tail, 0);
        tail = ring.next(tail);
        packets++;
        bytes += len;
      }
    } else if (st.rxDiverters[ring.id] !== undefined && st.gsoNext[ring.id]! < 0) {
      const diverter = st.rxDiverters[ring.id]!;
      const dropsBefore = diverter.drops;
      this.diverted += diverter.divert(ring, st.nicRx[ring.id]!, st.gso[ring.id]!);
      this.oversize += diverter.drops - dropsBefore;
    } else {
      const rx = st.nicRx[ring.id]!;
      const g = st.gso[ring.id]!;
      let pend = st.gsoNext[ring.id]!;
      while (ring.next(tail) !== hwcur) {
        if (pend >= 0) {
          // next segment of the GSO frame being cut (the frame stays valid: its block is held)
          const len = g.segmentLength(pend);
          if (len <= bufSize) {
            g.emit(pend, ring.slotBufOffset(tail));
            ring.setSlotLen(tail, len);
            ring.setSlotFlags(tail, 0);
            tail = ring.next(tail);
            packets++;
            bytes += len;
          } else {
            this.oversize++;
          }
          pend = pend + 1 < g.count ? pend + 1 : -1;
          continue;
        }
        if (rx.next() < 0) break;
        if ((rx.gsoType & 0x7f) !== 0) {
          if (rx.length === rx.wireLength && (rx.status & RX_VLAN_VALID) === 0 && g.begin(this.u8, rx.data, rx.length, rx.gsoType, rx.gsoSize)) {
            pend = 0;
          } else {
            this.oversize++;
            sync.count(ring.sp, ring.offset, 0, 0, 1);
          }
          continue;
        }
        if (rx.length < rx.wireLength || rx.length > bufSize) {
          this.oversize++;
          sync.count(ring.sp, ring.offset, 0, 0, 1);
          continue;
        }
        const len = rx.copyFrame(ring.slotBufOffset(tail), bufSize);
        ring.setSlotLen(tail, len);
        ring.setSlotFlags(tail, 0);
        tail = ring.next(tail);
        packets++;
        bytes += len;
      }
      st.gsoNext[ring.id] = pend;
      if (pend < 0) rx.flush();
    }
    if (packets > 0) sync.count(ring.sp, ring.offset, packets, bytes, 0);
    sync.setTail(ring, tail);
    sync.stampRx(ring, packets > 0);
    return ok;
  }

  /** Frames taken by ring diverters so far. */
  diverted = 0;

  /**
   * Remakes this thread's AF_XDP sockets over the whole pool (growUmem), after taking into the
   * RX rings of this handle what the old sockets had received.
   */
  private growUmem(): void {
    const st = this.st;
    for (const rx of this.port.rxRings) {
      const q = rx.host ? undefined : st.xsk[rx.id];
      if (q !== undefined) this.rxsyncXdp(rx, q);
    }
    growUmem(this.port, st);
  }

  /** Queue k's AF_XDP socket for NIC ring `ring` (undefined with AF_PACKET; EIO if it was lost). */
  private xdpQueue(ring: Ring): XdpQueue | undefined {
    const st = this.st;
    const q = st.xsk[ring.id];
    if (q === undefined && st.backend !== IF_BACKEND_PACKET && st.tap === null) fail('EIO', `${this.port.spec}: the AF_XDP socket of queue ${ring.id} was lost (remaking it over a larger UMEM failed)`);
    return q;
  }

  armed(ring: Ring): void {
    const fd = ring.dir === L.RING_DIR_TX ? this.txFd(ring) : this.rxFd(ring);
    if (fd >= 0) rearm(fd);
  }

  disarmed(ring: Ring): void {
    const fd = ring.dir === L.RING_DIR_TX ? this.txFd(ring) : this.rxFd(ring);
    if (fd >= 0) release(fd);
  }

  kernelDrops(): number {
    const st = this.st;
    let drops = 0;
    for (const r of this.port.rxRings) {
      if (r.host) continue;
      const q = st.xsk[r.id];
      drops += q !== undefined ? xskDrops(q) : st.nicRx[r.id]?.stats().drops ?? 0;
    }
    return drops;
  }

  /** 1 ms slices until the notifier thread waits on the descriptors (notifier.ts notifierReady). */
  sleepCapMs(): number {
    return notifierReady() ? 1000 : 1;
  }

  close(): void {
    if (this.watchKey !== 0) unwatch(this.watchKey);
    this.release();
  }

  /** Gives back this handle's rings, then leaves (the sockets are closed at once, with the split's descriptors when it goes). */
  private release(): void {
    const closer: number[] = [];
    try {
      unbindRings(this.port, this.st, undefined, closer);
    } finally {
      this.leave(closer);
    }
  }

  /** Counts this handle out of the process and the thread (the last one removes the split), closing `closer`'s descriptors. */
  private leave(closer: number[] = []): void {
    const st = this.st;
    countProcessUser(this.port, st, -1, closer);
    if (--st.users <= 0) closeState(st);
  }
}

/** Interfaces (`netmap:IF`, any name that is not a pipe or a VALE port). */
export const interfacePortType: PortType = {
  name: 'interface', kind: L.PORT_KIND_INTERFACE, family: 'interface', resolve: resolveInterface,
  // An interface can be the parent of pipes (lb): same resolution, no sockets until opened.
  resolvePipeParent: (reg, spec, opts) => (interfaceExists(spec.parentName) ? resolveInterface(reg, spec, opts) : -1),
  adapter: (port) => new InterfaceAdapter(port),
  // The entry goes with its last user unless pipes still hang on it.
  lastUser: (reg, index) => {
    if (reg.portGet(index, L.PE_PIPES) === 0) reg.destroyPort(index);
  },
};

/**
 * Gives what NIC RX ring `k` of `port` (this thread's handle) receives to `diverter` instead of
 * the ring's slots (src/bwrap/receive-hook.ts); `null` gives the frames back to the ring. Needs
 * a per-frame receiver, as netmap:IF ports have.
 */
export function setRingDiverter(port: Port, k: number, diverter: RingDiverter | null): void {
  const st = states.get(port.index);
  if (st === undefined || !(port.adapter instanceof InterfaceAdapter) || st.tap !== null) fail('EINVAL', `${port.spec}: not an interface port with NIC rings in this thread`);
  if (st.nicRx[k] === undefined || !st.nicRx[k]!.perFrame) fail('EINVAL', `${port.spec}: NIC RX ring ${k} is not bound here with a per-frame receiver`);
  st.rxDiverters[k]?.close();
  st.rxDiverters[k] = diverter ?? undefined;
}

/**
 * Whether the TAP device behind `port` (a TAP port of this thread) went away under its descriptor
 * (deleted, for instance with the network namespace it was moved into). False for other ports.
 */
export function tapGone(port: Port): boolean {
  return states.get(port.index)?.tap?.gone ?? false;
}

/** The descriptor of the TAP device behind `port` (a TAP port of this thread), -1 for other ports. */
export function tapDescriptor(port: Port): number {
  return states.get(port.index)?.tap?.fd ?? -1;
}

/** Frames the ring diverters of `port` (this handle) have taken so far. */
export function divertedFrames(port: Port): number {
  return port.adapter instanceof InterfaceAdapter ? port.adapter.diverted : 0;
}

/**
 * Frames the kernel dropped on queue `q`'s socket: rx_dropped (too long, or no buffer: a drop for
 * an empty fill ring is counted there and again in fill_ring_empty_descs) and RX ring full.
 */
function xskDrops(q: XdpQueue): number {
  const s = q.sock.stats();
  return s.rxDropped + s.rxRingFull;
}

/** Kernel-side statistics of an open interface port in this process (for tools and tests). */
export function interfacePortStats(port: Port): { rxDrops: number; rxPackets: number; umemBuffers: number; strayDescriptors: number } | null {
  const st = states.get(port.index);
  if (st === undefined) return null;
  let rxDrops = 0, rxPackets = 0, umemBuffers = 0, strayDescriptors = 0;
  for (const r of st.nicRx) {
    if (r === undefined) continue;
    const s = r.stats();
    rxDrops += s.drops;
    rxPackets += s.packets;
  }
  for (const q of st.xsk) {
    if (q === undefined) continue;
    rxDrops += xskDrops(q); // (AF_XDP counts no received frames)
    umemBuffers = q.umemBufs; // AF_XDP: buffers [0, umemBuffers) of the pool are the UMEM
    strayDescriptors += q.strayDescriptors;
  }
  return { rxDrops, rxPackets, umemBuffers, strayDescriptors };
}
