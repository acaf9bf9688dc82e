/**
 * The firewall's data path (netmap-ipfw's netmap_read/netmap_fwd): ports in pairs, every frame
 * received on one port of a pair goes through the ruleset and, when it passes, out of the other.
 *
 * As in netmap-ipfw every packet is checked once, as "in", at layer 2, on its receiving port
 * (`recv`/`via NAME` match that port's name; `out`/`xmit` never match). Passed frames move as
 * buffers (a slot swap, zero copy) when the two ports share a memory region and are copied
 * otherwise. `reject`/`unreach`/`reset` build the ICMP error or TCP RST and send it back out of
 * the receiving port. `pipe N`/`queue N` hand the frame to dummynet: its buffer is exchanged for
 * a free one of a pool of extra buffers taken from the receiving port at open (no copy), and it
 * leaves for the peer port when dummynet releases it; a full pool drops and counts.
 *
 * One FirewallPath serves one thread; kipfw -p N runs one per worker, each on its own ring pair,
 * all on one store (one ruleset, one set of counters, one state table). The ruleset generation is
 * checked once per pass: a new ruleset takes effect between batches.
 */
import { assert } from '../errors.js';
import * as L from '../memory/layout.js';
import type { Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import { buildReply, REPLY_ICMP_UNREACH, REPLY_TCP_RST } from './reply.js';
import { passSlot } from '../interfaces/bridge.js';
import type { FirewallConfig, Settings } from './rule.js';
import { nowNs as dummynetNow } from './dummynet/timing.js';
import { V_PASS, V_DENY, V_REJECT, V_RESET, V_PIPE, V_QUEUE, type Evaluator } from './engine.js';


/** What the data path needs of dummynet (dummynet/index.ts). */
export interface PathDummynet {
  enqueue(kind: 'pipe' | 'queue', n: number, handle: number, len: number, u8: Uint8Array, off: number, ruleIndex: number, nowNs: number): number;
  nextEventNs(): number;
  /** At most `max` packets; the rest stay due. */
  dequeueDue(nowNs: number, handles: Int32Array, ruleIndexes: Int32Array, max: number): number;
  /** The tunables dummynet follows (io_fast, one_pass), given again whenever the configuration changes. */
  settings(s: Settings): void;
}

/** Slots handled per ring per pass. */
export const PATH_BURST = 512;
/** Extra buffers each receiving port lends dummynet by default. */
export const PATH_POOL_DEFAULT = 2048;

/** Counters of one data path (one thread). */
export interface PathStats {
  received: number; passed: number; denied: number; rejected: number; repliesSent: number; repliesLost: number;
  toDummynet: number; poolFull: number; fromDummynet: number; dummynetLost: number; txFull: number;
}

interface Side {
  port: Port;
  /** Interface id of this port for recv/via matching: its index on the command line. */
  id: number;
  peer: number;
  /** Next TX ring of the peer to try. */
  txNext: number;
  needTxsync: boolean;
}

export class FirewallPath {
  readonly stats: PathStats = {
    received: 0, passed: 0, denied: 0, rejected: 0, repliesSent: 0, repliesLost: 0,
    toDummynet: 0, poolFull: 0, fromDummynet: 0, dummynetLost: 0, txFull: 0,
  };
  private readonly sides: Side[];
  private readonly u8: Uint8Array;
  private readonly zeroCopy: boolean[];
  private evaluator: Evaluator;
  private generation: number;
  private config: FirewallConfig;
  // dummynet's buffer pool: handle -> buffer index, owning side, frame length
  private readonly poolBuf: Int32Array;
  private readonly poolSide: Int32Array;
  private readonly poolLen: Int32Array;
  /** Free handles per side: a handle's buffer always belongs to the region of the side it was taken from. */
  private readonly poolFree: Int32Array[];
  private readonly poolFreeCount: Int32Array;
  private readonly dueHandles = new Int32Array(1024);
  private readonly dueRules = new Int32Array(1024);
  /** Dummynet's clock (ns), read after the RX sync of each pass; null: the time given to step(). */
  /** Dummynet's clock (ns); read by step() after its RX syncs. */
  private readonly clockNs: () => number;

  constructor(
    ports: Port[],
    private readonly source: { generation(): number; evaluator(): { evaluator: Evaluator; config: FirewallConfig } },
    private readonly dummynet: PathDummynet | null,
    opts: { zeroCopy?: boolean; ids?: number[]; clockNs?: () => number } = {},
  ) {
    this.clockNs = opts.clockNs ?? dummynetNow;
    assert(ports.length >= 2 && ports.length % 2 === 0, 'ports come in pairs');
    this.sides = ports.map((port, i) => ({ port, id: opts.ids?.[i] ?? i, peer: i ^ 1, txNext: 0, needTxsync: false }));
    this.u8 = ports[0]!.mem.u8;
    this.zeroCopy = this.sides.map((s) => (opts.zeroCopy ?? true) && s.port.memId === ports[s.peer]!.memId);
    this.generation = source.generation();
    const first = source.evaluator();
    this.evaluator = first.evaluator;
    this.config = first.config;
    dummynet?.settings(first.config.settings);
    // take every extra buffer the ports hold into the pool
    let total = 0;
    for (const p of ports) total += p.extraBuffers;
    this.poolBuf = new Int32Array(total);
    this.poolSide = new Int32Array(total);
    this.poolLen = new Int32Array(total);
    this.poolFree = ports.map((p) => new Int32Array(p.extraBuffers));
    this.poolFreeCount = new Int32Array(ports.length);
    let h = 0;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i]!;
      const free = this.poolFree[i]!;
      const u32 = p.mem.u32;
      let idx = p.bufsHead;
      while (idx !== 0 && h < total) {
        const next = u32[p.bufOffset(idx) >>> 2]!;
        this.poolBuf[h] = idx;
        this.poolSide[h] = i;
        if (this.poolFreeCount[i]! < free.length) free[this.poolFreeCount[i]!++] = h;
        h++;
        idx = next;
      }
      p.bufsHead = 0;
    }
  }

  get poolSize(): number {
    return this.poolBuf.length;
  }

  /** One pass: sync the RX rings, filter and forward what arrived, release what dummynet has due, sync TX. `nowMs`: Date.now(), read once per pass. */
  step(nowMs: number): number {
    const gen = this.source.generation();
    if (gen !== this.generation) {
      const next = this.source.evaluator();
      this.evaluator = next.evaluator;
      this.config = next.config;
      this.generation = gen;
      this.dummynet?.settings(next.config.settings);
    }
    const sides = this.sides;
    let moved = 0;
    for (let i = 0; i < sides.length; i++) sides[i]!.port.rxsync();
    // Dummynet stamps each packet with the time it is taken in; a time read before rxsync can be
    // older than the frames the sync brings (the thread may be preempted in between on a loaded
    // machine), and such a frame would leave its pipe early: kipfw released datagrams of a
    // 10 ms pipe after less than 10 ms (one-way, tcpdump on both ends). So the clock is read here.
    const nowNs = this.dummynet !== null ? this.clockNs() : 0;
    for (let i = 0; i < sides.length; i++) moved += this.forward(i, nowMs, nowNs);
    if (this.dummynet !== null) moved += this.release(nowNs);
    for (let i = 0; i < sides.length; i++) {
      const s = sides[i]!;
      if (s.needTxsync) { s.needTxsync = false; s.port.txsync(); }
    }
    return moved;
  }

  /** When dummynet next has a packet due (ns, on dummynet's clock: dummynet/timing.ts nowNs), Infinity if none. */
  nextDueNs(): number {
    return this.dummynet === null ? Infinity : this.dummynet.nextEventNs();
  }

  private forward(si: number, nowMs: number, nowNs: number): number {
    const src = this.sides[si]!, dst = this.sides[src.peer]!;
    const rxs = src.port.rxRings, txs = dst.port.txRings;
    const u8 = this.u8, ev = this.evaluator, zc = this.zeroCopy[si]!, sp = src.port.mem;
    const stats = this.stats;
    let handled = 0;
    for (let r = 0; r < rxs.length; r++) {
      const rx = rxs[r]!;
      while (!rx.empty()) {
        // a TX ring of the peer with room (rings are tried round robin)
        let tx: Ring | null = null;
        for (let tries = 0; tries < txs.length; tries++) {
          const t = txs[dst.txNext]!;
          if (t.space() > 0) { tx = t; break; }
          dst.txNext = dst.txNext + 1 === txs.length ? 0 : dst.txNext + 1;
        }
        if (tx === null) {
          // the peer is full: leave the rest for the next pass (netmap-ipfw retries, then drops)
          stats.txFull++;
          dst.port.txsync();
          break;
        }
        let n = rx.space();
        const room = tx.space();
        if (n > room) n = room;
        if (n > PATH_BURST) n = PATH_BURST;
        let j = rx.head, k = tx.head;
        let verdict = V_PASS, inChain = false;
        for (let c = 0; c < n; c++) {
          const off = rx.slotBufOffset(j);
          const len = rx.slotLen(j);
          const rflags = rx.slotFlags(j);
          // the first slot of a multi-slot frame decides for all of its slots
          if (!inChain) {
            stats.received++;
            verdict = ev.check(u8, off, len, true, src.id, -1, nowMs);
          }
          inChain = (rflags & L.NS_MOREFRAG) !== 0;
          if (verdict === V_PASS) {
            passSlot(rx, j, tx, k, zc, sp);
            k = tx.next(k);
            if (!inChain) stats.passed++;
          } else if (!inChain || verdict !== V_DENY) {
            this.divert(verdict, si, rx, j, off, len, rflags, nowNs);
            if (inChain) verdict = V_DENY; // the rest of a diverted chain is dropped
          }
          j = rx.next(j);
        }
        rx.advance(j);
        if (k !== tx.head) {
          tx.advance(k);
          dst.needTxsync = true;
        }
        handled += n;
      }
    }
    return handled;
  }

  /** Everything but a pass: deny, reply, or hand over to dummynet. */
  private divert(verdict: number, si: number, rx: Ring, j: number, off: number, len: number, rflags: number, nowNs: number): void {
    const stats = this.stats;
    if (verdict === V_DENY) { stats.denied++; return; }
    if (verdict === V_REJECT || verdict === V_RESET) {
      stats.rejected++;
      if ((rflags & L.NS_MOREFRAG) === 0) this.reply(si, off, len, verdict === V_RESET ? REPLY_TCP_RST : REPLY_ICMP_UNREACH, this.evaluator.arg);
      return;
    }
    if ((verdict === V_PIPE || verdict === V_QUEUE) && this.dummynet !== null && (rflags & L.NS_MOREFRAG) === 0) {
      // the pool buffer must come from this port's region to be swapped into its ring
      if (this.poolFreeCount[si] === 0) { stats.poolFull++; return; }
      const h = this.poolFree[si]![--this.poolFreeCount[si]!]!;
      const r = this.dummynet.enqueue(verdict === V_PIPE ? 'pipe' : 'queue', this.evaluator.arg, h, len, this.u8, off, this.evaluator.ruleIndex, nowNs);
      if (r !== 0) { this.freeHandle(h); return; } // dropped by dummynet (counted there)
      const held = rx.slotBufIdx(j);
      rx.setSlotBufIdx(j, this.poolBuf[h]!);
      rx.setSlotFlags(j, rflags | L.NS_BUF_CHANGED);
      this.poolBuf[h] = held;
      this.poolLen[h] = len;
      stats.toDummynet++;
      return;
    }
    stats.denied++;
  }

  /** Sends a reject/unreach/reset reply out of port `si` (dropped and counted when its TX ring is full). */
  private reply(si: number, off: number, len: number, kind: number, code: number): void {
    const side = this.sides[si]!;
    const txs = side.port.txRings;
    for (let t = 0; t < txs.length; t++) {
      const tx = txs[t]!;
      if (tx.space() === 0) continue;
      const k = tx.head;
      const n = buildReply(this.u8, off, len, kind, code, this.u8, tx.slotBufOffset(k), tx.bufSize);
      if (n === 0) return;
      tx.setSlotLen(k, n);
      tx.setSlotFlags(k, tx.slotFlags(k) & ~L.NS_MOREFRAG);
      tx.advance(tx.next(k));
      side.needTxsync = true;
      this.stats.repliesSent++;
      return;
    }
    this.stats.repliesLost++;
  }

  /** Sends what dummynet has due to the peer of the port each packet came from. */
  private release(nowNs: number): number {
    const dn = this.dummynet!;
    const sides = this.sides;
    let total = 0;
    for (;;) {
      // Take out no more than the fullest peer can send now: what cannot leave stays due in
      // dummynet for the next pass (backpressure, as forward() leaves frames in the RX ring)
      // instead of being dropped by emit(). Through a pipe without bw limit into a VALE port,
      // ~10% of the frames were lost that way.
      let room = this.dueHandles.length;
      for (let i = 0; i < sides.length; i++) {
        const txs = sides[i]!.port.txRings;
        let space = 0;
        for (let t = 0; t < txs.length; t++) space += txs[t]!.space();
        if (space === 0) sides[i]!.port.txsync(); // reclaim: the next pass finds room
        if (space < room) room = space;
      }
      if (room === 0) { this.stats.txFull++; return total; }
      const n = dn.dequeueDue(nowNs, this.dueHandles, this.dueRules, room);
      for (let i = 0; i < n; i++) this.emit(this.dueHandles[i]!, this.dueRules[i]!, nowNs);
      total += n;
      if (n < room) return total;
    }
  }

  private emit(h: number, ruleIndex: number, nowNs: number): void {
    const si = this.poolSide[h]!;
    const src = this.sides[si]!, dst = this.sides[src.peer]!;
    const len = this.poolLen[h]!;
    const bufOff = src.port.bufOffset(this.poolBuf[h]!);
    if (ruleIndex < 0) {
      // dummynet dropped it at the output (a profile loss, CoDel, a pipe deleted meanwhile)
      this.stats.dummynetLost++;
      this.freeHandle(h);
      return;
    }
    this.stats.fromDummynet++;
    if (!this.config.settings.onePass) {
      // one_pass = 0: the packet re-enters the ruleset after the pipe rule
      const v = this.evaluator.resume(this.u8, bufOff, len, true, src.id, -1, Date.now(), ruleIndex);
      if (v !== V_PASS) {
        if (v === V_PIPE || v === V_QUEUE) {
          const r = this.dummynet!.enqueue(v === V_PIPE ? 'pipe' : 'queue', this.evaluator.arg, h, len, this.u8, bufOff, this.evaluator.ruleIndex, nowNs);
          if (r === 0) return;
        } else if (v === V_REJECT || v === V_RESET) {
          this.reply(si, bufOff, len, v === V_RESET ? REPLY_TCP_RST : REPLY_ICMP_UNREACH, this.evaluator.arg);
        }
        this.freeHandle(h);
        return;
      }
    }
    const txs = dst.port.txRings;
    for (let t = 0; t < txs.length; t++) {
      const tx = txs[(dst.txNext + t) % txs.length]!;
      if (tx.space() === 0) continue;
      const k = tx.head;
      if (this.zeroCopy[si]) {
        const idx = tx.slotBufIdx(k);
        tx.setSlotBufIdx(k, this.poolBuf[h]!);
        this.poolBuf[h] = idx;
        tx.setSlotFlags(k, (tx.slotFlags(k) & ~L.NS_MOREFRAG) | L.NS_BUF_CHANGED);
        tx.setSlotLen(k, len);
      } else {
        const l = len > tx.bufSize ? tx.bufSize : len;
        src.port.mem.copy(tx.slotBufOffset(k), bufOff, l, tx.bufSize);
        tx.setSlotLen(k, l);
        tx.setSlotFlags(k, tx.slotFlags(k) & ~L.NS_MOREFRAG);
      }
      tx.advance(tx.next(k));
      dst.needTxsync = true;
      this.freeHandle(h);
      return;
    }
    this.stats.dummynetLost++;
    this.freeHandle(h);
  }

  /**
   * Gives the pool's buffers back to the ports' extra-buffer lists, so that closing the ports
   * frees them. Packets still waiting in dummynet are dropped (their buffers come back too).
   */
  returnBuffers(): void {
    const heads = this.sides.map(() => 0);
    for (let h = 0; h < this.poolBuf.length; h++) {
      const si = this.poolSide[h]!;
      const p = this.sides[si]!.port;
      const idx = this.poolBuf[h]!;
      p.mem.u32[p.bufOffset(idx) >>> 2] = heads[si]!;
      heads[si] = idx;
    }
    for (let i = 0; i < this.sides.length; i++) this.sides[i]!.port.bufsHead = heads[i]!;
    this.poolFreeCount.fill(0);
  }

  private freeHandle(h: number): void {
    const si = this.poolSide[h]!;
    this.poolFree[si]![this.poolFreeCount[si]!++] = h;
  }
}
