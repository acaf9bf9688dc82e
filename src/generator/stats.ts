/**
 * Counters shared between pkt-gen worker threads and the main thread, and netmap pkt-gen's output
 * formats: numbers as `%.3f <unit>` with units '', K, M, G, T (powers of 1000), or `%.0f ` with -N.
 */

/** Layout of one worker's counters in a shared Float64Array (STATS_WORDS per worker). */
export const S_PKTS = 0;
export const S_BYTES = 1;
export const S_EVENTS = 2;
/** Smallest ring space seen since the main thread last reset it (to a large value). */
export const S_MIN_SPACE = 3;
/** Times in ms since the epoch (performance.timeOrigin + now): start of counting, last packet. */
export const S_T_START = 4;
export const S_T_LAST = 5;
export const S_DONE = 6;
/** Drops the port counted on the rings this worker uses (hidden ring counters). */
export const S_DROPS = 7;
export const S_SEQ_GAPS = 8;
export const S_SEQ_LOST = 9;
export const S_SEQ_OOO = 10;
export const S_RTT_COUNT = 11;
export const S_RTT_SUM = 12;
export const S_RTT_MIN = 13;
export const S_RTT_MAX = 14;
/** pong: packets echoed back; ping: requests sent. */
export const S_TX_PKTS = 15;
export const S_T_END = 16;
/** tx with -R: how late (ms) the sender was at worst for a batch; packets' worth of schedule given up. */
export const S_LATE_MAX_MS = 17;
export const S_SLIPPED = 18;
/** Time (ms) the worker thread was ready to run but waited for a CPU (Linux schedstat run delay). */
export const S_RUN_DELAY_MS = 19;
/**
 * rx: the CPU_WAITS_KEPT largest CPU waits (ms) within one sampling interval (about 2 ms while
 * traffic flows), in descending order: the receiver's longest stalls.
 */
export const S_CPU_WAITS = 20;
export const CPU_WAITS_KEPT = 8;
/** Time (ms) the worker thread ran on a CPU (schedstat), from opening its port to closing it. */
export const S_ON_CPU_MS = 28;
export const STATS_WORDS = 32;

export const SPACE_UNSET = 1e12;

const UNITS = ['', 'K', 'M', 'G', 'T'];

/** pkt-gen's norm(): `%.3f U` (normalised) or `%.0f ` (-N). */
export function norm(val: number, normalize: boolean): string {
  if (!normalize) return `${val.toFixed(0)} `;
  let i = 0;
  while (val >= 1000 && i < UNITS.length - 1) { val /= 1000; i++; }
  return `${val.toFixed(3)} ${UNITS[i]}`;
}

export interface Totals {
  pkts: number;
  bytes: number;
  events: number;
  drops: number;
  seqGaps: number;
  seqLost: number;
  seqOoo: number;
  rttCount: number;
  rttSum: number;
  rttMin: number;
  rttMax: number;
  txPkts: number;
  /** Worst lateness of a rate-limited sender (ms), schedule given up (packets), CPU wait (ms). */
  lateMaxMs: number;
  slipped: number;
  runDelayMs: number;
  onCpuMs: number;
  /** The longest CPU waits of the workers (ms, descending, at most CPU_WAITS_KEPT). */
  cpuWaitsMs: number[];
  /** Seconds between the first start and the last end of the workers. */
  seconds: number;
}

/** Sums the counters of `n` workers. */
export function totals(c: Float64Array, n: number): Totals {
  const t: Totals = { pkts: 0, bytes: 0, events: 0, drops: 0, seqGaps: 0, seqLost: 0, seqOoo: 0, rttCount: 0, rttSum: 0, rttMin: Infinity, rttMax: 0, txPkts: 0, lateMaxMs: 0, slipped: 0, runDelayMs: 0, onCpuMs: 0, cpuWaitsMs: [], seconds: 0 };
  let t0 = Infinity, t1 = 0;
  for (let worker = 0; worker < n; worker++) {
    const b = worker * STATS_WORDS;
    t.pkts += c[b + S_PKTS]!; t.bytes += c[b + S_BYTES]!; t.events += c[b + S_EVENTS]!; t.drops += c[b + S_DROPS]!;
    t.seqGaps += c[b + S_SEQ_GAPS]!; t.seqLost += c[b + S_SEQ_LOST]!; t.seqOoo += c[b + S_SEQ_OOO]!;
    t.rttCount += c[b + S_RTT_COUNT]!; t.rttSum += c[b + S_RTT_SUM]!; t.txPkts += c[b + S_TX_PKTS]!;
    t.lateMaxMs = Math.max(t.lateMaxMs, c[b + S_LATE_MAX_MS]!); t.slipped += c[b + S_SLIPPED]!; t.runDelayMs += c[b + S_RUN_DELAY_MS]!; t.onCpuMs += c[b + S_ON_CPU_MS]!;
    for (let k = 0; k < CPU_WAITS_KEPT; k++) if (c[b + S_CPU_WAITS + k]! > 0) t.cpuWaitsMs.push(c[b + S_CPU_WAITS + k]!);
    if (c[b + S_RTT_COUNT]! > 0) { t.rttMin = Math.min(t.rttMin, c[b + S_RTT_MIN]!); t.rttMax = Math.max(t.rttMax, c[b + S_RTT_MAX]!); }
    if (c[b + S_T_START]! > 0) {
      t0 = Math.min(t0, c[b + S_T_START]!);
      t1 = Math.max(t1, c[b + S_T_END]! > 0 ? c[b + S_T_END]! : c[b + S_T_LAST]!);
    }
  }
  if (t.rttCount === 0) t.rttMin = 0;
  t.cpuWaitsMs.sort((x, y) => y - x);
  t.cpuWaitsMs.length = Math.min(t.cpuWaitsMs.length, CPU_WAITS_KEPT);
  t.seconds = t0 === Infinity || t1 < t0 ? 0 : (t1 - t0) / 1000;
  return t;
}

export interface Summary {
  /** 'Sent' or 'Received'. */
  verb: string;
  packets: number;
  bytes: number;
  events: number;
  /** Average bytes per packet (integer, as pkt-gen prints it). */
  size: number;
  seconds: number;
  pps: number;
  bps: number;
  rawBps: number;
  avgBatch: number;
}

/** pkt-gen's tx_output() figures: raw bandwidth adds 24 bytes (CRC, preamble, gap) per packet of at least 60. */
/** Keeps `ms` among the CPU_WAITS_KEPT largest waits stored (descending) from c[at]. */
export function keepCpuWait(c: Float64Array, at: number, ms: number): void {
  if (!(ms > c[at + CPU_WAITS_KEPT - 1]!)) return;
  let k = CPU_WAITS_KEPT - 1;
  for (; k > 0 && c[at + k - 1]! < ms; k--) c[at + k] = c[at + k - 1]!;
  c[at + k] = ms;
}

export function summarize(verb: string, pkts: number, bytes: number, events: number, seconds: number): Summary {
  const size = pkts > 0 ? Math.floor(bytes / pkts) : 0;
  const delta = seconds > 0 ? seconds : 1e-6;
  const wire = Math.max(size, 60);
  return {
    verb, packets: pkts, bytes, events, size, seconds,
    pps: pkts / delta,
    bps: (8 * bytes) / delta,
    rawBps: (8 * pkts * (wire + 24)) / delta,
    avgBatch: events > 0 ? pkts / events : 0,
  };
}

/** The two final lines, exactly as netmap's pkt-gen prints them. */
export function formatSummary(s: Summary, normalize: boolean): string {
  if (s.packets === 0) return `${s.verb} nothing.\n`;
  return `${s.verb} ${s.packets} packets ${s.bytes} bytes ${s.events} events ${s.size} bytes each in ${s.seconds.toFixed(2)} seconds.\n` +
    `Speed: ${norm(s.pps, normalize)}pps Bandwidth: ${norm(s.bps, normalize)}bps (raw ${norm(s.rawBps, normalize)}bps). Average batch: ${s.avgBatch.toFixed(2)} pkts\n`;
}

/** pkt-gen's D() prefix: `SSS.UUUUUU main_thread [LINE] `. */
export function logPrefix(nowMs: number, where: string): string {
  const sec = Math.floor(nowMs / 1000);
  const usec = Math.floor((nowMs - sec * 1000) * 1000);
  return `${String(sec % 1000).padStart(3, '0')}.${String(usec).padStart(6, '0')} ${where} `;
}

/** The per-interval report line (without prefix). */
export function formatInterval(dPkts: number, dBytes: number, dEvents: number, usec: number, minSpace: number, normalize: boolean): string {
  const sec = usec > 0 ? usec / 1e6 : 1e-6;
  const batch = dEvents > 0 ? dPkts / dEvents : 0;
  return `${norm(dPkts / sec, normalize)}pps (${norm(dPkts, normalize)}pkts ${norm((8 * dBytes) / sec, normalize)}bps in ${Math.round(usec)} usec) ${batch.toFixed(2)} avg_batch ${minSpace >= SPACE_UNSET ? 99999 : minSpace} min_space`;
}
