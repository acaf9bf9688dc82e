/**
 * The VALE data path: forwarding in the sender's txsync (netmap's nm_bdg_flush), and the
 * receiver's rxsync.
 *
 * txsync on a TX ring walks [hwcur, head) in batches of up to BATCH slots:
 *  1. gather: each slot becomes an entry (space offset of its buffer, length); fragments
 *     (NS_MOREFRAG) are grouped into packets, a trailing incomplete chain is cut into a packet;
 *     an invalid slot (bad index, length beyond the buffer) becomes a zero-length entry;
 *  2. lookup pass: the switch's lookup gives each packet a destination port, BROADCAST or
 *     DROP; packets are chained per destination (and broadcasts in their own chain);
 *  3. one copy pass per destination port: a lease of slots on the destination RX ring (ring
 *     = source ring id mod the destination's RX rings), copy outside the lock, complete the
 *     lease; what does not fit is dropped and counted — the sender never waits.
 * Afterwards the TX ring is entirely free again (tail = head - 1), as in netmap.
 *
 * Delivery outside the switch's rings: a sender may hand the packets of some destination ports
 * to an OutsideDelivery instead (netmap's bwrap: src/bwrap/direct.ts writes them straight onto
 * an attached interface); the switch only asks it, per destination, whether it takes them.
 *
 * Copies go from the sender's buffers to the destination's own buffers (each port has its own
 * memory region): small frames with a Float64Array word loop, larger ones with copyWithin
 * (memmove). Every buffer is 64-byte aligned and a multiple of 64 bytes long, so copying whole
 * 8-byte words never leaves the buffer.
 */
import { registry, type Registry } from '../memory/registry.js';
import type { AddressSpace } from '../memory/space.js';
import { assert } from '../errors.js';
import * as L from '../memory/layout.js';
import type { Ring } from '../rings/ring.js';
import * as sync from '../rings/sync.js';
import { SLOT_WORDS, SLOT_LEN_HALF, SLOT_FLAGS_HALF, SMALL_COPY, copyBlocks } from '../rings/slot.js';
import type { Port, PortAdapter } from '../ports/port.js';
import { Lease, LeaseOps, LEASE_TABLE_BYTES } from './lease.js';
import { tapsOf, type Taps } from '../monitor/tap.js';
import { BROADCAST, DROP, macHash32, loadedLookup, lookupContext, LookupBatch, type LookupFn, type BatchLookupFn } from './lookup.js';
import { VnetConverter } from './vnet.js';
import { clock, readClock } from '../native/index.js';

/** Slots per forwarding batch (netmap's bridge_batch default and maximum). */
export const BATCH = 1024;
const FT_SIZE = BATCH + L.NETMAP_MAX_FRAGS;
const MAXP = L.MAX_SWITCH_PORTS;
const MAX_RINGS = 16;
/** Stand-ins for a LookupBatch's arrays while there is no batch lookup (typed arrays, so the loop's loads stay monomorphic). */
const NO_ENTRIES = new Int32Array(0);
const NO_OFFS = new Float64Array(0);
export { SMALL_COPY };

const W_HWCUR = L.KR_HWCUR >>> 2, W_HWTAIL = L.KR_HWTAIL >>> 2, W_SHADOW = L.KR_SHADOW_TAIL >>> 2;
const W_USERS = L.KR_USERS >>> 2, W_FIRST = L.KR_LEASE_FIRST >>> 2, W_NEXT = L.KR_LEASE_NEXT >>> 2;

/**
 * Takes the packets of some destination ports out of the switch (netmap's bwrap: an attached
 * interface's transmit ring, src/bwrap/direct.ts). One per ValeAdapter, set with
 * setOutsideDelivery; the forwarding loop asks it once per destination and batch.
 */
export interface OutsideDelivery {
  /** During a refresh of the switch's ports, under the registry lock: port number `switchPort` is registry port `index`. */
  consider(reg: Registry, switchPort: number, index: number): void;
  /** After the refresh, no lock held: take up the ports considered, let go of the others. */
  commit(): void;
  /** Whether this delivery takes the packets for port number `switchPort` (as of the last commit). */
  takes(switchPort: number): boolean;
  /**
   * Delivers the unicast chain `unicastHead` merged in order with the broadcast chain
   * `broadcastHead` (entries of `vale`'s forwarding table, -1: empty) for port `switchPort`, and
   * counts them with vale.countDelivered.
   */
  deliver(vale: ValeAdapter, switchPort: number, unicastHead: number, broadcastHead: number): void;
  /** Whether it takes any port at all. */
  readonly active: boolean;
  /**
   * Optional: whether it takes the packets for port `switchPort` (without header) from a port
   * with a `hdr`-byte virtio-net header, header and all (a super-frame handed to the kernel
   * whole); then deliverWhole() instead of deliver().
   */
  takesWhole?(switchPort: number, hdr: number): boolean;
  deliverWhole?(vale: ValeAdapter, switchPort: number, unicastHead: number, broadcastHead: number, hdr: number): void;
  close(): void;
}

export class ValeAdapter implements PortAdapter {
  private readonly reg: Registry;
  private readonly port: Port;
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly leases: LeaseOps;
  private readonly lease = new Lease();

  // forwarding table (per entry = per slot; read by an OutsideDelivery's deliver)
  /**
   * Space offset of the source bytes, -1 none (a Float64Array: frames injected from a kernel
   * ring lie in the thread's local mappings, above 2 GiB).
   */
  readonly ftOff = new Float64Array(FT_SIZE);
  readonly ftLen = new Uint16Array(FT_SIZE);
  /** Per packet, indexed by the entry of its first fragment: its fragments, the next packet of its chain. */
  readonly ftFrags = new Uint8Array(FT_SIZE);
  readonly ftNext = new Int32Array(FT_SIZE);
  /** Per packet: destination slots it takes after a header conversion (vnet.ts), 0 dropped. */
  private readonly ftNeed = new Int32Array(FT_SIZE);
  /** The entries a batch hands to monitors, in order, each `entry << 1 | more fragments` (tap.ts copyEntries). */
  private readonly tapList = new Int32Array(FT_SIZE);
  // per destination port: unicast chain, its slot count
  private readonly dstHead = new Int32Array(MAXP).fill(-1);
  private readonly dstTail = new Int32Array(MAXP);
  private readonly dstSlots = new Int32Array(MAXP);
  private readonly dstPkts = new Int32Array(MAXP);
  private bcHead = -1;
  private bcTail = -1;
  private bcSlots = 0;
  private bcPkts = 0;

  // what this process knows of the switch (refreshed when its generation changes)
  private switchIndex = -1;
  private switchBase = 0;
  private switchGeneration = -1;
  private lookupGen = -1;
  private myPort = -1;
  private custom: LookupFn | null = null;
  /** A plugged-in batch lookup (lookup.ts), its batch (made when first needed) and each batch entry's forwarding-table entry. */
  private customBatch: BatchLookupFn | null = null;
  private batch: LookupBatch | null = null;
  private batchEntry: Int32Array | null = null;
  /** Last source MAC learnt by this handle (a local copy of the per-port cache). */
  private lastSrcLo = 0;
  private lastSrcHi = -1;
  private customPending = false;
  private readonly active = new Uint8Array(MAXP); // port numbers in use, in order
  private nActive = 0;
  private readonly pIndex = new Int32Array(MAXP).fill(-1); // registry port index, -1 none
  private readonly pNumRx = new Int32Array(MAXP);
  private readonly pRx = new Int32Array(MAXP * MAX_RINGS); // space offsets of RX rings
  private readonly pBufBase = new Int32Array(MAXP);
  private readonly pBufSize = new Int32Array(MAXP);
  private readonly pNumBufs = new Int32Array(MAXP);
  /** virtio-net header length of each port (PE_HDR_LEN); frames are converted between lengths. */
  private readonly pHdr = new Int32Array(MAXP);
  /** This port's header length: every frame it sends starts with that many header bytes. */
  private readonly myHdr: number;
  /** Header conversions (made when first needed). */
  private converter: VnetConverter | null = null;
  private readonly pNumSlots = new Int32Array(MAXP * MAX_RINGS);
  /** Lease table of each RX ring as checked at refresh (hidden ring state is user-writable). */
  private readonly pTable = new Int32Array(MAXP * MAX_RINGS);
  /** Object area of this port's own region: where its lease tables may be. */
  private ownObjLo = 0;
  private ownObjHi = 0;

  /** Delivery of some ports' packets outside the switch's rings (see the header); null none. */
  private outside: OutsideDelivery | null = null;

  /**
   * Monitors (src/monitor): of this port (what it sends, copied in flush) and of each
   * destination (what it receives, copied where it is delivered). One load a batch each when
   * no monitor is open.
   */
  private readonly myTaps: Taps;
  private readonly pTaps: Array<Taps | null> = new Array<Taps | null>(MAXP).fill(null);

  // rxsync: dead-sender detection per bound RX ring
  private readonly rxStuckSince = new Float64Array(MAX_RINGS);
  private readonly rxStuckFirst = new Float64Array(MAX_RINGS).fill(-1);

  constructor(port: Port) {
    this.port = port;
    this.reg = registry();
    const sp = port.mem;
    this.u8 = sp.u8;
    this.u16 = sp.u16;
    this.u32 = sp.u32;
    this.i32 = sp.i32;
    this.f64 = sp.f64;
    this.leases = new LeaseOps(sp);
    this.myTaps = tapsOf(port.index);
    const own = this.reg.region(port.memId);
    this.ownObjLo = own.pagesBase;
    this.ownObjHi = own.pagesBase + own.numPages * L.PAGE_SIZE;
    this.myHdr = this.reg.portGet(port.index, L.PE_HDR_LEN);
  }

  // ---- switch view ------------------------------------------------------------------------------

  /** The address space of this handle's port (every buffer of every port is in it). */
  get space(): AddressSpace {
    return this.port.mem;
  }

  /** The delivery set with setOutsideDelivery, or null. */
  get outsideDelivery(): OutsideDelivery | null {
    return this.outside;
  }

  /** Hands the packets of the ports `delivery` takes to it from now on (see the header). */
  setOutsideDelivery(delivery: OutsideDelivery | null): void {
    this.outside?.close();
    this.outside = delivery;
    this.switchGeneration = -1; // look at the ports again
  }

  close(): void {
    this.outside?.close();
    this.converter?.close();
  }

  /** Re-reads the switch's port list (under the registry lock). */
  private refresh(): void {
    const reg = this.reg;
    const outside = this.outside;
    reg.locked(() => {
      const switchPlusOne = reg.portLive(this.port.index) ? reg.portGet(this.port.index, L.PE_SWITCH) : 0;
      this.pIndex.fill(-1);
      this.nActive = 0;
      if (switchPlusOne === 0) { this.switchIndex = -1; this.myPort = -1; this.switchGeneration = -1; return; }
      const switchIndex = switchPlusOne - 1;
      this.switchIndex = switchIndex;
      this.switchBase = reg.base + reg.switchEntry(switchIndex);
      this.switchGeneration = Atomics.load(this.i32, reg.switchWord(switchIndex, L.SW_GENERATION));
      this.myPort = reg.portGet(this.port.index, L.PE_SWITCH_PORT);
      const u32 = this.u32;
      for (let p = 0; p < MAXP; p++) {
        const plus = u32[reg.switchWord(switchIndex, L.SW_PORTS + 4 * p)]!;
        if (plus === 0) continue;
        const idx = plus - 1;
        if (!reg.portLive(idx)) continue;
        const memId = reg.portGet(idx, L.PE_MEM_ID);
        let region;
        try { region = reg.region(memId); } catch { continue; }
        const numRx = Math.min(MAX_RINGS, reg.portGet(idx, L.PE_NUM_RX));
        if (numRx === 0) continue;
        const numTx = reg.portGet(idx, L.PE_NUM_TX) + reg.portGet(idx, L.PE_NUM_HOST_TX);
        for (let r = 0; r < numRx; r++) {
          const ring = reg.ringOffset(idx, numTx + r);
          this.pRx[p * MAX_RINGS + r] = ring;
          this.pNumSlots[p * MAX_RINGS + r] = u32[(ring + L.RING_NUM_SLOTS) >>> 2]!;
          const table = u32[(ring + L.KR_LEASE_TABLE) >>> 2]!;
          const objEnd = region.pagesBase + region.numPages * L.PAGE_SIZE;
          this.pTable[p * MAX_RINGS + r] = table >= region.pagesBase && table + LEASE_TABLE_BYTES <= objEnd && table % L.PAGE_SIZE === 0 ? table : -1;
        }
        if (outside !== null && idx !== this.port.index) outside.consider(reg, p, idx);
        this.pIndex[p] = idx;
        this.pTaps[p] = tapsOf(idx);
        this.pNumRx[p] = numRx;
        // copyBlocks writes whole 64-byte blocks at 8-byte word indices: a destination buffer
        // must start on a word and hold whole blocks, or the rounding would spill past it.
        assert((region.bufBase & 7) === 0 && (region.bufSize & 63) === 0, 'buffers of a VALE destination are word aligned, whole 64-byte blocks');
        this.pBufBase[p] = region.bufBase;
        this.pBufSize[p] = region.bufSize;
        this.pNumBufs[p] = region.numBufs;
        this.pHdr[p] = reg.portGet(idx, L.PE_HDR_LEN);
        this.active[this.nActive++] = p;
      }
    });
    this.lookupGen = -1; // re-check the lookup too
    this.lastSrcHi = -1;
    outside?.commit();
  }

  private refreshLookup(): void {
    const reg = this.reg;
    const gen = this.u32[reg.switchWord(this.switchIndex, L.SW_LOOKUP_GEN)]!;
    this.lookupGen = gen;
    this.lastSrcHi = -1; // the learning table may have been cleared
    const base = this.switchBase;
    const module = readString(this.u8, base + L.SW_LOOKUP_MODULE, L.SW_LOOKUP_MODULE_MAX);
    if (module === '') { this.custom = null; this.customBatch = null; this.customPending = false; return; }
    const config = readString(this.u8, base + L.SW_LOOKUP_CONFIG, L.SW_LOOKUP_CONFIG_MAX);
    const switchName = reg.switchName(this.switchIndex);
    const l = loadedLookup(module, config, lookupContext(switchName));
    this.custom = l.fn;
    this.customBatch = l.batch;
    if (l.batch !== null && this.batch === null) { this.batch = new LookupBatch(this.u8); this.batchEntry = new Int32Array(BATCH); }
    this.customPending = l.fn === null && l.batch === null;
    if (this.customPending && l.error === null) {
      // loading: look again once it is there
      void l.promise.then(() => { if (this.lookupGen === gen) this.lookupGen = -1; });
    }
  }

  // ---- txsync -----------------------------------------------------------------------------------

  /** (Port keeps two handles from syncing one ring at once: see Port.syncRing.) */
  txsync(ring: Ring): boolean {
    const head = sync.txPrologue(ring);
    if (head < 0) return false;
    const u32 = this.u32, u16 = this.u16;
    const ringWord = ring.offset >>> 2;
    const n = ring.numSlots;
    let cur = u32[ringWord + W_HWCUR]!;
    if (cur >= n) cur = head;
    if (cur !== head) {
      this.checkView();
      const slots = (ring.offset + L.RING_SLOTS) >>> 2;
      const numBufs = ring.numBufs, bufSize = ring.bufSize, bufBase = ring.bufBase;
      // copyBlocks reads whole 64-byte blocks at 8-byte word indices from these buffers (once
      // per batch; the destinations' are checked in refresh).
      assert((bufBase & 7) === 0 && (bufSize & 63) === 0, 'buffers of a VALE sender are word aligned, whole 64-byte blocks');
      const ftOff = this.ftOff, ftLen = this.ftLen, ftFrags = this.ftFrags;
      let ft = 0, pktStart = 0, frags = 0;
      let txPkts = 0, txBytes = 0, txDrops = 0;
      while (cur !== head) {
        const slotWord = slots + SLOT_WORDS * cur;
        const idx = u32[slotWord]!;
        let len = u16[2 * slotWord + SLOT_LEN_HALF]!;
        const flags = u16[2 * slotWord + SLOT_FLAGS_HALF]!;
        if ((flags & L.NS_BUF_CHANGED) !== 0) u16[2 * slotWord + SLOT_FLAGS_HALF] = flags & ~L.NS_BUF_CHANGED;
        if (idx < 2 || idx >= numBufs || len > bufSize) { ftOff[ft] = -1; len = 0; } else ftOff[ft] = bufBase + idx * bufSize;
        ftLen[ft] = len;
        txBytes += len;
        ft++;
        frags++;
        cur = cur + 1 === n ? 0 : cur + 1;
        if ((flags & L.NS_MOREFRAG) === 0 || frags === L.NETMAP_MAX_FRAGS || cur === head) {
          ftFrags[pktStart] = frags;
          txPkts++;
          pktStart = ft;
          frags = 0;
          if (ft >= BATCH) { txDrops += this.flush(ft, ring.id); ft = 0; pktStart = 0; }
        }
      }
      if (ft > 0) txDrops += this.flush(ft, ring.id);
      u32[ringWord + W_HWCUR] = head;
      sync.count(ring.sp, ring.offset, txPkts, txBytes, txDrops);
    }
    sync.setTail(ring, head === 0 ? n - 1 : head - 1);
    return true;
  }

  /** Brings this handle's view of the switch (ports, lookup) up to date when it changed. */
  private checkView(): void {
    const reg = this.reg;
    const switchPlusOne = reg.portLive(this.port.index) ? reg.portGet(this.port.index, L.PE_SWITCH) : 0;
    if (switchPlusOne - 1 !== this.switchIndex || (this.switchIndex >= 0 && Atomics.load(this.i32, reg.switchWord(this.switchIndex, L.SW_GENERATION)) !== this.switchGeneration)) this.refresh();
    if (this.switchIndex >= 0 && this.u32[reg.switchWord(this.switchIndex, L.SW_LOOKUP_GEN)] !== this.lookupGen) this.refreshLookup();
  }

  /**
   * Forwards `count` (at most BATCH) one-slot packets whose bytes lie at space offsets `offs`
   * (from index `from`; any alignment; each readable up to 64 bytes past its end) with lengths
   * `lens`, as if they
   * had been sent on TX ring `ring` of this port (its counters, its ring id for the destination
   * ring). For a forwarder whose frames are not in netmap buffers: the attach daemon forwards
   * from the kernel's packet ring without copying into its own ring first.
   */
  inject(ring: Ring, offs: Float64Array, lens: Uint16Array, count: number, from = 0): void {
    if (count <= 0) return;
    assert(count <= BATCH, 'inject: more than a batch');
    this.checkView();
    const ftOff = this.ftOff, ftLen = this.ftLen, ftFrags = this.ftFrags;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      ftOff[i] = offs[from + i]!;
      ftLen[i] = lens[from + i]!;
      ftFrags[i] = 1;
      bytes += ftLen[i]!;
    }
    const drops = this.flush(count, ring.id);
    sync.count(ring.sp, ring.offset, count, bytes, drops);
  }

  /**
   * For an outside delivery offered a frame whole (`len` bytes at space offset `at`, see
   * src/bwrap/direct.ts injectWhole): the one port the learning bridge sends it to, or -1 for
   * anything else (a flood, a drop, a plugged-in lookup, no outside delivery taking any port).
   * Nothing is delivered.
   */
  destinationOfWhole(at: number, len: number): number {
    this.checkView();
    if (this.outside === null || !this.outside.active || this.custom !== null || this.customBatch !== null) return -1;
    this.ftOff[0] = at;
    this.ftLen[0] = len;
    this.ftFrags[0] = 1;
    if (this.lookup(1) !== 0) return -1;
    this.bcHead = -1; // a flood is cut and forwarded by the caller
    const active = this.active, dstHead = this.dstHead;
    for (let k = 0; k < this.nActive; k++) {
      if (dstHead[active[k]!] === 0) { const d = active[k]!; dstHead[d] = -1; return d; }
    }
    return -1;
  }

  /**
   * Counts packets delivered outside the switch for port `switchPort` where the switch counts
   * what it delivers to that port: its RX ring 0 (under its lease lock).
   */
  countDelivered(switchPort: number, dropped: number, sent: number, bytes: number): void {
    const ring = this.pRx[switchPort * MAX_RINGS]!;
    if (this.u32[(ring + L.KR_LEASE_TABLE) >>> 2] === this.pTable[switchPort * MAX_RINGS]) this.leases.countOnly(ring, dropped, this.f64, sent, bytes);
  }

  /** Forwards entries [0, count) of the table. Returns the packets dropped by the lookup. */
  private flush(count: number, ringId: number): number {
    const drops = this.lookup(count);
    this.deliverAll(ringId);
    if (this.myTaps.present()) this.tapSent(count, ringId);
    return drops;
  }

  /** Copies entries [0, count) (what this port sent on TX ring `ringId`) to its TX monitors. */
  private tapSent(count: number, ringId: number): void {
    const taps = this.myTaps;
    const ids = taps.copyTargets(L.RING_DIR_TX, ringId);
    if (ids.length === 0) return;
    const ftFrags = this.ftFrags, list = this.tapList;
    for (let p = 0; p < count;) {
      const f = ftFrags[p]!;
      for (let e = p; e < p + f; e++) list[e] = (e << 1) | (e + 1 < p + f ? 1 : 0);
      p += f;
    }
    for (let j = 0; j < ids.length; j++) taps.copyEntries(ids[j]!, count, list, this.ftOff, this.ftLen, L.NS_TXMON);
  }

  /**
   * Copies the first `maxPkts` packets of the unicast chain `u` merged with the broadcast chain
   * `b` (what port number `d` was given on its RX ring `r`) to that port's RX monitors.
   */
  private tapReceived(d: number, r: number, u: number, b: number, slots: number, maxPkts: number): void {
    const taps = this.pTaps[d]!;
    const ids = taps.copyTargets(L.RING_DIR_RX, r);
    if (ids.length === 0) return;
    const ftFrags = this.ftFrags, ftNext = this.ftNext, list = this.tapList;
    let k = 0;
    for (let pkts = 0; (u >= 0 || b >= 0) && pkts < maxPkts && k < slots; pkts++) {
      let p: number;
      if (b < 0 || (u >= 0 && u < b)) { p = u; u = ftNext[u]!; } else { p = b; b = ftNext[b]!; }
      const f = ftFrags[p]!;
      for (let e = p; e < p + f; e++) list[k++] = (e << 1) | (e + 1 < p + f ? 1 : 0);
    }
    for (let j = 0; j < ids.length; j++) taps.copyEntries(ids[j]!, k, list, this.ftOff, this.ftLen, 0);
  }

  /**
   * Copies `used` slots of RX ring `r` of port `d` from slot `start` (what a header conversion
   * wrote there: the monitors see what the port got) to that port's RX monitors.
   */
  private tapConverted(d: number, r: number, ring: number, n: number, start: number, used: number): void {
    const taps = this.pTaps[d]!;
    const ids = taps.copyTargets(L.RING_DIR_RX, r);
    const u16 = this.u16, u32 = this.u32, dBase = this.pBufBase[d]!, dSize = this.pBufSize[d]!;
    const slots = (ring + L.RING_SLOTS) >>> 2;
    for (let j = 0; j < ids.length; j++) {
      taps.begin(ids[j]!, used);
      for (let k = 0, pos = start; k < used; k++, pos = pos + 1 === n ? 0 : pos + 1) {
        const slotWord = slots + SLOT_WORDS * pos;
        taps.put(dBase + u32[slotWord]! * dSize, u16[2 * slotWord + SLOT_LEN_HALF]!, u16[2 * slotWord + SLOT_FLAGS_HALF]! & L.NS_MOREFRAG);
      }
      taps.end();
    }
  }

  /**
   * Pass 1 of a flush: looks up entries [0, count), chaining them per destination (dstHead...,
   * bcHead). Returns the packets dropped (all of them with no switch, or while a plugged lookup
   * is loading: then nothing is chained).
   */
  private lookup(count: number): number {
    const ftFrags = this.ftFrags, ftOff = this.ftOff, ftLen = this.ftLen;
    const u8 = this.u8, u16 = this.u16, i32 = this.i32;
    const me = this.myPort, hdr = this.myHdr;
    let drops = 0;
    if (this.switchIndex < 0 || this.customPending) {
      for (let p = 0; p < count; p += ftFrags[p]!) drops++;
      this.bcHead = -1;
      return drops;
    }
    const custom = this.custom, batchFn = this.customBatch;
    const batch = this.batch, bEntry = this.batchEntry ?? NO_ENTRIES;
    const bOff = batch !== null ? batch.off : NO_OFFS, bLen = batch !== null ? batch.len : NO_ENTRIES, bDst = batch !== null ? batch.dst : NO_ENTRIES;
    let nb = 0;
    this.bcHead = -1; this.bcSlots = 0; this.bcPkts = 0;
    // netmap_vale_learning, inlined (see lookup.ts for the table format)
    const hashW = (this.switchBase + L.SW_HASH) >>> 2;
    const cacheW = (this.switchBase + L.SW_LAST_SRC + 8 * me) >>> 2;
    let lastSrcLo = this.lastSrcLo, lastSrcHi = this.lastSrcHi;
    let lastDstLo = 0, lastDstHi = -1, lastDstH = hashW;
    // pass 1: lookup
    for (let p = 0; p < count; p += ftFrags[p]!) {
      // the Ethernet header follows the port's virtio-net header (if any) in the first fragment
      const off = ftOff[p]! + hdr;
      const len = off < hdr ? 0 : ftLen[p]! - hdr;
      let dst: number;
      if (len < 14) dst = DROP;
      else if (custom !== null) {
        // a plugged-in lookup must not break the switch: anything but a port number is a drop
        try { dst = custom(u8, off, len, me); } catch { dst = DROP; }
        if (dst !== (dst | 0)) dst = DROP;
      }
      else {
        // 16-bit loads: a frame injected from a kernel ring starts 2 bytes past a 4-byte boundary
        // (odd offsets, which no ring produces, are read byte by byte)
        let s0: number, sLo: number, sHi: number, dLo: number, dHi: number;
        if ((off & 1) === 0) {
          const h = off >>> 1;
          s0 = u16[h + 3]!; sLo = s0 | (u16[h + 4]! << 16); sHi = u16[h + 5]!;
          dLo = u16[h]! | (u16[h + 1]! << 16); dHi = u16[h + 2]!;
        } else {
          s0 = u8[off + 6]! | (u8[off + 7]! << 8); sLo = s0 | (u8[off + 8]! << 16) | (u8[off + 9]! << 24); sHi = u8[off + 10]! | (u8[off + 11]! << 8);
          dLo = u8[off]! | (u8[off + 1]! << 8) | (u8[off + 2]! << 16) | (u8[off + 3]! << 24); dHi = u8[off + 4]! | (u8[off + 5]! << 8);
        }
        if ((s0 & 1) === 0 && (sLo !== lastSrcLo || sHi !== lastSrcHi)) {
          lastSrcLo = sLo; lastSrcHi = sHi;
          if (i32[cacheW] !== sHi || i32[cacheW + 1] !== sLo) {
            i32[cacheW] = sHi; i32[cacheW + 1] = sLo;
            const h = hashW + 2 * macHash32(sLo, sHi);
            i32[h + 1] = sLo;
            i32[h] = (me + 1) | (sHi << 16);
          }
        }
        if ((dLo & 1) !== 0) dst = BROADCAST;
        else {
          if (dLo !== lastDstLo || dHi !== lastDstHi) { lastDstLo = dLo; lastDstHi = dHi; lastDstH = hashW + 2 * macHash32(dLo, dHi); }
          const e0 = i32[lastDstH]!;
          dst = (e0 >>> 16) === dHi && i32[lastDstH + 1] === dLo && (e0 & 0xffff) !== 0 ? (e0 & 0xffff) - 1 : BROADCAST;
        }
      }
      if (batchFn !== null) { // a batch lookup decides once the whole batch is learnt (below)
        bOff[nb] = off; bLen[nb] = len; bDst[nb] = dst; bEntry[nb] = p; nb++;
        continue;
      }
      drops += this.chain(p, dst);
    }
    this.lastSrcLo = lastSrcLo; this.lastSrcHi = lastSrcHi;
    if (batchFn !== null && nb > 0) {
      batch!.count = nb; batch!.srcPort = me;
      // as for a per-frame lookup: a throw drops the batch, anything but a port number drops the frame
      try { batchFn(batch!); } catch { bDst.fill(DROP, 0, nb); }
      for (let i = 0; i < nb; i++) drops += this.chain(bEntry[i]!, bLen[i]! < 14 ? DROP : bDst[i]!);
    }
    return drops;
  }

  /**
   * Pass 1's chaining: packet `p` (its first entry) goes to port `dst`, BROADCAST or is dropped
   * (DROP, no such port, its own port). Returns 1 when it is dropped.
   */
  private chain(p: number, dst: number): number {
    const ftNext = this.ftNext, ftFrags = this.ftFrags;
    ftNext[p] = -1;
    if (dst === BROADCAST) {
      if (this.bcHead < 0) this.bcHead = p; else ftNext[this.bcTail] = p;
      this.bcTail = p;
      this.bcSlots += ftFrags[p]!;
      this.bcPkts++;
      return 0;
    }
    if (dst >= MAXP || dst < 0 || dst === this.myPort || this.pIndex[dst]! < 0) return 1;
    const dstHead = this.dstHead, dstTail = this.dstTail;
    if (dstHead[dst]! < 0) { dstHead[dst] = p; this.dstSlots[dst] = 0; this.dstPkts[dst] = 0; } else ftNext[dstTail[dst]!] = p;
    dstTail[dst] = p;
    this.dstSlots[dst] = this.dstSlots[dst]! + ftFrags[p]!;
    this.dstPkts[dst] = this.dstPkts[dst]! + 1;
    return 0;
  }

  /** Pass 2 of a flush: one copy pass per destination of what lookup() chained. */
  private deliverAll(ringId: number): void {
    const dstHead = this.dstHead, bcHead = this.bcHead, me = this.myPort;
    const active = this.active, nActive = this.nActive, outside = this.outside;
    const pHdr = this.pHdr, mine = this.myHdr;
    for (let k = 0; k < nActive; k++) {
      const d = active[k]!;
      if (d === me) continue;
      if (dstHead[d]! < 0 && bcHead < 0) continue;
      // outside, frames go as they are (a port of this port's header length), or whole with their
      // header (deliverWhole, from a header port to an attached interface)
      if (outside !== null && outside.takes(d) && (pHdr[d] === mine || (pHdr[d] === 0 && outside.takesWhole?.(d, mine) === true))) {
        if (this.pTaps[d]!.present()) this.tapReceived(d, 0, dstHead[d]!, bcHead, (dstHead[d]! < 0 ? 0 : this.dstSlots[d]!) + (bcHead < 0 ? 0 : this.bcSlots), BATCH);
        if (pHdr[d] === mine) outside.deliver(this, d, dstHead[d]!, bcHead);
        else outside.deliverWhole!(this, d, dstHead[d]!, bcHead, mine);
        dstHead[d] = -1;
        continue;
      }
      // unicast goes to ring (source ring mod RX rings), broadcast to ring 0, as in netmap
      const ru = ringId % this.pNumRx[d]!;
      if (ru === 0 || dstHead[d]! < 0 || bcHead < 0) this.deliver(d, dstHead[d]! < 0 ? 0 : ru, true, true);
      else { this.deliver(d, ru, true, false); this.deliver(d, 0, false, true); }
      dstHead[d] = -1;
    }
  }

  /**
   * Copies the unicast chain of `d` (if `unicast`) merged in order with the broadcast chain (if
   * `broadcast`) into RX ring `r` of port d.
   */
  private deliver(d: number, r: number, unicast: boolean, broadcast: boolean): void {
    if (this.pHdr[d] !== this.myHdr) { this.deliverConverted(d, r, unicast, broadcast); return; }
    const u16 = this.u16, u32 = this.u32, u8 = this.u8, f64 = this.f64;
    const ftFrags = this.ftFrags, ftOff = this.ftOff, ftLen = this.ftLen, ftNext = this.ftNext;
    let u = unicast ? this.dstHead[d]! : -1, b = broadcast ? this.bcHead : -1;
    const u0 = u, b0 = b;
    const needed = (u >= 0 ? this.dstSlots[d]! : 0) + (b >= 0 ? this.bcSlots : 0);
    const totalPkts = (u >= 0 ? this.dstPkts[d]! : 0) + (b >= 0 ? this.bcPkts : 0);
    const ring = this.pRx[d * MAX_RINGS + r]!;
    const n = this.pNumSlots[d * MAX_RINGS + r]!;
    if (u32[(ring + L.KR_LEASE_TABLE) >>> 2] !== this.pTable[d * MAX_RINGS + r]) {
      // someone overwrote the hidden state of that ring: never follow a bad table pointer
      this.leases.countOnly(ring, totalPkts, f64);
      return;
    }
    if (u32[(ring >>> 2) + W_USERS] === 0) { // nobody has that ring open: netmap drops
      this.leases.countOnly(ring, totalPkts, f64);
      return;
    }
    const lease = this.lease;
    this.leases.reserve(ring, n, needed, lease, totalPkts, f64);
    if (lease.count === 0) { // full: the drops are counted already
      if (lease.moved) sync.notify(this.port.mem, ring);
      return;
    }
    const dBase = this.pBufBase[d]!, dSize = this.pBufSize[d]!, dNum = this.pNumBufs[d]!;
    const slots = (ring + L.RING_SLOTS) >>> 2;
    let pos = lease.start, used = 0, pkts = 0, bytes = 0;
    const room = lease.count;
    while (u >= 0 || b >= 0) {
      let p: number;
      if (b < 0 || (u >= 0 && u < b)) { p = u; u = ftNext[u]!; } else { p = b; b = ftNext[b]!; }
      const frags = ftFrags[p]!;
      if (frags === 1) { // the common case: one slot
        if (used >= room) break;
        const slotWord = slots + SLOT_WORDS * pos;
        const idx = u32[slotWord]!;
        let len = ftLen[p]!;
        const src = ftOff[p]!;
        if (idx < 2 || idx >= dNum || len > dSize || src < 0) len = 0;
        else if (len <= SMALL_COPY && (src & 7) === 0) copyBlocks(f64, src >>> 3, (dBase + idx * dSize) >>> 3, len);
        else u8.copyWithin(dBase + idx * dSize, src, src + len);
        u16[2 * slotWord + SLOT_LEN_HALF] = len;
        u16[2 * slotWord + SLOT_FLAGS_HALF] = 1 << 8;
        bytes += len;
        pos = pos + 1 === n ? 0 : pos + 1;
        used++;
        pkts++;
        continue;
      }
      if (used + frags > room) break;
      for (let f = 0; f < frags; f++) {
        const e = p + f;
        const slotWord = slots + SLOT_WORDS * pos;
        const idx = u32[slotWord]!;
        let len = ftLen[e]!;
        const src = ftOff[e]!;
        if (idx < 2 || idx >= dNum || len > dSize || src < 0) len = 0;
        else if (len <= SMALL_COPY && (src & 7) === 0) copyBlocks(f64, src >>> 3, (dBase + idx * dSize) >>> 3, len);
        else u8.copyWithin(dBase + idx * dSize, src, src + len);
        u16[2 * slotWord + SLOT_LEN_HALF] = len;
        u16[2 * slotWord + SLOT_FLAGS_HALF] = f + 1 < frags ? (frags << 8) | L.NS_MOREFRAG : frags << 8;
        bytes += len;
        pos = pos + 1 === n ? 0 : pos + 1;
      }
      used += frags;
      pkts++;
    }
    if (this.pTaps[d]!.present()) this.tapReceived(d, r, u0, b0, used, pkts);
    // what did not fit is dropped (netmap stops at the first packet that does not fit)
    const moved = this.leases.complete(ring, n, lease, used, pkts, bytes, totalPkts - pkts, f64);
    if (moved || lease.moved) sync.notify(this.port.mem, ring);
  }

  /**
   * deliver() between ports of different virtio-net header lengths (vnet.ts): each packet is
   * planned (the slots it takes after conversion, 0: dropped), the total leased at once, then
   * converted into the leased slots in order; what does not fit is dropped, as in deliver().
   */
  private deliverConverted(d: number, r: number, unicast: boolean, broadcast: boolean): void {
    const u32 = this.u32, f64 = this.f64;
    const ftFrags = this.ftFrags, ftOff = this.ftOff, ftLen = this.ftLen, ftNext = this.ftNext, ftNeed = this.ftNeed;
    const conv = this.converter ??= new VnetConverter(this.u8, this.u16);
    const srcHdr = this.myHdr, dstHdr = this.pHdr[d]!;
    const dBase = this.pBufBase[d]!, dSize = this.pBufSize[d]!, dNum = this.pNumBufs[d]!;
    const ring = this.pRx[d * MAX_RINGS + r]!;
    const n = this.pNumSlots[d * MAX_RINGS + r]!;
    // pass 1: what each packet needs
    let needed = 0, totalPkts = 0;
    for (let u = unicast ? this.dstHead[d]! : -1, b = broadcast ? this.bcHead : -1; u >= 0 || b >= 0;) {
      let p: number;
      if (b < 0 || (u >= 0 && u < b)) { p = u; u = ftNext[u]!; } else { p = b; b = ftNext[b]!; }
      const need = conv.plan(ftOff, ftLen, p, ftFrags[p]!, srcHdr, dstHdr, dSize);
      ftNeed[p] = need;
      needed += need;
      totalPkts++;
    }
    if (u32[(ring + L.KR_LEASE_TABLE) >>> 2] !== this.pTable[d * MAX_RINGS + r] || u32[(ring >>> 2) + W_USERS] === 0 || needed === 0) {
      this.leases.countOnly(ring, totalPkts, f64);
      return;
    }
    const lease = this.lease;
    this.leases.reserve(ring, n, needed, lease, totalPkts, f64);
    if (lease.count === 0) {
      if (lease.moved) sync.notify(this.port.mem, ring);
      return;
    }
    const slots = (ring + L.RING_SLOTS) >>> 2;
    let pos = lease.start, used = 0, pkts = 0, bytes = 0, delivered = 0;
    const room = lease.count;
    for (let u = unicast ? this.dstHead[d]! : -1, b = broadcast ? this.bcHead : -1; u >= 0 || b >= 0;) {
      let p: number;
      if (b < 0 || (u >= 0 && u < b)) { p = u; u = ftNext[u]!; } else { p = b; b = ftNext[b]!; }
      const need = ftNeed[p]!;
      if (need === 0) continue;
      if (used + need > room) break;
      conv.convert(ftOff, ftLen, p, ftFrags[p]!, srcHdr, dstHdr, need, slots, pos, n, dBase, dSize, dNum, u32);
      pkts += conv.packets;
      bytes += conv.bytes;
      delivered++;
      used += need;
      pos = (pos + need) % n;
    }
    if (this.pTaps[d]!.present()) this.tapConverted(d, r, ring, n, lease.start, used);
    const moved = this.leases.complete(ring, n, lease, used, pkts, bytes, totalPkts - delivered, f64);
    if (moved || lease.moved) sync.notify(this.port.mem, ring);
  }

  // ---- rxsync -----------------------------------------------------------------------------------

  rxsync(ring: Ring): boolean {
    const head = sync.rxPrologue(ring);
    const u32 = this.u32;
    const ringWord = ring.offset >>> 2;
    const n = ring.numSlots;
    const ok = head >= 0;
    if (ok && head !== u32[ringWord + W_HWCUR]) Atomics.store(u32, ringWord + W_HWCUR, head);
    let tail = Atomics.load(u32, ringWord + W_SHADOW);
    const before = u32[ringWord + W_HWTAIL]!;
    const k = ring.id < MAX_RINGS ? ring.id : 0;
    if (tail === before) {
      // Nothing new. If leases stay outstanding for a few ms, see whether their sender died (a
      // live sender completes a lease in microseconds). Written with one rare branch only: a
      // receiver's warm-up (generator/job.ts) never has a lease outstanding, and code first run
      // under traffic sent the optimized rxsync back to the interpreter.
      const first = Atomics.load(u32, ringWord + W_FIRST);
      const outstanding = first !== Atomics.load(u32, ringWord + W_NEXT);
      readClock();
      // (every load and comparison made whatever the case: V8 keeps feedback per operation)
      const now = clock[0]!, since = this.rxStuckSince[k]!, prev = this.rxStuckFirst[k]!;
      const late = now - since > 5, sameLease = first === prev;
      const same = outstanding && sameLease;
      const stuck = same && late;
      this.rxStuckSince[k] = same && !stuck ? since : now;
      this.rxStuckFirst[k] = outstanding ? first : -1;
      if (stuck) {
        const table = u32[ringWord + (L.KR_LEASE_TABLE >>> 2)]!;
        if (table >= this.ownObjLo && table + LEASE_TABLE_BYTES <= this.ownObjHi && this.leases.rescue(ring.offset, n)) tail = Atomics.load(u32, ringWord + W_SHADOW);
      }
    } else this.rxStuckFirst[k] = -1;
    if (tail >= n) tail = u32[ringWord + W_HWCUR]!;
    sync.setTail(ring, tail);
    sync.stampRx(ring, tail !== before);
    return ok;
  }
}

function readString(u8: Uint8Array, at: number, max: number): string {
  let s = '';
  for (let i = 0; i < max; i++) {
    const c = u8[at + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

export { readString };
