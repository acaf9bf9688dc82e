/**
 * Dummynet with worker threads (`kipfw -p N`, N > 1): how the workers feed the one dummynet.
 *
 * Worker 0 owns the dummynet (its scheduler, its packets, its counters) and releases packets out
 * of its own TX ring of the peer port. Every other worker k hands it the frames a rule sends to a
 * pipe or queue through a bounded single-producer/single-consumer ring (k → 0): the frame's
 * buffer index, length, receiving port, pipe/queue number, rule and the time it was received.
 * The buffer itself is swapped, never copied: worker k puts a buffer of its own stock into its RX
 * slot, and worker 0, taking the frame, gives k one free buffer of the same port back through a
 * second ring (0 → k). So each worker's stock plus what is in flight between the two is constant,
 * the return ring can never overflow, and a full hand-off ring (or an empty stock) drops and counts.
 *
 * The owner sleeps on its ports and on a doorbell word here; a producer rings the bell (one
 * futex wake) only when the owner announced it sleeps. The main thread reaches the owner's
 * dummynet for `pipe|queue|sched` commands through a mailbox here (a request, the owner's
 * reply), since the dummynet's state lives in the owner's thread.
 *
 * All of it is one file `fwdn-NAME` in the shared-memory directory, mapped by every thread of the
 * daemon (futexes are shared, so a wake on one mapping reaches a sleeper on another).
 *
 *   header (4 KiB)  magic, workers, ring sizes; doorbell, owner-sleeping flag; mailbox state, length
 *   per worker k    hand-off ring: head, tail (own cache lines), HC entries of 8 words
 *                   return ring:   head, tail, RC entries of 2 words (buffer, port)
 *   mailbox text    MAILBOX_MAX bytes of JSON request, then MAILBOX_MAX of JSON reply (apart, so
 *                   that the late reply to a withdrawn request can never overwrite the next one)
 */
import fs from 'node:fs';
import * as native from '../native/index.js';
import { fail } from '../errors.js';
import { space, type AddressSpace } from '../memory/space.js';
import { pow2AtLeast } from '../interfaces/packet-socket.js';
import { storeFile, createMapped, openMapped } from './store.js';

const MAGIC = 0x4e4d4448; // 'NMDH'
const H_MAGIC = 0, H_WORKERS = 1, H_HC = 2, H_RC = 3;
const H_BELL = 16, H_SLEEPING = 17;
const H_MBOX_STATE = 32, H_MBOX_LEN = 33, H_MBOX_REPLY_LEN = 34;
const HEADER = 4096;
/** Words of a hand-off entry: buffer, length, port, kind (0 pipe, 1 queue), number, rule, time (hi, lo). */
const E_WORDS = 8;
const RING_HDR = 32; // words: head at 0, tail at 16 (separate cache lines)
const TAIL = 16;
export const MAILBOX_MAX = 8 << 20;

/** IDLE -> REQUEST (asked) -> TAKEN (the owner works on it) -> REPLY -> IDLE; a withdrawn request goes back to IDLE. */
const MBOX_IDLE = 0, MBOX_REQUEST = 1, MBOX_REPLY = 2, MBOX_TAKEN = 3;

/** Frames a worker may have in its hand-off ring at once. */
export const HANDOFF_RING = 512;
/** Buffers each worker (but the owner) keeps per port to swap into its RX slots. */
export const HANDOFF_STOCK = 512;

export function handoffFile(name: string, sp: AddressSpace = space()): string {
  return storeFile(name, sp, 'fwdn-');
}

export class DnHandoff {
  readonly workers: number;
  /** Hand-off ring entries (a power of two). */
  readonly hc: number;
  /** Return ring entries (a power of two). */
  readonly rc: number;
  private readonly sp: AddressSpace;
  private readonly base: number;
  private readonly size: number;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  /** Word index of worker k's hand-off ring header; its return ring follows. */
  private readonly ringWord: number[] = [];
  private readonly bellWord: number;
  private readonly bellAddress: number;
  private readonly mboxWord: number;
  private readonly mboxText: number;
  // this thread's private ends of the rings it uses (one producer and one consumer per ring)
  private readonly hTail: Int32Array;
  private readonly hHead: Int32Array;
  private readonly rTail: Int32Array;
  private readonly rHead: Int32Array;
  private closed = false;

  private constructor(sp: AddressSpace, base: number, size: number) {
    this.sp = sp;
    this.base = base;
    this.size = size;
    this.u32 = sp.u32;
    this.i32 = sp.i32;
    const w = base >>> 2;
    this.workers = this.u32[w + H_WORKERS]!;
    this.hc = this.u32[w + H_HC]!;
    this.rc = this.u32[w + H_RC]!;
    const perWorker = RING_HDR + this.hc * E_WORDS + RING_HDR + this.rc * 2;
    for (let k = 0; k < this.workers; k++) this.ringWord.push(w + HEADER / 4 + k * perWorker);
    this.bellWord = w + H_BELL;
    this.bellAddress = sp.absolute(this.bellWord * 4);
    this.mboxWord = w + H_MBOX_STATE;
    this.mboxText = base + HEADER + this.workers * perWorker * 4;
    const k = this.workers;
    this.hTail = new Int32Array(k); this.hHead = new Int32Array(k);
    this.rTail = new Int32Array(k); this.rHead = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      this.hTail[i] = Atomics.load(this.i32, this.ringWord[i]! + TAIL);
      this.hHead[i] = Atomics.load(this.i32, this.ringWord[i]!);
      const r = this.retWord(i);
      this.rTail[i] = Atomics.load(this.i32, r + TAIL);
      this.rHead[i] = Atomics.load(this.i32, r);
    }
  }

  private static bytes(workers: number, hc: number, rc: number): number {
    return HEADER + workers * 4 * (RING_HDR + hc * E_WORDS + RING_HDR + rc * 2) + 2 * MAILBOX_MAX;
  }

  /** Creates the file for `workers` threads serving `ports` ports (the return rings hold every port's stock). */
  static create(name: string, workers: number, ports: number): DnHandoff {
    const sp = space();
    const file = handoffFile(name, sp);
    const hc = pow2AtLeast(HANDOFF_RING), rc = pow2AtLeast(HANDOFF_STOCK * ports);
    const total = DnHandoff.bytes(workers, hc, rc);
    const { base, publish } = createMapped(sp, file, total);
    const w = base >>> 2;
    sp.u32[w + H_WORKERS] = workers;
    sp.u32[w + H_HC] = hc;
    sp.u32[w + H_RC] = rc;
    Atomics.store(sp.i32, w + H_MAGIC, MAGIC);
    publish();
    return new DnHandoff(sp, base, total);
  }

  /** Maps the daemon's file in this thread (ENXIO when there is none). */
  static open(name: string): DnHandoff {
    const sp = space();
    const file = handoffFile(name, sp);
    const { base, total } = openMapped(sp, file, HEADER, `no dummynet hand-off file for firewall '${name}'`);
    const w = base >>> 2;
    if (sp.u32[w + H_MAGIC] !== MAGIC || DnHandoff.bytes(sp.u32[w + H_WORKERS]!, sp.u32[w + H_HC]!, sp.u32[w + H_RC]!) !== total) {
      sp.unmapLocal(base, total);
      fail('EINVAL', `${file}: not a dummynet hand-off file of this layout`);
    }
    return new DnHandoff(sp, base, total);
  }

  private retWord(k: number): number {
    return this.ringWord[k]! + RING_HDR + this.hc * E_WORDS;
  }

  // ---- worker k (producer of its hand-off ring, consumer of its return ring) ----

  /** Entries worker k may still post before publish(). */
  room(k: number): number {
    return this.hc - (this.hTail[k]! - Atomics.load(this.i32, this.ringWord[k]!));
  }

  /** Writes an entry (seen by the owner after publish(k)). The caller checked room(k). */
  post(k: number, buf: number, len: number, port: number, queue: boolean, n: number, rule: number, stampNs: number): void {
    const t = this.hTail[k]!;
    const e = this.ringWord[k]! + RING_HDR + (t & (this.hc - 1)) * E_WORDS;
    const u = this.u32;
    u[e] = buf; u[e + 1] = len; u[e + 2] = port; u[e + 3] = queue ? 1 : 0; u[e + 4] = n;
    this.i32[e + 5] = rule;
    const hi = Math.floor(stampNs / 4294967296);
    u[e + 6] = hi; u[e + 7] = stampNs - hi * 4294967296;
    this.hTail[k] = t + 1;
  }

  /** Makes worker k's posted entries visible and wakes the owner if it sleeps. */
  publish(k: number): void {
    Atomics.store(this.i32, this.ringWord[k]! + TAIL, this.hTail[k]!);
    this.ring();
  }

  /** Takes the buffers the owner gave back to worker k: calls back(buffer, port) for each. Returns how many. */
  takeReturned(k: number, back: (buf: number, port: number) => void): number {
    const r = this.retWord(k);
    const tail = Atomics.load(this.i32, r + TAIL);
    let h = this.rHead[k]!;
    const n = tail - h;
    for (; h !== tail; h++) {
      const e = r + RING_HDR + (h & (this.rc - 1)) * 2;
      back(this.u32[e]!, this.u32[e + 1]!);
    }
    if (n !== 0) { this.rHead[k] = h; Atomics.store(this.i32, r, h); }
    return n;
  }

  // ---- the owner (consumer of every hand-off ring, producer of every return ring) ----

  /** Entries waiting in worker k's hand-off ring. */
  pending(k: number): number {
    return Atomics.load(this.i32, this.ringWord[k]! + TAIL) - this.hHead[k]!;
  }

  /** True when any worker's ring has entries, or a command waits. */
  anyPending(): boolean {
    for (let k = 1; k < this.workers; k++) if (this.pending(k) !== 0) return true;
    return this.hasRequest();
  }

  /** Word index of the i-th waiting entry of worker k (fields: +0 buffer ... see post()). */
  entry(k: number, i: number): number {
    return this.ringWord[k]! + RING_HDR + ((this.hHead[k]! + i) & (this.hc - 1)) * E_WORDS;
  }

  buf(e: number): number { return this.u32[e]!; }
  len(e: number): number { return this.u32[e + 1]!; }
  port(e: number): number { return this.u32[e + 2]!; }
  isQueue(e: number): boolean { return this.u32[e + 3] === 1; }
  number(e: number): number { return this.u32[e + 4]!; }
  rule(e: number): number { return this.i32[e + 5]!; }
  stampNs(e: number): number { return this.u32[e + 6]! * 4294967296 + this.u32[e + 7]!; }

  /** Frees the first `n` entries of worker k's ring (the owner read them). */
  consumed(k: number, n: number): void {
    this.hHead[k] = this.hHead[k]! + n;
    Atomics.store(this.i32, this.ringWord[k]!, this.hHead[k]!);
  }

  /** Gives worker k a free buffer of port `port` (visible after publishReturns(k)). Never overflows (see the file comment). */
  giveBack(k: number, buf: number, port: number): void {
    const r = this.retWord(k);
    const t = this.rTail[k]!;
    const e = r + RING_HDR + (t & (this.rc - 1)) * 2;
    this.u32[e] = buf; this.u32[e + 1] = port;
    this.rTail[k] = t + 1;
  }

  /**
   * The owner, once worker k has stopped: the buffers given back that k never took (calls
   * back(buffer, port) for each), so that they can be freed with the owner's ports.
   */
  untaken(k: number, back: (buf: number, port: number) => void): void {
    const r = this.retWord(k);
    for (let h = Atomics.load(this.i32, r); h !== this.rTail[k]; h++) {
      const e = r + RING_HDR + (h & (this.rc - 1)) * 2;
      back(this.u32[e]!, this.u32[e + 1]!);
    }
    Atomics.store(this.i32, r, this.rTail[k]!);
  }

  publishReturns(k: number): void {
    Atomics.store(this.i32, this.retWord(k) + TAIL, this.rTail[k]!);
  }

  /**
   * The owner is about to sleep: returns the doorbell word (absolute address) and its value to
   * sleep on, after announcing the sleep. Re-check anyPending() before sleeping, and call
   * awake() after.
   */
  sleeping(): { address: number; value: number } {
    Atomics.store(this.i32, this.base / 4 + H_SLEEPING, 1);
    // one object, refilled: the owner's loop sleeps here between packets and allocates nothing
    const w = this.sleepWord;
    w.address = this.bellAddress;
    w.value = Atomics.load(this.i32, this.bellWord);
    return w;
  }
  private readonly sleepWord = { address: 0, value: 0 };

  awake(): void {
    Atomics.store(this.i32, this.base / 4 + H_SLEEPING, 0);
  }

  /** Wakes the owner if it announced a sleep. */
  ring(): void {
    if (Atomics.load(this.i32, this.base / 4 + H_SLEEPING) === 0) return;
    Atomics.add(this.i32, this.bellWord, 1);
    native.futexWake(this.bellAddress);
  }

  // ---- the mailbox: the main thread asks, the owner answers ----

  /** The owner: whether a request waits (one load). */
  hasRequest(): boolean {
    return Atomics.load(this.i32, this.mboxWord) === MBOX_REQUEST;
  }

  /** The owner: takes the pending request (parsed JSON), or null when none waits (or it was withdrawn). */
  request(): unknown {
    if (Atomics.compareExchange(this.i32, this.mboxWord, MBOX_REQUEST, MBOX_TAKEN) !== MBOX_REQUEST) return null;
    const len = this.u32[this.mboxWord + 1]!;
    return JSON.parse(Buffer.from(this.sp.buffer, this.mboxText, len).toString('utf8'));
  }

  /** The owner: answers the request it took (dropped if the asker withdrew it meanwhile). */
  reply(value: unknown): void {
    let text = JSON.stringify(value);
    if (Buffer.byteLength(text) > MAILBOX_MAX) text = JSON.stringify({ error: `the reply exceeds ${MAILBOX_MAX} bytes` });
    const n = Buffer.from(this.sp.buffer, this.mboxText + MAILBOX_MAX, MAILBOX_MAX).write(text, 'utf8');
    this.u32[this.mboxWord + (H_MBOX_REPLY_LEN - H_MBOX_STATE)] = n;
    if (Atomics.compareExchange(this.i32, this.mboxWord, MBOX_TAKEN, MBOX_REPLY) !== MBOX_TAKEN) return;
    native.futexWake(this.sp.absolute(this.mboxWord * 4));
  }

  /**
   * The main thread: sends `value` to the owner and blocks until it answers (ETIMEDOUT after
   * `timeoutMs`: the owner is stuck or gone; the request is withdrawn).
   */
  ask(value: unknown, timeoutMs = 10_000): unknown {
    const text = JSON.stringify(value);
    if (Buffer.byteLength(text) > MAILBOX_MAX) fail('E2BIG', `a dummynet request exceeds ${MAILBOX_MAX} bytes`);
    const n = Buffer.from(this.sp.buffer, this.mboxText, MAILBOX_MAX).write(text, 'utf8');
    this.u32[this.mboxWord + 1] = n;
    Atomics.store(this.i32, this.mboxWord, MBOX_REQUEST);
    Atomics.add(this.i32, this.bellWord, 1);
    native.futexWake(this.bellAddress);
    const deadline = Date.now() + timeoutMs;
    const address = this.sp.absolute(this.mboxWord * 4);
    for (;;) {
      const s = Atomics.load(this.i32, this.mboxWord);
      if (s === MBOX_REPLY) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        // withdraw (waiting or taken), unless the answer came meanwhile
        if (Atomics.compareExchange(this.i32, this.mboxWord, MBOX_REQUEST, MBOX_IDLE) === MBOX_REQUEST ||
            Atomics.compareExchange(this.i32, this.mboxWord, MBOX_TAKEN, MBOX_IDLE) === MBOX_TAKEN) {
          fail('ETIMEDOUT', `dummynet's thread (worker 0) did not answer within ${timeoutMs} ms`);
        }
        continue;
      }
      native.futexWait(address, s, Math.min(left, 100));
    }
    const len = this.u32[this.mboxWord + (H_MBOX_REPLY_LEN - H_MBOX_STATE)]!;
    const reply = JSON.parse(Buffer.from(this.sp.buffer, this.mboxText + MAILBOX_MAX, len).toString('utf8')) as unknown;
    Atomics.store(this.i32, this.mboxWord, MBOX_IDLE);
    return reply;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sp.unmapLocal(this.base, this.size);
  }

}

/** Removes firewall `name`'s hand-off file. */
export function removeHandoff(name: string): void {
  try { fs.unlinkSync(handoffFile(name)); } catch { /* already gone */ }
}
