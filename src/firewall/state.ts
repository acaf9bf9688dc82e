/**
 * The firewall's shared state: per-rule counters and the dynamic-state table. Both live in memory
 * shared by threads and processes: each class is a view over (buffer, byteOffset, byteLength) of
 * an ArrayBuffer or SharedArrayBuffer that the owner provides (a SharedArrayBuffer in tests, a
 * mapped file in production), and an all-zero region is a valid empty state, so whoever maps it
 * first needs no initialisation step and a process attaching later sees what is there.
 *
 * Locks are Int32 words holding the owner's thread id, taken with Atomics.compareExchange; a
 * waiter that finds the owner dead (src/memory/lock.ts ownerAlive) takes the lock over. The
 * dynamic table's lock is held for a few hundred nanoseconds per lookup, so waiters spin (no
 * futex: a mapped file is not a SharedArrayBuffer, and a system call per packet costs more than
 * the critical section).
 */
import { assert, fail } from '../errors.js';
import { selfTid, ownerAlive, pause } from '../memory/lock.js';
import { MAX_RULES, type Settings } from './rule.js';
import type { PacketInfo } from './packet.js';

const MAGIC_COUNTERS = 0x4657434e; // 'FWCN'
const MAGIC_DYN = 0x46574459; // 'FWDY'

/** Rounds up to a multiple of 8 (offsets may exceed 2^31: the local mappings start at 2 GiB, so no bit operations). */
function align8(n: number): number { return Math.ceil(n / 8) * 8; }

/** Sets a zero header word to `value`; true if it now holds `value` (set here or by another user). */
function claimWord(i32: Int32Array, word: number, value: number): boolean {
  const old = Atomics.compareExchange(i32, word, 0, value | 0);
  return old === 0 || old === (value | 0);
}

/** Spins for a lock word; takes it over from a dead owner; fails with EBUSY after `timeoutMs`. */
function spinLock(i32: Int32Array, word: number, timeoutMs = 10000): void {
  const me = selfTid();
  let owner = Atomics.compareExchange(i32, word, 0, me);
  if (owner === 0) return;
  let spins = 0, rounds = 0;
  let deadline = 0;
  for (;;) {
    if (owner === me) fail('EBUSY', 'firewall state lock already held by this thread (recursive use is a bug)');
    if (++spins >= 2000) {
      spins = 0;
      if (!ownerAlive(owner)) {
        if (Atomics.compareExchange(i32, word, owner, me) === owner) return;
      } else {
        if (deadline === 0) deadline = Date.now() + timeoutMs;
        else if (Date.now() > deadline) fail('EBUSY', `timed out waiting for a firewall state lock held by thread ${owner}`);
        // The owner is alive but not done: it was probably descheduled (more threads than
        // cores). Spinning on would only keep it off the CPU longer: sleep after a few rounds.
        pause(++rounds < 4 ? 0 : 1);
      }
    }
    owner = Atomics.compareExchange(i32, word, 0, me);
    if (owner === 0) return;
  }
}

function spinUnlock(i32: Int32Array, word: number): void {
  Atomics.store(i32, word, 0);
}

// ---------------------------------------------------------------------------------------------
// Counters

/** Default number of stripes: evaluating threads/processes that count without atomics. */
export const DEFAULT_STRIPES = 32;

const C_HDR = 64; // magic, stripes, slots, lock, (spare)

/**
 * Per-rule packets, bytes (f64, exact up to 2^53) and last match (u32 unix seconds), in stripes:
 * each evaluating thread or process owns one stripe (acquireStripe) and adds to it with plain
 * stores, so there are no lost updates and no atomic per packet; read() sums the stripes.
 * zero() records the current sums as a baseline that read() subtracts, so zeroing never races
 * with an owner's read-modify-write. Stripe 0 is the control side's (and the fall-back of an
 * evaluator that finds every stripe taken).
 */
export class Counters {
  readonly stripes: number;
  readonly slots: number;
  private readonly hdr: Int32Array;
  private readonly owners: Int32Array;
  private readonly basePackets: Float64Array;
  private readonly baseBytes: Float64Array;
  /** packets[stripe * slots + slot]. */
  readonly packets: Float64Array;
  readonly bytes: Float64Array;
  readonly last: Uint32Array;
  private readonly logged: Uint32Array;

  static bytesNeeded(stripes = DEFAULT_STRIPES, slots = MAX_RULES): number {
    return C_HDR + align8(4 * stripes) + 16 * slots + stripes * slots * 20 + align8(4 * slots) + 8;
  }

  constructor(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, byteLength: number, stripes = DEFAULT_STRIPES, slots = MAX_RULES) {
    if (byteOffset % 8 !== 0) fail('EINVAL', `counters must start on an 8-byte boundary (offset ${byteOffset})`);
    if (stripes < 1 || stripes > 1024 || slots < 1) fail('EINVAL', `bad counters geometry: ${stripes} stripes, ${slots} slots`);
    if (byteLength < Counters.bytesNeeded(stripes, slots)) fail('EINVAL', `counters need ${Counters.bytesNeeded(stripes, slots)} bytes, got ${byteLength}`);
    if (byteOffset + byteLength > buffer.byteLength) fail('EINVAL', 'counters region runs past the buffer');
    this.stripes = stripes; this.slots = slots;
    let at = byteOffset;
    this.hdr = new Int32Array(buffer, at, C_HDR / 4); at += C_HDR;
    this.owners = new Int32Array(buffer, at, stripes); at += align8(4 * stripes);
    this.basePackets = new Float64Array(buffer, at, slots); at += 8 * slots;
    this.baseBytes = new Float64Array(buffer, at, slots); at += 8 * slots;
    this.packets = new Float64Array(buffer, at, stripes * slots); at += 8 * stripes * slots;
    this.bytes = new Float64Array(buffer, at, stripes * slots); at += 8 * stripes * slots;
    this.last = new Uint32Array(buffer, at, stripes * slots); at += 4 * stripes * slots;
    this.logged = new Uint32Array(buffer, align8(at), slots);
    // Each word is claimed with a compare-and-swap, so processes attaching at the same moment to
    // a fresh (all-zero) region agree, and a region laid out otherwise is refused.
    if (!claimWord(this.hdr, 1, stripes) || !claimWord(this.hdr, 2, slots) || !claimWord(this.hdr, 0, MAGIC_COUNTERS)) {
      fail('EINVAL', 'the counters region holds something else (magic or geometry differ)');
    }
  }

  /**
   * Takes a stripe for the calling thread: a free one, else one whose owner died (its sums stay:
   * the new owner adds onto them, which is folding without a copy). Falls back to stripe 0
   * (shared with the control side: counts may then be lost under contention) when all are live.
   */
  acquireStripe(): number {
    const me = selfTid();
    for (let s = 1; s < this.stripes; s++) {
      const owner = Atomics.compareExchange(this.owners, s, 0, me);
      if (owner === 0 || owner === me) return s;
    }
    for (let s = 1; s < this.stripes; s++) {
      const owner = Atomics.load(this.owners, s);
      if (!ownerAlive(owner) && Atomics.compareExchange(this.owners, s, owner, me) === owner) return s;
    }
    return 0;
  }

  releaseStripe(stripe: number): void {
    if (stripe <= 0 || stripe >= this.stripes) return;
    Atomics.compareExchange(this.owners, stripe, selfTid(), 0);
  }

  /** One match of rule `slot`: the data-path update (owner of `stripe` only). */
  add(stripe: number, slot: number, bytes: number, nowSec: number): void {
    this.addAt(stripe * this.slots + slot, bytes, nowSec);
  }

  /** The index of (stripe, slot) for addAt. */
  indexOf(stripe: number, slot: number): number {
    return stripe * this.slots + slot;
  }

  /** add() at index indexOf(stripe, slot). */
  addAt(i: number, bytes: number, nowSec: number): void {
    this.packets[i]! += 1;
    this.bytes[i]! += bytes;
    this.last[i] = nowSec;
  }

  /** The rule's totals over all stripes since the last zero. */
  read(slot: number): { packets: number; bytes: number; lastMatch: number } {
    assert(slot >= 0 && slot < this.slots, 'counter slot out of range');
    let packets = 0, bytes = 0, last = 0;
    for (let s = 0, i = slot; s < this.stripes; s++, i += this.slots) {
      packets += this.packets[i]!; bytes += this.bytes[i]!;
      if (this.last[i]! > last) last = this.last[i]!;
    }
    return { packets: packets - this.basePackets[slot]!, bytes: bytes - this.baseBytes[slot]!, lastMatch: last };
  }

  /** Zeroes the rule's counters (ipfw zero N; also done when a slot is given to a new rule). */
  zero(slot: number): void {
    assert(slot >= 0 && slot < this.slots, 'counter slot out of range');
    let packets = 0, bytes = 0;
    for (let s = 0, i = slot; s < this.stripes; s++, i += this.slots) {
      packets += this.packets[i]!; bytes += this.bytes[i]!; this.last[i] = 0;
    }
    this.basePackets[slot] = packets; this.baseBytes[slot] = bytes;
    this.logged[slot] = 0;
  }

  /** Counts one logged packet of `slot` if under `limit` (0 = unlimited); returns whether to log. */
  logOne(slot: number, limit: number): boolean {
    if (limit > 0 && Atomics.load(this.logged, slot) >= limit) return false;
    Atomics.add(this.logged, slot, 1);
    return true;
  }

  loggedCount(slot: number): number { return Atomics.load(this.logged, slot); }

  /** ipfw resetlog N: the rule may log again. */
  resetLog(slot: number): void { Atomics.store(this.logged, slot, 0); }
}

// ---------------------------------------------------------------------------------------------
// Dynamic states

export const KIND_STATE = 1, KIND_LIMIT = 2, KIND_PARENT = 3;
/** nameId that matches states of every name (check-state :any). */
export const NAME_ANY = -1;

const TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04;
const BOTH_SYN = TH_SYN | (TH_SYN << 8);
const BOTH_FIN = TH_FIN | (TH_FIN << 8);
const TCP_FLAGS = 0x3f | (0x3f << 8);
const ACK_FWD = 0x10000, ACK_REV = 0x20000;

// Header words (Int32).
const H_MAGIC = 0, H_LOCK = 1, H_CAPACITY = 2, H_BUCKETS = 3, H_COUNT = 4, H_HIGH = 5, H_FREE = 6, H_NAMES = 7;
const H_WORDS = 16; // then the bucket locks, then f64 stats: full, limitDrops
/** Bucket locks: bucket h is guarded by lock h % BUCKET_LOCKS (the header's lock guards allocation, names and statistics). */
const BUCKET_LOCKS = 64;
/** Words between two lock words: one per 64-byte cache line, so threads on different locks do not share a line. */
const LOCK_STRIDE = 16;
const NAME_SLOTS = 64, NAME_BYTES = 48;
// Entry layout in u32 words.
const E_NEXT = 0, E_KIND = 1, E_PROTO = 2, E_AF = 3, E_SRC = 4, E_DST = 8, E_SPORT = 12, E_DPORT = 13;
const E_SLOT = 14, E_RULE = 15, E_NAME = 16, E_TCP = 17, E_ACKF = 18, E_ACKR = 19, E_PARENT = 20, E_COUNT = 21;
const E_F64_EXPIRE = 12, E_F64_PACKETS = 13, E_F64_BYTES = 14;
const E_WORDS = 32; // 128 bytes

/** One state as `ipfw -d` lists it. */
export interface DynStateView {
  ruleNumber: number;
  ruleSlot: number;
  packets: number;
  bytes: number;
  /** Seconds left (negative once expired). */
  remaining: number;
  kind: 'STATE' | 'LIMIT' | 'PARENT';
  /** Children of a PARENT (limit) entry. */
  count: number;
  proto: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  name: string;
  expired: boolean;
}

export interface DynStats { count: number; capacity: number; full: number; limitDrops: number }

function endpointHash(addr: number, port: number): number {
  let h = Math.imul(addr ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ (port * 0x10001), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function fmt4(a: number): string { return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`; }

/** RFC 5952 text of an IPv6 address given as 4 words. */
export function formatIp6(w: ArrayLike<number>): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((w[i]! >>> 16) & 0xffff, w[i]! & 0xffff);
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i; while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/**
 * A bounded, bidirectional dynamic-state table (keep-state, limit), one lock for the table.
 * Capacity is fixed at creation; settings.dynMax further bounds the live states; a packet that
 * needs a state when the table is full is denied and counted (`full`), as ipfw's failed
 * uma allocation. Buckets: a power of two ≥ capacity (dyn_buckets is not used: the layout is fixed).
 */
export class DynTable {
  readonly capacity: number;
  readonly buckets: number;
  private readonly bucketBits: number;
  private readonly hdr: Int32Array;
  private readonly locks: Int32Array;
  private readonly stats: Float64Array;
  private readonly names: Uint8Array;
  private readonly bucket: Int32Array;
  private readonly e32: Uint32Array;
  private readonly f64: Float64Array;
  /** Direction of the last lookupPacket hit: true = forward (as installed). */
  lastForward = false;
  /** Parent rule slot and number of the last lookupPacket hit. */
  lastSlot = 0;
  lastRule = 0;

  static bucketsFor(capacity: number): number {
    let b = 16;
    while (b < capacity) b <<= 1;
    return b;
  }

  static bytesNeeded(capacity: number): number {
    return 64 + 4 * LOCK_STRIDE * BUCKET_LOCKS + 16 + NAME_SLOTS * NAME_BYTES + 4 * DynTable.bucketsFor(capacity) + capacity * E_WORDS * 4 + 8;
  }

  constructor(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, byteLength: number, capacity: number) {
    if (byteOffset % 8 !== 0) fail('EINVAL', `the state table must start on an 8-byte boundary (offset ${byteOffset})`);
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 22) fail('EINVAL', `bad state table capacity ${capacity}`);
    if (byteLength < DynTable.bytesNeeded(capacity)) fail('EINVAL', `the state table needs ${DynTable.bytesNeeded(capacity)} bytes, got ${byteLength}`);
    if (byteOffset + byteLength > buffer.byteLength) fail('EINVAL', 'state table region runs past the buffer');
    this.capacity = capacity;
    this.buckets = DynTable.bucketsFor(capacity);
    this.bucketBits = Math.log2(this.buckets);
    let at = byteOffset;
    this.hdr = new Int32Array(buffer, at, H_WORDS); at += 64;
    this.locks = new Int32Array(buffer, at, LOCK_STRIDE * BUCKET_LOCKS); at += 4 * LOCK_STRIDE * BUCKET_LOCKS;
    this.stats = new Float64Array(buffer, at, 2); at += 16;
    this.names = new Uint8Array(buffer, at, NAME_SLOTS * NAME_BYTES); at += NAME_SLOTS * NAME_BYTES;
    this.bucket = new Int32Array(buffer, at, this.buckets); at += 4 * this.buckets;
    at = align8(at);
    this.e32 = new Uint32Array(buffer, at, capacity * E_WORDS);
    this.f64 = new Float64Array(buffer, at, capacity * E_WORDS / 2);
    if (!claimWord(this.hdr, H_CAPACITY, capacity) || !claimWord(this.hdr, H_BUCKETS, this.buckets) || !claimWord(this.hdr, H_MAGIC, MAGIC_DYN)) {
      fail('EINVAL', 'the state table region holds something else (magic or capacity differ)');
    }
  }

  // Lock order: bucket locks by increasing index, then the header's (global) lock.
  private lock(): void { spinLock(this.hdr, H_LOCK); }
  private unlock(): void { spinUnlock(this.hdr, H_LOCK); }
  private lockAll(): void {
    for (let k = 0; k < BUCKET_LOCKS; k++) spinLock(this.locks, k * LOCK_STRIDE);
    spinLock(this.hdr, H_LOCK);
  }
  private unlockAll(): void {
    spinUnlock(this.hdr, H_LOCK);
    for (let k = BUCKET_LOCKS - 1; k >= 0; k--) spinUnlock(this.locks, k * LOCK_STRIDE);
  }

  /** The id of a state name (registered on first use, shared by every process); NAME_ANY for 'any'. */
  nameId(name: string): number {
    if (name === 'any') return NAME_ANY;
    if (name === 'default') return 0; // slot 0 is reserved for it, so an all-zero entry is a default-named state
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length >= NAME_BYTES) fail('EINVAL', `state name "${name}" is longer than ${NAME_BYTES - 1} bytes`);
    this.lock();
    try {
      const n = Math.max(1, this.hdr[H_NAMES]!);
      for (let i = 1; i < n; i++) if (this.nameAt(i) === name) return i;
      if (n >= NAME_SLOTS) fail('ENOSPC', `more than ${NAME_SLOTS} state names`);
      const at = n * NAME_BYTES;
      this.names[at] = bytes.length;
      this.names.set(bytes, at + 1);
      this.hdr[H_NAMES] = n + 1;
      return n;
    } finally { this.unlock(); }
  }

  nameAt(id: number): string {
    if (id === 0) return 'default';
    if (id < 0 || id >= NAME_SLOTS) return 'any';
    const at = id * NAME_BYTES;
    return Buffer.from(this.names.subarray(at + 1, at + 1 + this.names[at]!)).toString('utf8');
  }

  /**
   * Bucket of a packet's flow, the same for both directions: each endpoint (address, port) is
   * mixed on its own and the two are added (commutative). ipfw XORs addresses and ports
   * together, which puts flows whose address and port grow together in one bucket.
   */
  private hashPacket(p: PacketInfo): number {
    let a: number, b: number;
    if (p.ipVersion === 6) {
      a = p.src6[0]! ^ p.src6[1]! ^ p.src6[2]! ^ p.src6[3]!;
      b = p.dst6[0]! ^ p.dst6[1]! ^ p.dst6[2]! ^ p.dst6[3]!;
    } else { a = p.src4; b = p.dst4; }
    const h = (endpointHash(a, p.srcPort) + endpointHash(b, p.dstPort) + p.proto) | 0;
    return (Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0) >>> (32 - this.bucketBits);
  }

  /** Compares entry `e` (word base) with the packet: 1 forward, 0 reverse, -1 no. */
  private direction(b: number, p: PacketInfo): number {
    const e = this.e32;
    if (e[b + E_PROTO] !== p.proto || e[b + E_AF] !== p.ipVersion) return -1;
    const sp = p.srcPort, dp = p.dstPort;
    if (p.ipVersion === 4) {
      if (e[b + E_SRC] === p.src4 && e[b + E_DST] === p.dst4 && e[b + E_SPORT] === sp && e[b + E_DPORT] === dp) return 1;
      if (e[b + E_SRC] === p.dst4 && e[b + E_DST] === p.src4 && e[b + E_SPORT] === dp && e[b + E_DPORT] === sp) return 0;
      return -1;
    }
    const s = p.src6, d = p.dst6;
    if (e[b + E_SPORT] === sp && e[b + E_DPORT] === dp &&
        e[b + E_SRC] === s[0] && e[b + E_SRC + 1] === s[1] && e[b + E_SRC + 2] === s[2] && e[b + E_SRC + 3] === s[3] &&
        e[b + E_DST] === d[0] && e[b + E_DST + 1] === d[1] && e[b + E_DST + 2] === d[2] && e[b + E_DST + 3] === d[3]) return 1;
    if (e[b + E_SPORT] === dp && e[b + E_DPORT] === sp &&
        e[b + E_SRC] === d[0] && e[b + E_SRC + 1] === d[1] && e[b + E_SRC + 2] === d[2] && e[b + E_SRC + 3] === d[3] &&
        e[b + E_DST] === s[0] && e[b + E_DST + 1] === s[1] && e[b + E_DST + 2] === s[2] && e[b + E_DST + 3] === s[3]) return 0;
    return -1;
  }

  /** Finds a live state (not a limit parent) of `nameId` (NAME_ANY: any) for the packet; index or -1. */
  private find(p: PacketInfo, nameId: number, nowMs: number, h: number): number {
    const e = this.e32, f = this.f64;
    for (let n = this.bucket[h]!, guard = 0; n !== 0 && guard <= this.capacity; guard++) {
      const i = n - 1, b = i * E_WORDS;
      n = e[b + E_NEXT]!;
      if (e[b + E_KIND] === KIND_PARENT) continue;
      if (f[i * (E_WORDS / 2) + E_F64_EXPIRE]! <= nowMs) continue; // expired, awaiting expire()
      if (nameId !== NAME_ANY && e[b + E_NAME] !== nameId) continue;
      const dir = this.direction(b, p);
      if (dir < 0) continue;
      this.lastForward = dir === 1;
      return i;
    }
    return -1;
  }

  /** ipfw's state update on a hit: TCP flag bitmap per direction and the lifetime it implies. */
  private refresh(i: number, p: PacketInfo, forward: boolean, nowMs: number, s: Settings): void {
    const e = this.e32, b = i * E_WORDS, fx = i * (E_WORDS / 2) + E_F64_EXPIRE;
    if (p.proto === 6) {
      const flags = p.tcpFlags & (TH_FIN | TH_SYN | TH_RST);
      let st = e[b + E_TCP]! | (forward ? flags : flags << 8);
      switch (st & TCP_FLAGS) {
        case TH_SYN:
          this.f64[fx] = nowMs + s.dynSynLifetime * 1000; break;
        case BOTH_SYN: case BOTH_SYN | TH_FIN: case BOTH_SYN | (TH_FIN << 8): {
          if (p.l4 < 0) break;
          const ack = p.tcpAck;
          if (forward) {
            const prev = e[b + E_ACKF]!;
            if (prev === 0 || ((ack - prev) | 0) >= 0) { e[b + E_ACKF] = ack; st |= ACK_FWD; }
          } else {
            const prev = e[b + E_ACKR]!;
            if (prev === 0 || ((ack - prev) | 0) >= 0) { e[b + E_ACKR] = ack; st |= ACK_REV; }
          }
          if ((st & (ACK_FWD | ACK_REV)) === (ACK_FWD | ACK_REV)) {
            this.f64[fx] = nowMs + s.dynAckLifetime * 1000;
            st &= ~(ACK_FWD | ACK_REV);
          }
          break;
        }
        case BOTH_SYN | BOTH_FIN:
          this.f64[fx] = nowMs + s.dynFinLifetime * 1000; break;
        default:
          this.f64[fx] = nowMs + s.dynRstLifetime * 1000; break;
      }
      e[b + E_TCP] = st >>> 0;
    } else if (p.proto === 17) {
      this.f64[fx] = nowMs + s.dynUdpLifetime * 1000;
    } else {
      this.f64[fx] = nowMs + s.dynShortLifetime * 1000;
    }
  }

  /**
   * The data-path lookup (check-state / probe-state): a live state of `nameId` matching the
   * packet in either direction. On a hit its counters and lifetime are updated and the index is
   * returned (lastSlot/lastRule name the parent rule, lastForward the direction); -1 on a miss.
   */
  lookupPacket(p: PacketInfo, nameId: number, nowMs: number, s: Settings): number {
    if (p.ipVersion === 0) return -1;
    const h = this.hashPacket(p);
    const l = (h & (BUCKET_LOCKS - 1)) * LOCK_STRIDE;
    spinLock(this.locks, l);
    try {
      const i = this.find(p, nameId, nowMs, h);
      if (i < 0) return -1;
      const fb = i * (E_WORDS / 2);
      this.f64[fb + E_F64_PACKETS]! += 1;
      this.f64[fb + E_F64_BYTES]! += p.pktlen;
      this.refresh(i, p, this.lastForward, nowMs, s);
      // Read under the lock: once it is released, expire() may free and reuse the entry.
      this.lastSlot = this.e32[i * E_WORDS + E_SLOT]!;
      this.lastRule = this.e32[i * E_WORDS + E_RULE]!;
      return i;
    } finally { spinUnlock(this.locks, l); }
  }

  ruleSlot(i: number): number { return this.e32[i * E_WORDS + E_SLOT]!; }
  ruleNumber(i: number): number { return this.e32[i * E_WORDS + E_RULE]!; }

  /** An entry from the free list (global lock taken here); -1 when full (counted). */
  private alloc(s: Settings): number {
    this.lock();
    try {
      const i = this.allocLocked(s);
      if (i < 0) this.stats[0]!++;
      return i;
    } finally { this.unlock(); }
  }

  private allocLocked(s: Settings): number {
    const hdr = this.hdr;
    if (hdr[H_COUNT]! >= Math.min(s.dynMax, this.capacity)) return -1;
    let i: number;
    if (hdr[H_FREE] !== 0) { i = hdr[H_FREE]! - 1; hdr[H_FREE] = this.e32[i * E_WORDS + E_NEXT]!; }
    else if (hdr[H_HIGH]! < this.capacity) { i = hdr[H_HIGH]!; hdr[H_HIGH] = i + 1; }
    else return -1;
    hdr[H_COUNT]!++;
    this.e32.fill(0, i * E_WORDS, (i + 1) * E_WORDS);
    return i;
  }

  private link(i: number, h: number): void {
    this.e32[i * E_WORDS + E_NEXT] = this.bucket[h]!;
    this.bucket[h] = i + 1;
  }

  private setKey(b: number, p: PacketInfo, srcA: boolean, dstA: boolean, srcP: boolean, dstP: boolean): void {
    const e = this.e32;
    e[b + E_PROTO] = p.proto; e[b + E_AF] = p.ipVersion;
    if (p.ipVersion === 4) { e[b + E_SRC] = srcA ? p.src4 : 0; e[b + E_DST] = dstA ? p.dst4 : 0; }
    else for (let k = 0; k < 4; k++) { e[b + E_SRC + k] = srcA ? p.src6[k]! : 0; e[b + E_DST + k] = dstA ? p.dst6[k]! : 0; }
    e[b + E_SPORT] = srcP ? p.srcPort : 0; e[b + E_DPORT] = dstP ? p.dstPort : 0;
  }

  /**
   * keep-state / limit (ipfw_install_state): installs a state for the packet unless one exists.
   * `limit` > 0 makes it a limit child counted under a parent keyed on the masked flow
   * (maskBits: 1 src-addr, 2 src-port, 4 dst-addr, 8 dst-port). Returns false when the packet
   * must be denied: table full (counted in `full`) or the parent's limit reached (`limitDrops`).
   */
  install(p: PacketInfo, ruleSlot: number, ruleNumber: number, nameId: number, limit: number, maskBits: number, nowMs: number, s: Settings): boolean {
    if (p.ipVersion === 0) return true; // no flow id to key on: nothing installed (ipfw would key on zeros)
    const h = this.hashPacket(p);
    const h2 = limit > 0 ? this.parentBucket(p, ruleSlot, maskBits) : h;
    const la = (h & (BUCKET_LOCKS - 1)) * LOCK_STRIDE, lb = (h2 & (BUCKET_LOCKS - 1)) * LOCK_STRIDE;
    const lo = la < lb ? la : lb, hi = la < lb ? lb : la;
    spinLock(this.locks, lo);
    if (hi !== lo) spinLock(this.locks, hi);
    try {
      if (this.find(p, nameId, nowMs, h) >= 0) return true;
      let parent = -1;
      if (limit > 0) {
        parent = this.findParent(p, ruleSlot, maskBits, h2);
        if (parent < 0) {
          parent = this.alloc(s);
          if (parent < 0) return false;
          const pb = parent * E_WORDS;
          this.e32[pb + E_KIND] = KIND_PARENT; this.e32[pb + E_SLOT] = ruleSlot; this.e32[pb + E_RULE] = ruleNumber;
          this.e32[pb + E_NAME] = nameId < 0 ? 0 : nameId; this.e32[pb + E_TCP] = maskBits;
          this.setKey(pb, p, (maskBits & 1) !== 0, (maskBits & 4) !== 0, (maskBits & 2) !== 0, (maskBits & 8) !== 0);
          this.link(parent, h2);
        }
        const pb = parent * E_WORDS;
        this.f64[parent * (E_WORDS / 2) + E_F64_EXPIRE] = nowMs + s.dynShortLifetime * 1000;
        if (this.e32[pb + E_COUNT]! >= limit) {
          this.lock(); this.stats[1]!++; this.unlock();
          return false;
        }
      }
      const i = this.alloc(s);
      if (i < 0) return false;
      const b = i * E_WORDS;
      this.e32[b + E_KIND] = limit > 0 ? KIND_LIMIT : KIND_STATE;
      this.e32[b + E_SLOT] = ruleSlot; this.e32[b + E_RULE] = ruleNumber;
      this.e32[b + E_NAME] = nameId < 0 ? 0 : nameId;
      this.setKey(b, p, true, true, true, true);
      if (parent >= 0) { this.e32[b + E_PARENT] = parent + 1; this.e32[parent * E_WORDS + E_COUNT]!++; }
      this.link(i, h);
      this.refresh(i, p, true, nowMs, s); // ipfw: "just set lifetime" with the installing packet
      return true;
    } finally {
      if (hi !== lo) spinUnlock(this.locks, hi);
      spinUnlock(this.locks, lo);
    }
  }

  /** The bucket of a limit parent: its masked key (zeros where masked out) and rule slot. */
  private parentBucket(p: PacketInfo, ruleSlot: number, maskBits: number): number {
    const sa = (maskBits & 1) !== 0, da = (maskBits & 4) !== 0, sp = (maskBits & 2) !== 0, dp = (maskBits & 8) !== 0;
    const v6 = p.ipVersion === 6;
    const s0 = sa ? (v6 ? p.src6[0]! : p.src4) : 0, d0 = da ? (v6 ? p.dst6[0]! : p.dst4) : 0;
    const s3 = v6 && sa ? p.src6[3]! : 0, d3 = v6 && da ? p.dst6[3]! : 0;
    let h = s0 ^ d0 ^ s3 ^ d3 ^ (sp ? p.srcPort : 0) ^ ((dp ? p.dstPort : 0) << 3) ^ (ruleSlot << 17) ^ 0x5bd1e995;
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    return ((h ^ (h >>> 13)) >>> 0) & (this.buckets - 1);
  }

  private findParent(p: PacketInfo, ruleSlot: number, maskBits: number, h: number): number {
    const e = this.e32;
    const sa = (maskBits & 1) !== 0, da = (maskBits & 4) !== 0, sp = (maskBits & 2) !== 0, dp = (maskBits & 8) !== 0;
    const v6 = p.ipVersion === 6;
    const s0 = sa ? (v6 ? p.src6[0]! : p.src4) : 0, d0 = da ? (v6 ? p.dst6[0]! : p.dst4) : 0;
    const spv = sp ? p.srcPort : 0, dpv = dp ? p.dstPort : 0;
    for (let n = this.bucket[h]!, guard = 0; n !== 0 && guard <= this.capacity; guard++) {
      const i = n - 1, b = i * E_WORDS;
      n = e[b + E_NEXT]!;
      if (e[b + E_KIND] !== KIND_PARENT || e[b + E_SLOT] !== ruleSlot || e[b + E_TCP] !== maskBits) continue;
      if (e[b + E_PROTO] !== p.proto || e[b + E_AF] !== p.ipVersion) continue;
      if (e[b + E_SPORT] !== spv || e[b + E_DPORT] !== dpv) continue;
      let same = true;
      if (v6) {
        for (let k = 0; k < 4 && same; k++) {
          if (e[b + E_SRC + k] !== (sa ? p.src6[k] : 0) || e[b + E_DST + k] !== (da ? p.dst6[k] : 0)) same = false;
        }
      } else same = e[b + E_SRC] === s0 && e[b + E_DST] === d0;
      if (same) return i;
    }
    return -1;
  }

  /** Unlinks and frees every entry for which `drop(index)` says so; returns how many. Lock held. */
  private sweep(drop: (i: number) => boolean): number {
    const e = this.e32;
    let removed = 0;
    // Children first, so parents' counts are right when parents are examined.
    for (let pass = 0; pass < 2; pass++) {
      for (let h = 0; h < this.buckets; h++) {
        let prev = -1;
        for (let n = this.bucket[h]!, guard = 0; n !== 0 && guard <= this.capacity; guard++) {
          const i = n - 1, b = i * E_WORDS;
          n = e[b + E_NEXT]!;
          const isParent = e[b + E_KIND] === KIND_PARENT;
          if (isParent === (pass === 0) || !drop(i)) { prev = i; continue; }
          if (prev < 0) this.bucket[h] = n; else e[prev * E_WORDS + E_NEXT] = n;
          if (e[b + E_PARENT] !== 0) { const pb = (e[b + E_PARENT]! - 1) * E_WORDS; if (e[pb + E_COUNT]! > 0) e[pb + E_COUNT]!--; }
          e[b + E_KIND] = 0;
          e[b + E_NEXT] = this.hdr[H_FREE]!;
          this.hdr[H_FREE] = i + 1;
          this.hdr[H_COUNT]!--;
          removed++;
        }
      }
    }
    return removed;
  }

  /** Removes expired states (limit parents once childless and expired); returns how many. */
  expire(nowMs: number): number {
    this.lockAll();
    try {
      const e = this.e32, f = this.f64;
      return this.sweep((i) => f[i * (E_WORDS / 2) + E_F64_EXPIRE]! <= nowMs && (e[i * E_WORDS + E_KIND] !== KIND_PARENT || e[i * E_WORDS + E_COUNT] === 0));
    } finally { this.unlockAll(); }
  }

  /** Removes the states of rule slot `slot` (the rule was deleted). */
  removeRule(slot: number): number {
    this.lockAll();
    try {
      const e = this.e32;
      return this.sweep((i) => e[i * E_WORDS + E_SLOT] === slot);
    } finally { this.unlockAll(); }
  }

  /** Removes every state. */
  flush(): void {
    this.lockAll();
    try {
      this.bucket.fill(0);
      this.hdr[H_COUNT] = 0; this.hdr[H_HIGH] = 0; this.hdr[H_FREE] = 0;
    } finally { this.unlockAll(); }
  }

  statistics(): DynStats {
    return { count: Atomics.load(this.hdr, H_COUNT), capacity: this.capacity, full: this.stats[0]!, limitDrops: this.stats[1]! };
  }

  /** Every entry (expired ones too, until expire() removes them), for `ipfw -d` / `-e`. */
  list(nowMs: number): DynStateView[] {
    const out: DynStateView[] = [];
    this.lockAll();
    try {
      const e = this.e32, f = this.f64;
      for (let h = 0; h < this.buckets; h++) {
        for (let n = this.bucket[h]!, guard = 0; n !== 0 && guard <= this.capacity; guard++) {
          const i = n - 1, b = i * E_WORDS, fb = i * (E_WORDS / 2);
          n = e[b + E_NEXT]!;
          const v6 = e[b + E_AF] === 6;
          const kind = e[b + E_KIND];
          const remainingMs = f[fb + E_F64_EXPIRE]! - nowMs;
          out.push({
            ruleNumber: e[b + E_RULE]!, ruleSlot: e[b + E_SLOT]!, packets: f[fb + E_F64_PACKETS]!, bytes: f[fb + E_F64_BYTES]!,
            remaining: Math.ceil(remainingMs / 1000),
            kind: kind === KIND_PARENT ? 'PARENT' : kind === KIND_LIMIT ? 'LIMIT' : 'STATE',
            count: kind === KIND_PARENT ? e[b + E_COUNT]! : 0,
            proto: e[b + E_PROTO]!,
            src: v6 ? formatIp6(e.subarray(b + E_SRC, b + E_SRC + 4)) : fmt4(e[b + E_SRC]!), srcPort: e[b + E_SPORT]!,
            dst: v6 ? formatIp6(e.subarray(b + E_DST, b + E_DST + 4)) : fmt4(e[b + E_DST]!), dstPort: e[b + E_DPORT]!,
            name: this.nameAtUnlocked(e[b + E_NAME]!),
            expired: remainingMs <= 0,
          });
        }
      }
    } finally { this.unlockAll(); }
    out.sort((a, b) => a.ruleNumber - b.ruleNumber || a.kind.localeCompare(b.kind));
    return out;
  }

  private nameAtUnlocked(id: number): string {
    if (id >= this.hdr[H_NAMES]!) return 'default'; // an id from a region flushed since (cannot happen today)
    return this.nameAt(id);
  }
}
