/**
 * Netmap pipes: `NAME{ID` (master) and `NAME}ID` (slave), two ports crossed over: master TX ring i
 * feeds slave RX ring i and slave TX ring i feeds master RX ring i. Both live in the parent's
 * memory region, so packets move by copying 16-byte slots (the buffer changes hands, the payload
 * is never touched): txsync copies [hwcur, head) of the TX ring into the peer's RX ring and
 * publishes up to the last complete packet; the receiver's rxsync copies the slots it released
 * back into the sender's TX ring and publishes the sender's new tail. Each side writes only slots
 * the other side does not own at that moment, so no lock is needed, across threads or processes.
 *
 * A pipe never drops: the sender's tail only advances when the receiver frees slots.
 */
import { fail } from '../errors.js';
import { registry, type Registry } from '../memory/registry.js';
import * as L from '../memory/layout.js';
import type { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import { slotLenAtWord, slotFlagsAtWord, setSlotLenAtWord, setSlotFlagsAtWord } from '../rings/slot.js';
import { resolvePipeParent, type OpenOptions, type Port, type PortAdapter, type PortType } from '../ports/port.js';
import type { PortSpec } from '../ports/name.js';

export const MAX_PIPES_PER_PARENT = 64;
export const MAX_PIPE_RINGS = 256;
export const MAX_PIPE_SLOTS = 4096;
export const DEFAULT_PIPE_SLOTS = 1024;
/**
 * Memory-only pipe parents get room for MAX_PIPES_PER_PARENT pipes of the first pipe's geometry
 * as long as their buffers fit in this many bytes, fewer beyond (then ENOMEM): 64 pipes of up to
 * 512 slots, 32 of the default 1024 slots. Bounded because every region takes address space in
 * the 2 GiB shared range (about 14 such parents at once).
 */
export const PARENT_BUFFER_BYTES = 128 << 20;

const HWCUR = L.KR_HWCUR >>> 2, SHADOW = L.KR_SHADOW_TAIL >>> 2, PEER = L.KR_PEER >>> 2;

/**
 * Copies `count` slots starting at index `from` of ring `src` into the same indices of ring
 * `dst` (same size), wrapping at the end. 16 bytes per slot, as words.
 */
function copySlots(u32: Uint32Array, src: number, dst: number, from: number, count: number, n: number): void {
  const s = (src + L.RING_SLOTS) >>> 2, d = (dst + L.RING_SLOTS) >>> 2;
  const first = Math.min(count, n - from);
  u32.copyWithin(d + 4 * from, s + 4 * from, s + 4 * (from + first));
  if (first < count) u32.copyWithin(d, s, s + 4 * (count - first));
}

class PipeAdapter implements PortAdapter {
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private readonly i32: Int32Array;
  private readonly port: Port;
  /**
   * Peer ring of each bound ring (by ring id), taken from the registry at open: the KR_PEER word
   * in the ring is user-writable memory and is never trusted on the data path.
   */
  private readonly txPeer: number[] = [];
  private readonly rxPeer: number[] = [];

  constructor(port: Port) {
    this.port = port;
    this.u32 = port.mem.u32;
    this.u16 = port.mem.u16;
    this.i32 = port.mem.i32;
    const reg = registry();
    const peer = reg.portGet(port.index, L.PE_PEER) - 1;
    if (peer < 0 || !reg.portLive(peer)) fail('ENXIO', `${port.spec}: the other end of the pipe is gone`);
    const peerTx = reg.portGet(peer, L.PE_NUM_TX);
    for (const r of port.txRings) this.txPeer[r.id] = reg.ringOffset(peer, peerTx + r.id);
    for (const r of port.rxRings) this.rxPeer[r.id] = reg.ringOffset(peer, r.id);
  }

  /**
   * Moves the slots [hwcur, head) of a TX ring into the same slots of the peer RX ring (16-byte
   * descriptors; payloads are not touched), validating each one on the way: a bad buffer index
   * or length becomes an empty slot on the peer side. Publishes up to the last complete packet.
   */
  txsync(ring: Ring): boolean {
    const head = sync.txPrologue(ring);
    if (head < 0) return false;
    const u32 = this.u32, u16 = this.u16;
    const ringWord = ring.offset >>> 2;
    const n = ring.numSlots;
    const peer = this.txPeer[ring.id]!;
    let cur = u32[ringWord + HWCUR]!;
    if (cur >= n) cur = 0;
    if (head !== cur) {
      const numBufs = ring.numBufs, bufSize = ring.bufSize;
      const count = head >= cur ? head - cur : head + n - cur;
      copySlots(u32, ring.offset, peer, cur, count, n);
      const dst = (peer + L.RING_SLOTS) >>> 2;
      const srcSlots = (ring.offset + L.RING_SLOTS) >>> 2;
      const lastBuf = numBufs - 2;
      // Word index (in dst) of the last slot that ends a packet, -1 if none; a segment at a
      // time ([cur, n) then [0, head) when the range wraps), no wrap test per slot.
      let complete = -1, bytes = 0, frags = 0;
      // Sufficient test for "length fits, no flags" over several slots at once: the OR of their
      // len|flags words, as unsigned, stays below the largest power of two not above bufSize + 1.
      const fitMask = 1 << (31 - Math.clz32(bufSize + 1));
      let destWord = dst + 4 * cur;
      for (let seg = 0; seg < 2; seg++) {
        const end = seg === 0 ? dst + 4 * (head > cur ? head : n) : dst + 4 * head;
        // Common case, eight slots at a time: valid buffers, fitting lengths, no flags at all.
        // (V8 spends more on a loop's own overhead than on a slot's few loads and compares.)
        const end8 = end - 28;
        while (destWord < end8) {
          const l0 = u32[destWord + 1]!, l1 = u32[destWord + 5]!, l2 = u32[destWord + 9]!, l3 = u32[destWord + 13]!;
          const l4 = u32[destWord + 17]!, l5 = u32[destWord + 21]!, l6 = u32[destWord + 25]!, l7 = u32[destWord + 29]!;
          if ((l0 | l1 | l2 | l3 | l4 | l5 | l6 | l7) >>> 0 < fitMask && // (>>> 0: | is signed)
              (u32[destWord]! - 2) >>> 0 < lastBuf && (u32[destWord + 4]! - 2) >>> 0 < lastBuf &&
              (u32[destWord + 8]! - 2) >>> 0 < lastBuf && (u32[destWord + 12]! - 2) >>> 0 < lastBuf &&
              (u32[destWord + 16]! - 2) >>> 0 < lastBuf && (u32[destWord + 20]! - 2) >>> 0 < lastBuf &&
              (u32[destWord + 24]! - 2) >>> 0 < lastBuf && (u32[destWord + 28]! - 2) >>> 0 < lastBuf) {
            bytes += l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7;
            destWord += 32;
            complete = destWord - 4;
          } else break;
        }
        for (; destWord < end; destWord += 4) {
          const lenFlags = u32[destWord + 1]!; // len | flags << 16
          if (lenFlags <= bufSize && (u32[destWord]! - 2) >>> 0 < lastBuf) { bytes += lenFlags; complete = destWord; continue; }
          const len = lenFlags & 0xffff;
          if ((u32[destWord]! - 2) >>> 0 >= lastBuf) { u32[destWord] = 0; setSlotLenAtWord(u16, destWord, 0); } // bad index: empty slot
          else if (len > bufSize) setSlotLenAtWord(u16, destWord, 0);
          else bytes += len;
          if ((lenFlags & (L.NS_BUF_CHANGED << 16)) !== 0) {
            const clean = (lenFlags >>> 16) & ~L.NS_BUF_CHANGED;
            setSlotFlagsAtWord(u16, destWord, clean);
            setSlotFlagsAtWord(u16, srcSlots + (destWord - dst), clean);
          }
          if ((lenFlags & (L.NS_MOREFRAG << 16)) === 0) complete = destWord;
          else frags++;
        }
        if (head > cur) break;
        destWord = dst;
      }
      const packets = count - frags;
      u32[ringWord + HWCUR] = head;
      if (complete >= 0) {
        const last = (complete - dst) >>> 2;
        Atomics.store(this.i32, (peer >>> 2) + SHADOW, last + 1 === n ? 0 : last + 1);
        sync.notify(this.port.mem, peer);
      }
      sync.count(this.port.mem, ring.offset, packets, bytes, 0);
    }
    // (a plain load: the peer publishes with Atomics.store, and x86/arm64 loads of an aligned
    // word are atomic; the ordering that matters is the store/notify pair in the publisher)
    let tail = this.i32[ringWord + SHADOW]!;
    if (tail >= n || tail < 0) tail = head === 0 ? n - 1 : head - 1;
    sync.setTail(ring, tail);
    return true;
  }

  /**
   * Gives the released slots [hwcur, head) back to the sender and fetches what it published.
   * As in netmap, a released slot is copied back into the sender's TX ring only when the
   * receiver swapped its buffer (NS_BUF_CHANGED, which the sender's slot then carries too, as in
   * netmap: the receiver's copy of the flag is cleared); otherwise the sender's slot already holds
   * it, and leaving it alone keeps the sender's cache lines where they are.
   */
  rxsync(ring: Ring): boolean {
    const head = sync.rxPrologue(ring);
    const u32 = this.u32, u16 = this.u16;
    const ringWord = ring.offset >>> 2;
    const n = ring.numSlots;
    const peer = this.rxPeer[ring.id]!;
    let ok = true;
    if (head >= 0) {
      const cur = u32[ringWord + HWCUR]!;
      if (head !== cur && cur < n) {
        const src = (ring.offset + L.RING_SLOTS) >>> 2, dst = (peer + L.RING_SLOTS) >>> 2;
        const numBufs = ring.numBufs;
        // A segment at a time ([cur, n) then [0, head) when the range wraps); eight slots with
        // no flags at all (the common case) are skipped with one test.
        let sourceWord = src + 4 * cur;
        for (let seg = 0; seg < 2; seg++) {
          const end = seg === 0 ? src + 4 * (head > cur ? head : n) : src + 4 * head;
          const end8 = end - 28;
          for (; sourceWord < end8; sourceWord += 32) {
            if (((u32[sourceWord + 1]! | u32[sourceWord + 5]! | u32[sourceWord + 9]! | u32[sourceWord + 13]! |
                  u32[sourceWord + 17]! | u32[sourceWord + 21]! | u32[sourceWord + 25]! | u32[sourceWord + 29]!) >>> 16) !== 0) break;
          }
          for (; sourceWord < end; sourceWord += 4) {
            if (u32[sourceWord + 1]! < 0x10000) continue; // no flags at all: the common case
            const flags = slotFlagsAtWord(u16, sourceWord);
            if ((flags & L.NS_BUF_CHANGED) !== 0) {
              const destWord = dst + (sourceWord - src);
              const clean = flags & ~L.NS_BUF_CHANGED;
              setSlotFlagsAtWord(u16, sourceWord, clean);
              const idx = u32[sourceWord]!;
              if (idx < 2 || idx >= numBufs) continue; // invalid: the sender keeps its buffer
              u32[destWord] = idx;
              // the sender's slot reports the change (netmap copies the whole slot, flag included):
              // a sender that fills each buffer once (pkt-gen) refills only slots flagged so
              u32[destWord + 1] = slotLenAtWord(u16, sourceWord) | ((clean | L.NS_BUF_CHANGED) << 16);
              u32[destWord + 2] = u32[sourceWord + 2]!;
              u32[destWord + 3] = u32[sourceWord + 3]!;
            }
          }
          if (head > cur) break;
          sourceWord = src;
        }
        u32[ringWord + HWCUR] = head;
        Atomics.store(this.i32, (peer >>> 2) + SHADOW, head === 0 ? n - 1 : head - 1);
        sync.notify(this.port.mem, peer);
      }
    } else ok = false;
    let tail = this.i32[ringWord + SHADOW]!;
    if (tail >= n || tail < 0) tail = u32[ringWord + HWCUR]!;
    const before = u32[(ring.offset + L.KR_HWTAIL) >>> 2]!;
    if (tail !== before) {
      const got = tail >= before ? tail - before : tail + n - before;
      sync.count(this.port.mem, ring.offset, got, 0, 0);
    }
    sync.setTail(ring, tail);
    sync.stampRx(ring, tail !== before);
    return ok;
  }
}

/** A memory-only parent: consumes what is sent to it, never receives. */
class NullAdapter implements PortAdapter {
  txsync(ring: Ring): boolean {
    const head = sync.txPrologue(ring);
    if (head < 0) return false;
    sync.setHwcur(ring, head);
    sync.setTail(ring, head === 0 ? ring.numSlots - 1 : head - 1);
    return true;
  }
  rxsync(ring: Ring): boolean {
    const ok = sync.rxPrologue(ring) >= 0;
    sync.stampRx(ring, false);
    return ok;
  }
}

function pipeGeometry(spec: PortSpec, parentSlots: number): { tx: number; rx: number; txSlots: number; rxSlots: number } {
  const c = spec.conf;
  const tx = c.txRings ?? 1, rx = c.rxRings ?? 1;
  const txSlots = c.txSlots ?? (parentSlots || DEFAULT_PIPE_SLOTS), rxSlots = c.rxSlots ?? (parentSlots || DEFAULT_PIPE_SLOTS);
  if (tx < 1 || tx > MAX_PIPE_RINGS || rx < 1 || rx > MAX_PIPE_RINGS) fail('EINVAL', `${spec.spec}: a pipe has 1 to ${MAX_PIPE_RINGS} rings per direction`);
  if (txSlots < 2 || txSlots > MAX_PIPE_SLOTS || rxSlots < 2 || rxSlots > MAX_PIPE_SLOTS) fail('EINVAL', `${spec.spec}: a pipe ring has 2 to ${MAX_PIPE_SLOTS} slots`);
  return { tx, rx, txSlots: Math.min(txSlots, MAX_PIPE_SLOTS), rxSlots: Math.min(rxSlots, MAX_PIPE_SLOTS) };
}

/** Finds the parent of a pipe, or creates a memory-only one that goes away with its last pipe. */
function resolveParent(reg: Registry, spec: PortSpec, opts: OpenOptions, geom: { tx: number; rx: number; txSlots: number; rxSlots: number }): number {
  const parentName = spec.parentName;
  let parent = reg.findPort(parentName);
  if (parent >= 0) return parent;
  if (spec.subsystem === 'netmap') {
    parent = resolvePipeParent(reg, spec, opts);
    if (parent >= 0) return parent;
  }
  // As netmap does for an unknown parent, make one: here a memory-only port with room for up to
  // 64 pipes of this geometry (ENOMEM beyond).
  const perPipe = (geom.tx * geom.txSlots + geom.rx * geom.rxSlots);
  const room = Math.max(1, Math.min(MAX_PIPES_PER_PARENT, Math.floor(PARENT_BUFFER_BYTES / (perPipe * L.DEFAULT_BUF_SIZE))));
  const ringPages = (geom.tx + geom.rx) * 2 * Math.ceil(L.ringBytes(Math.max(geom.txSlots, geom.rxSlots)) / L.PAGE_SIZE);
  const memId = reg.createRegion({
    numBufs: 2 + 64 + perPipe * room + 1024,
    numPages: 16 + room * (ringPages + 4 * L.MAX_HANDLES / 8) + 64,
    bufSize: L.DEFAULT_BUF_SIZE,
  });
  // If this fails the region is left with no port; collectGarbage() removes such regions.
  return reg.createPort({
    name: parentName, kind: L.PORT_KIND_PARENT, memId, flags: L.PORT_FLAG_AUTODELETE,
    numTx: 1, numRx: 1, numHostTx: 0, numHostRx: 0, txSlots: 64, rxSlots: 64,
  });
}

function resolvePipe(reg: Registry, spec: PortSpec, opts: OpenOptions): number {
  if (spec.mode !== 'ALL_NIC' && spec.mode !== 'ONE_NIC') fail('EINVAL', `${spec.spec}: pipes accept only all-rings or -N ring selection`);
  const pipe = spec.pipe!;
  const masterName = `${spec.parentName}{${pipe.id}`;
  const slaveName = `${spec.parentName}}${pipe.id}`;
  const wanted = pipe.role === 'master' ? masterName : slaveName;
  const existing = reg.findPort(wanted);
  if (existing >= 0) return existing;
  const parentSlotsGuess = reg.findPort(spec.parentName);
  // Slots default to the parent's descriptor count; a memory-only parent (our stand-in for the
  // VALE port netmap would create) has tiny rings of its own, so its pipes get the default.
  const parentSlots = parentSlotsGuess >= 0 && reg.portGet(parentSlotsGuess, L.PE_KIND) !== L.PORT_KIND_PARENT ? reg.portGet(parentSlotsGuess, L.PE_TX_SLOTS) : 0;
  const geom = pipeGeometry(spec, parentSlots);
  const parent = resolveParent(reg, spec, opts, geom);
  const pipes = reg.portGet(parent, L.PE_PIPES);
  if (pipes >= MAX_PIPES_PER_PARENT) fail('EINVAL', `${spec.spec}: port ${spec.parentName} already has ${MAX_PIPES_PER_PARENT} pipes`);
  const memId = reg.portGet(parent, L.PE_MEM_ID);
  // Geometry is the opener's; the slave sees the master's directions swapped.
  const m = pipe.role === 'master' ? geom : { tx: geom.rx, rx: geom.tx, txSlots: geom.rxSlots, rxSlots: geom.txSlots };
  let master = -1, slave = -1;
  try {
    master = reg.createPort({ name: masterName, kind: L.PORT_KIND_PIPE, memId, flags: 0, numTx: m.tx, numRx: m.rx, numHostTx: 0, numHostRx: 0, txSlots: m.txSlots, rxSlots: m.rxSlots, rxWithoutBuffers: true });
    slave = reg.createPort({ name: slaveName, kind: L.PORT_KIND_PIPE, memId, flags: 0, numTx: m.rx, numRx: m.tx, numHostTx: 0, numHostRx: 0, txSlots: m.rxSlots, rxSlots: m.txSlots, rxWithoutBuffers: true });
  } catch (e) {
    if (master >= 0) reg.destroyPort(master);
    if (reg.portGet(parent, L.PE_PIPES) === 0 && (reg.portGet(parent, L.PE_FLAGS) & L.PORT_FLAG_AUTODELETE) !== 0 && reg.portGet(parent, L.PE_USERS) === 0) reg.destroyPort(parent);
    if (e instanceof Error && (e as { code?: string }).code === 'ENOMEM') fail('ENOMEM', `${spec.spec}: the memory of ${spec.parentName} has no room for another pipe (${(e as Error).message})`);
    throw e;
  }
  for (const [a, b] of [[master, slave], [slave, master]] as const) {
    reg.portSet(a, L.PE_PEER, b + 1);
    reg.portSet(a, L.PE_PARENT, parent + 1);
  }
  // cross the rings: master tx i <-> slave rx i, slave tx i <-> master rx i
  const u32 = reg.sp.u32;
  const link = (txPort: number, rxPort: number, count: number): void => {
    const rxBase = reg.portGet(rxPort, L.PE_NUM_TX);
    for (let i = 0; i < count; i++) {
      const t = reg.ringOffset(txPort, i), r = reg.ringOffset(rxPort, rxBase + i);
      u32[(t >>> 2) + PEER] = r;
      u32[(r >>> 2) + PEER] = t;
    }
  };
  link(master, slave, m.tx);
  link(slave, master, m.rx);
  reg.portSet(parent, L.PE_PIPES, pipes + 1);
  return wanted === masterName ? master : slave;
}

/** Both ends go when neither is open; the parent goes with its last pipe if it was made for them. */
function pipeLastUser(reg: Registry, index: number): void {
  const peer = reg.portGet(index, L.PE_PEER) - 1;
  if (peer >= 0 && reg.portLive(peer) && reg.portGet(peer, L.PE_USERS) > 0) return;
  const parent = reg.portGet(index, L.PE_PARENT) - 1;
  reg.destroyPort(index, peer);
  if (parent >= 0 && reg.portLive(parent)) {
    const left = Math.max(0, reg.portGet(parent, L.PE_PIPES) - 1);
    reg.portSet(parent, L.PE_PIPES, left);
    if (left === 0 && (reg.portGet(parent, L.PE_FLAGS) & L.PORT_FLAG_AUTODELETE) !== 0 && reg.portGet(parent, L.PE_USERS) === 0) reg.destroyPort(parent);
  }
}

/** Pipe ends (`NAME{ID`, `NAME}ID`). */
export const pipePortType: PortType = {
  name: 'pipe', kind: L.PORT_KIND_PIPE, family: 'pipe', resolve: resolvePipe,
  adapter: (port) => new PipeAdapter(port),
  lastUser: pipeLastUser,
};

/** A pipe's memory-only parent: made by resolvePipe, goes with its last pipe if made for them. */
export const parentPortType: PortType = {
  name: 'pipe parent', kind: L.PORT_KIND_PARENT,
  monitors: 'none',
  adapter: () => new NullAdapter(),
  lastUser: (reg, index) => {
    if (reg.portGet(index, L.PE_PIPES) === 0 && (reg.portGet(index, L.PE_FLAGS) & L.PORT_FLAG_AUTODELETE) !== 0) reg.destroyPort(index);
  },
};

