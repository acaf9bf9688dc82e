/**
 * Dummynet's data path: classify -> scheduler instance (sched mask) -> flow queue (flow mask) ->
 * plr / RED / queue limit -> scheduler (FIFO, WF2Q+, RR, QFQ, PRIO, FQ_CODEL) -> link
 * serialisation at bw (credit, burst, io_fast, profile airtime) -> delay line -> out.
 *
 * Time is continuous (float64 nanoseconds), not FreeBSD's ticks: every event is processed at its
 * own exact time, so a virtual clock gives exact figures and a real clock gives the precision of
 * the caller's sleep. Packets are integer handles owned by the caller; their length, rule index and
 * times live in typed arrays sized once (maxPackets). Instances and queues are objects taken from
 * bounded pools when a new flow appears (never per packet) and returned when idle.
 */
import { assert } from '../../errors.js';
import { FlowKey, maskedFlowHash, maskFromJSON } from './flowkey.js';
import { QfqSched, type QfqClass } from './qfq.js';
import { DN_MAX_ID, PLR_ONE, SCALE_RED, type FlowsetConf, type SchedConf, type SchedType, boundQueueParams } from './config.js';

/** Why enqueue() refused a packet (0 = queued). The caller still owns a refused handle. */
export const DROP = {
  NONE: 0,
  /** the rule names a pipe/queue that does not exist (FreeBSD: ENOBUFS) */
  NO_SUCH_FLOWSET: 1,
  /** the queue exists but its scheduler does not (a queue whose pipe was deleted) */
  NO_SCHEDULER: 2,
  PLR: 3,
  RED: 4,
  QUEUE_FULL: 5,
  /** no free packet slot: maxPackets packets already wait */
  POOL_FULL: 6,
  /** no free instance or queue object: the dynamic tables are full */
  TABLE_FULL: 7,
  /** fq_codel's total limit (the packet dropped is this one) */
  FQ_LIMIT: 8,
} as const;
export const DROP_NAMES = ['none', 'no-such-flowset', 'no-scheduler', 'plr', 'red', 'queue-full', 'pool-full', 'table-full', 'fq-limit'] as const;

const T_FIFO = 0, T_WF2Q = 1, T_RR = 2, T_QFQ = 3, T_PRIO = 4, T_FQCODEL = 5;
function typeCode(t: SchedType): number {
  switch (t) {
    case 'FIFO': return T_FIFO;
    case 'WF2Q+': return T_WF2Q;
    case 'RR': return T_RR;
    case 'QFQ': return T_QFQ;
    case 'PRIO': return T_PRIO;
    default: return T_FQCODEL;
  }
}

/** Credit tolerance in bits: float rounding must not turn "exactly paid" into "still owing". */
const CREDIT_EPS = 1e-6;
/** Buckets of the release-lateness histogram (Engine.lateness): under 1 µs, four per power of two up to 2^21 µs ≈ 2 s, then overflow. */
export const LATE_BUCKETS = 1 + 4 * 21 + 1;

/** Upper bound (µs) of lateness bucket i (0: under 1 µs; the last: Infinity). */
export function lateBucketBound(i: number): number {
  if (i <= 0) return 0;
  if (i >= LATE_BUCKETS - 1) return Infinity;
  const e = (i - 1) >> 2, sub = (i - 1) & 3;
  return 2 ** e * (1 + (sub + 1) / 4);
}
/** io_fast gives an idle instance one FreeBSD tick (hz=1000) of credit. */
const IO_FAST_CREDIT_NS = 1e6;
/** RED's idle decay uses the time of a medium packet, as FreeBSD's red_avg_pkt_size. */
const RED_AVG_PKT_SIZE = 512;
const RED_MAX_PKT_SIZE = 1500;
const ALL_MASK = (() => { const k = new FlowKey(); k.proto = 0xff; k.srcIp = 0xffffffff; k.dstIp = 0xffffffff; k.srcPort = 0xffff; k.dstPort = 0xffff; k.src6.fill(0xffffffff); k.dst6.fill(0xffffffff); k.flowId6 = 0xfffff; return k; })();

/** dst |= src, field by field (FreeBSD's flow_id_or). */
function orMask(dst: FlowKey, src: FlowKey): void {
  dst.proto |= src.proto; dst.srcPort |= src.srcPort; dst.dstPort |= src.dstPort;
  dst.extra = (dst.extra | src.extra) >>> 0;
  dst.srcIp = (dst.srcIp | src.srcIp) >>> 0; dst.dstIp = (dst.dstIp | src.dstIp) >>> 0;
  for (let i = 0; i < 4; i++) { dst.src6[i] = dst.src6[i]! | src.src6[i]!; dst.dst6[i] = dst.dst6[i]! | src.dst6[i]!; }
  dst.flowId6 = (dst.flowId6 | src.flowId6) >>> 0;
}

/** A min-heap of queues keyed by a float (WF2Q+'s eligible and waiting sets). Grows by doubling, never per packet. */
class QueueHeap {
  keys = new Float64Array(8);
  items: Array<FlowQueue | null> = new Array<FlowQueue | null>(8).fill(null);
  size = 0;
  push(key: number, q: FlowQueue): void {
    if (this.size === this.keys.length) {
      const k = new Float64Array(this.size * 2); k.set(this.keys); this.keys = k;
      for (let i = this.items.length; i < this.size * 2; i++) this.items.push(null);
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p]! <= key) break;
      this.keys[i] = this.keys[p]!; this.items[i] = this.items[p]!; i = p;
    }
    this.keys[i] = key; this.items[i] = q;
  }
  topKey(): number { return this.keys[0]!; }
  pop(): FlowQueue {
    const top = this.items[0]!;
    const n = --this.size;
    const key = this.keys[n]!, item = this.items[n]!;
    this.items[n] = null;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.keys[c + 1]! < this.keys[c]!) c++;
      if (this.keys[c]! >= key) break;
      this.keys[i] = this.keys[c]!; this.items[i] = this.items[c]!; i = c;
    }
    if (n > 0) { this.keys[i] = key; this.items[i] = item; }
    return top;
  }
  clear(): void { this.items.fill(null); this.size = 0; }
}

/** A per-flow queue (FreeBSD's dn_queue): packets, counters and the scheduler's per-queue state. */
export class FlowQueue implements QfqClass {
  fs: RtFlowset | null = null;
  si: Instance | null = null;
  readonly fid = new FlowKey();
  hashNext: FlowQueue | null = null;
  /** next queue of the same instance (for garbage collection and teardown). */
  siNext: FlowQueue | null = null;
  head = -1;
  tail = -1;
  length = 0;
  lenBytes = 0;
  totPkts = 0;
  totBytes = 0;
  drops = 0;
  bucket = 0;
  lastUse = 0;
  // Scheduler state.
  weight = 1;
  lmax = 1500;
  S = 0;
  F = 0;
  epoch = 0;
  // QFQ (qfq.ts): S and F above are its fixed-point timestamps.
  qfqInvW = 0;
  qfqW = 0;
  qfqGroup = 0;
  qfqNext: QfqClass | null = null;
  deficit = 0;
  quantum = 1500;
  inList = false;
  listNext: FlowQueue | null = null;
  // RED state.
  avg = 0;
  count = -1;
  qTime = 0;
  redRandom = 0;
}

/** fq_codel's flows of one instance, in typed arrays sized once per instance. */
class FqFlows {
  readonly head: Int32Array; readonly tail: Int32Array; readonly bytes: Float64Array; readonly length: Int32Array;
  readonly deficit: Float64Array; readonly next: Int32Array; readonly list: Uint8Array;
  readonly firstAbove: Float64Array; readonly dropNext: Float64Array; readonly count: Int32Array; readonly lastCount: Int32Array; readonly dropping: Uint8Array;
  newHead = -1; newTail = -1; oldHead = -1; oldTail = -1;
  constructor(readonly n: number) {
    this.head = new Int32Array(n).fill(-1); this.tail = new Int32Array(n).fill(-1); this.bytes = new Float64Array(n); this.length = new Int32Array(n);
    this.deficit = new Float64Array(n); this.next = new Int32Array(n).fill(-1); this.list = new Uint8Array(n);
    this.firstAbove = new Float64Array(n); this.dropNext = new Float64Array(n); this.count = new Int32Array(n); this.lastCount = new Int32Array(n); this.dropping = new Uint8Array(n);
  }
}

/** A scheduler instance (FreeBSD's dn_sch_inst): link credit, delay line, counters, scheduler state. */
export class Instance {
  sched: RtSched | null = null;
  id = 0;
  readonly fid = new FlowKey();
  hashNext: Instance | null = null;
  bucket = 0;
  queues: FlowQueue | null = null;
  /** the FIFO queue (FIFO scheduler) or the counting queue (FQ_CODEL). */
  main: FlowQueue | null = null;
  credit = 0;
  schedTime = 0;
  idleTime = 0;
  /** waiting for link credit: serveAt is when the last packet finishes its transmission. */
  active = false;
  serveAt = 0;
  dlHead = -1;
  dlTail = -1;
  heapIndex = -1;
  eventKey = Infinity;
  totPkts = 0;
  totBytes = 0;
  length = 0;
  lenBytes = 0;
  drops = 0;
  lastUse = 0;
  // WF2Q+.
  V = 0;
  wsum = 0;
  epoch = 1;
  readonly eligible = new QueueHeap();
  readonly waiting = new QueueHeap();
  // QFQ: made with the first QFQ use of this object, kept when it is reused.
  qfq: QfqSched | null = null;
  // RR.
  rrHead: FlowQueue | null = null;
  rrTail: FlowQueue | null = null;
  // PRIO: 64 levels, 0 = highest; the bitmap is two 32-bit words.
  prioLo = 0;
  prioHi = 0;
  readonly prioQ: Array<FlowQueue | null> = new Array<FlowQueue | null>(64).fill(null);
  // FQ_CODEL.
  fq: FqFlows | null = null;
}

export class RtSched {
  readonly typeCode: number;
  readonly bwBps: number;
  readonly delayNs: number;
  readonly burstBits: number;
  readonly profile: Float64Array | null;
  readonly lossLevel: number;
  readonly hasMask: boolean;
  readonly mask: FlowKey;
  readonly table: Array<Instance | null>;
  readonly tableMask: number;
  instCount = 0;
  single: Instance | null = null;
  readonly fsList: RtFlowset[] = [];
  readonly fqTargetNs: number;
  readonly fqIntervalNs: number;
  readonly redSlotNs: number;
  constructor(readonly conf: SchedConf, readonly key: string) {
    this.typeCode = typeCode(conf.type);
    this.bwBps = conf.link.bw;
    this.delayNs = conf.link.delayMs * 1e6;
    this.burstBits = conf.link.burstBytes * 8;
    this.profile = conf.profile && conf.profile.samples.length > 0 ? Float64Array.from(conf.profile.samples) : null;
    this.lossLevel = conf.profile ? conf.profile.lossLevel : 0;
    this.hasMask = conf.hasMask;
    this.mask = maskFromJSON(conf.mask);
    // Our table size is at least 1024 whatever `buckets` says (that value is shown as configured):
    // chains stay short with many dynamic instances.
    let size = 1024;
    while (size < conf.buckets && size < 65536) size *= 2;
    this.table = new Array<Instance | null>(conf.hasMask ? size : 1).fill(null);
    this.tableMask = this.table.length - 1;
    this.fqTargetNs = conf.fqCodel.targetUs * 1000;
    this.fqIntervalNs = conf.fqCodel.intervalUs * 1000;
    this.redSlotNs = this.bwBps > 0 ? RED_AVG_PKT_SIZE * 8 * 1e9 / this.bwBps : 0;
  }
}

export class RtFlowset {
  sched: RtSched | null = null;
  readonly qsize: number;
  readonly qBytes: boolean;
  readonly plr: number;
  readonly hasMask: boolean;
  readonly mask: FlowKey;
  /** FreeBSD's fsk_mask: the flow mask OR the scheduler's mask (a queue's id shows both). */
  readonly qmask = new FlowKey();
  readonly table: Array<FlowQueue | null>;
  readonly tableMask: number;
  queueCount = 0;
  weight = 1;
  lmax = 1500;
  readonly red: boolean;
  readonly redGentle: boolean;
  readonly redEcn: boolean;
  readonly wq: number; readonly minTh: number; readonly maxTh: number; readonly maxP: number;
  readonly c1: number; readonly c2: number; readonly c3: number; readonly c4: number;
  constructor(readonly conf: FlowsetConf) {
    this.qsize = conf.qsize;
    this.qBytes = conf.qBytes;
    this.plr = conf.plr / PLR_ONE;
    this.hasMask = conf.hasMask;
    this.mask = maskFromJSON(conf.mask);
    let size = conf.hasMask ? 1024 : 64;
    while (size < conf.buckets && size < 65536) size *= 2;
    this.table = new Array<FlowQueue | null>(size).fill(null);
    this.tableMask = size - 1;
    const r = conf.red;
    this.red = r !== null;
    this.redGentle = r?.gentle ?? false;
    this.redEcn = r?.ecn ?? false;
    this.wq = r ? r.wq / (1 << SCALE_RED) : 0;
    this.minTh = r ? r.minTh : 0;
    this.maxTh = r ? r.maxTh : 0;
    this.maxP = r ? r.maxP / (1 << SCALE_RED) : 0;
    this.c1 = r ? (r.maxTh === r.minTh ? this.maxP : this.maxP / (r.maxTh - r.minTh)) : 0;
    this.c2 = this.c1 * this.minTh;
    this.c3 = r && r.maxTh > 0 ? (1 - this.maxP) / r.maxTh : 0;
    this.c4 = 1 - 2 * this.maxP;
  }
}

export interface EngineOptions {
  maxPackets: number;
  maxInstances: number;
  maxQueues: number;
  /** idle dynamic instances and queues older than this are removed (FreeBSD's expire). */
  gcIntervalNs: number;
  seed: number;
}

/** The data path. One per Dummynet; not thread-safe (one daemon thread owns it). */
export class Engine {
  // Packet slots.
  readonly maxPackets: number;
  private readonly pHandle: Int32Array;
  private readonly pLen: Int32Array;
  private readonly pRule: Int32Array;
  private readonly pNext: Int32Array;
  private readonly pOut: Float64Array;
  private readonly pEnq: Float64Array;
  private readonly pDropAtOut: Uint8Array;
  private freePkt = -1;
  waiting = 0;
  // Packets to hand back as drops (reconfiguration, fq_codel/codel drops, profile losses are flagged instead).
  private graveHead = -1;
  private graveTail = -1;
  // Flowsets by number (pipe N is N + 2*DN_MAX_ID).
  readonly fsTable: Array<RtFlowset | null> = new Array<RtFlowset | null>(3 * DN_MAX_ID).fill(null);
  readonly scheds = new Map<number, RtSched>();
  // Pools.
  private readonly maxInstances: number;
  private readonly maxQueues: number;
  private instanceCount = 0;
  private queueCount = 0;
  private freeInstances: Instance[] = [];
  private freeQueues: FlowQueue[] = [];
  private nextInstanceId = 1;
  // Event heap of instances keyed by their next event.
  /**
   * The time being processed (an arrival, a dequeueDue call, or a link event inside advance).
   * Kept in a field rather than passed around: a float argument to a call V8 does not inline is
   * boxed, i.e. allocated, and this path must not allocate per packet.
   */
  private now = 0.5;
  private pinned: Instance | null = null;
  private heap: Array<Instance | null>;
  private heapKeys = new Float64Array(64);
  private heapSize = 0;
  private lastGc = -Infinity;
  private readonly gcIntervalNs: number;
  // PRNG state (xorshift32), seedable so tests are reproducible.
  private rngState: number;
  ioFast = false;
  /** ECN: asked to set CE on a packet RED/CoDel would drop; true = marked (keep it). */
  ecnMark: ((handle: number) => boolean) | null = null;
  /** Counters by DROP code, plus totals. */
  readonly dropCounts = new Float64Array(DROP_NAMES.length);
  enqueued = 0;
  delivered = 0;
  tableFull = 0;
  /**
   * How late dequeueDue handed packets out (now − output time), in buckets: [0] under 1 µs, then
   * four per power of two (2^e·(1 + s/4) to 2^e·(1 + (s+1)/4) µs in [1 + 4e + s]: 32–40, 40–48,
   * 48–56, 56–64 µs...), the last one everything from 2^21 µs up (lateBucketBound). This is the
   * caller's wake-up error, which the engine cannot see otherwise (issue 12 §2: ≤ 50 µs).
   */
  readonly lateness = new Float64Array(LATE_BUCKETS);

  constructor(opts: EngineOptions) {
    assert(opts.maxPackets > 0 && opts.maxPackets <= 1 << 24, 'maxPackets out of range');
    this.maxPackets = opts.maxPackets;
    this.pHandle = new Int32Array(opts.maxPackets);
    this.pLen = new Int32Array(opts.maxPackets);
    this.pRule = new Int32Array(opts.maxPackets);
    this.pNext = new Int32Array(opts.maxPackets);
    this.pOut = new Float64Array(opts.maxPackets);
    this.pEnq = new Float64Array(opts.maxPackets);
    this.pDropAtOut = new Uint8Array(opts.maxPackets);
    for (let i = 0; i < opts.maxPackets; i++) this.pNext[i] = i + 1 < opts.maxPackets ? i + 1 : -1;
    this.freePkt = 0;
    this.maxInstances = opts.maxInstances;
    this.maxQueues = opts.maxQueues;
    this.heap = new Array<Instance | null>(64).fill(null);
    this.gcIntervalNs = opts.gcIntervalNs;
    this.rngState = (opts.seed >>> 0) || 0x2545f491;
  }

  /** Uniform in [0, 1). */
  random(): number {
    let x = this.rngState;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.rngState = x;
    return x / 4294967296;
  }

  // ---- configuration ---------------------------------------------------------------------

  /**
   * Installs a configuration. Schedulers whose configuration (and that of their flowsets) did not
   * change keep their instances, queues and waiting packets; the others are torn down and their
   * packets handed back by dequeueDue() with rule index -1.
   */
  install(scheds: SchedConf[], flowsets: FlowsetConf[]): void {
    const bySched = new Map<number, FlowsetConf[]>();
    for (const f of flowsets) {
      const list = bySched.get(f.schedNr) ?? [];
      list.push(f);
      bySched.set(f.schedNr, list);
    }
    const next = new Map<number, RtSched>();
    for (const sc of scheds) {
      const key = JSON.stringify([sc, bySched.get(sc.nr) ?? []]);
      const old = this.scheds.get(sc.nr);
      if (old && old.key === key) { next.set(sc.nr, old); continue; }
      next.set(sc.nr, new RtSched(sc, key));
    }
    for (const [nr, old] of this.scheds) if (next.get(nr) !== old) this.destroySched(old);
    this.scheds.clear();
    for (const [nr, s] of next) this.scheds.set(nr, s);
    // Flowsets: keep the objects of kept schedulers, build the rest.
    const keptFs = new Map<number, RtFlowset>();
    for (const fs of this.fsTable) if (fs && fs.sched && this.scheds.get(fs.sched.conf.nr) === fs.sched) keptFs.set(fs.conf.nr, fs);
    this.fsTable.fill(null);
    for (const f of flowsets) {
      let fs = keptFs.get(f.nr);
      if (!fs || JSON.stringify(fs.conf) !== JSON.stringify(f)) {
        fs = new RtFlowset(f);
        const s = this.scheds.get(f.schedNr) ?? null;
        fs.sched = s;
        fs.qmask.copyFrom(fs.mask);
        if (s && s.hasMask) orMask(fs.qmask, s.mask);
        if (s) {
          const eff = boundQueueParams(f, s.conf.type, [], false);
          fs.weight = eff.weight;
          fs.lmax = eff.lmax;
          s.fsList.push(fs);
        }
      }
      if (f.nr >= 0 && f.nr < this.fsTable.length) this.fsTable[f.nr] = fs;
    }
  }

  private destroySched(s: RtSched): void {
    for (let b = 0; b < s.table.length; b++) {
      let si = s.table[b] ?? null;
      while (si) { const n: Instance | null = si.hashNext; this.destroyInstance(si, true); si = n; }
      s.table[b] = null;
    }
    if (s.single) this.destroyInstance(s.single, true);
    s.single = null;
    s.instCount = 0;
  }

  /** Frees an instance, its queues and (to the graveyard) its packets. */
  private destroyInstance(si: Instance, toGrave: boolean): void {
    this.heapRemove(si);
    let q = si.queues;
    while (q) {
      const n: FlowQueue | null = q.siNext;
      this.moveQueuePackets(q, toGrave);
      if (q.fs) this.unlinkQueueFromFs(q);
      this.releaseQueue(q);
      q = n;
    }
    si.queues = null;
    if (si.main) { this.moveQueuePackets(si.main, toGrave); this.releaseQueue(si.main); si.main = null; }
    if (si.fq) {
      const f = si.fq;
      for (let i = 0; i < f.n; i++) {
        let p = f.head[i]!;
        while (p >= 0) { const n = this.pNext[p]!; this.disposePacket(p, toGrave); p = n; }
      }
      si.fq = null;
    }
    let p = si.dlHead;
    while (p >= 0) { const n = this.pNext[p]!; this.disposePacket(p, toGrave); p = n; }
    si.dlHead = si.dlTail = -1;
    si.sched = null;
    si.hashNext = null;
    si.eligible.clear(); si.waiting.clear();
    si.rrHead = si.rrTail = null;
    si.prioQ.fill(null); si.prioLo = si.prioHi = 0;
    this.instanceCount--;
    this.freeInstances.push(si);
  }

  private moveQueuePackets(q: FlowQueue, toGrave: boolean): void {
    let p = q.head;
    while (p >= 0) { const n = this.pNext[p]!; this.disposePacket(p, toGrave); p = n; }
    q.head = q.tail = -1;
    q.length = 0; q.lenBytes = 0;
  }

  private disposePacket(p: number, toGrave: boolean): void {
    if (toGrave) this.toGrave(p);
    else this.freePacket(p);
  }

  private toGrave(p: number): void {
    this.pNext[p] = -1;
    if (this.graveTail >= 0) this.pNext[this.graveTail] = p; else this.graveHead = p;
    this.graveTail = p;
  }

  private freePacket(p: number): void {
    this.pNext[p] = this.freePkt;
    this.freePkt = p;
    this.waiting--;
  }

  private releaseQueue(q: FlowQueue): void {
    if (q.si !== null && q.si.sched !== null && q.si.sched.typeCode === T_QFQ) q.si.qfq!.removeClass(q);
    q.fs = null; q.si = null; q.hashNext = null; q.siNext = null; q.listNext = null; q.inList = false;
    this.queueCount--;
    this.freeQueues.push(q);
  }

  private unlinkQueueFromFs(q: FlowQueue): void {
    const fs = q.fs!;
    let prev: FlowQueue | null = null;
    let c = fs.table[q.bucket] ?? null;
    while (c && c !== q) { prev = c; c = c.hashNext; }
    if (c) {
      if (prev) prev.hashNext = c.hashNext; else fs.table[q.bucket] = c.hashNext;
      fs.queueCount--;
    }
  }

  private newQueue(fs: RtFlowset | null, si: Instance): FlowQueue | null {
    const now = this.now;
    if (this.queueCount >= this.maxQueues) return null;
    const q = this.freeQueues.pop() ?? new FlowQueue();
    this.queueCount++;
    q.fs = fs; q.si = si;
    q.head = q.tail = -1;
    q.length = 0; q.lenBytes = 0; q.totPkts = 0; q.totBytes = 0; q.drops = 0;
    q.lastUse = now;
    q.weight = fs ? Math.max(fs.weight, 1) : 1;
    q.lmax = fs ? Math.max(fs.lmax, 1) : 1500;
    q.S = 0; q.F = 0; q.epoch = 0;
    q.qfqW = 0; q.qfqNext = null;
    if (si.sched !== null && si.sched.typeCode === T_QFQ && !si.qfq!.addClass(q, q.weight, q.lmax)) {
      // FreeBSD's qfq_new_queue: EINVAL when the weights of the instance's queues would pass QFQ_MAX_WSUM
      q.fs = null; q.si = null;
      this.queueCount--;
      this.freeQueues.push(q);
      return null;
    }
    q.quantum = (fs ? Math.max(fs.weight, 1) : 1) * (fs ? Math.max(fs.lmax, 64) : 1500);
    q.deficit = q.quantum;
    q.inList = false; q.listNext = null; q.hashNext = null; q.siNext = null;
    q.avg = 0; q.count = -1; q.qTime = now; q.redRandom = 0;
    return q;
  }

  private newInstance(s: RtSched, key: FlowKey): Instance | null {
    const now = this.now;
    if (this.instanceCount >= this.maxInstances) return null;
    const si = this.freeInstances.pop() ?? new Instance();
    this.instanceCount++;
    si.sched = s;
    si.id = this.nextInstanceId++;
    if (s.hasMask) si.fid.setMasked(key, s.mask); else si.fid.clear();
    si.hashNext = null; si.queues = null; si.main = null;
    // A new instance has been idle "forever" (FreeBSD zeroes idle_time), so burst applies in full.
    si.credit = 0; si.schedTime = now; si.idleTime = -Infinity; si.active = false; si.serveAt = 0;
    si.dlHead = si.dlTail = -1; si.heapIndex = -1; si.eventKey = Infinity;
    si.totPkts = 0; si.totBytes = 0; si.length = 0; si.lenBytes = 0; si.drops = 0; si.lastUse = now;
    si.V = 0; si.wsum = 0; si.epoch = 1;
    if (s.typeCode === T_QFQ) {
      if (si.qfq === null) {
        const st = new QfqSched();
        const inst = si;
        st.forEachClass = (f) => { for (let q = inst.queues; q; q = q.siNext) f(q); };
        si.qfq = st;
      }
      si.qfq.reset();
    }
    si.rrHead = si.rrTail = null; si.prioLo = si.prioHi = 0;
    si.fq = null;
    if (s.typeCode === T_FIFO || s.typeCode === T_FQCODEL) {
      const fs = s.fsList[0] ?? null;
      const m = this.newQueue(fs, si);
      if (!m) { this.instanceCount--; si.sched = null; this.freeInstances.push(si); return null; }
      si.main = m;
      if (s.hasMask) m.fid.copyFrom(si.fid); else m.fid.clear();
      if (s.typeCode === T_FQCODEL) si.fq = new FqFlows(s.conf.fqCodel.flows);
    }
    s.instCount++;
    return si;
  }

  private findInstance(s: RtSched, key: FlowKey): Instance | null {
    if (!s.hasMask) {
      if (s.single) return s.single;
      const si = this.newInstance(s, key);
      s.single = si;
      return si;
    }
    // FreeBSD's hash (the listing's BKT) spreads consecutive addresses poorly; mix it for our index.
    const b = (Math.imul(maskedFlowHash(key, s.mask), 0x9e3779b1) >>> 16) & s.tableMask;
    for (let si = s.table[b] ?? null; si; si = si.hashNext) if (si.fid.equalsMasked(key, s.mask)) return si;
    let si = this.newInstance(s, key);
    if (!si) { this.collect(this.now, true); si = this.newInstance(s, key); }
    if (!si) return null;
    si.bucket = b;
    si.hashNext = s.table[b] ?? null;
    s.table[b] = si;
    return si;
  }

  private findQueue(fs: RtFlowset, si: Instance, key: FlowKey): FlowQueue | null {
    const b = (Math.imul(maskedFlowHash(key, fs.qmask) ^ Math.imul(si.id, 0x85ebca6b), 0x9e3779b1) >>> 16) & fs.tableMask;
    for (let q = fs.table[b] ?? null; q; q = q.hashNext) if (q.si === si && q.fid.equalsMasked(key, fs.qmask)) return q;
    let q = this.newQueue(fs, si);
    if (!q) { this.collect(this.now, true); q = this.newQueue(fs, si); }
    if (!q) return null;
    q.fid.setMasked(key, fs.qmask);
    q.bucket = b;
    q.hashNext = fs.table[b] ?? null;
    fs.table[b] = q;
    fs.queueCount++;
    q.siNext = si.queues;
    si.queues = q;
    return q;
  }

  // ---- per packet ------------------------------------------------------------------------

  enqueue(fsNr: number, handle: number, len: number, key: FlowKey, ruleIndex: number, now: number): number {
    this.now = now;
    const fs = fsNr >= 0 && fsNr < this.fsTable.length ? this.fsTable[fsNr] : null;
    if (!fs) return this.refuse(DROP.NO_SUCH_FLOWSET);
    const s = fs.sched;
    if (!s) return this.refuse(DROP.NO_SCHEDULER);
    const si = this.findInstance(s, key);
    if (!si) { this.tableFull++; return this.refuse(DROP.TABLE_FULL); }
    // Events of this instance that are due happen before this arrival.
    if (si.active && si.serveAt <= now) { this.advance(si); this.heapUpdate(si); }
    si.lastUse = now;
    let q: FlowQueue;
    const type = s.typeCode;
    if (type === T_FIFO || type === T_FQCODEL) {
      q = si.main!;
    } else {
      // A forced collection (full queue table) must not free the instance we are working on.
      this.pinned = si;
      const found = this.findQueue(fs, si, key);
      this.pinned = null;
      if (!found) { this.tableFull++; si.totPkts++; si.totBytes += len; si.drops++; return this.refuse(DROP.TABLE_FULL); }
      q = found;
      if (type === T_PRIO) {
        // FreeBSD's prio keeps one queue per priority level: later queues of a level feed the first.
        const prio = fs.weight;
        const cur = si.prioQ[prio];
        if (cur) q = cur;
      }
    }
    q.lastUse = now;
    if (this.freePkt < 0) {
      q.totPkts++; q.totBytes += len; q.drops++;
      si.totPkts++; si.totBytes += len; si.drops++;
      return this.refuse(DROP.POOL_FULL);
    }
    const p = this.freePkt;
    this.freePkt = this.pNext[p]!;
    this.waiting++;
    this.pHandle[p] = handle; this.pLen[p] = len; this.pRule[p] = ruleIndex; this.pNext[p] = -1;
    this.pEnq[p] = now; this.pDropAtOut[p] = 0; this.pOut[p] = 0;
    const r = type === T_FQCODEL ? this.fqEnqueue(si, q, p, key, len) : this.dnEnqueue(fs, si, q, p, len);
    if (r !== 0) return this.refuse(r);
    this.enqueued++;
    switch (type) {
      case T_WF2Q: if (q.length === 1) this.wfActivate(si, q); break;
      case T_QFQ: if (q.length === 1) si.qfq!.activate(q, this.pLen[q.head]!); break;
      case T_RR: if (!q.inList) this.rrAppend(si, q); break;
      case T_PRIO: {
        const prio = fs.weight;
        if (si.prioQ[prio] === null) {
          si.prioQ[prio] = q;
          if (prio < 32) si.prioLo |= 1 << prio; else si.prioHi |= 1 << (prio - 32);
        }
        break;
      }
      default: break;
    }
    if (si.active) return 0;
    if (si.idleTime < now) {
      // First packet after idle: FreeBSD's initial allowance (io_fast, burst).
      // FreeBSD resets the credit here and adds min(burst, idle·bw), but only on the first packet
      // of a later tick: packets within one tick keep the credit left over. In continuous time
      // every gap between two packets is "a later tick", so a reset would spend the whole burst
      // on the first packet of a paced sender (seen through kipfw: a 20 Mbit/s sender into
      // `bw 1Mbit/s burst 100K` got ~1 frame through instead of ~100). So the credit left when the
      // link went idle is kept and refilled at bw, up to the burst: a token bucket of depth
      // `burst`, the man page's "up to size bytes bypass the scheduler". Without burst the
      // credit starts from 0 as before (a lone packet pays its own transmission time).
      const bw = s.bwBps;
      si.schedTime = now;
      let credit = 0;
      if (s.burstBits > 0) {
        const left = si.credit > 0 ? si.credit : 0;
        const refill = left + (now - si.idleTime) * bw / 1e9;
        credit = refill < s.burstBits ? refill : s.burstBits;
      }
      si.credit = credit + (this.ioFast ? bw * IO_FAST_CREDIT_NS / 1e9 : 0);
    }
    this.serve(si);
    this.heapUpdate(si);
    return 0;
  }

  private refuse(code: number): number {
    this.dropCounts[code]!++;
    return code;
  }

  /** dn_enqueue: counters, then plr, RED, the queue limit; appends on success. */
  private dnEnqueue(fs: RtFlowset, si: Instance, q: FlowQueue, p: number, len: number): number {
    q.totPkts++; q.totBytes += len;
    si.totPkts++; si.totBytes += len;
    let code = 0;
    if (fs.plr > 0 && this.random() < fs.plr) code = DROP.PLR;
    else if (fs.red && this.redDrops(fs, q, len)) {
      if (!fs.redEcn || !this.ecnMark || !this.ecnMark(this.pHandle[p]!)) code = DROP.RED;
    }
    if (code === 0) {
      if (fs.qBytes) { if (q.lenBytes > fs.qsize) code = DROP.QUEUE_FULL; }
      else if (q.length >= fs.qsize) code = DROP.QUEUE_FULL;
    }
    if (code !== 0) {
      q.drops++; si.drops++;
      this.freePacket(p);
      return code;
    }
    if (q.tail >= 0) this.pNext[q.tail] = p; else q.head = p;
    q.tail = p;
    q.length++; q.lenBytes += len;
    si.length++; si.lenBytes += len;
    return 0;
  }

  private redDrops(fs: RtFlowset, q: FlowQueue, len: number): boolean {
    const now = this.now;
    const qSize = fs.qBytes ? q.lenBytes : q.length;
    if (qSize !== 0) q.avg += (qSize - q.avg) * fs.wq;
    else if (q.avg !== 0) {
      const slot = fs.sched!.redSlotNs;
      q.avg = slot > 0 ? q.avg * Math.pow(1 - fs.wq, (now - q.qTime) / slot) : 0;
    }
    let pb = 0;
    if (q.avg < fs.minTh) { q.count = -1; return false; }
    if (q.avg >= fs.maxTh) {
      if (fs.redEcn) return true;
      if (fs.redGentle) pb = fs.c3 * q.avg - fs.c4;
      else { q.count = -1; return true; }
    } else if (q.avg > fs.minTh) {
      if (fs.redEcn) return true;
      pb = fs.c1 * q.avg - fs.c2;
    }
    if (fs.qBytes) pb = pb * len / RED_MAX_PKT_SIZE;
    if (++q.count === 0) q.redRandom = this.random();
    else if (pb * q.count > q.redRandom) {
      q.count = 0;
      q.redRandom = this.random();
      return true;
    }
    return false;
  }

  /** Takes the head packet of a queue (dn_dequeue). */
  private dnDequeue(q: FlowQueue): number {
    const now = this.now;
    const p = q.head;
    q.head = this.pNext[p]!;
    if (q.head < 0) { q.tail = -1; q.qTime = now; }
    this.pNext[p] = -1;
    const len = this.pLen[p]!;
    q.length--; q.lenBytes -= len;
    const si = q.si!;
    si.length--; si.lenBytes -= len;
    return p;
  }

  // ---- schedulers ------------------------------------------------------------------------

  /** WF2Q+: a queue becomes backlogged. */
  private wfActivate(si: Instance, q: FlowQueue): void {
    if (q.epoch !== si.epoch) { q.F = 0; q.epoch = si.epoch; }
    q.S = q.F > si.V ? q.F : si.V;
    q.F = q.S + this.pLen[q.head]! / q.weight;
    si.wsum += q.weight;
    if (q.S <= si.V) si.eligible.push(q.F, q); else si.waiting.push(q.S, q);
  }

  private wfDequeue(si: Instance): number {
    if (si.eligible.size === 0) {
      if (si.waiting.size === 0) return -1;
      const minS = si.waiting.topKey();
      if (minS > si.V) si.V = minS;
    }
    while (si.waiting.size > 0 && si.waiting.topKey() <= si.V) {
      const w = si.waiting.pop();
      si.eligible.push(w.F, w);
    }
    const q = si.eligible.pop();
    const p = this.dnDequeue(q);
    si.V += this.pLen[p]! / si.wsum;
    if (q.head >= 0) {
      q.S = q.F;
      q.F = q.S + this.pLen[q.head]! / q.weight;
      if (q.S <= si.V) si.eligible.push(q.F, q); else si.waiting.push(q.S, q);
    } else {
      si.wsum -= q.weight;
      if (si.wsum <= 0) {
        // All idle: restart virtual time; stale finish tags are forgotten via the epoch.
        si.wsum = 0; si.V = 0; si.epoch++;
      }
    }
    return p;
  }

  private rrAppend(si: Instance, q: FlowQueue): void {
    q.inList = true;
    q.listNext = null;
    q.deficit = q.quantum;
    if (si.rrTail) si.rrTail.listNext = q; else si.rrHead = q;
    si.rrTail = q;
  }

  /** Deficit round robin as dn_sched_rr: a queue whose head does not fit its credit gets a quantum and goes last. */
  private rrDequeue(si: Instance): number {
    for (;;) {
      const q = si.rrHead;
      if (!q) return -1;
      if (q.head < 0) {
        si.rrHead = q.listNext;
        if (!si.rrHead) si.rrTail = null;
        q.inList = false; q.listNext = null;
        continue;
      }
      const len = this.pLen[q.head]!;
      if (len > q.deficit) {
        q.deficit += q.quantum;
        if (q.listNext) {
          si.rrHead = q.listNext;
          q.listNext = null;
          si.rrTail!.listNext = q;
          si.rrTail = q;
        }
        continue;
      }
      q.deficit -= len;
      const p = this.dnDequeue(q);
      if (q.head < 0) {
        si.rrHead = q.listNext;
        if (!si.rrHead) si.rrTail = null;
        q.inList = false; q.listNext = null;
      }
      return p;
    }
  }

  private prioDequeue(si: Instance): number {
    let prio: number;
    if (si.prioLo !== 0) prio = 31 - Math.clz32(si.prioLo & -si.prioLo);
    else if (si.prioHi !== 0) prio = 32 + 31 - Math.clz32(si.prioHi & -si.prioHi);
    else return -1;
    const q = si.prioQ[prio]!;
    const p = this.dnDequeue(q);
    if (q.head < 0) {
      si.prioQ[prio] = null;
      if (prio < 32) si.prioLo &= ~(1 << prio); else si.prioHi &= ~(1 << (prio - 32));
    }
    return p;
  }

  private fqEnqueue(si: Instance, main: FlowQueue, p: number, key: FlowKey, len: number): number {
    const s = si.sched!;
    const f = si.fq!;
    main.totPkts++; main.totBytes += len;
    si.totPkts++; si.totBytes += len;
    const idx = (Math.imul(maskedFlowHash(key, ALL_MASK), 0x9e3779b1) >>> 0) % f.n;
    if (f.tail[idx]! >= 0) this.pNext[f.tail[idx]!] = p; else f.head[idx] = p;
    f.tail[idx] = p;
    f.length[idx]!++; f.bytes[idx]! += len;
    main.length++; main.lenBytes += len;
    si.length++; si.lenBytes += len;
    if (f.list[idx] === 0) {
      f.list[idx] = 1;
      f.deficit[idx] = s.conf.fqCodel.quantum;
      this.fqListAppend(f, idx, true);
    }
    if (si.length > s.conf.fqCodel.limit) {
      // Over the limit: drop the head packet of the fattest flow.
      let fat = 0;
      for (let i = 1; i < f.n; i++) if (f.bytes[i]! > f.bytes[fat]!) fat = i;
      const d = this.fqPop(si, main, fat);
      main.drops++; si.drops++;
      this.dropCounts[DROP.FQ_LIMIT]!++;
      this.toGrave(d);
    }
    return 0;
  }

  private fqListAppend(f: FqFlows, idx: number, isNew: boolean): void {
    f.next[idx] = -1;
    if (isNew) {
      if (f.newTail >= 0) f.next[f.newTail] = idx; else f.newHead = idx;
      f.newTail = idx;
    } else {
      if (f.oldTail >= 0) f.next[f.oldTail] = idx; else f.oldHead = idx;
      f.oldTail = idx;
    }
  }

  private fqPop(si: Instance, main: FlowQueue, idx: number): number {
    const f = si.fq!;
    const p = f.head[idx]!;
    f.head[idx] = this.pNext[p]!;
    if (f.head[idx]! < 0) f.tail[idx] = -1;
    this.pNext[p] = -1;
    const len = this.pLen[p]!;
    f.length[idx]!--; f.bytes[idx]! -= len;
    main.length--; main.lenBytes -= len;
    si.length--; si.lenBytes -= len;
    return p;
  }

  /** CoDel's "should drop" on the packet just taken from flow idx. */
  private codelOk(si: Instance, idx: number, p: number): boolean {
    const now = this.now;
    const s = si.sched!;
    const f = si.fq!;
    const sojourn = now - this.pEnq[p]!;
    if (sojourn < s.fqTargetNs || f.bytes[idx]! <= 1514) { f.firstAbove[idx] = 0; return false; }
    if (f.firstAbove[idx] === 0) { f.firstAbove[idx] = now + s.fqIntervalNs; return false; }
    return now >= f.firstAbove[idx]!;
  }

  /** CoDel dequeue of one flow: may drop (to the graveyard) or mark packets, returns one or -1. */
  private codelDequeue(si: Instance, main: FlowQueue, idx: number): number {
    const now = this.now;
    const s = si.sched!;
    const f = si.fq!;
    if (f.head[idx]! < 0) { f.firstAbove[idx] = 0; return -1; }
    let p = this.fqPop(si, main, idx);
    let drop = this.codelOk(si, idx, p);
    const interval = s.fqIntervalNs;
    const ecn = s.conf.fqCodel.ecn && this.ecnMark !== null;
    if (f.dropping[idx]) {
      if (!drop) f.dropping[idx] = 0;
      while (f.dropping[idx] && now >= f.dropNext[idx]!) {
        f.count[idx]!++;
        if (ecn && this.ecnMark!(this.pHandle[p]!)) { f.dropNext[idx] = f.dropNext[idx]! + interval / Math.sqrt(f.count[idx]!); break; }
        main.drops++; si.drops++;
        this.toGrave(p);
        if (f.head[idx]! < 0) { f.dropping[idx] = 0; return -1; }
        p = this.fqPop(si, main, idx);
        drop = this.codelOk(si, idx, p);
        if (!drop) f.dropping[idx] = 0;
        else f.dropNext[idx] = f.dropNext[idx]! + interval / Math.sqrt(f.count[idx]!);
      }
    } else if (drop) {
      const marked = ecn && this.ecnMark!(this.pHandle[p]!);
      if (!marked) {
        main.drops++; si.drops++;
        this.toGrave(p);
        p = f.head[idx]! >= 0 ? this.fqPop(si, main, idx) : -1;
      }
      f.dropping[idx] = 1;
      const delta = f.count[idx]! - f.lastCount[idx]!;
      f.count[idx] = delta > 1 && now - f.dropNext[idx]! < 16 * interval ? delta : 1;
      f.lastCount[idx] = f.count[idx]!;
      f.dropNext[idx] = now + interval / Math.sqrt(f.count[idx]!);
    }
    return p;
  }

  private fqDequeue(si: Instance): number {
    const f = si.fq!;
    const main = si.main!;
    const quantum = si.sched!.conf.fqCodel.quantum;
    for (;;) {
      let idx: number;
      let fromNew: boolean;
      if (f.newHead >= 0) { idx = f.newHead; fromNew = true; }
      else if (f.oldHead >= 0) { idx = f.oldHead; fromNew = false; }
      else return -1;
      // Unlink idx from the front of its list.
      if (fromNew) { f.newHead = f.next[idx]!; if (f.newHead < 0) f.newTail = -1; }
      else { f.oldHead = f.next[idx]!; if (f.oldHead < 0) f.oldTail = -1; }
      if (f.deficit[idx]! <= 0) {
        f.deficit[idx]! += quantum;
        this.fqListAppend(f, idx, false);
        continue;
      }
      const p = this.codelDequeue(si, main, idx);
      if (p < 0) {
        if (fromNew && f.oldHead >= 0) this.fqListAppend(f, idx, false);
        else f.list[idx] = 0;
        continue;
      }
      f.deficit[idx]! -= this.pLen[p]!;
      // Put the flow back at the front of the list it came from.
      if (fromNew) { f.next[idx] = f.newHead; f.newHead = idx; if (f.newTail < 0) f.newTail = idx; }
      else { f.next[idx] = f.oldHead; f.oldHead = idx; if (f.oldTail < 0) f.oldTail = idx; }
      return p;
    }
  }

  private schedDequeue(si: Instance): number {
    switch (si.sched!.typeCode) {
      case T_FIFO: { const q = si.main!; return q.head >= 0 ? this.dnDequeue(q) : -1; }
      case T_WF2Q: return this.wfDequeue(si);
      case T_QFQ: {
        const st = si.qfq!;
        const q = st.next() as FlowQueue | null;
        if (q === null) return -1;
        const p = this.dnDequeue(q);
        st.served(q, this.pLen[p]!, q.head >= 0 ? this.pLen[q.head]! : -1);
        return p;
      }
      case T_RR: return this.rrDequeue(si);
      case T_PRIO: return this.prioDequeue(si);
      default: return this.fqDequeue(si);
    }
  }

  // ---- link ------------------------------------------------------------------------------

  /** serve_sched: spend credit on packets, stamp their output time, re-arm when credit runs out. */
  private serve(si: Instance): void {
    const now = this.now;
    const s = si.sched!;
    const bw = s.bwBps;
    if (bw > 0) si.credit += (now - si.schedTime) * bw / 1e9;
    else si.credit = 0;
    si.schedTime = now;
    si.active = false;
    let last = -1;
    const out = now + s.delayNs;
    while (si.credit >= -CREDIT_EPS) {
      const p = this.schedDequeue(si);
      if (p < 0) break;
      if (bw > 0) {
        let bits = this.pLen[p]! * 8;
        if (s.profile) {
          const idx = Math.floor(this.random() * s.profile.length);
          bits += s.profile[idx]! * bw / 1000;
          if (idx >= s.lossLevel) this.pDropAtOut[p] = 1;
        }
        si.credit -= bits;
      }
      this.pOut[p] = out;
      if (si.dlTail >= 0) this.pNext[si.dlTail] = p; else si.dlHead = p;
      si.dlTail = p;
      last = p;
    }
    if (si.credit >= -CREDIT_EPS) {
      si.idleTime = now;
    } else {
      const t = Math.ceil(-si.credit * 1e9 / bw);
      if (last >= 0) this.pOut[last] = this.pOut[last]! + t;
      si.active = true;
      si.serveAt = now + t;
    }
    // The caller updates the event heap once, after possibly several serves.
  }

  /** Processes this instance's link events due by `now`, each at its own time. */
  private advance(si: Instance): void {
    const limit = this.now;
    let guard = 0;
    while (si.active && si.serveAt <= limit) {
      // The link event happens at its own time: the scheduler dequeues "at" serveAt.
      this.now = si.serveAt;
      this.serve(si);
      assert(++guard < 1 << 24, 'dummynet: link events do not advance');
    }
    this.now = limit;
  }

  // ---- output ----------------------------------------------------------------------------

  nextEventNs(): number {
    if (this.graveHead >= 0) return 0;
    return this.heapSize > 0 ? this.heapKeys[0]! : Infinity;
  }

  dequeueDue(now: number, handles: Int32Array, rules: Int32Array, max = handles.length): number {
    this.now = now;
    const cap = Math.min(handles.length, rules.length, max);
    let n = 0;
    while (this.graveHead >= 0 && n < cap) {
      const p = this.graveHead;
      this.graveHead = this.pNext[p]!;
      if (this.graveHead < 0) this.graveTail = -1;
      handles[n] = this.pHandle[p]!; rules[n] = -1; n++;
      this.freePacket(p);
    }
    while (n < cap && this.heapSize > 0) {
      if (this.heapKeys[0]! > now) break;
      const si = this.heap[0]!;
      if (si.active && si.serveAt <= now) this.advance(si);
      while (si.dlHead >= 0 && n < cap) {
        const p = si.dlHead;
        if (this.pOut[p]! > now) break;
        si.dlHead = this.pNext[p]!;
        if (si.dlHead < 0) si.dlTail = -1;
        handles[n] = this.pHandle[p]!;
        rules[n] = this.pDropAtOut[p] ? -1 : this.pRule[p]!;
        n++;
        this.delivered++;
        const lateUs = (now - this.pOut[p]!) / 1000;
        let b = 0;
        if (lateUs >= 1) {
          if (lateUs >= 2097152) b = LATE_BUCKETS - 1;
          else {
            const e = 31 - Math.clz32(lateUs);
            b = 1 + 4 * e + (((lateUs / (1 << e)) - 1) * 4 | 0);
          }
        }
        this.lateness[b]!++;
        this.freePacket(p);
      }
      this.heapUpdate(si);
    }
    if (now - this.lastGc >= this.gcIntervalNs) this.collect(now, false);
    return n;
  }

  /** Drops every waiting packet through `release` and forgets all dynamic state (an interface went away). */
  flushAll(release: (handle: number) => void): void {
    for (const s of this.scheds.values()) this.destroySched(s);
    let p = this.graveHead;
    while (p >= 0) { const n = this.pNext[p]!; release(this.pHandle[p]!); this.freePacket(p); p = n; }
    this.graveHead = this.graveTail = -1;
    // destroySched sent packets to the graveyard above only when toGrave; hand them out too.
    p = this.graveHead;
    assert(p < 0, 'graveyard drained');
  }

  /**
   * Garbage collection of idle dynamic objects (FreeBSD's expire): masked instances and queues
   * with nothing queued, nothing in flight, unused for gcIntervalNs (or at all when `force`).
   */
  collect(now: number, force: boolean): void {
    this.lastGc = now;
    const limit = force ? Infinity : now - this.gcIntervalNs;
    for (const s of this.scheds.values()) {
      // Queues first (they hang off flowset tables).
      for (const fs of s.fsList) {
        for (let b = 0; b < fs.table.length; b++) {
          let prev: FlowQueue | null = null;
          let q = fs.table[b] ?? null;
          while (q) {
            const next: FlowQueue | null = q.hashNext;
            if (q.length === 0 && !q.inList && q.lastUse <= limit && !this.queueInScheduler(q)) {
              if (prev) prev.hashNext = next; else fs.table[b] = next;
              fs.queueCount--;
              this.unlinkQueueFromInstance(q);
              q.fs = null;
              this.releaseQueue(q);
            } else prev = q;
            q = next;
          }
        }
      }
      if (!s.hasMask) continue;
      for (let b = 0; b < s.table.length; b++) {
        let prev: Instance | null = null;
        let si = s.table[b] ?? null;
        while (si) {
          const next: Instance | null = si.hashNext;
          if (si.length === 0 && si.dlHead < 0 && !si.active && si.queues === null && si.lastUse <= limit && si !== this.pinned) {
            if (prev) prev.hashNext = next; else s.table[b] = next;
            s.instCount--;
            this.destroyInstance(si, false);
          } else prev = si;
          si = next;
        }
      }
    }
  }

  private queueInScheduler(q: FlowQueue): boolean {
    const si = q.si!;
    for (let i = 0; i < 64; i++) if (si.prioQ[i] === q) return true;
    return false;
  }

  private unlinkQueueFromInstance(q: FlowQueue): void {
    const si = q.si!;
    let prev: FlowQueue | null = null;
    let c = si.queues;
    while (c && c !== q) { prev = c; c = c.siNext; }
    if (c) { if (prev) prev.siNext = c.siNext; else si.queues = c.siNext; }
  }

  // ---- event heap ------------------------------------------------------------------------

  private heapUpdate(si: Instance): void {
    let key = si.active ? si.serveAt : Infinity;
    if (si.dlHead >= 0) { const o = this.pOut[si.dlHead]!; if (o < key) key = o; }
    si.eventKey = key;
    if (key === Infinity) { this.heapRemove(si); return; }
    let i = si.heapIndex;
    if (i < 0) {
      if (this.heapSize === this.heap.length) {
        for (let k = 0, n = this.heap.length; k < n; k++) this.heap.push(null);
        const keys = new Float64Array(this.heap.length);
        keys.set(this.heapKeys);
        this.heapKeys = keys;
      }
      i = this.heapSize++;
    }
    // Keys live in a typed array beside the instances so sifting does not chase pointers.
    if (i > 0 && this.heapKeys[(i - 1) >> 1]! > key) this.siftUp(i, si, key);
    else this.siftDown(i, si, key);
  }

  private heapRemove(si: Instance): void {
    const i = si.heapIndex;
    if (i < 0) return;
    si.heapIndex = -1;
    const n = --this.heapSize;
    const last = this.heap[n]!;
    const lastKey = this.heapKeys[n]!;
    this.heap[n] = null;
    if (last === si) return;
    if (i > 0 && this.heapKeys[(i - 1) >> 1]! > lastKey) this.siftUp(i, last, lastKey);
    else this.siftDown(i, last, lastKey);
  }

  /** Moves x (key k) up from the hole at i. */
  private siftUp(i: number, x: Instance, k: number): void {
    const h = this.heap, keys = this.heapKeys;
    while (i > 0) {
      const pi = (i - 1) >> 1;
      const pk = keys[pi]!;
      if (pk <= k) break;
      const p = h[pi]!;
      h[i] = p; keys[i] = pk; p.heapIndex = i; i = pi;
    }
    h[i] = x; keys[i] = k; x.heapIndex = i;
  }

  /** Moves x (key k) down from the hole at i. */
  private siftDown(i: number, x: Instance, k: number): void {
    const h = this.heap, keys = this.heapKeys;
    const n = this.heapSize;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let ck = keys[c]!;
      if (c + 1 < n && keys[c + 1]! < ck) { c++; ck = keys[c]!; }
      if (ck >= k) break;
      const cc = h[c]!;
      h[i] = cc; keys[i] = ck; cc.heapIndex = i; i = c;
    }
    h[i] = x; keys[i] = k; x.heapIndex = i;
  }

  // ---- listing ---------------------------------------------------------------------------

  /** Instances of scheduler nr in bucket order (for show). */
  instancesOf(nr: number): Instance[] {
    const s = this.scheds.get(nr);
    if (!s) return [];
    if (!s.hasMask) return s.single ? [s.single] : [];
    const out: Instance[] = [];
    for (const head of s.table) for (let si = head; si; si = si.hashNext) out.push(si);
    return out;
  }

  /** Queues of flowset nr in bucket order (for show). */
  queuesOf(nr: number): FlowQueue[] {
    const fs = this.fsTable[nr];
    if (!fs) return [];
    const out: FlowQueue[] = [];
    for (const head of fs.table) for (let q = head; q; q = q.hashNext) out.push(q);
    return out;
  }

  instanceCountOf(nr: number): number {
    const s = this.scheds.get(nr);
    if (!s) return 0;
    return s.hasMask ? s.instCount : s.single ? 1 : 0;
  }

  stats(): { waiting: number; instances: number; queues: number; heap: number } {
    return { waiting: this.waiting, instances: this.instanceCount, queues: this.queueCount, heap: this.heapSize };
  }
}
