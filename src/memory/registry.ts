/**
 * The registry: one shared file per user directory that says which regions, ports and switches
 * exist, where each region sits in the address space, and who holds each port open. Every
 * control operation (open, close, create, attach) runs under its robust lock; packets never
 * touch it.
 *
 * Crash safety: handles record the thread that opened them. collectGarbage() releases the
 * handles of dead threads and destroys what nobody holds any more; it runs on every open and
 * from vale-ctl, so a killed process never wedges the others.
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { NetmapError, assert, fail } from '../errors.js';
import { space, type AddressSpace } from './space.js';
import { lock, unlock, ownerAlive, selfTid } from './lock.js';
import { Region, initRegion, regionBytes, regionMetadataBytes, checkRegion, type RegionGeometry } from './region.js';
import * as L from './layout.js';

/**
 * Names are stored as NUL-padded Latin-1 (what the parser admits). Written by hand: Buffer
 * methods do not work on an ArrayBuffer as large as the address space.
 */
export function writeLatin1(u8: Uint8Array, at: number, text: string, max: number): void {
  const n = Math.min(text.length, max);
  for (let i = 0; i < n; i++) u8[at + i] = text.charCodeAt(i) & 0xff;
  u8[at + n] = 0;
}

export function readLatin1(u8: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(u8[i]!);
  return s;
}

function regionFileName(memId: number): string {
  return `mem-${memId}`;
}

/** netmap's global allocator: the region of every interface port (and of pipes on them). */
const GLOBAL_MEM_ID = 1;

/**
 * Opens the global region's file left by its last user, with everything before the buffer pool
 * (header, free lists, rings) given back to read as zeros, as initRegion expects; -1 when there
 * is none or its metadata cannot be cleared (the caller then makes a fresh file).
 *
 * Why the file outlives its last port: as netmap's global allocator keeps its memory when it
 * falls out of use (only its free lists are reset), the buffers' pages stay allocated, so the
 * next interface port's AF_XDP UMEM registration pins pages that are there instead of
 * allocating and zeroing 57 MiB, and its last close frees nothing: a whole `pkt-gen -n 1` on a
 * veth 5-11 ms less, open + close in process 32 -> 20 ms (AF_XDP, 2026-12-04). The buffers
 * keep the bytes they held, as netmap's do; the file (at most the pool's 128 MiB of touched
 * pages) goes with the directory.
 */
function reuseRegionFile(file: string, g: RegionGeometry): number {
  let fd: number;
  try {
    fd = native.openFile(file, native.O_RDWR, 0o600);
  } catch {
    return -1;
  }
  try {
    native.punchHole(fd, 0, regionMetadataBytes(g));
    return fd;
  } catch {
    native.closeFd(fd);
    return -1;
  }
}

/** A decoded port-table entry (a snapshot; the registry is the truth). */
export interface PortInfo {
  index: number;
  name: string;
  kind: number;
  memId: number;
  flags: number;
  numTx: number; numRx: number; numHostTx: number; numHostRx: number;
  txSlots: number; rxSlots: number;
  ringsTable: number;
  users: number;
}

/**
 * Pids of the live processes other than this one that map a file of `dir` (from /proc/PID/maps:
 * a process of any netmap-ts build maps the registry while it has a port open). A user can read
 * the maps of their own processes, and the directory is one user's.
 */
export function processesMapping(dir: string): number[] {
  const needle = ` ${dir.endsWith('/') ? dir : `${dir}/`}`;
  const pids: number[] = [];
  let entries: string[];
  try { entries = fs.readdirSync('/proc'); } catch { return pids; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    let maps: string;
    try { maps = fs.readFileSync(`/proc/${e}/maps`, 'latin1'); } catch { continue; }
    if (maps.includes(needle)) pids.push(pid);
  }
  return pids;
}

function refuseIfInUse(dir: string, what: string): void {
  const users = processesMapping(dir);
  if (users.length > 0) {
    fail('EINVAL', `${what}; process ${users.slice(0, 5).join(', ')} still uses it: close the other users or use another NETMAP_TS_DIR`);
  }
}

/** The files netmap-ts itself makes in its directory (nothing else there is ever removed). */
const OWN_FILE = /^(mem-\d+|fw-[^/]+|scratch-[^/]+|attach-[^/]+\.(json|log)|ipfw-[^/]+\.sock|cpu-\d+-\d+)$/;

/** Empties a directory of another layout that no process uses; the registry (open as `fd`) is cut to nothing. */
function resetDirectory(dir: string, fd: number): void {
  for (const name of fs.readdirSync(dir)) {
    if (OWN_FILE.test(name)) {
      try { fs.unlinkSync(`${dir}/${name}`); } catch { /* gone already */ }
    }
  }
  native.ftruncate(fd, 0);
}

type Hook = (reg: Registry, portIndex: number) => void;

/**
 * What the registry calls for ports of one kind (the registry's share of a port type, see
 * ports/port.ts PortType): set once per kind when the build's port types are registered.
 */
export interface KindOperations {
  /** After the port lost its last handle (closed, or its owner died). */
  readonly lastUser: Hook | null;
  /** Before the port's entry is destroyed. */
  readonly destroy: Hook | null;
}

export class Registry {
  readonly sp: AddressSpace;
  readonly base = L.SPACE_REGISTRY_OFFSET;
  private depth = 0;
  /** Per port kind, what to call when a port loses its last user or is destroyed (under the lock). */
  private static kindOperations = new Map<number, KindOperations>();

  constructor(sp: AddressSpace) {
    this.sp = sp;
    const file = sp.filePath('registry');
    const fd = native.openFile(file, native.O_RDWR | native.O_CREAT, 0o600);
    try {
      native.flock(fd, native.LOCK_EX);
      let size = fs.fstatSync(fd).size;
      if (size !== 0 && size !== L.REGISTRY_SIZE) {
        // Another layout. Left behind by an earlier build whose processes are all gone (the usual
        // case after an upgrade), it is reset; with a live user it is refused, never misread.
        refuseIfInUse(sp.dir, `the registry ${file} has size ${size}, this netmap-ts expects ${L.REGISTRY_SIZE} (another layout version)`);
        resetDirectory(sp.dir, fd);
        size = 0;
      }
      if (size === 0) native.ftruncate(fd, L.REGISTRY_SIZE);
      sp.mapShared('registry', this.base, L.REGISTRY_SIZE, 0);
      const u32 = sp.u32;
      if (u32[this.word(L.REG_MAGIC)] === 0) {
        u32[this.word(L.REG_LAYOUT)] = L.LAYOUT_VERSION;
        u32[this.word(L.REG_API)] = L.NETMAP_API;
        u32[this.word(L.REG_SIZE)] = L.REGISTRY_SIZE;
        u32[this.word(L.REG_MAGIC)] = L.MAGIC_REGISTRY;
      }
      if (u32[this.word(L.REG_MAGIC)] !== L.MAGIC_REGISTRY) fail('EINVAL', `${file} is not a netmap-ts registry`);
      const layout = u32[this.word(L.REG_LAYOUT)];
      if (layout !== L.LAYOUT_VERSION) {
        refuseIfInUse(sp.dir, `shared memory in ${sp.dir} has layout version ${layout}, this netmap-ts uses layout version ${L.LAYOUT_VERSION} (NETMAP_API ${L.NETMAP_API})`);
        // nobody maps it: start afresh in the same file (other openers wait on its flock)
        resetDirectory(sp.dir, fd);
        native.ftruncate(fd, L.REGISTRY_SIZE); // back to its size, all zero, before the mapping is touched
        u32[this.word(L.REG_LAYOUT)] = L.LAYOUT_VERSION;
        u32[this.word(L.REG_API)] = L.NETMAP_API;
        u32[this.word(L.REG_SIZE)] = L.REGISTRY_SIZE;
        u32[this.word(L.REG_MAGIC)] = L.MAGIC_REGISTRY;
      }
    } finally {
      native.flock(fd, native.LOCK_UN);
      native.closeFd(fd);
    }
  }

  /** Installs the operations of port kind `kind` (once per kind, from registerPortTypes). */
  static setKindOperations(kind: number, operations: KindOperations): void {
    assert(!Registry.kindOperations.has(kind), `operations of port kind ${kind} set twice`);
    Registry.kindOperations.set(kind, operations);
  }

  /** Int32/Uint32 word index of a registry byte offset. */
  word(byteOffset: number): number {
    return (this.base + byteOffset) >>> 2;
  }

  // ---- the lock ---------------------------------------------------------------------------------

  /** Runs `fn` under the registry lock (re-entrant within one thread). */
  locked<T>(fn: () => T): T {
    if (this.depth > 0) {
      this.depth++;
      try { return fn(); } finally { this.depth--; }
    }
    const word = this.word(L.REG_LOCK);
    lock(this.sp.i32, word, this.sp.absolute(this.base + L.REG_LOCK));
    this.depth = 1;
    try {
      return fn();
    } finally {
      this.depth = 0;
      unlock(this.sp.i32, word, this.sp.absolute(this.base + L.REG_LOCK));
    }
  }

  assertLocked(): void {
    assert(this.depth > 0 && Atomics.load(this.sp.i32, this.word(L.REG_LOCK)) === selfTid(), 'registry lock not held');
  }

  nextToken(): number {
    this.assertLocked();
    const tokenWord = this.word(L.REG_NEXT_TOKEN);
    const t = (this.sp.u32[tokenWord]! + 1) >>> 0 || 1;
    this.sp.u32[tokenWord] = t;
    return t;
  }

  // ---- regions ----------------------------------------------------------------------------------

  private regionEntry(memId: number): number {
    return L.REGIONS_TABLE + (memId - 1) * L.REGION_ENTRY_SIZE;
  }

  regionLive(memId: number): boolean {
    if (memId < 1 || memId > L.MAX_REGIONS) return false;
    return this.sp.u32[this.word(this.regionEntry(memId) + L.RE_STATE)] === L.REGION_STATE_LIVE;
  }

  /** Maps region `memId` in this thread if needed and returns its allocator. */
  region(memId: number): Region {
    if (!this.regionLive(memId)) fail('EINVAL', `memory region ${memId} does not exist`);
    const e = this.regionEntry(memId);
    const u32 = this.sp.u32;
    const offset = u32[this.word(e + L.RE_SPACE_OFFSET)]!;
    const size = u32[this.word(e + L.RE_SIZE)]!;
    const gen = u32[this.word(e + L.RE_GENERATION)]!;
    const name = regionFileName(memId);
    if (!this.sp.isMapped(name, gen)) {
      this.sp.mapShared(name, offset, size, gen);
      checkRegion(this.sp, offset, name);
    }
    return new Region(this.sp, offset);
  }

  /** Generation of a live region: senders compare it to notice a region was replaced. */
  regionGeneration(memId: number): number {
    return this.sp.u32[this.word(this.regionEntry(memId) + L.RE_GENERATION)]!;
  }

  /** Creates a region with the given geometry; returns its mem_id. */
  createRegion(g: RegionGeometry): number {
    this.assertLocked();
    const bytes = Math.ceil(regionBytes(g) / L.SPACE_GRANULE) * L.SPACE_GRANULE;
    const u32 = this.sp.u32;
    let memId = 0;
    for (let id = GLOBAL_MEM_ID + 1; id <= L.MAX_REGIONS && memId === 0; id++) { // mem_id 1: the global region, kept for interfaces
      if (u32[this.word(this.regionEntry(id) + L.RE_STATE)] !== L.REGION_STATE_LIVE) memId = id;
    }
    if (memId === 0) fail('ENOMEM', `all ${L.MAX_REGIONS} memory regions are in use`);
    return this.createRegionAt(memId, this.place(bytes), bytes, g);
  }

  /** Creates the global region (mem_id 1) if missing; shared by all interface ports. */
  globalRegion(g: RegionGeometry): number {
    this.assertLocked();
    if (this.regionLive(GLOBAL_MEM_ID)) return GLOBAL_MEM_ID;
    const bytes = Math.ceil(regionBytes(g) / L.SPACE_GRANULE) * L.SPACE_GRANULE;
    const offset = this.place(bytes);
    return this.createRegionAt(GLOBAL_MEM_ID, offset, bytes, g);
  }

  /**
   * The lowest free place for `bytes` in the shared range (first fit), outside the threads' low
   * private mappings (layout.ts: what lies below 2^30 is cheapest for the data paths).
   */
  private place(bytes: number): number {
    const u32 = this.sp.u32;
    const used: Array<[number, number]> = [[L.SPACE_LOCAL_LOW_START, L.SPACE_LOCAL_LOW_END - L.SPACE_LOCAL_LOW_START]];
    for (let id = 1; id <= L.MAX_REGIONS; id++) {
      const e = this.regionEntry(id);
      if (u32[this.word(e + L.RE_STATE)] === L.REGION_STATE_LIVE) used.push([u32[this.word(e + L.RE_SPACE_OFFSET)]!, u32[this.word(e + L.RE_SIZE)]!]);
    }
    used.sort((a, b) => a[0] - b[0]);
    let offset = L.SPACE_REGIONS_START;
    for (const [o, s] of used) {
      if (o - offset >= bytes) break;
      offset = Math.max(offset, Math.ceil((o + s) / L.SPACE_GRANULE) * L.SPACE_GRANULE);
    }
    if (offset + bytes > L.SPACE_REGIONS_END) {
      fail('ENOMEM', `no room in the shared address space for a ${(bytes / 1048576).toFixed(0)} MiB region`);
    }
    return offset;
  }

  private createRegionAt(memId: number, offset: number, bytes: number, g: RegionGeometry): number {
    const name = regionFileName(memId);
    const file = this.sp.filePath(name);
    let fd = memId === GLOBAL_MEM_ID ? reuseRegionFile(file, g) : -1;
    if (fd < 0) {
      try { fs.unlinkSync(file); } catch { /* not there */ }
      fd = native.openFile(file, native.O_RDWR | native.O_CREAT | native.O_EXCL, 0o600);
    }
    try {
      native.ftruncate(fd, bytes);
    } finally {
      native.closeFd(fd);
    }
    const u32 = this.sp.u32;
    const genWord = this.word(L.REG_GENERATION);
    const gen = (u32[genWord]! + 1) >>> 0;
    u32[genWord] = gen;
    const e = this.regionEntry(memId);
    u32[this.word(e + L.RE_SPACE_OFFSET)] = offset;
    u32[this.word(e + L.RE_SIZE)] = bytes;
    u32[this.word(e + L.RE_GENERATION)] = gen;
    u32[this.word(e + L.RE_PORTS)] = 0;
    this.sp.mapShared(name, offset, bytes, gen);
    initRegion(this.sp, offset, memId, g);
    u32[this.word(e + L.RE_STATE)] = L.REGION_STATE_LIVE;
    return memId;
  }

  private destroyRegion(memId: number): void {
    const e = this.regionEntry(memId);
    this.sp.u32[this.word(e + L.RE_STATE)] = L.REGION_STATE_FREE;
    this.sp.unmapShared(regionFileName(memId));
    if (memId === GLOBAL_MEM_ID) return; // its file stays, for the next interface port (reuseRegionFile)
    try { fs.unlinkSync(this.sp.filePath(regionFileName(memId))); } catch { /* gone already */ }
  }

  private regionRef(memId: number, delta: number): void {
    const portsWord = this.word(this.regionEntry(memId) + L.RE_PORTS);
    const n = this.sp.u32[portsWord]! + delta;
    this.sp.u32[portsWord] = n < 0 ? 0 : n;
    if (n <= 0) this.destroyRegion(memId);
  }

  // ---- ports ------------------------------------------------------------------------------------

  portEntry(index: number): number {
    return L.PORTS_TABLE + index * L.PORT_ENTRY_SIZE;
  }

  /** Word index of field `field` of port `index`. */
  portWord(index: number, field: number): number {
    return this.word(this.portEntry(index) + field);
  }

  portGet(index: number, field: number): number {
    return this.sp.u32[this.portWord(index, field)]!;
  }

  portSet(index: number, field: number, value: number): void {
    this.sp.u32[this.portWord(index, field)] = value;
  }

  portLive(index: number): boolean {
    return index >= 0 && index < L.MAX_PORTS && this.portGet(index, L.PE_STATE) === L.PORT_STATE_LIVE;
  }

  portName(index: number): string {
    const start = this.base + this.portEntry(index) + L.PE_NAME;
    const u8 = this.sp.u8;
    let end = start;
    while (end < start + L.PE_NAME_MAX && u8[end] !== 0) end++;
    return readLatin1(u8, start, end);
  }

  /**
   * Port entries [0, portsHigh()) are all that were ever taken (createPort takes the lowest free
   * one): scans stop there. A fresh process runs each scan interpreted, and over the whole table
   * of 2048 entries the four of an open and a close cost it about 4 ms.
   */
  portsHigh(): number {
    const high = this.sp.u32[this.word(L.REG_PORTS_HIGH)]!;
    return high < L.MAX_PORTS ? high : L.MAX_PORTS;
  }

  findPort(name: string): number {
    for (let i = 0, high = this.portsHigh(); i < high; i++) {
      if (this.portGet(i, L.PE_STATE) === L.PORT_STATE_LIVE && this.portName(i) === name) return i;
    }
    return -1;
  }

  /** Every live port, in table order. */
  livePorts(): number[] {
    const out: number[] = [];
    for (let i = 0, high = this.portsHigh(); i < high; i++) if (this.portGet(i, L.PE_STATE) === L.PORT_STATE_LIVE) out.push(i);
    return out;
  }

  portInfo(index: number): PortInfo {
    return {
      index,
      name: this.portName(index),
      kind: this.portGet(index, L.PE_KIND),
      memId: this.portGet(index, L.PE_MEM_ID),
      flags: this.portGet(index, L.PE_FLAGS),
      numTx: this.portGet(index, L.PE_NUM_TX),
      numRx: this.portGet(index, L.PE_NUM_RX),
      numHostTx: this.portGet(index, L.PE_NUM_HOST_TX),
      numHostRx: this.portGet(index, L.PE_NUM_HOST_RX),
      txSlots: this.portGet(index, L.PE_TX_SLOTS),
      rxSlots: this.portGet(index, L.PE_RX_SLOTS),
      ringsTable: this.portGet(index, L.PE_RINGS_TABLE),
      users: this.portGet(index, L.PE_USERS),
    };
  }

  /**
   * Moves port entry `index` to `state` (PORT_STATE_*), asserting the transition is one of
   * FREE -> CREATING -> LIVE -> FREE or CREATING -> FREE. Lock held. LIVE is published with an
   * atomic store: lock-free readers (senders refreshing a switch's ports) see a whole entry.
   */
  private setPortState(index: number, state: number): void {
    this.assertLocked();
    const from = this.portGet(index, L.PE_STATE);
    const legal =
      (from === L.PORT_STATE_FREE && state === L.PORT_STATE_CREATING) ||
      (from === L.PORT_STATE_CREATING && (state === L.PORT_STATE_LIVE || state === L.PORT_STATE_FREE)) ||
      (from === L.PORT_STATE_LIVE && state === L.PORT_STATE_FREE);
    assert(legal, `port entry ${index}: no transition from state ${from} to ${state}`);
    Atomics.store(this.sp.i32, this.portWord(index, L.PE_STATE), state);
  }

  /**
   * Creates a port entry with its rings in region `memId`. Ring order in the ring table is
   * netmap's: NIC TX, host TX, NIC RX, host RX. TX rings get a buffer per slot; RX rings get
   * buffers too unless `rxWithoutBuffers` (pipes, whose RX slots are filled by the peer).
   */
  createPort(p: {
    name: string; kind: number; memId: number; flags: number;
    numTx: number; numRx: number; numHostTx: number; numHostRx: number; txSlots: number; rxSlots: number;
    /** The host RX ring's slots (default: rxSlots). */
    hostRxSlots?: number;
    rxWithoutBuffers?: boolean;
  }): number {
    this.assertLocked();
    if (p.name.length === 0 || p.name.length >= L.PE_NAME_MAX) fail('EINVAL', `port name '${p.name}' must have 1 to ${L.PE_NAME_MAX - 1} characters`);
    if (this.findPort(p.name) >= 0) fail('EEXIST', `port ${p.name} already exists`);
    let index = -1;
    for (let i = 0; i < L.MAX_PORTS; i++) if (this.portGet(i, L.PE_STATE) === L.PORT_STATE_FREE) { index = i; break; }
    if (index < 0) fail('ENOMEM', `all ${L.MAX_PORTS} port entries are in use`);
    // the mark first: an entry beyond it would be missed by every scan, even as debris
    if (index >= this.portsHigh()) this.sp.u32[this.word(L.REG_PORTS_HIGH)] = index + 1;
    const region = this.region(p.memId);
    const u8 = this.sp.u8;
    const entry = this.base + this.portEntry(index);
    u8.fill(0, entry, entry + L.PORT_ENTRY_SIZE);
    this.setPortState(index, L.PORT_STATE_CREATING);
    this.portSet(index, L.PE_KIND, p.kind);
    this.portSet(index, L.PE_MEM_ID, p.memId);
    this.portSet(index, L.PE_FLAGS, p.flags);
    this.portSet(index, L.PE_NUM_TX, p.numTx);
    this.portSet(index, L.PE_NUM_RX, p.numRx);
    this.portSet(index, L.PE_NUM_HOST_TX, p.numHostTx);
    this.portSet(index, L.PE_NUM_HOST_RX, p.numHostRx);
    this.portSet(index, L.PE_TX_SLOTS, p.txSlots);
    this.portSet(index, L.PE_RX_SLOTS, p.rxSlots);
    const hostRxSlots = p.hostRxSlots ?? p.rxSlots;
    this.portSet(index, L.PE_HOST_RX_SLOTS, hostRxSlots);
    this.portSet(index, L.PE_MFS, 1514);
    writeLatin1(u8, entry + L.PE_NAME, p.name, L.PE_NAME_MAX - 1);
    const total = p.numTx + p.numHostTx + p.numRx + p.numHostRx;
    const table = region.allocObject(4 * Math.max(total, 1));
    this.portSet(index, L.PE_RINGS_TABLE, table);
    const created: number[] = [];
    try {
      let k = 0;
      const make = (count: number, dir: number, slots: number, firstId: number, withBufs: boolean): void => {
        for (let r = 0; r < count; r++) created.push(this.createRing(region, dir, slots, firstId + r, withBufs, (table >>> 2) + k++));
      };
      make(p.numTx, L.RING_DIR_TX, p.txSlots, 0, true);
      make(p.numHostTx, L.RING_DIR_TX, p.txSlots, p.numTx, true);
      make(p.numRx, L.RING_DIR_RX, p.rxSlots, 0, !p.rxWithoutBuffers);
      make(p.numHostRx, L.RING_DIR_RX, hostRxSlots, p.numRx, !p.rxWithoutBuffers);
    } catch (e) {
      for (const ring of created) this.freeRing(region, ring);
      region.freeObject(table);
      this.setPortState(index, L.PORT_STATE_FREE);
      throw e;
    }
    this.portSet(index, L.PE_GENERATION, this.portGet(index, L.PE_GENERATION) + 1);
    this.regionRef(p.memId, +1);
    this.setPortState(index, L.PORT_STATE_LIVE);
    return index;
  }

  /**
   * Makes a ring and records it at word `tableWord` of its port's ring table at once, before its
   * buffers are taken: a creator killed half-way leaves everything it took findable there (see
   * reclaimHalfMade).
   */
  private createRing(region: Region, dir: number, slots: number, id: number, withBufs: boolean, tableWord: number): number {
    const ring = region.allocObject(L.ringBytes(slots));
    const sp = this.sp;
    sp.u32[tableWord] = ring;
    const ringWord = ring >>> 2;
    const bufOfs = region.bufBase - ring;
    sp.view.setBigInt64(ring + L.RING_BUF_OFS, BigInt(bufOfs), true);
    sp.u32[ringWord + L.RING_NUM_SLOTS / 4] = slots;
    sp.u32[ringWord + L.RING_BUF_SIZE / 4] = region.bufSize;
    sp.u16[(ring + L.RING_ID) >>> 1] = id;
    sp.u16[(ring + L.RING_DIR) >>> 1] = dir;
    if (withBufs) {
      for (let s = 0; s < slots; s++) {
        const idx = region.allocBuf();
        if (idx === 0) {
          sp.u32[tableWord] = 0;
          this.freeRing(region, ring);
          fail('ENOMEM', `memory region ${region.memId} has no free buffers for a ${slots}-slot ring`);
        }
        sp.u32[(ring + L.RING_SLOTS + s * L.SLOT_SIZE) >>> 2] = idx;
      }
    }
    if (dir === L.RING_DIR_TX) {
      sp.u32[ringWord + L.RING_TAIL / 4] = slots - 1;
      sp.u32[ringWord + L.KR_HWTAIL / 4] = slots - 1;
      sp.u32[ringWord + L.KR_RTAIL / 4] = slots - 1;
      sp.u32[ringWord + L.KR_SHADOW_TAIL / 4] = slots - 1;
    }
    return ring;
  }

  private freeRing(region: Region, ring: number): void {
    const slots = this.sp.u32[(ring + L.RING_NUM_SLOTS) >>> 2]!;
    for (let s = 0; s < slots; s++) {
      const slotWord = (ring + L.RING_SLOTS + s * L.SLOT_SIZE) >>> 2;
      region.freeBuf(this.sp.u32[slotWord]!);
      this.sp.u32[slotWord] = 0;
    }
    region.freeObject(ring);
  }

  /**
   * Marks every buffer index that a slot of a live port of region `memId` holds, except the
   * ports in `skip`. Used before freeing buffers named by user-writable memory (extra-buffer
   * lists, ring slots of a dying port): a buffer still in some other ring is never freed.
   */
  buffersInUse(memId: number, skip: number[]): Uint8Array {
    const region = this.region(memId);
    const used = new Uint8Array(region.numBufs);
    const u32 = this.sp.u32;
    for (let i = 0, high = this.portsHigh(); i < high; i++) {
      if (this.portGet(i, L.PE_STATE) !== L.PORT_STATE_LIVE || this.portGet(i, L.PE_MEM_ID) !== memId || skip.includes(i)) continue;
      const n = this.totalRings(i);
      for (let k = 0; k < n; k++) {
        const ring = this.ringOffset(i, k);
        const slots = u32[(ring + L.RING_NUM_SLOTS) >>> 2]!;
        for (let s = 0; s < slots; s++) {
          const idx = u32[(ring + L.RING_SLOTS + s * L.SLOT_SIZE) >>> 2]!;
          if (idx < used.length) used[idx] = 1;
        }
      }
    }
    return used;
  }

  /** Frees `idx` unless `used` marks it (see buffersInUse); marks it so it is freed only once. */
  static freeIfUnused(region: Region, used: Uint8Array, idx: number): void {
    if (idx < 2 || idx >= used.length || used[idx] !== 0) return;
    used[idx] = 1;
    region.freeBuf(idx);
  }

  /** Space offset of ring `k` (in netmap order) of port `index`. */
  ringOffset(index: number, k: number): number {
    return this.sp.u32[(this.portGet(index, L.PE_RINGS_TABLE) >>> 2) + k]!;
  }

  totalRings(index: number): number {
    return this.portGet(index, L.PE_NUM_TX) + this.portGet(index, L.PE_NUM_HOST_TX) + this.portGet(index, L.PE_NUM_RX) + this.portGet(index, L.PE_NUM_HOST_RX);
  }

  /**
   * Destroys port entries (a pipe's two ends go together), their rings and the buffers those
   * rings hold; a region goes with its last port.
   */
  destroyPort(index: number, alsoIndex = -1): void {
    this.assertLocked();
    const doomed = [index, alsoIndex].filter((i) => this.portLive(i));
    if (doomed.length === 0) return;
    for (const i of doomed) {
      const destroy = Registry.kindOperations.get(this.portGet(i, L.PE_KIND))?.destroy;
      if (destroy != null) destroy(this, i);
    }
    const memId = this.portGet(doomed[0]!, L.PE_MEM_ID);
    if (this.regionLive(memId)) {
      const region = this.region(memId);
      const used = this.buffersInUse(memId, doomed);
      const u32 = this.sp.u32;
      for (const i of doomed) {
        const n = this.totalRings(i);
        for (let k = 0; k < n; k++) {
          const ring = this.ringOffset(i, k);
          const slots = u32[(ring + L.RING_NUM_SLOTS) >>> 2]!;
          for (let s = 0; s < slots; s++) Registry.freeIfUnused(region, used, u32[(ring + L.RING_SLOTS + s * L.SLOT_SIZE) >>> 2]!);
          region.freeObject(ring);
        }
        region.freeObject(this.portGet(i, L.PE_RINGS_TABLE));
      }
    }
    for (const i of doomed) {
      const m = this.portGet(i, L.PE_MEM_ID);
      this.portSet(i, L.PE_GENERATION, this.portGet(i, L.PE_GENERATION) + 1);
      this.setPortState(i, L.PORT_STATE_FREE);
      if (this.regionLive(m)) this.regionRef(m, -1);
    }
  }

  // ---- handles ----------------------------------------------------------------------------------

  handleField(index: number, slot: number, field: number): number {
    return this.portWord(index, L.PE_HANDLES + slot * L.HANDLE_SIZE + field);
  }

  /** Records a handle of this thread on port `index`; returns its slot. */
  addHandle(index: number, token: number): number {
    this.assertLocked();
    const u32 = this.sp.u32;
    for (let s = 0; s < L.MAX_HANDLES; s++) {
      if (u32[this.handleField(index, s, L.HR_TOKEN)] === 0) {
        for (let f = 0; f < L.HANDLE_SIZE; f += 4) u32[this.handleField(index, s, f)] = 0;
        u32[this.handleField(index, s, L.HR_PID)] = process.pid;
        u32[this.handleField(index, s, L.HR_TID)] = selfTid();
        u32[this.handleField(index, s, L.HR_TOKEN)] = token;
        this.portSet(index, L.PE_USERS, this.portGet(index, L.PE_USERS) + 1);
        return s;
      }
    }
    return fail('EBUSY', `port ${this.portName(index)} already has ${L.MAX_HANDLES} open handles`);
  }

  findHandle(index: number, token: number): number {
    for (let s = 0; s < L.MAX_HANDLES; s++) if (this.sp.u32[this.handleField(index, s, L.HR_TOKEN)] === token) return s;
    return -1;
  }

  /** Releases a handle slot (the caller has freed what it held). */
  dropHandle(index: number, slot: number): void {
    this.assertLocked();
    this.sp.u32[this.handleField(index, slot, L.HR_TOKEN)] = 0;
    const users = this.portGet(index, L.PE_USERS);
    this.portSet(index, L.PE_USERS, users > 0 ? users - 1 : 0);
  }

  /**
   * Frees what handle `slot` of port `index` holds: its extra buffers, its netmap_if, its use of
   * rings; then the slot. Run by close() and, for dead threads, by collectGarbage().
   */
  releaseHandle(index: number, slot: number): void {
    this.assertLocked();
    const u32 = this.sp.u32;
    const memId = this.portGet(index, L.PE_MEM_ID);
    const nifp = u32[this.handleField(index, slot, L.HR_NIFP)]!;
    const token = u32[this.handleField(index, slot, L.HR_TOKEN)]!;
    if (this.regionLive(memId)) {
      const region = this.region(memId);
      if (nifp !== 0) {
        // Free the extra-buffer list as it is now, skipping anything a ring still holds and
        // stopping at the first invalid or repeated index (a corrupt list cannot harm others).
        const used = this.buffersInUse(memId, []);
        let idx = u32[(nifp + L.NIFP_BUFS_HEAD) >>> 2]!;
        for (let steps = 0; idx >= 2 && idx < region.numBufs && steps < region.numBufs; steps++) {
          const at = region.bufOffset(idx) >>> 2;
          const next = u32[at]!;
          if (used[idx] !== 0 || region.isFree(idx)) break;
          u32[at] = 0;
          Registry.freeIfUnused(region, used, idx);
          idx = next;
        }
        region.freeObject(nifp);
      }
    }
    const numTx = this.portGet(index, L.PE_NUM_TX) + this.portGet(index, L.PE_NUM_HOST_TX);
    const txRange = u32[this.handleField(index, slot, L.HR_RING_MASK_TX)]!;
    const rxRange = u32[this.handleField(index, slot, L.HR_RING_MASK_RX)]!;
    const unuse = (k: number): void => {
      const ring = this.ringOffset(index, k);
      const users = u32[(ring + L.KR_USERS) >>> 2]!;
      u32[(ring + L.KR_USERS) >>> 2] = users > 0 ? users - 1 : 0;
      if (u32[(ring + L.KR_EXCLUSIVE) >>> 2] === token) u32[(ring + L.KR_EXCLUSIVE) >>> 2] = 0;
      u32[(ring + L.KR_BUSY) >>> 2] = 0;
    };
    if (this.regionLive(memId)) { // the rings live in the region: nothing to undo without it
      // a range word holds [first, end) of the bound rings as two 16-bit halves
      for (let k = txRange & 0xffff; k < txRange >>> 16; k++) unuse(k);
      for (let k = rxRange & 0xffff; k < rxRange >>> 16; k++) unuse(numTx + k);
    }
    this.dropHandle(index, slot);
  }

  /** Runs the last-user operation of the port's kind (ephemeral ports destroy themselves there). */
  lastUserGone(index: number): void {
    const lastUser = Registry.kindOperations.get(this.portGet(index, L.PE_KIND))?.lastUser;
    if (lastUser != null) lastUser(this, index);
  }

  /** Releases the handles of dead threads and what only they held. Returns how many. */
  collectGarbage(): number {
    const outermost = this.depth === 0;
    return this.locked(() => {
      // Only between control operations can half-made state be told from debris of the dead.
      if (outermost) this.sweepDebris();
      let released = 0;
      const u32 = this.sp.u32;
      for (let i = 0, high = this.portsHigh(); i < high; i++) {
        if (this.portGet(i, L.PE_STATE) !== L.PORT_STATE_LIVE) continue;
        let touched = false;
        for (let s = 0; s < L.MAX_HANDLES; s++) {
          if (u32[this.handleField(i, s, L.HR_TOKEN)] === 0) continue;
          const tid = u32[this.handleField(i, s, L.HR_TID)]!;
          if (ownerAlive(tid)) continue;
          this.releaseHandle(i, s);
          released++;
          touched = true;
        }
        if (touched && this.portLive(i) && this.portGet(i, L.PE_USERS) === 0) this.lastUserGone(i);
      }
      return released;
    });
  }

  /**
   * Removes what a control operation killed half-way left behind (it runs under the lock, so
   * outside a locked section nothing is legitimately half-made): port entries still "being
   * created" and regions that no live port uses (a region is always created with its first port,
   * and goes with its last). A half-made port's rings, buffers and ring table go back to its
   * region (reclaimHalfMade); a region nobody uses is freed whole, its file removed.
   */
  private sweepDebris(): void {
    for (let i = 0, high = this.portsHigh(); i < high; i++) {
      if (this.portGet(i, L.PE_STATE) !== L.PORT_STATE_CREATING) continue;
      this.reclaimHalfMade(i);
      this.setPortState(i, L.PORT_STATE_FREE);
    }
    const used = new Uint8Array(L.MAX_REGIONS + 1);
    for (let i = 0, high = this.portsHigh(); i < high; i++) {
      if (this.portGet(i, L.PE_STATE) !== L.PORT_STATE_LIVE) continue;
      const m = this.portGet(i, L.PE_MEM_ID);
      if (m >= 1 && m <= L.MAX_REGIONS) used[m] = 1;
    }
    for (let m = 1; m <= L.MAX_REGIONS; m++) if (this.regionLive(m) && used[m] === 0) this.destroyRegion(m);
  }

  /**
   * Gives back what the port entry `index`, left "being created" by a creator that died, took in
   * its region: the rings recorded in its ring table (each is recorded before its buffers are
   * taken), their buffers, the table. Buffers named by ring memory are freed only if no live port
   * of the region holds them (ring memory is writable by any process of the user).
   */
  private reclaimHalfMade(index: number): void {
    const memId = this.portGet(index, L.PE_MEM_ID);
    const table = this.portGet(index, L.PE_RINGS_TABLE);
    if (table === 0 || !this.regionLive(memId)) return;
    const region = this.region(memId);
    // geometry from the registry entry (written by the creator), never from ring memory
    const numTx = this.portGet(index, L.PE_NUM_TX) + this.portGet(index, L.PE_NUM_HOST_TX);
    const nicRxEnd = numTx + this.portGet(index, L.PE_NUM_RX);
    const total = nicRxEnd + this.portGet(index, L.PE_NUM_HOST_RX);
    const txSlots = this.portGet(index, L.PE_TX_SLOTS), rxSlots = this.portGet(index, L.PE_RX_SLOTS);
    const hostRxSlots = this.portGet(index, L.PE_HOST_RX_SLOTS);
    const inUse = this.buffersInUse(memId, [index]);
    const u32 = this.sp.u32;
    for (let k = 0; k < total; k++) {
      const ring = u32[(table >>> 2) + k]!;
      if (ring === 0) continue;
      // the ring table's order is createPort's: NIC TX, host TX, NIC RX, host RX
      const slots = k < numTx ? txSlots : k < nicRxEnd ? rxSlots : hostRxSlots;
      for (let s = 0; s < slots; s++) {
        const idx = u32[(ring + L.RING_SLOTS + s * L.SLOT_SIZE) >>> 2]!;
        if (idx < inUse.length && inUse[idx] === 0) { region.freeBuf(idx); inUse[idx] = 1; }
      }
      region.freeObject(ring);
    }
    region.freeObject(table);
  }

  // ---- switches ---------------------------------------------------------------------------------

  switchEntry(switchIndex: number): number {
    return L.SWITCHES_TABLE + switchIndex * L.SWITCH_ENTRY_SIZE;
  }

  switchWord(switchIndex: number, field: number): number {
    return this.word(this.switchEntry(switchIndex) + field);
  }

  switchName(switchIndex: number): string {
    const start = this.base + this.switchEntry(switchIndex) + L.SW_NAME;
    const u8 = this.sp.u8;
    let end = start;
    while (end < start + 16 && u8[end] !== 0) end++;
    return readLatin1(u8, start, end);
  }

  findSwitch(name: string): number {
    for (let s = 0; s < L.MAX_SWITCHES; s++) {
      if (this.sp.u32[this.switchWord(s, L.SW_STATE)] === L.SWITCH_STATE_LIVE && this.switchName(s) === name) return s;
    }
    return -1;
  }

  liveSwitches(): number[] {
    const out: number[] = [];
    for (let s = 0; s < L.MAX_SWITCHES; s++) if (this.sp.u32[this.switchWord(s, L.SW_STATE)] === L.SWITCH_STATE_LIVE) out.push(s);
    return out;
  }

  /**
   * Finds or creates switch `name`; ENOMEM when the table is full. A new entry is all zeros: the
   * switch layer sets up its policy state (the learning table, src/switch/learning.ts).
   */
  ensureSwitch(name: string): number {
    this.assertLocked();
    const found = this.findSwitch(name);
    if (found >= 0) return found;
    if (name.length >= 16) fail('EINVAL', `switch name '${name}' is longer than 15 characters`);
    for (let s = 0; s < L.MAX_SWITCHES; s++) {
      if (this.sp.u32[this.switchWord(s, L.SW_STATE)] === L.SWITCH_STATE_FREE) {
        const e = this.base + this.switchEntry(s);
        this.sp.u8.fill(0, e, e + L.SWITCH_ENTRY_SIZE);
        writeLatin1(this.sp.u8, e + L.SW_NAME, name, 15);
        Atomics.store(this.sp.i32, this.switchWord(s, L.SW_STATE), L.SWITCH_STATE_LIVE);
        return s;
      }
    }
    return fail('ENOMEM', `cannot create switch ${name}: all ${L.MAX_SWITCHES} switches are in use`);
  }

  /**
   * Puts port `index` on switch `switchIndex`; returns its port number there. (The switch layer's
   * attachToSwitch also resets what the learning table knew about that port number.)
   */
  switchAttach(switchIndex: number, index: number): number {
    this.assertLocked();
    const u32 = this.sp.u32;
    const n = u32[this.switchWord(switchIndex, L.SW_NUM_PORTS)]!;
    if (n >= L.MAX_SWITCH_PORTS) fail('ENOMEM', `switch ${this.switchName(switchIndex)} is full (${L.MAX_SWITCH_PORTS} ports)`);
    for (let p = 0; p < L.MAX_SWITCH_PORTS; p++) {
      if (u32[this.switchWord(switchIndex, L.SW_PORTS + 4 * p)] === 0) {
        u32[this.switchWord(switchIndex, L.SW_PORTS + 4 * p)] = index + 1;
        u32[this.switchWord(switchIndex, L.SW_NUM_PORTS)] = n + 1;
        this.portSet(index, L.PE_SWITCH, switchIndex + 1);
        this.portSet(index, L.PE_SWITCH_PORT, p);
        Atomics.add(this.sp.i32, this.switchWord(switchIndex, L.SW_GENERATION), 1);
        return p;
      }
    }
    return fail('ENOMEM', `switch ${this.switchName(switchIndex)} is full`);
  }

  /**
   * Takes port `index` off its switch; the switch goes with its last port unless persistent.
   * (The switch layer's detachFromSwitch also drops what the learning table learnt on it.)
   */
  switchDetach(index: number): void {
    this.assertLocked();
    const switchPlusOne = this.portGet(index, L.PE_SWITCH);
    if (switchPlusOne === 0) return;
    const switchIndex = switchPlusOne - 1;
    const p = this.portGet(index, L.PE_SWITCH_PORT);
    const u32 = this.sp.u32;
    if (u32[this.switchWord(switchIndex, L.SW_PORTS + 4 * p)] === index + 1) {
      u32[this.switchWord(switchIndex, L.SW_PORTS + 4 * p)] = 0;
      u32[this.switchWord(switchIndex, L.SW_NUM_PORTS)] = Math.max(0, u32[this.switchWord(switchIndex, L.SW_NUM_PORTS)]! - 1);
    }
    this.portSet(index, L.PE_SWITCH, 0);
    this.portSet(index, L.PE_SWITCH_PORT, 0);
    Atomics.add(this.sp.i32, this.switchWord(switchIndex, L.SW_GENERATION), 1);
    if (u32[this.switchWord(switchIndex, L.SW_NUM_PORTS)] === 0 && (u32[this.switchWord(switchIndex, L.SW_FLAGS)]! & 1) === 0) {
      Atomics.store(this.sp.i32, this.switchWord(switchIndex, L.SW_STATE), L.SWITCH_STATE_FREE);
    }
  }
}

let current: Registry | null = null;

/** The registry of the calling thread's shared-memory directory, mapped on first use. */
export function registry(): Registry {
  const sp = space();
  if (current === null || current.sp !== sp) current = new Registry(sp);
  return current;
}

export { NetmapError };
