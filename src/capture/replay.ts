/**
 * Replays a capture file onto a netmap port (nmreplay): at the recorded timing, at a fixed
 * packet rate, at a fixed bandwidth, or as fast as the port takes them; any number of loops.
 * The file is streamed (constant memory); packets are copied into TX slots and handed over
 * with txsync in batches. A packet longer than a netmap buffer is cut to the buffer size.
 */
import { fail } from '../errors.js';
import { POLLOUT, type Port } from '../ports/port.js';
import { openCaptureFile } from './reader.js';
import { mapFileReadOnly, monotonicMs } from '../native/index.js';

export type ReplayMode = 'timed' | 'rate' | 'bandwidth' | 'fast';

export interface ReplayOptions {
  mode: ReplayMode;
  /** Packets per second (mode 'rate'). */
  rate?: number;
  /** Bits per second on the wire, counting 24 bytes of preamble, gap and FCS per frame (mode 'bandwidth'). */
  bandwidth?: number;
  /** Passes over the file (default 1; 0 = until `durationMs` or `count`). */
  loops?: number;
  /** Stop after this many milliseconds. */
  durationMs?: number;
  /** Stop after this many packets. */
  count?: number;
  /** Packets handed over per txsync when not waiting (default 64). */
  batch?: number;
}

export interface ReplayResult {
  packets: number;
  bytes: number;
  seconds: number;
  loops: number;
  /** Packets cut to the netmap buffer size. */
  truncated: number;
  pps: number;
  bps: number;
}

const WIRE_OVERHEAD = 24;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Waits until monotonicMs() >= target: sleeps for long waits, spins for the last 2 ms. */
function waitUntil(target: number): void {
  for (;;) {
    const left = target - monotonicMs();
    if (left <= 0) return;
    if (left > 2) Atomics.wait(sleeper, 0, 0, left - 1.5);
  }
}

export function replayFile(path: string, port: Port, options: ReplayOptions): ReplayResult {
  const loops = options.loops ?? 1;
  const batch = options.batch ?? 64;
  if (!Number.isInteger(loops) || loops < 0) fail('EINVAL', `loops ${loops} must be a whole number >= 0`);
  if (loops === 0 && options.durationMs === undefined && options.count === undefined) fail('EINVAL', 'endless replay (0 loops) needs a duration or a packet count');
  if (options.mode === 'rate' && !(options.rate !== undefined && options.rate > 0)) fail('EINVAL', 'rate mode needs a positive packet rate');
  if (options.mode === 'bandwidth' && !(options.bandwidth !== undefined && options.bandwidth > 0)) fail('EINVAL', 'bandwidth mode needs a positive bandwidth');
  const ring = port.txRings[0];
  if (ring === undefined) fail('EINVAL', `port ${port.spec} has no TX ring`);
  const rings = port.txRings;
  const u8 = port.mem.u8;
  const start = monotonicMs();
  const deadline = options.durationMs === undefined ? Infinity : start + options.durationMs;
  const maxPackets = options.count ?? Infinity;
  const res: ReplayResult = { packets: 0, bytes: 0, seconds: 0, loops: 0, truncated: 0, pps: 0, bps: 0 };
  let bits = 0;
  let pending = 0;
  let stop = false;
  let timeBase = start; // monotonicMs() that the first packet of this pass maps to
  let fileT0 = -1; // ms timestamp of the first packet of this pass
  let lastTarget = start;
  let r = 0; // current TX ring

  const flush = (): void => {
    if (pending > 0) {
      port.txsync();
      pending = 0;
    }
  };

  const onRecord = (src: Uint8Array, o: number, caplen: number, wirelen: number, tsSec: number, tsNsec: number): void => {
    if (stop) return;
    let target = 0;
    switch (options.mode) {
      case 'timed': {
        const t = tsSec * 1000 + tsNsec / 1e6;
        if (fileT0 < 0) fileT0 = t;
        target = timeBase + Math.max(0, t - fileT0);
        break;
      }
      case 'rate': target = start + (res.packets * 1000) / (options.rate as number); break;
      case 'bandwidth': target = start + (bits * 1000) / (options.bandwidth as number); break;
      case 'fast': break;
    }
    if (target > 0) {
      if (target > monotonicMs()) {
        flush();
        if (target >= deadline) { stop = true; return; }
        waitUntil(target);
      }
      lastTarget = target;
    }
    // Find a TX slot, syncing and waiting (bounded by the deadline) when the rings are full.
    let guard = 0;
    while (rings[r]!.space() === 0) {
      r = r + 1 === rings.length ? 0 : r + 1;
      if (++guard % rings.length !== 0) continue;
      flush();
      port.txsync();
      if (rings.some((x) => x.space() > 0)) continue;
      port.poll(POLLOUT, 100);
      if (monotonicMs() >= deadline) { stop = true; return; }
    }
    const tx = rings[r]!;
    const i = tx.head;
    const dst = tx.slotBufOffset(i);
    let len = caplen;
    if (len > tx.bufSize) { len = tx.bufSize; res.truncated++; }
    if (len <= 128) for (let k = 0; k < len; k++) u8[dst + k] = src[o + k]!;
    else u8.set(src.subarray(o, o + len), dst);
    tx.setSlotLen(i, len);
    tx.setSlotFlags(i, 0);
    tx.head = tx.cur = tx.next(i);
    res.packets++;
    res.bytes += len;
    bits += (wirelen + WIRE_OVERHEAD) * 8;
    if (++pending >= batch) flush();
    if (res.packets >= maxPackets || (res.packets & 1023) === 0 && monotonicMs() >= deadline) stop = true;
  };

  for (let pass = 0; (loops === 0 || pass < loops) && !stop; pass++) {
    const rd = openCaptureFile(path, { mapper: mapFileReadOnly });
    try {
      fileT0 = -1;
      timeBase = Math.max(lastTarget, monotonicMs());
      while (!stop && rd.dispatch(256, onRecord) > 0) {
        if (monotonicMs() >= deadline) stop = true;
      }
      if (rd.delivered === 0) stop = true; // an empty file would loop forever
    } finally {
      rd.close();
    }
    res.loops++;
  }
  flush();
  res.seconds = (monotonicMs() - start) / 1000;
  // Give the port a moment to take what is still in the rings (bounded, not counted).
  const drainUntil = monotonicMs() + 200;
  while (rings.some((x) => x.txPending()) && monotonicMs() < drainUntil) port.poll(POLLOUT, 10);
  res.pps = res.seconds > 0 ? res.packets / res.seconds : 0;
  res.bps = res.seconds > 0 ? (res.bytes * 8) / res.seconds : 0;
  return res;
}
