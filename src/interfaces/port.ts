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
import type { OpenOptions, Port, PortAdapter, PortType } from '../ports/port.js';
import type { PortSpec } from '../ports/name.js';
import { interfaceInfo, interfaceExists, currentNetnsId, checkInterfaceName } from './ifinfo.js';
import { PacketReceiver, PacketTransmitter, FANOUT_HASH, FANOUT_QM, RX_VLAN_VALID, pow2AtLeast } from './packet.js';
import { HostSplit, SPLIT_MARK, isHelperDevice, hostDeviceName, removeSplitOfThisProcess } from './split.js';
import { TapDevice } from './tap.js';
import { GsoSplitter } from './gso.js';
import { watch, unwatch, rearm, release, type Watch } from './notifier.js';

export const IF_DEFAULT_SLOTS = 1024;
export const IF_MAX_RINGS = 16;
export const IF_MAX_SLOTS = 4096;
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
  const info = Buffer.alloc(196);
  info.writeUInt32LE(ETHTOOL_GDRVINFO, 0);
  const ifr = Buffer.alloc(40);
  ifr.write(ifname, 0, 15, 'utf8');
  ifr.writeBigUInt64LE(BigInt(native.bufferAddress(info)), 16);
  let fd = -1;
  try {
    fd = native.socket(native.AF_INET, native.SOCK_DGRAM, 0);
    native.ioctl(fd, SIOCETHTOOL, ifr);
    return info.toString('latin1', 4, 36).replace(/\0.*$/s, '') === 'tun';
  } catch {
    return false;
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
  /** Per NIC RX ring: what takes received frames instead of the ring's slots (bwrap). */
  rxDiverters: (RingDiverter | undefined)[];
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

function geometry(spec: PortSpec, queues: number): { rings: number; txRings: number; rxRings: number; hostRings: number; txSlots: number; rxSlots: number } {
  const c = spec.conf;
  const rings = c.txRings ?? c.rxRings ?? queues;
  const txRings = c.txRings ?? rings, rxRings = c.rxRings ?? rings;
  const hostRings = Math.max(c.hostTxRings ?? 1, c.hostRxRings ?? 1);
  const txSlots = c.txSlots ?? IF_DEFAULT_SLOTS, rxSlots = c.rxSlots ?? IF_DEFAULT_SLOTS;
  for (const [v, what] of [[txRings, 'tx rings'], [rxRings, 'rx rings']] as const) {
    if (!Number.isInteger(v) || v < 1 || v > IF_MAX_RINGS) fail('EINVAL', `${spec.spec}: ${what} must be 1 to ${IF_MAX_RINGS}, not ${v}`);
  }
  if (hostRings !== 1 && hostRings !== 0) fail('EINVAL', `${spec.spec}: interfaces have one host ring pair`);
  for (const v of [txSlots, rxSlots]) {
    if (!Number.isInteger(v) || v < 2 || v > IF_MAX_SLOTS) fail('EINVAL', `${spec.spec}: ring slots must be 2 to ${IF_MAX_SLOTS}, not ${v}`);
  }
  return { rings, txRings, rxRings, hostRings: 1, txSlots, rxSlots };
}

/** Finds or creates the port entry of interface `spec.name` (under the registry lock). */
function resolveInterface(reg: Registry, spec: PortSpec, _opts: OpenOptions): number {
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
  const tap = isTapDevice(name);
  const g = geometry(spec, tap ? 1 : Math.max(info.rxQueues, info.txQueues));
  const memId = reg.globalRegion({ numBufs: GLOBAL_BUFS, numPages: GLOBAL_PAGES, bufSize: L.DEFAULT_BUF_SIZE });
  const index = reg.createPort({
    name, kind: L.PORT_KIND_INTERFACE, memId, flags: 0,
    numTx: tap ? 1 : g.txRings, numRx: tap ? 1 : g.rxRings, numHostTx: tap ? 0 : 1, numHostRx: tap ? 0 : 1,
    txSlots: g.txSlots, rxSlots: g.rxSlots,
  });
  reg.portSet(index, L.PE_IF_IFINDEX, info.index);
  reg.portSet(index, L.PE_IF_NETNS, currentNetnsId() >>> 0);
  reg.portSet(index, L.PE_IF_OWNER, 0);
  reg.portSet(index, L.PE_IF_TAP, tap ? 1 : 0);
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
    nicRx: [], nicTx: [], hostTx: null, rxRefs: [], txRefs: [], hostTxRefs: 0, gso: [], gsoNext: [],
    rxDiverters: [],
  };
  if (!interfaceExists(ifname)) fail('ENXIO', `${port.spec}: interface '${ifname}' is not in this thread's network namespace`);
  const reg = registry();
  if (port.numHostTxRings === 0 && isTapDevice(ifname)) {
    try {
      st.tap = TapDevice.open(ifname, { existing: true, up: true });
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'EBUSY') fail('EBUSY', `${port.spec}: TAP device '${ifname}' is held by another process or thread`);
      throw e;
    }
  } else {
    const deadline = Date.now() + SPLIT_WAIT_MS;
    for (;;) {
      try {
        st.split = HostSplit.install(ifname, { capture: true });
        st.hostRead = st.split.host;
        const split = st.split;
        reg.locked(() => {
          reg.portSet(port.index, L.PE_IF_OWNER, process.pid);
          reg.portSet(port.index, L.PE_IF_USERS, 0);
          reg.portSet(port.index, L.PE_IF_SINK_FD, split.sink.fd);
          reg.portSet(port.index, L.PE_IF_HOST_FD, split.host.fd);
          reg.portSet(port.index, L.PE_IF_INGRESS_LINK_FD, Math.max(0, split.ingressLink));
          reg.portSet(port.index, L.PE_IF_EGRESS_LINK_FD, Math.max(0, split.egressLink));
          reg.portSet(port.index, L.PE_IF_FANOUT, 0);
        });
        break;
      } catch (e) {
        if (!(e instanceof NetmapError) || e.code !== 'EBUSY') throw e;
        // held: by another thread of this process (share it), or by another process
        const owner = reg.portGet(port.index, L.PE_IF_OWNER), hostFd = reg.portGet(port.index, L.PE_IF_HOST_FD);
        if (owner === process.pid && hostFd > 0) {
          st.hostRead = TapDevice.adopt(hostFd, hostDeviceName(reg.portGet(port.index, L.PE_IF_IFINDEX)));
          break;
        }
        // a thread of ours may be installing it right now; another process would have its pid here
        if ((owner !== 0 && owner !== process.pid) || Date.now() > deadline) throw e;
        pause(10);
      }
    }
  }
  states.set(port.index, st);
  return st;
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

function bindRingList(port: Port, st: IfState, done: Ring[]): void {
  const reg = registry();
  const ifname = st.ifname;
  const me = selfTid();
  const i32 = port.sp.i32;
  const n = port.numRxRings;
  for (const r of port.rxRings) {
    if (r.host) continue; // the host TAP is read by whichever thread syncs the ring
    const k = r.id;
    const w = (r.offset + L.KR_RX_SERVER) >>> 2;
    const server = Atomics.compareExchange(i32, w, 0, me);
    if (server !== 0 && server !== me && (ownerAlive(server) || Atomics.compareExchange(i32, w, server, me) !== server)) {
      fail('EBUSY', `${port.spec}: RX ring ${k} of ${ifname} is served by another thread (${server}); bind other rings (-N) in each thread`);
    }
    if (st.nicRx[k] === undefined) {
      try {
        const info = interfaceInfo(ifname);
        const mode = info.rxQueues === n && n > 1 ? FANOUT_QM : FANOUT_HASH;
        // Frames are handed over one at a time (TPACKET_V2): a frame is ours as soon as the kernel
        // has written it, where V3 blocks added up to 1 ms per hop. A GSO super-frame comes whole
        // through the socket queue; the virtio-net header says how to cut it. The first socket
        // makes the fanout group, the others (any thread) join it: under the registry lock, or
        // two threads opening at once would make a group each (and every frame would be
        // received twice).
        const frameSize = pow2AtLeast(Math.max(2048, info.mtu + 128));
        const make = (group: number | undefined): PacketReceiver => new PacketReceiver(ifname, {
          dropMark: SPLIT_MARK, fanoutGroup: group, fanoutMode: mode,
          frameSize, blockSize: Math.max(1 << 16, frameSize), blockCount: Math.max(2, IF_RX_FRAMES * frameSize >> 16), vnetHdr: true, perFrame: true,
        });
        const rx = n === 1 ? make(undefined) : reg.locked(() => {
          const fanout = reg.portGet(port.index, L.PE_IF_FANOUT);
          const r = make(fanout > 0 ? fanout - 1 : -1);
          if (fanout === 0) reg.portSet(port.index, L.PE_IF_FANOUT, r.fanoutGroup + 1);
          return r;
        });
        st.nicRx[k] = rx;
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
      st.hostTx ??= new PacketTransmitter(ifname, { frames: 256, qdiscBypass: false, mark: SPLIT_MARK });
      st.hostTxRefs++;
      done.push(r);
      continue;
    }
    const k = r.id;
    if (st.nicTx[k] === undefined) {
      st.nicTx[k] = new PacketTransmitter(ifname, { frames: 1024 });
      st.txRefs[k] = 0;
    }
    st.txRefs[k]!++;
    done.push(r);
  }
}

/** Undoes bindRings for `rings` (default: every ring `port` binds). */
function unbindRings(port: Port, st: IfState, rings: Ring[] = [...port.rxRings, ...port.txRings]): void {
  if (st.tap !== null) return;
  const me = selfTid();
  for (const r of rings) {
    if (r.dir !== L.RING_DIR_RX || r.host) continue;
    const k = r.id;
    if (st.nicRx[k] === undefined || --st.rxRefs[k]! > 0) continue;
    st.nicRx[k]!.close();
    st.nicRx[k] = undefined;
    Atomics.compareExchange(port.sp.i32, (r.offset + L.KR_RX_SERVER) >>> 2, me, 0);
  }
  for (const r of rings) {
    if (r.dir !== L.RING_DIR_TX) continue;
    if (r.host) {
      if (st.hostTx !== null && --st.hostTxRefs <= 0) { st.hostTx.close(); st.hostTx = null; st.hostTxRefs = 0; }
      continue;
    }
    const k = r.id;
    if (st.nicTx[k] === undefined || --st.txRefs[k]! > 0) continue;
    st.nicTx[k]!.close();
    st.nicTx[k] = undefined;
  }
}

/**
 * Counts an adapter of this process in or out (L.PE_IF_USERS). The last one out puts the interface
 * back in the stack's hands, from whichever thread it closes: the installer removes its split;
 * another thread removes the rules and closes the TAPs by descriptor number.
 */
function countProcessUser(port: Port, st: IfState, delta: number): void {
  if (st.tap !== null) return;
  const reg = registry();
  const last = reg.locked(() => {
    const users = Math.max(0, reg.portGet(port.index, L.PE_IF_USERS) + delta);
    reg.portSet(port.index, L.PE_IF_USERS, users);
    if (users > 0 || delta > 0 || reg.portGet(port.index, L.PE_IF_OWNER) !== process.pid) return null;
    const fds = {
      sink: reg.portGet(port.index, L.PE_IF_SINK_FD), host: reg.portGet(port.index, L.PE_IF_HOST_FD),
      ingress: reg.portGet(port.index, L.PE_IF_INGRESS_LINK_FD), egress: reg.portGet(port.index, L.PE_IF_EGRESS_LINK_FD),
    };
    for (const w of [L.PE_IF_OWNER, L.PE_IF_SINK_FD, L.PE_IF_HOST_FD, L.PE_IF_INGRESS_LINK_FD, L.PE_IF_EGRESS_LINK_FD]) reg.portSet(port.index, w, 0);
    reg.portSet(port.index, L.PE_IF_FANOUT, 0);
    return fds;
  });
  if (last === null) return;
  try {
    if (st.split !== null) st.split.remove();
    else removeSplitOfThisProcess(st.ifname, last.sink, last.host, last.ingress, last.egress);
  } catch { /* the interface may be gone */ }
}

/**
 * Drops this thread's state. Its sockets were closed by unbindRings; the split's TAPs are left
 * to countProcessUser (other threads of the process may still read the host TAP).
 */
function closeState(st: IfState): void {
  states.delete(st.index);
  st.hostRead = null;
  st.split = null;
  st.tap?.close();
  st.tap = null;
  for (const diverter of st.rxDiverters) diverter?.close();
  st.rxDiverters.length = 0;
}

const NS_MOREFRAG = L.NS_MOREFRAG, NS_BUF_CHANGED = L.NS_BUF_CHANGED;

class InterfaceAdapter implements PortAdapter {
  private readonly port: Port;
  private readonly st: IfState;
  private readonly u8: Uint8Array;
  private readonly watchKey: number;
  /** Frames dropped because they were longer than the kernel ring frame (GSO) or a buffer. */
  oversize = 0;

  constructor(port: Port) {
    this.port = port;
    const st = openState(port);
    this.st = st;
    st.users++;
    try {
      countProcessUser(port, st, +1);
    } catch (e) {
      if (--st.users <= 0) closeState(st);
      throw e;
    }
    try {
      bindRings(port, st); // undoes its own partial work on failure
    } catch (e) {
      this.leave();
      throw e;
    }
    this.u8 = port.sp.u8;
    const w: Watch[] = [];
    const memId = port.memId;
    for (const r of port.rxRings) {
      const fd = this.rxFd(r);
      if (fd >= 0) w.push({ fd, events: native.POLLIN, ringOffset: r.offset, memId });
    }
    for (const r of port.txRings) {
      const fd = this.txFd(r);
      if (fd >= 0) w.push({ fd, events: native.POLLOUT, ringOffset: r.offset, memId });
    }
    this.watchKey = w.length > 0 ? watch(w) : 0;
  }

  private rxFd(r: Ring): number {
    const st = this.st;
    if (st.tap !== null) return st.tap.fd;
    if (r.host) return st.hostRead?.fd ?? -1;
    return st.nicRx[r.id]?.fd ?? -1;
  }

  private txFd(r: Ring): number {
    const st = this.st;
    if (st.tap !== null) return -1; // a TAP write never waits
    if (r.host) return st.hostTx?.fd ?? -1;
    return st.nicTx[r.id]?.fd ?? -1;
  }

  txsync(ring: Ring): boolean {
    const head = sync.txPrologue(ring);
    if (head < 0) return false;
    const st = this.st;
    const n = ring.numSlots;
    let cur = sync.hwcur(ring);
    if (cur >= n) cur = 0;
    let packets = 0, bytes = 0, drops = 0;
    if (cur !== head) {
      const u8 = this.u8;
      if (st.tap !== null) {
        const tap = st.tap;
        while (cur !== head) {
          // a TAP takes one frame per write: fragments are gathered in the first slot's buffer
          // only if they fit, otherwise the packet is dropped
          let j = cur, len = 0;
          const first = ring.slotBufOffset(cur);
          let complete = false, fits = true;
          for (;;) {
            const l = ring.slotLen(j), f = ring.slotFlags(j);
            const src = ring.slotBufOffset(j);
            if (j !== cur) {
              if (len + l <= ring.bufSize) u8.copyWithin(first + len, src, src + l);
              else fits = false;
            }
            len += l;
            ring.setSlotFlags(j, f & ~NS_BUF_CHANGED);
            j = ring.next(j);
            if ((f & NS_MOREFRAG) === 0) { complete = true; break; }
            if (j === head) break;
          }
          if (!complete) break;
          if (fits && len > 0 && tap.write(first, len)) { packets++; bytes += len; } else drops++;
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
    const hwcur = sync.hwcur(ring);
    let tail = ring.sp.u32[(ring.offset + L.KR_HWTAIL) >>> 2]!;
    if (tail >= n) tail = hwcur;
    let packets = 0, bytes = 0;
    const bufSize = ring.bufSize;
    if (st.tap !== null || ring.host) {
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

  armed(ring: Ring): void {
    const fd = ring.dir === L.RING_DIR_TX ? this.txFd(ring) : this.rxFd(ring);
    if (fd >= 0) rearm(fd);
  }

  disarmed(ring: Ring): void {
    const fd = ring.dir === L.RING_DIR_TX ? this.txFd(ring) : this.rxFd(ring);
    if (fd >= 0) release(fd);
  }

  close(): void {
    if (this.watchKey !== 0) unwatch(this.watchKey);
    this.release();
  }

  /** Gives back this handle's rings, then leaves. */
  private release(): void {
    unbindRings(this.port, this.st);
    this.leave();
  }

  /** Counts this handle out of the process and the thread (the last one removes the split). */
  private leave(): void {
    const st = this.st;
    countProcessUser(this.port, st, -1);
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

/** Frames the ring diverters of `port` (this handle) have taken so far. */
export function divertedFrames(port: Port): number {
  return port.adapter instanceof InterfaceAdapter ? port.adapter.diverted : 0;
}

/** Kernel-side statistics of an open interface port in this process (for tools and tests). */
export function interfacePortStats(port: Port): { rxDrops: number; rxPackets: number } | null {
  const st = states.get(port.index);
  if (st === undefined) return null;
  let rxDrops = 0, rxPackets = 0;
  for (const r of st.nicRx) {
    if (r === undefined) continue;
    const s = r.stats();
    rxDrops += s.drops;
    rxPackets += s.packets;
  }
  return { rxDrops, rxPackets };
}
