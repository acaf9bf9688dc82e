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
 * checked once per pass: a new ruleset takes effect between batches. With workers, worker 0's
 * path owns the dummynet and the others hand their pipe/queue frames to it (handoff.ts): a
 * producer path swaps a buffer of its stock into the RX slot and posts the frame; the owner's
 * path takes the posted frames into dummynet at the start of each pass, with the time they
 * were received, and gives one free buffer back for each.
 */
import { assert } from '../errors.js';
import * as native from '../native/index.js';
import * as L from '../memory/layout.js';
import type { Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import { buildReply, REPLY_ICMP_UNREACH, REPLY_TCP_RST } from './reply.js';
import { passSlot } from '../interfaces/bridge.js';
import type { FirewallConfig, Settings } from './rule.js';
import { V_PASS, V_DENY, V_REJECT, V_RESET, V_PIPE, V_QUEUE, type Evaluator } from './engine.js';
import type { DnHandoff } from './handoff.js';


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
  /** Frames handed to dummynet's thread (kipfw -p N, workers but 0), and those dropped because the hand-off ring was full. */
  handedOff: number; handoffFull: number;
}

/**
 * A path's place in the hand-off between workers (kipfw -p N > 1): worker 0 owns dummynet, the
 * others feed it. `stock`: the buffers per port each feeding worker swaps into its RX slots; worker
 * 0 hands them out of its own extra buffers at start (so only it needs to open its ports with
 * extra buffers: pool + (workers - 1) * stock each).
 */
export interface PathHandoff { link: DnHandoff; worker: number; stock: number }

interface Side {
  port: Port;
  /** Interface id of this port for recv/via matching: its index on the command line. */
  id: number;
  peer: number;
  /** Next TX ring of the peer to try. */
  txNext: number;
  needTxsync: boolean;
}

/** Slots of FirewallPath.now. */
const NOW_MS = 0, NOW_NS = 1;

export class FirewallPath {
  readonly stats: PathStats = {
    received: 0, passed: 0, denied: 0, rejected: 0, repliesSent: 0, repliesLost: 0,
    toDummynet: 0, poolFull: 0, fromDummynet: 0, dummynetLost: 0, txFull: 0, handedOff: 0, handoffFull: 0,
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
  /** A producer's stock per side: free buffers of that side's region to swap into RX slots. */
  private readonly stock: Int32Array[];
  private readonly stockCount: Int32Array;
  /** The owner's buffers taken back from the hand-off rings at shutdown, per side. */
  private readonly orphans: number[][];
  private readonly handoff: PathHandoff | null;
  private posted = false;
  /** The latest time given to dummynet: frames from other workers enter no earlier (dummynet's time must not go back). */
  private lastNs = 0;
  private readonly onReturn = (buf: number, side: number): void => { this.stock[side]![this.stockCount[side]!++] = buf; };
  private readonly dueHandles = new Int32Array(1024);
  private readonly dueRules = new Int32Array(1024);
  /**
   * The pass's times, [NOW_MS] Date.now() and [NOW_NS] dummynet's clock, read by forward() and
   * release() from here: a double handed to a call the compiler does not inline is boxed, and an
   * idle kipfw re-checking its rings passes hundreds of thousands of times a second (the boxes
   * made a 0.1-0.4 ms scavenge every 90-250 ms, each one late packets).
   */
  private readonly now = new Float64Array(2);
  /**
   * [0]: when dummynet next has something due (ns), as of its last change through this path;
   * -Infinity: to be asked again (after an enqueue or a new configuration); Infinity: nothing
   * held, or no dummynet. Asking dummynet, or a getter the compiler did not inline, returns a
   * boxed double; idle passes and PathLoop read this array instead.
   */
  readonly nextDue = new Float64Array([-Infinity]);

  constructor(
    ports: Port[],
    private readonly source: { generation(): number; evaluator(): { evaluator: Evaluator; config: FirewallConfig } },
    private readonly dummynet: PathDummynet | null,
    opts: { zeroCopy?: boolean; ids?: number[]; handoff?: PathHandoff } = {},
  ) {
    assert(ports.length >= 2 && ports.length % 2 === 0, 'ports come in pairs');
    this.sides = ports.map((port, i) => ({ port, id: opts.ids?.[i] ?? i, peer: i ^ 1, txNext: 0, needTxsync: false }));
    this.u8 = ports[0]!.mem.u8;
    this.zeroCopy = this.sides.map((s) => (opts.zeroCopy ?? true) && s.port.memId === ports[s.peer]!.memId);
    this.generation = source.generation();
    const first = source.evaluator();
    this.evaluator = first.evaluator;
    this.config = first.config;
    dummynet?.settings(first.config.settings);
    this.handoff = opts.handoff ?? null;
    if (dummynet === null) this.nextDue[0] = Infinity;
    assert(this.handoff === null || (dummynet !== null) === (this.handoff.worker === 0), 'worker 0 owns dummynet, the others hand off');
    this.orphans = ports.map(() => []);
    // a producer's stock comes from the owner, through its return ring
    const producer = dummynet === null && this.handoff !== null;
    this.stock = ports.map(() => new Int32Array(producer ? this.handoff!.stock : 0));
    this.stockCount = new Int32Array(ports.length);
    let total = 0;
    if (this.handoff !== null && !producer) {
      const { link, stock } = this.handoff;
      for (let i = 0; i < ports.length; i++) {
        const p = ports[i]!;
        let left = p.extraBuffers;
        for (let k = 1; k < link.workers; k++) {
          for (let j = 0; j < stock && p.bufsHead !== 0; j++, left--) {
            const idx = p.bufsHead;
            p.bufsHead = p.mem.u32[p.bufOffset(idx) >>> 2]!;
            link.giveBack(k, idx, i);
          }
        }
        total += left;
      }
      for (let k = 1; k < link.workers; k++) link.publishReturns(k);
    } else if (!producer) {
      // every extra buffer the ports hold goes into the pool
      for (const p of ports) total += p.extraBuffers;
    }
    this.poolBuf = new Int32Array(total);
    this.poolSide = new Int32Array(total);
    this.poolLen = new Int32Array(total);
    this.poolFree = ports.map((p) => new Int32Array(producer ? 0 : p.extraBuffers));
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
      if (!producer) p.bufsHead = 0;
    }
  }

  get poolSize(): number {
    return this.poolBuf.length;
  }

  /** Buffers this path holds to swap into RX slots for frames handed to another thread (a producer's stock). */
  get stockSize(): number {
    let n = 0;
    for (const s of this.stock) n += s.length;
    return n;
  }

  /** One pass: sync the RX rings, filter and forward what arrived, release what dummynet has due, sync TX. */
  step(): number {
    // Date.now()'s value, without the heap number Date.now() makes on every call
    native.readRealClock();
    this.now[NOW_MS] = Math.floor(native.realClock[0]!);
    const gen = this.source.generation();
    if (gen !== this.generation) {
      if (this.dummynet !== null) this.nextDue[0] = -Infinity;
      const next = this.source.evaluator();
      this.evaluator = next.evaluator;
      this.config = next.config;
      this.generation = gen;
      this.dummynet?.settings(next.config.settings);
    }
    const sides = this.sides;
    let moved = 0;
    for (let i = 0; i < sides.length; i++) sides[i]!.port.rxsync();
    const ho = this.handoff;
    if (ho !== null) {
      if (this.dummynet !== null) moved += this.ingest(ho.link);
      else ho.link.takeReturned(ho.worker, this.onReturn);
    }
    // Dummynet stamps each packet with the time it is taken in; a time read before rxsync can be
    // older than the frames the sync brings (the thread may be preempted in between on a loaded
    // machine), and such a frame would leave its pipe early: kipfw released datagrams of a
    // 10 ms pipe after less than 10 ms (one-way, tcpdump on both ends). So the clock is read here
    // (also after ingest(): later than every frame other workers handed over).
    // (dummynet's clock is dummynet/timing.ts nowNs, CLOCK_MONOTONIC in ns, read without a returned double)
    let nowNs = 0;
    if (this.dummynet !== null || ho !== null) { native.readClockNs(); nowNs = native.clockNs[0]!; }
    if (nowNs > this.lastNs) this.lastNs = nowNs;
    this.now[NOW_NS] = nowNs;
    for (let i = 0; i < sides.length; i++) moved += this.forward(i);
    if (this.dummynet !== null && nowNs >= this.nextDue[0]!) moved += this.release();
    if (this.posted) { this.posted = false; ho!.link.publish(ho!.worker); }
    for (let i = 0; i < sides.length; i++) {
      const s = sides[i]!;
      if (s.needTxsync) { s.needTxsync = false; s.port.txsync(); }
    }
    return moved;
  }

  private forward(si: number): number {
    const nowMs = this.now[NOW_MS]!, nowNs = this.now[NOW_NS]!;
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

  /**
   * The owner: takes the frames other workers handed over into dummynet, each at the time it was
   * received (no earlier than the latest time dummynet has seen), and gives each worker one free
   * buffer of the same port back per frame. A full pool drops (counted here, as for own frames).
   */
  private ingest(link: DnHandoff): number {
    const dn = this.dummynet!;
    const stats = this.stats, sides = this.sides;
    let total = 0;
    for (let k = 1; k < link.workers; k++) {
      const n = link.pending(k);
      if (n === 0) continue;
      for (let i = 0; i < n; i++) {
        const e = link.entry(k, i);
        const x = link.buf(e), len = link.len(e), si = link.port(e);
        if (si >= sides.length) continue; // not one of our ports: cannot happen between our threads
        let t = link.stampNs(e);
        if (t < this.lastNs) t = this.lastNs; else this.lastNs = t;
        if (this.poolFreeCount[si] === 0) { stats.poolFull++; link.giveBack(k, x, si); continue; }
        const h = this.poolFree[si]![--this.poolFreeCount[si]!]!;
        link.giveBack(k, this.poolBuf[h]!, si);
        this.poolBuf[h] = x;
        this.poolLen[h] = len;
        const r = dn.enqueue(link.isQueue(e) ? 'queue' : 'pipe', link.number(e), h, len, this.u8, sides[si]!.port.bufOffset(x), link.rule(e), t);
        this.nextDue[0] = -Infinity;
        if (r !== 0) { this.freeHandle(h); continue; } // dropped by dummynet (counted there)
        stats.toDummynet++;
      }
      link.consumed(k, n);
      link.publishReturns(k);
      total += n;
    }
    return total;
  }

  /** A producer: hands a frame for pipe/queue `n` to dummynet's thread, its buffer swapped for one of the stock. */
  private handOff(si: number, rx: Ring, j: number, len: number, rflags: number, nowNs: number, queue: boolean): void {
    const ho = this.handoff!;
    const stats = this.stats;
    if (this.stockCount[si] === 0) { stats.poolFull++; return; }
    if (ho.link.room(ho.worker) === 0) { stats.handoffFull++; return; }
    const fresh = this.stock[si]![--this.stockCount[si]!]!;
    const held = rx.slotBufIdx(j);
    rx.setSlotBufIdx(j, fresh);
    rx.setSlotFlags(j, rflags | L.NS_BUF_CHANGED);
    ho.link.post(ho.worker, held, len, si, queue, this.evaluator.arg, this.evaluator.ruleIndex, nowNs);
    this.posted = true;
    stats.handedOff++;
  }

  /**
   * The owner, once the other workers have stopped: takes what is left in the hand-off rings
   * (frames never taken in, buffers given back but not taken) so that returnBuffers() frees it.
   */
  drainHandoff(): void {
    const ho = this.handoff;
    if (ho === null || this.dummynet === null) return;
    const link = ho.link;
    const keep = (buf: number, side: number): void => { if (side < this.orphans.length) this.orphans[side]!.push(buf); };
    for (let k = 1; k < link.workers; k++) {
      const n = link.pending(k);
      for (let i = 0; i < n; i++) { const e = link.entry(k, i); keep(link.buf(e), link.port(e)); }
      link.consumed(k, n);
      link.untaken(k, keep);
    }
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
      this.nextDue[0] = -Infinity;
      if (r !== 0) { this.freeHandle(h); return; } // dropped by dummynet (counted there)
      const held = rx.slotBufIdx(j);
      rx.setSlotBufIdx(j, this.poolBuf[h]!);
      rx.setSlotFlags(j, rflags | L.NS_BUF_CHANGED);
      this.poolBuf[h] = held;
      this.poolLen[h] = len;
      stats.toDummynet++;
      return;
    }
    if ((verdict === V_PIPE || verdict === V_QUEUE) && this.handoff !== null && (rflags & L.NS_MOREFRAG) === 0) {
      this.handOff(si, rx, j, len, rflags, nowNs, verdict === V_QUEUE);
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
  private release(): number {
    const dn = this.dummynet!, nowNs = this.now[NOW_NS]!;
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
      // everything due is out (emit may have queued some into a next pipe): ask for the next time
      if (n < room) { this.nextDue[0] = dn.nextEventNs(); return total; }
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
          this.nextDue[0] = -Infinity;
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
    const give = (si: number, idx: number): void => {
      const p = this.sides[si]!.port;
      p.mem.u32[p.bufOffset(idx) >>> 2] = heads[si]!;
      heads[si] = idx;
    };
    for (let h = 0; h < this.poolBuf.length; h++) give(this.poolSide[h]!, this.poolBuf[h]!);
    const ho = this.handoff;
    if (ho !== null && this.dummynet === null) ho.link.takeReturned(ho.worker, this.onReturn);
    for (let si = 0; si < this.sides.length; si++) {
      for (let i = 0; i < this.stockCount[si]!; i++) give(si, this.stock[si]![i]!);
      for (const idx of this.orphans[si]!) give(si, idx);
    }
    for (let i = 0; i < this.sides.length; i++) this.sides[i]!.port.bufsHead = heads[i]!;
    this.poolFreeCount.fill(0);
    this.stockCount.fill(0);
    for (const o of this.orphans) o.length = 0;
  }

  private freeHandle(h: number): void {
    const si = this.poolSide[h]!;
    this.poolFree[si]![this.poolFreeCount[si]!++] = h;
  }
}
