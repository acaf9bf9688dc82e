/**
 * One split virtqueue as the device sees it (virtio 1.x, 2.7): the descriptor table
 * {addr u64, len u32, flags u16, next u16}, the avail ring {flags, idx, ring[num] u16} the guest
 * fills, the used ring {flags, idx, ring[num] {id u32, len u32}} the device fills. All three live
 * in guest memory, mapped in this thread's address space (memory.ts), and are read and written
 * through the space's typed arrays.
 *
 * The guest is not trusted: a ring's addresses must lie in the memory table and be aligned, a
 * head or `next` index must be below num, a chain at most num long, every buffer inside the
 * table, the avail index no further than num ahead. A violation sets `error` (the reason) and the
 * device stops the port. Nothing here allocates per frame.
 */
import { space, type AddressSpace } from '../memory/space.js';
import type { GuestMemory } from './memory.js';

export const VRING_DESC_F_NEXT = 1, VRING_DESC_F_WRITE = 2, VRING_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** Largest queue the protocol allows (split rings: 32768). */
export const MAX_QUEUE = 32768;

export class Vring {
  readonly index: number;
  private readonly sp: AddressSpace = space();
  num = 0;
  /** QEMU's addresses of the three parts (SET_VRING_ADDR). */
  descUser = 0; availUser = 0; usedUser = 0;
  /** Space offsets of the three parts, once started. */
  desc = 0; avail = 0; used = 0;
  /** Next avail entry to take (SET_VRING_BASE / GET_VRING_BASE), and next used entry to write. */
  lastAvail = 0;
  lastUsed = 0;
  kickFd = -1;
  callFd = -1;
  errFd = -1;
  enabled = false;
  started = false;
  /** Why the ring was stopped ('' while it is sound). */
  error = '';
  /** Used entries written since the last publish(). */
  private pendingUsed = 0;

  /** A chain as read by chain(): space offsets and lengths of its buffers, in order. */
  readonly segAt = new Float64Array(MAX_QUEUE);
  readonly segLen = new Uint32Array(MAX_QUEUE);
  segCount = 0;
  /** Bytes in the chain. */
  chainBytes = 0;

  constructor(index: number) {
    this.index = index;
  }

  /**
   * Translates and checks the ring's addresses (at start, once the memory table and the
   * addresses are known). Returns false with `error` set when they do not fit.
   */
  map(mem: GuestMemory): boolean {
    const n = this.num;
    if (n === 0 || n > MAX_QUEUE || (n & (n - 1)) !== 0) return this.fail(`queue size ${n} is not a power of two up to ${MAX_QUEUE}`);
    this.desc = mem.translateUser(this.descUser, 16 * n);
    this.avail = mem.translateUser(this.availUser, 6 + 2 * n);
    this.used = mem.translateUser(this.usedUser, 6 + 8 * n);
    if (this.desc < 0 || this.avail < 0 || this.used < 0) return this.fail('a ring address is outside the memory table');
    if ((this.desc & 15) !== 0 || (this.avail & 1) !== 0 || (this.used & 3) !== 0) return this.fail('a ring address is misaligned');
    return true;
  }

  fail(reason: string): false {
    if (this.error === '') this.error = `queue ${this.index}: ${reason}`;
    return false;
  }

  /** Whether the ring may be served (started, enabled, mapped, sound). */
  get live(): boolean {
    return this.started && this.enabled && this.error === '';
  }

  /** Avail entries the guest published and the device has not taken; -1 (error set) when more than num. */
  availCount(): number {
    const idx = this.sp.u16[(this.avail + 2) >>> 1]!;
    const d = (idx - this.lastAvail) & 0xffff;
    if (d > this.num) { this.fail(`the avail index ${idx} is ${d} entries ahead of ${this.lastAvail}`); return -1; }
    return d;
  }

  /** The head of avail entry `ahead` past lastAvail (checked against num: -1 and error set when not below). */
  head(ahead: number): number {
    const h = this.sp.u16[((this.avail + 4) >>> 1) + ((this.lastAvail + ahead) & (this.num - 1))]!;
    if (h >= this.num) { this.fail(`avail entry ${this.lastAvail + ahead} names descriptor ${h} of ${this.num}`); return -1; }
    return h;
  }

  /**
   * Reads the chain starting at descriptor `head` into segAt/segLen/segCount/chainBytes. Every
   * descriptor must be writable (`write`, the guest's RX queue) or readable (its TX queue), and
   * its buffer inside the memory table. False with `error` set otherwise.
   */
  chain(mem: GuestMemory, head: number, write: boolean): boolean {
    const sp = this.sp, u32 = sp.u32, u16 = sp.u16;
    let i = head, n = 0, bytes = 0;
    for (;;) {
      if (n === this.num) return this.fail(`the chain at descriptor ${head} is longer than the queue (a loop)`);
      const d = this.desc + 16 * i;
      const addr = u32[d >>> 2]! + u32[(d >>> 2) + 1]! * 0x100000000;
      const len = u32[(d >>> 2) + 2]!;
      const flags = u16[(d + 12) >>> 1]!;
      if ((flags & VRING_DESC_F_INDIRECT) !== 0) return this.fail(`descriptor ${i} is indirect (not negotiated)`);
      if (((flags & VRING_DESC_F_WRITE) !== 0) !== write) return this.fail(`descriptor ${i} is ${write ? 'read-only in the receive' : 'writable in the transmit'} queue`);
      const at = mem.translate(addr, len);
      if (at < 0) return this.fail(`descriptor ${i} (0x${addr.toString(16)}, ${len} bytes) is outside the memory table`);
      this.segAt[n] = at;
      this.segLen[n] = len;
      n++;
      bytes += len;
      if ((flags & VRING_DESC_F_NEXT) === 0) break;
      i = u16[(d + 14) >>> 1]!;
      if (i >= this.num) return this.fail(`descriptor ${(d - this.desc) / 16} chains to ${i} of ${this.num}`);
    }
    this.segCount = n;
    this.chainBytes = bytes;
    return true;
  }

  /** Writes used entry {id, len} (not yet visible to the guest: publish()). */
  pushUsed(id: number, len: number): void {
    const u32 = this.sp.u32;
    const e = ((this.used + 4) >>> 2) + 2 * ((this.lastUsed + this.pendingUsed) & (this.num - 1));
    u32[e] = id;
    u32[e + 1] = len;
    this.pendingUsed++;
  }

  /**
   * Makes the pushed used entries visible (the used index after the entries: on x86-64 stores
   * are not reordered with earlier stores), and interrupts the guest unless it asked not to be.
   * Returns whether it called.
   */
  publish(bell: Buffer, bellAddress: number, write: (fd: number, address: number, len: number) => number): boolean {
    if (this.pendingUsed === 0) return false;
    this.lastUsed = (this.lastUsed + this.pendingUsed) & 0xffff;
    this.pendingUsed = 0;
    const sp = this.sp;
    sp.u16[(this.used + 2) >>> 1] = this.lastUsed;
    if ((sp.u16[this.avail >>> 1]! & VRING_AVAIL_F_NO_INTERRUPT) !== 0 || this.callFd < 0) return false;
    bell.writeUInt32LE(1, 0);
    write(this.callFd, bellAddress, 8);
    return true;
  }

  /** At start: the used index the guest sees is where the device goes on writing. */
  syncUsed(): void {
    this.lastUsed = this.sp.u16[(this.used + 2) >>> 1]!;
    this.pendingUsed = 0;
  }

  /** Closes the ring's descriptors and forgets its state (disconnect). */
  reset(close: (fd: number) => void): void {
    for (const fd of [this.kickFd, this.callFd, this.errFd]) if (fd >= 0) close(fd);
    this.kickFd = this.callFd = this.errFd = -1;
    this.num = 0;
    this.descUser = this.availUser = this.usedUser = 0;
    this.desc = this.avail = this.used = 0;
    this.lastAvail = this.lastUsed = this.pendingUsed = 0;
    this.enabled = this.started = false;
    this.error = '';
  }
}
