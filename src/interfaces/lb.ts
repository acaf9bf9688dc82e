/**
 * Load balancer (netmap's lb): reads one port and spreads its packets over groups of pipes by a
 * symmetric hash of the IP addresses, protocol and ports (both directions of a flow hash alike,
 * so a flow always lands on the same pipe). Every group receives every packet: one pipe per group
 * is chosen by hash. Pipes are `netmap:NAME{K` opened exclusively, TX only, in the input port's
 * memory (zero copy: the last group gets the input buffer by swapping, earlier groups a copy).
 * With extra buffers (-B) a full pipe keeps packets in an overflow queue instead of dropping them;
 * when no extra buffer is free, the longest queue gives up its oldest packet.
 */
import { fail } from '../errors.js';
import * as L from '../memory/layout.js';
import { openPort, POLLIN, type Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import { waitPorts } from './bridge.js';

export interface LbGroup { name: string; pipes: number }

export interface LbOptions {
  input: string;
  groups: LbGroup[];
  /** Extra buffers for the overflow queues (0: drop when a pipe is full). */
  extraBuffers?: number;
  /** Slots handled per pass (default 2048). */
  batch?: number;
}

export interface PipeStats {
  name: string;
  forwarded: number;
  dropped: number;
  forwardedBytes: number;
  droppedBytes: number;
  queued: number;
}

/** Symmetric flow hash of the Ethernet frame at u8[at, at+len); -1 when it is not IP. */
export function flowHash(u8: Uint8Array, at: number, len: number): number {
  let p = at + 12;
  if (p + 2 > at + len) return -1;
  let type = (u8[p]! << 8) | u8[p + 1]!;
  if (type === 0x8100 || type === 0x88a8) {
    p += 4;
    if (p + 2 > at + len) return -1;
    type = (u8[p]! << 8) | u8[p + 1]!;
  }
  p += 2;
  let a = 0, b = 0, proto = 0, l4 = 0;
  if (type === 0x0800) {
    if (p + 20 > at + len) return -1;
    proto = u8[p + 9]!;
    a = ((u8[p + 12]! << 24) | (u8[p + 13]! << 16) | (u8[p + 14]! << 8) | u8[p + 15]!) >>> 0;
    b = ((u8[p + 16]! << 24) | (u8[p + 17]! << 16) | (u8[p + 18]! << 8) | u8[p + 19]!) >>> 0;
    const frag = ((u8[p + 6]! & 0x1f) << 8) | u8[p + 7]!;
    l4 = frag === 0 ? p + (u8[p]! & 0x0f) * 4 : 0;
  } else if (type === 0x86dd) {
    if (p + 40 > at + len) return -1;
    proto = u8[p + 6]!;
    for (let i = 0; i < 16; i += 4) {
      a = (a ^ (((u8[p + 8 + i]! << 24) | (u8[p + 9 + i]! << 16) | (u8[p + 10 + i]! << 8) | u8[p + 11 + i]!) >>> 0)) >>> 0;
      b = (b ^ (((u8[p + 24 + i]! << 24) | (u8[p + 25 + i]! << 16) | (u8[p + 26 + i]! << 8) | u8[p + 27 + i]!) >>> 0)) >>> 0;
    }
    l4 = p + 40;
  } else {
    return -1;
  }
  let sp = 0, dp = 0;
  if (l4 !== 0 && (proto === 6 || proto === 17 || proto === 132) && l4 + 4 <= at + len) {
    sp = (u8[l4]! << 8) | u8[l4 + 1]!;
    dp = (u8[l4 + 2]! << 8) | u8[l4 + 3]!;
  }
  // symmetric: order-independent combination of each endpoint pair
  let h = Math.imul(Math.min(a, b), 0x9e3779b1) ^ Math.max(a, b);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h ^= (Math.min(sp, dp) << 16) | Math.max(sp, dp);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ proto;
  return (h ^ (h >>> 16)) >>> 0;
}

interface OutPipe {
  port: Port;
  ring: Ring;
  name: string;
  stats: PipeStats;
  /** Overflow queue: buffer indices and lengths, FIFO. */
  qIdx: number[];
  qLen: number[];
}

export class LoadBalancer {
  readonly input: Port;
  readonly groups: OutPipe[][];
  readonly batch: number;
  received = 0;
  receivedBytes = 0;
  nonIp = 0;
  private readonly free: number[] = [];
  private readonly u8: Uint8Array;

  constructor(opts: LbOptions) {
    if (opts.groups.length === 0) fail('EINVAL', 'lb needs at least one group of pipes');
    for (const g of opts.groups) {
      if (!Number.isInteger(g.pipes) || g.pipes < 1 || g.pipes > 64) fail('EINVAL', `a group has 1 to 64 pipes, not ${g.pipes}`);
    }
    this.batch = opts.batch ?? 2048;
    if (!Number.isInteger(this.batch) || this.batch < 1 || this.batch > 65536) fail('EINVAL', `batch must be 1 to 65536, not ${this.batch}`);
    this.input = openPort(opts.input, { extraBuffers: opts.extraBuffers ?? 0 });
    this.u8 = this.input.mem.u8;
    this.groups = [];
    try {
      let id = 0;
      for (const g of opts.groups) {
        const pipes: OutPipe[] = [];
        for (let k = 0; k < g.pipes; k++, id++) {
          const name = `netmap:${g.name}{${id}`;
          const port = openPort(`${name}/xT@${this.input.memId}`);
          if (port.memId !== this.input.memId) fail('EINVAL', `${name} does not share memory with ${opts.input}: zero copy impossible`);
          pipes.push({ port, ring: port.txRings[0]!, name, qIdx: [], qLen: [], stats: { name, forwarded: 0, dropped: 0, forwardedBytes: 0, droppedBytes: 0, queued: 0 } });
        }
        this.groups.push(pipes);
      }
    } catch (e) {
      this.close();
      throw e;
    }
    // extra buffers: the free list of the overflow queues
    const u32 = this.input.mem.u32;
    let idx = this.input.bufsHead;
    for (let n = 0; idx >= 2 && n < this.input.extraBuffers; n++) {
      this.free.push(idx);
      idx = u32[this.input.bufOffset(idx) >>> 2]!;
    }
    this.input.bufsHead = 0;
  }

  get freeBuffers(): number {
    return this.free.length;
  }

  /** Sends one packet (slot `i` of RX ring `rx`) to `out`: copy, or swap when `swap`. */
  private put(out: OutPipe, rx: Ring, i: number, len: number, swap: boolean): void {
    const t = out.ring;
    if (out.qIdx.length === 0 && t.space() > 0) {
      const k = t.head;
      if (swap) {
        const idx = t.slotBufIdx(k);
        t.setSlotBufIdx(k, rx.slotBufIdx(i));
        rx.setSlotBufIdx(i, idx);
        rx.setSlotFlags(i, rx.slotFlags(i) | L.NS_BUF_CHANGED);
        t.setSlotFlags(k, L.NS_BUF_CHANGED);
      } else {
        const src = rx.slotBufOffset(i), dst = t.slotBufOffset(k);
        this.u8.copyWithin(dst, src, src + len);
        t.setSlotFlags(k, 0);
      }
      t.setSlotLen(k, len);
      t.advance(t.next(k));
      out.stats.forwarded++;
      out.stats.forwardedBytes += len;
      return;
    }
    // pipe full (or already queueing): park the packet in an extra buffer
    if (this.free.length === 0) this.stealOldest();
    if (this.free.length === 0) {
      out.stats.dropped++;
      out.stats.droppedBytes += len;
      return;
    }
    const buf = this.free.pop()!;
    if (swap) {
      const idx = rx.slotBufIdx(i);
      rx.setSlotBufIdx(i, buf);
      rx.setSlotFlags(i, rx.slotFlags(i) | L.NS_BUF_CHANGED);
      out.qIdx.push(idx);
    } else {
      const src = rx.slotBufOffset(i), dst = this.input.bufOffset(buf);
      this.u8.copyWithin(dst, src, src + len);
      out.qIdx.push(buf);
    }
    out.qLen.push(len);
  }

  private stealOldest(): void {
    let victim: OutPipe | null = null;
    for (const g of this.groups) for (const p of g) if (p.qIdx.length > (victim?.qIdx.length ?? 0)) victim = p;
    if (victim === null) return;
    this.free.push(victim.qIdx.shift()!);
    const len = victim.qLen.shift()!;
    victim.stats.dropped++;
    victim.stats.droppedBytes += len;
  }

  /** Moves queued packets into pipes that have room again. */
  private drainQueues(): void {
    for (const g of this.groups) {
      for (const p of g) {
        const t = p.ring;
        while (p.qIdx.length > 0 && t.space() > 0) {
          const k = t.head;
          const idx = p.qIdx.shift()!, len = p.qLen.shift()!;
          this.free.push(t.slotBufIdx(k));
          t.setSlotBufIdx(k, idx);
          t.setSlotLen(k, len);
          t.setSlotFlags(k, L.NS_BUF_CHANGED);
          t.advance(t.next(k));
          p.stats.forwarded++;
          p.stats.forwardedBytes += len;
        }
      }
    }
  }

  /** One pass: receive, distribute, flush the pipes. Returns packets received. */
  step(): number {
    for (const g of this.groups) for (const p of g) p.port.txsync();
    this.drainQueues();
    this.input.pollOnce(POLLIN);
    let n = 0;
    const last = this.groups.length - 1;
    for (const rx of this.input.rxRings) {
      let i = rx.head;
      let m = rx.space();
      if (m > this.batch - n) m = this.batch - n;
      for (let c = 0; c < m; c++) {
        const len = rx.slotLen(i);
        const h = flowHash(this.u8, rx.slotBufOffset(i), len);
        if (h < 0) this.nonIp++;
        const hv = h < 0 ? 0 : h;
        for (let gi = 0; gi <= last; gi++) {
          const g = this.groups[gi]!;
          this.put(g[hv % g.length]!, rx, i, len, gi === last);
        }
        this.received++;
        this.receivedBytes += len;
        i = rx.next(i);
      }
      rx.advance(i);
      n += m;
    }
    for (const g of this.groups) for (const p of g) { p.port.txsync(); p.stats.queued = p.qIdx.length; }
    return n;
  }

  wait(timeoutMs: number): void {
    waitPorts([this.input], timeoutMs);
  }

  pipes(): PipeStats[] {
    const out: PipeStats[] = [];
    for (const g of this.groups) for (const p of g) out.push({ ...p.stats, queued: p.qIdx.length });
    return out;
  }

  close(): void {
    // queued buffers and free extra buffers go back on the input's extra-buffer list
    const u32 = this.input.mem.u32;
    const all = [...this.free];
    for (const g of this.groups) for (const p of g) all.push(...p.qIdx);
    let head = 0;
    for (const idx of all) {
      u32[this.input.bufOffset(idx) >>> 2] = head;
      head = idx;
    }
    this.input.bufsHead = head;
    for (const g of this.groups) for (const p of g) p.port.close();
    this.input.close();
  }
}
