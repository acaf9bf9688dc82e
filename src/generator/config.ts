/** What a pkt-gen run does: the parsed options, in a form that can be posted to worker threads. */
import type { AddrRange } from './addr.js';

export type GenFunction = 'tx' | 'rx' | 'ping' | 'pong' | 'txseq' | 'rxseq';
export const FUNCTIONS: readonly GenFunction[] = ['tx', 'rx', 'ping', 'pong', 'txseq', 'rxseq'];

export interface GenConfig {
  fn: GenFunction;
  /** Port name as opened (`netmap:p{0`, `vale0:a`, `netmap:veth0`). */
  ifname: string;
  /** -n: packets in total (0 = no limit). */
  count: number;
  /** -l: frame length in bytes, without CRC. */
  size: number;
  /** -b: batch per ring per poll. */
  burst: number;
  /** -R: packets per second in total (0 = no limit). */
  rate: number;
  /** -p: worker threads, each on its own ring. */
  threads: number;
  src: AddrRange;
  dst: AddrRange;
  srcMac: number[];
  dstMac: number[];
  /** -z / -Z */
  randomSrc: boolean;
  randomDst: boolean;
  /** -w: seconds to wait before starting. */
  waitSecs: number;
  /** -T: report interval in ms (0 = no interval reports). */
  reportMs: number;
  /** -v count. */
  verbose: number;
  /** not -N */
  normalize: boolean;
  json: boolean;
  /** -W: rx/pong exit after 1 s without traffic (once traffic started). */
  idleExit: boolean;
  /** -a: first CPU to pin threads to (-1: no pinning). */
  affinity: number;
  /** -c: CPUs to use (0 = all). */
  cpus: number;
  /** -X: rx/rxseq dump every frame received (hex and ASCII, on stderr). */
  dump: boolean;
  /** Busy-poll this many microseconds before sleeping in poll (0: sleep at once). */
  spinUs: number;
  /** --rt: SCHED_FIFO priority of the packet threads (0: ordinary threads). */
  realtime: number;
  /** not --no-reserve: receivers reserve a CPU, senders keep off reserved ones (src/ports/placement.ts). */
  reserveCpu: boolean;
}

export const DEFAULTS = {
  size: 60,
  burst: 512,
  pingBurst: 1,
  reportMs: 1000,
  src: '10.0.0.1',
  dst: '10.1.0.1',
  srcMac: '00:00:00:00:00:00',
  dstMac: 'ff:ff:ff:ff:ff:ff',
  /** Largest batch accepted (a ring has at most 4096 slots here). */
  maxBurst: 8192,
  maxThreads: 64,
};

/** What one worker is told: the shared config plus its share. */
export interface WorkerJob {
  cfg: GenConfig;
  /** The port name this worker opens (`name-K` with -p > 1). */
  portName: string;
  index: number;
  /** This worker's share of -n and -R. */
  count: number;
  rate: number;
  /** Shared counters (Float64Array, STATS_WORDS per worker) and stop flag (Int32Array[1]). */
  stats: SharedArrayBuffer;
  stop: SharedArrayBuffer;
  /** CPU to pin to, -1 none. */
  cpu: number;
  /** Whether `cpu` is reserved for this thread (src/ports/placement.ts): a receiver may then spin there longer. */
  reserved: boolean;
}
