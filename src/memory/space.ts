/**
 * The address space of one thread. Each thread (main or worker) and each process reserves one
 * range of virtual memory and maps every shared file it needs into it, at the offset the registry
 * assigned to that file. One ArrayBuffer spans the whole range, so:
 *  - an offset means the same memory in every thread and process;
 *  - buffers of different ports are copied with a single copyWithin (memmove);
 *  - all code indexes the same few typed arrays, which keeps the hot paths monomorphic.
 * Threads do not share their mappings: a worker maps what it uses exactly as a process would.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import * as native from '../native/index.js';
import { NetmapError, assert, fail } from '../errors.js';
import { SPACE_SIZE, SPACE_LOCAL_START, SPACE_LOCAL_END, SPACE_LOCAL_LOW_START, SPACE_LOCAL_LOW_END, PAGE_SIZE } from './layout.js';

/** The directory holding this user's shared-memory files (NETMAP_TS_DIR overrides). */
export function shmDirectory(): string {
  const fromEnv = process.env.NETMAP_TS_DIR ?? '';
  // remembered per value of the variable: space() calls this on every use, some of them in
  // data-path loops (a sleeper's arming), where resolving a path each time made garbage
  if (fromEnv === lastEnv && lastDir !== '') return lastDir;
  lastDir = fromEnv !== '' ? path.resolve(fromEnv) : `/dev/shm/netmap-ts-${os.userInfo().uid}`;
  lastEnv = fromEnv;
  return lastDir;
}
let lastEnv = '', lastDir = '';

/**
 * shmDirectory(), made (mode 0700) or checked as a port's open does: for code that writes a file
 * there before any port is open (the attach daemon's log and record).
 */
export function ensureShmDirectory(): string {
  const dir = shmDirectory();
  ensureDirectory(dir);
  return dir;
}

/**
 * Makes sure `dir` is a directory of this user that netmap-ts can keep its files in, mode 0700.
 * The default (`/dev/shm/netmap-ts-<uid>`) is created as needed. A directory named by
 * NETMAP_TS_DIR is created only in a parent that exists: a mistyped path is refused (ENOENT)
 * rather than silently made into a tree. Errors name the variable (or the default) and the path:
 * ENOTDIR not a directory, ENOENT no parent, EACCES not this user's, a shared sticky directory
 * (/tmp, /dev/shm: it would be made 0700 under everybody), or one where files cannot be created
 * (/proc, /sys, a read-only mount, no write permission).
 */
function ensureDirectory(dir: string): void {
  const env = process.env.NETMAP_TS_DIR ?? '';
  const explicit = env !== '';
  const what = explicit ? `NETMAP_TS_DIR=${env}${path.resolve(env) !== env ? ` (${dir})` : ''}` : `the shared-memory directory ${dir} (the default; NETMAP_TS_DIR is not set)`;
  const why = (e: unknown): string => (e as { code?: string }).code ?? (e as Error).message;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOTDIR') fail('ENOTDIR', `${what}: a part of the path is not a directory`);
    if ((e as { code?: string }).code !== 'ENOENT') fail('EACCES', `${what}: cannot look at it (${why(e)})`);
  }
  if (st === undefined) {
    if (explicit) {
      const parent = path.dirname(dir);
      let pst: fs.Stats | undefined;
      try { pst = fs.statSync(parent); } catch { pst = undefined; }
      if (pst === undefined) fail('ENOENT', `${what}: its parent ${parent} does not exist (a directory named by NETMAP_TS_DIR is created only in an existing one; check the path or create ${parent} first)`);
      if (!pst.isDirectory()) fail('ENOTDIR', `${what}: its parent ${parent} is not a directory`);
    }
    try {
      fs.mkdirSync(dir, { recursive: !explicit, mode: 0o700 });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EEXIST') fail(code === 'ENOENT' ? 'ENOENT' : code === 'ENOTDIR' ? 'ENOTDIR' : 'EACCES', `${what}: cannot create it (${why(e)})`);
    }
    try { st = fs.statSync(dir); } catch (e) { fail('EACCES', `${what}: cannot look at it (${why(e)})`); }
  }
  if (!st.isDirectory()) fail('ENOTDIR', `${what}: not a directory`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    fail('EACCES', `${what}: belongs to uid ${st.uid}, not to this user (uid ${process.getuid()})`);
  }
  if ((st.mode & 0o1000) !== 0) {
    fail('EACCES', `${what}: a shared directory (sticky, mode ${(st.mode & 0o7777).toString(8)}); netmap-ts keeps its files in a directory of its own, mode 0700: name a new one (it is created) or unset NETMAP_TS_DIR`);
  }
  if ((st.mode & 0o077) !== 0) {
    try { fs.chmodSync(dir, 0o700); } catch (e) { fail('EACCES', `${what}: cannot make it mode 0700 (${why(e)})`); }
  }
  // A file can be created there (not /proc or /sys, not read-only, writable): one probe, removed.
  const probe = path.join(dir, `.probe-${process.pid}-${threadId}`);
  try {
    fs.closeSync(fs.openSync(probe, 'wx', 0o600));
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') fail('EACCES', `${what}: cannot create files in it (${why(e)}); give a writable directory on a tmpfs such as /dev/shm`);
  }
  try { fs.unlinkSync(probe); } catch { /* gone already */ }
}

interface Mapping { offset: number; size: number; generation: number }

export class AddressSpace {
  readonly address: number;
  readonly buffer: ArrayBuffer;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly view: DataView;
  readonly dir: string;
  /** Shared files mapped in this thread, by file name. */
  private readonly mappings = new Map<string, Mapping>();
  /** Next unused offset for a private mapping: the low range first, then the high one. */
  private localNext = SPACE_LOCAL_LOW_START;
  private readonly localFree: Array<{ offset: number; size: number }> = [];

  constructor(dir: string) {
    this.dir = dir;
    ensureDirectory(dir);
    const { address, buffer } = native.reserveAddressSpace(SPACE_SIZE);
    this.address = address;
    this.buffer = buffer;
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.f64 = new Float64Array(buffer);
    this.view = new DataView(buffer);
  }

  filePath(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Makes sure shared file `name` is mapped at [offset, offset+size) as of `generation`. A
   * mapping left from an older file of the same name, or from another file that used to live at
   * these offsets, is replaced.
   */
  mapShared(name: string, offset: number, size: number, generation: number): void {
    const current = this.mappings.get(name);
    if (current !== undefined && current.offset === offset && current.size === size && current.generation === generation) return;
    let fd: number;
    try {
      fd = native.openFile(this.filePath(name), native.O_RDWR);
    } catch (e) {
      if (e instanceof NetmapError && e.code === 'ENOENT') fail('ENXIO', `shared memory file ${name} is gone`);
      throw e;
    }
    try {
      native.mapFileAt(this.address + offset, size, fd);
    } finally {
      native.closeFd(fd);
    }
    for (const [other, m] of this.mappings) {
      if (other !== name && m.offset < offset + size && offset < m.offset + m.size) this.mappings.delete(other);
    }
    this.mappings.set(name, { offset, size, generation });
  }

  /** Whether `name` is mapped here as of `generation` (a cheap check for hot paths). */
  isMapped(name: string, generation: number): boolean {
    const m = this.mappings.get(name);
    return m !== undefined && m.generation === generation;
  }

  /** Forgets and unmaps a shared file (its range becomes inaccessible again). */
  unmapShared(name: string): void {
    const m = this.mappings.get(name);
    if (m === undefined) return;
    native.unmapToReserved(this.address + m.offset, m.size);
    this.mappings.delete(name);
  }

  /**
   * Maps `length` bytes of `fd` from `fileOffset` (an AF_PACKET ring, an AF_XDP ring's page offset)
   * privately to this thread and returns the offset of the mapping in the views.
   */
  mapLocal(fd: number, length: number, fileOffset = 0): number {
    const size = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    let offset = -1;
    const reuse = this.localFree.findIndex((f) => f.size >= size);
    if (reuse >= 0) {
      offset = this.localFree[reuse]!.offset;
      this.localFree.splice(reuse, 1);
    } else {
      if (this.localNext < SPACE_LOCAL_LOW_END && this.localNext + size > SPACE_LOCAL_LOW_END) this.localNext = SPACE_LOCAL_START;
      if (this.localNext + size > SPACE_LOCAL_END) fail('ENOMEM', `no room left for a ${size}-byte local mapping`);
      offset = this.localNext;
      this.localNext += size;
    }
    try {
      native.mapFileAt(this.address + offset, size, fd, fileOffset);
    } catch (e) {
      this.localFree.push({ offset, size });
      throw e;
    }
    return offset;
  }

  unmapLocal(offset: number, length: number): void {
    const size = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    assert((offset >= SPACE_LOCAL_LOW_START && offset + size <= SPACE_LOCAL_LOW_END) || (offset >= SPACE_LOCAL_START && offset + size <= SPACE_LOCAL_END), 'local mapping out of range');
    native.unmapToReserved(this.address + offset, size);
    this.localFree.push({ offset, size });
  }

  /** Absolute address of an offset, for futex and other native calls. */
  absolute(offset: number): number {
    return this.address + offset;
  }

  /**
   * Copies `len` bytes from offset `src` to `dst`, where `room` bytes are writable. A frame of up
   * to SHORT_COPY bytes between even offsets moves as 16-bit words: cheaper than copyWithin's call
   * (about 100 ns); after an odd last byte one more is moved, so it needs len < room and one
   * readable byte past the source (true of buffers and kernel ring frames alike).
   */
  copy(dst: number, src: number, len: number, room: number): void {
    if (len <= SHORT_COPY && ((src | dst) & 1) === 0 && len < room) {
      const u16 = this.u16;
      for (let s = src >>> 1, d = dst >>> 1, e = s + ((len + 1) >>> 1); s < e; s++, d++) u16[d] = u16[s]!;
    } else {
      this.u8.copyWithin(dst, src, src + len);
    }
  }
}

/** Frames up to this length are copied by AddressSpace.copy() with a 16-bit loop. */
export const SHORT_COPY = 128;

let current: AddressSpace | null = null;

/** The address space of the calling thread, reserved on first use. */
export function space(): AddressSpace {
  const dir = shmDirectory();
  if (current === null || current.dir !== dir) current = new AddressSpace(dir);
  return current;
}
