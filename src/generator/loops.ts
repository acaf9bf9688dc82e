/**
 * The per-thread bodies of pkt-gen: tx/txseq, rx/rxseq, ping, pong. Each works on the rings of
 * one open Port, in batches, sleeping in port.poll() when the rings are full (tx) or empty (rx),
 * and publishes its counters in a shared Float64Array that the main thread reads.
 *
 * Hot loops touch slots and buffers through the address space's typed arrays directly: no
 * allocation and no per-packet calls beyond inlinable helpers. TX buffers are filled from the
 * template once (copyWithin from an extra buffer holding it) and refilled only when a slot comes
 * back with another buffer; per packet only what changes is written (addresses and ports with
 * ranges, the sequence number, the ping stamp) with checksums recomputed arithmetically.
 */
import { fail } from '../errors.js';
import { clock, monotonicMs, readClock, readRealClock, realClock } from '../native/index.js';
import { POLLIN, POLLOUT, POLLERR, type Port } from '../ports/port.js';
import type { Ring } from '../rings/ring.js';
import { AddrWalker } from './addr.js';
import type { GenConfig } from './config.js';
import { FrameTemplate, PING_COUNTER_OFF, PING_MIN_FRAME, PING_TS_OFF, SEQ_OFF, UDP_OFF, get32, put16, put32, sumOfAddrs, swapForReply } from './frame.js';
import { RateLimiter, clipBurst } from './rate.js';
// The loops stamp times as (readRealClock(), realClock[0]!): a value read from a Float64Array is
// never boxed, while nowMs() (a function returning a double) made a 16-byte heap number a call
// wherever V8 did not inline it, as in rxLoop: at -R 5M a receiver made ~1.2 MB/s of garbage,
// a scavenge (0.2-0.5 ms, a 1024-slot ring holds 0.2 ms) every 1.6 s.
import * as S from './stats.js';
import { hexDump } from './dump.js';
import type { CpuWaitMeter } from './cpuwait.js';
import { fillConstant, slotAfter, sumLengths } from './slots.js';
import { SLOT_WORDS, SLOT_WORD_BUF_IDX, slotLenAtWord, setSlotLenAtWord, setSlotFlagsAtWord } from '../rings/slot.js';

/** How long one poll may sleep before the stop flag is looked at again. */
const POLL_SLICE_MS = 100;
/** -W: idle time after which rx/pong stop. */
const IDLE_EXIT_MS = 1000;
/** How long tx waits at the end for the peer to take what is still in its rings. */
const DRAIN_MS = 1000;
/** rx: how often (at most) the thread's CPU wait is sampled, to find its longest stall. */
const CPU_WAIT_SAMPLE_MS = 2;
/**
 * A receiver on a CPU reserved for it (src/ports/placement.ts) spins this long in poll before sleeping
 * while traffic comes fast enough to fill its ring within RING_FILL_FAST_MS: sleeping between
 * batches, each wake-up of a halted vCPU took long enough that an ordinary receiver at -R 2M
 * lost 0.08-0.24% of 3 M frames; spinning up to 2 ms, none in five runs at 2 and 2.35 Mpps (the CPU is its own, so
 * the spin takes it from nobody of ours; slower traffic gets Port.pollSpinUs's default).
 */
const RESERVED_SPIN_US = 2000;
const RING_FILL_FAST_MS = 5;
/** How often (ms of traffic) a receiver on a reserved CPU re-estimates the incoming rate. */
const RATE_WINDOW_MS = 10;

/**
 * The waits and periods of rxLoop. A run uses RUN_TIMES; the receiver's warm-up (job.ts) runs the
 * same loop with every period near zero, so that each of its branches has run (and V8 has seen
 * it) before traffic comes: a branch first taken under traffic sends the optimized loop back to
 * the interpreter until V8 compiles it again.
 */
export interface LoopTimes {
  /** How long one poll may sleep before the stop flag is looked at again, µs. */
  pollSliceUs: number;
  /** Idle time after which the loop ends once traffic came, ms (-1: -W's IDLE_EXIT_MS, or never). */
  idleExitMs: number;
  /** The spin of a receiver on a reserved CPU while traffic is fast, µs. */
  reservedSpinUs: number;
  /** How often the incoming rate is re-estimated (reserved CPU), ms of traffic. */
  rateWindowMs: number;
  /** How often (at most) the receiver's CPU wait is sampled, ms. */
  cpuWaitSampleMs: number;
}

/** (Integers only: a field holding a double in one object and not in the other gave them different maps.) */
export const RUN_TIMES: LoopTimes = {
  pollSliceUs: POLL_SLICE_MS * 1000, idleExitMs: -1, reservedSpinUs: RESERVED_SPIN_US, rateWindowMs: RATE_WINDOW_MS, cpuWaitSampleMs: CPU_WAIT_SAMPLE_MS,
};
/** ping: how long to wait for the replies of one batch. */
const PING_TIMEOUT_MS = 1000;

export interface LoopArgs {
  port: Port;
  cfg: GenConfig;
  /** This worker's share of -n (0: no limit) and -R (0: no limit). */
  count: number;
  rate: number;
  /** Counters of this worker (STATS_WORDS entries). */
  c: Float64Array;
  stop: Int32Array;
  /** Seed for random addresses. */
  seed: number;
  log: (line: string) => void;
  /** This thread's wait for a CPU (rx samples it to find its longest stall). */
  cpuWait: CpuWaitMeter;
  /** The thread runs on a CPU reserved for it (src/ports/placement.ts). */
  reserved: boolean;
  /** rxLoop's waits and periods (RUN_TIMES but in the warm-up). */
  times: LoopTimes;
}

/**
 * port.poll() with a short busy phase first: before sleeping on the futex, look again (one sync
 * each time) for up to `spinUs` microseconds. A peer on another core usually makes room or
 * delivers within a few microseconds, far sooner than a sleep/wake round trip; with spinUs 0 this
 * is port.poll().
 */
export function pollSpin(port: Port, events: number, timeoutMs: number, spinUs: number): number {
  let rev = port.pollOnce(events);
  if ((rev & (events | POLLERR)) !== 0 || spinUs <= 0) return (rev & (events | POLLERR)) !== 0 ? rev : port.poll(events, timeoutMs);
  readClock();
  const until = clock[0]! + spinUs * 1e-3; // (a double factor: see Port.poll)
  do {
    rev = port.pollOnce(events);
    if ((rev & (events | POLLERR)) !== 0) return rev;
    readClock();
  } while (clock[0]! < until);
  return port.poll(events, timeoutMs);
}

function stopped(stop: Int32Array): boolean {
  return Atomics.load(stop, 0) !== 0;
}

function checkPoll(rev: number, port: Port): void {
  if ((rev & POLLERR) !== 0) fail('EIO', `poll on ${port.spec} reported an error (POLLERR)`);
}

/** Puts the template somewhere in the address space and returns its offset there. */
function placeTemplate(port: Port, tpl: FrameTemplate): number {
  const head = port.bufsHead;
  if (port.extraBuffers < 1 || head < 2) fail('ENOMEM', `${port.spec}: no extra buffer for the frame template`);
  const at = port.bufOffset(head);
  port.mem.u8.set(tpl.bytes, at);
  return at;
}

function maxBufSize(rings: Ring[]): number {
  let m = Infinity;
  for (const r of rings) m = Math.min(m, r.bufSize);
  return m;
}

/** tx and txseq. */
export function txLoop(a: LoopArgs, withSeq: boolean): void {
  const { port, cfg, c, stop } = a;
  const rings = port.txRings;
  if (rings.length === 0) fail('EINVAL', `${port.spec}: no TX rings bound (opened with /R?)`);
  const size = cfg.size;
  const bufSize = maxBufSize(rings);
  if (size > bufSize) fail('EINVAL', `-l ${size}: frames longer than the port's ${bufSize}-byte buffers need fragments, which pkt-gen here does not send`);
  const tpl = new FrameTemplate({
    size, srcMac: cfg.srcMac, dstMac: cfg.dstMac, srcIp: cfg.src.ipStart, dstIp: cfg.dst.ipStart,
    sport: cfg.src.port0, dport: cfg.dst.port0, variableBytes: withSeq ? 4 : 0,
  });
  const walker = new AddrWalker(cfg.src, cfg.dst, cfg.randomSrc, cfg.randomDst, a.seed);
  const patchAddr = walker.varies;
  // nothing changes from one frame to the next: buffers are filled once, then only lengths set
  const constant = !patchAddr && !withSeq;
  const addrSum = sumOfAddrs(cfg.src.ipStart, cfg.dst.ipStart, cfg.src.port0, cfg.dst.port0);
  const tplAt = placeTemplate(port, tpl);
  const tplEnd = tplAt + size;
  const u8 = port.mem.u8, u32 = port.mem.u32, u16 = port.mem.u16, i32 = port.mem.i32;
  // which buffer each slot held when we last wrote the whole frame into it
  const filled = rings.map((r) => new Int32Array(r.numSlots).fill(-1));
  // slots of each ring still to be written the first time (fillConstant looks at all of those)
  const firstLap = rings.map((r) => r.numSlots);
  const limit = a.count;
  const burst = clipBurst(cfg.burst, a.rate);
  // A late sender sends at most half a ring back to back (one burst, if that is more): the
  // backlog it may catch up and the burst that is due together. The receiver's ring (as large
  // as ours by default) then still has room for what it already holds.
  let minSlots = Infinity;
  for (const r of rings) minSlots = Math.min(minSlots, r.numSlots);
  const limiter = a.rate > 0 ? new RateLimiter(a.rate, Math.max(1, Math.floor(minSlots / 2) - burst)) : null;
  let sent = 0, bytes = 0, events = 0, seq = 0, lastFull = false;
  c[S.S_T_START] = (readRealClock(), realClock[0]!);
  while (!stopped(stop) && (limit === 0 || sent < limit)) {
    const want = limit === 0 ? burst : Math.min(burst, limit - sent);
    if (limiter !== null) limiter.take(want);
    const rev = pollSpin(port, POLLOUT, POLL_SLICE_MS, cfg.spinUs);
    checkPoll(rev, port);
    if ((rev & POLLOUT) === 0) continue;
    let left = want;
    for (let ri = 0; ri < rings.length && left > 0; ri++) {
      const r = rings[ri]!;
      const space = r.space();
      if (space < c[S.S_MIN_SPACE]!) c[S.S_MIN_SPACE] = space;
      const n = space < left ? space : left;
      if (n === 0) continue;
      const ns = r.numSlots, slotsWord = r.slotWord, bufBase = r.bufBase, bsz = r.bufSize, nb = r.numBufs;
      const fill = filled[ri]!;
      let i = r.head;
      if (constant) {
        const lap = firstLap[ri]!;
        i = fillConstant(u8, i32, slotsWord, ns, i, n, fill, bufBase, bsz, nb, tplAt, size, lap > 0);
        if (lap > 0) firstLap[ri] = lap - n;
      }
      else for (let k = 0; k < n; k++) {
        const slotWord = slotsWord + SLOT_WORDS * i;
        let idx = u32[slotWord + SLOT_WORD_BUF_IDX]!;
        if (idx >= nb) idx = 0;
        const off = bufBase + idx * bsz;
        if (fill[i] !== idx) { u8.copyWithin(off, tplAt, tplEnd); fill[i] = idx; }
        let extra = 0;
        if (withSeq) { put32(u8, off + SEQ_OFF, seq); extra = (seq >>> 16) + (seq & 0xffff); seq = (seq + 1) >>> 0; }
        if (patchAddr) {
          tpl.writeHeaders(u8, off, walker.srcIp, walker.dstIp, walker.sport, walker.dport, extra);
          walker.step();
        } else if (withSeq) {
          put16(u8, off + UDP_OFF + 6, tpl.udpChecksum(addrSum, extra));
        }
        setSlotLenAtWord(u16, slotWord, size);
        setSlotFlagsAtWord(u16, slotWord, 0);
        i = i + 1 === ns ? 0 : i + 1;
      }
      r.advance(i);
      left -= n;
      sent += n;
      bytes += n * size;
      events++;
    }
    c[S.S_PKTS] = sent; c[S.S_BYTES] = bytes; c[S.S_EVENTS] = events;
    // The time of the last batch, for the summary. At pipe speed a batch takes a few µs and a
    // clock read 60 ns: read it when the rings filled up (a peer that stops taking packets
    // leaves the exact time of the last batch) and every 64th batch; at the end, below.
    lastFull = left === 0;
    if (!lastFull || (events & 63) === 0) c[S.S_T_LAST] = (readRealClock(), realClock[0]!);
  }
  if (lastFull) c[S.S_T_LAST] = (readRealClock(), realClock[0]!); // stopped (count, signal) while the peer was taking
  if (limiter !== null) { c[S.S_LATE_MAX_MS] = limiter.maxLateMs; c[S.S_SLIPPED] = limiter.slippedPackets; }
  // hand over the last batch and give the peer a moment to take it
  const drainUntil = (readRealClock(), realClock[0]!) + DRAIN_MS;
  let pending = true;
  for (;;) {
    port.txsync();
    pending = false;
    for (const r of rings) if (r.txPending()) pending = true;
    if (!pending || (readRealClock(), realClock[0]!) >= drainUntil) break;
    port.poll(POLLOUT, 5);
  }
  // a peer that stopped taking packets does not stretch the measured time
  c[S.S_T_END] = sent === 0 ? 0 : pending ? c[S.S_T_LAST]! : (readRealClock(), realClock[0]!);
  let drops = 0;
  for (const r of rings) drops += r.drops;
  c[S.S_DROPS] = drops;
}

/** rx and rxseq. */
export function rxLoop(a: LoopArgs, withSeq: boolean): void {
  const { port, cfg, c, stop } = a;
  const rings = port.rxRings;
  if (rings.length === 0) fail('EINVAL', `${port.spec}: no RX rings bound (opened with /T?)`);
  const u8 = port.mem.u8, u32 = port.mem.u32, u16 = port.mem.u16;
  const expected = new Float64Array(rings.length);
  const limit = a.count;
  const burst = cfg.burst;
  let got = 0, bytes = 0, events = 0, gaps = 0, lost = 0, ooo = 0, lastPkt = 0, lastLog = 0, logged = 0;
  const drops0 = port.rxDrops();
  let lastWait = a.cpuWait.sampleNs(), lastWaitSample = (readRealClock(), realClock[0]!), fullBatch = false;
  // a receiver on its own CPU spins longer while traffic is fast (times.reservedSpinUs)
  // (assumed fast until a window of traffic says otherwise, so that traffic starting fast
  // finds the receiver spinning: an idle one spins 2 ms every poll slice, 2% of its CPU)
  const { reservedSpinUs, rateWindowMs, cpuWaitSampleMs } = a.times, pollSliceMs = a.times.pollSliceUs / 1000;
  const runIdleExitMs = cfg.idleExit ? IDLE_EXIT_MS : Infinity; // (read in the warm-up too: see LoopTimes)
  const idleExitMs = a.times.idleExitMs >= 0 ? a.times.idleExitMs : runIdleExitMs;
  const baseSpinUs = port.pollSpinUs, fastFrames = rings[0]!.numSlots;
  const startSpinUs = a.reserved && baseSpinUs > 0 ? reservedSpinUs : baseSpinUs;
  port.pollSpinUs = startSpinUs;
  let windowStart = lastWaitSample, windowGot = 0;
  while (!stopped(stop) && (limit === 0 || got < limit)) {
    const rev = pollSpin(port, POLLIN, pollSliceMs, cfg.spinUs);
    checkPoll(rev, port);
    if ((rev & POLLIN) === 0) {
      // idle: restart the CPU-wait window, so that it covers only waits while traffic flows
      lastWait = a.cpuWait.sampleNs(); lastWaitSample = (readRealClock(), realClock[0]!);
      port.pollSpinUs = startSpinUs; windowStart = lastWaitSample; windowGot = got;
      if (lastPkt > 0 && lastWaitSample - lastPkt > idleExitMs) break;
      continue;
    }
    fullBatch = true;
    for (let ri = 0; ri < rings.length; ri++) {
      const r = rings[ri]!;
      const avail = r.space();
      let n = avail < burst ? avail : burst;
      if (limit > 0 && n > limit - got) n = limit - got;
      if (avail <= n) fullBatch = false; // this ring is drained
      if (n === 0) continue;
      if (got === 0) c[S.S_T_START] = (readRealClock(), realClock[0]!);
      const ns = r.numSlots, slotsWord = r.slotWord;
      let i = r.head;
      if (withSeq) {
        const bufBase = r.bufBase, bsz = r.bufSize, nb = r.numBufs;
        let exp = expected[ri]!;
        for (let k = 0; k < n; k++) {
          const slotWord = slotsWord + SLOT_WORDS * i;
          const len = slotLenAtWord(u16, slotWord);
          bytes += len;
          const idx = u32[slotWord + SLOT_WORD_BUF_IDX]!;
          if (len >= SEQ_OFF + 4 && idx < nb) {
            const s = get32(u8, bufBase + idx * bsz + SEQ_OFF);
            if (s !== exp) {
              const ahead = (s - exp) >>> 0;
              if (ahead < 0x80000000) { gaps++; lost += ahead; } else ooo++;
              const t = (readRealClock(), realClock[0]!);
              if (t - lastLog >= 1000 || logged < 5) {
                a.log(ahead < 0x80000000 ? `Sequence GAP: exp ${exp} found ${s}` : `Sequence OUT OF ORDER: exp ${exp} found ${s}`);
                lastLog = t; logged++;
              }
            }
            exp = (s + 1) >>> 0;
          }
          i = i + 1 === ns ? 0 : i + 1;
        }
        expected[ri] = exp;
      } else {
        bytes += sumLengths(u16, slotsWord, ns, i, n);
        i = slotAfter(i, n, ns);
      }
      if (cfg.dump) {
        for (let k = 0, j = r.head; k < n; k++, j = r.next(j)) {
          a.log(hexDump(u8, r.slotBufOffset(j), r.slotLen(j), `ring ${r.id} slot ${j} buf ${r.slotBufIdx(j)} len ${r.slotLen(j)} flags 0x${r.slotFlags(j).toString(16)}`));
        }
      }
      r.advance(i);
      got += n;
      events++;
    }
    // The clock (60 ns) is read when the rings were drained (the batch was not full: traffic
    // may pause here, and its end needs the time) and every 16th batch otherwise: at pipe speed
    // a batch takes 2-3 µs.
    if (!fullBatch || (events & 15) === 0) lastPkt = (readRealClock(), realClock[0]!);
    if (a.reserved && lastPkt - windowStart >= rateWindowMs) {
      // fast: the ring would fill within RING_FILL_FAST_MS at this window's rate
      const fast = (got - windowGot) * RING_FILL_FAST_MS >= fastFrames * (lastPkt - windowStart);
      port.pollSpinUs = fast && baseSpinUs > 0 ? reservedSpinUs : baseSpinUs;
      windowStart = lastPkt; windowGot = got;
    }
    if (lastPkt - lastWaitSample >= cpuWaitSampleMs) {
      // the longest the receiver was kept from running (ready, but no CPU) between two samples
      const w = a.cpuWait.sampleNs();
      if (w >= 0 && lastWait >= 0) S.keepCpuWait(c, S.S_CPU_WAITS, (w - lastWait) * 1e-6); // (times a double: 0 / 1e6 in the warm-up taught V8 an integer division)
      lastWait = w; lastWaitSample = lastPkt;
    }
    c[S.S_PKTS] = got; c[S.S_BYTES] = bytes; c[S.S_EVENTS] = events;
    c[S.S_SEQ_GAPS] = gaps; c[S.S_SEQ_LOST] = lost; c[S.S_SEQ_OOO] = ooo;
    c[S.S_T_LAST] = lastPkt;
  }
  if (fullBatch && got > 0) lastPkt = (readRealClock(), realClock[0]!); // ended (count, signal) with traffic flowing
  port.rxsync(); // give the last slots back to the sender
  c[S.S_T_END] = got > 0 ? lastPkt : 0;
  // the rings' drops and what the kernel dropped before them (an interface's socket with no room)
  c[S.S_DROPS] = port.rxDrops() - drops0;
}

/** ping: sends a batch stamped with a counter and the time, waits for the echoes, measures RTT. */
export function pingLoop(a: LoopArgs): void {
  const { port, cfg, c, stop } = a;
  const tx = port.txRings[0], rxRings = port.rxRings;
  if (tx === undefined || rxRings.length === 0) fail('EINVAL', `${port.spec}: ping needs TX and RX rings`);
  if (cfg.size < PING_MIN_FRAME) fail('EINVAL', `-l ${cfg.size}: ping needs frames of at least ${PING_MIN_FRAME} bytes`);
  if (cfg.size > tx.bufSize) fail('EINVAL', `-l ${cfg.size}: larger than the port's ${tx.bufSize}-byte buffers`);
  const tpl = new FrameTemplate({
    size: cfg.size, srcMac: cfg.srcMac, dstMac: cfg.dstMac, srcIp: cfg.src.ipStart, dstIp: cfg.dst.ipStart,
    sport: cfg.src.port0, dport: cfg.dst.port0, variableBytes: 12,
  });
  const addrSum = sumOfAddrs(cfg.src.ipStart, cfg.dst.ipStart, cfg.src.port0, cfg.dst.port0);
  const tplAt = placeTemplate(port, tpl), tplEnd = tplAt + cfg.size;
  const u8 = port.mem.u8, u32 = port.mem.u32, u16 = port.mem.u16;
  const limit = a.count;
  let sent = 0, received = 0, bytes = 0, events = 0, counter = 0;
  let rttCount = 0, rttSum = 0, rttMin = Infinity, rttMax = 0;
  c[S.S_T_START] = (readRealClock(), realClock[0]!);
  while (!stopped(stop) && (limit === 0 || sent < limit)) {
    const rev = port.poll(POLLOUT, POLL_SLICE_MS);
    checkPoll(rev, port);
    if ((rev & POLLOUT) === 0) continue;
    let n = Math.min(tx.space(), cfg.burst);
    if (limit > 0 && n > limit - sent) n = limit - sent;
    const slotsWord = tx.slotWord, ns = tx.numSlots;
    let i = tx.head;
    for (let k = 0; k < n; k++) {
      const slotWord = slotsWord + SLOT_WORDS * i;
      const idx = u32[slotWord + SLOT_WORD_BUF_IDX]!;
      const off = tx.bufBase + (idx < tx.numBufs ? idx : 0) * tx.bufSize;
      u8.copyWithin(off, tplAt, tplEnd);
      const t = monotonicMs();
      const sec = Math.floor(t / 1000), nsec = Math.floor((t - sec * 1000) * 1e6);
      put32(u8, off + PING_COUNTER_OFF, counter);
      put32(u8, off + PING_TS_OFF, sec);
      put32(u8, off + PING_TS_OFF + 4, nsec);
      const extra = (counter >>> 16) + (counter & 0xffff) + (sec >>> 16) + (sec & 0xffff) + (nsec >>> 16) + (nsec & 0xffff);
      put16(u8, off + UDP_OFF + 6, tpl.udpChecksum(addrSum, extra));
      counter = (counter + 1) >>> 0;
      setSlotLenAtWord(u16, slotWord, cfg.size);
      setSlotFlagsAtWord(u16, slotWord, 0);
      i = i + 1 === ns ? 0 : i + 1;
    }
    tx.advance(i);
    port.txsync();
    sent += n;
    events++;
    // collect the echoes of this batch
    let outstanding = n;
    const deadline = monotonicMs() + PING_TIMEOUT_MS;
    while (outstanding > 0 && !stopped(stop)) {
      const left = deadline - monotonicMs();
      if (left <= 0) break;
      const r2 = port.poll(POLLIN, Math.min(left, POLL_SLICE_MS));
      checkPoll(r2, port);
      if ((r2 & POLLIN) === 0) continue;
      for (const r of rxRings) {
        const rxSlotsWord = r.slotWord, rns = r.numSlots;
        let j = r.head;
        const m = r.space();
        for (let k = 0; k < m; k++) {
          const slotWord = rxSlotsWord + SLOT_WORDS * j;
          const len = slotLenAtWord(u16, slotWord);
          const idx = u32[slotWord + SLOT_WORD_BUF_IDX]!;
          bytes += len;
          received++;
          if (len >= PING_MIN_FRAME && idx < r.numBufs) {
            const off = r.bufBase + idx * r.bufSize;
            const ts = get32(u8, off + PING_TS_OFF) * 1e9 + get32(u8, off + PING_TS_OFF + 4);
            const rtt = monotonicMs() * 1e6 - ts;
            if (rtt >= 0 && rtt < 60e9) {
              rttCount++; rttSum += rtt;
              if (rtt < rttMin) rttMin = rtt;
              if (rtt > rttMax) rttMax = rtt;
            }
          }
          if (outstanding > 0) outstanding--;
          j = j + 1 === rns ? 0 : j + 1;
        }
        r.advance(j);
      }
    }
    c[S.S_TX_PKTS] = sent; c[S.S_PKTS] = received; c[S.S_BYTES] = bytes; c[S.S_EVENTS] = events;
    c[S.S_RTT_COUNT] = rttCount; c[S.S_RTT_SUM] = rttSum; c[S.S_RTT_MIN] = rttCount > 0 ? rttMin : 0; c[S.S_RTT_MAX] = rttMax;
    c[S.S_T_LAST] = (readRealClock(), realClock[0]!);
  }
  port.rxsync();
  c[S.S_T_END] = (readRealClock(), realClock[0]!);
}

/** pong: echoes every frame back with MACs, IPv4 addresses and UDP ports swapped. */
export function pongLoop(a: LoopArgs): void {
  const { port, cfg, c, stop } = a;
  const tx = port.txRings[0], rxRings = port.rxRings;
  if (tx === undefined || rxRings.length === 0) fail('EINVAL', `${port.spec}: pong needs TX and RX rings`);
  const u8 = port.mem.u8, u32 = port.mem.u32, u16 = port.mem.u16;
  const limit = a.count;
  let got = 0, echoed = 0, bytes = 0, events = 0, lastPkt = 0;
  while (!stopped(stop) && (limit === 0 || got < limit)) {
    const rev = port.poll(POLLIN, POLL_SLICE_MS);
    checkPoll(rev, port);
    if ((rev & POLLIN) === 0) {
      if (cfg.idleExit && lastPkt > 0 && (readRealClock(), realClock[0]!) - lastPkt > IDLE_EXIT_MS) break;
      continue;
    }
    if (got === 0) c[S.S_T_START] = (readRealClock(), realClock[0]!);
    for (const r of rxRings) {
      let m = Math.min(r.space(), tx.space());
      if (limit > 0 && m > limit - got) m = limit - got;
      if (m === 0) continue;
      const rxSlotsWord = r.slotWord, txSlotsWord = tx.slotWord;
      let j = r.head, i = tx.head;
      for (let k = 0; k < m; k++) {
        const rxSlot = rxSlotsWord + SLOT_WORDS * j, txSlot = txSlotsWord + SLOT_WORDS * i;
        let len = slotLenAtWord(u16, rxSlot);
        if (len > tx.bufSize) len = tx.bufSize;
        const ridx = u32[rxSlot + SLOT_WORD_BUF_IDX]!, tidx = u32[txSlot + SLOT_WORD_BUF_IDX]!;
        const src = r.bufBase + (ridx < r.numBufs ? ridx : 0) * r.bufSize;
        const dst = tx.bufBase + (tidx < tx.numBufs ? tidx : 0) * tx.bufSize;
        u8.copyWithin(dst, src, src + len);
        swapForReply(u8, dst, len);
        setSlotLenAtWord(u16, txSlot, len);
        setSlotFlagsAtWord(u16, txSlot, 0);
        bytes += len;
        j = j + 1 === r.numSlots ? 0 : j + 1;
        i = i + 1 === tx.numSlots ? 0 : i + 1;
      }
      r.advance(j);
      tx.advance(i);
      got += m;
      echoed += m;
      events++;
    }
    port.txsync();
    lastPkt = (readRealClock(), realClock[0]!);
    c[S.S_PKTS] = got; c[S.S_TX_PKTS] = echoed; c[S.S_BYTES] = bytes; c[S.S_EVENTS] = events; c[S.S_T_LAST] = lastPkt;
  }
  port.txsync();
  port.rxsync();
  c[S.S_T_END] = got > 0 ? lastPkt : 0;
}
