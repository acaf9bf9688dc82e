/**
 * What the kipfw daemon and its worker threads (worker.ts) share: the job a worker is given and
 * the order of the statistics it publishes. Kept apart from worker.ts, whose top level runs the
 * worker.
 */
import { parsePortSpec, formatPortSpec } from '../ports/name.js';
import type { PathStats } from './path.js';

export interface WorkerJob {
  dir: string;
  name: string;
  ports: string[];
  ifaceNames: string[];
  ring: number;
  zeroCopy: boolean;
  compiled: boolean;
  /** Extra buffers per port worker 0 opens its ports with: its dummynet pool and every other worker's stock. */
  extraBuffers: number;
  /** Buffers per port each worker but 0 swaps into its RX slots for the frames it hands to worker 0. */
  stock: number;
  /** Worker 0 (the owner of dummynet): re-check instead of sleeping this many µs before a due packet. */
  spinUs: number;
  /** Worker 0: never sleep while dummynet holds packets. */
  spin: boolean;
  /** Worker 0: SCHED_FIFO priority (0: an ordinary thread). */
  realtime: number;
  /** [0] stop flag (set by the daemon), [1] started (1) or failed (-1). */
  control: SharedArrayBuffer;
  /** The PathStats fields, in STAT_FIELDS order. */
  stats: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

export const STAT_FIELDS: Array<keyof PathStats> = ['received', 'passed', 'denied', 'rejected', 'repliesSent', 'repliesLost', 'toDummynet', 'poolFull', 'fromDummynet', 'dummynetLost', 'txFull', 'handedOff', 'handoffFull'];

/** The name of ring pair `ring` of port `name` (netmap's `name-K`); not exclusive: the daemon's main thread holds every ring too. */
export function ringName(name: string, ring: number): string {
  const spec = parsePortSpec(name);
  spec.mode = 'ONE_NIC';
  spec.ringId = ring;
  return formatPortSpec(spec);
}
