/**
 * The firewall's shared store: one file `fw-<NAME>` in the shared-memory directory holding
 * everything every evaluating thread and process must agree on:
 *
 *   header (4 KiB)     magic, layout, a robust lock, the configuration generation
 *   config text  x 2   the FirewallConfig as JSON, double-buffered: a writer fills the inactive
 *                      buffer, then flips `active` and bumps `generation`; a reader copies the
 *                      active buffer and re-checks the generation (a seqlock), so it never sees
 *                      half a ruleset
 *   counters           per rule slot, in per-writer stripes (state.ts Counters)
 *   dynamic states     the bounded state table (state.ts DynTable)
 *
 * Evaluators check `generation` once per batch (one load) and rebuild their compiled ruleset
 * when it moved: that is how a new ruleset replaces the old one atomically, between batches, in
 * the kipfw threads and in every VALE sender process alike. The file is mapped into each
 * thread's address space (AddressSpace.mapLocal), so the counters and states are read with the
 * same typed arrays as the packets.
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { fail, assert, NetmapError } from '../errors.js';
import { space, type AddressSpace } from '../memory/space.js';
import { selfTid, ownerAlive, pause } from '../memory/lock.js';
import type { FirewallConfig } from './rule.js';

export const STORE_MAGIC = 0x4e4d4657; // 'NMFW'
export const STORE_LAYOUT = 1;

const H_MAGIC = 0;
const H_LAYOUT = 4;
const H_LOCK = 8; // owner tid of the control lock, 0 free
const H_GENERATION = 12; // bumped by every publish
const H_ACTIVE = 16; // which text buffer holds the current config (0/1)
const H_LEN0 = 20;
const H_LEN1 = 24;
const H_TEXT_MAX = 28;
const H_COUNTERS_OFF = 32;
const H_COUNTERS_BYTES = 36;
const H_DYN_OFF = 40;
const H_DYN_BYTES = 44;
const H_TOTAL = 48;
export const STORE_HEADER = 4096;

/** Each of the two config buffers: enough for 100k+ table entries as JSON. */
export const STORE_TEXT_MAX = 24 << 20;

/** Longest firewall name (a daemon's `-s NAME`, or a switch name). */
export const STORE_NAME_MAX = 32;

export interface StoreGeometry { countersBytes: number; dynBytes: number }

function roundPage(n: number): number {
  return Math.ceil(n / 4096) * 4096;
}

export function checkStoreName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(name) || name === '.' || name === '..') {
    fail('EINVAL', `bad firewall name '${name}': 1 to ${STORE_NAME_MAX} characters of A-Z a-z 0-9 _ . -`);
  }
}

export function storeFile(name: string, sp: AddressSpace = space(), prefix = 'fw-'): string {
  checkStoreName(name);
  return sp.filePath(`${prefix}${name}`);
}

/**
 * Creates `file` of `total` bytes under a temporary name and maps it into `sp`; `publish()` then
 * renames it into place (atomic: an opener sees no file or a complete one). Returns the mapping's
 * offset in the views.
 */
export function createMapped(sp: AddressSpace, file: string, total: number): { base: number; publish(): void } {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = native.openFile(tmp, native.O_RDWR | native.O_CREAT | native.O_EXCL, 0o600);
  let base = -1;
  try {
    native.ftruncate(fd, total);
    base = sp.mapLocal(fd, total);
  } finally {
    native.closeFd(fd);
  }
  return { base, publish: () => fs.renameSync(tmp, file) };
}

/** Maps an existing `file` (at least `min` bytes) into `sp`; `missing` is the ENXIO message when there is none. */
export function openMapped(sp: AddressSpace, file: string, min: number, missing: string): { base: number; total: number } {
  let fd: number;
  try {
    fd = native.openFile(file, native.O_RDWR);
  } catch (e) {
    if (e instanceof NetmapError && e.code === 'ENOENT') fail('ENXIO', missing);
    throw e;
  }
  try {
    const total = fs.fstatSync(fd).size;
    if (total < min) fail('EINVAL', `${file} is truncated (${total} bytes)`);
    return { base: sp.mapLocal(fd, total), total };
  } finally {
    native.closeFd(fd);
  }
}

export class FirewallStore {
  readonly name: string;
  readonly sp: AddressSpace;
  /** Offset of the file's first byte in the address space views. */
  readonly base: number;
  readonly size: number;
  readonly countersOffset: number;
  readonly countersBytes: number;
  readonly dynOffset: number;
  readonly dynBytes: number;
  private closed = false;
  private readonly genWord: number;

  private constructor(name: string, sp: AddressSpace, base: number, size: number) {
    this.name = name;
    this.sp = sp;
    this.base = base;
    this.size = size;
    const u32 = sp.u32, w = base >>> 2;
    this.countersOffset = base + u32[w + H_COUNTERS_OFF / 4]!;
    this.countersBytes = u32[w + H_COUNTERS_BYTES / 4]!;
    this.dynOffset = base + u32[w + H_DYN_OFF / 4]!;
    this.dynBytes = u32[w + H_DYN_BYTES / 4]!;
    this.genWord = (base + H_GENERATION) >>> 2;
    assert(this.dynOffset + this.dynBytes <= base + size, 'store sections inside the file');
  }

  /**
   * Creates the store file (EEXIST if there is one whose daemon lives; a stale one, whose
   * daemon died, is replaced) and publishes `initial`.
   */
  static create(name: string, geometry: StoreGeometry, initial: FirewallConfig): FirewallStore {
    const sp = space();
    const file = storeFile(name, sp);
    const countersOff = STORE_HEADER + 2 * STORE_TEXT_MAX;
    const dynOff = countersOff + roundPage(geometry.countersBytes);
    const total = dynOff + roundPage(geometry.dynBytes);
    if (total >= 0x7fffffff) fail('EINVAL', 'firewall store too large');
    const { base, publish } = createMapped(sp, file, total);
    const u32 = sp.u32, w = base >>> 2;
    u32[w + H_LAYOUT / 4] = STORE_LAYOUT;
    u32[w + H_TEXT_MAX / 4] = STORE_TEXT_MAX;
    u32[w + H_COUNTERS_OFF / 4] = countersOff;
    u32[w + H_COUNTERS_BYTES / 4] = geometry.countersBytes;
    u32[w + H_DYN_OFF / 4] = dynOff;
    u32[w + H_DYN_BYTES / 4] = geometry.dynBytes;
    u32[w + H_TOTAL / 4] = total;
    const store = new FirewallStore(name, sp, base, total);
    store.writeText(JSON.stringify(initial));
    Atomics.store(sp.i32, w + H_MAGIC / 4, STORE_MAGIC);
    publish();
    return store;
  }

  /** Opens an existing store (ENXIO when there is none). */
  static open(name: string): FirewallStore {
    const sp = space();
    const file = storeFile(name, sp);
    const { base, total } = openMapped(sp, file, STORE_HEADER, `no firewall named '${name}' (start one with 'netmap kipfw' or 'netmap ipfw attach valeX')`);
    const u32 = sp.u32, w = base >>> 2;
    const bad = (why: string): never => {
      sp.unmapLocal(base, total);
      fail('EINVAL', `firewall store ${file}: ${why}`);
    };
    if (u32[w + H_MAGIC / 4] !== STORE_MAGIC) bad('bad magic');
    if (u32[w + H_LAYOUT / 4] !== STORE_LAYOUT) bad(`layout version ${u32[w + H_LAYOUT / 4]}, this netmap-ts uses ${STORE_LAYOUT}`);
    if (u32[w + H_TOTAL / 4] !== total) bad(`size ${total} differs from the recorded ${u32[w + H_TOTAL / 4]}`);
    if (u32[w + H_DYN_OFF / 4]! + u32[w + H_DYN_BYTES / 4]! > total || u32[w + H_COUNTERS_OFF / 4]! + u32[w + H_COUNTERS_BYTES / 4]! > total) bad('sections outside the file');
    return new FirewallStore(name, sp, base, total);
  }

  static exists(name: string): boolean {
    return fs.existsSync(storeFile(name));
  }

  /** The configuration generation: compare once per batch. */
  generation(): number {
    return Atomics.load(this.sp.i32, this.genWord);
  }

  /** The current configuration (a consistent copy, whatever writers do meanwhile). */
  readConfig(): FirewallConfig {
    const u32 = this.sp.u32, w = this.base >>> 2;
    for (let attempt = 0; attempt < 1000; attempt++) {
      const g1 = Atomics.load(this.sp.i32, this.genWord);
      const active = u32[w + H_ACTIVE / 4]! & 1;
      const len = u32[w + (active === 0 ? H_LEN0 : H_LEN1) / 4]!;
      if (len > STORE_TEXT_MAX) fail('EINVAL', `firewall store ${this.name}: config length ${len} out of range`);
      const at = this.base + STORE_HEADER + active * STORE_TEXT_MAX;
      const text = Buffer.from(this.sp.buffer, at, len).toString('utf8');
      if (Atomics.load(this.sp.i32, this.genWord) !== g1) continue;
      try {
        return JSON.parse(text) as FirewallConfig;
      } catch {
        fail('EINVAL', `firewall store ${this.name}: the configuration is not valid JSON`);
      }
    }
    fail('EBUSY', `firewall store ${this.name}: the configuration kept changing while being read`);
  }

  /** Publishes a new configuration. The caller holds the lock (withLock). */
  publish(config: FirewallConfig): void {
    this.writeText(JSON.stringify(config));
  }

  private writeText(text: string): void {
    const u32 = this.sp.u32, w = this.base >>> 2;
    const next = (u32[w + H_ACTIVE / 4]! & 1) ^ 1;
    const at = this.base + STORE_HEADER + next * STORE_TEXT_MAX;
    const written = Buffer.from(this.sp.buffer, at, STORE_TEXT_MAX).write(text, 'utf8');
    if (written >= STORE_TEXT_MAX) fail('ENOMEM', `the firewall configuration exceeds ${STORE_TEXT_MAX} bytes`);
    u32[w + (next === 0 ? H_LEN0 : H_LEN1) / 4] = written;
    // the text is complete before anyone can read it as active
    Atomics.store(this.sp.i32, w + H_ACTIVE / 4, next);
    Atomics.add(this.sp.i32, this.genWord, 1);
  }

  /** Runs `fn` holding the store's control lock (a dead holder's lock is taken over). */
  withLock<T>(fn: () => T, timeoutMs = 10000): T {
    const i32 = this.sp.i32, word = (this.base + H_LOCK) >>> 2;
    const me = selfTid();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const owner = Atomics.compareExchange(i32, word, 0, me);
      if (owner === 0) break;
      if (owner === me) fail('EBUSY', 'firewall lock already held by this thread');
      if (!ownerAlive(owner)) {
        if (Atomics.compareExchange(i32, word, owner, me) === owner) break;
        continue;
      }
      if (Date.now() > deadline) fail('EBUSY', `firewall ${this.name}: timed out waiting for the control lock held by thread ${owner}`);
      pause(1);
    }
    try {
      return fn();
    } finally {
      Atomics.store(i32, word, 0);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sp.unmapLocal(this.base, this.size);
  }

  /** Removes the file (the mapping of this and other openers stays valid until they close). */
  remove(): void {
    try { fs.unlinkSync(storeFile(this.name, this.sp)); } catch { /* already gone */ }
  }
}

